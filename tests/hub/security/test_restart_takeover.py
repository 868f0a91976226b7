"""A hub start takes over only what is its own.

- A port of the hub held by someone else (an attendee's process listening on the lease
  service's port while the hub is down, to receive the tokens and cookies sent to
  /services/opu-lease/, or on the shared OPU's broker port, to receive every shared kernel's
  inputs) makes `make run` refuse, naming the port's variable; it never starts
  a hub whose proxy would route to the squatter, and it does not touch the squatter.
- A ``state/proxy.pid`` that names a process which is not our proxy (a pid reused after the
  hub died) is dropped: JupyterHub would SIGTERM, then SIGKILL, whatever that pid now is.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from tests.helpers import wait_until
from tests.hub.hubtest import Hub, free_port, hub_root

LISTENER = (
    "import socket, sys, time\n"
    "s = socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen()\n"
    "print('listening', flush=True); time.sleep(600)\n"
)


def as_nobody():
    if os.geteuid() == 0:  # an attendee's account, not the hub's
        os.setgid(65534)
        os.setuid(65534)


def squat(port: int) -> subprocess.Popen:
    # the system's Python: the hub's may live where an attendee's account cannot read
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    proc = subprocess.Popen([python, "-c", LISTENER, str(port)], stdout=subprocess.PIPE,
                            text=True, preexec_fn=as_nobody)
    assert proc.stdout.readline().strip() == "listening"
    return proc


def run_hub(hub: Hub) -> subprocess.CompletedProcess:
    hub.state.mkdir(parents=True, exist_ok=True)
    return subprocess.run(hub.command, cwd=hub.root, env=hub.env, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("variable", ["OPUHUB_LEASE_SERVICE_PORT", "OPUHUB_SHARED_OPU_PORT"])
def test_a_squatted_service_port_refuses_the_start(variable):
    hub = Hub(hub_root("squat"), via_run=True, shared_opu="simulated",
              shared_opu_port=free_port())
    squatter = squat(int(hub.env[variable]))
    try:
        result = run_hub(hub)
        assert result.returncode == 1
        assert "already in use" in result.stderr
        assert variable in result.stderr
        assert not (hub.state / "jupyterhub.pid").exists()  # no hub was started
        with socket.socket() as probe:  # nor a proxy that would route to the squatter
            assert probe.connect_ex(("127.0.0.1", hub.port)) != 0
        assert squatter.poll() is None  # untouched
    finally:
        squatter.kill()
        squatter.wait()
        hub.shutdown()


def test_a_squatted_public_address_refuses_the_start():
    hub = Hub(hub_root("squat"), via_run=True)
    squatter = squat(hub.port)
    try:
        result = run_hub(hub)
        assert result.returncode == 1
        assert f"127.0.0.1:{hub.port} is already in use" in result.stderr
        assert "OPUHUB_BIND_URL" in result.stderr
        assert squatter.poll() is None
    finally:
        squatter.kill()
        squatter.wait()
        hub.shutdown()


def test_a_proxy_pid_file_naming_another_process_kills_nothing():
    hub = Hub(hub_root("pidreuse"), via_run=True)
    hub.state.mkdir(parents=True)
    # the pid the dead hub's proxy had now belongs to someone else's process
    bystander = subprocess.Popen(["sleep", "600"], preexec_fn=as_nobody)
    (hub.state / "proxy.pid").write_text(str(bystander.pid))
    try:
        hub.start()
        assert bystander.poll() is None
        # the file names the new proxy now, which is ours
        pid = int((hub.state / "proxy.pid").read_text())
        assert pid != bystander.pid
        assert b"configurable-http-proxy" in open(f"/proc/{pid}/cmdline", "rb").read()
    finally:
        hub.shutdown()
        alive = bystander.poll() is None
        bystander.kill()
        bystander.wait()
    assert alive


def test_the_previous_proxy_is_replaced_and_the_new_one_serves():
    hub = Hub(hub_root("takeover"), via_run=True)
    try:
        hub.start()
        old_proxy = int((hub.state / "proxy.pid").read_text())
        os.kill(hub.proc.pid, 9)
        hub.proc.wait()
        assert open(f"/proc/{old_proxy}/cmdline", "rb").read()  # the proxy outlived the hub
        hub.start()
        wait_until(lambda: not os.path.exists(f"/proc/{old_proxy}")
                 or open(f"/proc/{old_proxy}/stat").read().split(") ")[1][0] == "Z", 20,
                 "the old proxy to be stopped")
        new_proxy = int((hub.state / "proxy.pid").read_text())
        assert new_proxy != old_proxy
        assert hub.api("GET", "/users").status_code == 200  # through the new proxy
    finally:
        hub.shutdown()
