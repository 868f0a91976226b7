"""Attendees race for the only OPU and go after the lease (issue 9: the lease is exclusive
under concurrency, and only the holder's account may open the device).

Ten attendees ask for the hardware profile at the same moment, each with a token of their
own: exactly one is granted, the nine others get a 409 naming the holder. The holder's kernel
opens the device node; a loser's kernel gets "permission denied" (the root hub hands the node
to the holder's Unix account and closes it to everyone else). The losers cannot revoke the
lease, stop the holder or win it in a second race while it is held; when the holder stops,
the node goes back to root.
"""

from __future__ import annotations

import os
import stat
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.hub.security.attendees import ATTEMPT, Attendee, failed

pytestmark = pytest.mark.slow

RACERS = [f"sec-racer-{i}" for i in range(10)]
OPEN_CODE = ATTEMPT + """
out = {"rw": attempt(lambda: os.close(os.open(node, os.O_RDWR))),
       "ro": attempt(lambda: os.close(os.open(node, os.O_RDONLY))),
       "backend": os.environ["OPU_BACKEND"], "uid": os.getuid()}
print(json.dumps(out))
"""


def race(attendees: list[Attendee], profile: str = "hardware") -> dict:
    """Every attendee asks for their own server at the same moment; name -> response."""
    barrier = threading.Barrier(len(attendees))

    def ask(attendee):
        barrier.wait()
        return attendee.name, attendee.api("POST", f"/users/{attendee.name}/server",
                                           json={"profile": profile})

    with ThreadPoolExecutor(len(attendees)) as pool:
        return dict(pool.map(ask, attendees))


@pytest.fixture(scope="module")
def contest(hub):
    assert hub.leases() == [], "a lease from an earlier test is still held"
    racers = [Attendee.create(hub, name) for name in RACERS]
    results = race(racers)
    winners = [a for a in racers if results[a.name].status_code in (201, 202)]
    assert len(winners) == 1, {n: (r.status_code, r.text[:100]) for n, r in results.items()}
    [holder] = winners
    holder.wait_ready()
    losers = [a for a in racers if a is not holder]
    yield holder, losers, results
    for attendee in racers:
        attendee.stop()


def test_exactly_one_of_ten_racing_attendees_gets_the_device(contest, hub):
    holder, losers, results = contest
    for loser in losers:
        resp = results[loser.name]
        assert resp.status_code == 409, resp.text
        assert f"held by {holder.name}" in resp.json()["message"], resp.text
        assert hub.server_model(loser.name) is None
    [lease] = hub.leases(holder.token)
    assert lease["user"] == holder.name and lease["device"] == hub.devices[0]


def test_only_the_holders_kernel_can_open_the_device(contest, hub):
    holder, losers, _ = contest
    node = hub.devices[0]
    info = os.stat(node)  # the root hub gave the node to the holder's account alone
    assert info.st_uid == holder.uid and stat.S_IMODE(info.st_mode) & 0o077 == 0, oct(info.st_mode)

    seen = holder.run(f"node = {node!r}\n" + OPEN_CODE)
    assert seen["uid"] == holder.uid and seen["backend"] == "hardware", seen
    assert seen["rw"]["ok"] and seen["ro"]["ok"], seen

    loser = losers[0]
    loser.start("simulator")  # a server of her own, without the device
    seen = loser.run(f"node = {node!r}\n" + OPEN_CODE)
    assert seen["uid"] == loser.uid != holder.uid and seen["backend"] == "simulator", seen
    assert failed(seen["rw"], "PermissionError") and failed(seen["ro"], "PermissionError"), seen


def test_the_losers_cannot_take_the_lease_while_it_is_held(contest, hub):
    holder, losers, _ = contest
    idle = [a for a in losers if hub.server_model(a.name) is None]
    # a second race among the losers: nobody wins a device that is held
    results = race(idle)
    for name, resp in results.items():
        assert resp.status_code == 409 and f"held by {holder.name}" in resp.json()["message"], (
            name, resp.status_code, resp.text)
    attacker = idle[0]
    device = os.path.basename(hub.devices[0])
    assert attacker.request("DELETE", f"/services/opu-lease/api/leases/{device}").status_code == 403
    assert attacker.api("DELETE", f"/users/{holder.name}/server").status_code == 404
    assert attacker.api("POST", f"/users/{holder.name}/server",
                        json={"profile": "hardware"}).status_code == 404
    [lease] = hub.leases(attacker.token)
    assert lease["user"] == holder.name
    assert hub.server_model(holder.name)["ready"]


def test_the_node_goes_back_to_root_when_the_holder_stops(contest, hub):
    holder, losers, _ = contest
    holder.stop()
    assert hub.leases() == []
    info = os.stat(hub.devices[0])
    assert info.st_uid == 0 and stat.S_IMODE(info.st_mode) & 0o077 == 0, oct(info.st_mode)
