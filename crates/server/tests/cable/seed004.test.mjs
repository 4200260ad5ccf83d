// Seed 004's clients against a real Switchboard server: raw frames exactly as the document
// writes them, and the stock @rails/actioncable consumer (with `ws` as its WebSocket). Run by
// crates/server/tests/it/cable.rs, which starts the server and passes its address
// (SWITCHBOARD_BASE) and demo workspace (SWITCHBOARD_DEMO). Every wait is bounded.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";

// What a browser gives @rails/actioncable and Node does not.
globalThis.addEventListener ??= () => {};
globalThis.removeEventListener ??= () => {};
globalThis.document ??= { visibilityState: "visible" };
const ActionCable = (await import("@rails/actioncable")).default;
ActionCable.adapters.WebSocket = WebSocket;

const base = process.env.SWITCHBOARD_BASE;
const demo = JSON.parse(process.env.SWITCHBOARD_DEMO);
assert.ok(base && demo.inboxIdentifier, "run through cargo test (cable.rs)");
const cableUrl = `${base.replace("http", "ws")}/cable`;
const stringify = (payload = {}) => JSON.stringify(payload);

const closers = [];
after(() => closers.forEach((close) => close()));

async function api(method, path, key, body) {
  const headers = { "content-type": "application/json" };
  if (key) headers.authorization = `Bearer ${key}`;
  const response = await fetch(base + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

const widget = (path = "") => `/public/api/v1/inboxes/${demo.inboxIdentifier}/contacts${path}`;

// A widget's contact with one conversation, through the public inbox API.
async function widgetContact(name = "Lin") {
  const created = await api("POST", widget(), null, { name, email: `${name.toLowerCase()}@example.com` });
  assert.equal(created.status, 200, JSON.stringify(created.body));
  const contact = created.body;
  assert.ok(contact.pubsub_token && contact.source_id);
  const conversation = await api("POST", widget(`/${contact.source_id}/conversations`), null, {});
  assert.equal(conversation.status, 200, JSON.stringify(conversation.body));
  return { contact, conversation: conversation.body };
}

// A raw WebSocket that keeps every frame, with a bounded wait for the next that matches.
async function rawSocket() {
  const ws = new WebSocket(cableUrl, ["actioncable-v1-json"]);
  closers.push(() => ws.terminate());
  const frames = [];
  const waiters = new Set();
  ws.on("message", (data) => {
    frames.push(JSON.parse(data.toString()));
    waiters.forEach((check) => check());
  });
  await new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  let cursor = 0;
  return {
    ws,
    frames,
    send: (payload) => ws.send(typeof payload === "string" ? payload : stringify(payload)),
    // The next frame (after those already taken) that passes `accept`.
    next(accept = () => true, ms = 5000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          while (cursor < frames.length) {
            const frame = frames[cursor++];
            if (accept(frame)) {
              waiters.delete(check);
              clearTimeout(timer);
              resolve(frame);
              return;
            }
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no matching frame within ${ms} ms`));
        }, ms);
        waiters.add(check);
        check();
      });
    },
  };
}

function agentIdentifier() {
  return stringify({
    channel: "RoomChannel",
    pubsub_token: demo.agent.pubsubToken,
    account_id: demo.accountId,
    user_id: demo.agent.id,
  });
}

const isEvent = (name, accept = () => true) => (frame) =>
  frame.message?.event === name && accept(frame.message.data);

test("welcome, then pings every 3 s", async () => {
  const socket = await rawSocket();
  assert.deepEqual(await socket.next(), { type: "welcome" });
  const ping = await socket.next((f) => f.type === "ping", 4500);
  assert.ok(Number.isInteger(ping.message) && Math.abs(ping.message - Date.now() / 1000) < 10);
  assert.equal(socket.ws.protocol, "actioncable-v1-json");
});

test("agent and contact subscriptions are confirmed with the identifier echoed exactly", async () => {
  const socket = await rawSocket();
  await socket.next((f) => f.type === "welcome");
  // The document's own spelling, spaces included.
  const identifier = `{"channel":"RoomChannel","pubsub_token":"${demo.agent.pubsubToken}","account_id": ${demo.accountId},"user_id":${demo.agent.id} }`;
  socket.send({ command: "subscribe", identifier });
  const confirmed = await socket.next((f) => f.type === "confirm_subscription");
  assert.equal(confirmed.identifier, identifier);

  const { contact } = await widgetContact("Ada");
  const contactIdentifier = stringify({ channel: "RoomChannel", pubsub_token: contact.pubsub_token });
  socket.send({ command: "subscribe", identifier: contactIdentifier });
  const second = await socket.next((f) => f.type?.endsWith("subscription"));
  assert.deepEqual(second, { identifier: contactIdentifier, type: "confirm_subscription" });
});

test("bad tokens are rejected; garbage frames are ignored and the connection stays", async () => {
  const socket = await rawSocket();
  await socket.next((f) => f.type === "welcome");
  const bad = stringify({ channel: "RoomChannel", pubsub_token: "nope" });
  socket.send({ command: "subscribe", identifier: bad });
  assert.deepEqual(await socket.next((f) => f.type?.endsWith("subscription")), {
    identifier: bad,
    type: "reject_subscription",
  });
  // An agent token with the wrong user id is rejected too.
  const wrongUser = stringify({
    channel: "RoomChannel",
    pubsub_token: demo.agent.pubsubToken,
    account_id: demo.accountId,
    user_id: demo.agent.id + 1000,
  });
  socket.send({ command: "subscribe", identifier: wrongUser });
  assert.equal((await socket.next((f) => f.type?.endsWith("subscription"))).type, "reject_subscription");
  for (const garbage of ["not json", "{}", '{"command":"subscribe"}', "[1,2]", '{"command":"dance","identifier":"{}"}']) {
    socket.send(garbage);
  }
  socket.send({ command: "subscribe", identifier: agentIdentifier() });
  assert.equal((await socket.next((f) => f.type?.endsWith("subscription"))).type, "confirm_subscription");
  // One connection holds at most 16 subscriptions: spellings of one identifier do not pile up.
  const answers = [];
  for (let spaces = 1; spaces <= 20; spaces += 1) {
    const identifier = `{"channel":"RoomChannel","pubsub_token":"${demo.agent.pubsubToken}","account_id":${" ".repeat(spaces)}${demo.accountId},"user_id":${demo.agent.id}}`;
    socket.send({ command: "subscribe", identifier });
    answers.push((await socket.next((f) => f.identifier === identifier && f.type?.endsWith("subscription"))).type);
  }
  assert.equal(answers.filter((type) => type === "confirm_subscription").length, 15);
  assert.equal(answers.filter((type) => type === "reject_subscription").length, 5);
});

test("update_presence is answered with the principal's presence.update", async () => {
  const socket = await rawSocket();
  const identifier = agentIdentifier();
  socket.send({ command: "subscribe", identifier });
  await socket.next((f) => f.type === "confirm_subscription");
  socket.send({ command: "message", identifier, data: stringify({ action: "update_presence" }) });
  const presence = await socket.next(isEvent("presence.update"));
  assert.equal(presence.identifier, identifier);
  assert.equal(presence.message.data.account_id, demo.accountId);
  assert.equal(presence.message.data.users[String(demo.agent.id)], "online");
});

function consumerFor(params) {
  const consumer = ActionCable.createConsumer(cableUrl);
  closers.push(() => consumer.disconnect());
  const received = [];
  const waiters = new Set();
  let connected;
  const ready = new Promise((resolve, reject) => {
    connected = resolve;
    setTimeout(() => reject(new Error("not connected within 5 s")), 5000);
  });
  const subscription = consumer.subscriptions.create(params, {
    connected: () => connected(),
    rejected: () => connected(Promise.reject(new Error("rejected"))),
    received: (data) => {
      received.push(data);
      waiters.forEach((check) => check());
    },
  });
  let cursor = 0;
  return {
    consumer,
    subscription,
    received,
    ready,
    next(name, accept = () => true, ms = 5000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          while (cursor < received.length) {
            const data = received[cursor++];
            if (data.event === name && accept(data.data)) {
              waiters.delete(check);
              clearTimeout(timer);
              resolve(data.data);
              return;
            }
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no ${name} within ${ms} ms`));
        }, ms);
        waiters.add(check);
        check();
      });
    },
  };
}

const agentParams = () => ({
  channel: "RoomChannel",
  pubsub_token: demo.agent.pubsubToken,
  account_id: demo.accountId,
  user_id: demo.agent.id,
});

test("a visitor's message reaches the agent as message.created in the document's shape", async () => {
  const agent = consumerFor(agentParams());
  await agent.ready;
  const { contact, conversation } = await widgetContact("Grace");
  const visitor = consumerFor({ channel: "RoomChannel", pubsub_token: contact.pubsub_token });
  await visitor.ready;

  const posted = await api(
    "POST",
    widget(`/${contact.source_id}/conversations/${conversation.id}/messages`),
    null,
    { content: "hello from the widget", echo_id: "echo-1" },
  );
  assert.equal(posted.status, 200, JSON.stringify(posted.body));
  const again = await api(
    "POST",
    widget(`/${contact.source_id}/conversations/${conversation.id}/messages`),
    null,
    { content: "hello from the widget", echo_id: "echo-1" },
  );
  assert.equal(again.body.id, posted.body.id, "echo_id makes a retry idempotent");

  const message = await agent.next("message.created", (m) => m.content === "hello from the widget");
  assert.equal(message.message_type, 0);
  assert.ok(Number.isInteger(message.created_at));
  assert.equal(typeof message.updated_at, "string");
  assert.equal(message.conversation_id, conversation.id);
  assert.equal(message.account_id, demo.accountId);
  assert.equal(message.inbox_id, demo.inboxId);
  assert.equal(message.private, false);
  assert.equal(message.sender_type, "Contact");
  assert.equal(message.sender.type, "contact");
  assert.equal(message.sender.name, "Grace");
  assert.equal(message.echo_id, "echo-1");
  await visitor.next("message.created", (m) => m.content === "hello from the widget");

  // The conversation's shape, through conversation.status_changed.
  const status = await api("POST", `/api/v1/conversations/${conversation.id}/status`, demo.agent.accessToken, {
    status: "pending",
  });
  assert.equal(status.status, 200, JSON.stringify(status.body));
  const changed = await visitor.next("conversation.status_changed");
  assert.equal(changed.id, conversation.id);
  assert.equal(changed.status, "pending");
  assert.equal(changed.meta.sender.type, "contact");
  assert.equal(changed.contact_inbox.source_id, contact.source_id);
  assert.ok(Number.isInteger(changed.timestamp));
  assert.equal(changed.account_id, demo.accountId);
});

test("private notes are withheld from the contact", async () => {
  const { contact, conversation } = await widgetContact("Noor");
  const visitor = consumerFor({ channel: "RoomChannel", pubsub_token: contact.pubsub_token });
  await visitor.ready;
  const agent = consumerFor(agentParams());
  await agent.ready;
  const say = (content, isPrivate) =>
    api("POST", `/api/v1/conversations/${conversation.id}/messages`, demo.agent.accessToken, {
      content,
      private: isPrivate,
    });
  await say("a private note", true);
  await agent.next("message.created", (m) => m.content === "a private note" && m.private === true);
  await say("a public reply", false);
  await visitor.next("message.created", (m) => m.content === "a public reply");
  assert.ok(
    !visitor.received.some((r) => JSON.stringify(r).includes("a private note")),
    "the contact never saw the note",
  );
});

test("typing goes both ways; contacts are shown no other contact's presence", async () => {
  const agent = consumerFor(agentParams());
  await agent.ready;
  const first = await widgetContact("Ines");
  const second = await widgetContact("Omar");
  const visitor = consumerFor({ channel: "RoomChannel", pubsub_token: first.contact.pubsub_token });
  await visitor.ready;
  // The agent sees the contact come online.
  await agent.next("presence.update", (p) => p.contacts[String(first.conversation.meta.sender.id)] === "online");

  const toggled = await api(
    "POST",
    widget(`/${first.contact.source_id}/conversations/${first.conversation.id}/toggle_typing`),
    null,
    { typing_status: "on" },
  );
  assert.equal(toggled.status, 200);
  const typing = await agent.next("conversation.typing_on", (t) => t.conversation.id === first.conversation.id);
  assert.equal(typing.user.type, "contact");
  assert.equal(typing.is_private, false);
  assert.equal(typing.account_id, demo.accountId);

  agent.subscription.perform("typing_on", { conversation_id: first.conversation.id });
  const shown = await visitor.next("conversation.typing_on");
  assert.equal(shown.user.type, "user");
  assert.equal(shown.user.id, demo.agent.id);

  // Another contact comes online: the first contact is not told.
  const other = consumerFor({ channel: "RoomChannel", pubsub_token: second.contact.pubsub_token });
  await other.ready;
  await agent.next("presence.update", (p) => p.contacts[String(second.conversation.meta.sender.id)] === "online");
  visitor.subscription.perform("update_presence");
  await visitor.next("presence.update");
  for (const received of visitor.received.filter((r) => r.event === "presence.update")) {
    const ids = Object.keys(received.data.contacts);
    assert.ok(ids.every((id) => id === String(first.conversation.meta.sender.id)), JSON.stringify(received));
  }
});

test("a contact that reconnects and resubscribes is sent what it missed, in order", async () => {
  const agent = consumerFor(agentParams());
  await agent.ready;
  const { contact, conversation } = await widgetContact("Zoe");
  const contactId = String(conversation.meta.sender.id);
  const say = (content) =>
    api("POST", `/api/v1/conversations/${conversation.id}/messages`, demo.agent.accessToken, { content });

  const first = consumerFor({ channel: "RoomChannel", pubsub_token: contact.pubsub_token });
  await first.ready;
  await say("before the gap");
  await first.next("message.created", (m) => m.content === "before the gap");
  first.consumer.disconnect();
  await agent.next("presence.update", (p) => p.contacts[contactId] === "offline");
  await say("missed one");
  await say("missed two");

  const again = consumerFor({ channel: "RoomChannel", pubsub_token: contact.pubsub_token });
  await again.ready;
  const one = await again.next("message.created");
  const two = await again.next("message.created");
  assert.deepEqual([one.content, two.content], ["missed one", "missed two"]);
  assert.ok(!again.received.some((r) => r.data?.content === "before the gap"), "nothing twice");
});

test("the public inbox API answers in the product's shapes and refuses what it cannot do", async () => {
  const { contact, conversation } = await widgetContact("Uma");
  const fetched = await api("GET", widget(`/${contact.source_id}`));
  assert.equal(fetched.status, 200);
  assert.equal(fetched.body.pubsub_token, contact.pubsub_token);
  const patched = await api("PATCH", widget(`/${contact.source_id}`), null, { name: "Uma B" });
  assert.equal(patched.body.name, "Uma B");
  const listed = await api("GET", widget(`/${contact.source_id}/conversations`));
  assert.deepEqual(listed.body.map((c) => c.id), [conversation.id]);
  const seen = await api(
    "POST",
    widget(`/${contact.source_id}/conversations/${conversation.id}/update_last_seen`),
  );
  assert.equal(seen.status, 200);
  const messages = await api("GET", widget(`/${contact.source_id}/conversations/${conversation.id}/messages`));
  assert.ok(Array.isArray(messages.body));

  assert.equal((await api("GET", "/public/api/v1/inboxes/nope/contacts/x")).status, 404);
  assert.equal((await api("GET", widget("/not-a-source"))).status, 404);
  const other = await widgetContact("Vic");
  const foreign = await api(
    "POST",
    widget(`/${contact.source_id}/conversations/${other.conversation.id}/messages`),
    null,
    { content: "not yours" },
  );
  assert.equal(foreign.status, 404);
  const badTyping = await api(
    "POST",
    widget(`/${contact.source_id}/conversations/${conversation.id}/toggle_typing`),
    null,
    { typing_status: "maybe" },
  );
  assert.equal(badTyping.status, 400);
  const empty = await api(
    "POST",
    widget(`/${contact.source_id}/conversations/${conversation.id}/messages`),
    null,
    { content: "" },
  );
  assert.equal(empty.status, 400);
  const unknownField = await api("POST", widget(), null, { nickname: "x" });
  assert.equal(unknownField.status, 400);
});

test("agents see only the inboxes they belong to", async () => {
  const created = await api("POST", "/api/v1/agents", demo.apiKey, {
    name: "Outsider",
    email: `outsider-${Date.now()}@example.com`,
    role: "agent",
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const outsider = created.body;
  const inbox = await api("POST", "/api/v1/inboxes", demo.apiKey, { name: `Other ${Date.now()}` });
  assert.equal(inbox.status, 201, JSON.stringify(inbox.body));
  const member = await api("POST", `/api/v1/inboxes/${inbox.body.id}/members`, demo.apiKey, {
    agentIds: [outsider.id],
  });
  assert.ok(member.status < 300, JSON.stringify(member.body));

  const watcher = consumerFor({
    channel: "RoomChannel",
    pubsub_token: outsider.pubsubToken,
    account_id: demo.accountId,
    user_id: outsider.id,
  });
  await watcher.ready;
  // A message in the demo inbox, which the outsider does not belong to…
  const { contact, conversation } = await widgetContact("Yan");
  const post = (content) =>
    api("POST", widget(`/${contact.source_id}/conversations/${conversation.id}/messages`), null, { content });
  await post("not for the outsider");
  // …and one in the outsider's inbox, which it sees.
  const own = await api("POST", `/public/api/v1/inboxes/${inbox.body.identifier}/contacts`, null, { name: "Kai" });
  const ownConversation = await api(
    "POST",
    `/public/api/v1/inboxes/${inbox.body.identifier}/contacts/${own.body.source_id}/conversations`,
    null,
    {},
  );
  await api(
    "POST",
    `/public/api/v1/inboxes/${inbox.body.identifier}/contacts/${own.body.source_id}/conversations/${ownConversation.body.id}/messages`,
    null,
    { content: "for the outsider" },
  );
  await watcher.next("message.created", (m) => m.content === "for the outsider");
  assert.ok(!watcher.received.some((r) => JSON.stringify(r).includes("not for the outsider")));
  const listed = await api("GET", widget(`/${contact.source_id}/conversations/${conversation.id}/messages`));
  // The contact reads its conversation back: its message, then the inbox bot's answer.
  assert.equal(listed.body[0].content, "not for the outsider");
  assert.equal(listed.body[0].message_type, 0);
  assert.ok(listed.body.slice(1).every((m) => m.message_type === 1), JSON.stringify(listed.body));
});

test("an agent that reconnects is sent what it missed; the read action moves the read position", async () => {
  const { contact, conversation } = await widgetContact("Ravi");
  const post = (content) =>
    api("POST", widget(`/${contact.source_id}/conversations/${conversation.id}/messages`), null, { content });
  // An agent of its own, so no other test's live subscription moves its delivery cursor.
  const created = await api("POST", "/api/v1/agents", demo.apiKey, {
    name: "Returning",
    email: `returning-${Date.now()}@example.com`,
    role: "agent",
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const member = await api("POST", `/api/v1/inboxes/${demo.inboxId}/members`, demo.apiKey, {
    agentIds: [created.body.id],
  });
  assert.ok(member.status < 300, JSON.stringify(member.body));
  const params = {
    channel: "RoomChannel",
    pubsub_token: created.body.pubsubToken,
    account_id: demo.accountId,
    user_id: created.body.id,
  };
  const first = consumerFor(params);
  await first.ready;
  await post("seen live");
  await first.next("message.created", (m) => m.content === "seen live");
  const watcher = consumerFor(agentParams());
  await watcher.ready;
  const gone = watcher.next("presence.update", (p) => p.users[String(created.body.id)] === "offline");
  first.consumer.disconnect();
  await gone; // the server has seen the agent go
  await post("missed by the agent");

  const again = consumerFor(params);
  await again.ready;
  // The inbox's bot answers each message too, so its replies may be among what was missed.
  const replayed = await again.next(
    "message.created",
    (m) => m.conversation_id === conversation.id && m.content === "missed by the agent",
  );
  assert.equal(replayed.message_type, 0);
  assert.ok(
    !again.received.some((r) => r.event === "message.created" && r.data.content === "seen live"),
    "what the agent saw live is not sent again",
  );

  const read = again.next("conversation.read", (c) => c.id === conversation.id, 5000);
  const visitor = consumerFor({ channel: "RoomChannel", pubsub_token: contact.pubsub_token });
  await visitor.ready;
  visitor.subscription.perform("read", { conversation_id: conversation.id });
  const conversationRead = await read;
  assert.equal(conversationRead.id, conversation.id);
  assert.ok(conversationRead.contact_last_seen_at > 0);
});
