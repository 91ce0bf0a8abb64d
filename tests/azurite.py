"""Azurite (the npm package ``azurite``, Microsoft's Azure Storage emulator) on 127.0.0.1 for the
tests: the blob service in memory, the emulator's well-known account, containers created with a
SharedKey-signed request. ``make peers`` installs it into ``.peers/npm``."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import http.client
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .distribution import background_server, free_port

#: The emulator's development account (published by Microsoft; not a secret).
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
BINARY = Path(
    os.environ.get(
        "OCISTORE_AZURITE",
        Path(__file__).parent.parent / ".peers" / "npm" / "node_modules" / ".bin" / "azurite-blob",
    )
)


@dataclass
class Azurite:
    port: int

    @property
    def service_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{ACCOUNT}"

    def container(self, name: str | None = None) -> str:
        """Creates a container (Create Container, SharedKey-signed) and returns its name."""
        name = name or f"test-{secrets.token_hex(6)}"
        date = datetime.datetime.now(datetime.UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")
        headers = {"x-ms-date": date, "x-ms-version": "2021-08-06", "Content-Length": "0"}
        signed = "".join(f"{k}:{v}\n" for k, v in sorted(headers.items()) if k.startswith("x-ms-"))
        # The emulator's path-style URLs put the account in the path: it is in the resource.
        resource = f"/{ACCOUNT}/{ACCOUNT}/{name}\nrestype:container"
        string = "PUT\n" + "\n" * 11 + signed + resource
        digest = hmac.new(base64.b64decode(KEY), string.encode(), hashlib.sha256).digest()
        headers["Authorization"] = f"SharedKey {ACCOUNT}:{base64.b64encode(digest).decode()}"
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request("PUT", f"/{ACCOUNT}/{name}?restype=container", headers=headers)
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
        if response.status != 201:
            raise RuntimeError(f"Create Container {name}: {response.status} {body[:300]!r}")
        return name

    def storage_azure(self, container: str, rootdirectory: str = "/") -> dict[str, Any]:
        """The ``storage.azure`` section of a configuration for ``container`` on this server."""
        return {
            "accountname": ACCOUNT,
            "accountkey": KEY,
            "container": container,
            "serviceurl": self.service_url,
            "rootdirectory": rootdirectory,
        }


@contextmanager
def azurite(workdir: Path) -> Iterator[Azurite]:
    """Runs azurite-blob (in memory) until the block ends."""
    if not BINARY.is_file():
        raise RuntimeError(f"azurite is not installed at {BINARY}: run `make peers`")
    port = free_port()
    server = Azurite(port)

    def ready() -> bool:
        try:
            server.container("ready")
        except RuntimeError:
            return False
        return True

    command = [str(BINARY), "--blobHost", "127.0.0.1", "--blobPort", str(port),
               "--inMemoryPersistence", "--skipApiVersionCheck"]  # fmt: skip
    with background_server("azurite", command, workdir / f"azurite-{port}.log", ready):
        yield server
