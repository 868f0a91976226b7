"""The OPU lease in the running hub: grant, refusal, release on stop / crash / expiry,
admin revoke, restore after a hub restart, metrics. One stand-in device, so every
hardware server competes for it."""

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from opuhub.lease import LeasePolicy
from opuhub.lease_store import LeaseStore
from tests.helpers import wait_until

pytestmark = pytest.mark.slow

ENV_CODE = "import os; print({k: v for k, v in os.environ.items() if k.startswith('OPU_')})"


def store(hub) -> LeaseStore:
    return LeaseStore(hub.state / "opu_leases.sqlite")


def no_leases(hub):
    return hub.leases() == []


def last_end_reason(hub, user):
    return next(r["end_reason"] for r in store(hub).history() if r["username"] == user)


def test_bad_spawn_options_get_a_clear_400(hub):
    hub.create_users("eve")
    resp = hub.api("POST", "/users/eve/server", json={"image": "attacker/rootkit"})
    assert resp.status_code == 400 and "unknown spawn option(s): 'image'" in resp.text
    resp = hub.api("POST", "/users/eve/server", json={"profile": "gpu"})
    assert resp.status_code == 400 and "unknown profile" in resp.text
    assert requests.get(f"{hub.url}/hub/api/", timeout=10).status_code == 200  # hub still up


def test_fifty_race_for_the_device_then_grant_refusal_env_metrics_release(hub):
    """50 users ask for the one device at once: one holder, 49 told who holds it. Then the
    holder's kernel sees and uses the lease, a latecomer is refused fast, metrics count it,
    and stopping the server ends the lease."""
    racers = [f"racer{i:02d}" for i in range(50)]
    hub.create_users(*racers)
    busy_before = store(hub).refusal_counts().get("busy", 0)  # other modules race too

    def spawn(name):
        return name, hub.api("POST", f"/users/{name}/server", json={"profile": "hardware"})

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = dict(pool.map(spawn, racers))
    winners = [name for name, resp in results.items() if resp.status_code in (201, 202)]
    assert len(winners) == 1, {n: r.status_code for n, r in results.items()}
    [winner] = winners
    for name, resp in results.items():
        if name != winner:
            assert resp.status_code == 409, resp.text
            assert f"held by {winner}" in resp.json()["message"]
    wait_until(lambda: (hub.server_model(winner) or {}).get("ready"), 90, "the winner's server")
    hub.remember_pid(winner)
    assert [lease["user"] for lease in hub.leases()] == [winner]
    assert store(hub).refusal_counts() == {"busy": busy_before + 49}
    [lease] = hub.leases()
    assert lease["device"] == hub.devices[0]
    assert lease["expires"] is not None  # the default maximum duration applies

    # the kernel sees the lease
    token = hub.user_token(winner)
    env = eval(hub.execute(winner, token, ENV_CODE)["stdout"])
    assert env["OPU_BACKEND"] == "hardware" and env["OPU_PROFILE"] == "hardware"
    assert env["OPU_DEVICE"] == hub.devices[0]
    assert env["OPU_LEASE_STATUS"] == "held" and env["OPU_LEASE_HOLDER"] == winner
    assert env["OPU_LEASE_EXPIRES"] == lease["expires"]
    assert env["OPU_N_COMPONENTS"] == "100"
    # the holder's preloaded `opu` runs on the leased device (the fake vendor driver here);
    # the "opu" kernel is part of the install (make install), so its absence fails here
    out = hub.execute(winner, token, "import numpy as np\n"
                      "opu.fit1d(n_features=64)\n"
                      "y = opu.transform((np.arange(64) % 2).astype('uint8'))\n"
                      "print(opu.backend, y.shape)\n"
                      "%opu", kernel="opu")
    assert out["error"] is None, out
    assert out["stdout"].splitlines()[0] == "hardware (100,)", out
    assert winner in out["stdout"], out  # %opu shows the lease

    # a second user fails fast, told who holds it, until when, and to use the simulator
    hub.create_users("waiter")
    started = time.monotonic()
    resp = hub.api("POST", "/users/waiter/server", json={"profile": "hardware"})
    assert time.monotonic() - started < 8
    assert resp.status_code == 409, resp.text
    message = resp.json()["message"]
    assert "busy" in message and winner in message and f"until {lease['until']}" in message
    assert "Simulator" in message
    assert hub.server_model("waiter") is None

    # metrics: one lease, seconds for the holder, the refusals; users may not read them
    metrics = hub.get("/services/opu-lease/metrics")
    assert metrics.status_code == 200
    assert "opuhub_active_leases 1.0" in metrics.text
    # 49 racers + waiter
    assert f'opuhub_lease_refusals_total{{reason="busy"}} {busy_before + 50}.0' in metrics.text
    assert f'opuhub_lease_seconds_total{{user="{winner}"}}' in metrics.text
    assert hub.get("/services/opu-lease/metrics", token).status_code == 403
    assert hub.get("/hub/metrics").status_code == 200  # JupyterHub's own, next to ours

    # the user sees the leases and their own usage only
    assert hub.leases(token)[0]["user"] == winner
    usage = hub.get("/services/opu-lease/api/usage", token).json()["seconds"]
    assert list(usage) == [winner]

    hub.stop_server(winner)
    wait_until(lambda: no_leases(hub), 15, "the lease to end")
    assert last_end_reason(hub, winner) == "stopped"


def test_release_when_the_server_is_killed(hub):
    hub.create_users("crasher")
    hub.spawn("crasher", profile="hardware")
    pid = hub.remember_pid("crasher")
    assert hub.leases()[0]["user"] == "crasher"
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: no_leases(hub), 30, "the lease of the killed server to end")
    wait_until(lambda: hub.server_model("crasher") is None, 30, "the hub to notice")


def test_expiry_stops_the_server_and_ends_the_lease(hub):
    hub.create_users("shorty")
    hub.spawn("shorty", profile="hardware", lease_minutes=0.15)  # 9 seconds
    [lease] = hub.leases()
    assert lease["seconds_left"] <= 9
    wait_until(lambda: no_leases(hub), 40, "the lease to expire")
    wait_until(lambda: hub.server_model("shorty") is None, 30, "the expired server to stop")
    assert last_end_reason(hub, "shorty") == "expired"
    assert "lease ends in" in hub.log()  # the holder was warned first
    # files persist: the home directory is still there
    assert (hub.root / "homes" / "shorty").is_dir()


def test_restore_after_hub_restart_then_admin_revoke(hub):
    hub.create_users("dana")
    hub.spawn("dana", profile="hardware")
    token = hub.user_token("dana")
    [before] = hub.leases()
    hub.stop()  # cleanup_servers=False: dana's server keeps running while the hub is down
    # a lease whose server vanished while the hub was down (e.g. its machine rebooted)
    ghost = store(hub).claim("ghost", "", ["/dev/opu-gone"], LeasePolicy(), now=time.time() - 600)
    assert ghost.device == "/dev/opu-gone"
    hub.start()
    # the ghost's lease is reconciled away; dana's server and lease are restored
    wait_until(lambda: [lease["user"] for lease in hub.leases()] == ["dana"], 30,
             "the orphaned lease to be released")
    assert last_end_reason(hub, "ghost") == "server-gone"
    assert hub.leases()[0]["started"] == before["started"]
    assert hub.server_model("dana")["ready"]
    assert hub.get("/user/dana/api/status", token).status_code == 200

    # revoke: users may not; a tutor (OPUHUB_LEASE_TUTORS, not an admin) holds the scope
    # custom:opu-lease:revoke and stops the holder's server, which ends the lease
    device = os.path.basename(hub.devices[0])
    revoke = f"/services/opu-lease/api/leases/{device}"
    refused = requests.delete(f"{hub.url}{revoke}", headers={"Authorization": f"token {token}"},
                              timeout=30)
    assert refused.status_code == 403 and "custom:opu-lease:revoke" in refused.text
    hub.create_users("tutor")
    assert hub.api("GET", "/users/tutor").json()["admin"] is False
    tutor = hub.user_token("tutor")
    usage = hub.get("/services/opu-lease/api/usage", tutor).json()["seconds"]
    assert "dana" in usage  # everyone's usage (custom:opu-lease:read-usage)
    assert set(hub.get("/services/opu-lease/api/usage", token).json()["seconds"]) == {"dana"}
    resp = requests.delete(f"{hub.url}{revoke}", headers={"Authorization": f"token {tutor}"},
                           timeout=30)
    assert resp.status_code == 200, resp.text
    assert resp.json()["revoked"]["user"] == "dana"
    wait_until(lambda: hub.server_model("dana") is None, 30, "the revoked server to stop")
    wait_until(lambda: no_leases(hub), 30, "the revoked lease to end")
    assert last_end_reason(hub, "dana") == "revoked"
    assert requests.delete(f"{hub.url}{revoke}", headers={"Authorization": f"token {hub.token}"},
                           timeout=30).status_code == 404
