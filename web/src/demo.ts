// The live demo page (`/demo`): a chat with the demo bot beside an iframe showing a small sample
// app. The bot's `iframeCommands` run in the iframe (navigate, click, type, highlight, scroll,
// wait, select), its suggestions become buttons, its lead form is shown when it asks, and the
// visitor's clicks in the app go back as `iframe_event`s. Native session dialect
// (`spec/native.md`), resumed by seq after every reconnect.

import { el, formatTime } from "./dom.ts";

interface Command {
  action: string;
  url?: string;
  selector?: string;
  text?: string;
  value?: string;
  timeoutMs?: number;
}

const log = document.getElementById("log") as HTMLOListElement;
const suggestions = document.getElementById("suggestions") as HTMLElement;
const typing = document.getElementById("typing") as HTMLElement;
const banner = document.getElementById("banner") as HTMLElement;
const form = document.getElementById("composer") as HTMLFormElement;
const input = document.getElementById("message") as HTMLInputElement;
const frame = document.getElementById("app") as HTMLIFrameElement;
const key = new URLSearchParams(location.search).get("key") ?? document.querySelector<HTMLMetaElement>("meta[name='switchboard-key']")?.content ?? "";

let socket: WebSocket | undefined;
let session: { sessionId: string; token: string } | undefined;
let lastSeq = 0;
let attempts = 0;
let commands: Promise<void> = Promise.resolve();
const outbox = new Map<string, string>();

function line(text: string, who: "visitor" | "agent" | "note", meta = ""): HTMLElement {
  const item = el("li", { class: who }, text, ...(meta ? [el("span", { class: "meta" }, meta)] : []));
  log.append(item);
  log.scrollTop = log.scrollHeight;
  return item;
}

function send(type: string, payload: unknown): boolean {
  if (socket?.readyState !== WebSocket.OPEN) return false;
  socket.send(JSON.stringify({ type, payload }));
  return true;
}

function say(text: string): void {
  const clientMessageId = `demo-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  outbox.set(clientMessageId, text);
  const item = line(text, "visitor", "Sending…");
  item.dataset.id = clientMessageId;
  send("visitor_message", { text, clientMessageId });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function appDocument(): Document | null {
  return frame.contentDocument;
}

async function find(selector: string, timeoutMs = 3000): Promise<HTMLElement | null> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const found = appDocument()?.querySelector<HTMLElement>(selector);
    if (found) return found;
    if (Date.now() > until) return null;
    await sleep(50);
  }
}

async function run(command: Command): Promise<void> {
  const selector = command.selector ?? "";
  switch (command.action) {
    case "navigate": {
      const loaded = new Promise((resolve) => frame.addEventListener("load", resolve, { once: true }));
      frame.src = command.url ?? "/demo/app";
      await Promise.race([loaded, sleep(5000)]);
      return;
    }
    case "wait":
      await find(selector, command.timeoutMs ?? 3000);
      return;
    case "click":
      (await find(selector))?.click();
      return;
    case "type": {
      const target = (await find(selector)) as HTMLInputElement | null;
      if (!target) return;
      target.focus();
      target.value = "";
      for (const char of command.text ?? "") {
        target.value += char;
        target.dispatchEvent(new Event("input", { bubbles: true }));
        await sleep(30);
      }
      return;
    }
    case "select": {
      const target = (await find(selector)) as HTMLSelectElement | null;
      if (!target) return;
      target.value = command.value ?? "";
      target.dispatchEvent(new Event("change", { bubbles: true }));
      return;
    }
    case "scroll":
      (await find(selector))?.scrollIntoView({ behavior: "smooth", block: "center" });
      return;
    case "highlight": {
      const target = await find(selector);
      if (!target) return;
      for (const old of appDocument()?.querySelectorAll("[data-highlighted]") ?? []) old.removeAttribute("data-highlighted");
      target.setAttribute("data-highlighted", "true");
      target.style.outline = "3px solid #f9ab00";
      target.style.outlineOffset = "3px";
      return;
    }
    default:
  }
}

function showSuggestions(list: string[]): void {
  suggestions.replaceChildren(
    ...list.map((text) => {
      const button = el("button", { type: "button" }, text);
      button.addEventListener("click", () => say(text));
      return button;
    }),
  );
}

function showLeadForm(fields: string[], cta: { text?: string; url?: string }): void {
  const leadForm = el("form", { class: "lead", "aria-label": "Your details" });
  for (const field of fields) {
    const id = `lead-${field}`;
    leadForm.append(
      el("label", { for: id }, field[0].toUpperCase() + field.slice(1)),
      el("input", { id, name: field, type: field === "email" ? "email" : "text", required: "" }),
    );
  }
  leadForm.append(el("button", { type: "submit" }, cta.text ?? "Send"));
  leadForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(leadForm);
    const details = fields.map((field) => `${field}: ${data.get(field)}`).join(", ");
    say(`My details — ${details}`);
    leadForm.replaceWith(el("p", { class: "note" }, "Thanks! We'll be in touch."));
    if (cta.url) commands = commands.then(() => run({ action: "navigate", url: cta.url }));
  });
  log.append(el("li", { class: "form" }, leadForm));
  log.scrollTop = log.scrollHeight;
}

function received(data: string): void {
  let frame: { type?: string; payload?: any };
  try {
    frame = JSON.parse(data);
  } catch {
    return;
  }
  const payload = frame.payload ?? {};
  if (typeof payload.seq === "number") {
    if (payload.seq <= lastSeq && frame.type === "agent_response") return;
    lastSeq = Math.max(lastSeq, payload.seq);
  }
  switch (frame.type) {
    case "agent_response": {
      typing.textContent = "";
      line(payload.text ?? "", "agent", payload.agentId && payload.agentId !== "demo" ? `${payload.agentId}` : "Demo assistant");
      showSuggestions(payload.suggestions ?? []);
      for (const command of (payload.iframeCommands ?? []) as Command[]) {
        commands = commands.then(() => run(command)).catch(() => {});
      }
      return;
    }
    case "typing_indicator":
      typing.textContent = payload.isTyping ? "The assistant is typing…" : "";
      return;
    case "lead_form":
      showLeadForm(payload.fields ?? [], payload.cta ?? {});
      return;
    case "ack": {
      outbox.delete(payload.clientMessageId);
      const item = log.querySelector<HTMLElement>(`[data-id="${payload.clientMessageId}"] .meta`);
      if (item) item.textContent = `Sent · ${formatTime(Date.now())}`;
      return;
    }
    case "error":
      line(`${payload.message ?? payload.code}`, "note");
      return;
    default:
  }
}

async function startSession(): Promise<void> {
  const response = await fetch("/api/v1/session", {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({ agentId: "demo" }),
  });
  if (!response.ok) throw new Error(`the demo session could not start (${response.status})`);
  session = await response.json();
  document.body.dataset.session = session?.sessionId ?? "";
}

function connect(): void {
  if (!session) return;
  const url = `${location.origin.replace(/^http/, "ws")}/ws/session/${session.sessionId}?token=${encodeURIComponent(session.token)}&lastSeq=${lastSeq}`;
  const current = new WebSocket(url);
  socket = current;
  current.onopen = () => {
    attempts = 0;
    banner.hidden = true;
    // Whatever was said while offline goes out again under the same id (stored once).
    for (const [clientMessageId, text] of outbox) send("visitor_message", { text, clientMessageId });
  };
  current.onmessage = (event) => received(String(event.data));
  current.onclose = (event) => {
    if (socket !== current) return;
    if (event.code === 4001 || event.code === 4004 || event.code === 1000) {
      banner.hidden = false;
      banner.textContent = "This demo session has ended. Reload the page to start another.";
      return;
    }
    banner.hidden = false;
    banner.textContent = "Reconnecting…";
    attempts += 1;
    setTimeout(connect, Math.min(10_000, 300 * 2 ** attempts) * (0.5 + Math.random() / 2));
  };
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = input.value.trim();
  if (!text) return;
  input.value = "";
  say(text);
});
input.addEventListener("input", () => send("typing", { isTyping: input.value.trim() !== "" }));
setInterval(() => send("heartbeat", {}), 30_000);

// The visitor's own clicks in the sample app are reported for analytics.
frame.addEventListener("load", () => {
  appDocument()?.addEventListener("click", (event) => {
    if (!event.isTrusted) return;
    const target = (event.target as HTMLElement | null)?.closest<HTMLElement>("[data-testid],a,button");
    if (!target) return;
    const testId = target.getAttribute("data-testid");
    send("iframe_event", {
      event: "click",
      selector: testId ? `[data-testid='${testId}']` : target.tagName.toLowerCase(),
      url: frame.contentWindow?.location.pathname ?? "",
    });
  });
});

if (!key) {
  line("This server has no demo workspace key to offer: open /demo?key=YOUR_PUBLISHABLE_KEY.", "note");
} else {
  startSession()
    .then(() => {
      connect();
      line("Ask me to show you around — try a suggestion below.", "note");
      showSuggestions(["Show me the dashboard", "Create a deal", "Tell me about pricing"]);
    })
    .catch((error) => line(String((error as Error).message), "note"));
}
