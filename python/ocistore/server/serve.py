"""``ocistore serve``: runs the registry under granian (default) or uvicorn."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .config import Config, parse_addr

__all__ = ["serve"]

FACTORY = "ocistore.server.asgi:create_app"


def serve(config: Config, *, workers: int = 1, server: str = "granian") -> None:
    host, port = parse_addr(config.addr)
    if config.s3 is None:
        Path(config.root).mkdir(parents=True, exist_ok=True)
    os.environ["OCISTORE_CONFIG"] = config.to_json()
    if workers > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="ocistore-metrics-")
    if server == "uvicorn":
        import uvicorn

        uvicorn.run(
            FACTORY,
            factory=True,
            host=host,
            port=port,
            workers=workers,
            access_log=False,
            log_level="warning",
            timeout_graceful_shutdown=int(config.drain_timeout_seconds) or None,
            ssl_certfile=config.tls_certificate,
            ssl_keyfile=config.tls_key,
        )
        return
    from granian import Granian
    from granian.constants import Interfaces, SSLProtocols

    Granian(
        FACTORY,
        factory=True,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        workers=workers,
        log_access=False,
        workers_kill_timeout=int(config.drain_timeout_seconds) or None,
        ssl_cert=Path(config.tls_certificate) if config.tls_certificate else None,
        ssl_key=Path(config.tls_key) if config.tls_key else None,
        ssl_protocol_min=SSLProtocols(config.tls_minimum),
    ).serve()
