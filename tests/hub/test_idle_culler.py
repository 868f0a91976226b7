"""jupyterhub-idle-culler runs as a hub-managed service and culls an idle server; the
server's OPU lease ends with it. The second hub, with short timeouts."""

import pytest
import requests

from opuhub.lease_store import LeaseStore
from tests.helpers import wait_until

pytestmark = pytest.mark.slow


def test_culler_culls_an_idle_server_and_its_lease_ends(second_hub):
    hub = second_hub
    hub.create_users("sleepy")
    resp = hub.api("POST", "/users/sleepy/server", json={"profile": "hardware"})
    assert resp.status_code in (201, 202), resp.text
    wait_until(lambda: hub.leases(), 30, "the lease to be granted")
    hub.remember_pid("sleepy")
    # nobody uses the server: the culler stops it, and the stop ends the lease
    wait_until(lambda: hub.server_model("sleepy") is None and not hub.leases(), 90,
             "the idle server to be culled")
    history = LeaseStore(hub.state / "opu_leases.sqlite").history()
    assert history[0]["username"] == "sleepy" and history[0]["end_reason"] == "stopped"
    assert "Culling server sleepy" in hub.log() or "culling" in hub.log().lower()


def test_idle_kernels_are_culled_inside_a_server_in_use(second_hub):
    """Server-side kernel culling: an open tab keeps the server in use, not its idle kernels."""
    hub = second_hub
    hub.create_users("tabby")
    hub.spawn("tabby")
    token = hub.user_token("tabby")
    kernels = f"{hub.url}/user/tabby/api/kernels"
    headers = {"Authorization": f"token {token}"}
    created = requests.post(kernels, json={"name": "python3"}, headers=headers, timeout=60)
    assert created.status_code == 201, created.text
    # like a browser tab polling the server: the server stays active, the kernel idles
    wait_until(lambda: requests.get(kernels, headers=headers, timeout=30).json() == [], 60,
             "the idle kernel to be culled", interval=0.5)
    assert hub.server_model("tabby") is not None
