"""jupyterhub-idle-culler runs as a hub-managed service and culls an idle server; the
server's OPU lease ends with it. A hub of its own, with short timeouts."""

import pytest

from opuhub.lease_store import LeaseStore
from tests.hub.hubtest import Hub, hub_factory, launched_hub, wait_for

pytestmark = pytest.mark.slow


@hub_factory("test_idle_culler.py")
def make_culling_hub(tmp_path_factory):
    return Hub(
        tmp_path_factory.mktemp("culling-hub"),
        cull_idle_seconds=6,
        cull_every_seconds=2,
        last_activity_interval=2,
    )


@pytest.fixture(scope="module")
def culling_hub(tmp_path_factory):
    hub = launched_hub("test_idle_culler.py", tmp_path_factory)
    yield hub
    hub.shutdown()


def test_culler_culls_an_idle_server_and_its_lease_ends(culling_hub):
    hub = culling_hub
    hub.create_users("sleepy")
    resp = hub.api("POST", "/users/sleepy/server", json={"profile": "hardware"})
    assert resp.status_code in (201, 202), resp.text
    wait_for(lambda: hub.leases(), 30, "the lease to be granted")
    hub.remember_pid("sleepy")
    # nobody uses the server: the culler stops it, and the stop ends the lease
    wait_for(lambda: hub.server_model("sleepy") is None and not hub.leases(), 90,
             "the idle server to be culled")
    history = LeaseStore(hub.state / "opu_leases.sqlite").history()
    assert history[0]["username"] == "sleepy" and history[0]["end_reason"] == "stopped"
    assert "Culling server sleepy" in hub.log() or "culling" in hub.log().lower()
