// Seed 000's client code, with the stock socket.io-client, against a real Switchboard server.
// Run by crates/server/tests/it/socketio.rs, which starts the server and passes its address
// (SWITCHBOARD_BASE) and demo workspace (SWITCHBOARD_DEMO). Every wait is bounded.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import WebSocket from "ws";

const base = process.env.SWITCHBOARD_BASE;
const demo = JSON.parse(process.env.SWITCHBOARD_DEMO);
assert.ok(base && demo.publishableKey, "run through cargo test (socketio.rs)");

const sockets = [];
after(() => sockets.forEach((socket) => socket.close()));

async function api(method, path, key, body) {
  const response = await fetch(base + path, {
    method,
    headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

async function startSession() {
  const { status, body } = await api("POST", "/api/v1/session", demo.publishableKey, {
    agentId: "demo",
    visitor: { name: "Ada" },
  });
  assert.equal(status, 201, JSON.stringify(body));
  return body;
}

// A human agent takes the conversation over (so the demo bot stays quiet).
async function takeOver(conversationId) {
  const { status, body } = await api(
    "POST",
    `/api/v1/conversations/${conversationId}/assignments`,
    demo.agent.accessToken,
    { assigneeId: demo.agent.id },
  );
  assert.equal(status, 200, JSON.stringify(body));
}

async function agentSays(conversationId, content) {
  const { status, body } = await api(
    "POST",
    `/api/v1/conversations/${conversationId}/messages`,
    demo.agent.accessToken,
    { content },
  );
  assert.ok(status === 200 || status === 201, JSON.stringify(body));
  return body;
}

// Exactly as the document connects, with only the host changed.
function connect(auth, options = {}) {
  const socket = io(base, { path: "/socket", auth, ...options });
  sockets.push(socket);
  return socket;
}

// The next `event` on `socket` whose payload passes `accept`; fails after `ms`.
function next(socket, event, accept = () => true, ms = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.off(event, listener);
      reject(new Error(`no ${event} within ${ms} ms`));
    }, ms);
    function listener(payload) {
      if (!accept(payload)) return;
      clearTimeout(timer);
      socket.off(event, listener);
      resolve(payload);
    }
    socket.on(event, listener);
  });
}

function emitWithAck(socket, event, payload) {
  return socket.timeout(5000).emitWithAck(event, payload);
}

async function connectedVisitor() {
  const session = await startSession();
  const conversationId = String(session.conversationId);
  const socket = connect({ token: session.token, conversationId });
  const replay = next(socket, "message-replay");
  await next(socket, "connect");
  socket.emit("join-conversation", { conversationId });
  return { session, conversationId, socket, replay: await replay };
}

async function connectedAgent(conversationId) {
  const socket = connect({ token: demo.agent.accessToken, conversationId });
  const replay = next(socket, "message-replay");
  await next(socket, "connect");
  await replay;
  return socket;
}

test("a visitor connects, joins and is replayed its conversation", async () => {
  const { replay, socket, conversationId } = await connectedVisitor();
  assert.ok(Array.isArray(replay));
  const ack = await emitWithAck(socket, "join-conversation", { conversationId });
  assert.deepEqual(ack, { ok: true });
});

test("typing goes out from the visitor and comes in from the agent", async () => {
  const { socket: visitor, conversationId, session } = await connectedVisitor();
  await takeOver(conversationId);
  const agent = await connectedAgent(conversationId);

  // The document's input handler: typing-start on input, typing-stop after a pause.
  const seenByAgent = next(agent, "typing", (t) => t.isTyping === true);
  visitor.emit("typing-start", { conversationId });
  const typing = await seenByAgent;
  assert.equal(String(typing.conversationId), conversationId);
  assert.match(typing.userId, /^contact:\d+$/);
  const stoppedForAgent = next(agent, "typing", (t) => t.isTyping === false);
  visitor.emit("typing-stop", { conversationId });
  await stoppedForAgent;

  // The document's listener, fed by the agent typing.
  const shown = new Promise((resolve) => {
    visitor.on("typing", ({ isTyping, userId }) => {
      if (isTyping) resolve(userId);
    });
  });
  agent.emit("typing-start", { conversationId });
  assert.equal(await shown, `agent:${demo.agent.id}`);
  assert.ok(session.sessionId);
});

test("the visitor is told when a human agent joins", async () => {
  const { socket, conversationId } = await connectedVisitor();
  const joined = new Promise((resolve) => {
    socket.on("agent-joined", ({ agentName }) => resolve(agentName));
  });
  await takeOver(conversationId);
  assert.equal(await joined, demo.agent.name);
});

test("messages sent while the visitor was away are replayed on reconnect, exactly", async () => {
  const { socket: visitor, conversationId } = await connectedVisitor();
  await takeOver(conversationId);
  const agent = await connectedAgent(conversationId);
  const live = next(visitor, "message", (m) => m.content === "before the gap");
  await agentSays(conversationId, "before the gap");
  await live;

  const offline = next(agent, "presence", (p) => p.status === "offline");
  visitor.disconnect();
  await offline; // the server has seen the visitor go
  await agentSays(conversationId, "missed one");
  await agentSays(conversationId, "missed two");

  const replayed = new Promise((resolve) => {
    visitor.on("message-replay", (messages) => resolve(messages));
  });
  visitor.connect();
  const messages = await replayed;
  assert.deepEqual(
    messages.map((m) => m.content),
    ["missed one", "missed two"],
  );
  assert.ok(messages[0].seq < messages[1].seq);
});

test("too many events get rate-limit-exceeded with retryAfter", async () => {
  const { socket, conversationId } = await connectedVisitor();
  const limited = next(socket, "rate-limit-exceeded");
  for (let i = 0; i < 6; i += 1) socket.emit("typing-start", { conversationId });
  const event = await limited;
  assert.equal(event.type, "rate-limit-exceeded");
  assert.ok(event.retryAfter > 0 && event.retryAfter <= 1000, JSON.stringify(event));
});

test("a bad token is refused with connect_error saying so", async () => {
  const socket = connect({ token: "not-a-token", conversationId: "1" }, { reconnection: false });
  const error = await next(socket, "connect_error");
  assert.equal(error.message, "Token is invalid or expired");
  const missing = connect({}, { reconnection: false });
  assert.equal((await next(missing, "connect_error")).message, "No token provided");
});

test("joining a conversation the principal may not see is refused with an error event", async () => {
  const first = await connectedVisitor();
  const second = await startSession();
  const error = next(first.socket, "error");
  const ack = await emitWithAck(first.socket, "join-conversation", {
    conversationId: second.conversationId,
  });
  assert.equal(ack.error.code, "NOT_FOUND");
  assert.equal((await error).code, "NOT_FOUND");
});

test("send-message is acknowledged with the stored message; bad payloads are refused", async () => {
  const { socket, conversationId } = await connectedVisitor();
  const stored = await emitWithAck(socket, "send-message", {
    conversationId,
    content: "hello",
    clientMessageId: "c-1",
  });
  assert.equal(stored.content, "hello");
  assert.equal(stored.clientMessageId, "c-1");
  const again = await emitWithAck(socket, "send-message", {
    conversationId,
    content: "hello",
    clientMessageId: "c-1",
  });
  assert.equal(again.id, stored.id, "a repeated clientMessageId is stored once");
  const empty = await emitWithAck(socket, "send-message", { conversationId, content: "" });
  assert.equal(empty.error.code, "EMPTY_MESSAGE");
  const noId = await emitWithAck(socket, "send-message", { content: "x" });
  assert.equal(noId.error.code, "INVALID_JSON");
  const notJson = await emitWithAck(socket, "send-message", "just a string");
  assert.equal(notJson.error.code, "INVALID_JSON");
});

test("agents see the visitor's connection status and read receipts", async () => {
  const session = await startSession();
  const conversationId = String(session.conversationId);
  await takeOver(conversationId);
  const agent = await connectedAgent(conversationId);
  const online = next(agent, "presence", (p) => p.status === "online");
  const visitor = connect({ token: session.token, conversationId });
  const presence = await online;
  assert.equal(String(presence.conversationId), conversationId);
  assert.match(presence.userId, /^contact:\d+$/);

  // Delivered: the agent's message reaches the visitor and its status follows.
  const delivered = next(
    agent,
    "message",
    (m) => m.content === "are you there?" && m.status === "delivered",
  );
  const message = await agentSays(conversationId, "are you there?");
  await delivered;

  // Read: the visitor marks it read.
  const read = next(agent, "read");
  const marked = await emitWithAck(visitor, "mark-read", { conversationId, seq: message.seq });
  assert.deepEqual(marked, { ok: true });
  const receipt = await read;
  assert.equal(receipt.seq, message.seq);
  assert.equal(receipt.userId, presence.userId);
});

// A managed native socket for an agent (spec/native.md): a ticket, then /ws/chat.
async function nativeAgentSocket(conversationId) {
  const { body } = await api("POST", "/api/v1/ws/ticket", demo.agent.accessToken, {});
  const ws = new WebSocket(
    `${base.replace("http", "ws")}/ws/chat/${conversationId}?ticket=${body.ticket}`,
  );
  sockets.push(ws);
  const frames = [];
  const waiters = [];
  ws.on("message", (data) => {
    const frame = JSON.parse(data.toString());
    frames.push(frame);
    waiters.forEach((waiter) => waiter());
  });
  await new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  return {
    send: (type, payload) => ws.send(JSON.stringify({ type, payload })),
    // The first frame (already here or still to come) that passes `accept`.
    frame: (accept, ms = 5000) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const found = frames.find(accept);
          if (found) {
            clearTimeout(timer);
            resolve(found);
            return true;
          }
          return false;
        };
        const timer = setTimeout(() => reject(new Error("no such native frame")), ms);
        if (!check()) waiters.push(check);
      }),
  };
}

test("a visitor on Socket.IO and an agent on the native socket see each other", async () => {
  const { socket: visitor, conversationId } = await connectedVisitor();
  await takeOver(conversationId);
  const agent = await nativeAgentSocket(conversationId);

  await emitWithAck(visitor, "send-message", { conversationId, content: "from socket.io" });
  await agent.frame((f) => JSON.stringify(f).includes("from socket.io"));

  const reply = next(visitor, "message", (m) => m.content === "from native");
  agent.send("message", { content: "from native" });
  await reply;

  const typing = next(visitor, "typing", (t) => t.isTyping);
  agent.send("typing", { isTyping: true });
  assert.equal((await typing).userId, `agent:${demo.agent.id}`);
  visitor.emit("typing-start", { conversationId });
  await agent.frame((f) => JSON.stringify(f).includes("typing") && JSON.stringify(f).includes("contact"));
});

test("a visitor on the native session socket and an agent on Socket.IO see each other", async () => {
  const session = await startSession();
  const conversationId = String(session.conversationId);
  await takeOver(conversationId);
  const agent = await connectedAgent(conversationId);
  const ws = new WebSocket(
    `${base.replace("http", "ws")}/ws/session/${session.sessionId}?token=${session.token}`,
  );
  sockets.push(ws);
  const frames = [];
  ws.on("message", (data) => frames.push(JSON.parse(data.toString())));
  await new Promise((resolve) => ws.once("open", resolve));

  const seen = next(agent, "message", (m) => m.content === "native visitor here");
  ws.send(JSON.stringify({ type: "visitor_message", payload: { text: "native visitor here" } }));
  await seen;
  const typing = next(agent, "typing", (t) => t.isTyping);
  ws.send(JSON.stringify({ type: "typing", payload: { isTyping: true } }));
  assert.match((await typing).userId, /^contact:\d+$/);

  await emitWithAck(agent, "send-message", { conversationId, content: "agent on socket.io" });
  const deadline = Date.now() + 5000;
  while (!frames.some((f) => f.payload?.text === "agent on socket.io")) {
    assert.ok(Date.now() < deadline, "the native visitor got the agent's message");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
});

test("long-polling clients work too", async () => {
  const session = await startSession();
  const conversationId = String(session.conversationId);
  const socket = connect({ token: session.token, conversationId }, { transports: ["polling"] });
  const replay = next(socket, "message-replay");
  await next(socket, "connect");
  await replay;
  assert.equal(socket.io.engine.transport.name, "polling");
  const stored = await emitWithAck(socket, "send-message", { conversationId, content: "over polling" });
  assert.equal(stored.content, "over polling");
});

test("the visitor is told when the agent leaves the conversation", async () => {
  const { socket, conversationId } = await connectedVisitor();
  const joined = next(socket, "agent-joined");
  await takeOver(conversationId);
  await joined;
  const left = next(socket, "agent-left");
  const { status } = await api(
    "POST",
    `/api/v1/conversations/${conversationId}/assignments`,
    demo.agent.accessToken,
    { assigneeId: null },
  );
  assert.equal(status, 200);
  assert.deepEqual(await left, {
    conversationId: Number(conversationId),
    agentName: demo.agent.name,
  });
});

test("the document's own credential, the account API key, connects as the integration", async () => {
  const session = await startSession();
  const conversationId = String(session.conversationId);
  const socket = connect({ token: demo.apiKey, conversationId });
  await next(socket, "message-replay");
  const seen = next(socket, "message", (m) => m.content === "hello integration");
  const visitor = connect({ token: session.token, conversationId });
  await next(visitor, "message-replay");
  await emitWithAck(visitor, "send-message", { conversationId, content: "hello integration" });
  await seen;
  const publishable = connect({ token: demo.publishableKey }, { reconnection: false });
  assert.equal((await next(publishable, "connect_error")).message, "Token is invalid or expired");
});

test("one connection follows at most 100 conversations", async () => {
  const agent = connect({ token: demo.agent.accessToken });
  await next(agent, "connect");
  let lastAck;
  for (let i = 0; i < 101; i += 1) {
    const session = await startSession();
    lastAck = await emitWithAck(agent, "join-conversation", { conversationId: session.conversationId });
    if (i < 100) assert.deepEqual(lastAck, { ok: true }, `join ${i + 1}`);
  }
  assert.equal(lastAck.error.code, "INVALID_JSON");
  assert.match(lastAck.error.message, /too many conversations/);
});
