// Posting a message to ingest, and what a refusal means for a person.

export const MAX_TEXT = 4000;
export const MAX_NAME = 32;
const TIMEOUT_MS = 15000;
const SESSION_TIMEOUT_MS = 3000; // the room opens without a session rather than wait longer

/**
 * The text as ingest will store it: line breaks normalised, trimmed.
 * @param {string} text
 * @returns {string}
 */
export const normaliseText = (text) => text.replace(/\r\n?/g, "\n").trim();

/**
 * Length in characters as the server counts them (code points, not UTF-16 units).
 * @param {string} text
 * @returns {number}
 */
export const textLength = (text) => [...normaliseText(text)].length;

/**
 * Why a name cannot be used, or "" if it can (the server's rule: 1 to 32 printable characters).
 * @param {string} name
 * @returns {string}
 */
export const nameProblem = (name) => {
  const trimmed = name.trim();
  if (!trimmed) return "Please enter a name.";
  if ([...trimmed].length > MAX_NAME) return `A name is at most ${MAX_NAME} characters.`;
  if (/[\p{C}\p{Z}]/u.test(trimmed.replaceAll(" ", ""))) return "A name can only hold printable characters and spaces.";
  return "";
};

/**
 * A fresh id for one message; a retry reuses it, so the room stores the message once.
 * @returns {string}
 */
export const newClientId = () => {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return "web-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
};

/**
 * @typedef {{ok: true, message: object}} Sent
 * @typedef {{ok: false, status: number, code: string, text: string, retryable: boolean, retryAfter: number}} Refused
 */

/**
 * Ask for the session cookie (HttpOnly, so this page never sees it). While the page is
 * connected, its session holds the page's name in the room: others cannot post under it.
 * Never throws: without a session the name is simply not held.
 * @returns {Promise<void>}
 */
export async function startSession() {
  try {
    await fetch("/api/session", { method: "POST", signal: AbortSignal.timeout(SESSION_TIMEOUT_MS) });
  } catch {
    // the room works without it
  }
}

/**
 * POST one message. Never throws: a failure comes back as a plain-words explanation.
 * @param {string} room
 * @param {{user: string, text: string, client_id: string, reply_to?: string}} body
 * @returns {Promise<Sent | Refused>}
 */
export async function postMessage(room, body) {
  let response;
  try {
    response = await fetch(`/api/rooms/${encodeURIComponent(room)}/messages`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
  } catch {
    return refused(0, "network", "Could not reach the chat server. Check your connection, then retry.", 0);
  }
  const payload = await response.json().catch(() => null);
  if (response.status === 201 && payload && payload.id !== undefined) return { ok: true, message: payload };
  const retryAfter = Number.parseInt(response.headers.get("Retry-After") ?? "", 10) || 0;
  const error = payload?.error ?? {};
  return refused(response.status, error.code ?? "unknown", explain(response.status, error.message, retryAfter), retryAfter);
}

/**
 * Take back a message this page's session sent. Never throws.
 * @param {string} room
 * @param {string} id
 * @returns {Promise<{ok: true} | Refused>}
 */
export async function deleteMessage(room, id) {
  const result = await request("DELETE", messagePath(room, id), null, "The message was not deleted");
  return result.ok ? { ok: true } : result;
}

/**
 * Change the text of a message this page's session sent. Never throws.
 * @param {string} room
 * @param {string} id
 * @param {string} text
 * @returns {Promise<{ok: true, message: {id: string, text: string, edited_ts: number}} | Refused>}
 */
export async function editMessage(room, id, text) {
  const result = await request("PATCH", messagePath(room, id), { text }, "The edit was refused");
  return result.ok ? { ok: true, message: result.payload ?? { id, text } } : result;
}

/**
 * Add (``on``) or take back the reader's reaction to a message. Never throws.
 * @param {string} room
 * @param {string} id
 * @param {string} emoji  one of REACTIONS
 * @param {boolean} on
 * @param {string} user
 * @returns {Promise<{ok: true} | Refused>}
 */
export async function setReaction(room, id, emoji, on, user) {
  const path = `${messagePath(room, id)}/reactions/${encodeURIComponent(emoji)}`;
  const result = await request(on ? "PUT" : "DELETE", path, { user }, "The reaction was refused");
  return result.ok ? { ok: true } : result;
}

const messagePath = (room, id) => `/api/rooms/${encodeURIComponent(room)}/messages/${encodeURIComponent(id)}`;

/** One request about a message; a 2xx is ``{ok: true, payload}``, anything else a Refused. */
async function request(method, path, body, refusal) {
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: { Accept: "application/json", ...(body ? { "Content-Type": "application/json" } : {}) },
      body: body ? JSON.stringify(body) : undefined,
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
  } catch {
    return refused(0, "network", "Could not reach the chat server. Check your connection, then retry.", 0);
  }
  const payload = response.status === 204 ? null : await response.json().catch(() => null);
  if (response.ok) return { ok: true, payload };
  const retryAfter = Number.parseInt(response.headers.get("Retry-After") ?? "", 10) || 0;
  const error = payload?.error ?? {};
  const text = explain(response.status, error.message, retryAfter).replace(/^The message was refused/, refusal);
  return refused(response.status, error.code ?? "unknown", text, retryAfter);
}

function refused(status, code, text, retryAfter) {
  const retryable = status === 0 || status === 408 || status === 429 || status >= 500;
  return { ok: false, status, code, text, retryable, retryAfter };
}

function explain(status, serverText, retryAfter) {
  if (serverText) return serverText;
  if (status === 413) return "This message is too large to send.";
  if (status === 429) return `Too many messages; wait ${retryAfter || "a few"} s before sending again.`;
  if (status >= 500) return "The chat server is unavailable right now. Retry in a moment.";
  return `The message was refused (error ${status}).`;
}

/**
 * Tell the room this name is typing. Fire and forget: the server allows one every 2 s per
 * name (more get 429), and a lost signal only means the indicator shows a little later.
 * @param {string} room
 * @param {string} user
 */
export function sendTyping(room, user) {
  fetch(`/api/rooms/${encodeURIComponent(room)}/typing`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify({ user }),
    signal: AbortSignal.timeout(TIMEOUT_MS),
  }).catch(() => {});
}
