// The benchmark's relay floor: a bare TCP relay in front of Azurite, which
// copies every byte from the client to Azurite and back and parses nothing.
// Any service that receives an upload and hands it to Azurite pays at least
// this much on the same machine (two more trips of every byte through the
// kernel, and a process's CPU beside Azurite's), so that `scripts/bench
// --relay` can show how near the Azure targets are to what a process in the
// path can reach here at all.
//
// Started by scripts/bench; not meant to be run by hand, but it can be:
//
//   node scripts/bench-relay.mjs TARGET_PORT
//
// Listens on a free port of 127.0.0.1, relays each connection to
// 127.0.0.1:TARGET_PORT, and prints `relay listening on http://127.0.0.1:PORT`.

import net from "node:net";

const targetPort = Number(process.argv[2]);
if (!Number.isInteger(targetPort) || targetPort <= 0) {
  console.error("usage: bench-relay.mjs TARGET_PORT");
  process.exit(2);
}

const server = net.createServer((client) => {
  const upstream = net.connect(targetPort, "127.0.0.1");
  client.setNoDelay(true);
  upstream.setNoDelay(true);
  client.pipe(upstream);
  upstream.pipe(client);
  // Either side's error or reset ends both: a half-open pair would hold the
  // client's request until the watchdog.
  client.on("error", () => upstream.destroy());
  upstream.on("error", () => client.destroy());
  client.on("close", () => upstream.destroy());
  upstream.on("close", () => client.destroy());
});
server.listen(0, "127.0.0.1", () => {
  console.log(`relay listening on http://127.0.0.1:${server.address().port}`);
});

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    server.close();
    process.exit(0);
  });
}
