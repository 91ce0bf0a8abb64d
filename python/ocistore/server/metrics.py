"""Prometheus metrics: requests by route and status, latency, bytes in and out, and uploads in
progress (sessions on disk). With several workers, set ``PROMETHEUS_MULTIPROC_DIR`` (``ocistore
serve`` does) so that every worker's counts are aggregated."""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from ..storage import Registry

__all__ = ["Metrics", "Observation"]

#: One request: route, method, status, seconds from request to the end of the response, bytes
#: received, bytes sent.
Observation = tuple[str, str, int, float, int, int]

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class _UploadsOnDisk(Collector):
    """Counts upload sessions in storage; cached for a few seconds, the walk is not free."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._cached: tuple[float, int] = (0.0, 0)

    def _count(self) -> int:
        at, count = self._cached
        if time.monotonic() - at < 5:
            return count
        driver = self.registry.driver
        count = sum(len(driver.list(uploads)) for uploads in self.registry.upload_dirs())
        self._cached = (time.monotonic(), count)
        return count

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "ocistore_uploads_in_progress",
            "Upload sessions started and not yet committed, cancelled or purged",
            value=self._count(),
        )


class Metrics:
    def __init__(self, registry: Registry) -> None:
        self._multiprocess = "PROMETHEUS_MULTIPROC_DIR" in os.environ
        self.collectors = CollectorRegistry(auto_describe=True)
        # Multiprocess values live in files, not in a registry.
        target = None if self._multiprocess else self.collectors
        self.requests = Counter(
            "ocistore_http_requests",
            "HTTP requests by route, method and status",
            ["route", "method", "status"],
            registry=target,
        )
        self.latency = Histogram(
            "ocistore_http_request_duration_seconds",
            "Time from request to the end of the response",
            ["route", "method"],
            buckets=_BUCKETS,
            registry=target,
        )
        self.bytes_in = Counter(
            "ocistore_http_received_bytes", "Request body bytes", ["route"], registry=target
        )
        self.bytes_out = Counter(
            "ocistore_http_sent_bytes", "Response body bytes", ["route"], registry=target
        )
        self.proxy_requests = Counter(
            "ocistore_proxy_requests",
            "Pull-through cache reads by upstream, kind (manifest, blob) and result (hit, miss)",
            ["upstream", "kind", "result"],
            registry=target,
        )
        self.proxy_upstream_bytes = Counter(
            "ocistore_proxy_upstream_received_bytes",
            "Blob bytes the pull-through cache received from each upstream",
            ["upstream"],
            registry=target,
        )
        self.proxy_upstream_errors = Counter(
            "ocistore_proxy_upstream_errors",
            "Upstream requests of the pull-through cache that failed (unreachable, 5xx, a "
            "blob that did not match its digest)",
            ["upstream"],
            registry=target,
        )
        self._uploads = _UploadsOnDisk(registry)
        self.collectors.register(self._uploads)

    def observe(
        self, route: str, method: str, status: int, seconds: float, bytes_in: int, bytes_out: int
    ) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route, method).observe(seconds)
        if bytes_in:
            self.bytes_in.labels(route).inc(bytes_in)
        if bytes_out:
            self.bytes_out.labels(route).inc(bytes_out)

    def observe_many(self, observations: Iterable[Observation]) -> None:
        """What ``observe`` does for each, grouped first: the native front reports what it
        answered in batches of thousands, and each labelled update is a lock and, with several
        workers, a write into a shared file, so a batch costs one update per label set and one
        latency observation per request instead of four updates and three lookups each."""
        counts: dict[tuple[str, str, str], int] = defaultdict(int)
        latencies: dict[tuple[str, str], list[float]] = defaultdict(list)
        received: dict[str, int] = defaultdict(int)
        sent: dict[str, int] = defaultdict(int)
        for route, method, status, seconds, bytes_in, bytes_out in observations:
            counts[route, method, str(status)] += 1
            latencies[route, method].append(seconds)
            if bytes_in:
                received[route] += bytes_in
            if bytes_out:
                sent[route] += bytes_out
        for request_labels, count in counts.items():
            self.requests.labels(*request_labels).inc(count)
        for latency_labels, values in latencies.items():
            histogram = self.latency.labels(*latency_labels)
            for seconds in values:
                histogram.observe(seconds)
        for route, size in received.items():
            self.bytes_in.labels(route).inc(size)
        for route, size in sent.items():
            self.bytes_out.labels(route).inc(size)

    def proxy_request(self, upstream: str, kind: str, hit: bool) -> None:
        self.proxy_requests.labels(upstream, kind, "hit" if hit else "miss").inc()

    def proxy_received(self, upstream: str, size: int) -> None:
        self.proxy_upstream_bytes.labels(upstream).inc(size)

    def proxy_error(self, upstream: str) -> None:
        self.proxy_upstream_errors.labels(upstream).inc()

    def render(self) -> tuple[bytes, str]:
        if self._multiprocess:
            from prometheus_client import multiprocess

            merged = CollectorRegistry()
            multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
            merged.register(self._uploads)
            return generate_latest(merged), CONTENT_TYPE_LATEST
        return generate_latest(self.collectors), CONTENT_TYPE_LATEST
