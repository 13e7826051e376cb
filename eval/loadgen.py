"""A bounded closed-loop HTTP load generator (asyncio), run as its own process.

`--concurrency` workers each send POST requests one after another, with keep-alive, for
`--warmup` seconds (not recorded) and then `--duration` seconds (recorded). Every request
carries a different question: line `offset + i` of `--questions` (JSON strings, one a line),
so nothing can be answered from a cache. A request counts as OK only with a 2xx status;
any other status, timeout or connection error is an error, reported by kind.

Nothing runs unbounded: no request starts after the window ends, each has `--timeout`
seconds, and the whole run is cancelled at warmup + duration + timeout + 5 seconds.

Prints one JSON object: throughput (OK responses completed inside the window / window),
latency percentiles of the requests started inside it, error counts, how many questions it
used (so the next run can start after them) and its own CPU time.

The load generator shares the machine with the server, so it must be cheap: the default client
(`--client raw`) speaks HTTP/1.1 keep-alive over asyncio streams directly (~0.2 ms of CPU per
request); `--client httpx` does the same through httpx (~2.5 ms per request here), to cross-check.

    python eval/loadgen.py --url http://127.0.0.1:8000/query --questions q.jsonl -c 16 -d 15
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import resource
import sys
import time
from collections import Counter
from urllib.parse import urlsplit

import httpx

from eval.harness import percentile  # the same percentile as every other benchmark (eval/ is this script's folder)


class RawClient:
    """Minimal HTTP/1.1 keep-alive POST client: one connection per worker, reconnect after any error."""

    def __init__(self, url: str, timeout: float):
        parts = urlsplit(url)
        self.host, self.port, self.path = parts.hostname, parts.port or 80, parts.path or "/"
        self.timeout = timeout
        self.head = (f"POST {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                     "Content-Type: application/json\r\nAccept: application/json\r\nContent-Length: ").encode()
        self.conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post(self, payload: dict) -> int:
        try:
            return await asyncio.wait_for(self._post(json.dumps(payload).encode()), self.timeout)
        except BaseException:
            self.close()
            raise

    async def _post(self, body: bytes) -> int:
        if self.conn is None:
            self.conn = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.conn
        writer.write(self.head + str(len(body)).encode() + b"\r\n\r\n" + body)
        await writer.drain()
        status_line = await reader.readline()
        if not status_line:
            raise ConnectionError("server closed the connection")
        status = int(status_line.split()[1])
        length, chunked, close = None, False, False
        while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value:
                chunked = True
            elif name == "connection" and value == "close":
                close = True
        if chunked:
            while (size := int((await reader.readline()).split(b";")[0], 16)) > 0:
                await reader.readexactly(size + 2)
            await reader.readline()
        elif length is not None:
            await reader.readexactly(length)
        else:
            await reader.read()
            close = True
        if close:
            self.close()
        return status

    def close(self) -> None:
        if self.conn is not None:
            self.conn[1].close()
            self.conn = None


async def run(args) -> dict:
    with open(args.questions, encoding="utf-8") as f:
        questions = [json.loads(line) for line in f if line.strip()]
    extra = json.loads(args.extra_json) if args.extra_json else {}
    counter = itertools.count()
    t_start = time.perf_counter()
    t_measure = t_start + args.warmup
    t_end = t_measure + args.duration
    latencies: list[float] = []
    statuses: Counter = Counter()
    completed_in_window = 0
    issued = 0

    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    timeout = httpx.Timeout(args.timeout)
    async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:

        async def send_httpx(payload: dict, _raw) -> int:
            return (await client.post(args.url, json=payload)).status_code

        async def send_raw(payload: dict, raw: RawClient) -> int:
            return await raw.post(payload)

        send = send_raw if args.client == "raw" else send_httpx

        async def worker() -> None:
            raw = RawClient(args.url, args.timeout) if args.client == "raw" else None
            try:
                await work(raw)
            finally:
                if raw is not None:
                    raw.close()

        async def work(raw) -> None:
            nonlocal completed_in_window, issued
            while True:
                started = time.perf_counter()
                if started >= t_end:
                    return
                i = next(counter)
                issued += 1
                question = questions[(args.offset + i) % len(questions)]
                try:
                    code = await send({"question": question, "top_k": args.top_k, **extra}, raw)
                    status, ok = str(code), 200 <= code < 300
                except (httpx.HTTPError, OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
                    status, ok = type(exc).__name__, False
                done = time.perf_counter()
                if started >= t_measure:
                    statuses[status] += 1
                    if ok:
                        latencies.append((done - started) * 1000)
                if ok and t_measure <= done <= t_end:
                    completed_in_window += 1

        tasks = [asyncio.create_task(worker()) for _ in range(args.concurrency)]
        hard_limit = args.warmup + args.duration + args.timeout + 5
        done, pending = await asyncio.wait(tasks, timeout=hard_limit)
        for task in pending:
            task.cancel()
        if pending:
            statuses["cancelled"] += len(pending)

    if args.latencies_out:  # for pooling several runs' percentiles
        with open(args.latencies_out, "w") as f:
            json.dump([round(x, 3) for x in latencies], f)
    latencies.sort()
    ok_count = sum(n for s, n in statuses.items() if s.isdigit() and 200 <= int(s) < 300)
    errors = {s: n for s, n in statuses.items() if not (s.isdigit() and 200 <= int(s) < 300)}
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "url": args.url,
        "client": args.client,
        "concurrency": args.concurrency,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "requests": ok_count + sum(errors.values()),
        "ok": ok_count,
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "throughput_rps": round(completed_in_window / args.duration, 2),
        "completed_in_window": completed_in_window,
        "latency_ms": {
            "p50": _r(percentile(latencies, 50)),
            "p90": _r(percentile(latencies, 90)),
            "p99": _r(percentile(latencies, 99)),
            "max": _r(latencies[-1] if latencies else None),
            "mean": _r(sum(latencies) / len(latencies) if latencies else None),
        },
        "questions_used": issued,
        "questions_repeated": max(0, args.offset + issued - len(questions)),
        "loadgen_cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "wall_s": round(time.perf_counter() - t_start, 2),
    }


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--questions", required=True, help="JSON strings, one a line")
    parser.add_argument("--offset", type=int, default=0, help="first question line to use")
    parser.add_argument("-c", "--concurrency", type=int, default=1)
    parser.add_argument("-d", "--duration", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--client", default="raw", choices=["raw", "httpx"])
    parser.add_argument("--latencies-out", default=None, help="also write the OK latencies (ms) here, as JSON")
    parser.add_argument("--extra-json", default=None, help='more body fields, e.g. {"mode": "hybrid"}')
    args = parser.parse_args(argv)
    if not args.url.startswith(("http://127.0.0.1", "http://localhost", "http://[::1]")):
        parser.error("load only local servers (127.0.0.1)")
    print(json.dumps(asyncio.run(run(args))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
