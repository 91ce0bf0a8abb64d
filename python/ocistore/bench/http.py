"""Measuring a registry over the OCI Distribution API with httpx, from the client's side: any
registry (ocistore, distribution, zot, ...) at any URL, with basic or bearer-token auth.

Pushes of a random blob monolithic (POST + PUT) and chunked (8 MiB PATCHes), a full GET, ranged
1 MiB GETs and HEADs (latency percentiles), and 4 KiB blob pushes from 8 threads. Every loop is
bounded in count and in time. The blobs pushed stay in the repository, referenced by no manifest:
the registry's garbage collection removes them.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
import random
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import httpx

from ..client_auth import parse_challenge, token_answer
from . import MIB, Advance, Row, format_table, measurement

#: No single request may take longer than this (a 1 GiB push on a slow link still fits).
REQUEST_TIMEOUT = 300.0
CHUNK = 8 * MIB
SMALL_BLOB = 4096
SMALL_PUSH_THREADS = 8
#: A token is fetched again this long before it expires (a measurement may outlive one).
TOKEN_MARGIN = 10.0


class BenchError(Exception):
    """A registry answered what a measurement did not expect; the message says what and where."""


class AuthenticationError(BenchError):
    """The registry wants credentials that were not given, or refused the ones given."""


class BearerAuth(httpx.Auth):
    """A token from ``realm`` for ``service`` and ``scope``, fetched with the basic
    credentials (or anonymously) as docker clients do, and fetched again before it expires.
    Shared by the threads of a measurement."""

    def __init__(
        self, realm: str, service: str | None, scope: str, credentials: httpx.BasicAuth | None
    ) -> None:
        self.realm, self.service, self.scope = realm, service, scope
        self.credentials = credentials
        self.token = ""
        self.refresh_at = 0.0  # time.monotonic() after which the token is fetched again
        self.lock = threading.Lock()

    def fetch(self) -> None:
        params = {"scope": self.scope, **({"service": self.service} if self.service else {})}
        start = time.monotonic()
        try:
            r = httpx.get(self.realm, params=params, auth=self.credentials, timeout=60)
        except httpx.HTTPError as e:
            raise AuthenticationError(f"token service {self.realm}: {e}") from None
        if r.status_code in (401, 403):
            who = "without credentials" if self.credentials is None else "with these credentials"
            raise AuthenticationError(
                f"token service {self.realm} refused a token for {self.scope} {who} "
                f"({r.status_code})"
            )
        if r.status_code != 200:
            raise AuthenticationError(f"token service {self.realm}: {r.status_code} {r.text[:200]}")
        token, lifetime = token_answer(r)
        if not token:
            raise AuthenticationError(f"token service {self.realm} answered no token")
        self.token = token
        self.refresh_at = start + lifetime - min(TOKEN_MARGIN, lifetime / 2)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        with self.lock:
            if time.monotonic() > self.refresh_at:
                self.fetch()
            token = self.token
        request.headers["Authorization"] = f"Bearer {token}"
        yield request


@dataclass
class Target:
    """A registry at ``url`` and how to authenticate to it."""

    url: str
    auth: httpx.Auth | None = None

    def client(self, timeout: float = REQUEST_TIMEOUT) -> httpx.Client:
        return httpx.Client(base_url=self.url, auth=self.auth, timeout=timeout)


def connect(
    url: str, repository: str, username: str | None = None, password: str | None = None
) -> Target:
    """A :class:`Target` that may push to and pull from ``repository``: asks ``/v2/`` which
    authentication the registry wants, then checks that the credentials get through."""
    url = url.rstrip("/").removesuffix("/v2")  # users paste the API root as often as the host
    if not url.startswith(("http://", "https://")):
        raise BenchError(f"{url}: the URL needs a scheme (http:// or https://)")
    credentials = None
    if username is not None:
        credentials = httpx.BasicAuth(username, password or "")
    try:
        r = httpx.get(url + "/v2/", timeout=60)
    except httpx.HTTPError as e:
        raise BenchError(f"{url}: {e}") from None
    target = Target(url)
    if r.status_code == 401:
        header = r.headers.get("WWW-Authenticate", "")
        scheme, params = parse_challenge(header)
        if scheme.lower() == "bearer" and "realm" in params:
            scope = f"repository:{repository}:pull,push"
            target.auth = BearerAuth(params["realm"], params.get("service"), scope, credentials)
        elif credentials is None:
            raise AuthenticationError(
                f"{url} asks for credentials ({header or 'no challenge'}): "
                "pass --username and --password"
            )
        else:
            target.auth = credentials
        try:
            r = httpx.get(url + "/v2/", auth=target.auth, timeout=60)
        except httpx.HTTPError as e:
            raise BenchError(f"{url}: {e}") from None
        if r.status_code == 401:
            given = (
                "the token issued for"
                if isinstance(target.auth, BearerAuth)
                else "the credentials of"
            )
            who = repr(username) if username is not None else "anonymous access"
            raise AuthenticationError(f"{url} refused {given} {who}")
    if r.status_code != 200:
        raise BenchError(f"{url}/v2/ answered {r.status_code}: is this a registry?")
    return target


def expect(r: httpx.Response, status: int) -> httpx.Response:
    """``r``, if its status is ``status``; else an error naming the request and the answer."""
    if r.status_code == status:
        return r
    where = f"{r.request.method} {r.request.url.path}"
    if r.status_code in (401, 403):
        raise AuthenticationError(
            f"{where}: {r.status_code}: these credentials may not push to and pull from this "
            "repository (pass --username and --password, or choose --repository)"
        )
    try:
        body = r.read()[:300].decode(errors="replace")
    except httpx.HTTPError:
        body = ""
    raise BenchError(f"{where}: expected {status}, got {r.status_code} {body}".rstrip())


@dataclass(frozen=True)
class RandomBlob:
    """``size`` random bytes made from one 16 MiB block of ``seed``, the first 8 bytes of each
    16 MiB varied so that no two blocks are equal (and nothing deduplicates). Generated as it is
    sent: no file, no memory beyond the one block."""

    size: int
    seed: int = 1
    block_size: int = 16 * MIB

    @cached_property
    def base(self) -> bytes:
        return random.Random(self.seed).randbytes(self.block_size)

    def chunks(
        self, offset: int = 0, length: int | None = None, chunk: int = MIB
    ) -> Iterator[bytes]:
        """The bytes ``[offset, offset + length)``, at most ``chunk`` at a time."""
        base = self.base
        end = self.size if length is None else min(self.size, offset + length)
        while offset < end:
            index, within = divmod(offset, self.block_size)
            n = min(chunk, end - offset, self.block_size - within)
            piece = base[within : within + n]
            if within < 8:
                # The block's first 8 bytes: how many bytes are left from its start.
                prefix = (self.size - index * self.block_size).to_bytes(8, "big")
                piece = prefix[within : within + n] + piece[max(0, 8 - within) :]
            yield piece
            offset += n

    def digest(self) -> str:
        h = hashlib.sha256()
        for piece in self.chunks(chunk=self.block_size):
            h.update(piece)
        return "sha256:" + h.hexdigest()

    def write(self, path: Path) -> str:
        """Writes the blob to ``path``; returns its digest."""
        h = hashlib.sha256()
        with path.open("wb") as f:
            for piece in self.chunks(chunk=self.block_size):
                f.write(piece)
                h.update(piece)
        return "sha256:" + h.hexdigest()


def counted(pieces: Iterator[bytes], advance: Advance | None) -> Iterator[bytes]:
    for piece in pieces:
        yield piece
        if advance is not None:
            advance(len(piece))


def absolute(client: httpx.Client, location: str) -> str:
    """A ``Location`` header as a URL (registries answer relative or absolute ones)."""
    return str(client.base_url.join(location))


def start_upload(client: httpx.Client, repository: str) -> str:
    r = expect(client.post(f"/v2/{repository}/blobs/uploads/"), 202)
    return absolute(client, r.headers["location"])


def with_digest(location: str, digest: str) -> str:
    return location + ("&" if "?" in location else "?") + f"digest={digest}"


def push_monolithic(
    target: Target, blob: RandomBlob, digest: str, repository: str, advance: Advance | None = None
) -> None:
    """POST, then one PUT with the whole blob."""
    with target.client() as client:
        location = start_upload(client, repository)
        r = client.put(
            with_digest(location, digest),
            content=counted(blob.chunks(), advance),
            headers={"Content-Length": str(blob.size), "Content-Type": "application/octet-stream"},
        )
        expect(r, 201)


def push_chunked(
    target: Target, blob: RandomBlob, digest: str, repository: str, chunk: int = CHUNK,
    advance: Advance | None = None,
) -> None:  # fmt: skip
    """POST, a PATCH of each ``chunk`` bytes, then a PUT with the digest and no body."""
    with target.client() as client:
        location = start_upload(client, repository)
        for offset in range(0, blob.size, chunk):
            n = min(chunk, blob.size - offset)
            r = client.patch(
                location,
                content=counted(blob.chunks(offset, n), advance),
                headers={
                    "Content-Range": f"{offset}-{offset + n - 1}",
                    "Content-Length": str(n),
                    "Content-Type": "application/octet-stream",
                },
            )
            location = absolute(client, expect(r, 202).headers["location"])
        expect(client.put(with_digest(location, digest)), 201)


def get_full(
    target: Target, repository: str, digest: str, size: int, advance: Advance | None = None
) -> None:
    """Streams the blob, following a redirect to storage as clients do."""
    got = 0
    with (
        target.client() as client,
        client.stream("GET", f"/v2/{repository}/blobs/{digest}", follow_redirects=True) as r,
    ):
        expect(r, 200)
        for piece in r.iter_raw(MIB):
            got += len(piece)
            if advance is not None:
                advance(len(piece))
    if got != size:
        raise BenchError(f"GET {repository}@{digest}: {got} bytes, the blob has {size}")


def latencies(
    fn: Callable[[int], None], count: int, time_limit: float, advance: Advance | None = None
) -> list[float]:
    """Seconds each of ``fn(0)``, ``fn(1)``, ... took: ``count`` calls, fewer if they pass
    ``time_limit`` seconds in all."""
    samples = []
    deadline = time.monotonic() + time_limit
    for i in range(count):
        start = time.perf_counter()
        fn(i)
        samples.append(time.perf_counter() - start)
        if advance is not None:
            advance(1)
        if time.monotonic() > deadline:
            break
    return samples


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ranged_gets(
    target: Target, repository: str, digest: str, size: int, count: int, time_limit: float,
    advance: Advance | None = None, seed: int = 3,
) -> list[float]:  # fmt: skip
    """Latencies of GETs of 1 MiB (less for a smaller blob) at random offsets, one connection."""
    rng = random.Random(seed)
    length = min(MIB, size)
    offsets = [rng.randrange(0, size - length + 1) for _ in range(count)]
    with target.client(timeout=60) as client:

        def ranged(i: int) -> None:
            o = offsets[i]
            r = client.get(f"/v2/{repository}/blobs/{digest}", follow_redirects=True,
                           headers={"Range": f"bytes={o}-{o + length - 1}"})  # fmt: skip
            if len(expect(r, 206).content) != length:
                raise BenchError(f"GET {digest} bytes={o}-: {len(r.content)} bytes, not {length}")

        return latencies(ranged, count, time_limit, advance)


def push_small_blob(client: httpx.Client, repository: str, data: bytes, digest: str) -> None:
    """POST, then a PUT with the bytes: the two requests of a monolithic push."""
    location = start_upload(client, repository)
    r = client.put(with_digest(location, digest), content=data,
                   headers={"Content-Type": "application/octet-stream"})  # fmt: skip
    expect(r, 201)


def heads(
    target: Target, repository: str, count: int, time_limit: float, advance: Advance | None = None
) -> list[float]:
    """Latencies of HEADs of a small blob pushed for them, one connection."""
    data = os.urandom(1000)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with target.client(timeout=60) as client:
        push_small_blob(client, repository, data, digest)

        def head(_: int) -> None:
            expect(client.head(f"/v2/{repository}/blobs/{digest}"), 200)

        return latencies(head, count, time_limit, advance)


@dataclass
class SmallPushes:
    pushed: int
    seconds: float
    latencies: list[float]

    @property
    def per_second(self) -> float:
        return self.pushed / self.seconds


def small_pushes(
    target: Target, repository: str, count: int, threads: int, time_limit: float,
    advance: Advance | None = None,
) -> SmallPushes:  # fmt: skip
    """``count`` pushes of random 4 KiB blobs from ``threads`` clients, each a connection of its
    own; the threads stop taking blobs once ``time_limit`` seconds have passed and at least
    one push is done."""
    blobs = [os.urandom(SMALL_BLOB) for _ in range(count)]
    digests = ["sha256:" + hashlib.sha256(b).hexdigest() for b in blobs]
    next_index = iter(range(count))
    lock = threading.Lock()
    samples: list[float] = []
    deadline = time.monotonic() + time_limit

    def worker() -> None:
        with target.client(timeout=60) as client:
            while True:
                with lock:
                    late = time.monotonic() > deadline and bool(samples)
                    i = None if late else next(next_index, None)
                if i is None:
                    return
                start = time.perf_counter()
                push_small_blob(client, repository, blobs[i], digests[i])
                elapsed = time.perf_counter() - start
                with lock:
                    samples.append(elapsed)
                    if advance is not None:
                        advance(1)

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        for f in [pool.submit(worker) for _ in range(threads)]:
            f.result(timeout=time_limit + REQUEST_TIMEOUT)
    return SmallPushes(len(samples), time.perf_counter() - start, samples)


def measure(
    target: Target, repository: str, size: int, count: int, time_limit: float
) -> dict[str, float]:
    """Every measurement, each with a progress bar (or line) on standard error. Keys: for the
    blob transfers ``<name>_s`` and ``<name>_mibps``; for the request series ``<name>_count``
    (requests made), ``<name>_s`` (their time in all), ``<name>_per_s``, ``<name>_p50_ms`` and
    ``<name>_p99_ms``, and ``range_mibps``."""
    blob = RandomBlob(size)
    with measurement("hashing the blob", 1, "blob") as advance:
        digest = blob.digest()
        advance(1)
    r: dict[str, float] = {"size_bytes": size}
    transfers: list[tuple[str, str, Callable[[Advance], None]]] = [
        ("push_monolithic", "push monolithic (POST + PUT)",
         lambda a: push_monolithic(target, blob, digest, repository, a)),
        ("push_chunked", "push chunked (8 MiB PATCHes)",
         lambda a: push_chunked(target, blob, digest, repository, advance=a)),
        ("get_full", "full GET", lambda a: get_full(target, repository, digest, size, a)),
    ]  # fmt: skip
    for key, label, fn in transfers:
        with measurement(label, size, "B") as advance:
            start = time.perf_counter()
            fn(advance)
            r[key + "_s"] = time.perf_counter() - start
        r[key + "_mibps"] = size / MIB / r[key + "_s"]

    with measurement("ranged 1 MiB GETs", count, "GET") as advance:
        samples = ranged_gets(target, repository, digest, size, count, time_limit, advance)
    r.update(series("range", samples, sum(samples)))
    r["range_mibps"] = min(MIB, size) / MIB * len(samples) / sum(samples)
    with measurement("HEADs", count, "HEAD") as advance:
        samples = heads(target, repository, count, time_limit, advance)
    r.update(series("head", samples, sum(samples)))
    with measurement(f"4 KiB pushes, {SMALL_PUSH_THREADS} threads", count, "push") as advance:
        pushes = small_pushes(target, repository, count, SMALL_PUSH_THREADS, time_limit, advance)
    r.update(series("small_push", pushes.latencies, pushes.seconds))
    return r


def series(name: str, samples: list[float], seconds: float) -> dict[str, float]:
    """The figures of ``samples`` (request latencies) that took ``seconds`` of wall time."""
    return {
        f"{name}_count": len(samples),
        f"{name}_s": seconds,
        f"{name}_per_s": len(samples) / seconds,
        f"{name}_p50_ms": percentile(samples, 0.5) * 1000,
        f"{name}_p99_ms": percentile(samples, 0.99) * 1000,
    }


def http_table(r: dict[str, float]) -> str:
    """One row per measurement: throughput, then latency."""
    size = f"{r['size_bytes'] / MIB:.0f} MiB"

    def row(label: str, name: str) -> Row:
        keys = ("_mibps", "_per_s", "_p50_ms", "_p99_ms", "_s")
        return label, [r.get(name + key) for key in keys]

    rows = [
        row(f"push {size} monolithic (POST + PUT)", "push_monolithic"),
        row(f"push {size} chunked (8 MiB PATCHes)", "push_chunked"),
        row(f"full GET {size}", "get_full"),
        row(f"{r['range_count']:.0f} ranged 1 MiB GETs", "range"),
        row(f"{r['head_count']:.0f} HEADs", "head"),
        row(
            f"{r['small_push_count']:.0f} 4 KiB pushes, {SMALL_PUSH_THREADS} threads", "small_push"
        ),
    ]
    return format_table(["MiB/s", "req/s", "p50 ms", "p99 ms", "total s"], rows)
