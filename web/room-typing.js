// Who is typing: others' signals shown for a while ("… is typing"), and this page's own sent
// to the room at most once per TYPING_SEND_MS while the composer has text.

import { $ } from "./page.js";
import { normaliseText, sendTyping } from "./send.js";
import { nameElement } from "./timeline.js";

const TYPING_SEND_MS = 2500; // at most one typing signal this often (the server allows one per 2 s)
const TYPING_SHOW_MS = 5000; // "… is typing" lasts this long after the last signal

export class TypingIndicator {
  typing = new Map(); // who else is typing -> the timer that forgets it
  typingSentAt = 0;
  #room;
  #me;

  /** ``me()``: this page's name, or null before it has one. */
  constructor(room, me) {
    this.#room = room;
    this.#me = me;
  }

  onTyping(user) {
    if (user === this.#me()) return; // never for yourself (another tab of yours, say)
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
    const name = this.#me();
    if (!name || !normaliseText($("#composer-text").value) || now - this.typingSentAt < TYPING_SEND_MS) return;
    this.typingSentAt = now;
    sendTyping(this.#room, name);
  }

  /** A message was sent: the next one's first key tells the room at once. */
  sent() {
    this.typingSentAt = 0;
  }
}
