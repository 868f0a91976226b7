"""Unix accounts of a root hub's users: the useradd call, and never adopting a stranger's."""

import os
import subprocess
from pathlib import Path

import pytest

from opuhub import unix_accounts, usernames


def test_useradd_command():
    command = unix_accounts.useradd_command("alice", Path("/srv/homes/alice"))
    assert command[0] == "useradd" and command[-1] == "opu-alice"
    assert "--no-create-home" in command
    assert command[command.index("--shell") + 1] == unix_accounts.NOLOGIN
    assert command[command.index("--comment") + 1] == "OPU Hub user alice"


def test_invalid_names_never_reach_useradd():
    for bad in ("../root", "a b", "root\n", "ｒoot", ""):
        with pytest.raises(usernames.InvalidUsername):
            unix_accounts.useradd_command(bad, Path("/x"))


@pytest.mark.skipif(os.geteuid() != 0, reason="creates a Unix account")
def test_an_account_the_hub_did_not_create_is_not_adopted():
    name = "zz-squatter"
    subprocess.run(["useradd", "--no-create-home", usernames.unix_account(name)], check=True)
    try:
        with pytest.raises(unix_accounts.AccountError, match="not created by OPU Hub"):
            unix_accounts.ensure(name, Path("/nonexistent"))
    finally:
        subprocess.run(["userdel", usernames.unix_account(name)], check=False)


@pytest.mark.skipif(os.geteuid() != 0, reason="creates a Unix account")
def test_ensure_creates_once_and_reuses():
    name = "zz-created"
    try:
        first = unix_accounts.ensure(name, Path("/nonexistent/home"))
        again = unix_accounts.ensure(name, Path("/nonexistent/home"))
        assert first == again and first.uid >= 20000 and first.name == "opu-zz-created"
    finally:
        unix_accounts.remove(name)
