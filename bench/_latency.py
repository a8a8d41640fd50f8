"""A loopback TCP proxy that delays every byte by a fixed one-way time, for the benchmarks.

A registry on loopback answers in a fraction of a millisecond; the registries CI jobs push to
(ghcr.io, a GitLab instance's registry, a cloud registry in another zone) are one or more
network round trips away, so what a publish costs there is mostly how many round trips it
waits for one after another. This proxy puts such a distance between a client and the
loopback registry: each chunk read from either side is forwarded ``delay`` seconds after it
arrived (in order, without a bandwidth limit), and a new connection reaches the registry one
round trip after it was accepted (TCP's handshake). A request and its answer then take one
round trip more than they did; requests on separate connections still overlap.

Not a benchmark itself: bench/code_change.py starts it for ``--rtt-ms``. Traffic control
(``tc qdisc ... netem``) would do the same in the kernel, where the machine has it; this needs
nothing but Python.
"""

from __future__ import annotations

import heapq
import socket
import threading
import time


class DelayProxy:
    """Listens on a free loopback port and forwards to ``target`` (``host:port``)."""

    def __init__(self, target: str, rtt_ms: float) -> None:
        host, _, port = target.rpartition(":")
        self.target = (host, int(port))
        self.delay = rtt_ms / 2000.0  # one way, in seconds
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.host = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        time.sleep(2 * self.delay)  # SYN to the far side and its SYN-ACK back
        try:
            upstream = socket.create_connection(self.target)
        except OSError:
            client.close()
            return
        for sock in (client, upstream):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        _Pipe(client, upstream, self.delay)
        _Pipe(upstream, client, self.delay)

    def stop(self) -> None:
        self._closed.set()
        self.listener.close()


class _Pipe:
    """One direction of a connection: read as it comes, send each chunk once it is due."""

    def __init__(self, source: socket.socket, sink: socket.socket, delay: float) -> None:
        self.source, self.sink, self.delay = source, sink, delay
        self.due: list[tuple[float, int, bytes]] = []  # (when, sequence, chunk): a heap
        self.ready = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._send, daemon=True).start()

    def _read(self) -> None:
        sequence = 0
        while True:
            try:
                chunk = self.source.recv(1 << 20)
            except OSError:
                chunk = b""
            with self.ready:
                heapq.heappush(self.due, (time.monotonic() + self.delay, sequence, chunk))
                self.ready.notify()
            sequence += 1
            if not chunk:  # the end travels with the same delay as the data before it
                return

    def _send(self) -> None:
        while True:
            with self.ready:
                while not self.due:
                    self.ready.wait()
                when, _, chunk = self.due[0]
                wait = when - time.monotonic()
                if wait > 0:
                    self.ready.wait(wait)
                    continue
                heapq.heappop(self.due)
            try:
                if not chunk:
                    self.sink.shutdown(socket.SHUT_WR)
                    return
                self.sink.sendall(chunk)
            except OSError:
                self.source.close()
                return
