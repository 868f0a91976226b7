"""A server whose start fails after its OPU lease was granted gives the device back at once
(OPUSpawnerMixin's spawn-failed release), in a running hub: the second hub's deployer config
makes FAILING_START_USER's start raise inside the real local spawner."""

import pytest

from opuhub.lease import ENDED_SPAWN_FAILED
from opuhub.lease_store import LeaseStore
from tests.hub.hubtest import FAILING_START_USER

pytestmark = pytest.mark.slow


def test_a_failed_start_releases_the_lease_it_was_granted(second_hub):
    hub, user = second_hub, FAILING_START_USER
    hub.create_users(user)
    store = LeaseStore(hub.state / "opu_leases.sqlite")
    assert store.active() == [], "the device must be free for this test"
    resp = hub.api("POST", f"/users/{user}/server", json={"profile": "hardware"})
    assert resp.status_code == 500, resp.text
    assert hub.server_model(user) is None
    # the lease was granted (a usage row exists) and ended by the failed spawn itself, before
    # JupyterHub's clean-up of the failed server could end it as "stopped"
    [row] = [r for r in store.history() if r["username"] == user]
    assert row["end_reason"] == ENDED_SPAWN_FAILED, row
    assert store.active() == []
    assert "this server's start fails on purpose" in hub.log()
