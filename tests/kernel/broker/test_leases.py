"""Exclusive leases as reserved windows: the broker follows what the lease service says
(here a stand-in answering GET api/leases on the loopback, as the hub's does; the real
service with a real hub is tests/hub/test_shared_opu.py)."""

import json
import math
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from opu_kernel.broker.app import OPUBroker
from opu_kernel.broker.client import BrokerError
from opu_kernel.broker.leases import LeaseFeed, reservations_from

from .conftest import broker_in_thread
from .test_faults import PARAMS, X, wait_until

TOKEN = "broker-token"


def iso(ts):
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds")


def lease(user, device="simulated", started=None, expires=None):
    return {"device": device, "user": user, "server": "",
            "started": iso(started or time.time() - 5),
            "expires": None if expires is None else iso(expires)}


class LeaseService:
    """What the broker reads: ``leases`` (a list), served with the token checked."""

    def __init__(self):
        self.leases = []
        self.up = True
        self.seen_tokens = []
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                service.seen_tokens.append(self.headers.get("Authorization"))
                if not service.up:
                    self.send_error(503)
                    return
                if self.headers.get("Authorization") != f"token {TOKEN}":
                    self.send_error(403)
                    return
                body = json.dumps({"devices": [], "leases": service.leases}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/services/opu-lease/api/leases"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def lease_service():
    service = LeaseService()
    yield service
    service.close()


def test_leases_on_the_brokers_device_become_reservations():
    now = time.time()
    answer = {"leases": [lease("alice", expires=now + 600), lease("bob", device="/dev/opu0"),
                         lease("carol", device="simulated")]}
    reserved = reservations_from(answer, "simulated")
    assert [user for user, _, _ in reserved] == ["alice", "carol"]
    assert abs(reserved[0][2] - (now + 600)) < 1.5
    assert math.isinf(reserved[1][2])  # until its server stops
    assert reservations_from(answer, "/dev/opu0")[0][0] == "bob"
    assert reservations_from({"devices": [], "leases": []}, "simulated") == []
    for bad in ([], {"leases": None}, {"leases": [{"device": "simulated"}]}):
        with pytest.raises(ValueError):
            reservations_from(bad, "simulated")


def test_a_lease_makes_the_broker_serve_its_holder_alone_until_it_ends(secret, lease_service):
    feed = LeaseFeed(lease_service.url, TOKEN, "simulated", poll_s=0.05)
    with broker_in_thread(secret, heartbeat_s=0.1, lease_feed=feed) as b:
        assert feed.polled.wait(10)
        lease_service.leases = [lease("alice", expires=time.time() + 600)]
        wait_until(lambda: b.broker.scheduler.reservations, what="the reservation")
        bob, alice = b.client("bob"), b.client("alice")
        outcome = {}
        waits = []

        def bob_call():
            try:
                outcome["bob"] = bob.transform(PARAMS, X, on_wait=waits.append)[0]
            except BrokerError as exc:  # pragma: no cover - reported by the assert below
                outcome["bob"] = exc

        thread = threading.Thread(target=bob_call)
        thread.start()
        wait_until(lambda: waits, what="bob's request to wait")
        # the holder is served while bob waits; bob is told for whom the device is reserved
        assert alice.transform(PARAMS, X)[0].shape == (16, 64)
        assert "bob" not in outcome
        assert alice.status()["reserved_for"] == "alice"
        # the lease ends (its server stopped): bob's request goes through, unchanged
        lease_service.leases = []
        thread.join(30)
        np.testing.assert_array_equal(outcome["bob"], alice.transform(PARAMS, X)[0])
        assert "reserved_for" not in bob.status()
        bob.close()
        alice.close()
    assert set(lease_service.seen_tokens) == {f"token {TOKEN}"}


def test_the_brokers_reservations_stay_when_the_lease_service_cannot_be_read(
        secret, lease_service):
    feed = LeaseFeed(lease_service.url, TOKEN, "simulated", poll_s=0.05)
    lease_service.leases = [lease("alice")]
    with broker_in_thread(secret, lease_feed=feed) as b:
        wait_until(lambda: b.broker.scheduler.reservations, what="the reservation")
        lease_service.up = False
        failures = feed.failures
        wait_until(lambda: feed.failures > failures + 2, what="failed polls")
        assert [r.user for r in b.broker.scheduler.reservations] == ["alice"]
        # a lease-following broker takes no reservations from anywhere else
        with pytest.raises(BrokerError, match="follow the hub's leases"):
            b.admin("release", holder="alice")
        lease_service.up = True
        lease_service.leases = []
        wait_until(lambda: not b.broker.scheduler.reservations, what="the release")


def test_the_broker_command_needs_a_token_to_follow_leases(monkeypatch):
    monkeypatch.delenv("JUPYTERHUB_API_TOKEN", raising=False)
    app = OPUBroker()
    app.leases_url = "http://127.0.0.1:1/services/opu-lease/api/leases"
    with pytest.raises(SystemExit, match="JUPYTERHUB_API_TOKEN"):
        app.make_lease_feed()
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", TOKEN)
    app.lease_device = "/dev/opu0"
    assert app.make_lease_feed().device == "/dev/opu0"
    app.leases_url = "file:///etc/passwd"
    with pytest.raises(SystemExit, match="http"):
        app.make_lease_feed()
