export { Emitter } from "./emitter.js";
export {
  ManagedSocket,
  backoff,
  type SocketOptions,
  type WebSocketConstructor,
  type WebSocketLike,
  type WebSocketState,
} from "./socket.js";
export {
  SwitchboardClient,
  SwitchboardError,
  WebSocketManager,
  type SwitchboardClientOptions,
} from "./client.js";
export {
  VisitorClient,
  type AccountStatus,
  type ConnectionState,
  type Contact,
  type Conversation,
  type InitializedData,
  type Message,
  type VisitorClientOptions,
  type VisitorEvents,
} from "./visitor.js";
