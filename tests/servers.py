"""Running `ocistore serve` for tests: a subprocess on 127.0.0.1, waited for until it answers."""

from __future__ import annotations

import os
import resource
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from .distribution import free_port


@dataclass
class Server:
    url: str
    root: Path
    proc: subprocess.Popen[bytes]
    log: Path
    verify: ssl.SSLContext | bool = True  # trusts the test CA when the server speaks TLS

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=120, verify=self.verify)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])


@contextmanager
def ocistore_server(
    root: Path,
    *,
    workers: int | None = 1,
    server: str = "granian",
    delete: bool = True,
    extra: list[str] | None = None,
    port: int | None = None,
    tls_ca: Path | None = None,
    file_size_limit: int | None = None,
) -> Iterator[Server]:
    """``tls_ca``: the server's config enables TLS with a certificate this CA signed.
    ``file_size_limit``: RLIMIT_FSIZE of the server, so that its writes past that many bytes
    of a file fail (EFBIG, as Python ignores SIGXFSZ): a disk that refuses more."""
    port = port or free_port()
    log = root.parent / f"ocistore-{port}.log"
    args = [
        sys.executable, "-m", "ocistore.cli", "serve",
        "--addr", f"127.0.0.1:{port}", "--root", str(root),
        *(["--workers", str(workers)] if workers is not None else []), "--server", server,
        "--delete" if delete else "--no-delete", *(extra or []),
    ]  # fmt: skip
    with log.open("ab") as out:
        proc = subprocess.Popen(
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=None if file_size_limit is None else _limit_file_size(file_size_limit),
        )
    url = f"{'https' if tls_ca else 'http'}://127.0.0.1:{port}"
    verify = ssl.create_default_context(cafile=tls_ca) if tls_ca else True
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                # 200, or 401 when the configuration asks for credentials.
                if httpx.get(url + "/v2/", timeout=2, verify=verify).status_code in (200, 401):
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ocistore serve did not start:\n{log.read_text()}")
            time.sleep(0.05)
        yield Server(url, root, proc, log, verify)
    finally:
        stop(proc)


def _limit_file_size(limit: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def stop(proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """SIGTERM to the process group (the process was started in a session of its own), then
    SIGKILL to the group if it has not exited after ``timeout`` seconds."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
