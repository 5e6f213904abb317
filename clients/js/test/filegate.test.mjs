// The uploader against a live filegate (embedded profile), started here from FILEGATE_BIN.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";

import { upload, status, remove, FilegateError } from "../filegate.js";
import { startServer } from "./server.mjs";

/** A PDF by its first bytes, `size` long, with varied content. */
function pdf(size) {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 31 + (i >> 9)) & 0xff;
  bytes.set(new TextEncoder().encode("%PDF-1.7\n"));
  return new Blob([bytes], { type: "application/pdf" });
}

async function content(app, url, fileId) {
  const target = url ?? `${app.server}/api/v1/Files/${fileId}/content`;
  const resp = await fetch(target, { headers: { "X-API-Key": app.apiKey } });
  assert.equal(resp.status, 200);
  return new Uint8Array(await resp.arrayBuffer());
}

let app;
before(async () => {
  app = await startServer();
});
after(async () => {
  await app?.stop();
});

test("a file goes up in parallel chunks, with progress, and comes back whole", async () => {
  const file = pdf(3 * 1024 * 1024 + 123);
  const seen = [];
  const done = await upload(file, {
    server: app.server,
    apiKey: app.apiKey,
    mode: "Message",
    chunkSize: 512 * 1024,
    parallel: 3,
    fileName: "report.pdf",
    onProgress: (sent, total) => seen.push([sent, total]),
  });
  assert.equal(done.size, file.size);
  assert.ok(done.fileId);
  assert.deepEqual(seen.at(-1), [file.size, file.size]);
  assert.ok(seen.every(([s], i) => i === 0 || s >= seen[i - 1][0]), "progress only grows");
  const back = await content(app, done.url, done.fileId);
  assert.deepEqual(back, new Uint8Array(await file.arrayBuffer()));
  const st = await status(done.fileId, app);
  assert.equal(st.isComplete, true);
  assert.equal(st.contentType, "application/pdf");
});

test("an aborted upload resumes with only the missing blocks", async () => {
  const file = pdf(2 * 1024 * 1024);
  const controller = new AbortController();
  let fileId;
  let blocks = 0;
  await assert.rejects(
    upload(file, {
      server: app.server,
      apiKey: app.apiKey,
      mode: "Message",
      chunkSize: 256 * 1024,
      parallel: 1,
      signal: controller.signal,
      onStart: (id) => (fileId = id),
      onProgress: () => {
        if (++blocks === 3) controller.abort();
      },
    }),
    (e) => e.name === "AbortError",
  );
  const before = await status(fileId, app);
  assert.equal(before.isComplete, false);
  const missing = before.missingRanges.reduce((n, [a, b]) => n + b - a + 1, 0);
  assert.ok(missing > 0 && missing < 8, `missing ${missing} of 8`);
  let resumedFrom;
  const done = await upload(file, {
    server: app.server,
    apiKey: app.apiKey,
    mode: "Message",
    chunkSize: 256 * 1024,
    resume: fileId,
    onProgress: (sent) => (resumedFrom ??= sent),
  });
  assert.equal(done.fileId, fileId);
  assert.ok(resumedFrom > 256 * 1024, "progress starts from what the server had");
  assert.deepEqual(await content(app, done.url, fileId), new Uint8Array(await file.arrayBuffer()));
});

test("errors carry the envelope's message and the status", async () => {
  await assert.rejects(
    upload(pdf(1000), { server: app.server, apiKey: "fg_wrong", mode: "Message" }),
    (e) => e instanceof FilegateError && e.status === 401 && /key/i.test(e.message),
  );
  // A type the mode does not take.
  await assert.rejects(
    upload(pdf(1000), { server: app.server, apiKey: app.apiKey, mode: "Import" }),
    (e) => e instanceof FilegateError && e.status === 415 && /Import files must be/.test(e.message),
  );
});

test("a removed file answers 404", async () => {
  const done = await upload(pdf(5000), { server: app.server, apiKey: app.apiKey, mode: "Message" });
  await remove(done.fileId, app);
  await assert.rejects(status(done.fileId, app), (e) => e instanceof FilegateError && e.status === 404);
});

test("429s are retried after their Retry-After, and the upload completes", async () => {
  const limited = await startServer({ FILEGATE_RATE__REQUESTS_PER_SEC: "2", FILEGATE_RATE__BURST: "2" });
  try {
    const file = pdf(6 * 64 * 1024);
    const done = await upload(file, {
      server: limited.server,
      apiKey: limited.apiKey,
      mode: "Message",
      chunkSize: 64 * 1024,
      parallel: 4,
    });
    // The status is read through the same retries (the content route is limited too).
    const st = await status(done.fileId, limited);
    assert.equal(st.isComplete, true);
    assert.equal(st.size, file.size);
  } finally {
    await limited.stop();
  }
});

test("an expired upload fails clearly with 410", async () => {
  const quick = await startServer({
    FILEGATE_UPLOADS__EXPIRE_AFTER_SECS: "1",
    FILEGATE_UPLOADS__SWEEP_INTERVAL_SECS: "1",
  });
  try {
    const controller = new AbortController();
    let fileId;
    await assert.rejects(
      upload(pdf(4 * 1024), {
        server: quick.server,
        apiKey: quick.apiKey,
        mode: "Message",
        chunkSize: 1024,
        parallel: 1,
        signal: controller.signal,
        onStart: (id) => {
          fileId = id;
          controller.abort();
        },
      }),
      (e) => e.name === "AbortError",
    );
    await new Promise((r) => setTimeout(r, 3500));
    await assert.rejects(
      upload(pdf(4 * 1024), {
        server: quick.server,
        apiKey: quick.apiKey,
        mode: "Message",
        chunkSize: 1024,
        resume: fileId,
      }),
      (e) => e instanceof FilegateError && e.status === 410 && /expired/.test(e.message),
    );
  } finally {
    await quick.stop();
  }
});

/** Runs `body` with globalThis.fetch wrapped by `wrap(realFetch, url, init)`. */
async function withFetch(wrap, body) {
  const real = globalThis.fetch;
  globalThis.fetch = (url, init) => wrap(real, url, init);
  try {
    return await body();
  } finally {
    globalThis.fetch = real;
  }
}

const blockOf = (init) => (init?.body instanceof FormData ? Number(init.body.get("BlockIndex")) : undefined);

test("a completing answer lost on the way is recovered: the retry's 409 is checked against the status", async () => {
  const file = pdf(4 * 64 * 1024);
  let lost = false;
  const done = await withFetch(
    async (real, url, init) => {
      const resp = await real(url, init);
      if (blockOf(init) === 3 && !lost) {
        // The server committed the file, but the client never hears it.
        lost = true;
        await resp.arrayBuffer();
        throw new TypeError("fetch failed: connection reset");
      }
      return resp;
    },
    () => upload(file, { server: app.server, apiKey: app.apiKey, mode: "Message", chunkSize: 64 * 1024, parallel: 1 }),
  );
  assert.ok(lost, "the last block's answer was dropped");
  assert.deepEqual(await content(app, done.url, done.fileId), new Uint8Array(await file.arrayBuffer()));
});

test("a block that fails for good stops the other blocks at once", async () => {
  const file = pdf(64 * 16 * 1024);
  let started = 0;
  let inFlightAborted = 0;
  await assert.rejects(
    withFetch(
      async (real, url, init) => {
        const index = blockOf(init);
        if (index !== undefined) started++;
        if (index === 2) {
          // A block the server refuses for good: its mode differs from block 0's (409).
          init.body.set("Mode", "Template");
        }
        if (index > 2) {
          // Slow blocks, still in flight when block 2 fails.
          await new Promise((resolve, reject) => {
            const timer = setTimeout(resolve, 2000);
            init.signal.addEventListener("abort", () => {
              clearTimeout(timer);
              inFlightAborted++;
              reject(init.signal.reason);
            });
          });
        }
        return real(url, init);
      },
      () =>
        upload(file, { server: app.server, apiKey: app.apiKey, mode: "Message", chunkSize: 16 * 1024, parallel: 3 }),
    ),
    (e) => e instanceof FilegateError && e.status === 409,
  );
  assert.ok(inFlightAborted >= 1, "the blocks in flight were aborted");
  assert.ok(started < 10, `only the blocks under way were started (${started} of 64)`);
});
