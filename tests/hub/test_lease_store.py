"""The SQLite lease store: atomic claims, release, accounting, refusal counts."""

import multiprocessing
import sqlite3
import threading

import pytest

from opuhub import lease_store
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


# --- schema versions and migrations ------------------------------------------------------------

# the tables as the first releases created them, before the schema had a version
UNVERSIONED = """
CREATE TABLE leases (device TEXT PRIMARY KEY, username TEXT NOT NULL,
    server_name TEXT NOT NULL DEFAULT '', started_at REAL NOT NULL, expires_at REAL,
    warned_at REAL, ending TEXT, UNIQUE (username, server_name));
CREATE TABLE usage (id INTEGER PRIMARY KEY AUTOINCREMENT, username TEXT NOT NULL,
    server_name TEXT NOT NULL DEFAULT '', device TEXT NOT NULL, started_at REAL NOT NULL,
    ended_at REAL NOT NULL, end_reason TEXT NOT NULL);
CREATE INDEX usage_by_user ON usage (username, ended_at);
CREATE TABLE refusals (id INTEGER PRIMARY KEY AUTOINCREMENT, username TEXT NOT NULL,
    reason TEXT NOT NULL, at REAL NOT NULL);
INSERT INTO leases (device, username, started_at) VALUES ('/dev/opu0', 'ann', 100.0);
INSERT INTO usage (username, device, started_at, ended_at, end_reason)
    VALUES ('bob', '/dev/opu0', 10.0, 70.0, 'stopped');
"""


def user_version(path) -> int:
    with sqlite3.connect(path) as db:
        return db.execute("PRAGMA user_version").fetchone()[0]


def test_a_new_store_is_at_the_latest_schema_version(tmp_path):
    LeaseStore(tmp_path / "new.sqlite")
    assert user_version(tmp_path / "new.sqlite") == lease_store.SCHEMA_VERSION >= 2


def test_a_database_from_before_versions_is_migrated_with_its_data(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript(UNVERSIONED)
    store = LeaseStore(path)
    assert user_version(path) == lease_store.SCHEMA_VERSION
    assert [(lease.device, lease.username) for lease in store.active()] == [("/dev/opu0", "ann")]
    assert store.history()[0]["username"] == "bob"
    with sqlite3.connect(path) as db:
        indexes = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert "usage_by_end" in indexes  # migration 1 -> 2 ran
    LeaseStore(path)  # opening again changes nothing
    assert user_version(path) == lease_store.SCHEMA_VERSION


def test_a_newer_database_is_refused_with_what_to_do(tmp_path):
    path = tmp_path / "future.sqlite"
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {lease_store.SCHEMA_VERSION + 1}")
    with pytest.raises(lease_store.LeaseStoreTooNew, match="upgrade opuhub"):
        LeaseStore(path)


def test_a_failing_migration_leaves_the_database_as_it_was(tmp_path, monkeypatch):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript(UNVERSIONED)
    broken = (*lease_store.MIGRATIONS, ("CREATE TABLE x (a)", "THIS IS NOT SQL"))
    monkeypatch.setattr(lease_store, "MIGRATIONS", broken)
    monkeypatch.setattr(lease_store, "SCHEMA_VERSION", len(broken))
    with pytest.raises(sqlite3.OperationalError):
        LeaseStore(path)
    assert user_version(path) == 0  # all or nothing: not even the earlier steps stayed
    with sqlite3.connect(path) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "x" not in tables
