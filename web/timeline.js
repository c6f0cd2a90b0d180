// The message list: each message once, in Kafka order, rendered as text.
//
// Confirmed messages are kept sorted by id; the page's own messages that are still being
// sent (or failed) sit below them. A message is known by its id and, when it has one, by
// its client_id, so the stream's copy of a message this page sent replaces the pending one
// instead of showing twice. The stream and the history endpoint are the authority on a
// message's id; a 201 only places it until the stream's copy arrives.

import { compareIds } from "./live.js";
import { chips, picker } from "./reactions.js";

const FOLLOW_SLACK_PX = 48;
const GROUP_MS = 5 * 60 * 1000;
const FLASH_MS = 2000; // how long the message a quote leads to stays highlighted
const LINK = /\bhttps?:\/\/[^\s<>"'`]+/gi;

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dayTimeFormat = new Intl.DateTimeFormat(undefined, {
  weekday: "short", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
});
const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "medium" });

/**
 * The local time of a message: "14:05" today, "Tue 3 Nov, 14:05" otherwise.
 * @param {number} ts epoch milliseconds
 * @returns {HTMLTimeElement}
 */
export function timeElement(ts) {
  const date = new Date(ts);
  const element = document.createElement("time");
  element.dateTime = date.toISOString();
  element.title = fullFormat.format(date);
  const today = date.toDateString() === new Date().toDateString();
  element.textContent = (today ? timeFormat : dayTimeFormat).format(date);
  return element;
}

/** A name as a pattern that matches "@name" standing alone, in any case ("@Ann," but not "@annabel"). */
function mentionPattern(name) {
  const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(`(?<![\\p{L}\\p{N}_.@])@${escaped}(?![\\p{L}\\p{N}_])`, "giu");
}

/**
 * Whether the text names ``name`` with an @.
 * @param {string} text
 * @param {string | null} name
 */
export function mentions(text, name) {
  return Boolean(name) && mentionPattern(name).test(text);
}

/** Plain text as text nodes, with each "@name" of ``name`` marked. */
function mentionNodes(text, name) {
  if (!name) return [document.createTextNode(text)];
  const nodes = [];
  let last = 0;
  for (const match of text.matchAll(mentionPattern(name))) {
    nodes.push(document.createTextNode(text.slice(last, match.index)));
    const mark = document.createElement("mark");
    mark.className = "mention";
    mark.textContent = match[0];
    nodes.push(mark);
    last = match.index + match[0].length;
  }
  nodes.push(document.createTextNode(text.slice(last)));
  return nodes;
}

/**
 * Message text as DOM nodes: text nodes, http(s) URLs as links, and the reader's own
 * "@name" marked. Nothing from the message is ever parsed as HTML.
 * @param {string} text
 * @param {string | null} me  the reader's name: its mentions are highlighted
 * @returns {Node[]}
 */
export function textNodes(text, me = null) {
  const nodes = [];
  let last = 0;
  for (const match of text.matchAll(LINK)) {
    let raw = match[0].replace(/[.,;:!?)\]}]+$/, "");
    // Keep a closing parenthesis that belongs to the URL, as in Wikipedia links.
    const tail = match[0].slice(raw.length);
    if (tail.startsWith(")") && raw.split("(").length > raw.split(")").length) raw += ")";
    const url = safeUrl(raw);
    if (!url) continue;
    nodes.push(...mentionNodes(text.slice(last, match.index), me));
    const link = document.createElement("a");
    link.href = url;
    link.textContent = raw;
    link.rel = "noopener noreferrer";
    link.target = "_blank";
    nodes.push(link);
    last = match.index + raw.length;
  }
  nodes.push(...mentionNodes(text.slice(last), me));
  return nodes;
}

function safeUrl(raw) {
  try {
    const url = new URL(raw);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

/** A stable hue per name, so that each author keeps a colour. */
function hue(name) {
  let h = 0;
  for (const char of name) h = (h * 31 + char.codePointAt(0)) % 360;
  return h;
}

/**
 * A person's name, isolated from the text around it: a name is any characters, and one that
 * holds bidi controls or right-to-left letters ("safe \u202egnp.exe") must not reorder what
 * follows it ("… is typing", the time, other names).
 */
export function nameElement(name) {
  const element = document.createElement("bdi");
  element.dir = "auto";
  element.textContent = name;
  return element;
}

/** The same isolation in plain text (a notification's title): FSI … PDI around the name. */
export const isolated = (name) => `\u2068${name}\u2069`;

export class Timeline {
  #list;
  #scroller;
  #isOwn;
  #me;
  #onDeleteRequest;
  #actions;
  #deleted = new Set(); // ids taken back: never shown again, whatever answer arrives late
  #onUnseen;
  #order = []; // ids of confirmed messages, ascending
  #byId = new Map();
  #byClientId = new Map();
  #unseen = 0;
  #newAfter = null; // the newest id shown at the reader's last visit: "New messages" sits after it
  #divider = null;

  /**
   * @param {HTMLOListElement} list
   * @param {HTMLElement} scroller  the element that scrolls the list
   * @param {{isOwn: (message: object) => boolean, me: () => string | null, onUnseen: (count: number) => void,
   *   onDeleteRequest: (id: string) => void, onEditRequest: (id: string) => void,
   *   onReplyRequest: (id: string) => void, onReact: (id: string, emoji: string, on: boolean) => void,
   *   onQuote: (id: string) => void}} options
   *   me: the reader's name, whose mentions are highlighted; onDeleteRequest, onEditRequest: Delete or
   *   Edit pressed on an own message; onReplyRequest: Reply pressed; onReact: a chip or the picker
   *   pressed; onQuote: a reply's quote pressed (show the message it quotes)
   */
  constructor(list, scroller, { isOwn, me, onUnseen, onDeleteRequest, ...actions }) {
    this.#list = list;
    this.#scroller = scroller;
    this.#isOwn = isOwn;
    this.#me = me;
    this.#onDeleteRequest = onDeleteRequest;
    this.#actions = actions;
    this.#onUnseen = onUnseen;
    scroller.addEventListener("scroll", () => {
      if (this.#unseen && this.atBottom()) this.#setUnseen(0);
    }, { passive: true });
    // A press anywhere but the picker or its button closes the picker.
    document.addEventListener("pointerdown", (event) => {
      if (!event.target.closest?.(".picker, .msg-actions")) this.#closePickers();
    });
  }

  get size() {
    return this.#order.length;
  }

  oldestId() {
    return this.#order[0] ?? null;
  }

  newestId() {
    return this.#order.at(-1) ?? null;
  }

  /** The shown message with this id (its list item), or null. */
  item(id) {
    return this.#byId.get(id) ?? null;
  }

  /** The message as it is shown now: {id, user, text, reactions}, or null. */
  message(id) {
    const item = this.#byId.get(id);
    if (!item) return null;
    return { id, user: item.dataset.user, text: item.querySelector(".msg-text").textContent, reactions: item.reactions };
  }

  isDeleted(id) {
    return this.#deleted.has(id);
  }

  /** The newest of the reader's own stored messages (what ArrowUp edits), or null. */
  lastOwnId() {
    for (let i = this.#order.length - 1; i >= 0; i -= 1) {
      const item = this.#byId.get(this.#order[i]);
      if (item.classList.contains("own") && item.dataset.state === "sent") return this.#order[i];
    }
    return null;
  }

  /** A message's new text (an edit): shown with the "(edited)" mark. */
  edit(id, text, editedTs) {
    const item = this.#byId.get(id);
    if (!item || typeof text !== "string") return false;
    // An older edit arriving after a newer one (the page's own PATCH answered first) changes nothing.
    if (Number(editedTs) < Number(item.dataset.editedTs ?? 0)) return false;
    this.#keepingView(() => {
      this.#showText(item, text, item.dataset.user);
      this.#markEdited(item, editedTs);
    }, true);
    return true;
  }

  /** A message's current reactions (the full counts, as the server sends them). */
  react(id, reactions) {
    const item = this.#byId.get(id);
    if (!item) return false;
    this.#keepingView(() => this.#showReactions(item, reactions), true);
    return true;
  }

  /** Scroll to a shown message and highlight it for a moment; false if it is not shown. */
  reveal(id) {
    const item = this.#byId.get(id);
    if (!item) return false;
    item.scrollIntoView({ block: "center" });
    item.tabIndex = -1;
    item.focus({ preventScroll: true });
    item.classList.remove("flash");
    void item.offsetWidth; // restart the highlight if it is already running
    item.classList.add("flash");
    clearTimeout(item.flashTimer);
    item.flashTimer = setTimeout(() => item.classList.remove("flash"), FLASH_MS);
    return true;
  }

  /** Turn every quote of ``id`` into "deleted message": the original is gone. */
  quoteGone(id) {
    for (const quote of this.#list.querySelectorAll(`.msg-quote:not(.deleted)[data-reply-to="${CSS.escape(id)}"]`)) {
      quote.replaceWith(deletedQuote(id));
    }
  }

  /** How many shown messages are newer than ``id``. */
  countAfter(id) {
    return this.#order.length - this.#indexAfter(id);
  }

  /**
   * Mark where what the reader has not seen starts: a "New messages" divider before the
   * first message newer than ``id``, kept there as older pages and new messages arrive.
   * Returns the divider (or null when no newer message is shown).
   */
  markNewAfter(id) {
    this.#newAfter = id;
    this.#placeDivider();
    return this.#divider?.isConnected ? this.#divider : null;
  }

  atBottom() {
    const s = this.#scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight <= FOLLOW_SLACK_PX;
  }

  scrollToBottom() {
    this.#scroller.scrollTop = this.#scroller.scrollHeight;
    this.#setUnseen(0);
  }

  /**
   * Messages from the stream or the history endpoint. Returns how many were new.
   * @param {object[]} messages
   * @param {{live?: boolean}} options  live: arrived now (counts towards "new messages")
   */
  add(messages, { live = false } = {}) {
    let added = 0;
    let unseen = 0;
    this.#keepingView(() => {
      for (const message of messages) {
        if (this.#addOne(message)) {
          added += 1;
          if (live && !this.#isOwn(message)) unseen += 1;
        }
      }
    }, live);
    if (unseen && !this.atBottom()) this.#setUnseen(this.#unseen + unseen);
    return added;
  }

  /**
   * Show a message of this page's at once, before the server has it.
   * @param {{client_id: string, user: string, text: string, ts: number}} message
   */
  addPending(message) {
    const item = this.#render(message);
    item.dataset.state = "pending";
    this.#byClientId.set(message.client_id, item);
    this.#list.append(item);
    this.#regroup(item);
    this.scrollToBottom();
  }

  /** The server stored the page's message (a 201): mark it sent and place it by id. */
  confirm(clientId, message) {
    const item = this.#byClientId.get(clientId);
    if (!item || item.dataset.id) {
      if (item) this.#markSent(item);
      return;
    }
    this.#keepingView(() => {
      this.#markSent(item, message.ts);
      this.#place(item, String(message.id));
    }, true);
  }

  /** Sending failed: show why on the message, with Retry and Discard. */
  fail(clientId, reason, { retry, discard }) {
    const item = this.#byClientId.get(clientId);
    if (!item || item.dataset.state === "sent") return;
    item.dataset.state = "failed";
    const status = item.querySelector(".msg-status");
    const note = document.createElement("span");
    note.textContent = `Not sent: ${reason}`;
    const retryButton = button("Retry", "Retry sending this message", retry);
    const discardButton = button("Discard", "Discard this message", discard);
    status.replaceChildren(note, retryButton, discardButton);
  }

  /** Back to "sending" (a retry started). */
  sending(clientId) {
    const item = this.#byClientId.get(clientId);
    if (!item || item.dataset.state === "sent") return false;
    item.dataset.state = "pending";
    item.querySelector(".msg-status").replaceChildren(statusText("Sending…"));
    return true;
  }

  /** Remove a message of this page's that will not be sent. */
  discard(clientId) {
    const item = this.#byClientId.get(clientId);
    if (!item || item.dataset.id) return;
    this.#byClientId.delete(clientId);
    const next = item.nextElementSibling;
    item.remove();
    if (next) this.#regroup(next);
  }

  /** Mark the page's own messages and the reader's mentions again (the name changed). */
  refreshOwn() {
    for (const item of this.#list.querySelectorAll(".msg")) {
      item.classList.toggle("own", this.#isOwn({ user: item.dataset.user }));
      this.#showText(item, item.querySelector(".msg-text").textContent, item.dataset.user);
      this.#showReactions(item, item.reactions);
    }
  }

  /** A message was taken back: remove it, and never show it again; replies to it say so. */
  remove(id) {
    this.#deleted.add(id);
    this.quoteGone(id);
    const item = this.#byId.get(id);
    if (!item) return;
    this.#keepingView(() => {
      this.#order.splice(this.#index(id), 1);
      this.#byId.delete(id);
      if (item.dataset.clientId) this.#byClientId.delete(item.dataset.clientId);
      const next = item.nextElementSibling;
      item.remove();
      if (next) this.#regroup(next);
      this.#placeDivider();
    }, true);
  }

  /** Drop every confirmed message (the stream's reset); the page's unsent ones stay. */
  reset() {
    for (const item of this.#byId.values()) {
      item.remove();
      if (item.dataset.clientId) this.#byClientId.delete(item.dataset.clientId);
    }
    this.#order = [];
    this.#byId.clear();
    this.#placeDivider();
    this.#setUnseen(0);
  }

  #addOne(message) {
    const id = String(message.id);
    if (this.#deleted.has(id)) return false;
    const shown = this.#byId.get(id);
    if (shown) {
      // Read again (a history page that overlaps): a later edit than the one shown still counts.
      if (Number(message.edited_ts) > Number(shown.dataset.editedTs ?? 0)) this.edit(id, message.text, message.edited_ts);
      return false;
    }
    const mine = message.client_id ? this.#byClientId.get(message.client_id) : null;
    if (mine) {
      // The page's own message (pending, failed or placed by its 201): the stream's id wins.
      this.#markSent(mine, message.ts);
      if (mine.dataset.id !== id) this.#place(mine, id);
      return false;
    }
    const item = this.#render(message);
    item.dataset.state = "sent";
    if (message.client_id) this.#byClientId.set(message.client_id, item);
    this.#place(item, id);
    return true;
  }

  /** Put an item at its place by id (moving it if it had another). */
  #place(item, id) {
    const old = item.dataset.id;
    if (old) {
      this.#order.splice(this.#index(old), 1);
      this.#byId.delete(old);
    }
    const oldNext = item.nextElementSibling;
    const index = this.#index(id);
    const before = this.#byId.get(this.#order[index]) ?? this.#list.querySelector(".msg:not([data-id])");
    item.dataset.id = id;
    this.#order.splice(index, 0, id);
    this.#byId.set(id, item);
    if (before !== item) this.#list.insertBefore(item, before);
    this.#regroup(item);
    if (item.nextElementSibling) this.#regroup(item.nextElementSibling);
    if (oldNext && oldNext !== item.nextElementSibling) this.#regroup(oldNext);
    this.#placeDivider();
  }

  /** The first index whose id is greater than ``id``. */
  #indexAfter(id) {
    const index = this.#index(id);
    return this.#order[index] === id ? index + 1 : index;
  }

  /** The divider before the first message newer than the last visit's, or nowhere. */
  #placeDivider() {
    if (this.#newAfter === null) return;
    const first = this.#byId.get(this.#order[this.#indexAfter(this.#newAfter)]);
    const divider = this.#divider;
    if (divider && divider.nextElementSibling === first) return;
    const oldNext = divider?.nextElementSibling;
    if (!first) {
      divider?.remove();
    } else {
      this.#divider ??= newDivider();
      this.#list.insertBefore(this.#divider, first);
      this.#regroup(first);
    }
    if (oldNext && oldNext !== first) this.#regroup(oldNext);
  }

  /** Binary search: the first index whose id is not smaller than ``id``. */
  #index(id) {
    let low = 0;
    let high = this.#order.length;
    while (low < high) {
      const mid = (low + high) >> 1;
      if (compareIds(this.#order[mid], id) < 0) low = mid + 1;
      else high = mid;
    }
    return low;
  }

  #render(message) {
    const item = document.createElement("li");
    item.className = "msg";
    if (this.#isOwn(message)) item.classList.add("own");
    if (message.client_id) item.dataset.clientId = message.client_id;
    item.dataset.user = message.user;
    item.dataset.ts = String(message.ts);

    const meta = document.createElement("p");
    meta.className = "msg-meta";
    const author = nameElement(message.user);
    author.className = "msg-author";
    author.style.setProperty("--hue", String(hue(message.user)));
    const status = document.createElement("span");
    status.className = "msg-status";
    if (!message.id) status.append(statusText("Sending…"));
    meta.append(author, " ", timeElement(message.ts), " ", status);

    const body = document.createElement("p");
    body.className = "msg-text";
    body.dir = "auto"; // a right-to-left text reads right to left, inside its own paragraph
    const reactions = document.createElement("div");
    reactions.className = "msg-reactions";
    item.append(meta);
    if (message.reply_to && typeof message.reply_to === "object") item.append(this.#quote(message.reply_to));
    item.append(body, reactions, this.#actionBar(item));
    this.#showText(item, message.text, message.user);
    if (message.edited_ts) this.#markEdited(item, message.edited_ts);
    this.#showReactions(item, message.reactions);
    return item;
  }

  /** Reply, React, and on one's own messages Edit and Delete: shown on hover or focus (CSS). */
  #actionBar(item) {
    const bar = document.createElement("div");
    bar.className = "msg-actions";
    const withId = (action) => () => {
      if (item.dataset.id) action(item.dataset.id);
    };
    const reply = button("Reply", "Reply to this message", withId((id) => this.#actions.onReplyRequest(id)));
    const react = button("React", "Add a reaction", () => this.#togglePicker(item, react));
    react.setAttribute("aria-expanded", "false");
    // Edit and Delete only on the page's own messages (CSS); the server decides who may.
    const edit = button("Edit", "Edit this message", withId((id) => this.#actions.onEditRequest(id)));
    edit.classList.add("msg-edit", "own-only");
    const remove = button("Delete", "Delete this message for everyone", withId((id) => this.#onDeleteRequest(id)));
    remove.classList.add("msg-delete", "own-only");
    bar.append(reply, react, edit, remove);
    return bar;
  }

  /** Open the reaction picker under a message, or close it. */
  #togglePicker(item, opener) {
    const open = item.querySelector(".picker");
    this.#closePickers();
    if (open) {
      opener.focus();
      return;
    }
    const close = () => {
      box.remove();
      opener.setAttribute("aria-expanded", "false");
      opener.focus();
    };
    const box = picker(item.reactions, this.#me(), (emoji, on) => {
      if (item.dataset.id) this.#actions.onReact(item.dataset.id, emoji, on);
    }, close);
    opener.setAttribute("aria-expanded", "true");
    this.#keepingView(() => item.querySelector(".msg-reactions").after(box), true);
    box.querySelector("button").focus();
  }

  #closePickers() {
    for (const open of this.#list.querySelectorAll(".picker")) open.remove();
    for (const opener of this.#list.querySelectorAll('[aria-expanded="true"]')) opener.setAttribute("aria-expanded", "false");
  }

  #showReactions(item, reactions) {
    item.reactions = reactions && typeof reactions === "object" ? reactions : {};
    item.querySelector(".msg-reactions").replaceChildren(...chips(item.reactions, this.#me(), (emoji, on) => {
      if (item.dataset.id) this.#actions.onReact(item.dataset.id, emoji, on);
    }));
  }

  #markEdited(item, editedTs) {
    const ts = Number(editedTs) * 1000;
    item.dataset.editedTs = String(editedTs);
    let mark = item.querySelector(".msg-edited");
    if (!mark) {
      mark = document.createElement("span");
      mark.className = "msg-edited";
      mark.textContent = "(edited)";
      item.querySelector(".msg-text").after(mark);
    }
    mark.title = Number.isFinite(ts) && ts > 0 ? `Edited ${fullFormat.format(new Date(ts))}` : "Edited";
  }

  /** The quote a reply starts with: who and what it answers; pressing it shows the original. */
  #quote(replyTo) {
    const id = String(replyTo.id ?? "");
    if (replyTo.deleted || this.#deleted.has(id) || typeof replyTo.user !== "string") return deletedQuote(id);
    const quote = document.createElement("button");
    quote.type = "button";
    quote.className = "msg-quote";
    quote.dataset.replyTo = id;
    const text = String(replyTo.text ?? "");
    quote.setAttribute("aria-label", `In reply to ${replyTo.user}: ${text}. Show that message`);
    const author = nameElement(replyTo.user);
    author.className = "quote-author";
    const words = document.createElement("span");
    words.className = "quote-text";
    words.dir = "auto";
    words.textContent = text;
    quote.append(author, words);
    quote.addEventListener("click", () => this.#actions.onQuote(id));
    return quote;
  }

  /** The text of a message, with the reader's mentions marked (never in their own messages). */
  #showText(item, text, user) {
    const me = user === this.#me() ? null : this.#me();
    item.querySelector(".msg-text").replaceChildren(...textNodes(text, me));
    item.classList.toggle("mentions-me", mentions(text, me));
  }

  #markSent(item, ts) {
    item.dataset.state = "sent";
    item.querySelector(".msg-status").replaceChildren();
    if (ts) {
      item.dataset.ts = String(ts);
      item.querySelector("time").replaceWith(timeElement(ts));
    }
  }

  /** Consecutive messages of one author within minutes share one header. */
  #regroup(item) {
    const previous = item.previousElementSibling;
    const same = previous && previous.dataset.user === item.dataset.user &&
      Math.abs(Number(item.dataset.ts) - Number(previous.dataset.ts)) < GROUP_MS;
    item.classList.toggle("continued", Boolean(same));
  }

  /**
   * Change the list without moving what the reader looks at. ``follow`` (live changes,
   * which land at the bottom): stay at the bottom if the view was there. Otherwise keep
   * the first visible message still.
   */
  #keepingView(change, follow) {
    const s = this.#scroller;
    const wasAtBottom = this.atBottom();
    let anchor = null;
    let offset = 0;
    if (!follow) {
      // Older messages go in above: keep the first visible message where it is.
      const top = s.getBoundingClientRect().top;
      for (const item of this.#list.children) {
        const rect = item.getBoundingClientRect();
        if (rect.bottom > top) {
          anchor = item;
          offset = rect.top - top;
          break;
        }
      }
    }
    change();
    if (follow && wasAtBottom) {
      s.scrollTop = s.scrollHeight;
    } else if (anchor && anchor.isConnected) {
      s.scrollTop += anchor.getBoundingClientRect().top - s.getBoundingClientRect().top - offset;
    }
  }

  #setUnseen(count) {
    this.#unseen = count;
    this.#onUnseen(count);
  }
}

/** "New messages": a list item of its own, so a screen reader meets it among the messages. */
function newDivider() {
  const item = document.createElement("li");
  item.className = "new-divider";
  item.id = "new-divider";
  item.tabIndex = -1;
  const label = document.createElement("span");
  label.textContent = "New messages";
  item.append(label);
  return item;
}

/** A reply's quote once the message it answers is gone. */
function deletedQuote(id) {
  const quote = document.createElement("p");
  quote.className = "msg-quote deleted";
  quote.dataset.replyTo = id;
  quote.textContent = "deleted message";
  return quote;
}

function statusText(text) {
  const span = document.createElement("span");
  span.textContent = text;
  return span;
}

function button(text, label, onClick) {
  const element = document.createElement("button");
  element.type = "button";
  element.className = "link-button";
  element.textContent = text;
  element.setAttribute("aria-label", label);
  element.addEventListener("click", onClick);
  return element;
}
