// The lobby: pick a name and a room, your recent rooms, and the directory of rooms now.

import { $, NAME_KEY, ROOMS_KEY, ROOM_PATTERN, requestFocus, store } from "./page.js";
import { createPrivateRoom } from "./room-private.js";
import { nameProblem, startSession } from "./send.js";

/** A typed room name made valid: "Book Club!" -> "book-club". */
const toRoomName = (text) =>
  text.trim().toLowerCase().replace(/\s+/g, "-").replace(/[^a-z0-9_-]/g, "").slice(0, 64);

export function showLobby(problem = "", typed = "") {
  document.title = "Chatroom";
  $("#title").textContent = "Pick a room";
  $("#lobby").hidden = false;
  const form = $("#lobby-form");
  form.elements.name.value = store.get(NAME_KEY, "");
  form.elements.room.value = toRoomName(typed);
  $("#lobby-error").textContent = problem;

  const rooms = store.get(ROOMS_KEY, []).filter((room) => ROOM_PATTERN.test(room));
  $("#recent").hidden = rooms.length === 0;
  $("#recent-rooms").replaceChildren(...rooms.map((room) => {
    const item = document.createElement("li");
    const link = document.createElement("a");
    link.href = `/r/${room}`;
    link.textContent = `#${room}`;
    item.append(link);
    return item;
  }));
  (form.elements.name.value ? form.elements.room : form.elements.name).focus();

  showDirectory();

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = form.elements.name.value.trim();
    if (form.elements.private.checked) {
      // A private room's name is made for it (and cannot be guessed).
      $("#lobby-error").textContent = nameProblem(name);
      if (nameProblem(name)) return form.elements.name.focus();
      store.set(NAME_KEY, name);
      await startSession();
      try {
        const made = await createPrivateRoom();
        requestFocus();
        location.assign(`/r/${made}`);
      } catch (error) {
        $("#lobby-error").textContent = error.message;
      }
      return;
    }
    const room = toRoomName(form.elements.room.value);
    const problem = nameProblem(name) || (room ? "" : "Please enter a room name (letters, digits, “-” or “_”).");
    $("#lobby-error").textContent = problem;
    if (problem) {
      (nameProblem(name) ? form.elements.name : form.elements.room).focus();
      return;
    }
    store.set(NAME_KEY, name);
    requestFocus();
    location.assign(`/r/${room}`);
  });
}

// The room directory: rooms with people in them or a message in the last day, busiest
// first, refreshed while the lobby is in view.
const DIRECTORY_REFRESH_MS = 5000;
const DIRECTORY_SHOWN = 20; // the busiest; the API gives up to 100

function showDirectory() {
  let timer = 0;
  const refresh = async () => {
    clearTimeout(timer);
    if (document.hidden) return; // refreshed again when the lobby is back in view
    try {
      const response = await fetch("/stream/rooms", { signal: AbortSignal.timeout(10000) });
      if (!response.ok) throw new Error(String(response.status));
      renderDirectory((await response.json()).rooms);
    } catch {
      if (!$("#directory-rooms").children.length) $("#directory-note").textContent = "The room list is unavailable right now.";
    }
    timer = setTimeout(refresh, DIRECTORY_REFRESH_MS);
  };
  document.addEventListener("visibilitychange", refresh);
  refresh();
}

function renderDirectory(rooms) {
  const valid = Array.isArray(rooms) ? rooms.filter((r) => ROOM_PATTERN.test(r?.room)) : [];
  const more = valid.length - DIRECTORY_SHOWN;
  $("#directory-note").textContent = !valid.length ? "Nobody is chatting right now: start a room above."
    : more > 0 ? `The ${DIRECTORY_SHOWN} busiest of ${valid.length}${valid.length >= 100 ? "+" : ""} rooms.` : "";
  $("#directory-note").hidden = !$("#directory-note").textContent;
  $("#directory-rooms").replaceChildren(...valid.slice(0, DIRECTORY_SHOWN).map(({ room, people, last_ts: lastTs }) => {
    const item = document.createElement("li");
    item.dataset.room = room;
    const link = document.createElement("a");
    link.href = `/r/${room}`;
    link.textContent = `#${room}`;
    const about = document.createElement("span");
    about.className = "hint";
    const here = people > 0 ? `${people} here` : "nobody here";
    about.textContent = lastTs ? `${here} · last message ${ago(lastTs)}` : here;
    item.append(link, " ", about);
    return item;
  }));
}

/** "just now", "5 min ago", "3 h ago". */
function ago(ts) {
  const minutes = Math.floor((Date.now() - ts) / 60000);
  if (minutes < 1) return "just now";
  if (minutes < 60) return `${minutes} min ago`;
  return `${Math.floor(minutes / 60)} h ago`;
}
