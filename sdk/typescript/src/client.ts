import {
  ManagedSocket,
  type SocketOptions,
  type WebSocketConstructor,
  webSocketConstructor,
} from "./socket.js";

/** An error answer of the REST API. */
export class SwitchboardError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "SwitchboardError";
  }
}

/** @internal A JSON request to the REST API; API errors become `SwitchboardError`. */
export async function request<T>(
  baseUrl: string,
  method: string,
  path: string,
  token: string | undefined,
  body?: unknown,
): Promise<T> {
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(baseUrl.replace(/\/$/, "") + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  const value = text ? JSON.parse(text) : undefined;
  if (!response.ok) {
    const error = value?.error ?? {};
    throw new SwitchboardError(
      response.status,
      error.code ?? "HTTP_ERROR",
      error.message ?? response.statusText,
    );
  }
  return value as T;
}

export interface SwitchboardClientOptions {
  /** The server, e.g. `https://chat.example.com`. */
  baseUrl: string;
  /** An agent's access token, or the account's API key (for a back end). */
  token: string;
  /** The WebSocket to use where the platform has none (Node: `ws`). */
  WebSocket?: WebSocketConstructor;
}

/** An agent's or a back end's client. */
export class SwitchboardClient {
  readonly websocket: WebSocketManager;

  constructor(readonly options: SwitchboardClientOptions) {
    this.websocket = new WebSocketManager(options);
  }
}

/** Opens managed sockets: each fetches a single-use ticket for every (re)connect. */
export class WebSocketManager {
  private readonly sockets = new Set<ManagedSocket>();

  /** @internal */
  constructor(private readonly options: SwitchboardClientOptions) {}

  /** A single-use ticket for opening one socket (valid for 30 s). */
  async getTicket(): Promise<string> {
    const answer = await request<{ ticket: string }>(
      this.options.baseUrl,
      "POST",
      "/api/v1/ws/ticket",
      this.options.token,
      {},
    );
    return answer.ticket;
  }

  /** A conversation ("thread"), live: messages, status updates, typing. Resumes by seq. */
  connectToChat(threadId: string | number, options: SocketOptions = {}): Promise<ManagedSocket> {
    return this.open(`/chat/${threadId}`, {}, `chat:${threadId}`, options, true);
  }

  /** A transcript of a workspace (an account), live: its segments as they are added. */
  connectToTranscript(
    workspaceId: string | number,
    transcriptId: string | number,
    options: SocketOptions = {},
  ): Promise<ManagedSocket> {
    return this.open(
      `/transcript/${workspaceId}/${transcriptId}`,
      {},
      `transcript:${transcriptId}`,
      options,
      false,
    );
  }

  /** Any managed socket path under `/ws`, e.g. `connect("/notifications", {}, "notifications")`. */
  connect(
    path: string,
    params: Record<string, string | number> = {},
    name: string = path,
    options: SocketOptions = {},
  ): Promise<ManagedSocket> {
    return this.open(path, params, name, options, false);
  }

  /** Closes every socket this manager opened. */
  closeAll(): void {
    for (const socket of [...this.sockets]) socket.close();
  }

  /** How many of this manager's sockets are not closed. */
  get connectionCount(): number {
    return this.sockets.size;
  }

  private async open(
    path: string,
    params: Record<string, string | number>,
    name: string,
    options: SocketOptions,
    resumes: boolean,
  ): Promise<ManagedSocket> {
    const base = this.options.baseUrl.replace(/\/$/, "").replace(/^http/, "ws");
    const urlFor = async (lastSeq?: number) => {
      const query = new URLSearchParams();
      for (const [key, value] of Object.entries(params)) query.set(key, String(value));
      query.set("ticket", await this.getTicket());
      if (resumes && lastSeq !== undefined) query.set("lastSeq", String(lastSeq));
      return `${base}/ws${path.startsWith("/") ? path : `/${path}`}?${query}`;
    };
    const socket = new ManagedSocket(
      name,
      urlFor,
      webSocketConstructor(this.options.WebSocket),
      options,
      (finished) => this.sockets.delete(finished),
    );
    this.sockets.add(socket);
    try {
      await socket.start();
    } catch (error) {
      this.sockets.delete(socket);
      throw error;
    }
    return socket;
  }
}
