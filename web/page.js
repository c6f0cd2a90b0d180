// What the lobby and a room share: element lookup, what this device remembers (the name,
// the recent rooms), the screen-reader announcer and the lobby's request to focus the box.

export const ROOM_PATTERN = /^[a-z0-9_-]{1,64}$/;
export const NAME_KEY = "chatroom.name";
export const ROOMS_KEY = "chatroom.rooms";
export const $ = (selector) => document.querySelector(selector);

export const store = {
  /** The stored value, or ``fallback`` when it is missing, unreadable or of another type. */
  get(key, fallback) {
    try {
      const value = JSON.parse(localStorage.getItem(key));
      return value !== null && Array.isArray(value) === Array.isArray(fallback) && typeof value === typeof fallback
        ? value : fallback;
    } catch {
      return fallback;
    }
  },
  set(key, value) {
    try {
      localStorage.setItem(key, JSON.stringify(value));
    } catch {
      // Storage may be unavailable (private mode, quota): the page still works for this visit.
    }
  },
};

// The lobby's Join asks the room page to put the cursor in the message box.
const FOCUS_KEY = "chatroom.focus";

export function requestFocus() {
  try {
    sessionStorage.setItem(FOCUS_KEY, "composer");
  } catch {
    // Without storage the room page just opens without focusing the box.
  }
}

export function takeFocusRequest() {
  try {
    const wanted = sessionStorage.getItem(FOCUS_KEY) === "composer";
    sessionStorage.removeItem(FOCUS_KEY);
    return wanted;
  } catch {
    return false;
  }
}

export function announce(text) {
  const announcer = $("#announcer");
  announcer.textContent = "";
  // A fresh text node each time, so that repeating the same words is announced again.
  setTimeout(() => { announcer.textContent = text; }, 50);
}
