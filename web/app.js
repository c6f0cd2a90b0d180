// The chat page: join a room, read its history and live messages, send.
const $ = (selector) => document.querySelector(selector);
const seen = new Set();

function show(message) {
  if (seen.has(message.id)) return;
  seen.add(message.id);
  const item = document.createElement("li");
  const user = document.createElement("span");
  user.className = "user";
  user.textContent = message.user;
  item.append(user, document.createTextNode(message.text));
  $("#messages").append(item);
}

function join(room, user) {
  const events = new EventSource(`/stream/rooms/${room}?user=${encodeURIComponent(user)}`);
  events.addEventListener("message", (event) => show(JSON.parse(event.data)));
  events.addEventListener("reset", () => { seen.clear(); $("#messages").replaceChildren(); });
  events.onopen = () => { $("#status").textContent = "connected"; };
  events.onerror = () => { $("#status").textContent = "reconnecting"; };
  $("#send").hidden = false;
  $("#send").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = event.target.elements.text;
    const response = await fetch(`/api/rooms/${room}/messages`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ user, text: input.value, client_id: crypto.randomUUID() }),
    });
    const body = await response.json();
    if (response.ok) input.value = "";
    else $("#status").textContent = body.error.message;
  });
}

$("#join").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.target.elements;
  join(form.room.value, form.user.value.trim());
  event.target.hidden = true;
});
