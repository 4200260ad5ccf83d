// The agent dashboard (`/dashboard`): sign in with an agent access token; the conversation list
// with unread counts, kept live by the notifications socket; a conversation's history paged by
// seq, replies and private notes, typing both ways, the visitor's presence, assignment, status,
// the agent's own availability and notifications. The SDK's managed sockets reconnect with a
// fresh ticket by themselves; after each reconnect the dashboard catches up from the REST API.

import { request, SwitchboardClient } from "../../sdk/typescript/src/client.ts";
import type { ManagedSocket } from "../../sdk/typescript/src/socket.ts";
import { attachmentLink, el, formatTime } from "./dom.ts";

interface Conversation {
  id: number;
  contactId: number;
  assigneeId: number | null;
  status: string;
  lastSeq: number;
  unreadByAgents: number;
  contactPresence?: string;
  updatedAt: string;
}

interface Message {
  id: number;
  conversationId: number;
  seq: number;
  sender: { type: string; id?: number; name?: string };
  messageType: string;
  content: string;
  private: boolean;
  status: string;
  createdAt: string;
  contentAttributes?: { attachment?: { fileName?: string; url?: string } };
}

interface Profile {
  id: number;
  name: string;
  availability: string;
}

const TOKEN_KEY = "switchboard:agentToken";
const PAGE = 50;
const base = location.origin;
const app = document.getElementById("app") as HTMLElement;

function api<T>(token: string, method: string, path: string, body?: unknown): Promise<T> {
  return request<T>(base, method, path, token, body);
}

function signIn(reason?: string): void {
  const input = el("input", { id: "token", type: "password", autocomplete: "off", required: "" }) as HTMLInputElement;
  const form = el(
    "form",
    { class: "signin", "aria-labelledby": "signin-title" },
    el("h1", { id: "signin-title" }, "Switchboard — agent sign-in"),
    el("label", { for: "token" }, "Agent access token"),
    input,
    el("button", { type: "submit" }, "Sign in"),
    el("p", { class: "error", role: "alert" }, reason ?? ""),
    el("p", { class: "hint" }, "The demo agent's token is in data/demo.json (agent.accessToken)."),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const token = input.value.trim();
    if (!token) return;
    localStorage.setItem(TOKEN_KEY, token);
    void start(token);
  });
  app.replaceChildren(form);
  input.focus();
}

async function start(token: string): Promise<void> {
  let profile: Profile;
  try {
    profile = await api<Profile>(token, "GET", "/api/v1/profile");
  } catch (error) {
    localStorage.removeItem(TOKEN_KEY);
    signIn((error as { status?: number }).status === 401 ? "That token was not accepted." : `Could not sign in: ${(error as Error).message}`);
    return;
  }
  new Dashboard(token, profile).run();
}

class Dashboard {
  private readonly client: SwitchboardClient;
  private conversations = new Map<number, Conversation>();
  private presence = new Map<number, string>();
  private open?: { id: number; socket?: ManagedSocket; firstSeq: number; lastSeq: number };
  private notificationCount = 0;
  private typingTimer?: ReturnType<typeof setTimeout>;
  private typingOn = false;
  private visitorTypingTimer?: ReturnType<typeof setTimeout>;

  // The page's parts.
  private readonly list = el("ul", { class: "list", "aria-label": "Conversations" });
  private readonly filter = el("select", { id: "filter", "aria-label": "Show" }) as HTMLSelectElement;
  private readonly availability = el("select", { id: "availability", "aria-label": "My availability" }) as HTMLSelectElement;
  private readonly connection = el("span", { class: "connection", role: "status" }, "Connecting…");
  private readonly bell = el("button", { type: "button", class: "bell", "aria-haspopup": "true", "aria-expanded": "false" }, "Notifications: 0");
  private readonly notifications = el("ul", { class: "notifications", hidden: "", "aria-label": "Notifications" });
  private readonly view = el("main", { class: "view", "aria-label": "Conversation" }, el("p", { class: "empty" }, "Choose a conversation."));

  constructor(
    private readonly token: string,
    private readonly me: Profile,
  ) {
    this.client = new SwitchboardClient({ baseUrl: base, token });
  }

  run(): void {
    for (const [value, label] of [["open", "Open"], ["pending", "Pending"], ["resolved", "Resolved"]]) {
      this.filter.append(el("option", { value }, label));
    }
    for (const value of ["online", "busy", "offline"]) this.availability.append(el("option", { value }, value));
    this.availability.value = this.me.availability;
    this.availability.addEventListener("change", () => {
      void api(this.token, "PATCH", "/api/v1/profile", { availability: this.availability.value });
    });
    this.filter.addEventListener("change", () => void this.loadList());
    this.earlier.addEventListener("click", () => {
      if (!this.open) return;
      const from = Math.max(0, this.open.firstSeq - 1 - PAGE);
      void this.page(from, this.open.firstSeq - 1 - from, true);
    });
    this.bell.addEventListener("click", () => {
      this.notifications.hidden = !this.notifications.hidden;
      this.bell.setAttribute("aria-expanded", String(!this.notifications.hidden));
    });
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && !this.notifications.hidden) {
        this.notifications.hidden = true;
        this.bell.setAttribute("aria-expanded", "false");
        this.bell.focus();
      }
    });
    const signOut = el("button", { type: "button" }, "Sign out");
    signOut.addEventListener("click", () => {
      this.client.websocket.closeAll();
      localStorage.removeItem(TOKEN_KEY);
      signIn();
    });
    app.replaceChildren(
      el(
        "header",
        { class: "top" },
        el("h1", {}, "Switchboard"),
        el("span", { class: "me" }, this.me.name),
        this.availability,
        this.bell,
        this.connection,
        signOut,
      ),
      this.notifications,
      el("div", { class: "body" }, el("nav", { class: "side" }, this.filter, this.list), this.view),
    );
    void this.loadList();
    void this.loadNotifications();
    void this.connectNotifications();
  }

  private async connectNotifications(): Promise<void> {
    const socket = await this.client.websocket.connect("/notifications", {}, "notifications", { maxReconnectAttempts: 0 });
    let reconnected = false;
    socket.onStateChange.subscribe((state) => {
      this.connection.textContent = state === "open" ? "● Live" : "Reconnecting…";
      if (state === "open" && reconnected) {
        // Whatever happened while we were away: the list, and the open conversation.
        void this.loadList();
        void this.catchUp();
      }
      if (state === "reconnecting") reconnected = true;
    });
    this.connection.textContent = "● Live";
    socket.onMessage.subscribe((event) => this.frame(String((event as { data: unknown }).data)));
  }

  private frame(text: string): void {
    let frame: { type?: string; payload?: any };
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    const payload = frame.payload ?? {};
    switch (frame.type) {
      case "message.created":
      case "message.updated": {
        const message = payload as Message;
        const conversation = this.conversations.get(message.conversationId);
        if (conversation && frame.type === "message.created") {
          conversation.lastSeq = Math.max(conversation.lastSeq, message.seq);
          if (message.messageType === "incoming" && this.open?.id !== message.conversationId) conversation.unreadByAgents += 1;
          conversation.updatedAt = message.createdAt;
          this.renderList();
        } else if (!conversation && frame.type === "message.created") {
          void this.loadList();
        }
        if (this.open?.id === message.conversationId) {
          this.showMessage(message);
          if (message.messageType === "incoming") {
            this.setVisitorTyping(false);
            void this.markRead();
          }
        }
        return;
      }
      case "conversation.created":
      case "conversation.status_changed":
      case "assignee.changed":
      case "conversation.read": {
        if (typeof payload.id === "number" && payload.status) {
          const known = this.conversations.get(payload.id);
          this.conversations.set(payload.id, { ...known, ...payload });
          this.renderList();
          if (this.open?.id === payload.id) this.renderHeader();
        }
        return;
      }
      case "conversation.typing_on":
      case "conversation.typing_off":
        if (this.open?.id === payload.conversationId && payload.user?.type === "contact") {
          this.setVisitorTyping(frame.type === "conversation.typing_on");
        }
        return;
      case "presence.update":
        for (const [id, state] of Object.entries(payload.contacts ?? {})) this.presence.set(Number(id), String(state));
        this.renderList();
        if (this.open) this.renderHeader();
        return;
      case "notification.created":
        this.addNotification(payload);
        return;
      default:
    }
  }

  private async loadList(): Promise<void> {
    const status = this.filter.value || "open";
    const list = await api<Conversation[]>(this.token, "GET", `/api/v1/conversations?status=${status}&assignee=all`);
    this.conversations = new Map(list.map((c) => [c.id, c]));
    this.renderList();
  }

  private renderList(): void {
    const status = this.filter.value || "open";
    const shown = [...this.conversations.values()]
      .filter((c) => c.status === status)
      .sort((a, b) => b.updatedAt.localeCompare(a.updatedAt) || b.id - a.id);
    this.list.replaceChildren(
      ...shown.map((c) => {
        const online = this.presence.get(c.contactId) === "online";
        const button = el(
          "button",
          { type: "button", class: "item", "data-conversation": String(c.id), "aria-current": String(this.open?.id === c.id) },
          el("span", { class: online ? "dot on" : "dot", "aria-label": online ? "visitor online" : "visitor offline" }),
          `Conversation #${c.id}`,
          el("span", { class: "who" }, c.assigneeId === this.me.id ? " · mine" : c.assigneeId ? " · assigned" : " · unassigned"),
          ...(c.unreadByAgents > 0 ? [el("span", { class: "unread", "aria-label": `${c.unreadByAgents} unread` }, String(c.unreadByAgents))] : []),
        );
        button.addEventListener("click", () => void this.openConversation(c.id));
        return el("li", {}, button);
      }),
    );
  }

  private async openConversation(id: number): Promise<void> {
    this.open?.socket?.close();
    const conversation = await api<Conversation>(this.token, "GET", `/api/v1/conversations/${id}`);
    this.conversations.set(id, { ...this.conversations.get(id), ...conversation });
    if (conversation.contactPresence) this.presence.set(conversation.contactId, conversation.contactPresence);
    const first = Math.max(0, conversation.lastSeq - PAGE);
    this.open = { id, firstSeq: first + 1, lastSeq: first };
    this.renderConversation();
    await this.page(first, PAGE);
    void this.markRead();
    this.renderList();
  }

  private readonly messages = el("ol", { class: "messages", role: "log", "aria-live": "polite", "aria-label": "Messages" });
  private readonly header = el("div", { class: "conv-head" });
  private readonly visitorTyping = el("div", { class: "typing", "aria-live": "polite" });
  private readonly earlier = el("button", { type: "button", class: "earlier" }, "Load earlier messages");

  private renderConversation(): void {
    const input = el("textarea", { id: "reply", rows: "2", placeholder: "Reply…" }) as HTMLTextAreaElement;
    const privateNote = el("input", { type: "checkbox", id: "private" }) as HTMLInputElement;
    const form = el(
      "form",
      { class: "reply", "aria-label": "Reply" },
      el("label", { for: "reply", class: "sr" }, "Reply"),
      input,
      el("label", { for: "private" }, privateNote, " Private note"),
      el("button", { type: "submit" }, "Send"),
    );
    input.addEventListener("input", () => this.typing(input.value.trim() !== "", privateNote.checked));
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const content = input.value.trim();
      if (!content || !this.open) return;
      input.value = "";
      this.typing(false, privateNote.checked);
      const clientMessageId = `d-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
      void api<Message>(this.token, "POST", `/api/v1/conversations/${this.open.id}/messages`, {
        content,
        private: privateNote.checked,
        clientMessageId,
      }).then((message) => this.showMessage(message));
    });
    this.messages.replaceChildren();
    this.view.replaceChildren(this.header, this.earlier, this.messages, this.visitorTyping, form);
    this.renderHeader();
  }

  private renderHeader(): void {
    const open = this.open && this.conversations.get(this.open.id);
    if (!open) return;
    const status = el("select", { id: "status", "aria-label": "Status" }) as HTMLSelectElement;
    for (const value of ["open", "pending", "resolved", "snoozed"]) status.append(el("option", { value }, value));
    status.value = open.status;
    status.addEventListener("change", () => {
      void api(this.token, "POST", `/api/v1/conversations/${open.id}/status`, { status: status.value });
    });
    const assign = el("button", { type: "button", class: "assign" }, open.assigneeId === this.me.id ? "Assigned to me" : "Assign to me") as HTMLButtonElement;
    assign.disabled = open.assigneeId === this.me.id;
    assign.addEventListener("click", () => {
      void api(this.token, "POST", `/api/v1/conversations/${open.id}/assignments`, { assigneeId: this.me.id });
    });
    const online = this.presence.get(open.contactId) === "online";
    this.header.replaceChildren(
      el("h2", {}, `Conversation #${open.id}`),
      el("span", { class: "presence", "data-state": online ? "online" : "offline" }, online ? "● Visitor online" : "○ Visitor offline"),
      status,
      assign,
    );
  }

  /** Loads messages after `afterSeq` (at most `limit`); earlier pages go to the top. */
  private async page(afterSeq: number, limit: number, earlier = false): Promise<void> {
    const open = this.open;
    if (!open || limit <= 0) return;
    const messages = await api<Message[]>(this.token, "GET", `/api/v1/conversations/${open.id}/messages?afterSeq=${afterSeq}&limit=${limit}`);
    if (this.open !== open) return;
    if (earlier) {
      const anchor = this.messages.firstChild;
      for (const message of messages) {
        if (!this.messages.querySelector(`[data-seq="${message.seq}"]`)) this.messages.insertBefore(this.render(message), anchor);
      }
      open.firstSeq = Math.min(open.firstSeq, afterSeq + 1);
    } else {
      for (const message of messages) this.showMessage(message);
    }
    this.earlier.hidden = open.firstSeq <= 1;
  }

  /** After a reconnect: what the open conversation missed. */
  private async catchUp(): Promise<void> {
    if (this.open) await this.page(this.open.lastSeq, 500);
  }

  private showMessage(message: Message): void {
    const open = this.open;
    if (!open || message.conversationId !== open.id) return;
    const existing = this.messages.querySelector<HTMLElement>(`[data-seq="${message.seq}"]`);
    if (existing) {
      // Receipts only move forward: a `delivered` that arrives after `read` changes nothing.
      const rank = (status?: string) => ["sent", "delivered", "read"].indexOf(status ?? "");
      if (rank(message.status) < rank(existing.dataset.status)) message = { ...message, status: existing.dataset.status as string };
      existing.replaceWith(this.render(message));
      return;
    }
    open.lastSeq = Math.max(open.lastSeq, message.seq);
    // In seq order even when a live frame and a page answer cross.
    const after = [...this.messages.children].find((child) => Number((child as HTMLElement).dataset.seq) > message.seq);
    this.messages.insertBefore(this.render(message), after ?? null);
    this.messages.scrollTop = this.messages.scrollHeight;
  }

  private render(message: Message): HTMLElement {
    const who =
      message.sender.type === "contact" ? "Visitor" : message.sender.type === "user" && message.sender.id === this.me.id ? "You" : (message.sender.name ?? message.sender.type);
    const attachment = message.contentAttributes?.attachment;
    return el(
      "li",
      {
        "data-seq": String(message.seq),
        "data-status": message.status,
        class: `${message.messageType} ${message.private ? "private" : ""}`,
      },
      message.content ?? "",
      ...(attachment ? [attachmentLink(attachment.fileName ?? "file", () => this.download(String(attachment.url)))] : []),
      el("span", { class: "meta" }, `${who}${message.private ? " · private note" : ""} · ${formatTime(Date.parse(message.createdAt))}${message.messageType === "outgoing" && !message.private ? ` · ${message.status}` : ""}`),
    );
  }

  private async download(url: string): Promise<Blob> {
    const response = await fetch(new URL(url, base), { headers: { authorization: `Bearer ${this.token}` } });
    if (!response.ok) throw new Error(`the attachment could not be downloaded (${response.status})`);
    return response.blob();
  }

  private typing(isTyping: boolean, isPrivate: boolean): void {
    if (!this.open) return;
    const id = this.open.id;
    clearTimeout(this.typingTimer);
    if (isTyping) this.typingTimer = setTimeout(() => this.typing(false, isPrivate), 3000);
    if (isTyping === this.typingOn) return;
    this.typingOn = isTyping;
    void api(this.token, "POST", `/api/v1/conversations/${id}/typing`, { isTyping, isPrivate }).catch(() => {});
  }

  private setVisitorTyping(on: boolean): void {
    clearTimeout(this.visitorTypingTimer);
    this.visitorTyping.textContent = on ? "Visitor is typing…" : "";
    // A typing indicator that is never turned off (the visitor went away) fades on its own.
    if (on) this.visitorTypingTimer = setTimeout(() => this.setVisitorTyping(false), 30000);
  }

  private async markRead(): Promise<void> {
    const open = this.open;
    if (!open) return;
    await api(this.token, "POST", `/api/v1/conversations/${open.id}/read`, {}).catch(() => {});
    const conversation = this.conversations.get(open.id);
    if (conversation) {
      conversation.unreadByAgents = 0;
      this.renderList();
    }
  }

  private async loadNotifications(): Promise<void> {
    const answer = await api<{ notifications: { id: number; readAt?: string | null }[] }>(this.token, "GET", "/api/v1/notifications").catch(() => ({ notifications: [] }));
    for (const notification of [...answer.notifications].reverse()) this.addNotification(notification);
  }

  private addNotification(notification: any): void {
    if (!notification?.readAt) this.notificationCount += 1;
    this.bell.textContent = `Notifications: ${this.notificationCount}`;
    const kinds: Record<string, string> = {
      conversation_assignment: "Assigned to you",
      conversation_creation: "New conversation",
      assigned_conversation_new_message: "New message",
    };
    const kind = kinds[notification.notificationType] ?? "Notification";
    const text = `${kind}${notification.conversationId ? ` · conversation #${notification.conversationId}` : ""}`;
    const item = el("button", { type: "button" }, text);
    item.addEventListener("click", () => {
      this.notifications.hidden = true;
      if (!notification.readAt) {
        notification.readAt = new Date().toISOString();
        this.notificationCount = Math.max(0, this.notificationCount - 1);
        this.bell.textContent = `Notifications: ${this.notificationCount}`;
      }
      void api(this.token, "POST", `/api/v1/notifications/${notification.id}/read`, {}).catch(() => {});
      if (notification.conversationId) void this.openConversation(notification.conversationId);
    });
    this.notifications.prepend(el("li", {}, item));
  }
}

const saved = localStorage.getItem(TOKEN_KEY);
if (saved) void start(saved);
else signIn();
