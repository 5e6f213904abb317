// The benchmark's tus anchor: @tus/server with @tus/file-store, as their
// READMEs set them up (no fsync, the default memory locker), on 127.0.0.1.
//
// Started by scripts/bench; not meant to be run by hand, but it can be:
//
//   node scripts/bench-tus-server.mjs TOOLS_DIR STORE_DIR
//
// TOOLS_DIR holds node_modules with @tus/server and @tus/file-store (both
// ES modules only, so they are imported by file URL: ESM ignores NODE_PATH).
// Listens on a free port and prints `tus listening on http://127.0.0.1:PORT/files`.

import { createRequire } from "node:module";
import http from "node:http";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [toolsDir, storeDir] = process.argv.slice(2);
if (!toolsDir || !storeDir) {
  console.error("usage: bench-tus-server.mjs TOOLS_DIR STORE_DIR");
  process.exit(2);
}

const require = createRequire(path.join(toolsDir, "package.json"));
const load = (name) => import(pathToFileURL(require.resolve(name)).href);
const { Server } = await load("@tus/server");
const { FileStore } = await load("@tus/file-store");

const tus = new Server({ path: "/files", datastore: new FileStore({ directory: storeDir }) });
const server = http.createServer((req, res) => tus.handle(req, res));
server.listen(0, "127.0.0.1", () => {
  console.log(`tus listening on http://127.0.0.1:${server.address().port}/files`);
});

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  });
}
