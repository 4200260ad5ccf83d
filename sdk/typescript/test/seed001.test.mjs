// Seed 001's visitor code, with the SDK as built (dist/), against the real server.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { SwitchboardClient, VisitorClient } from "../dist/index.js";
import { startServer, next } from "./server.mjs";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import axios from "axios";
import FormData from "form-data";

let server;
const visitors = [];
before(async () => {
  server = await startServer();
});
after(async () => {
  visitors.forEach((visitor) => visitor.disconnect());
  await server.dispose();
});

function visitorClient(options = {}) {
  return visitorClient_(options);
}

function visitorClient_(options = {}) {
  const client = new VisitorClient({
    baseUrl: server.baseUrl,
    inboxIdentifier: server.demo.inboxIdentifier,
    WebSocket,
    reconnectDelay: 100,
    ...options,
  });
  visitors.push(client);
  return client;
}

/** The next `event` of a visitor client passing `accept`, within `ms`. */
function nextEvent(client, event, accept = () => true, ms = 5000) {
  return next(
    {
      subscribe(listener) {
        client.on(event, listener);
        return () => client.off(event, listener);
      },
    },
    accept,
    ms,
  );
}

const agentToken = () => server.demo.agent.accessToken;

test("the document's code: connect, initialized, account status, a message and its echo", async () => {
  const client = visitorClient({ name: "Ada" });
  const initialized = nextEvent(client, "initialized");
  await client.connect().then(() => {});
  const data = await initialized;
  assert.ok(["online", "offline"].includes(data.account.status));
  assert.ok(data.contact.id && data.conversation.id && Array.isArray(data.messages));
  assert.ok(client.visitorToken, "the visitor's token to keep");

  const echoed = nextEvent(client, "chat.message_received", (d) => d.message.content === "Hello");
  const message = await client.chatMessage({ content: { type: "text", text: "Hello" } });
  const received = await echoed;
  assert.equal(received.message.id, message.id);
});

test("agent typing, account status and replies reach the visitor", async () => {
  const client = visitorClient();
  await client.connect();
  const conversation = (await nextEvent(client, "initialized", () => true, 100).catch(() => null)) ?? null;
  assert.equal(conversation, null, "initialized fired before connect resolved, once");

  const agent = new SwitchboardClient({ baseUrl: server.baseUrl, token: agentToken(), WebSocket });
  const online = nextEvent(client, "account.status_updated", (s) => s === "online");
  const notifications = await agent.websocket.connect("/notifications", {}, "notifications");
  assert.equal(await online, "online");

  const convId = (await server.api("GET", `/public/api/v1/inboxes/${server.demo.inboxIdentifier}/contacts/${client.visitorToken}/conversations`)).body[0].id;
  const typing = nextEvent(client, "chat.agent_typing", (d) => d.isTyping);
  await server.api("POST", `/api/v1/conversations/${convId}/typing`, agentToken(), { isTyping: true });
  const shown = await typing;
  assert.equal(shown.agent.id, server.demo.agent.id);

  const reply = nextEvent(client, "chat.message_received", (d) => d.message.content === "How can I help?");
  await server.api("POST", `/api/v1/conversations/${convId}/messages`, agentToken(), { content: "How can I help?" });
  assert.equal((await reply).message.message_type, 1);

  const offline = nextEvent(client, "account.status_updated", (s) => s === "offline");
  notifications.close();
  assert.equal(await offline, "offline");
});

test("two tabs of one visitor stay in sync", async () => {
  const first = visitorClient();
  await first.connect();
  const second = visitorClient({ visitorToken: first.visitorToken });
  const secondInit = nextEvent(second, "initialized");
  await second.connect();
  const { conversation } = await secondInit;

  const inSecond = nextEvent(second, "chat.message_received", (d) => d.message.content === "from tab one");
  const sent = await first.chatMessage({ content: { type: "text", text: "from tab one" } });
  assert.equal((await inSecond).message.id, sent.id);

  const read = nextEvent(second, "chat.contact_read");
  await first.chatRead();
  const synced = await read;
  assert.equal(synced.conversationId, conversation.id);
  assert.ok(synced.lastSeenAt > 0);
});

test("a server restart: initialized again, and what was queued offline is sent once", async () => {
  const client = visitorClient();
  await client.connect();
  const token = client.visitorToken;
  const conversations = await server.api(
    "GET",
    `/public/api/v1/inboxes/${server.demo.inboxIdentifier}/contacts/${token}/conversations`,
  );
  const convId = conversations.body[0].id;

  await server.stop();
  const pending = client.chatMessage({ content: { type: "text", text: "sent while offline" } });
  const again = nextEvent(client, "initialized", () => true, 15000);
  await server.start();
  const data = await again;
  const message = await pending;
  assert.equal(message.content, "sent while offline");
  await new Promise((resolve) => setTimeout(resolve, 300));
  const listed = await server.api(
    "GET",
    `/public/api/v1/inboxes/${server.demo.inboxIdentifier}/contacts/${token}/conversations/${convId}/messages`,
  );
  const copies = listed.body.filter((m) => m.content === "sent while offline");
  assert.equal(copies.length, 1, "queued once, sent once");
  assert.ok(Array.isArray(data.messages));
});

test("bad input is refused clearly", async () => {
  const client = visitorClient();
  await client.connect();
  await assert.rejects(client.chatMessage({ content: { type: "image" } }));
  await assert.rejects(client.chatMessage({ content: { type: "text", text: "" } }), (error) => {
    assert.equal(error.code, "EMPTY_MESSAGE");
    return true;
  });
  const stranger = visitorClient({ visitorToken: "no-such-visitor" });
  await assert.rejects(stranger.connect(), (error) => error.status === 404);
});

// A tiny PNG (1x1), written where the document reads its file from.
const PNG = Buffer.from(
  "89504e470d0a1a0a0000000d4948445200000001000000010806000000" +
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082",
  "hex",
);

test("the document's file upload: init, a multipart POST with axios, finish", async () => {
  const visitorClient = visitorClient_();
  await visitorClient.connect();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sdk-upload-"));
  const file = path.join(dir, "pixel.png");
  fs.writeFileSync(file, PNG);

  const received = nextEvent(visitorClient, "chat.message_received", (d) => d.message.content === "pixel.png");
  // As the document writes it.
  const uploadInfo = await visitorClient.chatUploadInit()
  const formData = new FormData()
  formData.append('file', fs.readFileSync(file), {
    filename: 'pixel.png',
  })
  const uploadRes = await axios.post(uploadInfo.url, formData.getBuffer(), {
    headers: formData.getHeaders(),
    maxContentLength: Infinity,
  })
  const message = await visitorClient.chatUploadFinish(uploadInfo.token)

  assert.equal(uploadRes.status, 201);
  assert.equal(message.contentType, "file");
  assert.equal((await received).message.id, message.id);
  const attachment = message.contentAttributes.attachment;
  assert.deepEqual(
    { fileName: attachment.fileName, contentType: attachment.contentType, size: attachment.size },
    { fileName: "pixel.png", contentType: "image/png", size: PNG.length },
  );

  // The conversation's parties download it; nobody else does.
  const contact = await server.api(
    "GET",
    `/public/api/v1/inboxes/${server.demo.inboxIdentifier}/contacts/${visitorClient.visitorToken}`,
  );
  const fetchAs = (token) =>
    fetch(server.baseUrl + attachment.url, { headers: { authorization: `Bearer ${token}` } });
  const mine = await fetchAs(contact.body.pubsub_token);
  assert.equal(mine.status, 200);
  assert.deepEqual(Buffer.from(await mine.arrayBuffer()), PNG);
  assert.equal((await fetchAs(agentToken())).status, 200);
  const stranger = visitorClient_();
  await stranger.connect();
  const strangerContact = await server.api(
    "GET",
    `/public/api/v1/inboxes/${server.demo.inboxIdentifier}/contacts/${stranger.visitorToken}`,
  );
  assert.equal((await fetchAs(strangerContact.body.pubsub_token)).status, 404);

  // Single use: the URL takes one file, the token finishes once.
  const again = await axios.post(uploadInfo.url, formData.getBuffer(), {
    headers: formData.getHeaders(),
    validateStatus: () => true,
  });
  assert.equal(again.status, 404);
  await assert.rejects(visitorClient.chatUploadFinish(uploadInfo.token), (e) => e.status === 404);
  fs.rmSync(dir, { recursive: true, force: true });
});

test("refused uploads say why, and the token stays usable", async () => {
  const client = visitorClient_();
  await client.connect();
  const info = await client.chatUploadInit();
  const post = (buffer, filename) => {
    const form = new FormData();
    form.append("file", buffer, { filename });
    return axios.post(info.url, form.getBuffer(), { headers: form.getHeaders(), validateStatus: () => true });
  };
  const wrongType = await post(Buffer.from("MZ..."), "tool.exe");
  assert.equal(wrongType.status, 415);
  assert.equal(wrongType.data.error.code, "UPLOAD_TYPE_REFUSED");
  const tooLarge = await post(Buffer.alloc(10 * 1024 * 1024 + 1, 1), "big.txt");
  assert.equal(tooLarge.status, 413);
  await assert.rejects(client.chatUploadFinish(info.token), (e) => e.code === "UPLOAD_NOT_RECEIVED");
  const ok = await post(Buffer.from("hello"), "hello.txt");
  assert.equal(ok.status, 201);
  const message = await client.chatUploadFinish(info.token);
  assert.equal(message.contentAttributes.attachment.contentType, "text/plain");
  const unknown = await axios.post(`${server.baseUrl}/api/v1/uploads/up_nope/file`, "x", {
    validateStatus: () => true,
  });
  assert.equal(unknown.status, 404);
});
