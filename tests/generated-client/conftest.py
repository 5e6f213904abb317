"""Starts a real `filegate serve` (embedded profile, fresh data folder, free port) for the tests
of the client generated from the checked-in spec."""

import os
import subprocess
import tempfile

import pytest


@pytest.fixture(scope="session")
def server():
    binary = os.environ["FILEGATE_BIN"]
    data = tempfile.mkdtemp(prefix="filegate-pyclient-")
    env = {k: v for k, v in os.environ.items() if not (k.startswith("FILEGATE_") and "__" in k)}
    env.update(
        {
            "FILEGATE_HTTP__ADDR": "127.0.0.1:0",
            "FILEGATE_DATABASE__URL": f"sqlite://{data}/filegate.db",
            "FILEGATE_BLOB__LOCAL__ROOT": f"{data}/blobs",
            "FILEGATE_LOG__LEVEL": "warn",
        }
    )
    proc = subprocess.Popen([binary, "serve"], stdout=subprocess.PIPE, text=True, env=env)
    key, base = None, None
    for line in proc.stdout:
        line = line.strip()
        if line.startswith("key:"):
            key = line.split(":", 1)[1].strip()
        if line.startswith("filegate listening on "):
            base = line.removeprefix("filegate listening on ").strip()
            break
    assert key and base, "the server did not print its first key and address"
    yield base, key
    proc.terminate()
    proc.wait(timeout=15)
