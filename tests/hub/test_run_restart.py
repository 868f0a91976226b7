"""`make run` after a hub that did not stop cleanly, and stopping it: real hubs started with
`python -m opuhub.run`, real processes counted in /proc.

- kill -9 of the hub while a user server and its OPU lease run → starting again works, exactly
  one lease service and one culler run, the server still answers and keeps its lease;
- SIGINT stops the hub and its services promptly even when the hub inherited an ignored
  SIGINT (a background job of a script): JupyterHub stops services with SIGINT first, and they
  used to inherit that ignored SIGINT, so each stop waited 30 s for nothing (~62 s measured);
- the launcher (opuhub.lifeline) that ties services to the hub, on its own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from opuhub import lifeline, run, unix_accounts
from opuhub.settings import settings_from_env
from tests.helpers import wait_until
from tests.hub.hubtest import Hub, _exists, hub_root

SERVICES = ("opu-lease", "idle-culler")
USER = "rs-carol"


def service_processes(hub: Hub) -> dict[str, list[int]]:
    """Live processes of the hub-managed services of ``hub``, by service name: recognised by
    the hub API URL in their environment (unique per test hub), whatever started them."""
    api = hub.env["OPUHUB_HUB_BIND_URL"]
    found: dict[str, list[int]] = {name: [] for name in SERVICES}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = dict(
                item.split("=", 1) for item in
                (entry / "environ").read_bytes().decode(errors="replace").split("\0") if "=" in item
            )
        except OSError:
            continue
        name = environ.get("JUPYTERHUB_SERVICE_NAME")
        if name in found and environ.get("JUPYTERHUB_API_URL", "").startswith(api) \
                and _exists(int(entry.name)):
            found[name].append(int(entry.name))
    return found


def counts(hub: Hub) -> dict[str, int]:
    return {name: len(pids) for name, pids in service_processes(hub).items()}


@pytest.fixture(scope="module")
def busy_hub():
    """A hub started like `make run`, with the idle culler on, one user server holding the
    OPU lease, and a token of that user."""
    hub = Hub(hub_root("restart"), via_run=True, cull_idle_seconds=3600)
    try:
        hub.start()
        hub.create_users(USER)
        resp = hub.spawn(USER, profile="hardware")
        assert resp.status_code in (201, 202), resp.text
        hub.token_of_user = hub.user_token(USER)
        yield hub
    finally:
        hub.shutdown()
        unix_accounts.remove(USER)  # made by the local spawner (one account per user)


def test_kill_9_then_start_again_recovers_with_one_of_each_service(busy_hub):
    hub = busy_hub
    [lease] = hub.leases()
    server_pid = hub.remember_pid(USER)
    assert counts(hub) == {"opu-lease": 1, "idle-culler": 1}

    os.kill(hub.proc.pid, signal.SIGKILL)
    hub.proc.wait()
    # the services die with the hub; the proxy and the user's server carry on
    wait_until(lambda: counts(hub) == {"opu-lease": 0, "idle-culler": 0}, 20,
             "the services to die with the hub")
    assert _exists(server_pid)

    hub.start()  # python -m opuhub.run on the same state directory
    assert "already in use" not in hub.log()
    assert counts(hub) == {"opu-lease": 1, "idle-culler": 1}
    assert hub.get(f"/user/{USER}/api/status", hub.token_of_user).status_code == 200
    [after] = hub.leases()
    assert (after["user"], after["device"], after["started"]) == (
        USER, lease["device"], lease["started"])
    assert hub.remember_pid(USER) == server_pid


def test_sigint_stops_the_hub_and_its_services_even_when_sigint_was_ignored(busy_hub):
    hub = busy_hub
    server_pid = hub.remember_pid(USER)
    hub.stop()
    # started as a background job of a script would be: SIGINT ignored from the start
    hub.command = ["sh", "-c", "trap '' INT; exec \"$0\" -m opuhub.run", sys.executable]
    hub.start()
    assert counts(hub) == {"opu-lease": 1, "idle-culler": 1}
    proc = hub.proc
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=20)  # only so that the test ends; it takes ~2 s, was ~62 s
    except subprocess.TimeoutExpired:
        pytest.fail("the hub was still running 20 s after SIGINT")
    hub.proc = None
    assert counts(hub) == {"opu-lease": 0, "idle-culler": 0}
    assert _exists(server_pid)  # servers survive a hub stop (cleanup_servers=False)
    hub.start()  # and the next start finds them
    assert hub.get(f"/user/{USER}/api/status", hub.token_of_user).status_code == 200
    assert [lease["user"] for lease in hub.leases()] == [USER]


# --- the launcher ------------------------------------------------------------------------------

def test_lifeline_command_and_arguments():
    cmd = lifeline.lifeline_command(["prog", "--x"], parent_pid=42)
    assert cmd[1:] == ["-m", "opuhub.lifeline", "--parent", "42", "--", "prog", "--x"]
    assert lifeline.parse_args(cmd[3:]) == (42, ["prog", "--x"])
    for bad in ([], ["--parent", "x", "--", "prog"], ["--parent", "1", "prog", "a"],
                ["--parent", "1", "--"]):
        with pytest.raises(ValueError, match="usage"):
            lifeline.parse_args(bad)


def test_a_service_dies_with_the_process_that_started_it():
    # a stand-in hub starts `sleep` through the launcher, then is killed with SIGKILL
    parent = subprocess.Popen(
        [sys.executable, "-c",
         "import os, subprocess, sys, time\n"
         "from opuhub.lifeline import lifeline_command\n"
         "child = subprocess.Popen(lifeline_command(['sleep', '600']), start_new_session=True)\n"
         "print(child.pid, flush=True)\n"
         "time.sleep(600)\n"],
        stdout=subprocess.PIPE, text=True,
    )
    child = int(parent.stdout.readline())
    try:
        wait_until(lambda: Path(f"/proc/{child}/cmdline").read_bytes().startswith(b"sleep"), 20,
                 "the launcher to exec the service")
        parent.kill()
        parent.wait()
        wait_until(lambda: not _exists(child), 20, "the service to die with its parent")
    finally:
        parent.kill()
        if _exists(child):
            os.kill(child, signal.SIGKILL)


def test_the_launcher_refuses_when_its_hub_is_already_gone():
    result = subprocess.run(lifeline.lifeline_command(["true"], parent_pid=1),
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "is gone" in result.stderr


def test_the_launcher_gives_back_an_ignored_sigint():
    def ignore_sigint():
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    def ignored_mask(command):
        out = subprocess.run(command, preexec_fn=ignore_sigint, capture_output=True,
                             text=True, timeout=30).stdout
        return int(out.split()[1], 16)

    sigint = 1 << (signal.SIGINT - 1)
    probe = ["grep", "SigIgn", "/proc/self/status"]
    assert ignored_mask(probe) & sigint  # what a service inherited before
    assert not ignored_mask(lifeline.lifeline_command(probe)) & sigint


def test_the_ports_checked_before_a_start(tmp_path):
    settings = settings_from_env({
        "OPUHUB_STATE_DIR": str(tmp_path / "state"), "OPUHUB_BIND_URL": "http://0.0.0.0:9000",
        "OPUHUB_PROXY_API_PORT": "9001", "OPUHUB_LEASE_SERVICE_PORT": "9002",
    })
    assert run.ports_to_check(settings) == [
        ("0.0.0.0", 9000, "OPUHUB_BIND_URL"), ("127.0.0.1", 9001, "OPUHUB_PROXY_API_PORT"),
        ("127.0.0.1", 9002, "OPUHUB_LEASE_SERVICE_PORT")]
