import { request } from "./client.js";
import { backoff, type WebSocketConstructor, type WebSocketLike, webSocketConstructor } from "./socket.js";

/** A message as the visitor sees it (the public inbox API's shape). */
export interface Message {
  id: number;
  content: string;
  conversation_id: number;
  /** 0 the visitor's, 1 an agent's or bot's. */
  message_type: number;
  created_at: number;
  echo_id?: string | null;
  sender?: { type: string; id?: number; name?: string } | null;
  [field: string]: unknown;
}

export interface Contact {
  id: number;
  source_id: string;
  pubsub_token: string;
  name: string;
  email: string | null;
  [field: string]: unknown;
}

export interface Conversation {
  id: number;
  status: string;
  contact_last_seen_at: number;
  [field: string]: unknown;
}

export type AccountStatus = "online" | "offline";

/** What `initialized` carries after every (re)connect. */
export interface InitializedData {
  account: { status: AccountStatus };
  contact: Contact;
  conversation: Conversation;
  messages: Message[];
}

/** Whether the live connection is up: `reconnecting` while it is being re-established. */
export type ConnectionState = "connected" | "reconnecting";

export interface VisitorEvents {
  initialized: InitializedData;
  connection: ConnectionState;
  /** A message changed: its `status` became `delivered` or `read`, or its content was edited. */
  "chat.message_updated": { message: Message };
  /** Agents' presence changed: `{agentId: "online" | "busy" | "offline"}`. */
  "chat.presence_changed": { agents: Record<string, string> };
  /** The conversation's status changed (`open`, `pending`, `resolved`, ...). */
  "chat.status_changed": { conversationId: number; status: string };
  "account.status_updated": AccountStatus;
  "chat.message_received": { message: Message };
  "chat.agent_typing": { isTyping: boolean; agent: Record<string, unknown> };
  "chat.contact_read": { conversationId: number; lastSeenAt: number };
  error: unknown;
}

export interface VisitorClientOptions {
  /** The server, e.g. `https://chat.example.com`. */
  baseUrl: string;
  /** The inbox's public identifier (the widget's configuration). */
  inboxIdentifier: string;
  /** A returning visitor's token (`client.visitorToken` of an earlier visit or another tab). */
  visitorToken?: string;
  /** A new visitor's name and email, if known. */
  name?: string;
  email?: string;
  /** The WebSocket to use where the platform has none (Node: `ws`). */
  WebSocket?: WebSocketConstructor;
  /** Base reconnect backoff in ms (default 500). */
  reconnectDelay?: number;
}

type Handler<T> = (data: T) => void;

interface Queued {
  text: string;
  echoId: string;
  resolve: (message: Message) => void;
  reject: (error: unknown) => void;
}

function echoId(): string {
  const random = Math.random().toString(36).slice(2, 10);
  return `sdk-${Date.now().toString(36)}-${random}`;
}

/** A website visitor: their contact, their conversation, live over ActionCable. */
export class VisitorClient {
  /** The visitor's token: keep it (e.g. in localStorage) to be the same visitor later. */
  visitorToken?: string;

  private readonly handlers = new Map<keyof VisitorEvents, Set<Handler<never>>>();
  private readonly WebSocketImpl: WebSocketConstructor;
  private contact?: Contact;
  private conversation?: Conversation;
  private socket?: WebSocketLike;
  private identifier?: string;
  private online = false;
  private stopped = false;
  private attempts = 0;
  private retryTimer?: ReturnType<typeof setTimeout>;
  private readonly seen = new Set<number>();
  private readonly queue: Queued[] = [];
  private firstInitialized?: { resolve: () => void; reject: (error: unknown) => void };

  constructor(private readonly options: VisitorClientOptions) {
    this.visitorToken = options.visitorToken;
    this.WebSocketImpl = webSocketConstructor(options.WebSocket);
  }

  on<E extends keyof VisitorEvents>(event: E, handler: Handler<VisitorEvents[E]>): void {
    let set = this.handlers.get(event);
    if (!set) {
      set = new Set();
      this.handlers.set(event, set);
    }
    set.add(handler as Handler<never>);
  }

  off<E extends keyof VisitorEvents>(event: E, handler: Handler<VisitorEvents[E]>): void {
    this.handlers.get(event)?.delete(handler as Handler<never>);
  }

  /** Finds or creates the visitor and their conversation and connects; resolves after the first `initialized`. */
  async connect(): Promise<void> {
    this.stopped = false;
    await this.ensureVisitor();
    await new Promise<void>((resolve, reject) => {
      this.firstInitialized = { resolve, reject };
      this.open();
    });
  }

  /** Closes the connection; no reconnects. */
  disconnect(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.socket?.close(1000);
    this.socket = undefined;
    this.online = false;
  }

  /** Sends a text message; while offline it is queued and sent once on reconnect. */
  /** `echoId` names the message before it is stored (it comes back on the message). */
  chatMessage(input: { content: { type: "text"; text: string }; echoId?: string }): Promise<Message> {
    if (input?.content?.type !== "text" || typeof input.content.text !== "string") {
      return Promise.reject(new Error("chatMessage takes {content: {type: 'text', text}}"));
    }
    return new Promise((resolve, reject) => {
      const queued = { text: input.content.text, echoId: input.echoId ?? echoId(), resolve, reject };
      if (this.online) {
        void this.send(queued);
      } else {
        this.queue.push(queued);
      }
    });
  }

  /** Begins a file upload: POST the file (multipart, field `file`) to `url` once, then finish. */
  async chatUploadInit(): Promise<{ token: string; url: string }> {
    const conversation = this.requireConversation();
    return request(this.options.baseUrl, "POST", "/api/v1/uploads", this.contact?.pubsub_token, {
      conversationId: conversation.id,
    });
  }

  /** Finishes an upload into a file message (delivered later by `chat.message_received` too). */
  async chatUploadFinish(token: string): Promise<Message> {
    return request(
      this.options.baseUrl,
      "POST",
      `/api/v1/uploads/${encodeURIComponent(token)}/finish`,
      this.contact?.pubsub_token,
      {},
    );
  }

  /** Downloads an attachment of the conversation (its `data_url`) with the visitor's credentials. */
  async chatDownload(url: string): Promise<Blob> {
    const response = await fetch(new URL(url, this.options.baseUrl), {
      headers: { authorization: `Bearer ${this.contact?.pubsub_token ?? ""}` },
    });
    if (!response.ok) throw new Error(`the attachment could not be downloaded (${response.status})`);
    return response.blob();
  }

  /** Tells the agents whether the visitor is typing. */
  async chatTyping(isTyping: boolean): Promise<void> {
    await this.post("toggle_typing", { typing_status: isTyping ? "on" : "off" });
  }

  /** Marks everything in the conversation read by the visitor. */
  async chatRead(): Promise<void> {
    await this.post("update_last_seen", {});
  }

  private emit<E extends keyof VisitorEvents>(event: E, data: VisitorEvents[E]): void {
    for (const handler of [...(this.handlers.get(event) ?? [])]) {
      try {
        (handler as Handler<VisitorEvents[E]>)(data);
      } catch (error) {
        console.error(error);
      }
    }
  }

  private path(suffix = ""): string {
    return `/public/api/v1/inboxes/${encodeURIComponent(this.options.inboxIdentifier)}/contacts${suffix}`;
  }

  private api<T>(method: string, suffix: string, body?: unknown): Promise<T> {
    return request<T>(this.options.baseUrl, method, this.path(suffix), undefined, body);
  }

  private async post(action: string, body: unknown): Promise<void> {
    const conversation = this.requireConversation();
    await this.api("POST", `/${this.visitorToken}/conversations/${conversation.id}/${action}`, body);
  }

  private requireConversation(): Conversation {
    if (!this.conversation) throw new Error("connect() first");
    return this.conversation;
  }

  private async ensureVisitor(): Promise<void> {
    if (!this.visitorToken) {
      const created = await this.api<Contact>("POST", "", {
        name: this.options.name,
        email: this.options.email,
      });
      this.visitorToken = created.source_id;
      this.contact = created;
    } else {
      this.contact = await this.api<Contact>("GET", `/${this.visitorToken}`);
    }
    const conversations = await this.api<Conversation[]>("GET", `/${this.visitorToken}/conversations`);
    const open = conversations.filter((c) => c.status !== "resolved");
    this.conversation =
      open.at(-1) ?? (await this.api<Conversation>("POST", `/${this.visitorToken}/conversations`, {}));
  }

  private open(): void {
    if (this.stopped || !this.contact) return;
    const url = `${this.options.baseUrl.replace(/\/$/, "").replace(/^http/, "ws")}/cable`;
    const socket = new this.WebSocketImpl(url);
    this.socket = socket;
    this.identifier = JSON.stringify({ channel: "RoomChannel", pubsub_token: this.contact.pubsub_token });
    socket.onmessage = (event) => void this.received(event.data);
    socket.onerror = (event) => this.emit("error", event);
    socket.onclose = () => {
      if (this.socket !== socket) return;
      this.socket = undefined;
      const wasOnline = this.online;
      this.online = false;
      if (this.stopped) return;
      if (wasOnline || this.attempts === 0) this.emit("connection", "reconnecting");
      this.attempts += 1;
      this.retryTimer = setTimeout(() => this.open(), backoff(this.attempts, this.options.reconnectDelay ?? 500));
    };
  }

  private async received(data: unknown): Promise<void> {
    let frame: { type?: string; identifier?: string; message?: { event?: string; data?: any } };
    try {
      frame = JSON.parse(String(data));
    } catch {
      return;
    }
    if (frame.type === "welcome") {
      this.socket?.send(JSON.stringify({ command: "subscribe", identifier: this.identifier }));
    } else if (frame.type === "confirm_subscription") {
      await this.initialize();
    } else if (frame.type === "reject_subscription") {
      const error = new Error("the server refused this visitor's subscription");
      this.emit("error", error);
      this.firstInitialized?.reject(error);
      this.firstInitialized = undefined;
      this.disconnect();
    } else if (frame.message?.event) {
      this.event(frame.message.event, frame.message.data);
    }
  }

  /** After every (re)connect: the latest data, `initialized`, then what was queued offline. */
  private async initialize(): Promise<void> {
    try {
      const conversation = this.requireConversation();
      const token = this.visitorToken;
      const [inbox, conversations, messages] = await Promise.all([
        request<{ account_status: AccountStatus }>(
          this.options.baseUrl,
          "GET",
          `/public/api/v1/inboxes/${encodeURIComponent(this.options.inboxIdentifier)}`,
          undefined,
        ),
        this.api<Conversation[]>("GET", `/${token}/conversations`),
        this.api<Message[]>("GET", `/${token}/conversations/${conversation.id}/messages?limit=500`),
      ]);
      this.conversation = conversations.find((c) => c.id === conversation.id) ?? conversation;
      for (const message of messages) this.seen.add(message.id);
      this.attempts = 0;
      this.online = true;
      this.emit("connection", "connected");
      this.emit("initialized", {
        account: { status: inbox.account_status },
        contact: this.contact as Contact,
        conversation: this.conversation,
        messages,
      });
      this.firstInitialized?.resolve();
      this.firstInitialized = undefined;
      for (const queued of this.queue.splice(0)) void this.send(queued);
    } catch (error) {
      this.emit("error", error);
      this.socket?.close();
    }
  }

  private async send(queued: Queued): Promise<void> {
    try {
      const conversation = this.requireConversation();
      const message = await this.api<Message>(
        "POST",
        `/${this.visitorToken}/conversations/${conversation.id}/messages`,
        { content: queued.text, echo_id: queued.echoId },
      );
      queued.resolve(message);
    } catch (error) {
      if ((error as { status?: number }).status !== undefined) {
        queued.reject(error); // the server refused it: retrying would not help
      } else {
        this.queue.push(queued); // offline: sent again, under the same echo id, on reconnect
      }
    }
  }

  private event(name: string, data: any): void {
    const conversationId = this.conversation?.id;
    switch (name) {
      case "message.created":
        if (data?.conversation_id !== conversationId || this.seen.has(data.id)) return;
        this.seen.add(data.id);
        this.emit("chat.message_received", { message: data as Message });
        return;
      case "message.updated":
        if (data?.conversation_id !== conversationId) return;
        this.emit("chat.message_updated", { message: data as Message });
        return;
      case "conversation.status_changed":
        if (data?.id !== conversationId) return;
        this.emit("chat.status_changed", { conversationId: data.id, status: String(data.status) });
        return;
      case "conversation.typing_on":
      case "conversation.typing_off":
        if (data?.conversation?.id !== conversationId || data?.user?.type === "contact") return;
        this.emit("chat.agent_typing", { isTyping: name === "conversation.typing_on", agent: data.user });
        return;
      case "conversation.read":
        if (data?.id !== conversationId) return;
        this.emit("chat.contact_read", { conversationId: data.id, lastSeenAt: data.contact_last_seen_at });
        return;
      case "presence.update":
        if (data?.users && Object.keys(data.users).length > 0) {
          this.emit("chat.presence_changed", { agents: data.users as Record<string, string> });
        }
        return;
      case "account.status_updated":
        this.emit("account.status_updated", data?.status as AccountStatus);
        return;
      default:
    }
  }
}
