"""A TCP relay in front of a real server on 127.0.0.1: it counts the requests and the bytes
that pass, and can cut a download off partway or stop altogether, as a network or an upstream
that goes away would. Not a mock: every answer is the server's."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

_REQUEST = re.compile(
    rb"(GET|HEAD|POST|PUT|PATCH|DELETE) (\S+) HTTP/1\.[01]\r\n(.*?)\r\n\r\n", re.S
)


class Relay:
    def __init__(self, target_port: int, rate: float | None = None) -> None:
        """``rate``: the most bytes per second the server's answers pass at, over all
        connections together (a link of that speed); None: as fast as they come."""
        self.target_port = target_port
        self.rate = rate
        self._sent_at = time.monotonic()  # when the link is free again
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.bytes_down = 0
        self._sent_up: list[bytearray] = []
        #: Cut the next download once it has passed this many bytes (then reset to None).
        self.cut_after: int | None = None
        self.cuts = 0
        #: Hold the next download once it has passed this many bytes, until ``release()``.
        self.hold_after: int | None = None
        self.holding = threading.Event()
        self._released = threading.Event()
        self._open: list[socket.socket] = []
        self._running = True
        threading.Thread(target=self._accept, daemon=True).start()

    def requests(self) -> list[tuple[str, str, dict[str, str]]]:
        """``(method, path, headers)`` of every request the server was sent."""
        found = []
        with self.lock:
            sent = [bytes(b) for b in self._sent_up]
        for data in sent:
            for m in _REQUEST.finditer(data):
                headers = {}
                for line in m.group(3).split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    headers[name.strip().lower().decode()] = value.strip().decode()
                found.append((m.group(1).decode(), m.group(2).decode(), headers))
        return found

    def _accept(self) -> None:
        while self._running:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self.lock:
                self._open += [client, server]
                sent = bytearray()
                self._sent_up.append(sent)
            threading.Thread(target=self._up, args=(client, server, sent), daemon=True).start()
            threading.Thread(target=self._down, args=(server, client), daemon=True).start()

    def _up(self, client: socket.socket, server: socket.socket, sent: bytearray) -> None:
        try:
            while data := client.recv(65536):
                with self.lock:
                    sent += data
                server.sendall(data)
        except OSError:
            pass
        finally:
            _close(server)

    def _down(self, server: socket.socket, client: socket.socket) -> None:
        passed = 0
        try:
            while data := server.recv(65536):
                with self.lock:
                    self.bytes_down += len(data)
                    cut = self.cut_after is not None and passed + len(data) > self.cut_after
                    if cut:
                        self.cut_after = None
                        self.cuts += 1
                if cut:
                    break
                hold = self.hold_after is not None and passed + len(data) > self.hold_after
                if hold:
                    self.hold_after = None
                    self.holding.set()
                    self._released.wait()
                if self.rate is not None:
                    with self.lock:
                        now = time.monotonic()
                        self._sent_at = max(self._sent_at, now) + len(data) / self.rate
                        wait = self._sent_at - now
                    if wait > 0:
                        time.sleep(wait)
                client.sendall(data)
                passed += len(data)
        except OSError:
            pass
        finally:
            _close(client)
            _close(server)

    def release(self) -> None:
        """Lets a held download go on."""
        self._released.set()

    def stop(self) -> None:
        """Stops relaying: the listener closes and every connection is cut."""
        self._running = False
        self._released.set()
        _close(self.listener)
        with self.lock:
            for s in self._open:
                _close(s)


def _close(s: socket.socket) -> None:
    with suppress(OSError):
        s.shutdown(socket.SHUT_RDWR)
    s.close()


@contextmanager
def relay(target_port: int, rate: float | None = None) -> Iterator[Relay]:
    r = Relay(target_port, rate)
    try:
        yield r
    finally:
        r.stop()
