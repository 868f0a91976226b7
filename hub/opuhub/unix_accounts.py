"""One Unix account per hub user, for local single-user servers run by a root hub (as TLJH does).

Account ``opu-<name>`` (:func:`opuhub.usernames.unix_account`): no password, no login shell,
its own group, home in the hub's homes directory. The GECOS field records the hub user it
belongs to, so the hub never adopts an account it did not create (``opu-root`` made by
someone else stays theirs: the spawn is refused).
"""

from __future__ import annotations

import pwd
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from . import usernames

GECOS_PREFIX = "OPU Hub user "
NOLOGIN = "/usr/sbin/nologin"
_creating = threading.Lock()


class AccountError(RuntimeError):
    """The account could not be made or is not ours; the message says why."""


@dataclass(frozen=True)
class Account:
    name: str  # the Unix name
    uid: int
    gid: int
    home: Path


def gecos(hub_user: str) -> str:
    return GECOS_PREFIX + hub_user


def useradd_command(hub_user: str, home: Path) -> list[str]:
    """The ``useradd`` call for ``hub_user`` (pure: tested without creating anyone)."""
    return [
        "useradd",
        "--no-create-home",  # the hub creates the home (maybe a size-limited filesystem)
        "--home-dir", str(home),
        "--shell", NOLOGIN,
        "--user-group",
        "--comment", gecos(hub_user),
        "--key", "UID_MIN=20000",  # away from people's accounts (1000+) and containers' 1000
        usernames.unix_account(hub_user),
    ]


def _account(entry: pwd.struct_passwd) -> Account:
    return Account(entry.pw_name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir))


def lookup(hub_user: str) -> Account | None:
    """The existing account of ``hub_user``; AccountError if that name belongs to someone else."""
    unix = usernames.unix_account(hub_user)
    try:
        entry = pwd.getpwnam(unix)
    except KeyError:
        return None
    if entry.pw_gecos != gecos(hub_user) or entry.pw_uid == 0:
        raise AccountError(
            f"the Unix account {unix} exists but was not created by OPU Hub for {hub_user!r}; "
            "an admin must rename or remove it")
    return _account(entry)


def ensure(hub_user: str, home: Path) -> Account:
    """The account of ``hub_user``, created on first use."""
    with _creating:  # useradd locks /etc/passwd and fails, not waits, when it is held
        account = lookup(hub_user)
        if account is not None:
            return account
        done = subprocess.run(useradd_command(hub_user, home), capture_output=True, text=True,
                              timeout=60)
        account = lookup(hub_user)
        if account is None:
            raise AccountError(f"useradd failed for {hub_user!r}: {done.stderr.strip()[:300]}")
        return account


def remove(hub_user: str) -> bool:
    """Delete the account (files stay); True if it existed. For admins and tests."""
    if lookup(hub_user) is None:
        return False
    with _creating:
        done = subprocess.run(["userdel", usernames.unix_account(hub_user)], capture_output=True,
                              text=True, timeout=60)
    if done.returncode != 0:
        raise AccountError(f"userdel failed for {hub_user!r}: {done.stderr.strip()[:300]}")
    return True
