"""Local-process mode as a hostile attendee: fill the disk, the memory, the process table, a
core. Each attack runs from a notebook cell of a real server under its own Unix account, on a
hub with small limits (64 MiB homes, 512 MiB memory, 64 processes), and must hurt only the
attacker: the hub keeps answering and another user keeps working.

Needs root (the hub creates Unix accounts, cgroups and loop-mounted homes), as in CI.
"""

from __future__ import annotations

import os

import pytest

from tests.hub.hubtest import Hub, hub_factory, hub_root, launched_hub

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="local isolation needs a hub running as root"),
]


@hub_factory("limits", ("test_local_limits.py",))
def make_limits_hub(tmp_path_factory):
    return Hub(hub_root("limits-hub"), home_quota="64M", mem_limit="512M", pids_limit=64,
               cpu_limit=1, simulator_max_work=1e11)


@pytest.fixture(scope="module")
def limits_hub(tmp_path_factory, hub):  # `hub` first: it launches this one alongside
    hub_ = launched_hub("limits", tmp_path_factory)
    hub_.create_users("mallory", "victim")
    for user in ("mallory", "victim"):
        assert hub_.spawn(user).status_code in (201, 202)
    yield hub_
    hub_.shutdown()


def run(hub: Hub, user: str, code: str) -> dict:
    return hub.execute(user, hub.user_token(user), code)


def victim_still_works(hub: Hub) -> None:
    assert hub.api("GET", "/").status_code == 200
    out = run(hub, "victim", "print(sum(range(10)))")
    assert out["error"] is None and out["stdout"].strip() == "45", out


def test_a_full_home_stops_only_its_owner(limits_hub):
    out = run(limits_hub, "mallory", (
        "import errno\n"
        "try:\n"
        "    with open('big', 'wb') as f:\n"
        "        for _ in range(200):\n"
        "            f.write(b'x' * 2**20)\n"
        "            f.flush()\n"
        "    print('wrote 200 MiB')\n"
        "except OSError as e:\n"
        "    print('refused', errno.errorcode[e.errno])\n"
    ))
    assert out["stdout"].strip() == "refused ENOSPC", out
    # what the attacker wrote landed in their home's image, which can never hold more than
    # the quota (the machine is shared: its free space is too noisy to compare)
    image = limits_hub.root / "homes" / ".images" / "mallory.ext4"
    allocated = image.stat().st_blocks * 512
    assert 40 * 2**20 < allocated <= 64 * 2**20
    # and the hub and its database still work
    victim_still_works(limits_hub)
    # the attacker's server survives too, and freeing space works
    out = run(limits_hub, "mallory", "import os; os.remove('big'); print('freed')")
    assert out["stdout"].strip() == "freed", out


def test_temporary_files_are_private_and_bounded(limits_hub):
    out = run(limits_hub, "mallory", (
        "open('/tmp/planted', 'w').write('boo'); import os; os.symlink('/etc/passwd', '/tmp/link')\n"
        "print(sorted(os.listdir('/tmp')))"
    ))
    assert "planted" in out["stdout"], out
    out = run(limits_hub, "victim", "import os; print(sorted(os.listdir('/tmp')))")
    assert "planted" not in out["stdout"] and "link" not in out["stdout"], out


def test_memory_is_capped_per_user(limits_hub):
    # an allocation beyond the limit is killed (the kernel's child here), nothing else is
    out = run(limits_hub, "mallory", (
        "import subprocess, sys\n"
        "done = subprocess.run([sys.executable, '-c', 'x = b\"1\" * (900 * 2**20)'])\n"
        "print(open('/proc/self/cgroup').read())\n"  # shown if the assertion fails
        "print('exit', done.returncode)\n"
    ))
    assert out["stdout"].strip().splitlines()[-1] == "exit -9", out
    victim_still_works(limits_hub)


def test_a_fork_bomb_hits_the_process_limit(limits_hub):
    out = run(limits_hub, "mallory", (
        "import threading, time\n"
        "ev = threading.Event(); started = 0\n"
        "try:\n"
        "    for _ in range(200):\n"
        "        threading.Thread(target=ev.wait, daemon=True).start(); started += 1\n"
        "except RuntimeError as e:\n"
        "    print('stopped at', started)\n"
        "ev.set()\n"
    ))
    assert out["stdout"].startswith("stopped at"), out
    assert int(out["stdout"].split()[-1]) < 64
    victim_still_works(limits_hub)


def test_a_day_long_transform_is_refused_at_once(limits_hub):
    out = run(limits_hub, "mallory", (
        "import numpy as np\n"
        "from opu_kernel import OPU\n"
        "try:\n"
        "    OPU(n_components=10**9, backend='simulator').transform(np.ones(1000, 'uint8'))\n"
        "except ValueError as e:\n"
        "    print(e)\n"
    ))
    assert "OPU_SIMULATOR_MAX" in out["stdout"], out
    out = run(limits_hub, "mallory", (
        "import numpy as np\n"
        "from opu_kernel import OPU\n"
        "opu = OPU(n_components=10_000, backend='simulator')\n"
        "opu.fit1d(n_features=1000)\n"
        "try:\n"
        "    opu.transform(np.ones((10_000, 1000), 'uint8'))\n"
        "except ValueError as e:\n"
        "    print(e)\n"
        "print(opu.transform(np.ones((2, 1000), 'uint8')).shape)\n"
    ))
    assert "batches of at most" in out["stdout"] and "(2, 10000)" in out["stdout"], out
