// Chatroom's page: the lobby, and a room with its live timeline, presence and composer.
// Rooms have addresses: /r/<room> (or #<room>); "/" is the lobby.

import { RoomStream } from "./live.js";
import {
  MAX_TEXT, deleteMessage, nameProblem, newClientId, normaliseText, postMessage, sendTyping, startSession, textLength,
} from "./send.js";
import { Timeline, isolated, mentions, nameElement } from "./timeline.js";

const ROOM_PATTERN = /^[a-z0-9_-]{1,64}$/;
const PAGE_SIZE = 50;
const TYPING_SEND_MS = 2500; // at most one typing signal this often (the server allows one per 2 s)
const TYPING_SHOW_MS = 5000; // "… is typing" lasts this long after the last signal
const NAME_KEY = "chatroom.name";
const ROOMS_KEY = "chatroom.rooms";
const $ = (selector) => document.querySelector(selector);

const store = {
  /** The stored value, or ``fallback`` when it is missing, unreadable or of another type. */
  get(key, fallback) {
    try {
      const value = JSON.parse(localStorage.getItem(key));
      return Array.isArray(value) === Array.isArray(fallback) && typeof value === typeof fallback ? value : fallback;
    } catch {
      return fallback;
    }
  },
  set(key, value) {
    try {
      localStorage.setItem(key, JSON.stringify(value));
    } catch {
      // Storage may be unavailable (private mode, quota): the page still works for this visit.
    }
  },
};

// The lobby's Join asks the room page to put the cursor in the message box.
const FOCUS_KEY = "chatroom.focus";

function requestFocus() {
  try {
    sessionStorage.setItem(FOCUS_KEY, "composer");
  } catch {
    // Without storage the room page just opens without focusing the box.
  }
}

function takeFocusRequest() {
  try {
    const wanted = sessionStorage.getItem(FOCUS_KEY) === "composer";
    sessionStorage.removeItem(FOCUS_KEY);
    return wanted;
  } catch {
    return false;
  }
}

/** The room the address names, "" for the lobby, or null for a malformed room name. */
function roomFromLocation() {
  const path = location.pathname.match(/^\/r\/([^/]*)\/?$/);
  let raw = path ? path[1] : location.hash.slice(1);
  if (!raw) return "";
  try {
    raw = decodeURIComponent(raw);
  } catch {
    return null;
  }
  return ROOM_PATTERN.test(raw) ? raw : null;
}

/** A typed room name made valid: "Book Club!" -> "book-club". */
const toRoomName = (text) =>
  text.trim().toLowerCase().replace(/\s+/g, "-").replace(/[^a-z0-9_-]/g, "").slice(0, 64);

function announce(text) {
  const announcer = $("#announcer");
  announcer.textContent = "";
  // A fresh text node each time, so that repeating the same words is announced again.
  setTimeout(() => { announcer.textContent = text; }, 50);
}

// -- the lobby ---------------------------------------------------------------------------

function showLobby(problem = "", typed = "") {
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

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const name = form.elements.name.value.trim();
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

// -- a room ------------------------------------------------------------------------------

class RoomPage {
  room;
  name;
  stream = null;
  timeline;
  more = true; // older messages may exist before the oldest one shown
  cursor = null; // where the last page's scan of the log stopped: the next page continues below it
  olderRemoved = false; // the log's retention removed older messages of the room
  loading = false;
  caughtUp = false; // the stream delivered what the connect asked for
  shownOnce = false;
  unread = 0; // messages that arrived while the page was hidden, mentions apart
  unreadMentions = 0;
  generation = 0; // bumped by a reset: answers to older requests are dropped
  typing = new Map(); // who else is typing -> the timer that forgets it
  typingSentAt = 0;

  constructor(room) {
    this.room = room;
    this.name = store.get(NAME_KEY, "") || null;
    this.timeline = new Timeline($("#messages"), $("#scroller"), {
      isOwn: (message) => message.user === this.name,
      me: () => this.name,
      onDeleteRequest: (id) => this.requestDelete(id),
      onUnseen: (count) => this.showUnseen(count),
    });
    const recent = [room, ...store.get(ROOMS_KEY, []).filter((r) => r !== room)].slice(0, 8);
    store.set(ROOMS_KEY, recent);

    document.title = `#${room} · Chatroom`;
    $("#title").textContent = `#${room}`;
    $("#room").hidden = false;
    $("#connection").hidden = false;
    $("#messages").setAttribute("aria-label", `Messages in #${room}`);
    $("#skip-link").hidden = false;
    $("#skip-link").addEventListener("click", (event) => {
      event.preventDefault(); // the address's hash names rooms: keep it
      ($("#composer").hidden ? $("#name-input") : $("#composer-text")).focus();
    });
    this.wireComposer();
    this.wireNameForm();
    this.wireScrollback();
    $("#new-pill").addEventListener("click", () => {
      this.timeline.scrollToBottom();
      $("#composer-text").focus();
    });

    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) this.showUnread(0, 0);
    });
    this.wireNotifications();

    // The session cookie first: while connected, it holds this page's name in the room.
    startSession().then(() => {
      if (!this.stream) this.connect(null);
    });
    if (this.name) {
      this.showComposer();
      if (takeFocusRequest()) $("#composer-text").focus();
    } else {
      this.askName();
      $("#name-input").focus();
    }
  }

  connect(lastId) {
    this.stream?.stop();
    this.stream = new RoomStream(this.room, this.name, {
      onMessage: (message) => this.onMessage(message),
      onPresence: (users) => this.showPresence(users),
      onTyping: (user) => this.onTyping(user),
      onDelete: (id) => this.timeline.remove(id),
      onReset: () => this.onReset(),
      onCaughtUp: () => this.onCaughtUp(),
      onState: (state, retryInS) => this.showConnection(state, retryInS),
    }, lastId);
  }

  onMessage(message) {
    this.stopTyping(message.user); // their message is here: they are no longer typing it
    const added = this.timeline.add([message], { live: true });
    if (added && this.caughtUp && message.user !== this.name) {
      announce(`${message.user}: ${message.text.slice(0, 200)}`);
      if (!document.hidden) return;
      if (mentions(message.text, this.name)) {
        this.showUnread(this.unread, this.unreadMentions + 1);
        this.notify(message);
      } else {
        this.showUnread(this.unread + 1, this.unreadMentions);
      }
    }
  }

  /** Unread messages in the tab's title while the page is in the background, mentions
   * of the reader counted apart: "(@1) (3) #room · Chatroom". */
  showUnread(count, mentionCount) {
    this.unread = count;
    this.unreadMentions = mentionCount;
    const marks = (mentionCount ? `(@${mentionCount}) ` : "") + (count ? `(${count}) ` : "");
    document.title = `${marks}#${this.room} · Chatroom`;
  }

  // -- desktop notifications of mentions: asked for from a button, never on load --

  wireNotifications() {
    const button = $("#notify-button");
    const update = () => {
      button.hidden = !("Notification" in window) || Notification.permission !== "default";
    };
    button.addEventListener("click", async () => {
      try {
        await Notification.requestPermission();
      } catch {
        // an old browser without the promise form: nothing more to ask
      }
      update();
      $("#composer-text").focus();
    });
    update();
  }

  notify(message) {
    if (!("Notification" in window) || Notification.permission !== "granted") return;
    try {
      const note = new Notification(`${isolated(message.user)} mentioned you in #${this.room}`, {
        body: message.text.slice(0, 200),
        tag: `chatroom-${this.room}`,
      });
      note.addEventListener("click", () => window.focus());
    } catch {
      // some browsers only notify from a service worker: the title still counts it
    }
  }

  onCaughtUp() {
    this.caughtUp = true;
    if (!this.shownOnce) this.timeline.scrollToBottom(); // the first view starts at the latest
    this.shownOnce = true;
    if (this.timeline.size === 0) this.more = false;
    this.updateHistoryEdge();
    this.fillView();
  }

  onReset() {
    // The page was away longer than the room's window holds: start again from the latest.
    this.generation += 1;
    this.cursor = null;
    this.timeline.reset();
    this.more = true;
    this.caughtUp = false;
    this.shownOnce = false;
    announce("Reloaded the latest messages.");
  }

  // -- taking a message back --

  async requestDelete(id) {
    if (!window.confirm("Delete this message for everyone?")) return;
    const result = await deleteMessage(this.room, id);
    if (result.ok) {
      this.timeline.remove(id); // the stream's delete event follows, for everyone else too
      announce("Message deleted.");
      return;
    }
    this.showError(result.code === "forbidden" ? "Only the browser that sent a message can delete it." : result.text);
  }

  // -- who is typing --

  onTyping(user) {
    if (user === this.name) return; // never for yourself (another tab of yours, say)
    clearTimeout(this.typing.get(user));
    this.typing.set(user, setTimeout(() => this.stopTyping(user), TYPING_SHOW_MS));
    this.showTyping();
  }

  stopTyping(user) {
    if (!this.typing.has(user)) return;
    clearTimeout(this.typing.get(user));
    this.typing.delete(user);
    this.showTyping();
  }

  showTyping() {
    const names = [...this.typing.keys()].map(nameElement);
    let parts = [];
    if (names.length === 1) parts = [names[0], " is typing…"];
    else if (names.length === 2) parts = [names[0], " and ", names[1], " are typing…"];
    else if (names.length > 2) parts = [names[0], ", ", names[1], ` and ${names.length - 2} more are typing…`];
    $("#typing").replaceChildren(...parts);
    $("#typing").hidden = !parts.length;
    $("#composer-hint").hidden = Boolean(parts.length);
  }

  /** The composer changed: tell the room, at most once per TYPING_SEND_MS. */
  signalTyping() {
    const now = Date.now();
    if (!this.name || !normaliseText($("#composer-text").value) || now - this.typingSentAt < TYPING_SEND_MS) return;
    this.typingSentAt = now;
    sendTyping(this.room, this.name);
  }

  // -- connection and presence --

  showConnection(state, retryInS) {
    if (state !== "connected") this.caughtUp = false;
    const words = {
      connecting: "Connecting…",
      connected: "Connected",
      reconnecting: retryInS ? `Reconnecting (next try in ${retryInS} s)…` : "Reconnecting…",
      offline: "Offline: waiting for the network…",
    };
    $("#connection").dataset.state = state;
    $("#connection-text").textContent = words[state];
  }

  showPresence(users) {
    const list = $("#people-list");
    const sorted = [...users].sort((a, b) => (a === this.name ? -1 : b === this.name ? 1 : a.localeCompare(b)));
    list.replaceChildren(...sorted.map((user) => {
      const item = document.createElement("li");
      item.append(nameElement(user));
      if (user === this.name) {
        item.classList.add("me");
        item.append(" (you)");
      }
      return item;
    }));
    const count = users.length;
    const names = sorted.slice(0, 3).flatMap((user, i) => (i ? [", ", nameElement(user)] : [nameElement(user)]));
    $("#people-summary").replaceChildren(
      ...(count === 0 ? ["Nobody here yet"] : [`${count} here: `, ...names, count > 3 ? ` and ${count - 3} more` : ""]));
  }

  showUnseen(count) {
    const pill = $("#new-pill");
    pill.hidden = count === 0;
    pill.textContent = count === 1 ? "1 new message ↓" : `${count} new messages ↓`;
  }

  // -- scrolling back --

  wireScrollback() {
    $("#scroller").addEventListener("scroll", () => {
      if ($("#scroller").scrollTop < 400) this.loadOlder();
    }, { passive: true });
    $("#load-older").addEventListener("click", () => this.loadOlder());
  }

  async loadOlder() {
    if (this.loading || !this.more || !this.caughtUp) return;
    const before = this.cursor ?? this.timeline.oldestId();
    if (before === null) {
      this.more = false;
      this.updateHistoryEdge();
      return;
    }
    const generation = this.generation;
    this.loading = true;
    this.updateHistoryEdge();
    let failed = false;
    try {
      const response = await fetch(
        `/stream/rooms/${this.room}/history?before=${before}&limit=${PAGE_SIZE}`, { signal: AbortSignal.timeout(20000) });
      if (!response.ok) throw new Error(String(response.status));
      const page = await response.json();
      if (generation === this.generation) {
        this.timeline.add(page.messages);
        this.more = Boolean(page.more);
        this.cursor = page.next_before ?? null;
        this.olderRemoved = Boolean(page.older_removed);
      }
    } catch {
      failed = true;
    } finally {
      this.loading = false;
    }
    this.updateHistoryEdge(failed);
    if (!failed) this.fillView();
  }

  /** Load older pages while the messages do not reach the top of the view. */
  fillView() {
    requestAnimationFrame(() => {
      if (this.more && $("#scroller").scrollTop < 400) this.loadOlder();
    });
  }

  updateHistoryEdge(failed = false) {
    const button = $("#load-older");
    const note = $("#history-note");
    button.hidden = !this.more || this.loading;
    button.textContent = failed ? "Could not load older messages. Try again" : "Load older messages";
    if (this.loading) note.textContent = "Loading older messages…";
    else if (!this.more && this.caughtUp) note.textContent = this.startNote();
    else note.textContent = "";
  }

  /** The room's start, or, once the log's retention removed older messages, the start of what it keeps. */
  startNote() {
    return this.olderRemoved ? `This is the start of what #${this.room} keeps.` : `This is the start of #${this.room}.`;
  }

  // -- the name --

  askName(canCancel = false) {
    $("#composer").hidden = true;
    const form = $("#name-form");
    form.hidden = false;
    form.elements.name.value = this.name ?? "";
    $("#name-cancel").hidden = !canCancel;
    $("#name-error").textContent = "";
    $("#name-button").hidden = true;
  }

  showComposer() {
    $("#name-form").hidden = true;
    $("#composer").hidden = false;
    $("#name-button").hidden = false;
    $("#name-label").textContent = this.name;
  }

  wireNameForm() {
    const form = $("#name-form");
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const name = form.elements.name.value.trim();
      const problem = nameProblem(name);
      $("#name-error").textContent = problem;
      if (problem) {
        form.elements.name.focus();
        return;
      }
      const changed = name !== this.name;
      this.name = name;
      store.set(NAME_KEY, name);
      this.showComposer();
      this.timeline.refreshOwn();
      // Rejoin under the new name, resuming exactly after the last message shown.
      if (changed) this.connect(this.stream?.lastId ?? null);
      $("#composer-text").focus();
    });
    $("#name-cancel").addEventListener("click", () => {
      this.showComposer();
      $("#name-button").focus();
    });
    $("#name-button").addEventListener("click", () => {
      this.askName(true);
      form.elements.name.focus();
    });
  }

  // -- sending --

  wireComposer() {
    const form = $("#composer");
    const input = $("#composer-text");
    input.addEventListener("input", () => {
      this.updateCount();
      this.signalTyping();
    });
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing && !event.altKey && !event.ctrlKey) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.send();
    });
  }

  updateCount() {
    const input = $("#composer-text");
    const length = textLength(input.value);
    const count = $("#composer-count");
    count.textContent = `${length} / ${MAX_TEXT}`;
    count.dataset.level = length > MAX_TEXT ? "over" : length > MAX_TEXT * 0.9 ? "near" : "";
    input.setAttribute("aria-invalid", String(length > MAX_TEXT));
    if (length <= MAX_TEXT && $("#composer-error").dataset.kind === "length") this.showError("");
    // Grow with the text, up to the CSS max-height.
    input.style.height = "auto";
    input.style.height = `${input.scrollHeight + 2}px`;
  }

  showError(text, kind = "") {
    const error = $("#composer-error");
    error.textContent = text;
    error.dataset.kind = kind;
  }

  send() {
    const input = $("#composer-text");
    const text = normaliseText(input.value);
    if (!text) return;
    const length = [...text].length;
    if (length > MAX_TEXT) {
      this.showError(`Too long: a message is at most ${MAX_TEXT} characters, this one has ${length}. ` +
        `Remove ${length - MAX_TEXT} to send it.`, "length");
      return;
    }
    const message = { client_id: newClientId(), user: this.name, text, ts: Date.now() };
    this.timeline.addPending(message);
    input.value = "";
    this.updateCount();
    this.typingSentAt = 0; // the next message's first key tells the room at once
    this.deliver(message);
  }

  async deliver(message) {
    const { client_id: clientId, user, text } = message;
    const result = await postMessage(this.room, { user, text, client_id: clientId });
    if (result.ok) {
      this.timeline.confirm(clientId, result.message);
      if ($("#composer-error").dataset.kind !== "length") this.showError("");
      return;
    }
    this.showError(result.text, "send");
    if (result.retryable) {
      this.timeline.fail(clientId, result.text, {
        retry: () => {
          if (this.timeline.sending(clientId)) this.deliver(message);
          $("#composer-text").focus();
        },
        discard: () => {
          this.timeline.discard(clientId);
          this.showError("");
          $("#composer-text").focus();
        },
      });
      return;
    }
    // Refused for good (too long, invalid): give the text back to fix it.
    this.timeline.discard(clientId);
    const input = $("#composer-text");
    if (!input.value) {
      input.value = text;
      this.updateCount();
    }
    if (result.code === "name_taken") {
      // Someone present in the room holds this name: ask for another one.
      this.askName(true);
      $("#name-error").textContent = result.text;
      $("#name-input").focus();
      return;
    }
    input.focus();
  }
}

function safeDecode(text) {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

function main() {
  const room = roomFromLocation();
  if (room) {
    document.body.classList.add("in-room");
    new RoomPage(room);
  } else if (room === null) {
    const typed = location.pathname.startsWith("/r/") ? location.pathname.slice(3) : location.hash.slice(1);
    showLobby("That address is not a room: room names use a-z, 0-9, “-” and “_”.", safeDecode(typed));
  } else {
    showLobby();
  }
  window.addEventListener("hashchange", () => {
    if (roomFromLocation() !== room) location.reload();
  });
}

main();
