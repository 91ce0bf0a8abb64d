"""Configuration: the subset of distribution's ``config.yml`` that applies to ocistore.

Accepted keys (anything else is an error at start, naming the key)::

    version: 0.1
    log: {level: debug|info|warn|error, formatter: json|text, accesslog: {disabled: bool}}
    storage:
      filesystem: {rootdirectory: PATH}             # or:
      s3: {bucket: NAME, region: us-east-1, regionendpoint: URL, accesskey: ..., secretkey: ...,
           rootdirectory: /prefix, forcepathstyle: bool, chunksize: BYTES, secure: bool,
           v4auth: true}                            # or:
      azure: {accountname: ..., accountkey: ..., container: NAME, serviceurl: URL | realm: ...,
              rootdirectory: /prefix, chunksize: BYTES}   # or:
      gcs: {bucket: NAME, keyfile: PATH | credentials: {service account key},
            rootdirectory: /prefix, chunksize: BYTES,
            endpoint: URL}                          # ocistore's: an emulator, a private endpoint
      redirect: {disable: bool}                     # S3 blob GETs: 307 to a presigned URL
      cache: {blobdescriptor: inmemory|redis, blobdescriptorsize: 10000}
      delete: {enabled: bool}                       # default false, as in distribution
      maintenance:
        uploadpurging: {enabled: bool, age: 168h, interval: 24h, dryrun: bool}
        readonly: {enabled: bool}
    http: {addr: HOST:PORT, secret: ..., relativeurls: bool, draintimeout: 10s,
           bodyidletimeout: 60s,                    # ocistore's: a stalled body ends the request
           headers: {Name: [value, ...]}, nativefront: bool,
           tls: {certificate: PEM, key: PEM, minimumtls: tls1.2|tls1.3}}
    redis: {addr: HOST:PORT, password: ..., db: 0, dialtimeout: 1s, readtimeout: 1s,
            pool: {maxactive: 64}}                  # for storage.cache.blobdescriptor: redis
    proxy: {remoteurl: URL, username: ..., password: ..., ttl: 168h, upstreams: [...]}
                                                    # a pull-through cache: ocistore.proxy.config
    auth:                                           # at most one of:
      htpasswd: {realm: ..., path: FILE}            # bcrypt entries only
      token: {realm: URL, service: ..., issuer: ..., rootcertbundle: PEM, jwks: FILE}

See ``ocistore.server.auth`` for what each access controller checks.

``http.nativefront`` (ocistore's own key) puts the native front before the application, or
with ``false`` leaves it out; by default it is there on filesystem storage. See
``ocistore.server.serve``.

``http.secret`` is accepted for compatibility and unused: upload state lives on disk, not in
signed URL parameters.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

from ..storage.descriptor_cache import DescriptorCache, MemoryDescriptorCache, redis_cache
from ..storage.driver import FilesystemDriver, ObjectStoreDriver
from ..storage.validation import IndexChildren, ManifestValidation

__all__ = ["Config", "ConfigError", "load_config", "parse_addr", "parse_duration"]


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the key."""


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def parse_duration(text: str) -> timedelta:
    """Go's duration syntax (``1h30m``, ``168h``, ``10s``; ``0`` alone)."""
    text = str(text).strip()
    if text == "0":
        return timedelta(0)
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"invalid duration {text!r} (examples: 30m, 1h, 168h)")
    return timedelta(seconds=sum(float(n) * _UNIT_SECONDS[u] for n, u in parts))


def parse_addr(addr: str) -> tuple[str, int]:
    host, sep, port = str(addr).rpartition(":")
    if not sep or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        raise ValueError(f"invalid address {addr!r}: expected HOST:PORT")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


@dataclass
class Config:
    addr: str = "127.0.0.1:5000"
    root: str = "./data"
    delete_enabled: bool = False
    readonly: bool = False
    purge_enabled: bool = True
    purge_age_seconds: float = 168 * 3600
    purge_interval_seconds: float = 24 * 3600
    purge_dry_run: bool = False
    log_level: str = "info"
    log_formatter: str = "json"
    access_log: bool = True
    relative_urls: bool = False
    drain_timeout_seconds: float = 10.0
    #: A request body that sends nothing (or, behind the front, a response the client takes
    #: nothing of) for this long ends the request (0: never).
    body_idle_timeout_seconds: float = 60.0
    headers: dict[str, list[str]] = field(default_factory=dict)
    auth: dict[str, dict[str, Any]] = field(default_factory=dict)
    tls_certificate: str | None = None
    tls_key: str | None = None
    tls_minimum: str = "tls1.2"
    #: ``storage.s3`` as ``ocistore._core.ObjectStore`` keyword arguments; None: filesystem.
    s3: dict[str, Any] | None = None
    #: ``storage.azure`` as ``ocistore._core.ObjectStore.azure`` keyword arguments.
    azure: dict[str, Any] | None = None
    #: ``storage.gcs`` as ``ocistore._core.ObjectStore.gcs`` keyword arguments.
    gcs: dict[str, Any] | None = None
    redirect: bool = True
    #: None: the native front on filesystem storage.
    native_front: bool | None = None
    #: ``validation.manifests`` as distribution 3 reads it: ``indexes.platforms`` (all, none or
    #: list), ``indexes.platformlist`` as ``[os, architecture]`` pairs, ``urls.allow`` and
    #: ``urls.deny`` (with ``allow`` unset any http or https URL is accepted, as the spec's
    #: conformance suite expects; distribution 3 refuses every URL then);
    #: ``validation.disabled`` turns all of it off.
    validation_disabled: bool = False
    index_children: str = "all"
    #: ``validation.manifests.blobs`` (ocistore's own key): ``none`` accepts image manifests
    #: whose config or layers are absent.
    blobs_required: bool = True
    index_platforms: list[list[str]] = field(default_factory=list)
    urls_allow: list[str] | None = None
    urls_deny: list[str] = field(default_factory=list)
    #: ``storage.cache.blobdescriptor``: None, ``inmemory`` or ``redis`` (then ``redis`` holds
    #: the connection: ``addr``, ``password``, ``db``, timeouts in seconds, ``maxactive``).
    blob_descriptor_cache: str | None = None
    blob_descriptor_size: int = 10_000
    redis: dict[str, Any] | None = None
    #: ``proxy``: the pull-through cache's upstreams (``ocistore.proxy.config``), as
    #: ``UpstreamConfig`` fields; empty: not a cache.
    proxy: list[dict[str, Any]] = field(default_factory=list)
    #: Set by ``serve`` for the workers behind a native front: requests carrying it came
    #: through the front (never read from a file).
    front_secret: str | None = None

    def storage_driver(self) -> FilesystemDriver | ObjectStoreDriver:
        from .. import _core

        if self.azure is not None:
            return ObjectStoreDriver(_core.ObjectStore.azure(**self.azure))
        if self.gcs is not None:
            return ObjectStoreDriver(_core.ObjectStore.gcs(**self.gcs))
        if self.s3 is None:
            return FilesystemDriver(self.root)
        return ObjectStoreDriver(_core.ObjectStore(**self.s3))

    def object_storage(self) -> bool:
        return self.s3 is not None or self.azure is not None or self.gcs is not None

    def descriptor_cache(self) -> DescriptorCache | None:
        """The blob descriptor cache ``storage.cache`` asks for (None: no cache)."""
        if self.blob_descriptor_cache == "inmemory":
            return MemoryDescriptorCache(self.blob_descriptor_size)
        if self.blob_descriptor_cache == "redis":
            assert self.redis is not None
            return redis_cache(self.redis)
        return None

    def manifest_validation(self) -> ManifestValidation:
        if self.validation_disabled:
            return ManifestValidation(index_children="none")
        children = cast(IndexChildren, self.index_children)
        return ManifestValidation(
            index_children=children,
            blobs_required=self.blobs_required,
            index_platforms=tuple((os_, arch) for os_, arch in self.index_platforms),
            urls_allow=(
                None if self.urls_allow is None else tuple(re.compile(p) for p in self.urls_allow)
            ),
            urls_deny=tuple(re.compile(p) for p in self.urls_deny),
        )

    def front_in_use(self) -> bool:
        """Whether ``serve`` puts the native front before the application: as configured (by
        default it does)."""
        return True if self.native_front is None else self.native_front

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Config:
        return cls(**json.loads(text))


_SCHEMA: dict[str, Any] = {
    "version": str,
    "log": {"level": str, "formatter": str, "accesslog": {"disabled": bool}, "fields": dict},
    "storage": {
        "filesystem": {"rootdirectory": str},
        "s3": {
            "bucket": str,
            "region": str,
            "regionendpoint": str,
            "accesskey": str,
            "secretkey": str,
            "rootdirectory": str,
            "forcepathstyle": bool,
            "chunksize": str,
            "secure": bool,
            "v4auth": bool,
        },
        "azure": {
            "accountname": str,
            "accountkey": str,
            "container": str,
            "serviceurl": str,
            "realm": str,
            "rootdirectory": str,
            "chunksize": str,
        },
        "gcs": {
            "bucket": str,
            "keyfile": str,
            "credentials": dict,
            "rootdirectory": str,
            "chunksize": str,
            "endpoint": str,
        },
        "redirect": {"disable": bool},
        "cache": {"blobdescriptor": str, "blobdescriptorsize": str},
        "delete": {"enabled": bool},
        "maintenance": {
            "uploadpurging": {"enabled": bool, "age": str, "interval": str, "dryrun": bool},
            "readonly": {"enabled": bool},
        },
    },
    "http": {
        "addr": str,
        "secret": str,
        "relativeurls": bool,
        "draintimeout": str,
        "bodyidletimeout": str,
        "headers": dict,
        "nativefront": bool,
        "tls": {"certificate": str, "key": str, "minimumtls": str},
    },
    "validation": {
        "enabled": bool,
        "disabled": bool,
        "manifests": {
            "urls": {"allow": list, "deny": list},
            "indexes": {"platforms": str, "platformlist": list},
            "blobs": str,
        },
    },
    "proxy": dict,  # checked by ocistore.proxy.config
    "redis": {
        "addr": str,
        "addrs": list,
        "password": str,
        "db": str,
        "dialtimeout": str,
        "readtimeout": str,
        "writetimeout": str,
        "pool": {"maxidle": str, "maxactive": str, "idletimeout": str},
        "poolsize": str,
        "maxidleconns": str,
        "connmaxidletime": str,
    },
    "auth": {
        "htpasswd": {"realm": str, "path": str},
        "token": {"realm": str, "service": str, "issuer": str, "rootcertbundle": str, "jwks": str},
    },
}
_NOT_YET = {
    "auth.silly": "the silly access controller is for development only; use htpasswd or token",
    "http.tls.clientcas": "client certificate authentication is not supported",
    "http.tls.letsencrypt": "Let's Encrypt is not supported; give certificate and key",
}
_TLS_VERSIONS = ("tls1.2", "tls1.3")


def _check(node: Any, schema: Any, where: str) -> None:
    if isinstance(schema, dict):
        if node is None:
            return
        if not isinstance(node, dict):
            raise ConfigError(f"{where or 'configuration'}: expected a mapping")
        for key, value in node.items():
            path = f"{where}.{key}" if where else str(key)
            if path in _NOT_YET:
                raise ConfigError(f"{path}: {_NOT_YET[path]}")
            if key not in schema:
                allowed = ", ".join(sorted(schema))
                raise ConfigError(f"unknown configuration key {path!r} (allowed here: {allowed})")
            _check(value, schema[key], path)
    elif schema is str:
        if not isinstance(node, (str, int, float)) or isinstance(node, bool):
            raise ConfigError(f"{where}: expected a string, got {node!r}")
    elif schema is bool:
        if not isinstance(node, bool):
            raise ConfigError(f"{where}: expected true or false, got {node!r}")
    elif schema is dict and not isinstance(node, dict):
        raise ConfigError(f"{where}: expected a mapping, got {node!r}")
    elif schema is list and not isinstance(node, list):
        raise ConfigError(f"{where}: expected a list, got {node!r}")


def _get(doc: dict[str, Any], path: str) -> Any:
    node: Any = doc
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _chunk_size(value: Any, key: str, least: int = 5 * 1024 * 1024) -> int:
    """A multipart part size in bytes, as distribution's object storage drivers take it."""
    if not str(value).isascii() or not str(value).isdigit() or int(value) < least:
        raise ConfigError(f"{key}: expected bytes, at least {least}, got {value!r}")
    return int(value)


def _s3_options(s3: dict[str, Any]) -> dict[str, Any]:
    """distribution's ``storage.s3`` keys as ``ocistore._core.ObjectStore`` arguments."""
    if not s3.get("bucket"):
        raise ConfigError("storage.s3.bucket is required")
    if s3.get("v4auth") is False:
        raise ConfigError("storage.s3.v4auth: only AWS signature version 4 is supported")
    options: dict[str, Any] = {"bucket": str(s3["bucket"])}
    if (region := s3.get("region")) is not None:
        options["region"] = str(region)
    if (endpoint := s3.get("regionendpoint")) is not None:
        endpoint = str(endpoint)
        if "://" not in endpoint:
            endpoint = ("https://" if s3.get("secure", True) else "http://") + endpoint
        options["endpoint"] = endpoint
    for key, name in (("accesskey", "access_key"), ("secretkey", "secret_key")):
        if (value := s3.get(key)) is not None:
            options[name] = str(value)
    if (root := s3.get("rootdirectory")) is not None:
        options["root_directory"] = str(root).strip("/")
    if (path_style := s3.get("forcepathstyle")) is not None:
        options["force_path_style"] = path_style
    if (chunk := s3.get("chunksize")) is not None:
        options["chunk_size"] = _chunk_size(chunk, "storage.s3.chunksize")
    return options


def _azure_options(azure: dict[str, Any]) -> dict[str, Any]:
    """distribution's ``storage.azure`` keys as ``ocistore._core.ObjectStore.azure``
    arguments."""
    for key in ("accountname", "accountkey", "container"):
        if not azure.get(key):
            raise ConfigError(f"storage.azure.{key} is required")
    options: dict[str, Any] = {
        "account": str(azure["accountname"]),
        "key": str(azure["accountkey"]),
        "container": str(azure["container"]),
    }
    if (url := azure.get("serviceurl")) is not None:
        options["service_url"] = str(url)
    if (realm := azure.get("realm")) is not None:
        options["realm"] = str(realm)
    if (root := azure.get("rootdirectory")) is not None:
        options["root_directory"] = str(root).strip("/")
    if (chunk := azure.get("chunksize")) is not None:
        options["chunk_size"] = _chunk_size(chunk, "storage.azure.chunksize")
    from .. import _core

    try:  # builds no connection: a setting the store cannot use fails here, at start
        _core.ObjectStore.azure(**options)
    except ValueError as e:
        raise ConfigError(f"storage.azure: {e}") from None
    return options


def _gcs_options(gcs: dict[str, Any]) -> dict[str, Any]:
    """distribution's ``storage.gcs`` keys as ``ocistore._core.ObjectStore.gcs`` arguments:
    ``credentials`` (a service account key, as a map) goes on as JSON text."""
    if not gcs.get("bucket"):
        raise ConfigError("storage.gcs.bucket is required")
    options: dict[str, Any] = {"bucket": str(gcs["bucket"])}
    if (keyfile := gcs.get("keyfile")) is not None:
        options["keyfile"] = str(keyfile)
    if (credentials := gcs.get("credentials")) is not None:
        options["credentials"] = json.dumps(credentials)
    if (root := gcs.get("rootdirectory")) is not None:
        options["root_directory"] = str(root).strip("/")
    if (chunk := gcs.get("chunksize")) is not None:
        options["chunk_size"] = _chunk_size(chunk, "storage.gcs.chunksize", least=256 * 1024)
    if (endpoint := gcs.get("endpoint")) is not None:
        options["endpoint"] = str(endpoint)
    from .. import _core

    try:  # reads the key file and parses the key; no request is made
        _core.ObjectStore.gcs(**options)
    except ValueError as e:
        raise ConfigError(f"storage.gcs: {e}") from None
    return options


def _validation(doc: dict[str, Any], config: Config) -> None:
    """``validation``, as distribution 3 reads it."""
    disabled = _get(doc, "validation.disabled")
    enabled = _get(doc, "validation.enabled")  # distribution's older spelling
    config.validation_disabled = bool(disabled) or enabled is False
    if (platforms := _get(doc, "validation.manifests.indexes.platforms")) is not None:
        mode = str(platforms).lower()
        if mode not in ("all", "none", "list"):
            raise ConfigError(
                "validation.manifests.indexes.platforms: expected all, none or list, "
                f"got {platforms!r}"
            )
        config.index_children = mode
    if (blobs := _get(doc, "validation.manifests.blobs")) is not None:
        if str(blobs).lower() not in ("all", "none"):
            raise ConfigError(f"validation.manifests.blobs: expected all or none, got {blobs!r}")
        config.blobs_required = str(blobs).lower() == "all"
    for item in _get(doc, "validation.manifests.indexes.platformlist") or []:
        if not isinstance(item, dict) or not all(
            isinstance(item.get(k), str) for k in ("os", "architecture")
        ):
            raise ConfigError(
                "validation.manifests.indexes.platformlist: each entry needs os and "
                f"architecture, got {item!r}"
            )
        config.index_platforms.append([item["os"], item["architecture"]])
    for key in ("allow", "deny"):
        patterns = _get(doc, f"validation.manifests.urls.{key}")
        if patterns is None:
            continue
        for pattern in patterns:
            try:
                re.compile(str(pattern))
            except re.error as e:
                raise ConfigError(f"validation.manifests.urls.{key}: {pattern!r}: {e}") from None
        if key == "allow":
            config.urls_allow = [str(p) for p in patterns]
        else:
            config.urls_deny = [str(p) for p in patterns]


def _cache(doc: dict[str, Any], config: Config, duration: Callable[[str], float | None]) -> None:
    """``storage.cache`` and ``redis``, as distribution reads them (``redis.addr`` as 2.x wrote
    it, or the first of 3.x's ``addrs``)."""
    kind = _get(doc, "storage.cache.blobdescriptor")
    if kind is None:
        return
    kind = str(kind)
    if kind not in ("inmemory", "redis"):
        raise ConfigError(f"storage.cache.blobdescriptor: expected inmemory or redis, got {kind!r}")
    config.blob_descriptor_cache = kind
    if (size := _get(doc, "storage.cache.blobdescriptorsize")) is not None:
        if not str(size).isdigit() or int(size) < 1:
            raise ConfigError(f"storage.cache.blobdescriptorsize: expected a count, got {size!r}")
        config.blob_descriptor_size = int(size)
    if kind != "redis":
        return
    addr = _get(doc, "redis.addr") or next(iter(_get(doc, "redis.addrs") or []), None)
    if addr is None:
        raise ConfigError("storage.cache.blobdescriptor: redis needs redis.addr")
    try:
        parse_addr(str(addr))
    except ValueError as e:
        raise ConfigError(f"redis.addr: {e}") from None
    options: dict[str, Any] = {"addr": str(addr)}
    if (password := _get(doc, "redis.password")) is not None:
        options["password"] = str(password)
    if (db := _get(doc, "redis.db")) is not None:
        if not str(db).isdigit():
            raise ConfigError(f"redis.db: expected a number, got {db!r}")
        options["db"] = int(db)
    for key in ("dialtimeout", "readtimeout"):
        if (seconds := duration(f"redis.{key}")) is not None:
            options[key] = seconds
    active = _get(doc, "redis.pool.maxactive") or _get(doc, "redis.poolsize")
    if active is not None:
        if not str(active).isdigit() or int(active) < 1:
            raise ConfigError(f"redis.pool.maxactive: expected a count, got {active!r}")
        options["maxactive"] = int(active)
    config.redis = options


def load_config(path: str | Path | None) -> Config:
    """Reads and validates a YAML configuration; ``None`` gives the defaults."""
    config = Config()
    if path is None:
        return config
    import yaml

    try:
        doc = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"cannot read configuration {path}: {e}") from None
    _check(doc, _SCHEMA, "")
    version = _get(doc, "version")
    if version is not None and str(version) != "0.1":
        raise ConfigError(f"version: only 0.1 is supported, got {version!r}")

    def duration(key: str) -> float | None:
        value = _get(doc, key)
        if value is None:
            return None
        try:
            return parse_duration(str(value)).total_seconds()
        except ValueError as e:
            raise ConfigError(f"{key}: {e}") from None

    if (addr := _get(doc, "http.addr")) is not None:
        try:
            parse_addr(str(addr))
        except ValueError as e:
            raise ConfigError(f"http.addr: {e}") from None
        config.addr = str(addr)
    if (root := _get(doc, "storage.filesystem.rootdirectory")) is not None:
        config.root = str(root)
    kinds = [
        k for k in ("filesystem", "s3", "azure", "gcs") if _get(doc, f"storage.{k}") is not None
    ]
    if len(kinds) > 1:
        raise ConfigError(f"storage: configure one of filesystem, s3, azure or gcs, not {kinds}")
    if (s3 := _get(doc, "storage.s3")) is not None:
        config.s3 = _s3_options(s3)
    if (azure := _get(doc, "storage.azure")) is not None:
        config.azure = _azure_options(azure)
    if (gcs := _get(doc, "storage.gcs")) is not None:
        config.gcs = _gcs_options(gcs)
    if (disable := _get(doc, "storage.redirect.disable")) is not None:
        config.redirect = not disable
    if (delete := _get(doc, "storage.delete.enabled")) is not None:
        config.delete_enabled = delete
    if (readonly := _get(doc, "storage.maintenance.readonly.enabled")) is not None:
        config.readonly = readonly
    purging = "storage.maintenance.uploadpurging"
    if (enabled := _get(doc, f"{purging}.enabled")) is not None:
        config.purge_enabled = enabled
    if (age := duration(f"{purging}.age")) is not None:
        config.purge_age_seconds = age
    if (interval := duration(f"{purging}.interval")) is not None:
        if interval <= 0:
            raise ConfigError(f"{purging}.interval: must be positive")
        config.purge_interval_seconds = interval
    if (dry := _get(doc, f"{purging}.dryrun")) is not None:
        config.purge_dry_run = dry
    if (level := _get(doc, "log.level")) is not None:
        level = str(level).lower()
        if level not in {"debug", "info", "warn", "warning", "error"}:
            raise ConfigError(f"log.level: expected debug, info, warn or error, got {level!r}")
        config.log_level = "warn" if level == "warning" else level
    if (formatter := _get(doc, "log.formatter")) is not None:
        if formatter not in {"json", "text"}:
            raise ConfigError(f"log.formatter: expected json or text, got {formatter!r}")
        config.log_formatter = formatter
    if _get(doc, "log.accesslog.disabled"):
        config.access_log = False
    if (relative := _get(doc, "http.relativeurls")) is not None:
        config.relative_urls = relative
    if (drain := duration("http.draintimeout")) is not None:
        config.drain_timeout_seconds = drain
    if (idle := duration("http.bodyidletimeout")) is not None:
        config.body_idle_timeout_seconds = idle
    if (front := _get(doc, "http.nativefront")) is not None:
        config.native_front = front
    if (headers := _get(doc, "http.headers")) is not None:
        for name, values in headers.items():
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise ConfigError(f"http.headers.{name}: expected a list of strings")
        config.headers = {str(k): list(v) for k, v in headers.items()}
    _validation(doc, config)
    _cache(doc, config, duration)
    if (proxy := _get(doc, "proxy")) is not None:
        from ..proxy.config import ProxyConfigError, parse_proxy

        def seconds(value: Any, key: str) -> float:
            try:
                return parse_duration(str(value)).total_seconds()
            except ValueError as e:
                raise ConfigError(f"{key}: {e}") from None

        try:
            config.proxy = [u.to_dict() for u in parse_proxy(proxy, seconds)]
        except ProxyConfigError as e:
            raise ConfigError(str(e)) from None
        if config.object_storage():
            raise ConfigError("proxy: the pull-through cache needs filesystem storage for now")
    if (auth := _get(doc, "auth")) is not None:
        config.auth = {str(kind): dict(options or {}) for kind, options in auth.items()}
        from .auth import AuthConfigError, access_controller

        try:
            access_controller(config.auth)  # reads the files now: a bad one fails at start
        except AuthConfigError as e:
            raise ConfigError(str(e)) from None
    if (tls := _get(doc, "http.tls")) is not None:
        certificate, key = tls.get("certificate"), tls.get("key")
        if not certificate or not key:
            raise ConfigError("http.tls: both certificate and key are required")
        for name, file in (("certificate", certificate), ("key", key)):
            if not Path(str(file)).is_file():
                raise ConfigError(f"http.tls.{name}: no such file {file}")
        config.tls_certificate, config.tls_key = str(certificate), str(key)
        if (minimum := tls.get("minimumtls")) is not None:
            if str(minimum) not in _TLS_VERSIONS:
                raise ConfigError(
                    f"http.tls.minimumtls: expected tls1.2 or tls1.3, got {minimum!r}"
                )
            config.tls_minimum = str(minimum)
    return config
