"""fake-gcs-server (``go install github.com/fsouza/fake-gcs-server@v1.56.1``, into ``.peers`` by
``make peers``) on 127.0.0.1 for the tests: objects in memory, buckets created through its JSON
API, and a service account key of the tests' own (a fresh RSA key). With a service account key
the stores fetch no token (they sign their own JWTs, which the emulator does not check) and sign
presigned URLs themselves, as they do against GCS."""

from __future__ import annotations

import http.client
import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .distribution import background_server, free_port

BINARY = Path(
    os.environ.get("OCISTORE_FAKE_GCS", Path(__file__).parent.parent / ".peers" / "fake-gcs-server")
)


def service_account_key(path: Path) -> Path:
    """Writes a service account key file, as Google issues them."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "ocistore-tests",
                "private_key_id": "tests",
                "private_key": pem,
                "client_email": "registry@ocistore-tests.iam.gserviceaccount.com",
            }
        )
    )
    return path


@dataclass
class FakeGcs:
    port: int
    keyfile: Path

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request(method, path, body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def bucket(self, name: str | None = None) -> str:
        """Creates a bucket and returns its name."""
        name = name or f"test-{secrets.token_hex(6)}"
        status, body = self._request("POST", "/storage/v1/b", json.dumps({"name": name}).encode())
        if status != 200:
            raise RuntimeError(f"create bucket {name}: {status} {body[:300]!r}")
        return name

    def object_names(self, bucket: str, prefix: str = "") -> list[str]:
        """Every object's name under ``prefix`` (the JSON API's listing)."""
        status, body = self._request("GET", f"/storage/v1/b/{bucket}/o?prefix={prefix}")
        if status != 200:
            raise RuntimeError(f"list {bucket}: {status} {body[:300]!r}")
        return sorted(item["name"] for item in json.loads(body).get("items", []))

    def storage_gcs(self, bucket: str, rootdirectory: str = "/") -> dict[str, Any]:
        """The ``storage.gcs`` section of a configuration for ``bucket`` on this server."""
        return {
            "bucket": bucket,
            "keyfile": str(self.keyfile),
            "rootdirectory": rootdirectory,
            "endpoint": self.endpoint,
        }


@contextmanager
def fake_gcs(workdir: Path) -> Iterator[FakeGcs]:
    """Runs fake-gcs-server (in memory) until the block ends."""
    if not BINARY.is_file():
        raise RuntimeError(f"fake-gcs-server is not installed at {BINARY}: run `make peers`")
    port = free_port()
    server = FakeGcs(port, service_account_key(workdir / "service-account.json"))
    command = [str(BINARY), "-scheme", "http", "-host", "127.0.0.1", "-port", str(port),
               "-backend", "memory", "-public-host", f"127.0.0.1:{port}",
               "-external-url", f"http://127.0.0.1:{port}", "-log-level", "warn"]  # fmt: skip
    log = workdir / f"fake-gcs-{port}.log"

    def listed() -> bool:
        return server._request("GET", "/storage/v1/b")[0] == 200

    with background_server("fake-gcs-server", command, log, listed):
        yield server
