// Starts the filegate binary named by FILEGATE_BIN for a test, on the embedded profile.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";

const BIN = process.env.FILEGATE_BIN;
if (!BIN) throw new Error("FILEGATE_BIN must name the filegate binary");

/** Starts `filegate serve` with `env` on a fresh folder; resolves to { server, apiKey, stop }. */
export async function startServer(env = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), "filegate-js-"));
  const child = spawn(BIN, ["serve"], {
    cwd: dir,
    env: {
      ...process.env,
      FILEGATE_HTTP__ADDR: "127.0.0.1:0",
      FILEGATE_LOG__LEVEL: "warn",
      FILEGATE_HTTP__MAX_CHUNK_BYTES: String(2 * 1024 * 1024),
      ...env,
    },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const lines = createInterface({ input: child.stdout });
  let server;
  let apiKey;
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("filegate did not start within 60 s")), 60_000);
    child.once("exit", (code) => reject(new Error(`filegate exited with ${code}`)));
    lines.on("line", (line) => {
      const listening = line.match(/listening on (http:\/\/\S+)/);
      if (listening) server = listening[1];
      const key = line.trim().match(/^key:\s*(\S+)/);
      if (key) apiKey = key[1];
      if (server && apiKey) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  const stop = async () => {
    child.kill("SIGTERM");
    await new Promise((resolve) => child.once("exit", resolve));
    rmSync(dir, { recursive: true, force: true });
  };
  return { server, apiKey, stop };
}
