"""Per-account workshop passwords, kept as salted scrypt hashes in a 0600 SQLite file.

Each workshop account gets a password of its own (``python -m opuhub.accounts create``), so an
attendee cannot log in as another one. Only a hash is stored: whoever reads the file learns no
password. The file lives in the hub's state directory; the accounts command writes it, the hub's
:class:`~opuhub.workshop_auth.WorkshopAuthenticator` reads it at every login (no restart needed,
and the passwords survive one).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterable
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

FILE_NAME = "workshop-accounts.sqlite"
# a password longer than this is refused without hashing it (no CPU spent on huge inputs)
MAX_PASSWORD_LENGTH = 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS passwords (
    name TEXT PRIMARY KEY,
    salt BLOB NOT NULL,
    hash BLOB NOT NULL,
    n INTEGER NOT NULL, r INTEGER NOT NULL, p INTEGER NOT NULL,
    issued REAL NOT NULL
)
"""


@dataclass(frozen=True)
class ScryptCost:
    """scrypt's work factors, stored with each hash so they can be raised later.

    The default costs about 16 MiB and some 50 ms of one core per hash: cheap for a room of
    attendees logging in, expensive for anyone guessing offline."""

    n: int = 2**14
    r: int = 8
    p: int = 1


DEFAULT_COST = ScryptCost()


def hash_password(password: str, salt: bytes, cost: ScryptCost = DEFAULT_COST) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=cost.n, r=cost.r, p=cost.p,
                          maxmem=256 * cost.n * cost.r, dklen=32)


def new_hash(password: str, cost: ScryptCost = DEFAULT_COST) -> tuple[bytes, bytes]:
    """(salt, hash) for ``password`` with a fresh random salt."""
    salt = secrets.token_bytes(16)
    return salt, hash_password(password, salt, cost)


# compared against when a name has no password, so unknown names cost as much as known ones
_DUMMY_SALT = secrets.token_bytes(16)
_DUMMY_HASH = hash_password(secrets.token_hex(16), _DUMMY_SALT)


def _make_private(path: Path) -> None:
    """Create ``path`` with mode 0600 before SQLite does (it would use the umask)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    os.chmod(path, 0o600)


class PasswordStore:
    """The per-account password hashes in one SQLite file (one short connection per call:
    the accounts command and the hub use the file at the same time)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)

    @contextmanager
    def _db(self, write: bool = False):
        if write or not self.path.exists():
            _make_private(self.path)
        with closing(sqlite3.connect(self.path, timeout=30, isolation_level=None)) as db:
            if write:
                db.execute("BEGIN IMMEDIATE")  # one writer at a time: no password issued twice
            try:
                db.execute(_SCHEMA)
                yield db
                if write:
                    db.execute("COMMIT")
            except BaseException:
                if write:
                    db.execute("ROLLBACK")
                raise

    def create(self) -> PasswordStore:
        with self._db(write=True):
            pass
        return self

    def names(self) -> set[str]:
        with self._db() as db:
            return {row[0] for row in db.execute("SELECT name FROM passwords")}

    def has(self, name: str) -> bool:
        with self._db() as db:
            return db.execute("SELECT 1 FROM passwords WHERE name = ?", (name,)).fetchone() is not None

    def issue(self, names: Iterable[str], make_password: Callable[[], str],
              replace: bool = False, cost: ScryptCost = DEFAULT_COST) -> dict[str, str]:
        """Give each name a new password from ``make_password``; returns {name: password}.

        Names that have one already keep it unless ``replace``: re-running a command never
        silently changes a password an attendee is using."""
        issued = {}
        with self._db(write=True) as db:
            existing = {row[0] for row in db.execute("SELECT name FROM passwords")}
            for name in names:
                if name in issued or (name in existing and not replace):
                    continue
                password = make_password()
                salt, digest = new_hash(password, cost)
                db.execute(
                    "INSERT OR REPLACE INTO passwords (name, salt, hash, n, r, p, issued) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (name, salt, digest, cost.n, cost.r, cost.p, time.time()),
                )
                issued[name] = password
        return issued

    def verify(self, name: str, password: str) -> bool:
        """Whether ``password`` is ``name``'s. Takes as long for a name without a password."""
        if not isinstance(password, str) or len(password) > MAX_PASSWORD_LENGTH:
            return False
        with self._db() as db:
            row = db.execute("SELECT salt, hash, n, r, p FROM passwords WHERE name = ?",
                             (name,)).fetchone()
        if row is None:
            hmac.compare_digest(hash_password(password, _DUMMY_SALT), _DUMMY_HASH)
            return False
        salt, digest, n, r, p = row
        return hmac.compare_digest(hash_password(password, salt, ScryptCost(n, r, p)), digest)

    def delete(self, names: Iterable[str]) -> int:
        with self._db(write=True) as db:
            return sum(db.execute("DELETE FROM passwords WHERE name = ?", (name,)).rowcount
                       for name in names)
