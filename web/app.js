// Chatroom's page: the lobby, and a room with its live timeline, presence and composer.
// Rooms have addresses: /r/<room> (or #<room>); "/" is the lobby. Each part has its module:
// page.js (shared helpers), lobby.js, room.js (and the room-*.js parts it is made of).

import { showLobby } from "./lobby.js";
import { ROOM_PATTERN } from "./page.js";
import { RoomPage } from "./room.js";

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
