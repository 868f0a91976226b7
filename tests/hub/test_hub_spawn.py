"""The real hub with the local-process spawner: spawn, run code through the proxy, isolation."""

import pytest
import requests

pytestmark = pytest.mark.slow


def test_spawn_and_execute_in_the_users_kernel(hub):
    hub.create_users("alice")
    assert hub.spawn("alice").status_code in (201, 202)
    token = hub.user_token("alice")
    code = (
        "import numpy as np, os\n"
        "x = (np.arange(64) % 3 == 0).astype('uint8')\n"
        "opu.fit1d(n_features=64)\n"
        "y = opu.transform(x)\n"
        "print(y.shape, round(float(np.asarray(y, dtype='float64').sum()), 3), os.environ['OPU_BACKEND'])"
    )
    # the "opu" kernel (preloaded `opu`) is part of the install: a missing kernel fails here
    out = hub.execute("alice", token, code, kernel="opu")
    assert out["error"] is None, out
    shape, total, backend = out["stdout"].rsplit(" ", 2)
    assert shape == "(100,)" and backend.strip() == "simulator"

    # the same simulated OPU computed here gives the same numbers
    import numpy as np

    from opu_kernel import OPU

    local = OPU(n_components=100, backend="simulator")
    local.fit1d(n_features=64)
    expected = np.asarray(local.transform((np.arange(64) % 3 == 0).astype("uint8")), dtype="float64").sum()
    assert float(total) == pytest.approx(round(float(expected), 3), rel=1e-5)


def test_user_cannot_reach_another_users_server(hub):
    # alice's server runs since the test above (the session shares one hub)
    if hub.server_model("alice") is None:
        hub.create_users("alice")
        hub.spawn("alice")
    hub.create_users("mallory")
    mallory = hub.user_token("mallory")
    for method in ("GET", "POST"):
        resp = requests.request(
            method, f"{hub.url}/user/alice/api/kernels",
            headers={"Authorization": f"token {mallory}"},
            json={} if method == "POST" else None, allow_redirects=False, timeout=30,
        )
        assert resp.status_code in (302, 403, 404), (method, resp.status_code, resp.text[:200])
    # the hub API refuses too: no starting, stopping or reading alice's server
    assert hub.api("DELETE", "/users/alice/server", token=mallory).status_code in (403, 404)
    assert hub.api("GET", "/users/alice", token=mallory).status_code in (403, 404)
    assert hub.server_model("alice")["ready"]
    # alice's own token works
    assert hub.get("/user/alice/api/kernels", hub.user_token("alice")).status_code == 200
