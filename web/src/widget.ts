// The chat widget: one script tag, `<script src="https://HOST/widget.js" data-inbox="ID">`.
// A launcher button opens a conversation panel built on the SDK's VisitorClient: messages with
// sent, delivered and read marks, typing both ways, agents joining, file upload, and an offline
// queue with a visible reconnecting state. Everything lives in a shadow root, so the host
// page's styles and ours never meet.

import { VisitorClient, type Message } from "../../sdk/typescript/src/visitor.ts";
import { attachmentLink, el, formatTime } from "./dom.ts";

const STYLE = `
:host{all:initial;font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1a1a1a}
*{box-sizing:border-box}
.launcher{position:fixed;right:20px;bottom:20px;width:56px;height:56px;border-radius:50%;border:0;background:#0b57d0;color:#fff;display:flex;align-items:center;justify-content:center;cursor:pointer;box-shadow:0 4px 14px rgba(0,0,0,.25)}
.launcher:focus-visible,button:focus-visible,textarea:focus-visible,label.attach:focus-within{outline:3px solid #f9ab00;outline-offset:2px}
.panel{position:fixed;right:20px;bottom:88px;width:360px;max-width:calc(100vw - 40px);height:520px;max-height:calc(100vh - 110px);display:flex;flex-direction:column;background:#fff;border-radius:12px;box-shadow:0 8px 30px rgba(0,0,0,.25);overflow:hidden}
.panel[hidden]{display:none}
header{background:#0b57d0;color:#fff;padding:12px 14px;display:flex;align-items:center;gap:8px}
header h2{font-size:16px;margin:0;flex:1}
.status{font-size:12px}
.close{background:none;border:0;color:#fff;font-size:20px;cursor:pointer}
.banner{background:#fef7e0;color:#5c4400;padding:6px 14px;font-size:13px}
.banner[hidden]{display:none}
ol{list-style:none;margin:0;padding:12px;flex:1;overflow-y:auto;display:flex;flex-direction:column;gap:8px}
li{max-width:80%;padding:8px 10px;border-radius:10px;background:#f1f3f4;white-space:pre-wrap;word-wrap:break-word}
li.mine{align-self:flex-end;background:#0b57d0;color:#fff}
li.note{align-self:center;background:none;color:#444;font-size:12px}
.meta{display:block;font-size:11px;opacity:.85;margin-top:2px}
li a{color:inherit}
.typing{min-height:20px;padding:0 14px;font-size:12px;color:#444}
form{display:flex;gap:6px;padding:10px;border-top:1px solid #ddd;align-items:flex-end}
textarea{flex:1;resize:none;height:38px;padding:8px;border:1px solid #767676;border-radius:8px;font:inherit}
.send{background:#0b57d0;color:#fff;border:0;border-radius:8px;padding:9px 12px;cursor:pointer;font:inherit}
label.attach{cursor:pointer;padding:8px;border-radius:8px;color:#0b57d0;display:flex}
.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}
`;

const CHAT_ICON = '<svg aria-hidden="true" width="26" height="26" viewBox="0 0 24 24" fill="currentColor"><path d="M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H8l-4 4V6a2 2 0 0 1 2-2z"/></svg>';
const CLIP_ICON = '<svg aria-hidden="true" width="20" height="20" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2"><path d="M21 12l-8.5 8.5a5 5 0 0 1-7-7L14 5a3.5 3.5 0 0 1 5 5l-8.5 8.5a2 2 0 0 1-3-3L15 8"/></svg>';

function icon(svg: string): HTMLElement {
  const span = el("span", { "aria-hidden": "true" });
  span.innerHTML = svg;
  return span;
}

const MARKS: Record<string, string> = {
  pending: "Sending…",
  sent: "Sent",
  delivered: "Delivered",
  read: "Read",
  failed: "Not sent",
};

function boot(): void {
  const script = document.currentScript as HTMLScriptElement | null;
  const inbox = script?.dataset.inbox;
  if (!script || !inbox) {
    console.error("switchboard widget: add data-inbox=\"INBOX_IDENTIFIER\" to the script tag");
    return;
  }
  const baseUrl = script.dataset.server ?? new URL(script.src).origin;
  const host = el("div", { id: "switchboard-widget" });
  document.body.append(host);
  const root = host.attachShadow({ mode: "open" });
  root.append(el("style", {}, STYLE));

  const launcher = el("button", {
    class: "launcher",
    type: "button",
    "aria-label": "Open chat",
    "aria-expanded": "false",
    "aria-controls": "sb-panel",
  });
  launcher.innerHTML = CHAT_ICON;
  const status = el("span", { class: "status" }, "Connecting…");
  const close = el("button", { class: "close", type: "button", "aria-label": "Close chat" }, "×");
  const banner = el("div", { class: "banner", role: "status", hidden: "" }, "Reconnecting… messages you send now go out when the connection is back.");
  const log = el("ol", { role: "log", "aria-live": "polite", "aria-label": "Messages" });
  const typing = el("div", { class: "typing", "aria-live": "polite" });
  const input = el("textarea", { id: "sb-input", rows: "1", placeholder: "Write a message…" }) as HTMLTextAreaElement;
  const file = el("input", { type: "file", class: "sr", id: "sb-file" }) as HTMLInputElement;
  const form = el(
    "form",
    { "aria-label": "Send a message" },
    el("label", { for: "sb-input", class: "sr" }, "Message"),
    input,
    el("label", { class: "attach", for: "sb-file", title: "Attach a file" }, icon(CLIP_ICON), el("span", { class: "sr" }, "Attach a file"), file),
    el("button", { class: "send", type: "submit" }, "Send"),
  );
  const panel = el(
    "section",
    { class: "panel", id: "sb-panel", role: "dialog", "aria-label": "Chat", hidden: "" },
    el("header", {}, el("h2", {}, "Chat with us"), status, close),
    banner,
    log,
    typing,
    form,
  );
  root.append(launcher, panel);

  const storageKey = `switchboard:${inbox}`;
  const client = new VisitorClient({
    baseUrl,
    inboxIdentifier: inbox,
    visitorToken: localStorage.getItem(storageKey) ?? undefined,
  });
  const items = new Map<string, HTMLLIElement>();
  // Human agents who wrote in this conversation, by id: their name, and whether they are here.
  const agents = new Map<string, { name: string; here: boolean }>();
  let open = false;

  const setOpen = (value: boolean) => {
    open = value;
    panel.hidden = !value;
    launcher.setAttribute("aria-expanded", String(value));
    launcher.setAttribute("aria-label", value ? "Close chat" : "Open chat");
    if (value) {
      input.focus();
      void markRead();
    } else {
      launcher.focus();
    }
  };
  launcher.addEventListener("click", () => setOpen(!open));
  close.addEventListener("click", () => setOpen(false));
  panel.addEventListener("keydown", (event) => {
    if ((event as KeyboardEvent).key === "Escape") setOpen(false);
  });

  const note = (text: string) => {
    log.append(el("li", { class: "note" }, text));
    log.scrollTop = log.scrollHeight;
  };

  /** Shows a message once (keyed by echo id for the visitor's own, else by id). */
  const show = (message: Message, mark?: string) => {
    const mine = message.message_type === 0;
    const key = (mine && message.echo_id) || `id:${message.id}`;
    let item = items.get(key) ?? items.get(`id:${message.id}`);
    const sender = message.sender;
    if (!mine && sender?.type === "user" && sender.name) {
      const id = String(sender.id);
      if (!agents.get(id)?.here) note(`${sender.name} joined the conversation`);
      agents.set(id, { name: sender.name, here: true });
    }
    if (!item) {
      item = el("li", { class: mine ? "mine" : "theirs" }) as HTMLLIElement;
      log.append(item);
      log.scrollTop = log.scrollHeight;
    }
    items.set(key, item);
    if (message.id) items.set(`id:${message.id}`, item);
    // Marks only move forward (an answer can arrive after the receipt it led to).
    const next = mark ?? String(message.status ?? "sent");
    const rank = (status?: string) => ["failed", "pending", "sent", "delivered", "read"].indexOf(status ?? "");
    if (rank(next) >= rank(item.dataset.status) || next === "failed") item.dataset.status = next;
    const attachments = (message.attachments as { file_name?: string; data_url?: string }[] | undefined) ?? [];
    const who = mine ? "You" : (sender?.name ?? "Support");
    item.replaceChildren(
      message.content ? String(message.content) : "",
      ...attachments.map((a) => attachmentLink(a.file_name ?? "file", () => client.chatDownload(String(a.data_url)))),
      el("span", { class: "meta" }, `${who} · ${formatTime(message.created_at)}${mine ? ` · ${MARKS[item.dataset.status] ?? item.dataset.status}` : ""}`),
    );
  };

  const markRead = async () => {
    if (!open || document.visibilityState === "hidden") return;
    try {
      await client.chatRead();
    } catch {
      // Offline: read again on the next message or reconnect.
    }
  };

  client.on("connection", (state) => {
    banner.hidden = state === "connected";
  });
  client.on("initialized", ({ account, messages }) => {
    if (client.visitorToken) localStorage.setItem(storageKey, client.visitorToken);
    status.textContent = account.status === "online" ? "● We're online" : "○ We'll reply soon";
    for (const message of messages) show(message);
    void markRead();
  });
  client.on("account.status_updated", (state) => {
    status.textContent = state === "online" ? "● We're online" : "○ We'll reply soon";
  });
  client.on("chat.message_received", ({ message }) => {
    show(message);
    if (message.message_type !== 0) {
      typing.textContent = "";
      void markRead();
    }
  });
  client.on("chat.message_updated", ({ message }) => show(message));
  client.on("chat.agent_typing", ({ isTyping, agent }) => {
    const name = (agent as { name?: string }).name ?? "Support";
    typing.textContent = isTyping ? `${name} is typing…` : "";
  });
  client.on("chat.presence_changed", ({ agents: changed }) => {
    for (const [id, state] of Object.entries(changed)) {
      const agent = agents.get(id);
      if (!agent) continue;
      if (state === "offline" && agent.here) {
        agent.here = false;
        note(`${agent.name} left the conversation`);
      } else if (state !== "offline" && !agent.here) {
        agent.here = true;
        note(`${agent.name} joined the conversation`);
      }
    }
  });
  client.on("chat.status_changed", ({ status: state }) => {
    if (state === "resolved") note("The conversation was closed. Write again any time.");
  });

  // Typing out: on while keys come, off after three quiet seconds or on send.
  let typingOn = false;
  let typingTimer: ReturnType<typeof setTimeout> | undefined;
  const stopTyping = () => {
    clearTimeout(typingTimer);
    if (typingOn) {
      typingOn = false;
      void client.chatTyping(false).catch(() => {});
    }
  };
  input.addEventListener("input", () => {
    if (!typingOn && input.value.trim()) {
      typingOn = true;
      void client.chatTyping(true).catch(() => {});
    }
    clearTimeout(typingTimer);
    typingTimer = setTimeout(stopTyping, 3000);
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    stopTyping();
    // Named before it is stored: the stored message and its event come back under this id.
    const echo = `w-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
    const placeholder = { id: 0, content: text, conversation_id: 0, message_type: 0, created_at: Date.now() / 1000, echo_id: echo } as Message;
    show(placeholder, "pending");
    client
      .chatMessage({ content: { type: "text", text }, echoId: echo })
      .then((message) => show(message))
      .catch(() => show(placeholder, "failed"));
  });

  file.addEventListener("change", async () => {
    const chosen = file.files?.[0];
    file.value = "";
    if (!chosen) return;
    note(`Uploading ${chosen.name}…`);
    try {
      const { token, url } = await client.chatUploadInit();
      const body = new FormData();
      body.append("file", chosen);
      const sent = await fetch(new URL(url, baseUrl), { method: "POST", body });
      if (!sent.ok) throw new Error((await sent.json().catch(() => ({})))?.message ?? `upload refused (${sent.status})`);
      // The file message arrives like every other (chat.message_received).
      await client.chatUploadFinish(token);
    } catch (error) {
      note(`Could not send ${chosen.name}: ${(error as Error).message}`);
    }
  });
  document.addEventListener("visibilitychange", () => void markRead());

  client.connect().catch((error) => {
    status.textContent = "Chat unavailable";
    console.error("switchboard widget:", error);
  });
  (window as { switchboardWidget?: unknown }).switchboardWidget = { open: () => setOpen(true), client };
}

boot();
