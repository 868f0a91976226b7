"""The SQLite lease store: atomic claims, release, accounting, refusal counts."""

import multiprocessing
import threading

import pytest

from opuhub.lease import ENDED_EXPIRED, ENDED_STOPPED, Grant, LeasePolicy, Refusal
from opuhub.lease_store import LeaseStore

DEVICES = ["/dev/opu0"]
POLICY = LeasePolicy(max_duration=600)


@pytest.fixture
def store(tmp_path):
    return LeaseStore(tmp_path / "leases.sqlite")


def test_claim_release_and_accounting(store):
    grant = store.claim("alice", "", DEVICES, POLICY, now=1000.0)
    assert isinstance(grant, Grant) and grant.expires_at == 1600.0
    assert [lease.username for lease in store.active()] == ["alice"]
    assert store.lease_for("alice").device == "/dev/opu0"
    assert store.lease_on("/dev/opu0").username == "alice"

    refusal = store.claim("bob", "", DEVICES, POLICY, now=1010.0)
    assert isinstance(refusal, Refusal) and "alice" in refusal.message
    assert store.refusal_counts() == {"busy": 1}

    assert store.release("bob", "", ENDED_STOPPED, now=1020.0) is None  # not bob's lease
    ended = store.release("alice", "", ENDED_STOPPED, now=1100.0)
    assert ended.device == "/dev/opu0"
    assert store.active() == []
    assert store.seconds_by_user(now=2000.0) == {"alice": 100.0}
    assert store.history()[0]["end_reason"] == ENDED_STOPPED

    # the device is free again
    assert store.claim("bob", "", DEVICES, POLICY, now=1200.0).device == "/dev/opu0"
    assert store.seconds_by_user(now=1250.0) == {"alice": 100.0, "bob": 50.0}


def test_the_store_survives_reopening(tmp_path):
    path = tmp_path / "leases.sqlite"
    LeaseStore(path).claim("alice", "x", DEVICES, POLICY, now=1.0)
    assert LeaseStore(path).lease_for("alice", "x").started_at == 1.0
    assert (path.stat().st_mode & 0o777) == 0o600


def test_revoke_and_release_if_unchanged(store):
    store.claim("alice", "", DEVICES, POLICY, now=0.0)
    stale = store.lease_on("/dev/opu0")
    store.revoke("/dev/opu0", now=5.0)
    store.claim("bob", "", DEVICES, POLICY, now=6.0)
    # an enforcer holding the stale snapshot of alice's lease must not end bob's lease
    assert store.release_if_unchanged(stale, ENDED_EXPIRED) is None
    assert store.lease_on("/dev/opu0").username == "bob"
    store.mark_warned("/dev/opu0", at=7.0)
    assert store.lease_on("/dev/opu0").warned_at == 7.0


def _claim_in_thread(store, name, results, barrier):
    barrier.wait()
    results[name] = store.claim(name, "", DEVICES, POLICY)


def test_fifty_concurrent_claims_in_threads_yield_one_holder(store):
    results = {}
    barrier = threading.Barrier(50)
    threads = [
        threading.Thread(target=_claim_in_thread, args=(store, f"user{i}", results, barrier))
        for i in range(50)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [name for name, result in results.items() if isinstance(result, Grant)]
    assert len(winners) == 1
    assert [lease.username for lease in store.active()] == winners
    assert store.refusal_counts() == {"busy": 49}


def _claim_in_process(path, name, barrier, queue):
    barrier.wait()
    result = LeaseStore(path).claim(name, "", DEVICES, POLICY)
    queue.put((name, isinstance(result, Grant)))


def test_fifty_concurrent_claims_in_processes_yield_one_holder(tmp_path):
    # the hub and the lease service are separate processes: the claim must be atomic there too
    path = tmp_path / "leases.sqlite"
    LeaseStore(path)
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(50)
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=_claim_in_process, args=(path, f"p{i}", barrier, queue))
        for i in range(50)
    ]
    for proc in procs:
        proc.start()
    results = dict(queue.get(timeout=60) for _ in procs)
    for proc in procs:
        proc.join(timeout=30)
    assert sum(results.values()) == 1
    assert len(LeaseStore(path).active()) == 1
