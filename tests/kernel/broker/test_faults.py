"""Faults around the shared OPU: kernels that die or are interrupted mid-request free their
place, a broker restart fails the waiting call clearly and the next call works, and the device
lock never outlives the broker."""

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from opu_kernel.broker.client import BrokerError, BrokerUnavailable
from opu_kernel.broker.device import SimulatedDevice
from opu_kernel.lock import holder_pid

from .conftest import broker_in_thread

PARAMS = {"n_components": 64, "seed": 0, "ones_fraction": 0.5, "override": {}}
X = (np.random.default_rng(0).random((16, 32)) < 0.5).astype(np.uint8)

#: A kernel's cell, in a process of its own: one shared transform, printing when it waits.
KERNEL = """
import faulthandler, signal
faulthandler.register(signal.SIGUSR1)  # a kernel that hangs shows where (ended_within)
# an interrupt raises KeyboardInterrupt, as in a kernel running a cell (ipykernel installs
# this handler for each execution), even when the tests run with SIGINT ignored (a shell
# starting them in the background with `&` hands them, and these processes, SIG_IGN)
signal.signal(signal.SIGINT, signal.default_int_handler)
import numpy as np, sys
from opu_kernel import OPU
opu = OPU(n_components=64, max_n_features=32).fit1d(n_features=32)
print("waiting", flush=True)
opu.transform(np.ones((16, 32), dtype=np.uint8))
print("done", flush=True)
"""


def ended_within(kernel: subprocess.Popen, timeout_s: float) -> int:
    """The kernel's exit code; if it is still running after ``timeout_s``, fail with its
    threads' stacks (it dumps them on SIGUSR1) and what it wrote."""
    try:
        return kernel.wait(timeout_s)
    except subprocess.TimeoutExpired:
        kernel.send_signal(signal.SIGUSR1)
        time.sleep(1)
        kernel.kill()
        kernel.wait()
        raise AssertionError(f"the kernel did not end within {timeout_s:g} s; its output and "
                             f"stacks:\n{kernel.stdout.read()}\n{kernel.stderr.read()}") from None


def wait_until(predicate, timeout_s=30.0, what="condition"):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def hold_device(handle):
    """Reserve the device for no one: requests queue and wait."""
    handle.admin("reserve", holder="nobody", start=time.time(), end=time.time() + 300)


@pytest.mark.parametrize("how", ["interrupt", "kill"])
def test_a_kernel_that_is_interrupted_or_dies_mid_request_frees_its_place(secret, how):
    # heartbeats every 0.2 s; 3 s without one is a dead kernel (a live one on a loaded machine
    # still sends some)
    with broker_in_thread(secret, heartbeat_s=0.2, client_timeout_s=3.0) as b:
        hold_device(b)
        kernel = subprocess.Popen([sys.executable, "-c", KERNEL], env={**os.environ,
                                  **b.env("alice")}, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        try:
            assert kernel.stdout.readline().strip() == "waiting"
            wait_until(lambda: b.admin()["jobs"] == 1, what="the request to queue")
            kernel.send_signal(signal.SIGINT if how == "interrupt" else signal.SIGKILL)
            ended_within(kernel, 30)
            wait_until(lambda: b.admin()["jobs"] == 0, what="the request to go")
            stats = b.admin()
            # an interrupt cancels at once; a dead kernel's request goes when its heartbeats stop
            assert stats["requests_dropped"] == (0 if how == "interrupt" else 1)
            if how == "interrupt":
                assert "KeyboardInterrupt" in kernel.stderr.read()
            b.admin("release", holder="nobody")
            bob = b.client("bob")
            assert bob.transform(PARAMS, X)[0].shape == (16, 64)  # the device serves others
            bob.close()
        finally:
            if kernel.poll() is None:
                kernel.kill()
            kernel.wait()
            kernel.stdout.close()
            kernel.stderr.close()


def test_an_interrupt_during_the_wait_cancels_the_request(secret):
    with broker_in_thread(secret, heartbeat_s=0.1) as b:
        hold_device(b)
        alice = b.client("alice")

        def interrupt(header):
            assert header["position"] == 1
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            alice.transform(PARAMS, X, on_wait=interrupt)
        wait_until(lambda: b.admin()["jobs"] == 0, what="the cancel")
        assert b.admin()["requests_dropped"] == 0
        b.admin("release", holder="nobody")
        assert alice.transform(PARAMS, X)[0].shape == (16, 64)  # a fresh connection works
        alice.close()


def test_a_broker_restart_fails_the_waiting_call_clearly_and_the_next_call_works(
        broker_process, secret):
    from .conftest import free_port

    port = free_port()
    first = broker_process("--heartbeat-s=0.2", port=port)
    # patient enough for a broker restart on a loaded machine
    alice = first.client("alice", dead_after_s=60.0)
    assert alice.transform(PARAMS, X)[0].shape == (16, 64)
    hold_device(first)
    errors = []

    def waiting_call():
        try:
            alice.transform(PARAMS, X)
        except BrokerError as exc:
            errors.append(exc)

    call = threading.Thread(target=waiting_call)
    call.start()
    wait_until(lambda: first.admin()["jobs"] == 1, what="the request to queue")
    first.process.kill()
    first.process.wait()
    second = broker_process("--heartbeat-s=0.2", port=port)  # back on the same address
    call.join(30)
    assert len(errors) == 1 and "lost this request" in str(errors[0])
    assert "run the cell again" in str(errors[0])
    assert alice.transform(PARAMS, X)[0].shape == (16, 64)

    # And with no broker at all: a clear message, quickly.
    alice.connect_timeout_s = 0.5
    second.process.kill()
    second.process.wait()
    with pytest.raises(BrokerUnavailable, match="did not acknowledge"):
        alice.transform(PARAMS, X)
    alice.close()


def test_the_broker_alone_holds_the_device_and_never_after_its_death(
        broker_process, stand_in_opu, tmp_path, monkeypatch):
    monkeypatch.setenv("OPU_LOCK_DIR", str(tmp_path / "locks"))
    os.makedirs(tmp_path / "locks", mode=0o700)
    handle = broker_process(f"--device={stand_in_opu.node}")
    assert holder_pid(str(stand_in_opu.node)) == handle.process.pid
    for user in ("alice", "bob"):
        client = handle.client(user)
        result, header = client.transform({**PARAMS, "n_components": 100}, X)
        assert result.dtype == np.uint8 and result.shape == (16, 100)
        with pytest.raises(BrokerError, match="linear_transform on the shared OPU hardware"):
            client.transform({**PARAMS, "linear": True}, X)
        client.close()
    events = stand_in_opu.log.read_text().splitlines()
    assert sum('"open"' in e for e in events) == 1  # opened once, for everyone
    assert sum('"transform1"' in e for e in events) == 2
    handle.process.kill()
    handle.process.wait()
    assert holder_pid(str(stand_in_opu.node)) is None


def test_a_failing_device_fails_that_request_only(secret):
    class Flaky(SimulatedDevice):
        def run(self, params, rows):
            if params["n_components"] == 13:
                raise RuntimeError("camera timeout")
            return super().run(params, rows)

    with broker_in_thread(secret, device=Flaky(frame_s=0)) as b:
        alice = b.client("alice")
        with pytest.raises(BrokerError, match="camera timeout"):
            alice.transform({**PARAMS, "n_components": 13}, X)
        assert alice.transform(PARAMS, X)[0].shape == (16, 64)
        alice.close()
