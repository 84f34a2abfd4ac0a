"""Prometheus metrics of one server (its own registry, so several apps in one process stay apart)."""
from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

ENDPOINTS = ("/v1/embeddings", "/v1/search", "/v1/rerank", "/v1/models", "/health", "/metrics")


class ServerMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("uniembed_requests", "HTTP requests by endpoint and status", ["endpoint", "status"],
                                registry=r)
        self.latency = Histogram("uniembed_request_seconds", "request latency", ["endpoint"], registry=r,
                                 buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60))
        self.in_flight = Gauge("uniembed_requests_in_flight", "requests being processed", registry=r)
        self.rejected = Counter("uniembed_rejected", "requests refused before processing", ["reason"], registry=r)
        self.items = Counter("uniembed_items", "items embedded, by modality", ["modality"], registry=r)
        self.tokens = Counter("uniembed_tokens", "tokens embedded", ["kind"], registry=r)
        self.batch_items = Histogram("uniembed_batch_items", "items per model batch", registry=r,
                                     buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))
        self.batch_tokens = Histogram("uniembed_batch_padded_tokens", "estimated padded tokens per model batch",
                                      registry=r, buckets=(64, 256, 1024, 4096, 16384, 65536))
        self.batch_seconds = Histogram("uniembed_batch_seconds", "model time per batch", registry=r,
                                       buckets=(.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5))
        self.queue_items = Gauge("uniembed_queue_items", "items waiting for a model batch", registry=r)

    def observe_batch(self, items: int, padded_tokens: int, seconds: float) -> None:
        self.batch_items.observe(items)
        self.batch_tokens.observe(padded_tokens)
        self.batch_seconds.observe(seconds)

    def endpoint_label(self, path: str) -> str:
        return path if path in ENDPOINTS else "other"

    def render(self) -> bytes:
        return generate_latest(self.registry)
