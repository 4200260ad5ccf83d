// End to end in headless Chromium (Debian's, driven by playwright-core): a visitor on the
// landing page's widget and an agent on the dashboard talk, see each other type, see presence
// and read marks change; the visitor's network is cut and restored and nothing is lost or
// doubled; on /demo the bot's commands visibly change the sample app. A screenshot of each step
// goes to $SCREENSHOTS. Run by `crates/server/tests/it/browser.rs` against a real server.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const base = process.env.SWITCHBOARD_BASE;
const demo = JSON.parse(process.env.SWITCHBOARD_DEMO);
const shots = process.env.SCREENSHOTS;
rmSync(shots, { recursive: true, force: true });
mkdirSync(shots, { recursive: true });
const TIMEOUT = 30_000;

/** A TCP proxy in front of the server whose connections can be cut: the visitor's network. */
function cuttableProxy(target) {
  const [host, port] = target.replace("http://", "").split(":");
  const sockets = new Set();
  let cut = false;
  const server = net.createServer((client) => {
    if (cut) {
      client.destroy();
      return;
    }
    const upstream = net.connect(Number(port), host);
    sockets.add(client);
    sockets.add(upstream);
    client.pipe(upstream).pipe(client);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on("error", drop).on("close", drop);
    upstream.on("error", drop).on("close", drop);
  });
  return {
    listen: () =>
      new Promise((resolve) =>
        server.listen(0, "127.0.0.1", () => {
          server.unref(); // a failed test must not keep the process alive
          resolve(`http://127.0.0.1:${server.address().port}`);
        }),
      ),
    cut() {
      cut = true;
      for (const socket of sockets) socket.destroy();
      sockets.clear();
    },
    restore() {
      cut = false;
    },
    close: () => server.close(),
  };
}

let browser;
before(async () => {
  browser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true, args: ["--no-sandbox"] });
});
after(async () => {
  await browser?.close();
});

async function shot(page, name) {
  await page.screenshot({ path: join(shots, `${name}.png`) });
}

test("a visitor on the widget and an agent on the dashboard talk live, through a network cut", async () => {
  const proxy = cuttableProxy(base);
  const visitorBase = await proxy.listen();
  const agentProxy = cuttableProxy(base);
  const agentBase = await agentProxy.listen();
  const visitorContext = await browser.newContext({ viewport: { width: 1000, height: 720 } });
  const agentContext = await browser.newContext({ viewport: { width: 1280, height: 760 } });
  const visitor = await visitorContext.newPage();
  const agent = await agentContext.newPage();
  visitor.setDefaultTimeout(TIMEOUT);
  agent.setDefaultTimeout(TIMEOUT);

  // The visitor opens the widget on the landing page: no agent is online yet.
  await visitor.goto(`${visitorBase}/`);
  await visitor.getByRole("button", { name: "Open chat" }).click();
  const widget = visitor.getByRole("dialog", { name: "Chat" });
  await widget.getByText("We'll reply soon").waitFor();
  await shot(visitor, "01-widget-open");

  // The agent signs in; the visitor sees the team come online.
  await agent.goto(`${agentBase}/dashboard`);
  await agent.getByLabel("Agent access token").fill(demo.agent.accessToken);
  await agent.getByRole("button", { name: "Sign in" }).click();
  await agent.getByText("● Live").waitFor();
  await widget.getByText("We're online").waitFor();

  // The visitor writes; the conversation appears on the dashboard, live.
  await widget.getByLabel("Message", { exact: true }).fill("Hello, I need help with my invoice");
  await widget.getByRole("button", { name: "Send" }).click();
  await widget.locator("li.mine", { hasText: "Hello, I need help" }).waitFor();
  const item = agent.locator("[data-conversation]").first();
  await item.waitFor();
  await item.click();
  const thread = agent.getByRole("log", { name: "Messages" });
  await thread.getByText("Hello, I need help with my invoice").waitFor();
  await agent.getByText("● Visitor online").waitFor();
  // The agent opened it: the visitor's message is marked read.
  await widget.locator("li.mine", { hasText: "Hello, I need help" }).getByText("Read").waitFor();
  await shot(agent, "02-dashboard-conversation");

  // Typing crosses both ways.
  await widget.getByLabel("Message", { exact: true }).pressSequentially("One more thing", { delay: 20 });
  await agent.getByText("Visitor is typing…").waitFor();
  await agent.getByRole("textbox", { name: "Reply" }).pressSequentially("Let me check", { delay: 20 });
  await widget.getByText(/is typing…/).waitFor();
  await shot(visitor, "03-widget-agent-typing");
  await agent.getByRole("textbox", { name: "Reply" }).fill("Hi! I'm looking at your invoice now.");
  await agent.getByRole("button", { name: "Send" }).click();
  await widget.getByText("Hi! I'm looking at your invoice now.").waitFor();
  await widget.getByText("joined the conversation").waitFor();
  // The widget is open, so the visitor has read it: the agent sees the mark.
  await thread.locator("li.outgoing", { hasText: "looking at your invoice" }).getByText("read").waitFor();
  await widget.getByLabel("Message", { exact: true }).fill("");
  await shot(visitor, "04-widget-reply");

  // The visitor's network goes away: the widget says so and queues what is written meanwhile.
  proxy.cut();
  await widget.getByText(/Reconnecting/).waitFor();
  await agent.getByText("○ Visitor offline").waitFor();
  await widget.getByLabel("Message", { exact: true }).fill("Written while offline");
  await widget.getByRole("button", { name: "Send" }).click();
  await agent.getByRole("textbox", { name: "Reply" }).fill("Sent while you were away");
  await agent.getByRole("button", { name: "Send" }).click();
  await shot(visitor, "05-widget-offline");

  // Back online: each side has everything, once.
  proxy.restore();
  await widget.getByText("Sent while you were away").waitFor();
  await thread.getByText("Written while offline").waitFor();
  await agent.getByText("● Visitor online").waitFor();
  assert.equal(await widget.locator("li", { hasText: "Sent while you were away" }).count(), 1);
  assert.equal(await widget.locator("li", { hasText: "Written while offline" }).count(), 1);
  assert.equal(await thread.locator("li", { hasText: "Written while offline" }).count(), 1);
  assert.equal(await thread.locator("li", { hasText: "Hello, I need help" }).count(), 1);
  await widget.getByText(/Reconnecting/).waitFor({ state: "hidden" });
  await shot(visitor, "06-widget-back-online");
  await shot(agent, "07-dashboard-after-reconnect");

  // The agent's network goes away: the dashboard reconnects and catches up by itself.
  agentProxy.cut();
  await agent.getByText("Reconnecting…").waitFor();
  await widget.getByLabel("Message", { exact: true }).fill("Are you still there?");
  await widget.getByRole("button", { name: "Send" }).click();
  await widget.locator("li.mine", { hasText: "Are you still there?" }).getByText("Sent").waitFor();
  agentProxy.restore();
  await agent.getByText("● Live").waitFor();
  await thread.getByText("Are you still there?").waitFor();
  assert.equal(await thread.locator("li", { hasText: "Are you still there?" }).count(), 1);

  // Another conversation is assigned to the agent by the back end: a notification, which
  // opens it.
  const other = await (
    await fetch(`${base}/api/v1/session`, {
      method: "POST",
      headers: { authorization: `Bearer ${demo.publishableKey}`, "content-type": "application/json" },
      body: JSON.stringify({ agentId: "demo" }),
    })
  ).json();
  const assigned = await fetch(`${base}/api/v1/conversations/${other.conversationId}/assignments`, {
    method: "POST",
    headers: { authorization: `Bearer ${demo.apiKey}`, "content-type": "application/json" },
    body: JSON.stringify({ assigneeId: demo.agent.id }),
  });
  assert.equal(assigned.status, 200, await assigned.text());
  const bell = agent.getByRole("button", { name: "Notifications: 1" });
  await bell.waitFor();
  await bell.click();
  await agent.getByRole("list", { name: "Notifications" }).getByRole("button", { name: `conversation #${other.conversationId}` }).click();
  await agent.getByRole("heading", { name: `Conversation #${other.conversationId}` }).waitFor();
  // A new, unassigned conversation appears live; the agent takes it.
  const third = await (
    await fetch(`${base}/api/v1/session`, {
      method: "POST",
      headers: { authorization: `Bearer ${demo.publishableKey}`, "content-type": "application/json" },
      body: JSON.stringify({ agentId: "demo" }),
    })
  ).json();
  const unassigned = agent.locator(`[data-conversation="${third.conversationId}"]`);
  await unassigned.getByText("unassigned").waitFor();
  await unassigned.click();
  await agent.getByRole("button", { name: "Assign to me" }).click();
  await agent.getByRole("button", { name: "Assigned to me" }).waitFor();
  await unassigned.getByText("mine").waitFor();

  // Back to the visitor's conversation.
  await agent
    .locator("[data-conversation]")
    .filter({ hasNotText: `#${other.conversationId}` })
    .filter({ hasNotText: `#${third.conversationId}` })
    .filter({ hasText: "mine" })
    .click();
  await thread.getByText("Are you still there?").waitFor();
  const visitorConversation = Number((await agent.getByRole("heading", { level: 2 }).textContent()).replace(/\D/g, ""));

  // Replying made the agent the assignee; a private note never reaches the visitor.
  await agent.getByRole("button", { name: "Assigned to me" }).waitFor();
  await agent.getByLabel("Private note").check();
  await agent.getByRole("textbox", { name: "Reply" }).fill("Internal: customer on the old plan");
  await agent.getByRole("button", { name: "Send" }).click();
  await thread.locator("li.private", { hasText: "Internal: customer on the old plan" }).waitFor();
  await agent.getByLabel("Private note").uncheck();

  // A file from the visitor reaches the agent, who downloads it.
  await visitor.locator("#sb-file").setInputFiles({ name: "invoice.txt", mimeType: "text/plain", buffer: Buffer.from("invoice 42") });
  await widget.getByRole("link", { name: "invoice.txt" }).waitFor();
  const fileLink = thread.getByRole("link", { name: "invoice.txt" });
  await fileLink.waitFor();
  const [download] = await Promise.all([agent.waitForEvent("download"), fileLink.click()]);
  assert.equal(download.suggestedFilename(), "invoice.txt");
  assert.equal(await widget.getByText("Internal: customer").count(), 0);

  // The agent chooses to be offline: the visitor sees the team away; and back.
  // The widget tells the visitor the agent left, and came back.
  const left = widget.getByText("Demo Admin left the conversation");
  const joined = widget.getByText("Demo Admin joined the conversation");
  const [leftBefore, joinedBefore] = [await left.count(), await joined.count()];
  await agent.getByLabel("My availability").selectOption("offline");
  await widget.getByText("We'll reply soon").waitFor();
  await left.nth(leftBefore).waitFor();
  await agent.getByLabel("My availability").selectOption("online");
  await widget.getByText("We're online").waitFor();
  await joined.nth(joinedBefore).waitFor();

  // Status: set pending, the conversation moves to the pending list.
  await agent.getByLabel("Status").selectOption("pending");
  await agent.getByLabel("Show").selectOption("pending");
  const mine = agent.locator(`[data-conversation="${visitorConversation}"]`);
  await mine.getByText("mine").waitFor();
  await shot(agent, "08-dashboard-pending");

  // A long history is paged by seq: the latest page first, earlier ones on request.
  const conversationId = visitorConversation;
  for (let n = 0; n < 60; n++) {
    const response = await fetch(`${base}/api/v1/conversations/${conversationId}/messages`, {
      method: "POST",
      headers: { authorization: `Bearer ${demo.apiKey}`, "content-type": "application/json" },
      body: JSON.stringify({ content: `History line ${n}`, clientMessageId: `history-${n}` }),
    });
    assert.equal(response.status, 201);
  }
  await thread.getByText("History line 59").waitFor();
  // Opened afresh (a reload keeps the sign-in): the latest page only.
  await agent.reload();
  await agent.getByText("● Live").waitFor();
  await agent.getByLabel("Show").selectOption("pending");
  await mine.click();
  await thread.getByText("History line 59").waitFor();
  assert.equal(await thread.getByText("Hello, I need help with my invoice").count(), 0);
  await agent.getByRole("button", { name: "Load earlier messages" }).click();
  await thread.getByText("Hello, I need help with my invoice").waitFor();
  assert.equal(await thread.locator("li", { hasText: "History line 30" }).count(), 1);

  // The visitor leaves: the agent sees it go offline.
  await visitorContext.close();
  await agent.getByText("○ Visitor offline").waitFor();
  await agentContext.close();
  proxy.close();
  agentProxy.close();
});

test("on /demo the bot's commands drive the sample app", async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 760 } });
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  await page.goto(`${base}/demo`);
  const app = page.frameLocator("iframe#app");
  await app.locator("[data-testid='pipeline-chart']").waitFor();

  await page.getByRole("button", { name: "Show me the dashboard" }).click();
  await page.getByText("Here's the dashboard!").waitFor();
  await app.locator("[data-testid='pipeline-chart'][data-highlighted='true']").waitFor();
  await shot(page, "09-demo-dashboard-highlighted");

  await page.getByRole("button", { name: "Create a deal" }).click();
  await page.getByText("Creating a deal takes a few seconds").waitFor();
  await app.locator("[data-testid='save-deal'][data-highlighted='true']").waitFor();
  assert.equal(await app.locator("[data-testid='deal-name']").inputValue(), "Acme renewal");
  assert.equal(await app.locator("[data-testid='deal-stage']").inputValue(), "proposal");
  await shot(page, "10-demo-deal-filled");

  await page.getByLabel("Message", { exact: true }).fill("Tell me about pricing");
  await page.getByRole("button", { name: "Send", exact: true }).click();
  await app.locator("[data-testid='plan-team'][data-highlighted='true']").waitFor();
  const lead = page.getByRole("form", { name: "Your details" });
  await lead.getByLabel("Email").fill("ada@example.com");
  await lead.getByLabel("Company").fill("Analytical Engines");
  await shot(page, "11-demo-lead-form");
  await lead.getByRole("button", { name: "Start Free Trial" }).click();
  await app.locator("[data-testid='signup']").waitFor();
  await page.getByText("My details — email: ada@example.com").waitFor();

  // The visitor's own click in the sample app is reported (as an iframe_event) and navigates.
  await app.locator("[data-testid='nav-contacts']").click();
  await app.locator("[data-testid='contact-list']").waitFor();
  await shot(page, "12-demo-contacts");
  const session = await page.locator("body").getAttribute("data-session");
  let events = [];
  for (let i = 0; i < 100 && !events.some((e) => e.selector === "[data-testid='nav-contacts']"); i++) {
    const response = await fetch(`${base}/api/v1/session/${session}/iframe_events`, {
      headers: { authorization: `Bearer ${demo.apiKey}` },
    });
    assert.equal(response.status, 200);
    events = await response.json();
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const click = events.find((e) => e.selector === "[data-testid='nav-contacts']");
  assert.ok(click, `the click was reported: ${JSON.stringify(events)}`);
  assert.equal(click.event, "click");
  // Only the visitor's own clicks: the bot's commands are not reported as the visitor's.
  assert.ok(!events.some((e) => e.selector === "[data-testid='new-deal']"), JSON.stringify(events));
  await context.close();
});
