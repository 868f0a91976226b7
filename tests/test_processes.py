"""The end-of-run check (tests/processes.py, used by tests/conftest.py) finds what a test left
running: a child, a process re-parented to init that carries the run's marker, and a hub
service whose OPUHUB_STATE_DIR is in one of the run's directories; and it ends them."""

import os
import subprocess
import sys

from tests import processes
from tests.helpers import wait_until

# Starts a `sleep` in a session of its own and exits at once: the sleep is re-parented to init
# (or the nearest subreaper), as a hub's proxy is when the hub dies. Prints the sleep's pid.
ORPHAN = ("import subprocess\n"
          "p = subprocess.Popen(['sleep', '60'], start_new_session=True, stdout=subprocess.DEVNULL,\n"
          "                     stderr=subprocess.DEVNULL)\n"
          "print(p.pid)")


def orphan(env: dict) -> int:
    out = subprocess.run([sys.executable, "-c", ORPHAN], env=env, capture_output=True,
                         text=True, timeout=30, check=True)
    return int(out.stdout)


def pids(found) -> set[int]:
    return {p.pid for p in found}


def test_a_child_left_running_is_found_and_ended():
    child = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        found = processes.leftover_processes(os.getpid(), None, set())
        assert child.pid in pids(found)
        [leftover] = [p for p in found if p.pid == child.pid]
        assert leftover.why == "child of the test run" and "sleep 60" in str(leftover)
        processes.end_leftovers([leftover])
        assert child.wait(timeout=10) is not None
        assert child.pid not in pids(processes.leftover_processes(os.getpid(), None, set()))
    finally:
        child.kill()
        child.wait()


def test_an_orphan_with_the_runs_marker_is_found_and_another_runs_is_not():
    marker = "test-marker-1"
    mine = orphan({**os.environ, processes.RUN_MARKER: marker})
    theirs = orphan({**os.environ, processes.RUN_MARKER: "another-run"})
    try:
        # not a descendant of this process any more: only the environment tells
        found = processes.leftover_processes(os.getpid(), marker, set())
        assert mine in pids(found) and theirs not in pids(found)
        assert [p.why for p in found if p.pid == mine] == [f"{processes.RUN_MARKER}={marker}"]
    finally:
        for pid in (mine, theirs):
            os.kill(pid, 9)
        wait_until(lambda: not {mine, theirs} & pids(
            processes.leftover_processes(os.getpid(), marker, set())), 10, "the orphans to end")


def test_a_hub_service_is_found_by_its_state_dir_under_a_registered_root(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != processes.RUN_MARKER}
    service = orphan({**env, "OPUHUB_STATE_DIR": str(tmp_path / "hub" / "state")})
    elsewhere = orphan({**env, "OPUHUB_STATE_DIR": str(tmp_path.parent / "not-ours" / "state")})
    try:
        found = processes.leftover_processes(os.getpid(), "unused", {tmp_path / "hub"})
        assert service in pids(found) and elsewhere not in pids(found)
        assert not {service, elsewhere} & pids(processes.leftover_processes(os.getpid(), None, set()))
        processes.end_leftovers([p for p in found if p.pid == service])
        assert service not in pids(processes.leftover_processes(os.getpid(), None, {tmp_path}))
    finally:
        for pid in (service, elsewhere):
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
