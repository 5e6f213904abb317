// The benchmark's one client (Node + undici), the same for every target.
//
// Started by scripts/bench, which installs the tools, starts the servers and
// writes a JSON description of them; not meant to be run by hand, but it can
// be:
//
//   FILEGATE_BENCH_CONFIG=/path/to/config.json \
//   FILEGATE_BENCH_AZURE_CONNECTION_STRING='...' \
//   node scripts/bench-client.mjs
//
// The config (see scripts/bench, write_config) names the tool folders, the
// sizes, the number of reps and the groups: each group has an anchor (the
// @tus/server file store, Azurite written to directly, or another filegate
// binary with `sameCase`) and the filegate targets measured against it. Secrets (API keys, the connection string) come
// through the environment or the config file (mode 600), never argv.
//
// Cases (each run once per rep, anchor and targets alternating within a rep, the anchor
// first in odd reps and last in even ones):
//   single    one upload of the test file, chunk after chunk
//   conc4     4 uploads of the test file at once, each chunk after chunk
//   par4      filegate only: one upload, block 0 first, then 4 chunks in
//             flight; its anchor run is the anchor's `single` (the same
//             case when the anchor is another filegate)
//   small     N single-chunk files, M in flight (tus: creation-with-upload;
//             Azurite: Put Blob; filegate: TotalBlocks=1)
//
// Every stored file is read back (filegate's content route, the blob URL, or
// the tus file store's file) and compared by sha256, outside the timed part.
// Server CPU is utime+stime of the server's process (/proc/PID/stat) over the
// timed part; peak RSS is VmHWM, reset (/proc/PID/clear_refs) before each run
// when the kernel allows it.
//
// Exit status: 0 when every upload and every check passed, 1 otherwise.

import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import { createHash, randomBytes, randomFillSync } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { performance } from "node:perf_hooks";

const MiB = 1024 * 1024;

function fail(message) {
  console.error(`bench-client: ERROR: ${message}`);
  process.exit(1);
}

const configPath = process.env.FILEGATE_BENCH_CONFIG;
if (!configPath) fail("FILEGATE_BENCH_CONFIG is not set");
const config = JSON.parse(fs.readFileSync(configPath, "utf8"));

const requireBench = createRequire(path.join(config.benchToolsDir, "package.json"));
const { request, Agent } = requireBench("undici");

const sizes = config.sizes;
const clkTck = Number(config.clkTck || 100);
// The machine's cores, as /proc/stat counts them (its cpuN lines).
const cores = fs.readFileSync("/proc/stat", "utf8").split("\n").filter((l) => /^cpu\d+ /.test(l)).length;
const timeoutMs = Number(config.requestTimeoutMs || 120_000);

// Belt and braces: the whole run is bounded in time, whatever a server does.
const watchdog = setTimeout(
  () => fail(`the run did not finish within ${config.maxSeconds} s`),
  config.maxSeconds * 1000,
);
watchdog.unref();

const agent = new Agent({
  connections: 64,
  pipelining: 1,
  keepAliveTimeout: 10_000,
  headersTimeout: timeoutMs,
  bodyTimeout: timeoutMs,
  connectTimeout: 5_000,
});

// ---------------------------------------------------------------------------
// Test data: starts with %PDF- so that type checks accept it; random after.

function pdfBytes(size) {
  const buf = Buffer.allocUnsafe(size);
  randomFillSync(buf);
  const head = Buffer.from("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "latin1");
  head.copy(buf, 0, 0, Math.min(head.length, size));
  return buf;
}

const bigFile = pdfBytes(sizes.fileBytes);
const bigSha = sha256(bigFile);
const smallFile = pdfBytes(sizes.smallBytes);
const smallSha = sha256(smallFile);
const chunkCount = Math.ceil(sizes.fileBytes / sizes.chunkBytes);

function sha256(buf) {
  return createHash("sha256").update(buf).digest("hex");
}

function chunkOf(buf, index, chunkBytes) {
  return buf.subarray(index * chunkBytes, Math.min(buf.length, (index + 1) * chunkBytes));
}

// ---------------------------------------------------------------------------
// HTTP helpers

async function call(url, options, what) {
  let res;
  try {
    res = await request(url, { dispatcher: agent, ...options });
  } catch (err) {
    throw new Error(`${what}: ${err?.code ?? ""} ${err?.message ?? err}`);
  }
  return res;
}

async function expectStatus(res, codes, what) {
  if (!codes.includes(res.statusCode)) {
    const text = (await res.body.text()).slice(0, 400);
    throw new Error(`${what}: HTTP ${res.statusCode} (wanted ${codes.join("/")}): ${text}`);
  }
}

async function hashBody(res) {
  const hash = createHash("sha256");
  let n = 0;
  for await (const c of res.body) {
    hash.update(c);
    n += c.length;
  }
  return { sha: hash.digest("hex"), bytes: n };
}

// Runs fn(item) over items with at most `limit` in flight; the first error
// stops new work and is thrown once the running ones have settled.
async function pool(items, limit, fn) {
  let next = 0;
  let error = null;
  const results = new Array(items.length);
  async function worker() {
    while (error === null && next < items.length) {
      const i = next++;
      try {
        results[i] = await fn(items[i], i);
      } catch (err) {
        error ??= err;
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (error) throw error;
  return results;
}

const range = (n) => Array.from({ length: n }, (_, i) => i);

// ---------------------------------------------------------------------------
// filegate: POST /api/v1/Files/chunk, multipart, text fields first, File last.

function multipart(fields, fileName, bytes) {
  const boundary = `----filegate-bench-${randomBytes(12).toString("hex")}`;
  let head = "";
  for (const [name, value] of fields) {
    head += `--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`;
  }
  head +=
    `--${boundary}\r\nContent-Disposition: form-data; name="File"; filename="${fileName}"\r\n` +
    "Content-Type: application/pdf\r\n\r\n";
  const headBuf = Buffer.from(head);
  const tailBuf = Buffer.from(`\r\n--${boundary}--\r\n`);
  // A generator over the three parts with an explicit length: the chunk's
  // bytes are not copied into one buffer first (tus's PATCH does not copy either).
  function* body() {
    yield headBuf;
    yield bytes;
    yield tailBuf;
  }
  return {
    body: body(),
    headers: {
      "content-type": `multipart/form-data; boundary=${boundary}`,
      "content-length": String(headBuf.length + bytes.length + tailBuf.length),
    },
  };
}

async function filegateChunk(t, { index, total, fileId, bytes, fileName }) {
  const fields = [
    ["BlockIndex", String(index)],
    ["TotalBlocks", String(total)],
    ["Mode", "Message"],
  ];
  if (fileId) fields.push(["FileId", fileId]);
  const form = multipart(fields, fileName, bytes);
  const what = `${t.name}: chunk ${index}/${total}${fileId ? ` of ${fileId}` : ""}`;
  const res = await call(
    `${t.url}/api/v1/Files/chunk`,
    { method: "POST", body: form.body, headers: { ...form.headers, "x-api-key": t.key } },
    what,
  );
  await expectStatus(res, [200], what);
  const answer = await res.body.json();
  if (!answer?.isSuccess || !answer?.data?.fileId) {
    throw new Error(`${what}: unexpected answer ${JSON.stringify(answer).slice(0, 300)}`);
  }
  return answer.data;
}

// One upload of `buf`; `inFlight` chunks at once after block 0.
async function filegateUpload(t, buf, chunkBytes, inFlight, fileName) {
  const total = Math.ceil(buf.length / chunkBytes);
  const first = await filegateChunk(t, { index: 0, total, bytes: chunkOf(buf, 0, chunkBytes), fileName });
  const fileId = first.fileId;
  let completes = first.isComplete ? 1 : 0;
  await pool(range(total - 1).map((i) => i + 1), inFlight, async (index) => {
    const d = await filegateChunk(t, { index, total, fileId, bytes: chunkOf(buf, index, chunkBytes), fileName });
    if (d.isComplete) completes += 1;
  });
  if (completes < 1) throw new Error(`${t.name}: upload ${fileId}: no chunk answered isComplete`);
  return fileId;
}

async function filegateVerify(t, fileId, wantSha, wantBytes) {
  const what = `${t.name}: read back ${fileId}`;
  const res = await call(
    `${t.url}/api/v1/Files/${fileId}/content`,
    { method: "GET", headers: { "x-api-key": t.key } },
    what,
  );
  await expectStatus(res, [200], what);
  const { sha, bytes } = await hashBody(res);
  if (sha !== wantSha || bytes !== wantBytes) {
    throw new Error(`${what}: sha256/size mismatch (${bytes} bytes, ${sha})`);
  }
  // On Azure the file is deleted through the service once verified, as the direct anchor deletes
  // its own blobs: Azurite slows down as blobs accumulate (2,000 small files per run took its
  // Put Blob rate from 624 to 232 files/s over four reps), and whichever ran later in a rep
  // would meet a larger Azurite than the other did.
  if (t.backendPid) {
    const del = await call(
      `${t.url}/api/v1/Files/${fileId}`,
      { method: "DELETE", headers: { "x-api-key": t.key } },
      `${what}: delete`,
    );
    await expectStatus(del, [200], `${what}: delete`);
    await del.body.dump();
  }
}

// The local store's committed files are removed after a verified case (the
// data folder is the benchmark's own, thrown away at the end), so that a full
// run does not fill the disk; .staging is left alone.
function filegateForget(t) {
  if (!t.localRoot || !fs.existsSync(t.localRoot)) return;
  for (const entry of fs.readdirSync(t.localRoot)) {
    if (entry === ".staging") continue;
    fs.rmSync(path.join(t.localRoot, entry), { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------
// tus (1.0.0): creation + PATCH; creation-with-upload for single-chunk files.

const TUS = { "tus-resumable": "1.0.0" };
const tusMetadata = `filename ${Buffer.from("bench.pdf").toString("base64")},filetype ${Buffer.from("application/pdf").toString("base64")}`;

function tusLocation(t, res, what) {
  const loc = res.headers.location;
  if (!loc) throw new Error(`${what}: no Location header`);
  return new URL(loc, t.url).href;
}

async function tusUpload(t, buf, chunkBytes) {
  const what = `${t.name}: create`;
  const res = await call(
    t.url,
    { method: "POST", headers: { ...TUS, "upload-length": String(buf.length), "upload-metadata": tusMetadata } },
    what,
  );
  await expectStatus(res, [201], what);
  await res.body.dump();
  const loc = tusLocation(t, res, what);
  for (let offset = 0; offset < buf.length; offset += chunkBytes) {
    const bytes = buf.subarray(offset, Math.min(buf.length, offset + chunkBytes));
    const w = `${t.name}: PATCH ${loc} at ${offset}`;
    const r = await call(
      loc,
      {
        method: "PATCH",
        body: bytes,
        headers: { ...TUS, "upload-offset": String(offset), "content-type": "application/offset+octet-stream" },
      },
      w,
    );
    await expectStatus(r, [204], w);
    await r.body.dump();
    if (Number(r.headers["upload-offset"]) !== offset + bytes.length) {
      throw new Error(`${w}: Upload-Offset ${r.headers["upload-offset"]}, wanted ${offset + bytes.length}`);
    }
  }
  return loc;
}

async function tusSmall(t, buf) {
  const what = `${t.name}: creation-with-upload`;
  const res = await call(
    t.url,
    {
      method: "POST",
      body: buf,
      headers: {
        ...TUS,
        "upload-length": String(buf.length),
        "upload-metadata": tusMetadata,
        "content-type": "application/offset+octet-stream",
      },
    },
    what,
  );
  await expectStatus(res, [201], what);
  await res.body.dump();
  if (Number(res.headers["upload-offset"]) !== buf.length) {
    throw new Error(`${what}: Upload-Offset ${res.headers["upload-offset"]}, wanted ${buf.length}`);
  }
  return tusLocation(t, res, what);
}

function tusFile(t, loc) {
  const id = decodeURIComponent(new URL(loc).pathname.split("/").pop());
  if (!id || id.includes("/") || id.startsWith(".")) throw new Error(`${t.name}: odd upload id in ${loc}`);
  return path.join(t.storeDir, id);
}

async function tusVerify(t, loc, wantSha, wantBytes) {
  const file = tusFile(t, loc);
  const hash = createHash("sha256");
  let n = 0;
  for await (const c of fs.createReadStream(file)) {
    hash.update(c);
    n += c.length;
  }
  const sha = hash.digest("hex");
  if (sha !== wantSha || n !== wantBytes) {
    throw new Error(`${t.name}: ${file}: sha256/size mismatch (${n} bytes, ${sha})`);
  }
  // Removed by the caller, now or after the last timed run.
  return () => {
    fs.rmSync(file, { force: true });
    fs.rmSync(`${file}.json`, { force: true });
  };
}

// ---------------------------------------------------------------------------
// Azurite direct: Put Block ×N + Put Block List; Put Blob for small files.
// The bytes go through undici like every other target; @azure/storage-blob
// only signs a container SAS.

let azure = null;

function azureSetup() {
  if (azure) return azure;
  const connectionString = process.env.FILEGATE_BENCH_AZURE_CONNECTION_STRING;
  if (!connectionString) throw new Error("FILEGATE_BENCH_AZURE_CONNECTION_STRING is not set");
  const parts = Object.fromEntries(
    connectionString
      .split(";")
      .filter(Boolean)
      .map((kv) => {
        const i = kv.indexOf("=");
        return [kv.slice(0, i), kv.slice(i + 1)];
      }),
  );
  const requireBlob = createRequire(path.join(config.blobToolsDir, "package.json"));
  const sdk = requireBlob("@azure/storage-blob");
  const credential = new sdk.StorageSharedKeyCredential(parts.AccountName, parts.AccountKey);
  const sas = sdk
    .generateBlobSASQueryParameters(
      {
        containerName: config.directContainer,
        permissions: sdk.ContainerSASPermissions.parse("racwd"),
        startsOn: new Date(Date.now() - 60_000),
        expiresOn: new Date(Date.now() + 6 * 3600_000),
        protocol: sdk.SASProtocol.HttpsAndHttp,
      },
      credential,
    )
    .toString();
  const version = new URLSearchParams(sas).get("sv");
  azure = { base: `${parts.BlobEndpoint.replace(/\/$/, "")}/${config.directContainer}`, sas, version };
  return azure;
}

// `t.via`: the relay floor's origin (scripts/bench --relay), in place of Azurite's own.
function blobUrl(t, name, query = "") {
  const a = azureSetup();
  const base = t.via ? `${t.via}${new URL(a.base).pathname}` : a.base;
  return `${base}/${encodeURIComponent(name)}?${query ? `${query}&` : ""}${a.sas}`;
}

const blockId = (i) => Buffer.from(`block-${String(i).padStart(6, "0")}`).toString("base64");

async function azurePutBlock(t, name, i, bytes) {
  const what = `${t.name}: Put Block ${i} of ${name}`;
  const res = await call(
    blobUrl(t, name, `comp=block&blockid=${encodeURIComponent(blockId(i))}`),
    { method: "PUT", body: bytes, headers: { "x-ms-version": azure.version, "content-length": String(bytes.length) } },
    what,
  );
  await expectStatus(res, [201], what);
  await res.body.dump();
}

async function azureUpload(t, buf, chunkBytes, name, inFlight = 1) {
  azureSetup();
  const total = Math.ceil(buf.length / chunkBytes);
  await pool(range(total), inFlight, (i) => azurePutBlock(t, name, i, chunkOf(buf, i, chunkBytes)));
  const xml =
    '<?xml version="1.0" encoding="utf-8"?><BlockList>' +
    range(total).map((i) => `<Latest>${blockId(i)}</Latest>`).join("") +
    "</BlockList>";
  const what = `${t.name}: Put Block List of ${name}`;
  const res = await call(
    blobUrl(t, name, "comp=blocklist"),
    {
      method: "PUT",
      body: xml,
      headers: { "x-ms-version": azure.version, "content-type": "application/xml", "x-ms-blob-content-type": "application/pdf" },
    },
    what,
  );
  await expectStatus(res, [201], what);
  await res.body.dump();
  return name;
}

async function azurePutBlob(t, buf, name) {
  azureSetup();
  const what = `${t.name}: Put Blob ${name}`;
  const res = await call(
    blobUrl(t, name),
    {
      method: "PUT",
      body: buf,
      headers: {
        "x-ms-version": azure.version,
        "x-ms-blob-type": "BlockBlob",
        "x-ms-blob-content-type": "application/pdf",
        "content-length": String(buf.length),
      },
    },
    what,
  );
  await expectStatus(res, [201], what);
  await res.body.dump();
  return name;
}

async function azureVerify(t, name, wantSha, wantBytes) {
  const what = `${t.name}: read back ${name}`;
  const res = await call(blobUrl(t, name), { method: "GET", headers: { "x-ms-version": azure.version } }, what);
  await expectStatus(res, [200], what);
  const { sha, bytes } = await hashBody(res);
  if (sha !== wantSha || bytes !== wantBytes) {
    throw new Error(`${what}: sha256/size mismatch (${bytes} bytes, ${sha})`);
  }
  const del = await call(blobUrl(t, name), { method: "DELETE", headers: { "x-ms-version": azure.version } }, `${t.name}: delete ${name}`);
  await expectStatus(del, [202], `${t.name}: delete ${name}`);
  await del.body.dump();
}

// ---------------------------------------------------------------------------
// The cases, per kind of target. Each answers what to verify afterwards.

let blobSeq = 0;
const blobName = (tag) => `bench/${tag}-${process.pid}-${++blobSeq}.pdf`;

const CASES = {
  single: {
    title: () => `1 upload, ${fmtBytes(sizes.fileBytes)} in ${fmtBytes(sizes.chunkBytes)} chunks`,
    anchorCase: "single",
    bytes: () => sizes.fileBytes,
    files: () => 1,
    run: (t) => uploadBig(t, 1, 1),
  },
  conc4: {
    title: () => `${sizes.concurrent} concurrent uploads`,
    anchorCase: "conc4",
    bytes: () => sizes.fileBytes * sizes.concurrent,
    files: () => sizes.concurrent,
    run: (t) => uploadBig(t, sizes.concurrent, 1),
  },
  par4: {
    title: () => `1 upload, ${sizes.parallel} chunks in flight`,
    anchorCase: "single",
    filegateOnly: true,
    bytes: () => sizes.fileBytes,
    files: () => 1,
    run: (t) => uploadBig(t, 1, sizes.parallel),
  },
  small: {
    title: () => `${sizes.smallCount} single-chunk ${fmtBytes(sizes.smallBytes)} files, ${sizes.smallInFlight} in flight`,
    anchorCase: "small",
    bytes: () => sizes.smallBytes * sizes.smallCount,
    files: () => sizes.smallCount,
    run: (t) => uploadSmall(t),
  },
};

async function uploadBig(t, uploads, inFlight, file = bigFile, sha = bigSha) {
  const one = async () => {
    if (t.kind === "filegate") return filegateUpload(t, file, sizes.chunkBytes, inFlight, "bench.pdf");
    if (t.kind === "tus") return tusUpload(t, file, sizes.chunkBytes);
    if (t.kind === "azure") return azureUpload(t, file, sizes.chunkBytes, blobName("big"), inFlight);
    throw new Error(`unknown kind ${t.kind}`);
  };
  const refs = await Promise.all(range(uploads).map(one));
  return refs.map((ref) => ({ ref, sha, bytes: file.length }));
}

async function uploadSmall(t, count = sizes.smallCount) {
  const refs = await pool(range(count), sizes.smallInFlight, async () => {
    if (t.kind === "filegate") {
      const d = await filegateChunk(t, { index: 0, total: 1, bytes: smallFile, fileName: "small.pdf" });
      if (!d.isComplete) throw new Error(`${t.name}: single-chunk file ${d.fileId} not complete`);
      return d.fileId;
    }
    if (t.kind === "tus") return tusSmall(t, smallFile);
    if (t.kind === "azure") return azurePutBlob(t, smallFile, blobName("small"));
    throw new Error(`unknown kind ${t.kind}`);
  });
  return refs.map((ref) => ({ ref, sha: smallSha, bytes: smallFile.length }));
}

// `later`: leave the stored files until the end of the run (see DEFER_CLEANUP_FILES).
async function verifyAll(t, stored, later) {
  const removals = [];
  await pool(stored, 8, async ({ ref, sha, bytes }) => {
    if (t.kind === "filegate") return filegateVerify(t, ref, sha, bytes);
    if (t.kind === "tus") return removals.push(await tusVerify(t, ref, sha, bytes));
    if (t.kind === "azure") return azureVerify(t, ref, sha, bytes);
  });
  const cleanup = () => {
    for (const remove of removals) remove();
    if (t.kind === "filegate") filegateForget(t);
  };
  if (later) deferredCleanup.push(cleanup);
  else cleanup();
}

// ---------------------------------------------------------------------------
// Process figures from /proc.

function cpuSeconds(pid) {
  if (!pid) return null;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (Number(fields[11]) + Number(fields[12])) / clkTck;
  } catch {
    return null;
  }
}

function peakRssMiB(pid) {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}

let hwmResettable = true;
function resetPeakRss(pid) {
  if (!pid) return;
  try {
    fs.writeFileSync(`/proc/${pid}/clear_refs`, "5");
  } catch {
    hwmResettable = false;
  }
}

function alive(t) {
  for (const pid of [t.pid, t.backendPid].filter(Boolean)) {
    if (!fs.existsSync(`/proc/${pid}`)) throw new Error(`${t.name}: process ${pid} is gone`);
  }
}

// Verifying a case removes what it stored, except for cases of many files: those are removed
// only after the last timed run. On an ext4 without a journal, allocating an inode skips every
// inode freed in the last 5 s (35 s while its inode table block is dirty), reading each one's
// deletion time, so a target run right after another target's thousands of files were removed
// would pay for that cleanup (seen as 40% of filegate's CPU, in `recently_deleted` and
// `find_inode_bit`), and the first target of a run would not.
const DEFER_CLEANUP_FILES = 500;
const deferredCleanup = [];

// Before every timed run: write back the page cache's dirty pages and wait (10 s at most) until
// the machine is idle, so that what one target left behind (its files' write-back, Azurite's
// clean-up of deleted blobs, Postgres' autovacuum of the rows a run deleted) is not paid by the
// next one. Without it, the first target of each group in a rep, which runs right after the
// other group's runs, took up to 2.5 times the CPU for the same bytes (4 concurrent uploads:
// 4.3 s instead of 1.7 s), whichever it was. Idle is the whole machine's (/proc/stat), not only
// the servers': Postgres and the kernel's own threads count too.
const SETTLE_WINDOW_MS = 250;
const SETTLE_IDLE_CORES = 0.1;
const SETTLE_MAX_MS = 10_000;

// CPU seconds the whole machine spent busy (not idle, not waiting for I/O) since boot.
function machineBusySeconds() {
  const cpu = fs.readFileSync("/proc/stat", "utf8").split("\n", 1)[0].trim().split(/\s+/).slice(1).map(Number);
  const total = cpu.slice(0, 8).reduce((a, b) => a + b, 0);
  return (total - cpu[3] - cpu[4]) / clkTck;
}

async function settle() {
  execFileSync("sync");
  const deadline = performance.now() + SETTLE_MAX_MS;
  for (;;) {
    const before = machineBusySeconds();
    await new Promise((resolve) => setTimeout(resolve, SETTLE_WINDOW_MS));
    const busy = (machineBusySeconds() - before) / (SETTLE_WINDOW_MS / 1000);
    if (busy < SETTLE_IDLE_CORES) return;
    if (performance.now() > deadline) {
      console.error(`bench-client: the machine was still busy (${f(busy)} cores) after ${SETTLE_MAX_MS / 1000} s; measuring anyway`);
      return;
    }
  }
}

// The warm-up: before the first timed run, every target takes a few chunks and a few small
// files, untimed and unreported (and verified, like every run). Without it the first run of a
// freshly started server paid for its start (Node's JIT in Azurite and the tus server, the
// servers' first connections): Azurite direct took 386 files/s in a run's first rep and 681 in
// its second, with 5.9 against 3.5 s of CPU for the same files.
const WARM_CHUNKS = 4;
const WARM_SMALL_FILES = 100;
const warmFile = pdfBytes(Math.min(sizes.fileBytes, WARM_CHUNKS * sizes.chunkBytes));
const warmSha = sha256(warmFile);
const warmSmallFiles = Math.min(sizes.smallCount, WARM_SMALL_FILES);

async function warmUp(t) {
  alive(t);
  const stored = [
    ...(await uploadBig(t, 1, 1, warmFile, warmSha)),
    ...(await uploadSmall(t, warmSmallFiles)),
  ];
  // Removed only after the last timed run, like a case's many files (DEFER_CLEANUP_FILES): a
  // hundred files deleted right before the first timed run made the next target's new files
  // pay ext4's skipping of recently freed inodes (`recently_deleted`, `find_inode_bit` in a
  // profile of filegate's small files).
  await verifyAll(t, stored, true);
}

async function measure(t, caseName) {
  const c = CASES[caseName];
  await settle();
  alive(t);
  resetPeakRss(t.pid);
  resetPeakRss(t.backendPid);
  const cpu0 = cpuSeconds(t.pid);
  const bcpu0 = cpuSeconds(t.backendPid);
  const busy0 = machineBusySeconds();
  const t0 = performance.now();
  const stored = await c.run(t);
  const secs = (performance.now() - t0) / 1000;
  const busy1 = machineBusySeconds();
  const cpu1 = cpuSeconds(t.pid);
  const bcpu1 = cpuSeconds(t.backendPid);
  const rss = peakRssMiB(t.pid);
  alive(t);
  await verifyAll(t, stored, c.files() >= DEFER_CLEANUP_FILES);
  return {
    secs,
    mibps: c.bytes() / MiB / secs,
    filesps: c.files() / secs,
    cpu: cpu0 != null && cpu1 != null ? cpu1 - cpu0 : null,
    backendCpu: bcpu0 != null && bcpu1 != null ? bcpu1 - bcpu0 : null,
    // Every process's, the client's and Postgres' too, in cores: at the machine's core count
    // the run was bound by CPU, and its rate then follows the CPU it spent per byte.
    busyCores: (busy1 - busy0) / secs,
    rss,
  };
}

// ---------------------------------------------------------------------------
// Formatting.

function fmtBytes(n) {
  if (n >= MiB && n % MiB === 0) return `${n / MiB} MiB`;
  if (n >= 1024 && n % 1024 === 0) return `${n / 1024} KiB`;
  return `${n} B`;
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function f(x, digits) {
  if (x == null || Number.isNaN(x)) return "—";
  if (digits === undefined) digits = x >= 100 ? 0 : x >= 10 ? 1 : 2;
  return x.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function spread(xs, digits) {
  if (xs.length === 1) return f(xs[0], digits);
  const s = [...xs].sort((a, b) => a - b);
  return `${f(s[0], digits)} / **${f(median(s), digits)}** / ${f(s[s.length - 1], digits)}`;
}

// ---------------------------------------------------------------------------
// The run.

const results = []; // { group, caseName, target, role, rep, m }

async function main() {
  const caseNames = config.cases.filter((c) => CASES[c]);
  console.error(
    `bench-client: test file ${fmtBytes(sizes.fileBytes)} (${chunkCount} chunks of ${fmtBytes(sizes.chunkBytes)}), ` +
      `${sizes.smallCount} small files of ${fmtBytes(sizes.smallBytes)}; ${config.reps} rep(s); cases: ${caseNames.join(", ")}`,
  );
  const warmed = new Set();
  for (const g of config.groups) {
    for (const t of [g.anchor, ...g.targets]) {
      // A process serves one target per group at most; two groups may share it.
      const key = `${t.name} ${t.pid}`;
      if (warmed.has(key)) continue;
      warmed.add(key);
      await warmUp(t);
    }
  }
  console.error(`bench-client: warmed up ${warmed.size} target(s), untimed`);
  for (const caseName of caseNames) {
    const c = CASES[caseName];
    for (let rep = 0; rep < config.reps; rep++) {
      for (const [gi, g] of config.groups.entries()) {
        // Only filegate (and the relay floor, whose Put Blocks can be) can have several chunks
        // of one upload in flight; a tus server's figure here would just be its single upload
        // again.
        const targets = g.targets.filter((t) => caseName !== "par4" || t.kind === "filegate" || t.via);
        // The order turns every rep (anchor, filegate..., then filegate..., anchor): with a
        // fixed order, whatever favours the later of two runs (a warmer page cache, the other's
        // write-back done) would count for one side only; turned, it cancels over an even
        // number of reps.
        const anchorFirst = rep % 2 === 0;
        const order = anchorFirst ? [g.anchor, ...targets] : [...targets.slice().reverse(), g.anchor];
        const runs = new Map();
        for (const t of order) {
          runs.set(t, await measure(t, t === g.anchor ? anchorCaseOf(g, caseName) : caseName));
        }
        for (const t of order) {
          const m = runs.get(t);
          const anchor = t === g.anchor ? undefined : runs.get(g.anchor);
          results.push({ gi, caseName, name: t.name, role: anchor ? "target" : "anchor", rep, m, anchor });
          log(caseName, rep, t.name, m, anchor);
        }
      }
    }
  }
  for (const cleanup of deferredCleanup) cleanup();
  printTable(caseNames);
}

// The case an anchor runs against a target's: its own kind's (a tus server's single upload for
// par4), or the same case when the anchor is another filegate (`sameCase`, scripts/bench
// --baseline).
function anchorCaseOf(g, caseName) {
  return g.sameCase ? caseName : CASES[caseName].anchorCase;
}

function log(caseName, rep, name, m, anchor) {
  const rate = caseName === "small" ? `${f(m.filesps)} files/s` : `${f(m.mibps)} MiB/s`;
  const ratio = anchor ? ` (${f(ratioOf(caseName, m, anchor))}×)` : "";
  console.error(
    `bench-client: ${caseName} rep ${rep + 1}: ${name}: ${rate}${ratio}, ${f(m.secs)} s, CPU ${f(m.cpu)} s, machine ${f(m.busyCores)} of ${cores} cores busy, peak RSS ${f(m.rss, 0)} MiB, verified`,
  );
}

function ratioOf(caseName, m, anchor) {
  return caseName === "small" ? m.filesps / anchor.filesps : m.mibps / anchor.mibps;
}

function printTable(caseNames) {
  const lines = [];
  lines.push(
    "| case | target | MiB/s min / **median** / max | files/s min / **median** / max | server CPU s (median) | Azurite CPU s (median) | machine busy, cores (median) | peak RSS MiB (max) | × anchor, paired (min / **median** / max) |",
  );
  lines.push("|---|---|---|---|---|---|---|---|---|");
  for (const caseName of caseNames) {
    const c = CASES[caseName];
    for (const [gi, g] of config.groups.entries()) {
      const rows = [g.anchor, ...g.targets];
      for (const t of rows) {
        const rs = results.filter((r) => r.gi === gi && r.caseName === caseName && r.name === t.name);
        if (!rs.length) continue;
        const isAnchor = t === g.anchor;
        const ms = rs.map((r) => r.m);
        const cpu = ms.map((m) => m.cpu).filter((x) => x != null);
        const bcpu = ms.map((m) => (isAnchor && t.kind === "azure" ? m.cpu : m.backendCpu)).filter((x) => x != null);
        const rss = ms.map((m) => m.rss).filter((x) => x != null);
        const ratios = isAnchor ? [] : rs.map((r) => ratioOf(caseName, r.m, r.anchor));
        const anchorCase = anchorCaseOf(g, caseName);
        const label = isAnchor && anchorCase !== caseName ? `${t.name} (its ${anchorCase})` : t.name;
        lines.push(
          `| ${c.title()} | ${label} | ${spread(ms.map((m) => m.mibps))} | ` +
            `${caseName === "small" ? spread(ms.map((m) => m.filesps)) : "—"} | ` +
            `${cpu.length ? f(median(cpu)) : "—"} | ${bcpu.length ? f(median(bcpu)) : "—"} | ` +
            `${f(median(ms.map((m) => m.busyCores)))} of ${cores} | ` +
            `${rss.length ? f(Math.max(...rss), 0) : "—"} | ${isAnchor ? "anchor" : spread(ratios, 2)} |`,
        );
      }
    }
  }
  const table = lines.join("\n");
  const notes = [
    `${config.reps} rep(s) per case; each target's rep is paired with the same rep's anchor run; the order turns every rep (anchor first, then anchor last), so that what favours the later run favours neither side over an even number of reps.`,
    "Server CPU: utime+stime of the target's own process over the timed part (for Azurite direct, Azurite's; for the relay, the relay's). Azurite CPU: the Azurite process behind an Azure target. Machine busy: every process's CPU over the timed part (the client's, Postgres', the kernel's too; /proc/stat), divided by its wall time: at the core count, the run was bound by CPU.",
    hwmResettable
      ? "Peak RSS: VmHWM of the target's process, reset before each run."
      : "Peak RSS: VmHWM since the process started (this kernel did not let it be reset).",
    "Every stored file was read back and matched by sha256 (outside the timed part); on Azure it was then deleted (Delete Blob, or filegate's DELETE), so that Azurite holds as much at every measurement.",
    `Before the first timed run every target took a ${fmtBytes(warmFile.length)} upload and ${warmSmallFiles} small files, untimed (a freshly started server pays for its start).`,
    "Before every timed run the page cache's dirty pages were written back (sync) and the machine was left to fall idle (under a tenth of a core), so that no run pays for what the one before it left behind.",
  ];
  console.log(table);
  console.log("");
  for (const n of notes) console.log(`- ${n}`);
  if (config.resultsFile) {
    fs.writeFileSync(config.resultsFile, JSON.stringify({ config: { sizes, reps: config.reps, cases: caseNames }, results }, null, 1));
  }
}

try {
  await main();
  await agent.close();
  process.exit(0);
} catch (err) {
  fail(err?.stack ?? String(err));
}
