// Writing in a room: the composer (count, sending, retrying, replying), the name form, reacting,
// and taking one's own message back.

import { $, NAME_KEY, announce, store } from "./page.js";
import { reactionName } from "./reactions.js";
import {
  MAX_TEXT, deleteMessage, nameProblem, newClientId, normaliseText, postMessage, setReaction, textLength,
} from "./send.js";
import { nameElement } from "./timeline.js";

const QUOTE_CHARS = 200; // a reply quotes the first line of the original, at most this long

/** What a reply quotes: the first line of the text, at most QUOTE_CHARS characters. */
export const quoteOf = (text) => [...text.split("\n")[0]].slice(0, QUOTE_CHARS).join("");

export class Composer {
  #page;
  #outbox = Promise.resolve(); // the page's last send: the next one waits for its answer
  replyTo = null; // {id, user, text}: the message the next one answers

  /** ``page``: the room page, whose name, room, timeline, typing and connect this uses. */
  constructor(page) {
    this.#page = page;
    this.wireComposer();
    this.wireNameForm();
  }

  // -- taking a message back --

  async requestDelete(id) {
    if (!window.confirm("Delete this message for everyone?")) return;
    const result = await deleteMessage(this.#page.room, id);
    if (result.ok) {
      this.#page.messageGone(id); // the stream's delete event follows, for everyone else too
      announce("Message deleted.");
      return;
    }
    this.showError(result.code === "forbidden" ? "Only the browser that sent a message can delete it." : result.text);
  }

  // -- reactions --

  async react(id, emoji, on) {
    if (!this.#page.name) return;
    const result = await setReaction(this.#page.room, id, emoji, on, this.#page.name);
    if (result.ok) {
      // The stream's reaction event brings the counts, for everyone.
      announce(on ? `Reacted with ${reactionName(emoji)}.` : `Removed your ${reactionName(emoji)} reaction.`);
      return;
    }
    if (result.code === "name_taken") {
      this.askName(true);
      $("#name-error").textContent = result.text;
      $("#name-input").focus();
      return;
    }
    if (result.code === "message_deleted") this.#page.messageGone(id);
    this.showError(result.code === "message_deleted" ? "That message was deleted." : result.text);
  }

  // -- replying --

  /** The next message answers the one with this id: say so above the box. */
  startReply(id) {
    const message = this.#page.timeline.message(id);
    if (!message) return;
    this.replyTo = { id, user: message.user, text: quoteOf(message.text) };
    $("#reply-label").replaceChildren("Replying to ", nameElement(message.user));
    $("#reply-bar").hidden = false;
    $("#composer-text").focus();
    announce(`Replying to ${message.user}. Escape cancels.`);
  }

  cancelReply(say = true) {
    if (!this.replyTo) return;
    this.replyTo = null;
    $("#reply-bar").hidden = true;
    $("#reply-label").replaceChildren();
    if (say) announce("Reply cancelled.");
  }

  /** A message went away: a reply being written to it cannot be sent. */
  replyGone(id) {
    if (this.replyTo?.id !== id) return;
    this.cancelReply(false);
    this.showError("The message you were replying to was deleted.");
  }

  // -- the name --

  askName(canCancel = false) {
    $("#composer").hidden = true;
    const form = $("#name-form");
    form.hidden = false;
    form.elements.name.value = this.#page.name ?? "";
    $("#name-cancel").hidden = !canCancel;
    $("#name-error").textContent = "";
    $("#name-button").hidden = true;
  }

  showComposer() {
    $("#name-form").hidden = true;
    $("#composer").hidden = false;
    $("#name-button").hidden = false;
    $("#name-label").textContent = this.#page.name;
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
      const changed = name !== this.#page.name;
      this.#page.name = name;
      store.set(NAME_KEY, name);
      this.showComposer();
      this.#page.timeline.refreshOwn();
      // Rejoin under the new name, resuming exactly after the last message shown.
      if (changed) this.#page.connect(this.#page.stream?.lastId ?? null);
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
      this.#page.typing.signalTyping();
    });
    input.addEventListener("keydown", (event) => {
      const plain = !event.shiftKey && !event.isComposing && !event.altKey && !event.ctrlKey && !event.metaKey;
      if (event.key === "Enter" && plain) {
        event.preventDefault();
        form.requestSubmit();
      } else if (event.key === "ArrowUp" && plain && !input.value) {
        // As in Slack: up in an empty box edits your last message.
        const id = this.#page.timeline.lastOwnId();
        if (id && this.#page.editor.start(id)) event.preventDefault();
      } else if (event.key === "Escape" && this.replyTo) {
        event.preventDefault();
        this.cancelReply();
      }
    });
    $("#reply-cancel").addEventListener("click", () => {
      this.cancelReply();
      input.focus();
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
    const message = { client_id: newClientId(), user: this.#page.name, text, ts: Date.now() };
    if (this.replyTo) message.reply_to = this.replyTo;
    this.cancelReply(false);
    this.#page.timeline.addPending(message);
    input.value = "";
    this.updateCount();
    this.#page.typing.sent(); // the next message's first key tells the room at once
    this.deliver(message);
  }

  /**
   * Send after the page's earlier messages are answered. Two POSTs in flight at once reach
   * ingest, and so Kafka, in either order: a quick "a" then "b" could land as "b", "a" for
   * everyone. One at a time, the second waits out the first's round trip (milliseconds).
   */
  deliver(message) {
    const turn = this.#outbox.then(() => this.#post(message));
    this.#outbox = turn.catch(() => {}); // a page error is reported by ``turn``; the next send still goes
    return turn;
  }

  async #post(message) {
    const { client_id: clientId, user, text } = message;
    const body = { user, text, client_id: clientId };
    if (message.reply_to) body.reply_to = message.reply_to.id;
    const result = await postMessage(this.#page.room, body);
    if (result.ok) {
      this.#page.timeline.confirm(clientId, result.message);
      if ($("#composer-error").dataset.kind !== "length") this.showError("");
      return;
    }
    this.showError(result.text, "send");
    if (result.retryable) {
      this.#page.timeline.fail(clientId, result.text, {
        retry: () => {
          if (this.#page.timeline.sending(clientId)) this.deliver(message);
          $("#composer-text").focus();
        },
        discard: () => {
          this.#page.timeline.discard(clientId);
          this.showError("");
          $("#composer-text").focus();
        },
      });
      return;
    }
    // Refused for good (too long, invalid): give the text back to fix it.
    this.#page.timeline.discard(clientId);
    const input = $("#composer-text");
    if (!input.value) {
      input.value = text;
      this.updateCount();
      // Still a reply, unless what it answered is what made it fail.
      if (message.reply_to && result.code !== "invalid_reply_to" && !this.replyTo) this.startReply(message.reply_to.id);
    }
    if (result.code === "invalid_reply_to") this.showError("The message you replied to was deleted: this one is not a reply now.");
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
