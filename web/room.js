// A room: its live timeline from the stream, who is here, and the parts that have a module of
// their own (older messages, typing, alerts in the background, the composer and name form).

import { RoomStream, compareIds } from "./live.js";
import { $, NAME_KEY, ROOMS_KEY, announce, store, takeFocusRequest } from "./page.js";
import { reactionName } from "./reactions.js";
import { Alerts } from "./room-alerts.js";
import { Composer } from "./room-composer.js";
import { MessageEditor } from "./room-edit.js";
import { OlderMessages } from "./room-history.js";
import { PrivateRoom, isPrivate } from "./room-private.js";
import { TypingIndicator } from "./room-typing.js";
import { LastVisit } from "./room-unread.js";
import { startSession } from "./send.js";
import { Timeline, mentions, nameElement } from "./timeline.js";

export class RoomPage {
  room;
  name;
  stream = null;
  timeline;
  caughtUp = false; // the stream delivered what the connect asked for
  shownOnce = false;
  history;
  typing;
  alerts;
  composer;
  editor;
  lastVisit;

  constructor(room) {
    this.room = room;
    this.lastVisit = new LastVisit(room);
    this.name = store.get(NAME_KEY, "") || null;
    this.timeline = new Timeline($("#messages"), $("#scroller"), {
      isOwn: (message) => message.user === this.name,
      me: () => this.name,
      onDeleteRequest: (id) => this.composer.requestDelete(id),
      onEditRequest: (id) => this.editor.start(id),
      onReplyRequest: (id) => this.composer.startReply(id),
      onReact: (id, emoji, on) => this.composer.react(id, emoji, on),
      onQuote: (id) => this.showOriginal(id),
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
    this.typing = new TypingIndicator(room, () => this.name);
    this.composer = new Composer(this);
    this.editor = new MessageEditor(this);
    this.history = new OlderMessages(room, this.timeline, () => this.caughtUp);
    $("#new-pill").addEventListener("click", () => {
      this.timeline.scrollToBottom();
      $("#composer-text").focus();
    });
    this.alerts = new Alerts(room);

    // The session cookie first: while connected, it holds this page's name in the room.
    // A private room: join with the address's invite first; a non-member never connects.
    const privateRoom = isPrivate(room) ? new PrivateRoom(room) : null;
    startSession().then(() => (privateRoom ? privateRoom.enter() : true)).then((allowed) => {
      if (allowed && !this.stream) this.connect(null);
    });
    if (this.name) {
      this.composer.showComposer();
      if (takeFocusRequest()) $("#composer-text").focus();
    } else {
      this.composer.askName();
      $("#name-input").focus();
    }
  }

  connect(lastId) {
    this.stream?.stop();
    this.stream = new RoomStream(this.room, this.name, {
      onMessage: (message) => this.onMessage(message),
      onPresence: (users) => this.showPresence(users),
      onTyping: (user) => this.typing.onTyping(user),
      onDelete: (id) => this.messageGone(id),
      onEdit: (edit) => this.onEdit(edit),
      onReaction: (change) => this.onReaction(change),
      onReset: () => this.onReset(),
      onCaughtUp: () => this.onCaughtUp(),
      onState: (state, retryInS) => this.showConnection(state, retryInS),
    }, lastId);
  }

  onMessage(message) {
    this.typing.stopTyping(message.user); // their message is here: they are no longer typing it
    const added = this.timeline.add([message], { live: true });
    if (this.caughtUp) this.lastVisit.remember(this.timeline.newestId());
    if (added && this.caughtUp && message.user !== this.name) {
      announce(`${message.user}: ${message.text.slice(0, 200)}`);
      if (!document.hidden) return;
      this.alerts.arrived(message, mentions(message.text, this.name));
    }
  }

  /** A message was deleted (here or by its author elsewhere). */
  messageGone(id) {
    this.editor.gone(id);
    this.composer.replyGone(id);
    this.timeline.remove(id);
  }

  onEdit({ id, text, edited_ts: editedTs }) {
    const before = this.timeline.message(id);
    if (!this.timeline.edit(id, text, editedTs)) return;
    if (this.caughtUp && before && before.user !== this.name && before.text !== text) {
      announce(`${before.user} edited a message: ${text.slice(0, 200)}`);
    }
  }

  onReaction({ id, reactions }) {
    const before = this.timeline.message(id);
    if (!this.timeline.react(id, reactions)) return;
    if (!this.caughtUp || !before) return;
    // Say who reacted with what, when someone else did.
    for (const [emoji, entry] of Object.entries(reactions)) {
      const had = new Set(before.reactions?.[emoji]?.users ?? []);
      const added = (Array.isArray(entry?.users) ? entry.users : []).filter((u) => !had.has(u) && u !== this.name);
      if (added.length) announce(`${added.join(", ")} reacted with ${reactionName(emoji)} to ${before.user}'s message.`);
    }
  }

  /** A reply's quote was pressed: show the message it answers, loading older pages until it is in. */
  async showOriginal(id) {
    while (!this.timeline.reveal(id)) {
      const oldest = this.timeline.oldestId();
      const older = oldest === null || compareIds(id, oldest) < 0;
      if (this.timeline.isDeleted(id) || !older || !this.history.more) {
        // Not where it would be: it was deleted.
        this.timeline.quoteGone(id);
        announce("That message was deleted.");
        return;
      }
      const cursor = this.history.cursor;
      await this.history.loadOlder();
      if (this.history.failed || (this.timeline.oldestId() === oldest && this.history.cursor === cursor)) {
        announce("Could not load older messages to show it. Try again.");
        return;
      }
    }
    const shown = this.timeline.message(id);
    announce(`${shown.user}: ${shown.text.slice(0, 200)}`);
  }

  onCaughtUp() {
    this.caughtUp = true;
    // The first view starts at the latest, or at what arrived since the last visit.
    if (!this.shownOnce) {
      this.timeline.scrollToBottom();
      this.lastVisit.markOnce(this.timeline, $("#scroller"));
    }
    this.shownOnce = true;
    this.lastVisit.remember(this.timeline.newestId());
    this.history.onCaughtUp();
  }

  onReset() {
    // The page was away longer than the room's window holds: start again from the latest.
    this.history.reset();
    this.timeline.reset();
    this.caughtUp = false;
    this.shownOnce = false;
    announce("Reloaded the latest messages.");
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
    pill.textContent = `Jump to latest (${count} new)`;
  }
}
