// "New since you left": the newest message id the page showed in each room, remembered on
// this device, marks where the messages that arrived while the reader was away start.

import { announce, store } from "./page.js";

const SEEN_KEY = "chatroom.seen";
const SEEN_ROOMS = 100; // the rooms remembered: the least recently shown are forgotten first

export class LastVisit {
  #room;
  #newAfter; // the newest id shown at the last visit (null: a first visit)
  #remembered = null;
  #marked = false;

  constructor(room) {
    this.#room = room;
    const seen = store.get(SEEN_KEY, {})[room];
    this.#newAfter = typeof seen === "string" && /^\d+$/.test(seen) ? seen : null;
  }

  /** Remember the newest message shown now, for the next visit. */
  remember(id) {
    if (!id || id === this.#remembered) return;
    this.#remembered = id;
    const seen = store.get(SEEN_KEY, {});
    delete seen[this.#room]; // re-added last: the most recently shown room
    seen[this.#room] = id;
    const rooms = Object.keys(seen);
    for (const room of rooms.slice(0, Math.max(0, rooms.length - SEEN_ROOMS))) delete seen[room];
    store.set(SEEN_KEY, seen);
  }

  /**
   * The first view after connecting: if messages arrived since the last visit, put the
   * divider before the first of them, start the view there and say how many there are.
   * Once per visit: what arrives while the page is open is not "since you left".
   */
  markOnce(timeline, scroller) {
    if (this.#marked || this.#newAfter === null) return false;
    this.#marked = true;
    const count = timeline.countAfter(this.#newAfter);
    if (!count) return false;
    const divider = timeline.markNewAfter(this.#newAfter);
    if (!divider) return false;
    // The view starts at the divider, with a line of what came before it still in view.
    scroller.scrollTop += divider.getBoundingClientRect().top - scroller.getBoundingClientRect().top - 48;
    const atLeast = timeline.oldestId() === divider.nextElementSibling?.dataset.id ? "At least " : "";
    announce(`${atLeast}${count} new ${count === 1 ? "message" : "messages"} since your last visit.`);
    return true;
  }
}
