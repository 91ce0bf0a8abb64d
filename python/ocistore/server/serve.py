"""``ocistore serve``: runs the registry under granian (default) or uvicorn.

With ``http.nativefront`` (``--native-front``; the default on filesystem storage) the Rust
front (``ocistore._core.Front``) owns the
listening socket: it answers blob GET and HEAD itself from the filesystem (a repository's link
checked, then the data read in blocks), writes the bodies of upload PATCHes and PUTs straight
into the upload (a PUT then goes on without its body, and the application commits it), and
passes every other request to the application, which then listens on a private unix socket.
The front takes only the plain cases; every error is the application's answer. Requests the
front answers still appear in ``/metrics`` and the access log (the front reports them to the
application every second). With ``auth`` configured the application still decides: the front
asks it once per credential, repository and access, and reuses a yes for at most
``_core.FrontProtocol.GRANT_SECONDS_MAX`` (never past a token's expiry), so a revoked
credential keeps reading and writing blobs for up to that long; requests without credentials,
or refused ones, go to the application, which answers with its challenge. With ``http.tls``
the front speaks TLS (rustls; HTTP/1.1 by ALPN). The front serves filesystem and object storage
alike (and writes nothing in read-only mode).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import secrets
import shutil
import signal
import socket
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from .config import Config, ConfigError, parse_addr

__all__ = ["serve"]

FACTORY = "ocistore.server.asgi:create_app"
#: The private directory of a server with a native front (its application's unix socket).
PRIVATE_PREFIX = "ocistore-front-"


#: Application worker processes by default. Two, not one: behind the front the application
#: answers manifest and tag writes, whose fsyncs leave a single worker idle while its clients
#: queue (docs/performance.md, "Application workers").
DEFAULT_WORKERS = 2


def serve(config: Config, *, workers: int = DEFAULT_WORKERS, server: str = "granian") -> None:
    host, port = parse_addr(config.addr)
    if not config.object_storage():
        Path(config.root).mkdir(parents=True, exist_ok=True)
    if workers > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="ocistore-metrics-")
    config.native_front = config.front_in_use()
    if not config.native_front:
        os.environ["OCISTORE_CONFIG"] = config.to_json()
        _run(config, host, port, None, workers, server)
        return
    from .._core import Front
    from ..storage.driver import FilesystemDriver, ObjectStoreDriver
    from ..storage.manifests import manifest_media_types

    # Workers start as fresh interpreters, not forks of this process: a fork would carry copies
    # of the front's sockets (its listener, its clients' connections) into every worker, where
    # they stay open after the front closes them, and of its running threads' state.
    multiprocessing.set_start_method("spawn", force=True)
    _remove_abandoned_private_dirs()
    private = Path(tempfile.mkdtemp(prefix=PRIVATE_PREFIX))
    (private / "pid").write_text(f"{os.getpid()}\n")
    upstream = private / "app.sock"
    config.front_secret = secrets.token_urlsafe(32)
    os.environ["OCISTORE_CONFIG"] = config.to_json()
    headers = [(name, value) for name, values in config.headers.items() for value in values]
    driver = config.storage_driver()
    try:
        front = Front(
            _ip(host, port),
            port,
            upstream=upstream,
            secret=config.front_secret,
            blob_root=Path(config.root).resolve() if isinstance(driver, FilesystemDriver) else None,
            object_store=driver.store if isinstance(driver, ObjectStoreDriver) else None,
            redirect=config.redirect,
            descriptor_cache=config.blob_descriptor_cache is not None,
            uploads=not config.readonly and not config.proxy,
            # The front checks a pushed image manifest's blobs, and nothing of the rest of
            # validation.manifests: it takes pushes only where those blobs must be there.
            manifest_puts=isinstance(driver, FilesystemDriver)
            and config.manifest_validation().blobs_required,
            deletes=config.delete_enabled,
            # A pull-through cache's tags are its upstream's: the application asks it.
            manifest_media_types=[] if config.proxy else manifest_media_types(),
            authenticate=bool(config.auth),
            headers=headers,
            tls_certificate=config.tls_certificate,
            tls_key=config.tls_key,
            tls_minimum=config.tls_minimum,
            body_idle_timeout=config.body_idle_timeout_seconds,
        )
    except ValueError as e:  # the certificate or key cannot be used
        shutil.rmtree(private, ignore_errors=True)
        raise ConfigError(f"http.tls: {e}") from None
    except BaseException:
        shutil.rmtree(private, ignore_errors=True)
        raise
    # The application behind the front speaks plain HTTP on its private socket.
    behind = replace(config, tls_certificate=None, tls_key=None)

    def stop_front() -> None:
        front.stop(config.drain_timeout_seconds)

    try:
        _run(behind, host, port, upstream, workers, server, before_drain=stop_front)
    finally:
        stop_front()  # a no-op once stopped; here for a server that ended without a signal
        shutil.rmtree(private, ignore_errors=True)


def _remove_abandoned_private_dirs() -> None:
    """Private socket directories of servers that died without cleaning up (SIGKILL, OOM):
    each names its server's process, and one whose process is gone is removed."""
    for private in Path(tempfile.gettempdir()).glob(f"{PRIVATE_PREFIX}*"):
        try:
            pid = int((private / "pid").read_text())
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(private, ignore_errors=True)
        except (OSError, ValueError):
            continue  # another user's, being created, or from before pid files: left alone


def _ip(host: str, port: int) -> str:
    """``host`` as an address the front can bind (names are resolved here)."""
    return str(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][4][0])


def _run(
    config: Config,
    host: str,
    port: int,
    uds: Path | None,
    workers: int,
    server: str,
    *,
    before_drain: Callable[[], None] | None = None,
) -> None:
    """Serves until SIGTERM or SIGINT to this process; then calls ``before_drain`` (which stops
    the front: no new connections, requests in flight answered, its last records delivered)
    while the application still serves, and only then lets the application drain and stop."""
    if server == "uvicorn":
        _run_uvicorn(config, host, port, uds, workers, before_drain)
        return
    from granian import Granian
    from granian.constants import Interfaces, SSLProtocols

    class Server(Granian):  # type: ignore[misc,valid-type]
        def shutdown(self, exit_code: int = 0) -> None:
            # Granian's main process calls this after a signal, before it stops the workers.
            if before_drain is not None:
                before_drain()
            super().shutdown(exit_code)

    Server(
        FACTORY,
        factory=True,
        address=host,
        port=port,
        uds=uds,
        interface=Interfaces.ASGI,
        workers=workers,
        log_access=False,
        workers_kill_timeout=int(config.drain_timeout_seconds) or None,
        ssl_cert=Path(config.tls_certificate) if config.tls_certificate else None,
        ssl_key=Path(config.tls_key) if config.tls_key else None,
        ssl_protocol_min=SSLProtocols(config.tls_minimum),
    ).serve()


def _run_uvicorn(
    config: Config,
    host: str,
    port: int,
    uds: Path | None,
    workers: int,
    before_drain: Callable[[], None] | None,
) -> None:
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    settings = uvicorn.Config(
        FACTORY,
        factory=True,
        host=host,
        port=port,
        uds=None if uds is None else str(uds),
        workers=workers,
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=int(config.drain_timeout_seconds) or None,
        ssl_certfile=config.tls_certificate,
        ssl_keyfile=config.tls_key,
    )

    class Server(uvicorn.Server):
        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            if before_drain is not None:
                # In a thread: the front waits for requests this event loop is still answering.
                await asyncio.to_thread(before_drain)
            await super().shutdown(sockets)

    class Supervisor(Multiprocess):
        def terminate_all(self) -> None:
            if before_drain is not None:
                before_drain()
            super().terminate_all()

    if settings.workers > 1:
        Supervisor(settings, sockets=[settings.bind_socket()]).run()
        return
    single = Server(settings)
    # uvicorn raises the signal it stopped for again once it has stopped; absorbed here, so
    # that what serve() does after the server (stopping the front, removing its socket) runs.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    with contextlib.suppress(KeyboardInterrupt):  # the SIGINT raised again
        single.run()
    if not single.started:  # uvicorn has logged why (a busy port, the app failing to load)
        raise SystemExit(3)
