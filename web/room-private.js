// A private room (its generated name starts with "_"): making one from the lobby, joining
// by the invite link, the lock, its members, and for its owner the invite link to copy, a new
// link (older ones stop working) and removing a member.

import { $, announce } from "./page.js";

export const isPrivate = (room) => room.startsWith("_");
const TIMEOUT_MS = 10000;
const INVITE_KEY = "chatroom.invite."; // + room: the owner's invite link, for this tab only

async function call(method, path, body) {
  try {
    const response = await fetch(path, {
      method,
      headers: { Accept: "application/json", ...(body ? { "Content-Type": "application/json" } : {}) },
      body: body ? JSON.stringify(body) : undefined,
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
    return { status: response.status, payload: await response.json().catch(() => null) };
  } catch {
    return { status: 0, payload: null };
  }
}

function rememberInvite(room, url) {
  try {
    sessionStorage.setItem(INVITE_KEY + room, new URL(url, location.origin).href);
  } catch {
    // without storage the owner asks for a new link
  }
}

function rememberedInvite(room) {
  try {
    return sessionStorage.getItem(INVITE_KEY + room);
  } catch {
    return null;
  }
}

/** Make a private room; returns its name, or throws an Error with words for a person. */
export async function createPrivateRoom() {
  const { status, payload } = await call("POST", "/api/rooms", { private: true });
  if (status === 201 && payload?.room && payload.invite_url) {
    rememberInvite(payload.room, payload.invite_url);
    return payload.room;
  }
  throw new Error(payload?.error?.message ?? "Could not make the room; try again.");
}

/** "u:ann" -> "ann"; "s:1a2b…" -> "member 1a2b3c". */
const memberLabel = (id) => (id.startsWith("u:") ? id.slice(2) : `member ${id.slice(2, 8)}`);

export class PrivateRoom {
  room;
  path;
  owner = false;

  constructor(room) {
    this.room = room;
    this.path = `/api/rooms/${encodeURIComponent(room)}`;
    const lock = document.createElement("span");
    lock.className = "lock";
    lock.textContent = "🔒";
    lock.title = "Private room";
    lock.setAttribute("aria-label", "Private room:");
    $("#title").prepend(lock, " ");
    $("#invite-copy").addEventListener("click", () => this.copy());
    $("#invite-rotate").addEventListener("click", () => this.rotate());
  }

  /** Join with the address's invite, if it has one; then whether this browser may read the room. */
  async enter() {
    const invite = new URLSearchParams(location.search).get("invite");
    if (invite) {
      await call("POST", `${this.path}/members`, { invite });
      history.replaceState(null, "", `/r/${this.room}`); // the token leaves the address bar
    }
    return this.refresh();
  }

  /** Show the members (and the owner's controls); false if this browser is not a member. */
  async refresh() {
    const { status, payload } = await call("GET", `${this.path}/members`);
    if (status !== 200 || !payload) {
      $("#private-denied").hidden = false;
      $("#private-denied").textContent = status === 404
        ? "This room is private: you need an invite link from its owner."
        : "This private room cannot be opened right now; reload to try again.";
      for (const part of ["#scroller", "#composer", "#name-form", "#people", "#private-panel"]) $(part).hidden = true;
      return false;
    }
    this.owner = payload.owner === payload.you;
    $("#private-panel").hidden = false;
    $("#invite-box").hidden = !this.owner;
    const link = rememberedInvite(this.room);
    $("#invite-link").value = link ?? "";
    $("#invite-copy").hidden = !link;
    $("#invite-link").hidden = !link;
    const everyone = [payload.owner, ...payload.members];
    $("#member-list").replaceChildren(...everyone.map((id) => this.memberItem(id, payload)));
    return true;
  }

  memberItem(id, { owner, you }) {
    const item = document.createElement("li");
    item.dataset.member = id;
    const name = document.createElement("bdi");
    name.textContent = memberLabel(id);
    item.append(name, id === owner ? " (owner)" : "", id === you ? " (you)" : "");
    if (this.owner && id !== owner) {
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "link-button";
      remove.textContent = "Remove";
      remove.setAttribute("aria-label", `Remove ${memberLabel(id)}`);
      remove.addEventListener("click", () => this.remove(id));
      item.append(" ", remove);
    }
    return item;
  }

  async rotate() {
    const { status, payload } = await call("POST", `${this.path}/invite`, {});
    if (status === 200 && payload?.invite_url) {
      rememberInvite(this.room, payload.invite_url);
      await this.refresh();
      announce("New invite link made; older links no longer work.");
    } else {
      announce(payload?.error?.message ?? "Could not make a new link; try again.");
    }
  }

  async remove(id) {
    const { status, payload } = await call("DELETE", `${this.path}/members/${encodeURIComponent(id)}`);
    if (status === 204) announce(`${memberLabel(id)} was removed.`);
    else announce(payload?.error?.message ?? "Could not remove them; try again.");
    await this.refresh();
  }

  async copy() {
    try {
      await navigator.clipboard.writeText($("#invite-link").value);
      announce("Invite link copied.");
    } catch {
      $("#invite-link").select();
      announce("Select the link and copy it.");
    }
  }
}
