// Creates the blob container the tests use (if missing) and checks that it is
// really there, by listing the account's containers.
//
// Called by scripts/test; not meant to be run by hand, but it can be:
//
//   FILEGATE_NODE_TOOLS_DIR=<dir with node_modules> \
//   FILEGATE_TEST_AZURE_CONNECTION_STRING='...' \
//   node scripts/azurite-container.mjs uploads
//
// The connection string comes in through the environment, not argv, so that
// it does not show up in `ps`. @azure/storage-blob is not installed in the
// clone but in scripts/test's cache folder, so it is loaded from there
// (ESM imports ignore NODE_PATH, hence createRequire).
//
// Prints one line and exits 0 on success; on failure prints one line to
// stderr and exits 1.

import { createRequire } from "node:module";
import path from "node:path";

function fail(message) {
  console.error(`azurite-container: ${message}`);
  process.exit(1);
}

const toolsDir = process.env.FILEGATE_NODE_TOOLS_DIR;
const connectionString = process.env.FILEGATE_TEST_AZURE_CONNECTION_STRING;
const containerName = process.argv[2];

if (!toolsDir) fail("FILEGATE_NODE_TOOLS_DIR is not set");
if (!connectionString) fail("FILEGATE_TEST_AZURE_CONNECTION_STRING is not set");
if (!containerName) fail("usage: azurite-container.mjs CONTAINER_NAME");

const require = createRequire(path.join(toolsDir, "package.json"));
const { BlobServiceClient } = require("@azure/storage-blob");

// Keep the SDK's own retries short: a blob endpoint that does not answer
// should fail the test script within seconds, not minutes.
const service = BlobServiceClient.fromConnectionString(connectionString, {
  retryOptions: { maxTries: 3, tryTimeoutInMs: 10_000, retryDelayInMs: 500 },
});

// Belt and braces: never hang forever, whatever the SDK does.
const watchdog = setTimeout(
  () => fail(`no answer from ${service.url} within 60 s`),
  60_000,
);

try {
  const container = service.getContainerClient(containerName);
  const { succeeded } = await container.createIfNotExists();

  // The real check: the container is listed by the service.
  let found = false;
  for await (const item of service.listContainers({ prefix: containerName })) {
    if (item.name === containerName) {
      found = true;
      break;
    }
  }
  if (!found) {
    fail(`container '${containerName}' is not listed after creating it`);
  }

  clearTimeout(watchdog);
  console.log(
    `container '${containerName}' ${succeeded ? "created" : "already exists"} at ${container.url}`,
  );
} catch (err) {
  const detail = err?.code || err?.statusCode || "";
  fail(
    `could not create/list container '${containerName}' at ${service.url}: ` +
      `${detail ? `[${detail}] ` : ""}${String(err?.message ?? err).split("\n")[0]}`,
  );
}
