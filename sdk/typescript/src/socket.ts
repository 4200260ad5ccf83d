import { Emitter } from "./emitter.js";

/** The states a managed socket goes through. */
export type WebSocketState = "connecting" | "open" | "closing" | "closed" | "reconnecting";

/** Per-connection reconnection settings. */
export interface SocketOptions {
  /** Base backoff in ms (exponential with jitter, capped at 30 s). Default 1000. */
  reconnectDelay?: number;
  /** How many reconnects to try before giving up into `closed`; 0 retries forever. Default 0. */
  maxReconnectAttempts?: number;
  /** Log state changes to the console. */
  debug?: boolean;
}

/** What the SDK needs of a WebSocket: the browser's, Node's global, or `ws`. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** The `WebSocket` to use: the option, else the platform's. */
export function webSocketConstructor(given?: WebSocketConstructor): WebSocketConstructor {
  const found = given ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (!found) {
    throw new Error("no WebSocket: pass the WebSocket option (for example from the ws package)");
  }
  return found;
}

const MAX_DELAY_MS = 30_000;
const HEARTBEAT_MS = 20_000;
/** Close codes after which reconnecting cannot help. */
const FINAL_CLOSE_CODES = new Set([4004]);

/** The delay before reconnect `attempt` (from 1): exponential, capped, with full jitter above half. */
export function backoff(attempt: number, baseMs: number): number {
  const ceiling = Math.min(MAX_DELAY_MS, baseMs * 2 ** Math.max(0, attempt - 1));
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

/**
 * A WebSocket that reconnects by itself: a fresh URL (and so a fresh ticket) for every attempt,
 * with what it has seen so far, so the server resumes where it left off.
 */
export class ManagedSocket {
  readonly onMessage = new Emitter<MessageEvent | { data: unknown }>();
  readonly onStateChange = new Emitter<WebSocketState>();
  readonly onReconnecting = new Emitter<number>();
  readonly onError = new Emitter<unknown>();

  private socket?: WebSocketLike;
  private current: WebSocketState = "connecting";
  private attempts = 0;
  private stopped = false;
  private retryTimer?: ReturnType<typeof setTimeout>;
  private heartbeatTimer?: ReturnType<typeof setInterval>;
  private lastSeq?: number;
  private readonly reconnectDelay: number;
  private readonly maxReconnectAttempts: number;
  private readonly debug: boolean;

  /** @internal */
  constructor(
    readonly name: string,
    private readonly urlFor: (lastSeq?: number) => Promise<string>,
    private readonly WebSocketImpl: WebSocketConstructor,
    options: SocketOptions,
    private readonly onFinished: (socket: ManagedSocket) => void,
  ) {
    this.reconnectDelay = options.reconnectDelay ?? 1000;
    this.maxReconnectAttempts = options.maxReconnectAttempts ?? 0;
    this.debug = options.debug ?? false;
  }

  get state(): WebSocketState {
    return this.current;
  }

  get isOpen(): boolean {
    return this.current === "open";
  }

  /** Sends a text frame; false when the socket is not open. */
  send(data: string): boolean {
    if (!this.socket || this.current !== "open") return false;
    this.socket.send(data);
    return true;
  }

  /** Closes the socket; it does not reconnect again. */
  close(): void {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.stopHeartbeat();
    if (this.socket && this.current !== "closed") {
      this.setState("closing");
      this.socket.close(1000, "closed by the client");
    } else {
      this.finish();
    }
  }

  /** Closes the socket and drops every listener. */
  destroy(): void {
    this.close();
    this.onMessage.clear();
    this.onStateChange.clear();
    this.onReconnecting.clear();
    this.onError.clear();
  }

  /** @internal Opens the first connection; resolves once it is open. */
  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      let settled = false;
      const unsubscribe = this.onStateChange.subscribe((state) => {
        if (settled) return;
        if (state === "open") {
          settled = true;
          unsubscribe();
          resolve();
        } else if (state === "closed") {
          settled = true;
          unsubscribe();
          reject(new Error(`could not open ${this.name}`));
        }
      });
      void this.open();
    });
  }

  private async open(): Promise<void> {
    if (this.stopped) return;
    let url: string;
    try {
      url = await this.urlFor(this.lastSeq);
    } catch (error) {
      this.onError.emit(error);
      // A credential the server refuses will not be accepted on the next attempt either.
      const status = (error as { status?: number }).status;
      this.retryOrGiveUp(undefined, status === 401 || status === 403 || status === 404);
      return;
    }
    if (this.stopped) return;
    const socket = new this.WebSocketImpl(url);
    this.socket = socket;
    socket.onopen = () => {
      this.attempts = 0;
      this.setState("open");
      this.startHeartbeat();
    };
    socket.onmessage = (event) => {
      this.noteSeq(event.data);
      this.onMessage.emit(event as MessageEvent);
    };
    socket.onerror = (event) => this.onError.emit(event);
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      this.stopHeartbeat();
      this.socket = undefined;
      if (this.stopped) {
        this.finish();
      } else {
        this.retryOrGiveUp(event.code);
      }
    };
  }

  private retryOrGiveUp(code: number | undefined, refused = false): void {
    const final = refused || (code !== undefined && FINAL_CLOSE_CODES.has(code));
    const exhausted = this.maxReconnectAttempts > 0 && this.attempts >= this.maxReconnectAttempts;
    if (final || exhausted) {
      this.stopped = true;
      this.finish();
      return;
    }
    this.attempts += 1;
    this.setState("reconnecting");
    this.onReconnecting.emit(this.attempts);
    this.retryTimer = setTimeout(() => void this.open(), backoff(this.attempts, this.reconnectDelay));
  }

  private finish(): void {
    this.setState("closed");
    this.onFinished(this);
  }

  /** Remembers the newest message seq seen, to resume from it after a reconnect. */
  private noteSeq(data: unknown): void {
    if (typeof data !== "string") return;
    try {
      const frame = JSON.parse(data) as { payload?: { seq?: unknown } };
      const seq = frame.payload?.seq;
      if (typeof seq === "number" && (this.lastSeq === undefined || seq > this.lastSeq)) {
        this.lastSeq = seq;
      }
    } catch {
      // Not JSON: nothing to resume from.
    }
  }

  private startHeartbeat(): void {
    this.stopHeartbeat();
    this.heartbeatTimer = setInterval(() => {
      this.send(JSON.stringify({ type: "heartbeat", payload: {} }));
    }, HEARTBEAT_MS);
  }

  private stopHeartbeat(): void {
    clearInterval(this.heartbeatTimer);
  }

  private setState(state: WebSocketState): void {
    if (this.current === state) return;
    this.current = state;
    if (this.debug) console.debug(`[switchboard] ${this.name}: ${state}`);
    this.onStateChange.emit(state);
  }
}
