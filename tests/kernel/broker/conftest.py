"""Brokers for the shared-OPU tests: in a thread of the test process (fast), or as the real
``python -m opu_kernel.broker`` process (restarts, kills, many clients)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import pytest

from opu_kernel.broker import protocol
from opu_kernel.broker.client import BrokerClient, BrokerError
from opu_kernel.broker.device import SimulatedDevice
from opu_kernel.broker.server import ADMIN_USER, Broker, admin_key


@dataclass
class BrokerHandle:
    url: str
    secret: bytes
    broker: Broker | None = None
    process: subprocess.Popen | None = None

    def client(self, user: str, **kwargs) -> BrokerClient:
        return BrokerClient(self.url, user, protocol.user_key(self.secret, user), **kwargs)

    def env(self, user: str) -> dict:
        return {"OPU_BROKER_URL": self.url, "OPU_BROKER_USER": user,
                "OPU_BROKER_KEY": protocol.user_key(self.secret, user).hex()}

    def admin(self, op: str = "stats", **fields) -> dict:
        client = BrokerClient(self.url, ADMIN_USER, admin_key(self.secret))
        try:
            return client.call(op, fields)
        finally:
            client.close()


@contextlib.contextmanager
def broker_in_thread(secret: bytes, device=None, **kwargs):
    broker = Broker(device or SimulatedDevice(frame_s=0.0), secret,
                    bind="tcp://127.0.0.1:*", **kwargs)
    thread = threading.Thread(target=broker.serve_forever, daemon=True)
    thread.start()
    assert broker.ready.wait(10)
    try:
        yield BrokerHandle(broker.endpoint, secret, broker=broker)
    finally:
        broker.stop()
        thread.join(30)
        assert not thread.is_alive()


@pytest.fixture
def secret() -> bytes:
    return os.urandom(32)


@pytest.fixture
def broker(secret):
    with broker_in_thread(secret) as handle:
        yield handle


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_broker_process(secret: bytes, port: int, *args: str, env=None) -> BrokerHandle:
    """The broker as its command; returns once it answers."""
    url = f"tcp://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "opu_kernel.broker", f"--bind={url}", *args],
        env={**os.environ, **(env or {}), "OPU_BROKER_SECRET": secret.hex()},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    handle = BrokerHandle(url, secret, process=process)
    deadline = time.monotonic() + 30
    while True:
        client = handle.client("probe", connect_timeout_s=0.5)
        try:
            client.hello()
            return handle
        except BrokerError:
            if process.poll() is not None or time.monotonic() > deadline:
                stop_process(process)
                raise AssertionError("the broker did not start: "
                                     + process.stderr.read().decode()[-2000:]) from None
        finally:
            client.close()


def stop_process(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stderr:
        process.stderr.close()


@pytest.fixture
def broker_process(secret):
    """Starts brokers as processes (``start(*args)``) and stops them all afterwards."""
    started = []

    def start(*args, port=None, env=None):
        handle = start_broker_process(secret, port or free_port(), *args, env=env)
        started.append(handle.process)
        return handle

    yield start
    for process in started:
        stop_process(process)
