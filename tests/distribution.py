"""Debian's docker-registry (distribution 2.8.2), the reference, run on 127.0.0.1 for
differential tests, and a plain HTTP client for the Distribution API."""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

BINARY = "docker-registry"
ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


class Client:
    """Just enough of the Distribution API, over http.client."""

    def __init__(self, port: int) -> None:
        self.port = port

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        finally:
            conn.close()

    @staticmethod
    def _path(location: str) -> str:
        parts = urlsplit(location)
        return parts.path + ("?" + parts.query if parts.query else "")

    def start_upload(self, name: str) -> str:
        r = self.request("POST", f"/v2/{name}/blobs/uploads/")
        assert r.status == 202, r
        return self._path(r.headers["location"])

    def patch(self, location: str, chunk: bytes) -> str:
        r = self.request("PATCH", location, chunk, {"Content-Type": "application/octet-stream"})
        assert r.status == 202, r
        return self._path(r.headers["location"])

    def push_blob(self, name: str, data: bytes, digest: str) -> None:
        location = self.start_upload(name)
        sep = "&" if "?" in location else "?"
        r = self.request(
            "PUT",
            f"{location}{sep}digest={digest}",
            data,
            {"Content-Type": "application/octet-stream"},
        )
        assert r.status == 201, r

    def put_manifest(self, name: str, reference: str, payload: bytes, media_type: str) -> str:
        r = self.request(
            "PUT", f"/v2/{name}/manifests/{reference}", payload, {"Content-Type": media_type}
        )
        assert r.status == 201, r
        return r.headers["docker-content-digest"]

    def get_manifest(self, name: str, reference: str) -> Response:
        return self.request("GET", f"/v2/{name}/manifests/{reference}", headers={"Accept": ACCEPT})

    def get_blob(self, name: str, digest: str) -> Response:
        return self.request("GET", f"/v2/{name}/blobs/{digest}")


def reference_config(
    port: int,
    root: Path | None,
    *,
    s3: Mapping[str, Any] | None = None,
    redirect: bool = True,
    access_log: bool = True,
    htpasswd: Path | None = None,
) -> str:
    """docker-registry's config.yml: filesystem storage in ``root``, or, given ``s3`` (a
    ``storage.s3`` section, e.g. ``SeaweedFS.storage_s3()``), S3 storage; ``redirect=False`` sets
    ``storage.redirect.disable`` (with S3, blob GETs otherwise answer 307 to a presigned URL)."""
    storage: dict[str, Any] = {
        "delete": {"enabled": True},
        "maintenance": {"uploadpurging": {"enabled": False}},
    }
    if s3 is not None:
        storage["s3"] = dict(s3)
    else:
        assert root is not None, "filesystem storage needs a root"
        storage["filesystem"] = {"rootdirectory": str(root)}
    if not redirect:
        storage["redirect"] = {"disable": True}
    config = {
        "version": "0.1",
        "log": {"level": "error", "accesslog": {"disabled": not access_log}},
        "storage": storage,
        "http": {"addr": f"127.0.0.1:{port}"},
    }
    if htpasswd is not None:
        config["auth"] = {"htpasswd": {"realm": "reference", "path": str(htpasswd)}}
    return yaml.safe_dump(config, sort_keys=False)


def reference_env() -> dict[str, str]:
    """docker-registry's environment: ours without AWS_CA_BUNDLE, since 2.8.2's S3 driver
    panics at start when it is set ("LoadCustomCABundleError ... unsupported transport")."""
    return {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}


@contextmanager
def reference_registry(
    root: Path,
    workdir: Path,
    *,
    s3: Mapping[str, Any] | None = None,
    redirect: bool = True,
    htpasswd: Path | None = None,
    port: int | None = None,
) -> Iterator[Client]:
    """Runs docker-registry until the block ends: with filesystem storage in ``root``, or, given
    ``s3``, with its S3 driver (``root`` is then unused); see ``reference_config``."""
    binary = shutil.which(BINARY)
    if binary is None:
        raise RuntimeError(
            "docker-registry is not installed: `apt-get install docker-registry` "
            "(.ci/run does this); the differential tests need the reference registry"
        )
    port = port or free_port()
    config = workdir / f"config-{port}.yml"
    config.write_text(reference_config(port, root, s3=s3, redirect=redirect, htpasswd=htpasswd))
    with _serving([binary, "serve", str(config)], port, workdir / f"registry-{port}.log") as client:
        yield client


@contextmanager
def background_server(
    what: str,
    command: list[str],
    log: Path,
    ready: Callable[[], bool],
    env: Mapping[str, str] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Runs a server the tests talk to (``command``, in a session of its own, its output in
    ``log``, the environment ``env`` or this one's) until the block ends, once ``ready()`` says
    it answers (an ``OSError`` counts as not yet); 30 s to get there."""
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                env=None if env is None else dict(env),
                                start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if ready():
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start: {log.read_text()}")
            time.sleep(0.05)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@contextmanager
def _serving(
    command: list[str], port: int, log_path: Path, env: Mapping[str, str] | None = None
) -> Iterator[Client]:
    """Runs a Go registry until the block ends, once it answers ``GET /v2/`` (200, or 401
    with auth)."""
    client = Client(port)

    def answers() -> bool:
        return client.request("GET", "/v2/").status in (200, 401)

    with background_server(command[0], command, log_path, answers, env or reference_env()):
        yield client


#: distribution 3.1.1, installed by `make peers` (`go install`, never committed).
DISTRIBUTION3 = Path(
    os.environ.get("OCISTORE_DISTRIBUTION3", Path(__file__).parent.parent / ".peers" / "registry")
)


@contextmanager
def distribution3(workdir: Path, config: Mapping[str, Any]) -> Iterator[Client]:
    """Runs distribution 3 with ``config`` (its storage, proxy, ...; ``http.addr`` is set
    here) until the block ends."""
    if not DISTRIBUTION3.is_file():
        raise RuntimeError(f"distribution 3 is not installed at {DISTRIBUTION3}: run `make peers`")
    port = free_port()
    path = workdir / f"distribution3-{port}.yml"
    full = {"version": "0.1", "log": {"level": "error", "accesslog": {"disabled": True}}, **config}
    full["http"] = {"addr": f"127.0.0.1:{port}"}
    path.write_text(yaml.safe_dump(full, sort_keys=False))
    log_path = workdir / f"distribution3-{port}.log"
    env = {**reference_env(), "OTEL_TRACES_EXPORTER": "none"}
    with _serving([str(DISTRIBUTION3), "serve", str(path)], port, log_path, env) as client:
        yield client


def zot_config(root: Path, port: int) -> dict[str, object]:
    """zot (a build from its source) as the benches run it beside ocistore: filesystem storage
    in ``root`` fsyncing what it commits (``storage.commit``, as ocistore and distribution do),
    without dedupe and GC, on 127.0.0.1:``port``."""
    return {
        "distSpecVersion": "1.1.1",
        "storage": {"rootDirectory": str(root), "dedupe": False, "gc": False, "commit": True},
        "http": {"address": "127.0.0.1", "port": str(port)},
        "log": {"level": "warn"},
    }
