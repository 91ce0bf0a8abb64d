"""The object stores the cross-instance tests run servers on (SeaweedFS for S3, Azurite for
Azure): a server configuration's ``storage`` section for a root directory, and a server on it.
The ``backend`` fixture (``conftest.py``) gives one of each."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .seaweedfs import SeaweedFS
from .servers import Server, ocistore_server


@dataclass
class Backend:
    """An object store the tests run servers on: its ``storage`` section for a root, and the
    URL its presigned links start with."""

    name: str
    section: Callable[[str], dict[str, Any]]
    endpoint: str


def backend_config(path: Path, backend: Backend, root: str, *, redirect: bool = False) -> Path:
    storage: dict[str, Any] = {
        **backend.section(root),
        "delete": {"enabled": True},
        "redirect": {"disable": not redirect},
    }
    path.write_text(yaml.safe_dump({"version": "0.1", "storage": storage}))
    return path


def s3_backend(weed: SeaweedFS, bucket: str) -> Backend:
    return Backend("s3", lambda root: {"s3": weed.storage_s3(bucket, root)}, weed.endpoint)


@contextlib.contextmanager
def s3_server(
    tmp: Path,
    backend: Backend,
    root: str = "/ocistore",
    *,
    extra: tuple[str, ...] = (),
    **options: Any,
) -> Iterator[Server]:
    tmp.mkdir(parents=True, exist_ok=True)
    config = backend_config(tmp / "config.yml", backend, root, **options)
    # --root only names where the server's log goes: the configuration stores in the bucket.
    with ocistore_server(tmp / "unused", extra=["--config", str(config), *extra]) as server:
        yield server
