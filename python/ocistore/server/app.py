"""The OCI Distribution API v1.1 as a plain ASGI application over ``ocistore.Registry``.

Request bodies stream into the blob writer through ``ocistore.aio`` (two blocks of
``aio.STREAM_BLOCK`` bytes, the only memory an upload holds); storage calls run on worker
threads, except metadata lookups and writes of at most ``aio.INLINE_WRITE_MAX`` bytes on a local
filesystem, which take microseconds (less than a thread hop); blob GETs are read by the Rust
reader one block ahead of the socket, or redirected to object storage; upload
state lives in storage (disk or bucket), so any worker, instance or restarted server continues
a session.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from .. import _core, hashing
from .._core import Digest, Layout
from ..aio import INLINE_WRITE_MAX, READ_BLOCK, AsyncBlobStore, AsyncBlobWriter
from ..descriptor import Descriptor
from ..errors import (
    ErrBlobMounted,
    ErrBlobUploadInUse,
    ErrManifestUnknown,
    ErrRepositoryUnknown,
    ErrTagInvalid,
    ErrUnsupported,
)
from ..storage import Registry, Repository, parse_reference, purge_uploads, unmarshal_manifest
from ..storage.driver import FilesystemDriver, ObjectStoreDriver
from ..storage.manifests import OCI_INDEX
from ..storage.registry import LinkedBlobStore
from ..store import BlobWriter
from .auth import Access, required_access
from .auth import access_controller as make_access_controller
from .config import Config
from .http import (
    ApiError,
    ClientDisconnected,
    Receive,
    Request,
    Response,
    Scope,
    Send,
    accepts,
    error_response,
    is_decimal,
    link_header,
    parse_content_range,
    parse_range,
)
from .metrics import Metrics

__all__ = ["MANIFEST_LIMIT", "RegistryApp"]

#: Largest manifest accepted (the OCI spec's suggested minimum is 4 MiB).
MANIFEST_LIMIT = 4 * 1024 * 1024
#: Reads of a blob GET larger than one ``READ_BLOCK`` (see ``RegistryApp._send``).
GET_BLOCK = 2 * 1024 * 1024
#: How long a presigned blob URL stays valid (distribution's S3 driver: 20 minutes).
REDIRECT_SECONDS = 20 * 60

API_VERSION = ("Docker-Distribution-API-Version", "registry/2.0")
#: Where the native front reports the requests it answered itself, and the headers it adds to
#: the requests it passes on (see ``ocistore.server.serve``; src/front in the core).
FRONT_OBSERVATIONS = "/_ocistore/front/observations"
FRONT_SECRET_HEADER = "x-ocistore-front"
FRONT_CLIENT_HEADER = "x-ocistore-client"
FRONT_BODY_BYTES_HEADER = "x-ocistore-body-bytes"
#: Where the front asks whether a request's credentials may pull from (or push to) a repository.
FRONT_AUTHORIZE = "/_ocistore/front/authorize"
#: The longest the front may reuse such an answer: a credential revoked (a user removed from
#: htpasswd) still reads and writes blobs through the front for up to this long.
FRONT_GRANT_SECONDS = 10.0
#: The front keeps at most 100,000 records (about 15 MB of JSON) while the application is away.
FRONT_BATCH_LIMIT = 64 * 1024 * 1024
log = logging.getLogger("ocistore.server")
access_log = logging.getLogger("ocistore.access")

Handler = Callable[..., Awaitable[Response]]
_A = TypeVar("_A")
_R = TypeVar("_R")


@dataclass(frozen=True)
class Route:
    name: str
    pattern: re.Pattern[str]
    methods: dict[str, str]  # HTTP method -> handler attribute


NAME = r"(?P<name>[^?#]+?)"
ROUTES = [
    Route("base", re.compile(r"/v2/?"), {"GET": "base", "HEAD": "base"}),
    Route("catalog", re.compile(r"/v2/_catalog"), {"GET": "catalog"}),
    Route("tags", re.compile(rf"/v2/{NAME}/tags/list"), {"GET": "tags_list"}),
    Route(
        "manifest",
        re.compile(rf"/v2/{NAME}/manifests/(?P<reference>[^/]+)"),
        {
            "GET": "get_manifest",
            "HEAD": "get_manifest",
            "PUT": "put_manifest",
            "DELETE": "delete_manifest",
        },
    ),
    Route("upload_start", re.compile(rf"/v2/{NAME}/blobs/uploads/?"), {"POST": "start_upload"}),
    Route(
        "upload",
        re.compile(rf"/v2/{NAME}/blobs/uploads/(?P<upload_id>[^/]+)"),
        {
            "GET": "upload_status",
            "PATCH": "patch_upload",
            "PUT": "finish_upload",
            "DELETE": "cancel_upload",
        },
    ),
    Route(
        "blob",
        re.compile(rf"/v2/{NAME}/blobs/(?P<digest>[^/]+)"),
        {"GET": "get_blob", "HEAD": "get_blob", "DELETE": "delete_blob"},
    ),
    Route(
        "referrers",
        re.compile(rf"/v2/{NAME}/referrers/(?P<digest>[^/]+)"),
        {"GET": "referrers"},
    ),
    Route("metrics", re.compile(r"/metrics"), {"GET": "serve_metrics"}),
]


def _range_value(size: int) -> str:
    return f"0-{max(size - 1, 0)}"


def _page_size(request: Request) -> int | None:
    raw = request.query.get("n")
    try:
        return _core.page_size(raw)
    except ValueError:
        raise ApiError(400, "PAGINATION_NUMBER_INVALID", f"invalid page size n={raw!r}") from None


def _digest_param(value: str | None, what: str = "digest") -> Digest:
    if not value:
        raise ApiError(400, "DIGEST_INVALID", f"the {what} parameter is required")
    return Digest(value)


def _push_whole(blobs: LinkedBlobStore, data: bytes, digest: Digest) -> Descriptor:
    """A whole blob through an upload, so it is verified against ``digest`` before it is
    published; nothing stays behind when it is not."""
    writer = blobs.create()
    try:
        writer.write(data)
        return writer.commit(digest)
    except BaseException:
        with contextlib.suppress(Exception):
            writer.cancel()
        raise


class RegistryApp:
    """The ASGI application."""

    def __init__(self, config: Config) -> None:
        self.config = config
        driver = config.storage_driver()
        self.registry = Registry(driver, delete_enabled=config.delete_enabled)
        # Whole blobs go out as files (zero-copy) from a filesystem; from object storage, by a
        # redirect to a presigned URL unless storage.redirect.disable, else streamed.
        self.local_files = isinstance(driver, FilesystemDriver)
        self.redirect_url: Callable[[Digest], str] | None = None
        if isinstance(driver, ObjectStoreDriver) and config.redirect:
            store = driver.store
            self.redirect_url = lambda d: store.signed_url(Layout.blob_data(d), REDIRECT_SECONDS)
        self.metrics = Metrics(self.registry)
        self.access_controller = make_access_controller(config.auth)
        self._extra_headers = [
            (name, value) for name, values in config.headers.items() for value in values
        ]
        self._background: asyncio.Task[None] | None = None

    # -- ASGI -------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        request = Request(scope, receive, self.config.body_idle_timeout_seconds or None)
        if (
            self.config.front_secret is not None
            and self._from_front(request, self.config.front_secret)
            and request.path.startswith("/_ocistore/front/")
        ):
            if request.path == FRONT_OBSERVATIONS and request.method == "POST":
                await self._front_observations(request, send)
                return
            if request.path == FRONT_AUTHORIZE and request.method == "GET":
                await self._front_authorize(request, scope, send)
                return
        route_name, handler, params = self._route(request)
        try:
            if self.access_controller is not None and route_name != "unknown":
                needed = required_access(route_name, request.method, params)
                request.identity = await self.access_controller.authorize(request, needed)
            response = await handler(request, **params)
        except ClientDisconnected:
            self._finish(request, route_name, 499, 0, started)
            return
        except Exception as error:  # every error becomes a spec error body
            response = error_response(error)
            if response.status >= 500:
                log.exception("internal error on %s %s", request.method, request.path)
            await request.drain()
        sent = await self._send(scope, send, request, response)
        self._finish(request, route_name, response.status, sent, started)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.config.purge_enabled:
                    self._background = asyncio.create_task(self._purge_loop())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._background is not None:
                    self._background.cancel()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _purge_loop(self) -> None:
        age = timedelta(seconds=self.config.purge_age_seconds)
        while True:
            try:
                removed = await asyncio.to_thread(
                    purge_uploads, self.registry, older_than=age, dry_run=self.config.purge_dry_run
                )
                for path in removed:
                    log.info("purged upload %s", path)
            except Exception:
                log.exception("upload purge failed")
            await asyncio.sleep(self.config.purge_interval_seconds)

    def _route(self, request: Request) -> tuple[str, Handler, dict[str, str]]:
        # Match the path as sent, then decode each parameter: an encoded "/" stays inside the
        # parameter it was sent in (and is then refused by that parameter's grammar).
        raw = request.scope.get("raw_path")
        path = raw.decode("latin-1").split("?", 1)[0] if raw else request.path
        for route in ROUTES:
            match = route.pattern.fullmatch(path)
            if match is None:
                continue
            attribute = route.methods.get(request.method)
            if attribute is None:
                return route.name, self._method_not_allowed, {}
            params = {key: _core.percent_decode(value) for key, value in match.groupdict().items()}
            return route.name, getattr(self, attribute), params
        return "unknown", self._not_found, {}

    async def _send(self, scope: Scope, send: Send, request: Request, response: Response) -> int:
        headers = [API_VERSION, *self._extra_headers, *response.headers.items()]
        head = request.method == "HEAD"
        if response.file is None:
            if "Content-Length" not in response.headers:
                headers.append(("Content-Length", str(len(response.body))))
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status,
                    "headers": [(k.encode(), v.encode()) for k, v in headers],
                }
            )
            body = b"" if head else response.body
            await send({"type": "http.response.body", "body": body})
            return len(body)
        digest, offset, length = response.file
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": [(k.encode(), v.encode()) for k, v in headers],
            }
        )
        if head or length == 0:
            await send({"type": "http.response.body", "body": b""})
            return 0
        if length <= READ_BLOCK:
            # A range of one block (the common ranged GET): opened and read in one thread hop.
            body = await asyncio.to_thread(self._read_range, digest, offset, length)
            await send({"type": "http.response.body", "body": body})
            return len(body)
        # Read by the Rust reader, one block ahead of the socket. Faster than granian's
        # pathsend, which reads 128 KiB at a time through tokio's blocking pool: a 1 GiB GET
        # to curl 1.0 GB/s with pathsend, 1.7-2.0 GB/s so (2 MiB blocks; 1, 4 and 8 MiB and
        # two reads ahead were slower on this 2-core VM).
        reader = await AsyncBlobStore(self.registry.blobs()).open(digest)
        sent = 0
        async with (
            reader,
            contextlib.aclosing(reader.iter_range(offset, length, block=GET_BLOCK)) as chunks,
        ):
            async for chunk in chunks:
                sent += len(chunk)
                await send(
                    {"type": "http.response.body", "body": chunk, "more_body": sent < length}
                )
        if sent < length:
            # Cannot happen for an immutable blob; end the body rather than hang the client.
            await send({"type": "http.response.body", "body": b""})
        return sent

    def _read_range(self, digest: Digest, offset: int, length: int) -> bytes:
        with self.registry.blobs().open(digest) as reader:
            return reader.read_at(offset, length)

    def _finish(self, request: Request, route: str, status: int, sent: int, started: float) -> None:
        self._record(
            route,
            request.method,
            request.path,
            status,
            time.perf_counter() - started,
            request.bytes_in,
            sent,
            (request.scope.get("client") or ["", 0])[0],
            request.identity.subject if request.identity else None,
        )

    def _record(
        self,
        route: str,
        method: str,
        path: str,
        status: int,
        elapsed: float,
        bytes_in: int,
        bytes_out: int,
        remote: str,
        user: str | None,
    ) -> None:
        """One request into the metrics and the access log."""
        self.metrics.observe(route, method, status, elapsed, bytes_in, bytes_out)
        if self.config.access_log:
            access_log.info(
                "%s %s %d",
                method,
                path,
                status,
                extra={
                    "fields": {
                        "method": method,
                        "path": path,
                        "route": route,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 3),
                        "bytes_in": bytes_in,
                        "bytes_out": bytes_out,
                        "remote": remote,
                        "user": user,
                    }
                },
            )

    def _from_front(self, request: Request, front_secret: str) -> bool:
        """Whether ``request`` came through the native front (it carries the front's secret);
        if so, the client's address is the one the front saw, not the unix socket's."""
        secret = request.header(FRONT_SECRET_HEADER)
        if secret is None or not hmac.compare_digest(secret, front_secret):
            return False
        client = request.header(FRONT_CLIENT_HEADER)
        if client:
            host, _, port = client.rpartition(":")
            request.scope["client"] = (host.strip("[]"), int(port) if port.isdigit() else 0)
        body_bytes = request.header(FRONT_BODY_BYTES_HEADER)
        if body_bytes and is_decimal(body_bytes):
            request.bytes_in = int(body_bytes)  # a PUT whose body the front wrote
        return True

    async def _front_authorize(self, request: Request, scope: Scope, send: Send) -> None:
        """Whether the request's credentials may pull from repository ``name`` (or also push
        to it, with ``push=1``): 204 with the subject and how long the front may reuse the
        answer, or the access controller's refusal."""
        name = request.query.get("name", "")
        route, method = ("upload", "PATCH") if request.query.get("push") == "1" else ("blob", "GET")
        needed = required_access(route, method, {"name": name})
        try:
            if self.access_controller is None:
                identity = None
            else:
                identity = await self.access_controller.authorize(request, needed)
        except ApiError as refused:
            await self._send(scope, send, request, error_response(refused))
            return
        seconds = FRONT_GRANT_SECONDS
        if identity is not None and identity.expires_at is not None:
            seconds = max(0.0, min(seconds, identity.expires_at - time.time()))
        headers = [(b"x-ocistore-grant-seconds", f"{seconds:.3f}".encode())]
        if identity is not None:
            headers.append((b"x-ocistore-user", identity.subject.encode()))
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    async def _front_observations(self, request: Request, send: Send) -> None:
        """The requests the front answered itself, as ``[route, method, status, seconds,
        bytes_in, bytes_out, path, remote, port, user]`` records."""
        try:
            records = json.loads(await request.body(FRONT_BATCH_LIMIT))
            for record in records:
                route, method, status, seconds, bytes_in, bytes_out, path, remote, _, user = record
                self._record(
                    str(route), str(method), str(path), int(status), float(seconds),
                    int(bytes_in), int(bytes_out), str(remote), None if user is None else str(user),
                )  # fmt: skip
            status = 204
        except (ValueError, TypeError, ApiError):
            log.exception("unreadable observations from the native front")
            status = 400
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    # -- helpers ------------------------------------------------------------------------------

    def _repository(self, name: str) -> Repository:
        return self.registry.repository(name)

    def _check_writable(self) -> None:
        if self.config.readonly:
            raise ErrUnsupported("the registry is in read-only mode")

    async def _claim(self, blobs: LinkedBlobStore, name: str, upload_id: str) -> BlobWriter:
        """The upload, held for this request (the core's claim: one request at a time per
        upload, across workers and processes; on object storage the upload's state object is
        written conditionally instead, so a second writer fails at its checkpoint)."""
        try:
            return await asyncio.to_thread(blobs.claim, upload_id)
        except ErrBlobUploadInUse as busy:
            size = busy.detail["size"]
            headers = {"Range": _range_value(size), "Docker-Upload-UUID": upload_id}
            raise ApiError(busy.status, busy.code, busy.message, headers=headers) from None

    async def _lookup(self, fn: Callable[[_A], _R], arg: _A) -> _R:
        """A metadata lookup (a link read and a stat): inline on a local filesystem, where it
        takes microseconds and a thread hop would cost more than the work; on a worker thread
        when it means a network round trip."""
        if self.local_files:
            return fn(arg)
        return await asyncio.to_thread(fn, arg)

    def _may_mount_from(self, request: Request, source: str | None) -> bool:
        identity = request.identity
        if identity is None or identity.grants is None:
            return True  # no auth, or an identity that may do anything
        # Mounting "from anywhere" would link blobs of repositories the caller cannot read.
        return source is not None and identity.allows(Access("repository", source, "pull"))

    async def _not_found(self, request: Request) -> Response:
        # Only spec codes in bodies: a path that names no endpoint names no repository either.
        raise ApiError(404, "NAME_UNKNOWN", f"no such endpoint: {request.path}")

    async def _method_not_allowed(self, request: Request) -> Response:
        raise ApiError(405, "UNSUPPORTED", f"{request.method} is not supported on {request.path}")

    async def _stream_into(self, request: Request, writer: BlobWriter) -> None:
        """The request body into ``writer`` (see ``AsyncBlobWriter.write_stream``: two blocks of
        ``STREAM_BLOCK`` bytes, the most an upload holds in memory)."""
        await AsyncBlobWriter(writer).write_stream(request.stream())

    def _upload_headers(self, name: str, upload_id: str, size: int) -> dict[str, str]:
        return {
            "Location": f"/v2/{name}/blobs/uploads/{upload_id}",
            "Range": _range_value(size),
            "Docker-Upload-UUID": upload_id,
        }

    # -- endpoints ----------------------------------------------------------------------------

    async def base(self, request: Request) -> Response:
        return Response(200, {"Content-Type": "application/json"}, b"{}")

    async def serve_metrics(self, request: Request) -> Response:
        body, content_type = await asyncio.to_thread(self.metrics.render)
        return Response(200, {"Content-Type": content_type}, body)

    async def catalog(self, request: Request) -> Response:
        n = _page_size(request)
        last = request.query.get("last") or None
        names = await asyncio.to_thread(
            self.registry.repositories, last, None if n is None else n + 1
        )
        headers = {"Content-Type": "application/json"}
        if n is not None and len(names) > n:
            names = names[:n]
            headers["Link"] = link_header("/v2/_catalog", {"last": names[-1], "n": str(n)})
        return Response(200, headers, json.dumps({"repositories": names}).encode())

    async def tags_list(self, request: Request, name: str) -> Response:
        repo = self._repository(name)
        try:
            tags = await asyncio.to_thread(repo.tags().all)
        except ErrRepositoryUnknown as e:
            raise ApiError(404, "NAME_UNKNOWN", e.message, {"name": name}) from None
        n = _page_size(request)
        last = request.query.get("last")
        if last:
            tags = [t for t in tags if t > last]
        headers = {"Content-Type": "application/json"}
        if n is not None:
            if len(tags) > n:
                headers["Link"] = link_header(
                    f"/v2/{name}/tags/list", {"last": tags[n - 1] if n else "", "n": str(n)}
                )
            tags = tags[:n]
        return Response(200, headers, json.dumps({"name": name, "tags": tags}).encode())

    async def referrers(self, request: Request, name: str, digest: str) -> Response:
        repo = self._repository(name)
        subject = Digest(digest)
        artifact_type = request.query.get("artifactType") or None
        index = await asyncio.to_thread(repo.referrers, subject, artifact_type)
        headers = {"Content-Type": OCI_INDEX}
        if artifact_type is not None:
            headers["OCI-Filters-Applied"] = "artifactType"
        return Response(200, headers, index.payload())

    # manifests

    async def get_manifest(self, request: Request, name: str, reference: str) -> Response:
        repo = self._repository(name)
        try:
            ref = parse_reference(reference)
        except ErrTagInvalid:
            # No manifest can have that name: for a read, it is simply not there.
            raise ErrManifestUnknown(
                f"manifest unknown: {reference!r} is not a valid tag or digest",
                detail={"name": name, "reference": reference},
            ) from None
        digest = ref if isinstance(ref, Digest) else await self._lookup(repo.tags().resolve, ref)
        manifest = await asyncio.to_thread(repo.manifests().get, digest)
        if not accepts(request.header_values("accept"), manifest.media_type):
            raise ErrManifestUnknown(
                f"manifest {digest} is a {manifest.media_type}, which the request's Accept "
                "header does not include",
                detail={"name": name, "reference": reference},
            )
        payload = manifest.payload()
        return Response(
            200,
            {
                "Content-Type": manifest.media_type,
                "Docker-Content-Digest": str(digest),
                "ETag": f'"{digest}"',
                "Content-Length": str(len(payload)),
            },
            payload,
        )

    async def put_manifest(self, request: Request, name: str, reference: str) -> Response:
        self._check_writable()
        repo = self._repository(name)
        ref = parse_reference(reference)
        payload = await request.body(MANIFEST_LIMIT)
        manifest, descriptor = unmarshal_manifest(request.header("content-type"), payload)
        if isinstance(ref, Digest) and ref != descriptor.digest:
            actual = Digest.from_bytes(ref.algorithm, hashing.new(ref.algorithm, payload).digest())
            if actual != ref:
                raise ApiError(
                    400,
                    "DIGEST_INVALID",
                    f"manifest digest is {actual}, not {ref}",
                    {"expected": str(ref), "actual": str(actual)},
                )
        tag = ref if isinstance(ref, str) else None
        digest = await asyncio.to_thread(repo.manifests().put, manifest, tag=tag)
        headers = {
            "Location": f"/v2/{name}/manifests/{digest}",
            "Docker-Content-Digest": str(digest),
        }
        if manifest.subject is not None:
            headers["OCI-Subject"] = str(manifest.subject.digest)
        return Response(201, headers)

    async def delete_manifest(self, request: Request, name: str, reference: str) -> Response:
        self._check_writable()
        repo = self._repository(name)
        ref = parse_reference(reference)
        if isinstance(ref, Digest):
            await asyncio.to_thread(repo.manifests().delete, ref)
        else:
            await asyncio.to_thread(repo.tags().untag, ref)
        return Response(202)

    # blobs

    async def get_blob(self, request: Request, name: str, digest: str) -> Response:
        blobs = self._repository(name).blobs()
        parsed = Digest(digest)
        descriptor = await self._lookup(blobs.stat, parsed)
        size = descriptor.size
        etag = f'"{parsed}"'
        headers = {
            "Content-Type": "application/octet-stream",
            "Docker-Content-Digest": str(parsed),
            "ETag": etag,
            "Accept-Ranges": "bytes",
            "Cache-Control": "max-age=31536000",
        }
        if etag in [
            t.strip() for h in request.header_values("if-none-match") for t in h.split(",")
        ]:
            return Response(304, headers)
        range_header = request.header("range")
        byte_range = parse_range(range_header, size) if range_header else None
        if self.redirect_url is not None and request.method == "GET":
            url = await asyncio.to_thread(self.redirect_url, parsed)
            return Response(307, {**headers, "Location": url})
        if byte_range is None:
            headers["Content-Length"] = str(size)
            return Response(200, headers, file=(parsed, 0, size))
        headers["Content-Length"] = str(byte_range.length)
        headers["Content-Range"] = f"bytes {byte_range.start}-{byte_range.end}/{size}"
        return Response(206, headers, file=(parsed, byte_range.start, byte_range.length))

    async def delete_blob(self, request: Request, name: str, digest: str) -> Response:
        self._check_writable()
        await asyncio.to_thread(self._repository(name).blobs().delete, Digest(digest))
        return Response(202)

    # uploads

    async def start_upload(self, request: Request, name: str) -> Response:
        self._check_writable()
        blobs = self._repository(name).blobs()
        mount = request.query.get("mount")
        if mount:
            digest = Digest(mount)
            source = request.query.get("from") or None
            if not self._may_mount_from(request, source):
                # As the spec allows: ignore the mount and start a normal upload, revealing
                # nothing about a repository the caller may not read.
                writer = await asyncio.to_thread(blobs.create)
                await request.drain()
                return Response(202, self._upload_headers(name, writer.id, 0))
            try:
                writer = await asyncio.to_thread(blobs.create, mount_from=(source, digest))
            except ErrBlobMounted as mounted:
                return Response(
                    201,
                    {
                        "Location": f"/v2/{name}/blobs/{mounted.descriptor.digest}",
                        "Docker-Content-Digest": str(mounted.descriptor.digest),
                    },
                )
            await request.drain()
            return Response(202, self._upload_headers(name, writer.id, 0))
        if "digest" in request.query:
            digest = _digest_param(request.query["digest"])
            length = request.header("content-length")
            if length is not None and is_decimal(length) and int(length) <= INLINE_WRITE_MAX:
                # A small blob: received first, then created, written and committed in one
                # thread hop instead of two.
                data = await request.body(INLINE_WRITE_MAX)
                descriptor = await asyncio.to_thread(_push_whole, blobs, data, digest)
            else:
                writer = await asyncio.to_thread(blobs.create)
                try:
                    await self._stream_into(request, writer)
                    descriptor = await asyncio.to_thread(writer.commit, digest)
                except BaseException:
                    with contextlib.suppress(Exception):
                        writer.cancel()
                    raise
            return Response(
                201,
                {
                    "Location": f"/v2/{name}/blobs/{descriptor.digest}",
                    "Docker-Content-Digest": str(descriptor.digest),
                },
            )
        writer = await asyncio.to_thread(blobs.create)
        await request.drain()
        return Response(202, self._upload_headers(name, writer.id, 0))

    async def upload_status(self, request: Request, name: str, upload_id: str) -> Response:
        blobs = self._repository(name).blobs()
        size = await asyncio.to_thread(blobs.upload_size, upload_id)
        return Response(204, self._upload_headers(name, upload_id, size))

    async def _continue_upload(
        self, request: Request, name: str, upload_id: str, writer: BlobWriter
    ) -> None:
        """Checks ``Content-Range``/``Content-Length`` against the upload, then streams the body
        in; the caller checkpoints or commits."""
        content_range = request.header("content-range")
        length_header = request.header("content-length")
        if content_range:
            parsed = parse_content_range(content_range)
            if parsed is None:
                raise ApiError(
                    416,
                    "BLOB_UPLOAD_INVALID",
                    f"malformed Content-Range {content_range!r}",
                    headers=self._upload_headers(name, upload_id, writer.size),
                )
            if not _core.upload_continues(parsed, length_header, writer.size):
                raise ApiError(
                    416,
                    "BLOB_UPLOAD_INVALID",
                    f"Content-Range {content_range!r} does not continue the upload at "
                    f"{writer.size} bytes (or disagrees with Content-Length)",
                    headers=self._upload_headers(name, upload_id, writer.size),
                )
        await self._stream_into(request, writer)

    async def patch_upload(self, request: Request, name: str, upload_id: str) -> Response:
        self._check_writable()
        blobs = self._repository(name).blobs()
        writer = await self._claim(blobs, name, upload_id)
        # Each PATCH ends with a checkpoint that does not wait for the disk (as distribution
        # saves its hash state per PATCH, without fsync); the PUT that commits is durable.
        try:
            await self._continue_upload(request, name, upload_id, writer)
        except BaseException:
            writer.close(durable=False)  # keep what arrived resumable, even on cancellation
            raise
        await asyncio.to_thread(writer.close, durable=False)
        return Response(202, self._upload_headers(name, upload_id, writer.size))

    async def finish_upload(self, request: Request, name: str, upload_id: str) -> Response:
        self._check_writable()
        blobs = self._repository(name).blobs()
        digest = _digest_param(request.query.get("digest"))
        writer = await self._claim(blobs, name, upload_id)
        try:
            await self._continue_upload(request, name, upload_id, writer)
            descriptor = await asyncio.to_thread(writer.commit, digest)
        except BaseException:
            if not writer.closed:
                writer.close()
            raise
        return Response(
            201,
            {
                "Location": f"/v2/{name}/blobs/{descriptor.digest}",
                "Docker-Content-Digest": str(descriptor.digest),
            },
        )

    async def cancel_upload(self, request: Request, name: str, upload_id: str) -> Response:
        self._check_writable()
        blobs = self._repository(name).blobs()
        writer = await self._claim(blobs, name, upload_id)
        await asyncio.to_thread(writer.cancel)
        return Response(204)
