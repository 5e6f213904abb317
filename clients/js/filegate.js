// filegate's uploader for browsers and Node 20+: no dependencies, one ES module.
//
// upload(file, options) sends a Blob (a File, in a browser) in chunks: block 0 first, which
// opens the upload, then up to `parallel` blocks at once. A failed chunk is retried with
// back-off, honouring Retry-After; an interrupted upload resumes from the blocks the server
// says are missing (options.resume = its fileId); options.signal aborts it. Errors are
// FilegateError: the server's envelope message and the HTTP status.

const DEFAULT_CHUNK = 8 * 1024 * 1024;
const DEFAULT_PARALLEL = 4;
const DEFAULT_TRIES = 6;
const MAX_WAIT_MS = 60_000;
const RETRYABLE = new Set([408, 429, 500, 502, 503, 504]);

/** An error of the filegate API: `status` is the HTTP status (0 when no answer came). */
export class FilegateError extends Error {
  constructor(message, status, body) {
    super(message);
    this.name = "FilegateError";
    this.status = status;
    this.body = body;
  }
}

function base(server) {
  if (!server) throw new TypeError("options.server is required (the service's base URL)");
  return String(server).replace(/\/+$/, "");
}

function abortError(signal) {
  if (signal && signal.reason instanceof Error) return signal.reason;
  const e = new Error("the upload was aborted");
  e.name = "AbortError";
  return e;
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortError(signal));
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortError(signal));
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** The wait a Retry-After header asks for, in ms (seconds or an HTTP date), if any. */
function retryAfterMs(resp) {
  const value = resp?.headers?.get("retry-after");
  if (!value) return undefined;
  const secs = Number(value);
  const ms = Number.isFinite(secs) ? secs * 1000 : Date.parse(value) - Date.now();
  return Number.isFinite(ms) ? Math.min(Math.max(ms, 0), MAX_WAIT_MS) : undefined;
}

/** Reads the envelope of an answer; throws FilegateError when it is not a success. */
async function envelope(resp) {
  let body;
  try {
    body = await resp.json();
  } catch {
    body = undefined;
  }
  if (resp.ok && body?.isSuccess) return body.data;
  let message = body?.message || `HTTP ${resp.status}`;
  if (resp.status === 410) {
    message = `the upload expired before it was complete and its blocks are gone; start a new upload (${message})`;
  }
  throw new FilegateError(message, resp.status, body);
}

/** Sends `request()` until it answers, retrying network errors and retryable statuses. */
async function withRetries(request, { signal, tries = DEFAULT_TRIES }) {
  let delay = 500;
  for (let attempt = 1; ; attempt++) {
    if (signal?.aborted) throw abortError(signal);
    let resp;
    let failure;
    try {
      resp = await request();
    } catch (e) {
      if (signal?.aborted || e?.name === "AbortError") throw abortError(signal);
      failure = new FilegateError(`the server could not be reached: ${e?.message || e}`, 0);
    }
    if (resp && !RETRYABLE.has(resp.status)) return envelope(resp);
    if (resp) {
      try {
        await envelope(resp);
      } catch (e) {
        failure = e;
      }
    }
    if (attempt >= tries) throw failure;
    await sleep(retryAfterMs(resp) ?? delay, signal);
    delay = Math.min(delay * 2, 30_000);
  }
}

function headers(apiKey) {
  if (!apiKey) throw new TypeError("options.apiKey is required");
  return { "X-API-Key": apiKey };
}

/** Where an upload stands: `{ fileId, isComplete, url, totalBlocks, missingRanges, ... }`. */
export async function status(fileId, { server, apiKey, signal } = {}) {
  const url = `${base(server)}/api/v1/Files/${encodeURIComponent(fileId)}`;
  return withRetries(() => fetch(url, { headers: headers(apiKey), signal }), { signal });
}

/** Deletes a file (complete or open) of the key's firm. */
export async function remove(fileId, { server, apiKey, signal } = {}) {
  const url = `${base(server)}/api/v1/Files/${encodeURIComponent(fileId)}`;
  return withRetries(() => fetch(url, { method: "DELETE", headers: headers(apiKey), signal }), {
    signal,
  });
}

/**
 * Uploads `file` (a Blob or File) in chunks; resolves to `{ fileId, url, size }`.
 * Options: server, apiKey, mode (Firm, Profile, Contact, Message, Template, Import),
 * chunkSize (8 MiB), parallel (4), tries (6), onProgress(sentBytes, totalBytes),
 * resume (the fileId of an interrupted upload), onStart(fileId) (called once block 0 is
 * accepted: keep the id to resume with), signal (an AbortSignal), fileName.
 */
export async function upload(file, options = {}) {
  const {
    server,
    apiKey,
    mode,
    chunkSize = DEFAULT_CHUNK,
    parallel = DEFAULT_PARALLEL,
    tries = DEFAULT_TRIES,
    onProgress,
    resume,
    signal,
  } = options;
  if (!(file instanceof Blob)) throw new TypeError("file must be a Blob or a File");
  if (!mode) throw new TypeError("options.mode is required");
  if (file.size === 0) throw new TypeError("the file is empty");
  const size = file.size;
  const chunk = Math.max(1, Math.floor(chunkSize));
  const total = Math.ceil(size / chunk);
  if (total > 50_000) {
    throw new TypeError(`${total} chunks of ${chunk} bytes; at most 50000: raise chunkSize`);
  }
  const name = options.fileName || file.name || "file";
  const chunkUrl = `${base(server)}/api/v1/Files/chunk`;
  const auth = headers(apiKey);
  const blockSize = (i) => Math.min(chunk, size - i * chunk);
  let sent = 0;
  const progress = (bytes) => {
    sent += bytes;
    if (onProgress) onProgress(Math.min(sent, size), size);
  };

  // One controller for every request of this upload: the caller's signal aborts it, and so
  // does the first block that fails for good, so that the other blocks stop at once.
  const ctrl = new AbortController();
  const onCallerAbort = () => ctrl.abort(abortError(signal));
  if (signal?.aborted) throw abortError(signal);
  signal?.addEventListener("abort", onCallerAbort, { once: true });
  const inner = ctrl.signal;

  const send = (index, fileId) =>
    withRetries(
      () => {
        const form = new FormData();
        form.append("BlockIndex", String(index));
        form.append("TotalBlocks", String(total));
        form.append("Mode", mode);
        if (fileId) form.append("FileId", fileId);
        // Last: the server streams the bytes to storage as they arrive.
        form.append("File", file.slice(index * chunk, index * chunk + blockSize(index), file.type), name);
        return fetch(chunkUrl, { method: "POST", headers: auth, body: form, signal: inner });
      },
      { signal: inner, tries },
    );

  try {
    let fileId;
    let missing;
    let done;
    if (resume) {
      const st = await status(resume, { server, apiKey, signal: inner });
      if (st.totalBlocks !== total) {
        throw new FilegateError(
          `upload ${resume} has ${st.totalBlocks} blocks, but this file in chunks of ${chunk} bytes has ${total}: use the chunk size it was started with`,
          409,
        );
      }
      fileId = resume;
      missing = st.missingRanges.flatMap(([a, b]) => Array.from({ length: b - a + 1 }, (_, k) => a + k));
      progress(size - missing.reduce((n, i) => n + blockSize(i), 0));
      if (st.isComplete) return { fileId, url: st.url, size };
    } else {
      const first = await send(0, undefined);
      fileId = first.fileId;
      if (options.onStart) options.onStart(fileId);
      progress(blockSize(0));
      if (first.isComplete) done = first;
      missing = Array.from({ length: total - 1 }, (_, k) => k + 1);
    }

    let next = 0;
    let failure;
    const worker = async () => {
      while (!failure && !done && next < missing.length) {
        const index = missing[next++];
        try {
          const answer = await send(index, fileId);
          progress(blockSize(index));
          if (answer.isComplete) done = answer;
        } catch (e) {
          if (failure) return;
          // 409: the upload is already complete (a retried block whose first try committed
          // it, or another tab that finished it); the status says which.
          if (e instanceof FilegateError && e.status === 409) {
            const st = await status(fileId, { server, apiKey, signal: inner }).catch(() => undefined);
            if (st?.isComplete) {
              done = st;
              return;
            }
          }
          failure = e;
          ctrl.abort(e);
        }
      }
    };
    const workers = Array.from({ length: Math.max(1, Math.min(parallel, missing.length)) }, worker);
    await Promise.allSettled(workers);
    if (failure) throw failure;
    if (!done) {
      // The completing answer may have gone to a retry; the status knows.
      const st = await status(fileId, { server, apiKey, signal: inner });
      if (!st.isComplete) {
        throw new FilegateError(`every block was sent but upload ${fileId} is not complete`, 409, st);
      }
      done = st;
    }
    return { fileId, url: done.url, size };
  } catch (e) {
    // An abort by the caller surfaces as the caller's reason, not as the inner one.
    if (signal?.aborted) throw abortError(signal);
    throw e;
  } finally {
    signal?.removeEventListener("abort", onCallerAbort);
  }
}
