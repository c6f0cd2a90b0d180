// A room's live stream: EventSource with exact resume from the last message id.
//
// EventSource reconnects by itself after a dropped connection (sending Last-Event-ID), but
// gives up for good when a reconnect gets an error status (for example the gateway's 502
// while the stream service restarts). Then this opens a new one, with backoff, passing the
// last id it saw as ?last_event_id=, so the server resumes exactly where the page was.
// Every connect hands the page its position as an SSE id before any message (the id an
// event carries, or the last one before it), so that holds from the first moment on, in
// an empty room too.

export const HISTORY_COUNT = 50;
const BACKOFF_MS = [1000, 2000, 4000, 8000, 15000];

/** Compare two message ids (decimal strings, no leading zeros, or "-1": the position
 * before a partition's first record) as numbers. */
export const compareIds = (a, b) =>
  a === b ? 0 : a === "-1" ? -1 : b === "-1" ? 1 : a.length - b.length || (a < b ? -1 : 1);

const POSITION = /^(-1|\d+)$/;

/**
 * @typedef {object} StreamHandlers
 * @property {(message: object) => void} onMessage  a chat message, in Kafka order
 * @property {(users: string[]) => void} onPresence  who is in the room now
 * @property {(user: string) => void} onTyping  someone is typing (never stored, no id)
 * @property {(id: string) => void} onDelete  the message with this id was taken back
 * @property {(edit: {id: string, text: string, edited_ts: number}) => void} onEdit  a message's new text
 * @property {(change: {id: string, reactions: object}) => void} onReaction  a message's reactions now
 * @property {() => void} onReset  the page's position left the retained window: drop what is shown
 * @property {() => void} onCaughtUp  history (or the missed messages) delivered; live from here
 * @property {(state: "connecting"|"connected"|"reconnecting"|"offline", retryInS?: number) => void} onState
 */

export class RoomStream {
  #room;
  #user;
  #handlers;
  #source = null;
  #lastId = null;
  #attempt = 0;
  #timer = 0;
  #caughtUp = false;
  #stopped = false;

  /**
   * @param {string} room
   * @param {string | null} user  null: read without joining the presence list
   * @param {StreamHandlers} handlers
   * @param {string | null} lastId  resume after this id instead of loading recent history
   */
  constructor(room, user, handlers, lastId = null) {
    this.#room = room;
    this.#user = user;
    this.#handlers = handlers;
    this.#lastId = lastId;
    this.onOnline = () => this.#reconnectNow();
    this.onOffline = () => this.#goOffline();
    window.addEventListener("online", this.onOnline);
    window.addEventListener("offline", this.onOffline);
    this.#connect();
  }

  /** The page's position in the room: the newest id the stream gave (what a resume starts after). */
  get lastId() {
    return this.#lastId;
  }

  stop() {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#source?.close();
    window.removeEventListener("online", this.onOnline);
    window.removeEventListener("offline", this.onOffline);
  }

  #connect() {
    const params = new URLSearchParams({ history: String(HISTORY_COUNT) });
    if (this.#user) params.set("user", this.#user);
    if (this.#lastId !== null) params.set("last_event_id", this.#lastId);
    this.#caughtUp = false;
    this.#handlers.onState(this.#attempt === 0 && this.#lastId === null ? "connecting" : "reconnecting");
    const source = new EventSource(`/stream/rooms/${encodeURIComponent(this.#room)}?${params}`);
    this.#source = source;
    source.addEventListener("open", () => {
      this.#attempt = 0;
      this.#handlers.onState("connected");
    });
    source.addEventListener("message", (event) => this.#onMessage(event));
    source.addEventListener("presence", (event) => this.#onPresence(event));
    source.addEventListener("typing", (event) => this.#onTyping(event));
    source.addEventListener("delete", (event) => this.#onDelete(event));
    source.addEventListener("edit", (event) => this.#onChange(event, (data) => {
      if (typeof data.text === "string") this.#handlers.onEdit(data);
    }));
    source.addEventListener("reaction", (event) => this.#onChange(event, (data) => {
      if (data.reactions && typeof data.reactions === "object") this.#handlers.onReaction(data);
    }));
    source.addEventListener("reset", (event) => {
      this.#handlers.onReset();
      this.#advance(event.lastEventId);
    });
    source.addEventListener("error", () => this.#onError(source));
  }

  #onMessage(event) {
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    const id = event.lastEventId || String(message.id ?? "");
    if (!/^\d+$/.test(id)) return;
    message.id = id;
    this.#advance(id);
    this.#handlers.onMessage(message);
  }

  /** Move the page's position forward to ``id`` (never back). */
  #advance(id) {
    if (POSITION.test(id) && (this.#lastId === null || compareIds(id, this.#lastId) > 0)) this.#lastId = id;
  }

  /** A tombstone: its own id is a position in the room's log, like a message's. */
  #onDelete(event) {
    this.#advance(event.lastEventId);
    try {
      const target = String(JSON.parse(event.data).id ?? "");
      if (/^\d+$/.test(target)) this.#handlers.onDelete(target);
    } catch {
      // not a delete event
    }
  }

  /** An edit or a reaction: a record of its own in the room's log (its id is a position, like a
   * tombstone's) about the message ``data.id``. */
  #onChange(event, handle) {
    this.#advance(event.lastEventId);
    let data;
    try {
      data = JSON.parse(event.data);
    } catch {
      return;
    }
    const target = String(data?.id ?? "");
    if (/^\d+$/.test(target)) handle({ ...data, id: target });
  }

  #onTyping(event) {
    try {
      const { user } = JSON.parse(event.data);
      if (typeof user === "string" && user) this.#handlers.onTyping(user);
    } catch {
      // not a typing signal
    }
  }

  #onPresence(event) {
    this.#advance(event.lastEventId); // the connect's position, when no message came before
    try {
      const users = JSON.parse(event.data).users;
      if (Array.isArray(users)) this.#handlers.onPresence(users.map(String));
    } catch {
      return;
    }
    // The server ends what a connect asked for (history or missed messages) with presence.
    if (!this.#caughtUp) {
      this.#caughtUp = true;
      this.#handlers.onCaughtUp();
    }
  }

  #onError(source) {
    if (this.#stopped || source !== this.#source) return;
    this.#caughtUp = false;
    if (!navigator.onLine) {
      this.#goOffline();
      return;
    }
    if (source.readyState !== EventSource.CLOSED) {
      this.#handlers.onState("reconnecting");
      return; // the browser retries by itself, with Last-Event-ID
    }
    source.close();
    const base = BACKOFF_MS[Math.min(this.#attempt, BACKOFF_MS.length - 1)];
    const delay = Math.round(base * (0.8 + Math.random() * 0.4));
    this.#attempt += 1;
    this.#handlers.onState("reconnecting", Math.ceil(delay / 1000));
    this.#timer = setTimeout(() => this.#connect(), delay);
  }

  /** The browser lost the network: the stream is as good as gone; resume once back. */
  #goOffline() {
    if (this.#stopped) return;
    clearTimeout(this.#timer);
    this.#source?.close();
    this.#caughtUp = false;
    this.#handlers.onState("offline");
  }

  #reconnectNow() {
    if (this.#stopped || this.#source?.readyState === EventSource.OPEN) return;
    clearTimeout(this.#timer);
    this.#source?.close();
    this.#attempt = 0;
    this.#connect();
  }
}
