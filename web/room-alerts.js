// Telling the reader about messages while the page is in the background: counts in the tab's
// title, and desktop notifications of mentions (asked for from a button, never on load).

import { $ } from "./page.js";
import { isolated } from "./timeline.js";

export class Alerts {
  unread = 0; // messages that arrived while the page was hidden, mentions apart
  unreadMentions = 0;
  #room;

  constructor(room) {
    this.#room = room;
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) this.showUnread(0, 0);
    });
    this.wireNotifications();
  }

  /** A message from someone else arrived while the page is hidden. */
  arrived(message, mentionsMe) {
    if (mentionsMe) {
      this.showUnread(this.unread, this.unreadMentions + 1);
      this.notify(message);
    } else {
      this.showUnread(this.unread + 1, this.unreadMentions);
    }
  }

  /** Unread messages in the tab's title while the page is in the background, mentions
   * of the reader counted apart: "(@1) (3) #room · Chatroom". */
  showUnread(count, mentionCount) {
    this.unread = count;
    this.unreadMentions = mentionCount;
    const marks = (mentionCount ? `(@${mentionCount}) ` : "") + (count ? `(${count}) ` : "");
    document.title = `${marks}#${this.#room} · Chatroom`;
  }

  wireNotifications() {
    const button = $("#notify-button");
    const update = () => {
      button.hidden = !("Notification" in window) || Notification.permission !== "default";
    };
    button.addEventListener("click", async () => {
      try {
        await Notification.requestPermission();
      } catch {
        // an old browser without the promise form: nothing more to ask
      }
      update();
      $("#composer-text").focus();
    });
    update();
  }

  notify(message) {
    if (!("Notification" in window) || Notification.permission !== "granted") return;
    try {
      const note = new Notification(`${isolated(message.user)} mentioned you in #${this.#room}`, {
        body: message.text.slice(0, 200),
        tag: `chatroom-${this.#room}`,
      });
      note.addEventListener("click", () => window.focus());
    } catch {
      // some browsers only notify from a service worker: the title still counts it
    }
  }
}
