"""`rag serve --workers N` shares one rate limit, one key-guess limit and one reload (issue 21 item 4).

Unit tests of the shared store (api.worker_share): two `SharedBuckets` on one file share tokens, stay
bounded, refill, and a store that fails is a clear error at start-up and a logged fallback afterwards;
`Workers` signals its live siblings and never waits for a dead one. Live, against one
`rag serve --workers 2` started once for the module (rate limit 10/min, a key with 4 guesses/min, the
watcher slowed to an hour so only a reload can move a worker): 40 requests from one address over both
workers let 10 through (before: 20), wrong keys the same, and one `POST /admin/reload` moves both
workers to a rebuilt index before it answers. Each live test uses its own loopback address
(127.0.0.x are distinct peers on Linux), so one test's buckets never meet another's.
"""

from __future__ import annotations

import logging
import math
import os
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from api.limits import TokenBuckets
from api.settings import ServerSettings
from api.worker_share import RuntimeFolder, SharedBuckets, SharedStoreError, Workers, buckets_for, open_workers, store_in
from rag.service import Service
from tests.api.test_workers import start_workers, stop
from tests.reliability_support import settings_for, write_tiny_seeds

KEY = "the-workers-share-key"
RATE = 10  # RAG_RATE_LIMIT_PER_MINUTE
GUESSES = 4  # RAG_KEY_GUESSES_PER_MINUTE
REQUESTS = 40


# --- the shared buckets ---------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path):
    folder = RuntimeFolder()
    try:
        yield folder.store
    finally:
        folder.close()


def test_the_runtime_folder_is_private_and_removed_at_close():
    folder = RuntimeFolder()
    assert stat.S_IMODE(folder.path.stat().st_mode) == 0o700 and folder.store.is_file()
    folder.close()
    assert not folder.path.exists()


def test_two_instances_on_one_store_share_the_tokens(store):
    now = [100.0]
    one, two = (SharedBuckets(store, "rate", 10, clock=lambda: now[0]) for _ in range(2))
    allowed = [b.take("1.2.3.4") == 0 for _ in range(10) for b in (one, two)]
    assert allowed.count(True) == 10  # separate TokenBuckets would let 20 through
    assert one.take("1.2.3.4") == pytest.approx(6.0) and two.empty("1.2.3.4") == pytest.approx(6.0)
    assert one.take("5.6.7.8") == 0  # another client has its own bucket
    other_kind = SharedBuckets(store, "key_guesses", 10, clock=lambda: now[0])
    assert other_kind.take("1.2.3.4") == 0  # another kind of limit too
    assert one.take("1.2.3.4", 11) == math.inf and one.capacity == 10


def test_shared_buckets_refill_as_token_buckets_do(store):
    now = [0.0]
    shared, memory = SharedBuckets(store, "rate", 60, clock=lambda: now[0]), TokenBuckets(60, clock=lambda: now[0])
    for buckets in (shared, memory):
        now[0] = 0.0
        assert [buckets.take("c", 20) for _ in range(4)] == [0, 0, 0, pytest.approx(20.0)]  # 60 of burst, then wait
        now[0] = 10.0  # one token a second
        assert buckets.take("c", 10) == 0 and buckets.take("c") == pytest.approx(1.0)
        now[0] = 1000.0
        assert buckets.empty("c") == 0 and buckets.take("c", 60) == 0  # refilled to the burst, never past it
        assert buckets.take("c") == pytest.approx(1.0)


def test_shared_buckets_keep_at_most_max_clients_dropping_the_least_recently_seen(store):
    now = [0.0]
    one, two = (SharedBuckets(store, "rate", 5, max_clients=3, clock=lambda: now[0]) for _ in range(2))
    for i, client in enumerate(["a", "b", "c", "d", "e"]):
        now[0] = float(i)
        (one if i % 2 else two).take(client, 5)  # each empties its bucket
    assert len(one) == len(two) == 3
    now[0] = 5.0
    assert one.take("a") == 0 and two.take("b") == 0  # dropped: a fresh, full bucket
    assert one.take("e") > 0  # kept: still empty
    assert len(one) == 3


def test_concurrent_takes_from_separate_connections_never_overspend(store):
    instances = [SharedBuckets(store, "rate", 50) for _ in range(4)]
    allowed = []

    def spend(buckets):
        allowed.append(sum(1 for _ in range(40) if buckets.take("crowd") == 0))

    threads = [threading.Thread(target=spend, args=(b,)) for b in instances]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sum(allowed) in (50, 51)  # 160 attempts, a burst of 50 (+1 if a second of refill passed)


def test_a_store_that_cannot_be_opened_stops_the_start_up(tmp_path):
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(SharedStoreError, match="cannot open the workers' shared store"):
        SharedBuckets(junk, "rate", 10)
    with pytest.raises(SharedStoreError):
        SharedBuckets(tmp_path / "no-such-folder" / "share.sqlite3", "rate", 10)


def test_a_store_that_fails_later_falls_back_to_this_workers_buckets_with_a_warning(store, caplog):
    buckets = SharedBuckets(store, "rate", 3)
    assert buckets.take("c") == 0
    buckets._db.close()  # the store stops answering (a closed, lost or corrupted file fails the same way)
    with caplog.at_level(logging.WARNING, logger="api.worker_share"):
        outcomes = [buckets.take("c") for _ in range(4)]
    assert outcomes[:3] == [0, 0, 0] and outcomes[3] > 0  # still limited, by this worker alone; never an exception
    assert buckets.empty("c") > 0
    assert "counts on its own" in caplog.text


def test_a_corrupted_store_is_a_fallback_not_an_error(store, caplog):
    buckets = SharedBuckets(store, "rate", 3)
    assert buckets.take("c") == 0
    buckets._db.close()
    for path in store.parent.iterdir():
        path.write_bytes(os.urandom(8192))
    buckets._db = sqlite3.connect(str(store), isolation_level=None, check_same_thread=False)
    with caplog.at_level(logging.WARNING, logger="api.worker_share"):
        assert buckets.take("c") == 0
    assert "counts on its own" in caplog.text


def test_one_process_keeps_its_own_buckets_and_workers_get_the_shared_ones(store):
    assert isinstance(buckets_for(ServerSettings(), "rate", 10), TokenBuckets)
    assert isinstance(buckets_for(ServerSettings(workers_dir=store.parent), "rate", 10), SharedBuckets)


def test_a_worker_that_cannot_open_the_store_keeps_its_own_buckets_with_a_warning(tmp_path, caplog):
    gone = tmp_path / "removed-runtime-folder"
    with caplog.at_level(logging.WARNING, logger="api.worker_share"):
        assert isinstance(buckets_for(ServerSettings(workers_dir=gone), "rate", 10), TokenBuckets)
        assert open_workers(gone) is None
    assert caplog.text.count("cannot open the workers' shared store") == 2


# --- the workers' records --------------------------------------------------------------------------

# os.write, not print: a signal landing while print("ready") still held stdout's buffer lock made the handler's
# print raise "reentrant call inside BufferedWriter" and killed the sibling (seen once in CI)
SIBLING = """
import os, signal, time
signal.signal(signal.SIGUSR1, lambda *_: os.write(1, b"reload asked\\n"))
os.write(1, b"ready\\n")
time.sleep(30)
"""


def test_a_reload_signals_running_siblings_waits_bounded_and_never_for_the_dead(store):
    me = Workers(store)
    me.record("old")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    Workers(store, pid=dead.pid).record("old")  # a worker that died without removing its record
    reused = Workers(store, pid=os.getppid())
    reused.started = "1"  # the pid now names another process than the one that recorded it
    reused.record("old")
    sibling = subprocess.Popen([sys.executable, "-c", SIBLING], stdout=subprocess.PIPE, text=True)
    try:
        assert sibling.stdout.readline().strip() == "ready"
        Workers(store, pid=sibling.pid).record("old")  # alive, but it never reloads
        started = time.monotonic()
        outcome = me.bring_to("new", timeout=1.0)
        took = time.monotonic() - started
        assert outcome == {"total": 2, "on_index": 1, "behind": [sibling.pid]}
        assert 1.0 <= took < 3.0  # bounded by the timeout; the dead and the reused pid were not waited for
        assert sibling.stdout.readline().strip() == "reload asked"  # SIGUSR1 reached it
        assert set(me.live()) == {me.pid, sibling.pid}  # the stale records are gone
        Workers(store, pid=sibling.pid).record("new")
        assert me.bring_to("new", timeout=5.0) == {"total": 2, "on_index": 2, "behind": []}
    finally:
        sibling.kill()
        sibling.wait()


# --- live: one `rag serve --workers 2` --------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory, encoders):
    root = tmp_path_factory.mktemp("workers-share")
    seeds = write_tiny_seeds(root / "seeds")
    first = Service.open(settings_for(seeds, root / "index"), encoders).snapshot.id
    runtime_parent = root / "tmp"
    runtime_parent.mkdir()
    with pytest.MonkeyPatch.context() as patch:  # the workers' environment (server_env copies os.environ)
        patch.setenv("RAG_RATE_LIMIT_PER_MINUTE", str(RATE))
        patch.setenv("RAG_API_KEY", KEY)
        patch.setenv("RAG_KEY_GUESSES_PER_MINUTE", str(GUESSES))
        patch.setenv("RAG_WATCH_INTERVAL_SECONDS", "3600")  # only a reload moves a worker to a new build here
        patch.setenv("TMPDIR", str(runtime_parent))  # where the supervisor makes its runtime folder
        process, base = start_workers(seeds, root / "index", root / "serve.log")
    try:
        yield {"process": process, "base": base, "seeds": seeds, "index": root / "index", "first": first,
               "runtime_parent": runtime_parent, "log": root / "serve.log"}
    finally:
        stop(process)


def _get_from(address: str, url: str, headers: dict) -> tuple[int, str, str]:
    """One request on a fresh connection from `address`: (status, worker pid, error text)."""
    transport = httpx.HTTPTransport(local_address=address)
    with httpx.Client(transport=transport, timeout=30) as client:
        response = client.get(url, headers={"Connection": "close", **headers})
    error = response.json().get("error", "") if response.status_code != 200 else ""
    return response.status_code, response.headers.get("x-rag-worker", ""), error or ""


def _burst(base: str, addresses: list[str], headers: dict, least_per_worker: int):
    """REQUESTS concurrent requests to /documents from the first address whose burst reached both workers with at
    least `least_per_worker` each (the kernel decides which worker accepts a connection); their outcomes."""
    for address in addresses:
        started = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            outcomes = list(pool.map(lambda _: _get_from(address, base + "/documents", headers), range(REQUESTS)))
        elapsed = time.monotonic() - started
        per_worker = {pid: sum(1 for o in outcomes if o[1] == pid) for pid in {o[1] for o in outcomes}}
        if len(per_worker) == 2 and min(per_worker.values()) >= least_per_worker:
            return outcomes, per_worker, elapsed
    pytest.fail(f"no burst reached both workers with {least_per_worker} requests each: {per_worker}")


@pytest.mark.slow
def test_live_one_rate_limit_for_both_workers(served):
    outcomes, per_worker, elapsed = _burst(served["base"], ["127.0.0.2", "127.0.0.3", "127.0.0.4"], {"X-API-Key": KEY}, 2)
    statuses = [status for status, _, _ in outcomes]
    allowed = statuses.count(200)
    print(f"\n{REQUESTS} requests at {RATE}/min over workers {per_worker} in {elapsed:.2f} s: {allowed} allowed, "
          f"{statuses.count(429)} got 429")
    assert "" not in per_worker  # every response names its worker
    assert set(statuses) <= {200, 429}
    assert RATE <= allowed <= RATE + math.ceil(elapsed * RATE / 60)  # before: 20 (10 in each worker)


@pytest.mark.slow
def test_live_one_key_guess_limit_for_both_workers(served):
    outcomes, per_worker, elapsed = _burst(
        served["base"], ["127.0.0.5", "127.0.0.6", "127.0.0.7"], {"X-API-Key": "a wrong guess"}, GUESSES + 1
    )
    wrong = sum(1 for status, _, _ in outcomes if status == 401)
    guess_limited = sum(1 for status, _, error in outcomes if status == 429 and "wrong API keys" in error)
    rate_limited = sum(1 for status, _, error in outcomes if status == 429 and "rate limit" in error)
    print(f"\n{REQUESTS} wrong keys at {GUESSES} guesses/min over workers {per_worker}: {wrong} answered 401, "
          f"{guess_limited} refused as guessing, {rate_limited} by the rate limit")
    assert GUESSES <= wrong <= GUESSES + math.ceil(elapsed * GUESSES / 60)  # before: 8 (4 in each worker)
    assert wrong + guess_limited + rate_limited == REQUESTS
    assert RATE <= wrong + guess_limited <= RATE + math.ceil(elapsed * RATE / 60)  # the shared rate limit let 10 in


def _fresh_ready(base: str) -> tuple[str, str]:
    with httpx.Client(timeout=10) as client:
        response = client.get(base + "/ready", headers={"Connection": "close"})
    assert response.status_code == 200
    return response.headers.get("x-rag-worker", ""), response.json()["index_id"]


def _ready_over_both_workers(base: str, rounds: int = 6) -> dict[str, set[str]]:
    """worker pid -> index ids seen, over `rounds` x 8 concurrent /ready calls on fresh connections."""
    seen: dict[str, set[str]] = {}
    with ThreadPoolExecutor(8) as pool:
        for _ in range(rounds):
            for pid, index_id in pool.map(lambda _: _fresh_ready(base), range(8)):
                seen.setdefault(pid, set()).add(index_id)
    return seen


@pytest.mark.slow
def test_live_y_one_reload_brings_every_worker_to_the_new_index(served, encoders):
    base = served["base"]
    before = _ready_over_both_workers(base, rounds=2)
    assert all(ids == {served["first"]} for ids in before.values()), before
    (served["seeds"] / "added.txt").write_text("Trotsky wrote about the uneven and combined development of Russia.\n",
                                                encoding="utf-8")
    new = Service.open(settings_for(served["seeds"], served["index"]), encoders).snapshot.id  # `rag index`, in process
    assert new != served["first"]
    assert all(ids == {served["first"]} for ids in _ready_over_both_workers(base, rounds=1).values())  # no watcher moved them
    started = time.monotonic()
    reload = httpx.post(base + "/admin/reload", headers={"X-API-Key": KEY}, timeout=60)
    took = time.monotonic() - started
    assert reload.status_code == 200, reload.text
    body = reload.json()
    seen = _ready_over_both_workers(base)
    print(f"\nPOST /admin/reload answered in {took:.2f} s: {body['workers']}; "
          f"then {sum(1 for _ in seen)} workers over 48 /ready calls saw {seen}")
    assert body["index_id"] == new and body["changed"] is True
    assert body["workers"] == {"total": 2, "on_index": 2, "behind": []}  # before: no such field
    assert len(seen) == 2 and "" not in seen
    assert all(ids == {new} for ids in seen.values()), seen  # before: 9 of 12 calls saw the new index, 3 the old


@pytest.mark.slow
def test_live_zz_the_runtime_folder_is_private_and_removed_when_the_server_stops(served):
    folders = list(served["runtime_parent"].glob("rag-workers-*"))
    assert len(folders) == 1 and stat.S_IMODE(folders[0].stat().st_mode) == 0o700
    assert store_in(folders[0]).is_file()
    stop(served["process"])
    assert served["process"].returncode == 0, served["log"].read_text()[-2000:]
    assert not list(served["runtime_parent"].glob("rag-workers-*"))
