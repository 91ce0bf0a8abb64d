"""Online garbage collection on object storage, across instances (``ocistore.storage.gc``,
``crate::objstore::gc``): pushes on one instance while another collects in a loop, one
collector at a time through the lease, and a collector killed mid-sweep."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import yaml
from ocistore import Registry
from ocistore._core import Layout
from ocistore.errors import ErrBlobUploadUnknown, ErrCollectorBusy
from ocistore.server.config import load_config
from ocistore.storage import OCI_MANIFEST, GarbageCollector, collect_garbage
from ocistore.storage.driver import ObjectStoreDriver

from .images import CONFIG, LAYER, descriptor, digest_of
from .object_stores import Backend, backend_config, s3_server

SHORT = timedelta(seconds=2)
#: How much longer than min-age an object must be left alone before the collector takes it: its
#: one-second slack, and the object store's timestamps, which have a resolution of one second.
PAST_SLACK = 2.2


def _driver(config: Path) -> ObjectStoreDriver:
    driver = load_config(config).storage_driver()
    assert isinstance(driver, ObjectStoreDriver)
    return driver


def _blob_keys(driver: ObjectStoreDriver) -> set[str]:
    return {
        f"sha256:{key.rsplit('/', 2)[-2]}"
        for key in driver.store.walk(f"{Layout.blobs()}/sha256/")
        if key.endswith("/data")
    }


def _manifest(config: bytes, layers: list[bytes]) -> bytes:
    body = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(CONFIG, config),
        "layers": [descriptor(LAYER, layer) for layer in layers],
    }
    return json.dumps(body, sort_keys=True).encode()


@dataclass
class Pusher:
    """A client pushing images as docker does: a blob the repository has is skipped, one
    another repository has is mounted, the rest uploaded; a manifest refused because the
    collector took a blob meanwhile (MANIFEST_BLOB_UNKNOWN) is pushed again after its blobs.
    Remembers what each tag was last acknowledged as."""

    client: httpx.Client
    tagged: dict[tuple[str, str], tuple[bytes, list[bytes]]] = field(default_factory=dict)
    retries: int = 0

    def blob(self, name: str, data: bytes, source: str) -> None:
        digest = digest_of(data)
        if self.client.head(f"/v2/{name}/blobs/{digest}").status_code == 200:
            return
        r = self.client.post(f"/v2/{name}/blobs/uploads/", params={"mount": digest, "from": source})
        if r.status_code == 201:
            return
        assert r.status_code == 202, r.text
        r = self.client.put(r.headers["location"], params={"digest": digest}, content=data)
        assert r.status_code == 201, r.text

    def image(self, name: str, tag: str, config: bytes, layers: list[bytes], source: str) -> None:
        manifest = _manifest(config, layers)
        for _attempt in range(5):
            for data in [config, *layers]:
                self.blob(name, data, source)
            r = self.client.put(
                f"/v2/{name}/manifests/{tag}",
                content=manifest,
                headers={"Content-Type": OCI_MANIFEST},
            )
            if r.status_code == 201:
                self.tagged[(name, tag)] = (manifest, [config, *layers])
                return
            assert r.status_code == 400, r.text
            assert r.json()["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN", r.text
            self.retries += 1
        raise AssertionError(f"{name}:{tag} refused five times")


def _pull_exact(client: httpx.Client, name: str, tag: str, manifest: bytes, blobs: list[bytes]):
    r = client.get(f"/v2/{name}/manifests/{tag}", headers={"Accept": OCI_MANIFEST})
    assert r.status_code == 200 and r.content == manifest, (name, tag, r.status_code)
    for data in blobs:
        got = client.get(f"/v2/{name}/blobs/{digest_of(data)}")
        assert got.status_code == 200 and got.content == data, (name, tag, digest_of(data))


def test_pushes_on_one_instance_while_another_collects(backend: Backend, tmp_path: Path) -> None:
    root = f"/online-gc-{uuid.uuid4().hex[:8]}"
    config = backend_config(tmp_path / "collector.yml", backend, root)
    rng = random.Random(61)
    pool = [rng.randbytes(30_000 + i) for i in range(8)]  # layers images share
    with (
        s3_server(tmp_path / "a", backend, root) as a,
        s3_server(tmp_path / "b", backend, root) as b,
        a.client() as client_a,
        b.client() as client_b,
    ):
        seed = Pusher(client_b)
        for layer in pool:
            seed.blob("pool/seed", layer, "pool/seed")  # stored, referenced by nothing yet
        orphans = set()
        for i in range(6):
            data = rng.randbytes(5_000 + i)
            seed.blob("pool/orphans", data, "pool/orphans")  # referenced by nothing, ever
            orphans.add(digest_of(data))
        assert orphans <= _blob_keys(_driver(config))
        time.sleep(SHORT.total_seconds() + PAST_SLACK)  # the pool and the orphans are now "old"

        pusher = Pusher(client_b)
        done = threading.Event()
        runs: list[int] = []
        failures: list[BaseException] = []

        def collect() -> None:
            registry = Registry(_driver(config))
            try:
                while not done.is_set():
                    result = collect_garbage(
                        registry, min_age=SHORT, delete_untagged=len(runs) % 2 == 1, wait=30
                    )
                    runs.append(len(result.deleted_blobs))
            except BaseException as e:  # reported by the test below
                failures.append(e)

        collector = threading.Thread(target=collect)
        collector.start()
        try:
            for i in range(24):
                layers = [*rng.sample(pool, 2), rng.randbytes(20_000 + i)]
                config_blob = f'{{"image": {i}}}'.encode()
                # Tags are reused: earlier images become untagged, which the collector's
                # delete-untagged rounds remove with their unique layers.
                pusher.image(f"app/{i % 3}", f"v{i % 4}", config_blob, layers, "pool/seed")
        finally:
            done.set()
            collector.join(timeout=120)
        assert not failures, failures
        assert len(runs) >= 2, runs  # the collector ran while the pushes went on

        # Every acknowledged tag pulls byte-exact, from either instance.
        for (name, tag), (manifest, blobs) in pusher.tagged.items():
            for client in (client_a, client_b):
                _pull_exact(client, name, tag, manifest, blobs)

        # Once everything is older than min-age, what no tag reaches is gone, and only that.
        time.sleep(SHORT.total_seconds() + PAST_SLACK)
        driver = _driver(config)
        collect_garbage(Registry(driver), min_age=SHORT, delete_untagged=True)
        referenced = {digest_of(m) for m, _ in pusher.tagged.values()}
        referenced |= {digest_of(d) for _, blobs in pusher.tagged.values() for d in blobs}
        assert _blob_keys(driver) == referenced
        assert not orphans & _blob_keys(driver)
        for (name, tag), (manifest, blobs) in pusher.tagged.items():
            _pull_exact(client_a, name, tag, manifest, blobs)
        # The collector left no claim and no lease behind.
        assert driver.store.walk(Layout.gc_claims()) == []
        assert driver.read(Layout.gc_lease()) is None


def test_one_collector_at_a_time(backend: Backend, tmp_path: Path) -> None:
    config = backend_config(tmp_path / "c.yml", backend, f"/lease-{uuid.uuid4().hex[:8]}")
    registry = Registry(_driver(config))
    holder = GarbageCollector(registry)
    holder.acquire()
    try:
        with pytest.raises(ErrCollectorBusy, match="another garbage collector is running"):
            collect_garbage(Registry(_driver(config)))
        cli = [sys.executable, "-m", "ocistore.cli", "gc", "--config", str(config)]
        busy = subprocess.run(cli, capture_output=True, text=True, timeout=120)
        assert busy.returncode == 3, busy.stderr
        assert "another garbage collector is running" in busy.stderr
        assert "ocistore gc on" in busy.stderr  # who holds it
        started = time.monotonic()
        waited = subprocess.run([*cli, "--wait", "2"], capture_output=True, text=True, timeout=120)
        assert waited.returncode == 3 and time.monotonic() - started >= 2
    finally:
        holder.release()
    free = subprocess.run(cli, capture_output=True, text=True, timeout=120)
    assert free.returncode == 0, free.stderr
    assert "blobs marked" in free.stdout


_DYING_COLLECTOR = """
import os, sys, time
from ocistore._core import Layout
from ocistore.server.config import load_config

driver = load_config(sys.argv[1]).storage_driver()
deadline = time.monotonic() + 60
while isinstance(lease := driver.gc_lease("a collector about to die", 3.0), str):
    assert time.monotonic() < deadline, lease
    time.sleep(0.5)
# Mid-sweep: deciding on a blob a push is about to reuse.
claim = driver.gc_claim(Layout.blob_data(sys.argv[2]))
print("claimed", flush=True)
os.kill(os.getpid(), 9)
"""


def test_a_collector_killed_mid_sweep(backend: Backend, tmp_path: Path) -> None:
    import os

    root = f"/killed-{uuid.uuid4().hex[:8]}"
    config = backend_config(tmp_path / "c.yml", backend, root)
    rng = random.Random(62)
    layers = [rng.randbytes(40_000) for _ in range(3)]
    with s3_server(tmp_path / "a", backend, root) as a, a.client() as client:
        pusher = Pusher(client)
        pusher.image("killed/app", "v1", b'{"a": 1}', layers, "killed/app")
        orphans = [rng.randbytes(3_000 + i) for i in range(40)]
        for data in orphans:
            pusher.blob("killed/orphans", data, "killed/orphans")
        time.sleep(1 + PAST_SLACK)  # older than --min-age 1s

        # A real collector killed while it deletes: nothing it leaves behind matters.
        cli = [sys.executable, "-m", "ocistore.cli", "gc", "--config", str(config),
               "--min-age", "1s"]  # fmt: skip
        proc = subprocess.Popen(
            [*cli, "--lease-ttl", "10s"],
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("deleting blob"):
                proc.send_signal(signal.SIGKILL)
                break
        proc.wait(timeout=60)
        assert proc.returncode == -signal.SIGKILL
        driver = _driver(config)
        assert driver.read(Layout.gc_lease()) is not None  # left behind: it lapses
        busy = subprocess.run(cli, capture_output=True, text=True, timeout=120)
        assert busy.returncode == 3, busy.stderr
        _pull_exact(client, "killed/app", "v1", *pusher.tagged[("killed/app", "v1")])

        # One killed while deciding on a blob a push then reuses: the push waits out the
        # claim, and the blob it found stays.
        reused = rng.randbytes(50_000)
        pusher.blob("killed/orphans", reused, "killed/orphans")
        dying = subprocess.run(
            [sys.executable, "-c", _DYING_COLLECTOR, str(config), digest_of(reused)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert dying.returncode == -signal.SIGKILL and "claimed" in dying.stdout, dying.stderr
        started = time.monotonic()
        pusher.image("killed/app", "v2", b'{"a": 2}', [reused], "killed/orphans")
        waited = time.monotonic() - started
        assert 9 < waited < 20, waited  # twice the claim's lifetime: its collector is gone
        assert pusher.retries == 0

        # Once the lease lapses a new collector takes over and finishes the killed one's work.
        time.sleep(1 + PAST_SLACK)
        done = subprocess.run([*cli, "--wait", "30"], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert not {digest_of(d) for d in orphans} & _blob_keys(driver)
        for tag in ("v1", "v2"):
            _pull_exact(client, "killed/app", tag, *pusher.tagged[("killed/app", tag)])
        assert driver.store.walk(Layout.gc_claims()) == []
        assert driver.read(Layout.gc_lease()) is None


def test_the_collector_purges_uploads_as_configured(backend: Backend, tmp_path: Path) -> None:
    root = f"/purge-{uuid.uuid4().hex[:8]}"
    purging = {"enabled": True, "age": "3s", "interval": "24h", "dryrun": False}
    storage = {**backend.section(root), "maintenance": {"uploadpurging": purging}}
    config = tmp_path / "c.yml"
    config.write_text(yaml.safe_dump({"version": "0.1", "storage": storage}))
    blobs = Registry(_driver(config)).repository("purge/app").blobs()
    stale = blobs.create()
    stale.write(b"abandoned")
    stale.close()
    time.sleep(4)
    fresh = blobs.create()
    fresh.write(b"in progress")
    fresh.close()
    cli = [sys.executable, "-m", "ocistore.cli", "gc", "--config", str(config)]
    done = subprocess.run(cli, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"purged upload {Layout.uploads('purge/app')}/{stale.id}" in done.stdout
    with pytest.raises(ErrBlobUploadUnknown):
        blobs.resume(stale.id)
    assert blobs.resume(fresh.id).size == len(b"in progress")
