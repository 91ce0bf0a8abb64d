"""The pull-through cache against real upstreams on 127.0.0.1: Debian's ``docker-registry``
(distribution 2.8.2) behind htpasswd, and ``ocistore serve`` behind the test token service.
A relay between cache and upstream counts what the upstream serves and cuts it off on
demand."""

from __future__ import annotations

import concurrent.futures
import contextlib
import gzip
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import pytest
import yaml
from ocistore import Registry
from ocistore._core import Layout
from ocistore.server.auth import libtrust_key_id
from ocistore.server.config import ConfigError, load_config
from ocistore.storage import OCI_INDEX, OCI_MANIFEST

from .auth_material import ISSUER, SERVICE, ec_key, key_pem, rsa_key, token_server, write
from .auth_material import certificate as make_certificate
from .auth_material import pem as to_pem
from .distribution import distribution3, reference_registry
from .images import (
    CONFIG,
    LAYER,
    Image,
    descriptor,
    digest_of,
    make_image,
    make_index,
    push,
    tar_of,
)
from .relay import Relay, relay
from .servers import Server, ocistore_server
from .test_clients import blobs_of, skopeo

USER, PASSWORD = "puller", "s3cret"
BIG = 64 * 1024 * 1024


@dataclass
class Upstream:
    port: int
    root: Path
    app: Image
    big: bytes
    big_digest: str
    podman: Image


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    """distribution 2.8.2 with htpasswd, serving a tree ocistore wrote (the same layout)."""
    base = tmp_path_factory.mktemp("upstream")
    root = base / "root"
    registry = Registry(root)
    app = make_image(40, layers=3, layer_size=2_000_000)
    push(registry.repository("library/app"), app, "v1")
    other = make_image(41, layers=1)
    push(registry.repository("library/app"), other, "v2")
    push(registry.repository("library/twin"), app, "v1")  # every blob shared with library/app
    podman_image = unpackable_image()
    push(registry.repository("podman/hello"), podman_image, "v1")
    big = random.Random(42).randbytes(BIG)
    big_digest = str(registry.repository("library/big").blobs().put(OCI_MANIFEST, big).digest)
    htpasswd = base / "htpasswd"
    htpasswd.write_text(f"{USER}:{bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()}\n")
    with reference_registry(root, base, htpasswd=htpasswd) as client:
        yield Upstream(client.port, root, app, big, big_digest, podman_image)


def unpackable_image() -> Image:
    """An image podman can unpack: a real tar layer and its diff_id."""
    layer_tar = tar_of("hello.txt", b"hello through the cache\n")
    layer = gzip.compress(layer_tar, mtime=0)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [digest_of(layer_tar)]},
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(CONFIG, config),
            "layers": [descriptor(LAYER, layer)],
        }
    ).encode()
    blobs = {digest_of(config): config, digest_of(layer): layer}
    return Image(config=config, layers=[layer], manifest=manifest, blobs=blobs)


def proxy_config(path: Path, remoteurl: str, **extra: Any) -> Path:
    section = {"remoteurl": remoteurl, "username": USER, "password": PASSWORD, **extra}
    path.write_text(yaml.safe_dump({"proxy": section}))
    return path


@pytest.fixture
def cache(upstream: Upstream, tmp_path: Path) -> Iterator[tuple[Server, Relay]]:
    with relay(upstream.port) as pipe:
        config = proxy_config(tmp_path / "proxy.yml", f"http://127.0.0.1:{pipe.port}")
        with ocistore_server(tmp_path / "cache", extra=["--config", str(config)]) as server:
            yield server, pipe


def skopeo_pull(host: str, reference: str, out: Path) -> None:
    skopeo("copy", "--preserve-digests", "--src-tls-verify=false",
           f"docker://{host}/{reference}", f"oci:{out}:v1")  # fmt: skip


def layout_blobs(image: Image) -> dict[str, bytes]:
    """What an OCI layout of ``image`` holds under blobs/sha256, the manifest included."""
    expected = {d.removeprefix("sha256:"): b for d, b in image.blobs.items()}
    expected[image.digest.removeprefix("sha256:")] = image.manifest
    return expected


def blob_gets(pipe: Relay, digest: str) -> list[dict[str, str]]:
    """The GETs of the blob that carried credentials (the first request of a new proxy goes
    without, and is answered 401 with the upstream's challenge)."""
    return [
        h
        for m, p, h in pipe.requests()
        if m == "GET" and p.endswith(f"/blobs/{digest}") and "authorization" in h
    ]


def test_skopeo_pulls_through_and_from_the_cache_once_the_upstream_is_gone(
    upstream: Upstream, cache: tuple[Server, Relay], tmp_path: Path
) -> None:
    server, pipe = cache
    host = server.url.removeprefix("http://")
    first = tmp_path / "first"
    skopeo_pull(host, "library/app:v1", first)
    expected = layout_blobs(upstream.app)
    assert blobs_of(first) == expected  # byte for byte, manifest included
    # Each blob came from the upstream once, with the configured credentials.
    for digest in upstream.app.blobs:
        gets = blob_gets(pipe, digest)
        assert len(gets) == 1
    # Asked without credentials until the upstream's challenge, then with Basic.
    sent = [h.get("authorization", "") for _, _, h in pipe.requests()]
    assert sent[0] == "" and sent[-1].startswith("Basic ")
    assert all(a.startswith("Basic ") for a in sent if a)
    pipe.stop()
    # The upstream is gone: the tag and everything it names still pull from the cache.
    second = tmp_path / "second"
    skopeo_pull(host, "library/app:v1", second)
    assert blobs_of(second) == expected
    by_digest = tmp_path / "digest"
    skopeo_pull(host, f"library/app@{upstream.app.digest}", by_digest)
    assert blobs_of(by_digest) == expected
    with server.client() as http:
        # Not cached and no upstream: a clear error, not a hang.
        r = http.get("/v2/library/app/manifests/v2")
        assert r.status_code == 502 and r.json()["errors"][0]["code"] == "UNKNOWN"


@pytest.mark.parametrize(
    ("workers", "front"), [(1, True), (2, False)], ids=["front", "two-workers-no-front"]
)
def test_eight_clients_get_one_cold_blob_the_upstream_serves_once(
    upstream: Upstream, tmp_path: Path, workers: int, front: bool
) -> None:
    # Without the front, granian spreads the clients over both workers: the one fetch is
    # shared across processes.
    with relay(upstream.port) as pipe:
        config = proxy_config(tmp_path / "proxy.yml", f"http://127.0.0.1:{pipe.port}")
        extra = ["--config", str(config), *([] if front else ["--no-native-front"])]
        with ocistore_server(tmp_path / "cache", extra=extra, workers=workers) as server:
            eight_clients(upstream, server, pipe)


def eight_clients(upstream: Upstream, server: Server, pipe: Relay) -> None:
    path = f"/v2/library/big/blobs/{upstream.big_digest}"

    def get(i: int) -> bytes:
        with server.client() as http:
            if i % 4 == 3:  # some ask for a range of it
                r = http.get(path, headers={"Range": "bytes=1000-2000999"})
                assert r.status_code == 206
                return r.content
            r = http.get(path)
            assert r.status_code == 200
            assert r.headers["docker-content-digest"] == upstream.big_digest
            return r.content

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        got = list(pool.map(get, range(8)))
    for i, body in enumerate(got):
        assert body == (upstream.big[1000:2001000] if i % 4 == 3 else upstream.big)
    assert len(blob_gets(pipe, upstream.big_digest)) == 1
    assert BIG <= pipe.bytes_down < BIG * 1.01
    # Cached now: the native front serves it, the upstream is not asked.
    with server.client() as http:
        assert http.get(path).content == upstream.big
    assert len(blob_gets(pipe, upstream.big_digest)) == 1


def test_a_fetch_cut_off_resumes_with_a_range(
    upstream: Upstream, cache: tuple[Server, Relay]
) -> None:
    server, pipe = cache
    pipe.cut_after = 20 * 1024 * 1024
    with server.client() as http:
        r = http.get(f"/v2/library/big/blobs/{upstream.big_digest}")
    assert r.status_code == 200 and r.content == upstream.big
    gets = blob_gets(pipe, upstream.big_digest)
    assert pipe.cuts == 1 and len(gets) == 2
    assert "range" not in gets[0]
    start = int(gets[1]["range"].removeprefix("bytes=").rstrip("-"))
    assert 0 < start <= 20 * 1024 * 1024  # from what arrived, not from zero
    # The upstream sent the blob about once, not once and a fifth.
    assert pipe.bytes_down < BIG * 1.05


def test_a_fetch_whose_proxy_died_is_resumed_by_the_next_one(
    upstream: Upstream, tmp_path: Path
) -> None:
    held = 24 * 1024 * 1024
    path = f"/v2/library/big/blobs/{upstream.big_digest}"
    with relay(upstream.port) as pipe:
        config = proxy_config(tmp_path / "proxy.yml", f"http://127.0.0.1:{pipe.port}")
        extra = ["--config", str(config)]
        pipe.hold_after = held
        with ocistore_server(tmp_path / "cache", extra=extra) as server:
            client = threading.Thread(target=lambda: _get_quietly(server, path), daemon=True)
            client.start()
            assert pipe.holding.wait(30)
            # What arrived is written into the fetch's upload.
            uploads = tmp_path / "cache" / Layout.uploads("library/big")
            deadline = time.monotonic() + 30
            while not any(p.stat().st_size > 0 for p in uploads.glob("*/data")):
                assert time.monotonic() < deadline, "nothing of the fetch was written"
                time.sleep(0.05)
            time.sleep(0.2)
            os.killpg(server.proc.pid, signal.SIGKILL)  # the proxy dies mid-fetch
            server.proc.wait()
        pipe.release()
        with (
            ocistore_server(tmp_path / "cache", extra=extra) as server,
            server.client() as http,
        ):
            r = http.get(path)
            assert r.status_code == 200 and r.content == upstream.big
    gets = blob_gets(pipe, upstream.big_digest)
    assert len(gets) == 2 and "range" not in gets[0]
    start = int(gets[1]["range"].removeprefix("bytes=").rstrip("-"))
    assert 0 < start <= held  # resumed from what the dead proxy had written


def _get_quietly(server: Server, path: str) -> None:
    with contextlib.suppress(httpx.HTTPError), server.client() as http:
        http.get(path)


def test_a_blob_that_does_not_match_its_digest_is_never_served(
    upstream: Upstream, tmp_path: Path
) -> None:
    # A corrupted upstream: the tree's bytes no longer match their name.
    root = tmp_path / "bad"
    registry = Registry(root)
    data = random.Random(5).randbytes(3_000_000)
    digest = str(registry.repository("bad/repo").blobs().put(OCI_MANIFEST, data).digest)
    Path(registry.blobs().path(digest)).write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with reference_registry(root, tmp_path) as bad:
        config = proxy_config(tmp_path / "proxy.yml", f"http://127.0.0.1:{bad.port}")
        with (
            ocistore_server(tmp_path / "cache", extra=["--config", str(config)]) as server,
            server.client() as http,
        ):
            for _ in range(3):  # every try fetches again, and fails again
                try:
                    r = http.get(f"/v2/bad/repo/blobs/{digest}")
                except httpx.HTTPError:
                    continue  # cut before the last byte: the body cannot pass for valid
                # Or, when the fetch had failed before the answer began, an error.
                assert r.status_code == 502, r.status_code
                assert r.json()["errors"][0]["code"] == "UNKNOWN"
            assert not Path(Registry(tmp_path / "cache").blobs().path(digest)).exists()


def test_head_of_an_uncached_blob_asks_the_upstream_without_fetching(
    upstream: Upstream, cache: tuple[Server, Relay]
) -> None:
    server, pipe = cache
    with server.client() as http:
        r = http.head(f"/v2/library/big/blobs/{upstream.big_digest}")
        assert r.status_code == 200 and r.headers["content-length"] == str(BIG)
        missing = digest_of(b"nowhere")
        r = http.head(f"/v2/library/big/blobs/{missing}")
        assert r.status_code == 404
        r = http.get(f"/v2/library/big/blobs/{missing}")
        assert r.status_code == 404 and r.json()["errors"][0]["code"] == "BLOB_UNKNOWN"
    assert blob_gets(pipe, upstream.big_digest) == []
    assert pipe.bytes_down < 100_000


def test_the_cache_is_read_only_and_ns_chooses_among_configured_upstreams_only(
    upstream: Upstream, tmp_path: Path
) -> None:
    # Two upstreams: the default (no ns) and one by namespace; each keeps its own repositories.
    second_root = tmp_path / "second"
    other = make_image(77, layers=1)
    push(Registry(second_root).repository("library/app"), other, "v1")
    with reference_registry(second_root, tmp_path) as second:
        config = tmp_path / "proxy.yml"
        section = {
            "remoteurl": f"http://127.0.0.1:{upstream.port}",
            "namespace": "first.example",  # what containerd sends for the default upstream
            "username": USER,
            "password": PASSWORD,
            "upstreams": [
                {"namespace": "second.example", "remoteurl": f"http://127.0.0.1:{second.port}"}
            ],
        }
        config.write_text(yaml.safe_dump({"proxy": section}))
        with (
            ocistore_server(tmp_path / "cache", extra=["--config", str(config)]) as server,
            server.client() as http,
        ):
            accept = {"Accept": OCI_MANIFEST}
            r = http.get("/v2/library/app/manifests/v1", headers=accept)
            assert r.status_code == 200 and r.content == upstream.app.manifest
            assert "oci-namespace" not in r.headers
            r = http.get(
                "/v2/library/app/manifests/v1", params={"ns": "first.example"}, headers=accept
            )
            assert r.status_code == 200 and r.content == upstream.app.manifest
            assert r.headers["oci-namespace"] == "first.example"
            r = http.get(
                "/v2/library/app/manifests/v1", params={"ns": "second.example"}, headers=accept
            )
            assert r.status_code == 200 and r.content == other.manifest
            assert r.headers["oci-namespace"] == "second.example"
            layer = digest_of(other.layers[0])
            r = http.get(f"/v2/library/app/blobs/{layer}", params={"ns": "second.example"})
            assert r.status_code == 200 and r.content == other.layers[0]
            assert r.headers["oci-namespace"] == "second.example"
            # Cached under the namespace: the default upstream's repository does not have it.
            r = http.get(f"/v2/library/app/blobs/{layer}")
            assert r.status_code == 404
            # An ns naming no configured upstream is refused, never fetched from that host.
            r = http.get("/v2/library/app/manifests/v1", params={"ns": f"127.0.0.1:{second.port}"})
            assert r.status_code == 404 and r.json()["errors"][0]["code"] == "NAME_UNKNOWN"
            # Read-only to clients.
            r = http.post("/v2/library/app/blobs/uploads/")
            assert r.status_code == 405 and r.json()["errors"][0]["code"] == "UNSUPPORTED"
            r = http.put("/v2/library/app/manifests/v9", content=other.manifest,
                         headers={"Content-Type": OCI_MANIFEST})  # fmt: skip
            assert r.status_code == 405
            r = http.delete(f"/v2/library/app/manifests/{upstream.app.digest}")
            assert r.status_code == 405


def test_a_chained_cache_pulls_through_a_cache_that_has_nothing_yet(
    upstream: Upstream, cache: tuple[Server, Relay], tmp_path: Path
) -> None:
    # client -> outer cache -> inner cache -> upstream. The outer asks the inner's HEAD for blobs
    # the inner has not fetched yet: the inner answers from the upstream's HEAD.
    inner, pipe = cache
    config = tmp_path / "outer.yml"
    config.write_text(yaml.safe_dump({"proxy": {"remoteurl": inner.url}}))
    with ocistore_server(tmp_path / "outer", extra=["--config", str(config)]) as outer:
        host = outer.url.removeprefix("http://")
        with outer.client() as http:
            for digest, data in upstream.app.blobs.items():
                r = http.head(f"/v2/library/app/blobs/{digest}")
                assert r.status_code == 200 and r.headers["content-length"] == str(len(data))
        out = tmp_path / "out"
        skopeo_pull(host, "library/app:v1", out)
    expected = layout_blobs(upstream.app)
    assert blobs_of(out) == expected
    for digest in upstream.app.blobs:
        assert len(blob_gets(pipe, digest)) == 1  # through both caches, fetched once


def test_ocistore_in_front_of_distribution_3s_proxy(upstream: Upstream, tmp_path: Path) -> None:
    # client -> ocistore cache -> distribution 3.1.1's pull-through cache -> upstream.
    middle_config = {
        "storage": {"filesystem": {"rootdirectory": str(tmp_path / "middle")}},
        "proxy": {
            "remoteurl": f"http://127.0.0.1:{upstream.port}",
            "username": USER,
            "password": PASSWORD,
        },
    }
    with distribution3(tmp_path, middle_config) as middle:
        config = tmp_path / "outer.yml"
        config.write_text(
            yaml.safe_dump({"proxy": {"remoteurl": f"http://127.0.0.1:{middle.port}"}})
        )
        with ocistore_server(tmp_path / "outer", extra=["--config", str(config)]) as outer:
            host = outer.url.removeprefix("http://")
            out = tmp_path / "out"
            skopeo_pull(host, "library/app:v1", out)
            with outer.client() as http:
                r = http.get(f"/v2/library/big/blobs/{upstream.big_digest}")
                assert r.status_code == 200 and r.content == upstream.big
    expected = layout_blobs(upstream.app)
    assert blobs_of(out) == expected


def test_expiry_keeps_a_blob_another_cached_repository_still_uses(
    upstream: Upstream, tmp_path: Path
) -> None:
    def pull(http: httpx.Client, name: str) -> None:
        r = http.get(f"/v2/{name}/manifests/v1", headers={"Accept": OCI_MANIFEST})
        assert r.status_code == 200 and r.content == upstream.app.manifest
        for digest, data in upstream.app.blobs.items():
            assert http.get(f"/v2/{name}/blobs/{digest}").content == data

    cache = Registry(tmp_path / "cache")
    with relay(upstream.port) as pipe:
        remote = f"http://127.0.0.1:{pipe.port}"
        config = proxy_config(tmp_path / "proxy.yml", remote, ttl="2s")
        with (
            ocistore_server(tmp_path / "cache", extra=["--config", str(config)]) as server,
            server.client() as http,
        ):
            pull(http, "library/app")
            pull(http, "library/twin")
            # library/twin is used, library/app is not: its manifest expires (the server's
            # expiry runs every second for a ttl of 2 s).
            deadline = time.monotonic() + 30
            while cache.repository("library/app").manifests().exists(upstream.app.digest):
                assert time.monotonic() < deadline, "library/app never expired"
                pull(http, "library/twin")
                time.sleep(0.3)
            assert cache.repository("library/twin").manifests().exists(upstream.app.digest)
        pipe.stop()
        # The collector, told to keep nothing for its age (and with a ttl nothing reaches, so
        # that the steps below do not race the clock): the shared blobs stay, since
        # library/twin's manifest refers to them.
        kept = proxy_config(tmp_path / "kept.yml", remote, ttl="1h")
        done = subprocess.run(
            [sys.executable, "-m", "ocistore.cli", "gc", "--min-age", "0s",
             "--config", str(kept), str(tmp_path / "cache")],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        for digest in upstream.app.blobs:
            assert Path(cache.blobs().path(digest)).exists()
        with (
            ocistore_server(tmp_path / "cache", extra=["--config", str(kept)]) as server,
            server.client() as http,
        ):
            pull(http, "library/twin")  # the upstream is gone: all from the cache
            # library/app's manifest is gone and the upstream with it: an error, no content.
            r = http.get("/v2/library/app/manifests/v1", headers={"Accept": OCI_MANIFEST})
            assert r.status_code == 502


def test_podman_pulls_through_a_mirror_entry(
    upstream: Upstream, cache: tuple[Server, Relay], tmp_path: Path
) -> None:
    # podman's registries.conf sends the pull to the mirror first; the source host does not
    # exist, so only the cache can answer.
    server, pipe = cache
    conf = tmp_path / "registries.conf"
    conf.write_text(
        'unqualified-search-registries = []\n\n[[registry]]\nprefix = "source.invalid"\n'
        'location = "source.invalid"\n\n[[registry.mirror]]\n'
        f'location = "{server.url.removeprefix("http://")}"\ninsecure = true\n'
    )
    runroot = Path(tempfile.mkdtemp(prefix="ocp-"))  # podman wants a runroot under 50 characters
    storage = [
        "--root", str(tmp_path / "storage"), "--runroot", str(runroot),
        "--storage-driver", "vfs",
    ]  # fmt: skip
    env = {**os.environ, "CONTAINERS_REGISTRIES_CONF": str(conf)}
    ref = "source.invalid/podman/hello:v1"
    try:
        pulled = subprocess.run(
            ["podman", *storage, "pull", ref], capture_output=True, text=True, timeout=300, env=env
        )
        assert pulled.returncode == 0, pulled.stderr
        inspect = subprocess.run(
            ["podman", *storage, "image", "inspect", ref, "--format", "{{.Digest}}"],
            capture_output=True, text=True, timeout=60, env=env,
        )  # fmt: skip
        assert inspect.stdout.strip() == upstream.podman.digest
    finally:
        subprocess.run(["podman", *storage, "rmi", "-a", "-f"], capture_output=True, timeout=60)
        shutil.rmtree(runroot, ignore_errors=True)
    for digest in upstream.podman.blobs:
        assert len(blob_gets(pipe, digest)) == 1


def test_a_tag_is_asked_upstream_at_most_once_per_tagcheck(
    upstream: Upstream, tmp_path: Path
) -> None:
    first, second = make_image(60, layers=1), make_image(61, layers=1)
    up = Registry(upstream.root).repository("library/moving")
    push(up, first, "latest")
    accept = {"Accept": OCI_MANIFEST}
    with relay(upstream.port) as pipe:
        for check, expected_heads in (("1h", 1), ("0s", 3)):
            config = proxy_config(
                tmp_path / f"proxy-{check}.yml", f"http://127.0.0.1:{pipe.port}", tagcheck=check
            )
            extra = ["--config", str(config)]
            with (
                ocistore_server(tmp_path / f"cache-{check}", extra=extra) as server,
                server.client() as http,
            ):
                before = len(pipe.requests())
                for _ in range(3):
                    r = http.get("/v2/library/moving/manifests/latest", headers=accept)
                    assert r.status_code == 200 and r.content == first.manifest
                sent = pipe.requests()[before:]
                heads = [m for m, _, h in sent if m == "HEAD" and "authorization" in h]
                assert len(heads) == expected_heads, check
                if check == "0s":
                    # The tag moves upstream: the next pull sees it.
                    push(up, second, "latest")
                    r = http.get("/v2/library/moving/manifests/latest", headers=accept)
                    assert r.content == second.manifest
                    metrics = http.get("/metrics").text
                    assert 'kind="manifest",result="hit"' in metrics
                    assert 'kind="manifest",result="miss"' in metrics


def test_credentials_from_a_credential_helper(upstream: Upstream, tmp_path: Path) -> None:
    # distribution 3's proxy.exec: the docker credential helper protocol.
    helper = tmp_path / "docker-credential-test"
    asked = tmp_path / "asked"
    helper.write_text(
        "#!/bin/sh\n"
        f'[ "$1" = get ] || exit 1\ncat > {asked}\n'
        f'echo \'{{"ServerURL": "x", "Username": "{USER}", "Secret": "{PASSWORD}"}}\'\n'
    )
    helper.chmod(0o755)
    config = tmp_path / "proxy.yml"
    section = {"remoteurl": f"http://127.0.0.1:{upstream.port}", "exec": {"command": str(helper)}}
    config.write_text(yaml.safe_dump({"proxy": section}))
    with (
        ocistore_server(tmp_path / "cache", extra=["--config", str(config)]) as server,
        server.client() as http,
    ):
        r = http.get("/v2/library/app/manifests/v1", headers={"Accept": OCI_MANIFEST})
        assert r.status_code == 200 and r.content == upstream.app.manifest
    assert asked.read_text() == f"127.0.0.1:{upstream.port}"  # the helper was asked for the host


def test_tls_to_the_upstream_is_verified(upstream: Upstream, tmp_path: Path) -> None:
    # An upstream on HTTPS with a certificate from a private CA: refused unless tls.cafile names
    # that CA (or tls.insecure says not to check).
    ca_key = rsa_key()
    ca = make_certificate(ca_key, "proxy test CA", ca=True)
    server_key = ec_key()
    server_cert = make_certificate(server_key, "127.0.0.1", issuer=(ca_key, ca), ip="127.0.0.1")
    ca_file = write(tmp_path / "ca.pem", to_pem(ca))
    tls = write(
        tmp_path / "up.yml",
        "http:\n  tls:\n"
        f"    certificate: {write(tmp_path / 'up.crt', to_pem(server_cert))}\n"
        f"    key: {write(tmp_path / 'up.key', key_pem(server_key))}\n",
    )
    image = make_image(95, layers=1)
    push(Registry(tmp_path / "up").repository("secure/app"), image, "v1")
    accept = {"Accept": OCI_MANIFEST}
    with ocistore_server(tmp_path / "up", extra=["--config", str(tls)], tls_ca=ca_file) as up:
        for name, tls_section, works in (
            ("plain", None, False),
            ("cafile", {"cafile": str(ca_file)}, True),
            ("insecure", {"insecure": True}, True),
        ):
            section: dict[str, Any] = {"remoteurl": up.url}
            if tls_section is not None:
                section["tls"] = tls_section
            config = tmp_path / f"proxy-{name}.yml"
            config.write_text(yaml.safe_dump({"proxy": section}))
            with (
                ocistore_server(
                    tmp_path / f"cache-{name}", extra=["--config", str(config)]
                ) as cache,
                cache.client() as http,
            ):
                r = http.get("/v2/secure/app/manifests/v1", headers=accept)
                layer = digest_of(image.layers[0])
                if works:
                    assert r.status_code == 200 and r.content == image.manifest, name
                    assert http.get(f"/v2/secure/app/blobs/{layer}").content == image.layers[0]
                else:
                    assert r.status_code == 502, (name, r.status_code)
                    assert http.get(f"/v2/secure/app/blobs/{layer}").status_code == 502


def test_referrers_pass_through_and_are_kept(tmp_path: Path) -> None:
    image = make_image(80, layers=1)
    signature = make_image(81, layers=1, subject=image.manifest, artifact_type="application/x-sig")
    sbom = make_image(82, layers=1, subject=image.manifest, artifact_type="application/x-sbom")
    repo = Registry(tmp_path / "up").repository("team/signed")
    push(repo, image, "v1")
    push(repo, signature)
    push(repo, sbom)
    with (
        ocistore_server(tmp_path / "up") as up,
        relay(up.port) as pipe,
    ):
        config = proxy_config(tmp_path / "proxy.yml", f"http://127.0.0.1:{pipe.port}")
        with (
            ocistore_server(tmp_path / "cache", extra=["--config", str(config)]) as server,
            server.client() as http,
        ):
            path = f"/v2/team/signed/referrers/{image.digest}"

            def listed(params: dict[str, str] | None = None) -> set[str]:
                r = http.get(path, params=params)
                assert r.status_code == 200 and r.headers["content-type"] == OCI_INDEX
                if params:
                    assert r.headers["oci-filters-applied"] == "artifactType"
                return {m["digest"] for m in r.json()["manifests"]}

            both = {signature.digest, sbom.digest}
            assert listed() == both
            pipe.stop()  # the upstream is gone: the copy kept answers, filters too
            assert listed() == both
            assert listed({"artifactType": "application/x-sig"}) == {signature.digest}


def test_tags_and_an_index_pass_through(upstream: Upstream, cache: tuple[Server, Relay]) -> None:
    server, _ = cache
    with server.client() as http:
        r = http.get("/v2/library/app/tags/list")
        assert r.status_code == 200 and r.json() == {"name": "library/app", "tags": ["v1", "v2"]}


def test_upstream_behind_the_token_service(tmp_path: Path) -> None:
    # An ocistore upstream with bearer tokens, as Docker Hub and ghcr.io answer.
    key = rsa_key()
    cert = make_certificate(key, "token-signer", ca=True)
    bundle = write(tmp_path / "bundle.pem", to_pem(cert))
    image = make_image(90, layers=2)
    index = make_index([(image, "amd64")])
    registry = Registry(tmp_path / "up")
    push(registry.repository("team/app"), image)
    from ocistore import unmarshal_manifest

    manifest, _ = unmarshal_manifest(OCI_INDEX, index)
    registry.repository("team/app").manifests().put(manifest, tag="multi")
    with token_server(key, libtrust_key_id(key.public_key()), {USER: PASSWORD}) as issuer:
        up_config = write(
            tmp_path / "up.yml",
            f"auth:\n  token:\n    realm: {issuer.url}\n    service: {SERVICE}\n"
            f"    issuer: {ISSUER}\n    rootcertbundle: {bundle}\n",
        )
        with ocistore_server(tmp_path / "up", extra=["--config", str(up_config)]) as up:
            config = proxy_config(tmp_path / "proxy.yml", up.url)
            with (
                ocistore_server(tmp_path / "cache", extra=["--config", str(config)]) as server,
                server.client() as http,
            ):
                r = http.get("/v2/team/app/manifests/multi", headers={"Accept": OCI_INDEX})
                assert r.status_code == 200 and r.content == index
                # The index's child, fetched when asked for.
                r = http.get(
                    f"/v2/team/app/manifests/{image.digest}", headers={"Accept": OCI_MANIFEST}
                )
                assert r.status_code == 200 and r.content == image.manifest
                for digest, data in image.blobs.items():
                    assert http.get(f"/v2/team/app/blobs/{digest}").content == data
            # One token per scope, fetched with the proxy's credentials.
            scopes = [q.get("scope") for q in issuer.requests]
            assert ["repository:team/app:pull"] in scopes
            assert len(issuer.requests) <= 2


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"remoteurl": "ftp://x"}, "proxy.remoteurl: expected an http or https URL"),
        ({"remoteurl": "http://x", "username": "a"}, "username and password go together"),
        ({"remoteurl": "http://x", "ttl": "soon"}, "proxy.ttl"),
        ({"remoteurl": "http://x", "bogus": 1}, "unknown configuration key 'proxy.bogus'"),
        ({"upstreams": [{"remoteurl": "http://x"}]}, "proxy.upstreams[0].namespace"),
        (
            {"upstreams": [{"namespace": "a.io", "remoteurl": "http://x"}] * 2},
            "a.io is listed twice",
        ),
        ({}, "give remoteurl or upstreams"),
    ],
)
def test_proxy_configuration_errors(tmp_path: Path, section: dict[str, Any], message: str) -> None:
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump({"proxy": section}))
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_config(path)


def test_proxy_configuration_defaults(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump({"proxy": {"remoteurl": "https://registry-1.docker.io"}}))
    (upstream,) = load_config(path).proxy
    assert upstream["ttl_seconds"] == 168 * 3600 and upstream["namespace"] is None
    assert json.loads(json.dumps(upstream)) == upstream  # goes to the workers as JSON
