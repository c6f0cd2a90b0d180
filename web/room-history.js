// A room's older messages: pages of history above the oldest one shown, loaded as the reader
// scrolls up (or asks), and the note at the top that says where the room starts.

import { $ } from "./page.js";

const PAGE_SIZE = 50;

export class OlderMessages {
  more = true; // older messages may exist before the oldest one shown
  cursor = null; // where the last page's scan of the log stopped: the next page continues below it
  olderRemoved = false; // the log's retention removed older messages of the room
  loading = false;
  failed = false; // the last page could not be loaded
  #inflight = Promise.resolve();
  generation = 0; // bumped by a reset: answers to older requests are dropped
  #room;
  #timeline;
  #caughtUp;

  /** ``caughtUp()``: whether the stream delivered what the connect asked for. */
  constructor(room, timeline, caughtUp) {
    this.#room = room;
    this.#timeline = timeline;
    this.#caughtUp = caughtUp;
    $("#scroller").addEventListener("scroll", () => {
      if ($("#scroller").scrollTop < 400) this.loadOlder();
    }, { passive: true });
    $("#load-older").addEventListener("click", () => this.loadOlder());
  }

  /** The stream caught up: an empty room has nothing older; fill the view from above. */
  onCaughtUp() {
    if (this.#timeline.size === 0) this.more = false;
    this.updateHistoryEdge();
    this.fillView();
  }

  /** The timeline starts again from the latest: forget the pages loaded so far. */
  reset() {
    this.generation += 1;
    this.cursor = null;
    this.more = true;
  }

  /** Load the page before the oldest message shown; resolves once it is in (or failed). */
  loadOlder() {
    if (!this.loading) this.#inflight = this.#loadPage();
    return this.#inflight;
  }

  async #loadPage() {
    if (this.loading || !this.more || !this.#caughtUp()) return;
    const before = this.cursor ?? this.#timeline.oldestId();
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
        `/stream/rooms/${this.#room}/history?before=${before}&limit=${PAGE_SIZE}`, { signal: AbortSignal.timeout(20000) });
      if (!response.ok) throw new Error(String(response.status));
      const page = await response.json();
      if (generation === this.generation) {
        this.#timeline.add(page.messages);
        this.more = Boolean(page.more);
        this.cursor = page.next_before ?? null;
        this.olderRemoved = Boolean(page.older_removed);
      }
    } catch {
      failed = true;
    } finally {
      this.loading = false;
    }
    this.failed = failed;
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
    else if (!this.more && this.#caughtUp()) note.textContent = this.startNote();
    else note.textContent = "";
  }

  /** The room's start, or, once the log's retention removed older messages, the start of what it keeps. */
  startNote() {
    return this.olderRemoved ? `This is the start of what #${this.#room} keeps.` : `This is the start of #${this.#room}.`;
  }
}
