// The uploader in a real browser: headless Chromium (Debian's package) driven by puppeteer-core
// runs a page from a second origin that imports /sdk/filegate.js from filegate (CORS), uploads
// a 20 MiB file (a PDF by its first bytes) in 4 MiB chunks, and checks the bytes; then it
// takes a screenshot of /try in the middle of an upload. scripts/test installs Chromium and
// puppeteer-core and names them in FILEGATE_CHROMIUM and FILEGATE_PUPPETEER_DIR.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

import { startServer } from "./server.mjs";

const chromium = process.env.FILEGATE_CHROMIUM;
const tools = process.env.FILEGATE_PUPPETEER_DIR;
const missing = !chromium || !tools;
if (missing && process.env.CI === "true") {
  throw new Error("FILEGATE_CHROMIUM and FILEGATE_PUPPETEER_DIR must be set under CI=true (scripts/test sets them)");
}
const skip = missing && "FILEGATE_CHROMIUM / FILEGATE_PUPPETEER_DIR not set: run through scripts/test";

const SIZE = 20 * 1024 * 1024;
const CHUNK = 4 * 1024 * 1024;

/** The page's file, made the same way here and in the page: %PDF- then a xorshift stream. */
function fileBytes(size) {
  const bytes = new Uint8Array(size);
  let x = 2463534242;
  for (let i = 0; i < size; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    bytes[i] = x & 0xff;
  }
  bytes.set(new TextEncoder().encode("%PDF-1.7\n"));
  return bytes;
}

const PAGE = (sdk, server, apiKey) => `<!doctype html><meta charset="utf-8"><title>second origin</title>
<script type="module">
import { upload } from ${JSON.stringify(sdk)};
${fileBytes.toString()}
const hex = (buf) => [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, "0")).join("");
try {
  const bytes = fileBytes(${SIZE});
  const file = new File([bytes], "brochure.pdf", { type: "application/pdf" });
  const progress = [];
  const done = await upload(file, { server: ${JSON.stringify(server)}, apiKey: ${JSON.stringify(apiKey)},
    mode: "Message", chunkSize: ${CHUNK}, parallel: 2, onProgress: (s) => progress.push(s) });
  const back = await fetch(done.url, { headers: { "X-API-Key": ${JSON.stringify(apiKey)} } });
  const sent = hex(await crypto.subtle.digest("SHA-256", bytes));
  const got = hex(await crypto.subtle.digest("SHA-256", await back.arrayBuffer()));
  window.result = { done, sent, got, progress: progress.length, contentType: back.headers.get("content-type") };
} catch (e) {
  window.result = { error: String(e && e.message || e), status: e && e.status };
}
</script>`;

let app;
let page2;
let browser;
let puppeteer;
let dir;

before(async () => {
  if (skip) return;
  puppeteer = createRequire(path.join(tools, "node_modules", "x.js"))("puppeteer-core");
  dir = mkdtempSync(path.join(tmpdir(), "filegate-browser-"));
  // The second origin: a page server on a port of its own.
  page2 = createServer((req, res) => {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(page2.html);
  });
  await new Promise((r) => page2.listen(0, "127.0.0.1", r));
  const origin = `http://127.0.0.1:${page2.address().port}`;
  app = await startServer({
    FILEGATE_HTTP__CORS_ALLOWED_ORIGINS: origin,
    FILEGATE_HTTP__MAX_CHUNK_BYTES: String(8 * 1024 * 1024),
  });
  page2.html = PAGE(`${app.server}/sdk/filegate.js`, app.server, app.apiKey);
  page2.origin = origin;
  browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true,
    userDataDir: path.join(dir, "profile"),
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
});

after(async () => {
  await browser?.close();
  await app?.stop();
  page2?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("a page on another origin uploads 20 MiB through the served module", { skip, timeout: 120_000 }, async () => {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(page2.origin, { waitUntil: "load" });
  await page.waitForFunction(() => window.result !== undefined, { timeout: 100_000 });
  const result = await page.evaluate(() => window.result);
  assert.deepEqual(errors, []);
  assert.equal(result.error, undefined, JSON.stringify(result));
  assert.equal(result.done.size, SIZE);
  assert.equal(result.got, result.sent, "the bytes read back are the bytes sent");
  assert.equal(result.progress, SIZE / CHUNK);
  assert.equal(result.contentType, "application/pdf");
  // And from outside the browser: the stored file is the file.
  const resp = await fetch(result.done.url, { headers: { "X-API-Key": app.apiKey } });
  const stored = createHash("sha256").update(new Uint8Array(await resp.arrayBuffer())).digest("hex");
  assert.equal(stored, createHash("sha256").update(fileBytes(SIZE)).digest("hex"));
  await page.close();
});

test("the /try page shows an upload in progress", { skip, timeout: 120_000 }, async () => {
  const file = path.join(dir, "catalogue.pdf");
  writeFileSync(file, fileBytes(48 * 1024 * 1024));
  const page = await browser.newPage();
  await page.setViewport({ width: 900, height: 760 });
  // Slow enough to be caught mid-way: chunks of 1 MiB, the network throttled.
  const cdp = await page.createCDPSession();
  await cdp.send("Network.emulateNetworkConditions", {
    offline: false,
    latency: 20,
    downloadThroughput: 50 * 1024 * 1024,
    uploadThroughput: 8 * 1024 * 1024,
  });
  await page.goto(`${app.server}/try`, { waitUntil: "load" });
  await page.type("#key", app.apiKey);
  await page.select("#chunk", "1048576");
  const input = await page.$("#file");
  await input.uploadFile(file);
  await page.waitForFunction(() => document.getElementById("bar").value > 0.25, { timeout: 60_000 });
  const shot = process.env.FILEGATE_TRY_SCREENSHOT || path.join(tmpdir(), "filegate-try.png");
  await page.screenshot({ path: shot });
  const midway = await page.evaluate(() => ({
    bar: document.getElementById("bar").value,
    lit: document.querySelectorAll("#blocks span.done").length,
    blocks: document.querySelectorAll("#blocks span").length,
  }));
  assert.ok(midway.bar > 0.25 && midway.bar < 1, `caught at ${midway.bar}`);
  assert.equal(midway.blocks, 48);
  assert.ok(midway.lit > 0 && midway.lit < 48, JSON.stringify(midway));
  await page.waitForFunction(() => /Done: /.test(document.getElementById("status").textContent), {
    timeout: 100_000,
  });
  const text = await page.$eval("#status", (e) => e.textContent);
  assert.match(text, new RegExp(`Done: ${48 * 1024 * 1024} bytes`));
  console.log(`screenshot of /try mid-upload: ${shot}`);
  await page.close();
});
