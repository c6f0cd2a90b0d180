// Writing in a room: the composer (count, sending, retrying), the name form, and taking one's
// own message back.

import { $, NAME_KEY, announce, store } from "./page.js";
import { MAX_TEXT, deleteMessage, nameProblem, newClientId, normaliseText, postMessage, textLength } from "./send.js";

export class Composer {
  #page;

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
      this.#page.timeline.remove(id); // the stream's delete event follows, for everyone else too
      announce("Message deleted.");
      return;
    }
    this.showError(result.code === "forbidden" ? "Only the browser that sent a message can delete it." : result.text);
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
    const message = { client_id: newClientId(), user: this.#page.name, text, ts: Date.now() };
    this.#page.timeline.addPending(message);
    input.value = "";
    this.updateCount();
    this.#page.typing.sent(); // the next message's first key tells the room at once
    this.deliver(message);
  }

  async deliver(message) {
    const { client_id: clientId, user, text } = message;
    const result = await postMessage(this.#page.room, { user, text, client_id: clientId });
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
