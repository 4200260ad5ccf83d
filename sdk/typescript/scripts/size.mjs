// Prints the SDK's size as shipped: dist/*.js minified (terser) and gzipped, together.
import { readdirSync, readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { minify } from "terser";

const files = readdirSync("dist").filter((name) => name.endsWith(".js"));
let source = 0;
let minified = "";
for (const name of files) {
  const code = readFileSync(`dist/${name}`, "utf8");
  source += code.length;
  minified += (await minify(code, { module: true, compress: true, mangle: true })).code;
}
const gzipped = gzipSync(minified, { level: 9 }).length;
console.log(`dist: ${source} bytes; minified ${minified.length} bytes; minified+gzipped ${gzipped} bytes`);
