// Editing one's own message in place: the text becomes a box under the author's name;
// Enter saves (PATCH), Escape cancels, and the message shows "(edited)" from then on.

import { $, announce } from "./page.js";
import { MAX_TEXT, editMessage, normaliseText } from "./send.js";

export class MessageEditor {
  #page;
  #id = null; // the message being edited
  #form = null;

  /** ``page``: the room page, whose room and timeline this uses. */
  constructor(page) {
    this.#page = page;
  }

  get editing() {
    return this.#id;
  }

  /** Edit the message with this id (one of the page's own, stored). */
  start(id) {
    const item = this.#page.timeline.item(id);
    if (!item || item.dataset.state !== "sent" || !item.classList.contains("own")) return false;
    this.close();
    this.#id = id;
    const form = document.createElement("form");
    form.className = "msg-editor";
    form.noValidate = true;
    const label = document.createElement("label");
    label.className = "visually-hidden";
    label.htmlFor = "edit-text";
    label.textContent = "Edit your message";
    const box = document.createElement("textarea");
    box.id = "edit-text";
    box.rows = 1;
    box.value = item.querySelector(".msg-text").textContent;
    box.setAttribute("aria-describedby", "edit-hint edit-error");
    const hint = document.createElement("p");
    hint.className = "hint";
    hint.id = "edit-hint";
    hint.textContent = "Enter saves, Escape cancels.";
    const error = document.createElement("p");
    error.className = "form-error";
    error.id = "edit-error";
    error.setAttribute("aria-live", "polite");
    const save = document.createElement("button");
    save.type = "submit";
    save.className = "primary";
    save.textContent = "Save";
    const cancel = document.createElement("button");
    cancel.type = "button";
    cancel.className = "link-button";
    cancel.textContent = "Cancel";
    const row = document.createElement("p");
    row.className = "row";
    row.append(hint, cancel, save);
    form.append(label, box, error, row);
    this.#form = form;
    item.classList.add("editing");
    item.querySelector(".msg-text").after(form);

    const grow = () => {
      box.style.height = "auto";
      box.style.height = `${box.scrollHeight + 2}px`;
    };
    box.addEventListener("input", grow);
    box.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing && !event.altKey && !event.ctrlKey) {
        event.preventDefault();
        form.requestSubmit();
      } else if (event.key === "Escape") {
        event.preventDefault();
        this.cancel();
      }
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.save();
    });
    cancel.addEventListener("click", () => this.cancel());
    grow();
    box.focus();
    box.setSelectionRange(box.value.length, box.value.length);
    announce("Editing your message. Enter saves, Escape cancels.");
    return true;
  }

  cancel() {
    if (this.#id === null) return;
    this.close();
    announce("Edit cancelled.");
    $("#composer-text").focus();
  }

  /** Put the message back as it is shown (without a word). */
  close() {
    const item = this.#id === null ? null : this.#page.timeline.item(this.#id);
    item?.classList.remove("editing");
    this.#form?.remove();
    this.#form = null;
    this.#id = null;
  }

  async save() {
    const id = this.#id;
    const form = this.#form;
    const box = form.querySelector("textarea");
    const text = normaliseText(box.value);
    const showError = (words) => {
      form.querySelector(".form-error").textContent = words;
      box.focus();
    };
    if (!text) return showError("A message needs some text: to remove it, use Delete.");
    const length = [...text].length;
    if (length > MAX_TEXT) return showError(`Too long: a message is at most ${MAX_TEXT} characters, this one has ${length}.`);
    const item = this.#page.timeline.item(id);
    if (!item) return this.close();
    if (text === item.querySelector(".msg-text").textContent) return this.cancel(); // nothing changed
    form.querySelector("button[type=submit]").disabled = true;
    const result = await editMessage(this.#page.room, id, text);
    if (this.#form !== form) return; // closed meanwhile (the message was deleted)
    form.querySelector("button[type=submit]").disabled = false;
    if (result.ok) {
      // The stream's edit event follows, for everyone else too.
      this.#page.timeline.edit(id, result.message.text ?? text, result.message.edited_ts ?? Date.now() / 1000);
      this.close();
      announce("Message edited.");
      $("#composer-text").focus();
      return;
    }
    if (result.code === "message_deleted" || result.code === "message_not_found") {
      this.close();
      this.#page.timeline.remove(id);
      this.#page.composer.showError("That message was deleted.");
      $("#composer-text").focus();
      return;
    }
    showError(result.code === "forbidden" ? "Only the browser that sent a message can edit it." : result.text);
  }

  /** A message went away (deleted): stop editing it. */
  gone(id) {
    if (id === this.#id) this.close();
  }
}
