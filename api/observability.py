"""Seeing it work: Prometheus metrics and JSON-line logs that carry a request id.

Metrics live in one `CollectorRegistry` per app (never the process-global one),
so several apps in one process (tests) do not clash. Labels are bounded: the
route *template* (`/documents/{document_id}`, never the raw path; `<unmatched>`
for anything no route matches), a fixed set of methods, the status code, the
retrieval stage names. The index size and version are read from the service at
scrape time, so a reload shows up without bookkeeping; so are the admission
lanes' running and waiting counts and refusals (api.limits.Admission).

Logs: `JsonFormatter` writes one JSON object per line (`ts`, `level`, `logger`,
`message`, and `request_id`, `method`, `path`, `route`, `status`,
`duration_ms`, `client` when the record has them). Any log line written while
a request is handled carries that request's id (a context variable), so a
warning deep in `rag` can be matched to the request that caused it.
`configure_json_logging()` switches the process to it (`rag serve` does),
with `RepeatFilter` on its handlers: the same message (logger, level and
template) is written at most once a second, the next one carrying how many
were dropped (`repeated`), so a flood of identical errors (bad requests, a
failing accept) cannot fill the disk.
"""

from __future__ import annotations

import contextvars
import json
import logging
import threading
import time
from collections import OrderedDict

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
ACCESS_LOG = logging.getLogger("api.access")
# Written at INFO under JSON logging: access lines, reloads ("index reloaded", api.routers.admin), server start/stop.
INFO_LOGGERS = ("api.access", "api.routers.admin", "uvicorn.error")
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
STAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def method_label(method: str) -> str:
    return method if method in KNOWN_METHODS else "OTHER"


class Metrics:
    """The app's metrics; `render()` is the body of GET /metrics."""

    def __init__(self, service_of, admission=None):
        """`service_of()` returns the service being served now (or None while loading); `admission` its lanes."""
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "rag_http_requests", "HTTP requests by method, route template and status code.",
            ["method", "route", "status"], registry=self.registry,
        )
        self.latency = Histogram(
            "rag_http_request_duration_seconds", "HTTP request latency by method and route template.",
            ["method", "route"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.in_flight = Gauge("rag_http_requests_in_flight", "HTTP requests being handled now.", registry=self.registry)
        self.query_latency = Histogram(
            "rag_query_duration_seconds", "Retrieval time per question (all stages), by mode.",
            ["mode"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.stage_latency = Histogram(
            "rag_query_stage_duration_seconds", "Retrieval time per stage: embed, dense, lexical, fusion, highlight.",
            ["stage"], buckets=STAGE_BUCKETS, registry=self.registry,
        )
        self.verdicts = Counter(
            "rag_query_verdicts", "Questions answered, by verdict (found, uncertain, not_found) and whether the verifier read them.",
            ["verdict", "verified"], registry=self.registry,
        )
        self.reloads = Counter(
            "rag_index_reloads", "Index reloads by outcome (changed, unchanged, failed).", ["outcome"], registry=self.registry
        )
        self.registry.register(_IndexCollector(service_of))
        if admission is not None:
            self.registry.register(_AdmissionCollector(admission))

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        method = method_label(method)
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def observe_query(self, result) -> None:
        """Record a `rag.query.retrieval.QueryResult`'s stage timings and its verdict."""
        timings = getattr(result, "timings_ms", None) or {}
        for stage, ms in timings.items():
            self.stage_latency.labels(str(stage)).observe(ms / 1000)
        self.query_latency.labels(str(result.mode)).observe(sum(timings.values()) / 1000)
        self.verdicts.labels(str(result.verdict), "true" if result.verified else "false").inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _IndexCollector:
    """Index size and version, read from the service at scrape time."""

    def __init__(self, service_of):
        self.service_of = service_of

    def describe(self):
        return []  # collected lazily; nothing to check at registration

    def collect(self):
        service = self.service_of()
        loaded = GaugeMetricFamily("rag_index_loaded", "1 when a model and index are loaded and served.")
        loaded.add_metric([], 0 if service is None else 1)
        yield loaded
        if service is None:
            return
        info = service.info()
        passages = GaugeMetricFamily("rag_index_passages", "Passages in the index being served.")
        passages.add_metric([], info["passages"])
        yield passages
        documents = GaugeMetricFamily("rag_index_documents", "Documents in the index being served.")
        documents.add_metric([], info["documents"])
        yield documents
        version = InfoMetricFamily("rag_index", "The index being served: its id (content hash), model and search type.")
        version.add_metric([], {"index_id": str(info["index_id"]), "model": str(info["model"]), "index_type": str(info["index_type"])})
        yield version


class _AdmissionCollector:
    """Each admission lane's running and waiting jobs and refusals, read at scrape time."""

    def __init__(self, admission):
        self.admission = admission

    def describe(self):
        return []

    def collect(self):
        running = GaugeMetricFamily("rag_admission_running", "Questions or batches being answered, by lane.", labels=["lane"])
        queued = GaugeMetricFamily("rag_admission_queued", "Questions or batches waiting for a worker, by lane.", labels=["lane"])
        rejected = CounterMetricFamily("rag_admission_rejected", "Requests refused with 503 because their lane was full.", labels=["lane"])
        for lane in self.admission.lanes:
            running.add_metric([lane.name], lane.running)
            queued.add_metric([lane.name], lane.queued)
            rejected.add_metric([lane.name], lane.rejected)
        yield from (running, queued, rejected)


# --- logs -------------------------------------------------------------------------------------

_RECORD_FIELDS = ("method", "path", "route", "status", "duration_ms", "client", "request_bytes", "repeated")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or REQUEST_ID.get()
        if request_id:
            entry["request_id"] = request_id
        for name in _RECORD_FIELDS:
            if hasattr(record, name):
                entry[name] = getattr(record, name)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        # ensure_ascii: a path or message holding a lone surrogate still makes a valid line
        return json.dumps(entry, ensure_ascii=True, default=str)


class RepeatFilter(logging.Filter):
    """Lets the same message through at most once per `interval` seconds; the next one says how many were dropped.

    "The same" is the logger, the level and the message template (`record.msg`),
    so `"bad request from %s"` floods are one line a second whatever the
    arguments. Access lines (one per request, each different) are not touched.
    At most `max_keys` templates are remembered (least recently seen dropped).
    """

    def __init__(self, interval: float = 1.0, max_keys: int = 1024, clock=time.monotonic, exempt=("api.access",)):
        super().__init__()
        self.interval = interval
        self.max_keys = max_keys
        self.clock = clock
        self.exempt = frozenset(exempt)
        self._seen: OrderedDict[tuple, list] = OrderedDict()  # key -> [last written, dropped since]
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name in self.exempt:
            return True
        key = (record.name, record.levelno, str(record.msg))
        now = self.clock()
        with self._lock:
            entry = self._seen.pop(key, None)
            if entry is not None and now - entry[0] < self.interval:
                entry[1] += 1
                self._seen[key] = entry
                return False
            if entry is not None and entry[1]:
                record.repeated = entry[1]  # dropped since the last one written
            self._seen[key] = [now, 0]
            while len(self._seen) > self.max_keys:
                self._seen.popitem(last=False)
        return True


def configure_json_logging(level: str = "WARNING") -> None:
    """Every log line of the process as JSON on stderr, repeats limited; access lines and server start/stop at INFO."""
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
    for handler in root.handlers:
        handler.setFormatter(JsonFormatter())
        if not any(isinstance(f, RepeatFilter) for f in handler.filters):
            handler.addFilter(RepeatFilter())
    root.setLevel(level.upper())
    for name in INFO_LOGGERS:
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
