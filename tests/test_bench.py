"""`ocistore bench ingest` and `ocistore bench http`, run as a user runs them: against this disk,
and against `ocistore serve` without auth, with htpasswd and with a token service."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
from ocistore.bench import MIB
from ocistore.bench.http import RandomBlob, parse_challenge
from ocistore.server.auth import libtrust_key_id

from .auth_material import (
    ISSUER,
    SERVICE,
    TokenServer,
    certificate,
    pem,
    rsa_key,
    token_server,
    write,
)
from .servers import Server, ocistore_server
from .test_cli import ocistore

HTTP_ROWS = [
    "push 4 MiB monolithic",
    "push 4 MiB chunked",
    "full GET 4 MiB",
    "ranged 1 MiB GETs",
    "HEADs",
    "4 KiB pushes, 8 threads",
]
SMALL = ["--size-mib", "4", "--count", "12"]


def run_bench(*args: str) -> tuple[int, str, str]:
    done = ocistore("bench", *args)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


def test_bench_ingest_table_and_json(tmp_path: Path) -> None:
    work, out = tmp_path / "work", tmp_path / "ingest.json"
    code, stdout, stderr = run_bench(
        "ingest", "--size-mib", "8", "--repeat", "1", "--dir", str(work), "--json", str(out)
    )
    assert code == 0, stderr
    assert "(a) ocistore ingest" in stdout and "(b) naive Python ingest" in stdout
    results = json.loads(out.read_text())
    measured = ["a_ocistore_ingest", "b_naive_ingest", "c_hashlib_only"]
    if shutil.which("dd"):
        measured.append("dd_fsync")
    for name in measured:
        assert results[name + "_s"] > 0 and results[name + "_mibps"] > 0, name
    assert results["size_bytes"] == 8 * MIB and results["repeat"] == 1
    assert list(work.iterdir()) == []  # the source and the stores are gone
    assert "Traceback" not in stderr


def check_http_run(server: Server, tmp_path: Path, *credentials: str) -> None:
    out = tmp_path / "http.json"
    code, stdout, stderr = run_bench("http", server.url, *SMALL, "--json", str(out), *credentials)
    assert code == 0, stderr
    for row in HTTP_ROWS:
        assert row in stdout, stdout
    # One line per measurement on stderr (not a terminal here), then the table on stdout.
    assert stderr.count(": done, ") == 7, stderr
    results = json.loads(out.read_text())
    assert results["url"] == server.url and results["repository"] == "ocistore-bench"
    figures = {k: v for k, v in results.items() if k not in ("url", "repository")}
    assert len(figures) == 23
    assert all(value > 0 for value in figures.values()), figures
    assert results["range_count"] == results["head_count"] == results["small_push_count"] == 12


def test_bench_http_against_ocistore(tmp_path: Path) -> None:
    with ocistore_server(tmp_path / "root") as server:
        check_http_run(server, tmp_path)
        # The blob pushed is the one the bench says it pushed.
        blob = RandomBlob(4 * MIB)
        with server.client() as client:
            r = client.get(f"/v2/ocistore-bench/blobs/{blob.digest()}")
        assert r.status_code == 200 and r.content == b"".join(blob.chunks())
        # Every series stops at the time limit, after one request at least.
        out = tmp_path / "bounded.json"
        code, _, stderr = run_bench(
            "http",
            server.url + "/v2/",
            "--size-mib",
            "1",
            "--count",
            "100000",
            "--time-limit",
            "0.2",
            "--json",
            str(out),
        )
        assert code == 0, stderr
        results = json.loads(out.read_text())
        for series in ("range", "head", "small_push"):
            assert 1 <= results[f"{series}_count"] < 100000 and results[f"{series}_s"] < 5


def test_bench_http_errors_are_clear(tmp_path: Path) -> None:
    code, _, stderr = run_bench("http", "127.0.0.1:5000")
    assert code == 1 and "needs a scheme" in stderr
    with ocistore_server(tmp_path / "root") as server:
        url = server.url
    code, _, stderr = run_bench("http", url, *SMALL)  # nothing listens there any more
    assert code == 1 and stderr.startswith(f"ocistore: bench http: {url}: ")
    code, _, stderr = run_bench("http", url, "--username", "alice")
    assert code == 2 and "go together" in stderr
    assert "Traceback" not in stderr


@pytest.fixture(scope="module")
def htpasswd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("bench-htpasswd")
    users = write(
        base / "htpasswd", f"alice:{bcrypt.hashpw(b's3cret', bcrypt.gensalt(4)).decode()}\n"
    )
    config = write(
        base / "config.yml", f"auth:\n  htpasswd:\n    realm: bench-realm\n    path: {users}\n"
    )
    with ocistore_server(base / "root", extra=["--config", str(config)]) as server:
        yield server


def test_bench_http_with_basic_auth(htpasswd_server: Server, tmp_path: Path) -> None:
    check_http_run(htpasswd_server, tmp_path, "--username", "alice", "--password", "s3cret")


def test_bench_http_without_credentials_fails_clearly(htpasswd_server: Server) -> None:
    code, stdout, stderr = run_bench("http", htpasswd_server.url, *SMALL)
    assert code == 1 and stdout == ""
    assert stderr.strip() == (
        f'ocistore: bench http: {htpasswd_server.url} asks for credentials (Basic realm="bench-realm"): '
        "pass --username and --password"
    )
    code, _, stderr = run_bench(
        "http", htpasswd_server.url, *SMALL, "--username", "alice", "--password", "nope"
    )
    assert code == 1 and "refused the credentials of 'alice'" in stderr
    assert "Traceback" not in stderr


@pytest.fixture(scope="module")
def token_setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, TokenServer]]:
    base = tmp_path_factory.mktemp("bench-token")
    key = rsa_key()
    bundle = write(base / "bundle.pem", pem(certificate(key, "bench-token-signer", ca=True)))
    with token_server(key, libtrust_key_id(key.public_key()), {"alice": "wonderland"}) as issuer:
        config = write(
            base / "config.yml",
            f"auth:\n  token:\n    realm: {issuer.url}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {bundle}\n",
        )
        with ocistore_server(base / "root", extra=["--config", str(config)]) as server:
            yield server, issuer


def test_bench_http_with_a_token_service(
    token_setup: tuple[Server, TokenServer], tmp_path: Path
) -> None:
    server, issuer = token_setup
    check_http_run(server, tmp_path, "--username", "alice", "--password", "wonderland")
    # As docker clients do: the service the challenge named, a scope for the repository.
    assert {
        "service": [SERVICE],
        "scope": ["repository:ocistore-bench:pull,push"],
    } in issuer.requests


def test_bench_http_token_service_refusals(token_setup: tuple[Server, TokenServer]) -> None:
    server, issuer = token_setup
    code, _, stderr = run_bench(
        "http", server.url, *SMALL, "--username", "alice", "--password", "nope"
    )
    assert code == 1
    assert (
        f"token service {issuer.url} refused a token for repository:ocistore-bench:pull,push with these credentials (401)"
        in stderr
    )
    # Anonymous: the token service grants nothing, so the first push is refused.
    code, _, stderr = run_bench("http", server.url, *SMALL)
    assert code == 1 and "may not push to and pull from this repository" in stderr
    assert "Traceback" not in stderr


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('Basic realm="r"', ("Basic", {"realm": "r"})),
        (
            'Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"',
            (
                "Bearer",
                {
                    "realm": "https://auth.example/token",
                    "service": "registry.example",
                    "scope": "repository:a/b:pull,push",
                },
            ),
        ),
        (
            'Bearer realm="r", Service=s, scope="x:y:pull"',
            ("Bearer", {"realm": "r", "service": "s", "scope": "x:y:pull"}),
        ),
        ("Bearer", ("Bearer", {})),
    ],
)
def test_parse_challenge(header: str, expected: tuple[str, dict[str, str]]) -> None:
    assert parse_challenge(header) == expected


@pytest.mark.parametrize("size", [1, 7, 8, 9, 16 * MIB - 3, 16 * MIB + 5, 40 * MIB + 1])
def test_random_blob_ranges_agree_with_the_whole(size: int) -> None:
    blob = RandomBlob(size, block_size=16 * MIB)
    whole = b"".join(blob.chunks(chunk=16 * MIB))
    assert len(whole) == size and blob.digest() == RandomBlob(size).digest()
    for offset, length in [(0, size), (3, 9), (size // 2, 5 * MIB), (max(0, size - 10), 20)]:
        assert (
            b"".join(blob.chunks(offset, length, chunk=3 * MIB)) == whole[offset : offset + length]
        )


def test_bench_compare_two_registries(tmp_path: Path) -> None:
    # Two real registries side by side (ocistore behind its front and the bare application),
    # each with its server's pid: every round kept, medians, CPU per image operation, the ratio.
    with (
        ocistore_server(tmp_path / "a") as front,
        ocistore_server(tmp_path / "b", extra=["--no-native-front"]) as app,
    ):
        out, plot = tmp_path / "compare.json", tmp_path / "compare.png"
        code, stdout, stderr = run_bench(
            "compare", f"front={front.url},pid={front.proc.pid}", f"app={app.url}/v2/",
            "--rounds", "2", "--kinds", "push,push-chunked,pull,mixed", "--sizes-mib", "1",
            "--concurrency", "4", "--ops", "8", "--herd-size-mib", "2", "--herd-clients", "4",
            "--json", str(out), "--plot", str(plot),
        )  # fmt: skip
        assert code == 0, stderr
        document = json.loads(out.read_text())
        assert [len(document["rounds"][name]) for name in ("front", "app")] == [2, 2]
        front_figures, app_figures = document["medians"]["front"], document["medians"]["app"]
        for kind in ("push", "push-chunked", "pull", "mixed"):
            assert front_figures[f"{kind} 1 MiB x4: ops"] == 8
            assert front_figures[f"{kind} 1 MiB x4: ops_per_s"] > 0
            assert front_figures[f"{kind} 1 MiB x4: cpu_ms_per_op"] >= 0
            assert f"{kind} 1 MiB x4: cpu_ms_per_op" not in app_figures  # no pid given
        # /proc counts CPU in clock ticks (10 ms): eight pulls the front answers can cost less
        # than one, eight pushes (hashing 8 MiB, fsyncing) never do.
        assert front_figures["push 1 MiB x4: cpu_ms_per_op"] > 0
        assert front_figures["pull 1 MiB x4: ttfb_p50_ms"] > 0
        assert front_figures["herd 2 MiB x4: ops"] == 4
        assert "front/best" in stdout and "pull 1 MiB x4: p99_ms" in stdout
        assert plot.stat().st_size > 0
        # What the pushes acknowledged is there.
        with front.client() as client:
            r = client.get(
                "/v2/ocistore-bench-load/manifests/push-7",
                headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
            )
            assert r.status_code == 200


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nourl", "NAME=URL"),
        ("x=http://127.0.0.1:9,port=3", "only ,pid=PID"),
        ("x=http://127.0.0.1:9,pid=999999999", "no process 999999999"),
        ("x=http://127.0.0.1:9", "127.0.0.1:9"),  # nothing listens there
    ],
)
def test_bench_compare_errors_are_clear(spec: str, message: str) -> None:
    code, _, stderr = run_bench("compare", spec, "--rounds", "1", "--herd-clients", "0")
    assert code == 1 and message in stderr, stderr
