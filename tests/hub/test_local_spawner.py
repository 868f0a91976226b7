"""Pure parts of the local-process spawner: who may start a server, how it is launched."""

from pathlib import Path

from opuhub.local_spawner import refusal, sandbox_command
from opuhub.unix_accounts import Account


def test_admins_may_always_start():
    assert refusal("ann", admin=True, multi_user=False, root=True, os_user="root") is None
    assert refusal("ann", admin=True, multi_user=True, root=False, os_user="hubuser") is None


def test_a_fallback_hub_serves_admins_only():
    why = refusal("eve", admin=False, multi_user=False, root=True, os_user="root")
    assert "admins only" in why and "OPUHUB_SPAWNER=local" in why


def test_a_root_hub_with_accounts_serves_everyone():
    assert refusal("eve", admin=False, multi_user=True, root=True, os_user="root") is None


def test_a_non_root_hub_never_runs_strangers_as_itself():
    why = refusal("eve", admin=False, multi_user=True, root=False, os_user="hubuser")
    assert "'hubuser'" in why and "root" in why
    # the hub's own OS user is not a stranger
    assert refusal("hubuser", admin=False, multi_user=True, root=False, os_user="hubuser") is None


def test_sandbox_command_drops_to_the_account_and_joins_its_cgroups():
    account = Account("opu-eve", 20001, 20002, Path("/homes/eve"))
    command = sandbox_command(account, Path("/homes/eve"), [Path("/sys/fs/cgroup/x")], "256M",
                              cover=["/srv/state"], keep=["/venv"], nproc=64)
    assert command[-1] == "--"
    joined = " ".join(command)
    assert "--uid 20001 --gid 20002" in joined and "--cgroup /sys/fs/cgroup/x" in joined
    assert "--cover /srv/state" in joined and "--keep /venv" in joined
    assert "--tmp-size 256M" in joined and "--nproc 64" in joined
