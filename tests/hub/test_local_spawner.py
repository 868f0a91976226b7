"""Pure parts of the local-process spawner: who may start a server, how it is launched."""

import sys
from pathlib import Path
from types import ModuleType
from unittest.mock import patch

from opuhub.local_spawner import fast_start_args, refusal, sandbox_command
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


def test_fast_start_args_give_the_server_its_prestarted_kernel():
    from jupyter_server.serverapp import ServerApp
    from opuhub_singleuser.kernel_pool import PrestartingKernelManager

    app = ServerApp()
    app.parse_command_line(fast_start_args())
    assert app.kernel_manager_class is PrestartingKernelManager
    assert app.jpserver_extensions == {"opuhub_singleuser": True}
    manager = PrestartingKernelManager(config=app.config)
    assert manager.prestart_count == 1
    # the warm-up runs in the notebook's namespace: it must leave no name there
    for loaded in (False, True):
        namespace = {}
        # an OPU kernel (opu_kernel loaded by its extension) or a plain python3 kernel
        modules = {"opu_kernel": ModuleType("opu_kernel"),
                   "opu_kernel.opu": ModuleType("opu_kernel.opu")} if loaded else {}
        with patch.dict(sys.modules, modules):
            exec(manager.prestart_warmup, namespace)
        assert set(namespace) == {"__builtins__"}
