// Builds the widget, the dashboard and the demo page's script into crates/server/assets, where
// the server embeds them at compile time. `--check` builds in memory and fails when the
// committed files differ from what the sources build to (so the binary always carries what the
// sources say). Prints each script's size, minified and gzipped; the widget's budget is 25 KB.
import { build } from "esbuild";
import { gzipSync } from "node:zlib";
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";

const here = dirname(fileURLToPath(import.meta.url));
const assets = join(here, "..", "crates", "server", "assets");
const check = process.argv.includes("--check");
const WIDGET_BUDGET = 25 * 1024;

const entries = ["widget", "dashboard", "demo"];
let failed = false;
for (const name of entries) {
  const result = await build({
    entryPoints: [join(here, "src", `${name}.ts`)],
    bundle: true,
    minify: true,
    format: "iife",
    target: "es2020",
    legalComments: "none",
    charset: "utf8",
    write: false,
  });
  const code = result.outputFiles[0].contents;
  const gzipped = gzipSync(code, { level: 9 }).length;
  const path = join(assets, `${name}.js`);
  console.log(`${name}.js: ${(code.length / 1024).toFixed(1)} KB minified, ${(gzipped / 1024).toFixed(1)} KB gzipped`);
  if (name === "widget" && gzipped > WIDGET_BUDGET) {
    console.error(`the widget is over its budget of ${WIDGET_BUDGET / 1024} KB gzipped`);
    failed = true;
  }
  if (check) {
    let committed = "";
    try {
      committed = readFileSync(path, "utf8");
    } catch {}
    if (committed !== Buffer.from(code).toString("utf8")) {
      console.error(`${path} is not what web/src builds to: run \`npm run build\` in web/ and commit it`);
      failed = true;
    }
  } else {
    writeFileSync(path, code);
  }
}
process.exit(failed ? 1 : 0);
