// Seed 003's managed sockets, with the SDK as built (dist/), against the real server.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { SwitchboardClient } from "../dist/index.js";
import { startServer, next } from "./server.mjs";

let server;
let client;
before(async () => {
  server = await startServer();
  client = new SwitchboardClient({
    baseUrl: server.baseUrl,
    token: server.demo.agent.accessToken,
    WebSocket,
  });
});
after(async () => {
  client.websocket.closeAll();
  await server.dispose();
});

async function newThread() {
  const { status, body } = await server.api("POST", "/api/v1/session", server.demo.publishableKey, {
    agentId: "demo",
  });
  assert.equal(status, 201, JSON.stringify(body));
  return { id: body.conversationId };
}

const agentSays = (threadId, content) =>
  server.api("POST", `/api/v1/conversations/${threadId}/messages`, server.demo.agent.accessToken, {
    content,
  });

test("the document's code: connectToChat, onMessage, unsubscribe, close", async () => {
  const thread = await newThread();
  const socket = await client.websocket.connectToChat(thread.id);
  assert.equal(socket.state, "open");
  assert.equal(socket.isOpen, true);
  const received = [];
  const unsubscribe = socket.onMessage.subscribe((event) => {
    const payload = JSON.parse(event.data);
    received.push(payload);
  });
  const arrived = next(socket.onMessage, (e) => e.data.includes("hello thread"));
  await agentSays(thread.id, "hello thread");
  await arrived;
  assert.ok(received.some((frame) => frame.type === "message.created"));
  unsubscribe();
  const countBefore = received.length;
  const later = next(socket.onMessage, (e) => e.data.includes("after unsubscribe"));
  await agentSays(thread.id, "after unsubscribe");
  await later;
  assert.equal(received.length, countBefore, "an unsubscribed listener hears nothing");
  const closed = next(socket.onStateChange, (s) => s === "closed");
  socket.close();
  await closed;
  assert.equal(socket.isOpen, false);
});

test("a server restart: reconnecting, then open again, resuming without a gap", async () => {
  const thread = await newThread();
  const socket = await client.websocket.connectToChat(thread.id, { reconnectDelay: 100 });
  const states = [];
  socket.onStateChange.subscribe((state) => states.push(state));
  const attempts = [];
  socket.onReconnecting.subscribe((attempt) => attempts.push(attempt));
  const seen = [];
  socket.onMessage.subscribe((event) => seen.push(JSON.parse(event.data)));
  const before = next(socket.onMessage, (e) => e.data.includes("before the restart"));
  await agentSays(thread.id, "before the restart");
  await before;

  const reconnecting = next(socket.onStateChange, (s) => s === "reconnecting");
  await server.stop();
  await reconnecting;
  const reopened = next(socket.onStateChange, (s) => s === "open", 15000);
  await server.start();
  await reopened;
  assert.ok(states.includes("reconnecting") && states.at(-1) === "open", states.join(","));
  assert.ok(attempts.length >= 1 && attempts[0] === 1);

  const after = next(socket.onMessage, (e) => e.data.includes("after the restart"));
  await agentSays(thread.id, "after the restart");
  await after;
  const created = seen.filter((f) => f.type === "message.created").map((f) => f.payload.seq);
  assert.equal(new Set(created).size, created.length, "no message twice after resuming");
  const closed = next(socket.onStateChange, (s) => s === "closed");
  socket.close();
  await closed;
});

test("closeAll closes every socket; connectionCount follows", async () => {
  const before = client.websocket.connectionCount;
  const a = await client.websocket.connectToChat((await newThread()).id);
  const b = await client.websocket.connect("/notifications", {}, "notifications");
  assert.equal(client.websocket.connectionCount, before + 2);
  const closedA = next(a.onStateChange, (s) => s === "closed");
  const closedB = next(b.onStateChange, (s) => s === "closed");
  client.websocket.closeAll();
  await closedA;
  await closedB;
  assert.equal(client.websocket.connectionCount, 0);
});

test("maxReconnectAttempts gives up into closed", async () => {
  const socket = await client.websocket.connectToChat((await newThread()).id, {
    reconnectDelay: 20,
    maxReconnectAttempts: 2,
  });
  const attempts = [];
  socket.onReconnecting.subscribe((attempt) => attempts.push(attempt));
  const closed = next(socket.onStateChange, (s) => s === "closed", 10000);
  await server.stop();
  await closed;
  assert.deepEqual(attempts, [1, 2]);
  assert.equal(client.websocket.connectionCount, 0);
  await server.start();
});

test("connectToTranscript streams a transcript's segments", async () => {
  const workspaceId = server.demo.accountId;
  const created = await server.api("POST", "/api/v1/transcripts", server.demo.agent.accessToken, {
    title: "Call",
  });
  assert.equal(created.status, 201);
  const socket = await client.websocket.connectToTranscript(workspaceId, created.body.id);
  const update = next(socket.onMessage, (e) => e.data.includes("transcript.updated"));
  await server.api(
    "POST",
    `/api/v1/transcripts/${created.body.id}/segments`,
    server.demo.agent.accessToken,
    { speaker: "agent", text: "Hello", startMs: 0, endMs: 500 },
  );
  const payload = JSON.parse((await update).data).payload;
  assert.equal(payload.segment.text, "Hello");
  socket.destroy();
  assert.equal(socket.onMessage.listenerCount, 0, "destroy drops every listener");
});

test("a refused credential or an unknown thread does not retry forever", async () => {
  const stranger = new SwitchboardClient({ baseUrl: server.baseUrl, token: "nope", WebSocket });
  await assert.rejects(stranger.websocket.connectToChat(1));
  assert.equal(stranger.websocket.connectionCount, 0);
  const ticket = await client.websocket.getTicket();
  assert.equal(typeof ticket, "string");
  const unknown = client.websocket.connectToChat(999999, { reconnectDelay: 20 });
  const socket = await unknown.catch(() => undefined);
  if (socket) {
    await next(socket.onStateChange, (s) => s === "closed");
  }
});
