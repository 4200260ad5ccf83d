// A real Switchboard server for the SDK's tests: the binary named by SWITCHBOARD_BIN (set by
// crates/server/tests/it/sdk.rs), on a free loopback port and a temporary data directory;
// stoppable and restartable on the same port and data.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

function freePort() {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

export async function startServer() {
  const binary = process.env.SWITCHBOARD_BIN;
  if (!binary) throw new Error("SWITCHBOARD_BIN is not set: run through cargo test (sdk.rs)");
  const dir = mkdtempSync(join(tmpdir(), "switchboard-sdk-"));
  const port = await freePort();
  const baseUrl = `http://127.0.0.1:${port}`;
  let child;
  const server = {
    baseUrl,
    demo: undefined,
    async start() {
      child = spawn(binary, ["serve", "--listen", `127.0.0.1:${port}`, "--data-dir", dir], {
        stdio: "ignore",
        env: { ...process.env, SWITCHBOARD_LOG: "warn" },
      });
      for (let i = 0; i < 200; i += 1) {
        try {
          if ((await fetch(`${baseUrl}/healthz`)).ok) break;
        } catch {
          // not up yet
        }
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      server.demo = JSON.parse(readFileSync(join(dir, "demo.json"), "utf8"));
    },
    async stop() {
      if (!child || child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      await exited;
    },
    async restart() {
      await server.stop();
      await server.start();
    },
    async dispose() {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
    async api(method, path, token, body) {
      const response = await fetch(baseUrl + path, {
        method,
        headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await response.text();
      return { status: response.status, body: text ? JSON.parse(text) : null };
    },
  };
  await server.start();
  return server;
}

/** Resolves with the first value `emitter` gives that passes `accept`; fails after `ms`. */
export function next(emitter, accept = () => true, ms = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      unsubscribe();
      reject(new Error(`nothing within ${ms} ms`));
    }, ms);
    const unsubscribe = emitter.subscribe((value) => {
      if (!accept(value)) return;
      clearTimeout(timer);
      unsubscribe();
      resolve(value);
    });
  });
}
