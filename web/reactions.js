// Reactions: the closed set of emoji the server accepts, the chips under a message (one per
// emoji, with its count; pressed when one of them is the reader's) and the picker.

/** The twelve the server accepts, in the picker's order, with the words a screen reader says. */
export const REACTIONS = [
  ["👍", "thumbs up"],
  ["👎", "thumbs down"],
  ["❤️", "heart"],
  ["😂", "laughing"],
  ["🎉", "party"],
  ["😮", "surprised"],
  ["😢", "sad"],
  ["🙏", "thank you"],
  ["✅", "done"],
  ["👀", "looking"],
  ["🔥", "fire"],
  ["🚀", "rocket"],
];
const NAMES = new Map(REACTIONS);

export const reactionName = (emoji) => NAMES.get(emoji) ?? emoji;

/**
 * A message's reactions as the server gives them, only the known emoji with a count,
 * in the picker's order: [[emoji, {count, users}]].
 * @param {unknown} reactions  {"👍": {"count": 2, "users": ["Ann", "Bob"]}, ...}
 */
export function knownReactions(reactions) {
  if (!reactions || typeof reactions !== "object") return [];
  return REACTIONS.flatMap(([emoji]) => {
    const entry = reactions[emoji];
    const count = Number(entry?.count);
    if (!Number.isInteger(count) || count <= 0) return [];
    const users = Array.isArray(entry.users) ? entry.users.filter((u) => typeof u === "string") : [];
    return [[emoji, { count, users }]];
  });
}

/** Whether ``me`` is among the people who reacted with ``emoji``. */
export const reacted = (reactions, emoji, me) =>
  Boolean(me) && knownReactions(reactions).some(([e, { users }]) => e === emoji && users.includes(me));

/**
 * The chips under a message: "👍 2", pressed when the reader is among them; a click toggles.
 * @param {object} reactions
 * @param {string | null} me
 * @param {(emoji: string, on: boolean) => void} onToggle
 */
export function chips(reactions, me, onToggle) {
  return knownReactions(reactions).map(([emoji, { count, users }]) => {
    const mine = Boolean(me) && users.includes(me);
    const chip = document.createElement("button");
    chip.type = "button";
    chip.className = "chip";
    chip.dataset.emoji = emoji;
    chip.setAttribute("aria-pressed", String(mine));
    chip.setAttribute("aria-label", `${reactionName(emoji)}: ${count}`);
    const others = count - users.length;
    chip.title = users.join(", ") + (others > 0 ? ` and ${others} more` : "");
    const symbol = document.createElement("span");
    symbol.setAttribute("aria-hidden", "true");
    symbol.textContent = emoji;
    chip.append(symbol, ` ${count}`);
    chip.addEventListener("click", () => onToggle(emoji, !mine));
    return chip;
  });
}

/**
 * The picker: the twelve emoji as buttons, each pressed when the reader already reacted
 * with it. Escape closes it (``onClose``), and so does picking one.
 */
export function picker(reactions, me, onPick, onClose) {
  const box = document.createElement("div");
  box.className = "picker";
  box.setAttribute("role", "group");
  box.setAttribute("aria-label", "Pick a reaction");
  for (const [emoji, name] of REACTIONS) {
    const mine = reacted(reactions, emoji, me);
    const choice = document.createElement("button");
    choice.type = "button";
    choice.textContent = emoji;
    choice.dataset.emoji = emoji;
    choice.setAttribute("aria-label", name);
    choice.setAttribute("aria-pressed", String(mine));
    choice.addEventListener("click", () => {
      onClose();
      onPick(emoji, !mine);
    });
    box.append(choice);
  }
  box.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.stopPropagation();
      onClose();
    }
  });
  return box;
}
