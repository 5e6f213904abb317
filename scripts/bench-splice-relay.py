#!/usr/bin/env python3
"""The benchmark's zero-copy relay floor: a TCP relay in front of Azurite that moves
every byte with splice(2) (socket -> pipe -> socket), so that no byte enters user space
and the relay's own CPU is next to nothing. Beside scripts/bench-relay.mjs (Node's net
pipe, which copies through user space as any HTTP server must), it tells what the extra
hop alone costs on the machine: the two more trips of every byte through the kernel's
TCP stack, and the wake-ups of one more process.

Started by scripts/bench with --relay; not meant to be run by hand, but it can be:

    python3 scripts/bench-splice-relay.py TARGET_PORT

Listens on a free port of 127.0.0.1, relays each connection to 127.0.0.1:TARGET_PORT
(two threads per connection, one per direction), and prints
`relay listening on http://127.0.0.1:PORT`. Linux only (os.splice, Python 3.10+).
"""

import fcntl
import os
import signal
import socket
import sys
import threading

# Bytes moved per splice call, and the pipe's size (F_SETPIPE_SZ, as large as allowed).
CHUNK = 1 << 20
F_SETPIPE_SZ = 1031


def pump(src: socket.socket, dst: socket.socket) -> None:
    """Moves src's bytes to dst until src ends, then ends dst's sending side."""
    r, w = os.pipe()
    try:
        try:
            fcntl.fcntl(w, F_SETPIPE_SZ, CHUNK)
        except OSError:
            pass  # a smaller pipe only means more calls
        while True:
            n = os.splice(src.fileno(), w, CHUNK)
            if n == 0:
                break
            while n:
                n -= os.splice(r, dst.fileno(), n)
    except OSError:
        pass  # a reset on either side ends this direction
    finally:
        os.close(r)
        os.close(w)
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def relay(client: socket.socket, target: int) -> None:
    try:
        upstream = socket.create_connection(("127.0.0.1", target))
    except OSError:
        client.close()
        return
    for s in (client, upstream):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    ways = [
        threading.Thread(target=pump, args=(client, upstream), daemon=True),
        threading.Thread(target=pump, args=(upstream, client), daemon=True),
    ]
    for t in ways:
        t.start()
    for t in ways:
        t.join()
    client.close()
    upstream.close()


def main() -> None:
    if len(sys.argv) != 2 or not sys.argv[1].isdigit():
        print("usage: bench-splice-relay.py TARGET_PORT", file=sys.stderr)
        sys.exit(2)
    target = int(sys.argv[1])
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(512)
    print(f"relay listening on http://127.0.0.1:{server.getsockname()[1]}", flush=True)
    while True:
        client, _ = server.accept()
        threading.Thread(target=relay, args=(client, target), daemon=True).start()


if __name__ == "__main__":
    main()
