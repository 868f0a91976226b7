"""Persistence of OPU leases in SQLite, with claims that are atomic across threads and processes.

The hub (claims and releases from the spawners) and the lease service (enforcement, revoke,
metrics) are different processes, so the store is a SQLite file next to the hub database,
not in-memory state. A claim reads the current leases, applies :func:`opuhub.lease.decide_claim`
and writes the result inside one ``BEGIN IMMEDIATE`` transaction: SQLite lets one writer in at
a time, so two claims can never both see a device as free. The ``device`` primary key is a
second line of defence: a second row for the same device cannot exist.

Each operation opens its own short-lived connection, so a store object can be shared between
threads and no connection outlives the transaction that needs it.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from datetime import tzinfo
from pathlib import Path

from .lease import (
    ENDED_REVOKED,
    Grant,
    Lease,
    LeasePolicy,
    Refusal,
    UsageRecord,
    decide_claim,
    usage_by_user,
)

# The schema evolves by migrations: entry N turns version N into N + 1 (SQLite's user_version).
# Append, never edit one that has shipped: a database is migrated in order, in one transaction,
# by whichever process opens it first. Databases made before versions existed are at 0, and
# migration 0 is written so that it also fits them (IF NOT EXISTS).
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (  # 0 -> 1: leases, their history, refused claims
        """CREATE TABLE IF NOT EXISTS leases (
            device      TEXT PRIMARY KEY,
            username    TEXT NOT NULL,
            server_name TEXT NOT NULL DEFAULT '',
            started_at  REAL NOT NULL,
            expires_at  REAL,
            warned_at   REAL,
            ending      TEXT,  -- why the lease is being ended (set before its server is stopped)
            UNIQUE (username, server_name)
        )""",
        """CREATE TABLE IF NOT EXISTS usage (
            id          INTEGER PRIMARY KEY AUTOINCREMENT,
            username    TEXT NOT NULL,
            server_name TEXT NOT NULL DEFAULT '',
            device      TEXT NOT NULL,
            started_at  REAL NOT NULL,
            ended_at    REAL NOT NULL,
            end_reason  TEXT NOT NULL
        )""",
        "CREATE INDEX IF NOT EXISTS usage_by_user ON usage (username, ended_at)",
        """CREATE TABLE IF NOT EXISTS refusals (
            id       INTEGER PRIMARY KEY AUTOINCREMENT,
            username TEXT NOT NULL,
            reason   TEXT NOT NULL,
            at       REAL NOT NULL
        )""",
    ),
    (  # 1 -> 2: the history, newest first (history(), backups' checks) without a full sort
        "CREATE INDEX IF NOT EXISTS usage_by_end ON usage (ended_at)",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


class LeaseStoreTooNew(RuntimeError):
    """The database was written by a newer opuhub: refusing beats misreading it."""


def migrate(db: sqlite3.Connection, path: Path) -> int:
    """Bring the database open in ``db`` (inside a write transaction) to SCHEMA_VERSION;
    returns the version it had."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise LeaseStoreTooNew(
            f"{path} has lease schema version {version}, newer than this opuhub's "
            f"{SCHEMA_VERSION}: upgrade opuhub, or restore a backup made with this version")
    for step in range(version, SCHEMA_VERSION):
        for statement in MIGRATIONS[step]:
            db.execute(statement)
        db.execute(f"PRAGMA user_version = {step + 1}")
    return version


def _lease(row: sqlite3.Row) -> Lease:
    return Lease(
        device=row["device"],
        username=row["username"],
        server_name=row["server_name"],
        started_at=row["started_at"],
        expires_at=row["expires_at"],
        warned_at=row["warned_at"],
    )


class LeaseStore:
    """The leases, their history (for accounting) and refused claims (for metrics)."""

    def __init__(self, path: str | os.PathLike, busy_timeout: float = 30.0):
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            # WAL: readers (metrics, API) never block the writer that claims a device
            db.execute("PRAGMA journal_mode=WAL")
        with self._write() as db:  # one process migrates; the others wait, then find it done
            migrate(db, self.path)
        with contextlib.suppress(OSError):
            os.chmod(self.path, 0o600)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # isolation_level=None: we issue BEGIN ourselves, so the lock is taken up front
        db = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            yield db
        finally:
            db.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    # --- reads ---------------------------------------------------------------------------------

    def active(self) -> list[Lease]:
        with self._connect() as db:
            rows = db.execute("SELECT * FROM leases ORDER BY device").fetchall()
        return [_lease(row) for row in rows]

    def lease_for(self, username: str, server_name: str = "") -> Lease | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT * FROM leases WHERE username = ? AND server_name = ?",
                (username, server_name),
            ).fetchone()
        return _lease(row) if row else None

    def lease_on(self, device: str) -> Lease | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM leases WHERE device = ?", (device,)).fetchone()
        return _lease(row) if row else None

    def usage_records(self, username: str | None = None, since: float | None = None):
        """Finished and ongoing lease intervals, optionally for one user / ending after ``since``."""
        query = "SELECT username, started_at, ended_at FROM usage WHERE 1=1"
        args: list = []
        if username is not None:
            query += " AND username = ?"
            args.append(username)
        if since is not None:
            query += " AND ended_at >= ?"
            args.append(since)
        with self._connect() as db:
            finished = db.execute(query, args).fetchall()
            ongoing = db.execute("SELECT username, started_at FROM leases").fetchall()
        records = [UsageRecord(r["username"], r["started_at"], r["ended_at"]) for r in finished]
        records += [
            UsageRecord(r["username"], r["started_at"], None)
            for r in ongoing
            if username is None or r["username"] == username
        ]
        return records

    def seconds_by_user(self, now: float | None = None) -> dict[str, float]:
        return usage_by_user(self.usage_records(), time.time() if now is None else now)

    def refusal_counts(self) -> dict[str, int]:
        with self._connect() as db:
            rows = db.execute("SELECT reason, COUNT(*) AS n FROM refusals GROUP BY reason").fetchall()
        return {row["reason"]: row["n"] for row in rows}

    def history(self, limit: int = 100) -> list[dict]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT * FROM usage ORDER BY ended_at DESC LIMIT ?", (int(limit),)
            ).fetchall()
        return [dict(row) for row in rows]

    # --- writes --------------------------------------------------------------------------------

    def claim(
        self,
        username: str,
        server_name: str,
        devices: Sequence[str],
        policy: LeasePolicy,
        now: float | None = None,
        requested_duration: float | None = None,
        tz: tzinfo | None = None,
    ) -> Grant | Refusal:
        """Atomically decide and record a claim; refusals are counted for the metrics."""
        now = time.time() if now is None else now
        with self._write() as db:
            leases = [_lease(row) for row in db.execute("SELECT * FROM leases")]
            rows = db.execute(
                "SELECT username, started_at, ended_at FROM usage WHERE username = ?",
                (username,),
            ).fetchall()
            usage = [UsageRecord(r["username"], r["started_at"], r["ended_at"]) for r in rows]
            usage += [
                UsageRecord(lease.username, lease.started_at, None)
                for lease in leases
                if lease.username == username
            ]
            decision = decide_claim(
                username,
                server_name,
                devices,
                leases,
                usage,
                policy,
                now,
                requested_duration=requested_duration,
                tz=tz,
            )
            if isinstance(decision, Grant):
                if not decision.renewed:
                    db.execute(
                        "INSERT INTO leases (device, username, server_name, started_at, expires_at)"
                        " VALUES (?, ?, ?, ?, ?)",
                        (decision.device, username, server_name, now, decision.expires_at),
                    )
            else:
                db.execute(
                    "INSERT INTO refusals (username, reason, at) VALUES (?, ?, ?)",
                    (username, decision.reason, now),
                )
        return decision

    def release(
        self, username: str, server_name: str, reason: str, now: float | None = None
    ) -> Lease | None:
        """End the lease held by this server, if any; returns the lease that ended."""
        return self._end(
            "username = ? AND server_name = ?", (username, server_name), reason, now
        )

    def revoke(self, device: str, reason: str = ENDED_REVOKED, now: float | None = None):
        """End whatever lease is on ``device`` (admin revoke, expiry, orphan cleanup)."""
        return self._end("device = ?", (device,), reason, now)

    def release_if_unchanged(self, lease: Lease, reason: str, now: float | None = None):
        """End ``lease`` only if it is still the same lease (same holder and start time), so
        an enforcer acting on a stale snapshot never ends a newer lease on the same device."""
        return self._end(
            "device = ? AND username = ? AND server_name = ? AND started_at = ?",
            (lease.device, lease.username, lease.server_name, lease.started_at),
            reason,
            now,
        )

    def _end(self, where: str, args: tuple, reason: str, now: float | None) -> Lease | None:
        now = time.time() if now is None else now
        with self._write() as db:
            row = db.execute(f"SELECT * FROM leases WHERE {where}", args).fetchone()
            if row is None:
                return None
            lease = _lease(row)
            # an enforcer that stopped the server recorded why; the stop hook's reason is generic
            reason = row["ending"] or reason
            db.execute("DELETE FROM leases WHERE device = ?", (lease.device,))
            db.execute(
                "INSERT INTO usage (username, server_name, device, started_at, ended_at,"
                " end_reason) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    lease.username,
                    lease.server_name,
                    lease.device,
                    lease.started_at,
                    max(now, lease.started_at),
                    reason,
                ),
            )
        return lease

    def mark_ending(self, lease: Lease, reason: str) -> bool:
        """Record why ``lease`` is about to end (expired, revoked) before its server is stopped:
        the device stays leased until the server is really gone, so no one else gets it while
        the old container may still use it."""
        with self._write() as db:
            cursor = db.execute(
                "UPDATE leases SET ending = ? WHERE device = ? AND username = ? AND started_at = ?",
                (reason, lease.device, lease.username, lease.started_at),
            )
            return cursor.rowcount == 1

    def mark_warned(self, device: str, at: float | None = None) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE leases SET warned_at = ? WHERE device = ?",
                (time.time() if at is None else at, device),
            )
