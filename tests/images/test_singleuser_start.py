"""The single-user image started as the hub's spawner starts it (`jupyterhub-singleuser`, the
hub's environment, the hardening), in front of a stand-in hub API served on the gateway of a
network the test creates: the server runs through opuhub-singleuser, only the server extensions
the image needs are on, and a kernel is pre-started (and warmed up) for the first notebook."""

from __future__ import annotations

import uuid

import pytest
import requests

from tests.helpers import container_exec, run_on_kernel, wait_until
from tests.singleuser.fake_hub import FakeHubServer

from .conftest import HARDENED, LABELS, container_ip, wait_http

pytestmark = [pytest.mark.docker, pytest.mark.slow]

USER = "starter"
TOKEN = "image-start-test-token"
HEADERS = {"Authorization": f"token {TOKEN}"}


@pytest.fixture
def hub_network(docker_client):
    network = docker_client.networks.create(f"opuhub-test-start-{uuid.uuid4().hex[:8]}",
                                            driver="bridge", labels=LABELS)
    network.reload()
    gateway = network.attrs["IPAM"]["Config"][0]["Gateway"]
    hub = FakeHubServer(gateway, USER)
    yield network, hub
    hub.close()
    network.reload()
    for container in network.containers:
        network.disconnect(container, force=True)
    network.remove()


def execute(base: str, kernel_id: str, code: str) -> str:
    out = run_on_kernel(base.replace("http://", "ws://") + f"api/kernels/{kernel_id}/channels",
                        TOKEN, USER, code, timeout=120, store_history=True)
    assert out["error"] is None, out
    return out["stdout"]


def test_the_hubs_command_starts_the_fast_server_with_a_warm_kernel(
        containers, singleuser_image, hub_network, docker_client):
    network, hub = hub_network
    home = f"opuhub-test-start-home-{uuid.uuid4().hex[:8]}"
    docker_client.volumes.create(home, labels=LABELS)
    try:
        c = containers.run(
            singleuser_image, ["jupyterhub-singleuser", "--ServerApp.ip=0.0.0.0"],
            **HARDENED, read_only=True, tmpfs={"/tmp": "size=64m"}, mem_limit="1g",
            network=network.name, volumes={home: {"bind": "/home/jovyan", "mode": "rw"}},
            environment={**hub.singleuser_env(TOKEN, f"http://0.0.0.0:8888/user/{USER}/"),
                         "OPU_N_COMPONENTS": "100"})
        base = f"http://{container_ip(c, network.name)}:8888/user/{USER}/"
        wait_http(base + "api", c)

        # the hub's command ran through opuhub-singleuser (opuhub-start's switch)
        out = container_exec(c, ["python", "-c", (
            "import glob\n"
            "for p in glob.glob('/proc/[0-9]*/cmdline'):\n"
            "    try: print(open(p, 'rb').read().replace(b'\\0', b' ').decode())\n"
            "    except OSError: pass")], user="1000")
        assert "opuhub-singleuser --ServerApp.ip=0.0.0.0" in out, out

        # only the server extensions the image needs: no language-server proxy
        assert requests.get(base + "lsp/status", headers=HEADERS, timeout=30).status_code == 404

        # the pre-started kernel: not listed until handed out, warm (numpy imported) when it is
        wait_until(lambda: requests.get(base + "opuhub/prestart", headers=HEADERS,
                                        timeout=30).json()["state"] == "done", 120,
                   "the pre-started kernel to be ready", interval=0.5)
        assert requests.get(base + "api/kernels", headers=HEADERS, timeout=30).json() == []
        resp = requests.post(base + "api/kernels", json={"name": "opu"}, headers=HEADERS,
                             timeout=60)
        assert resp.status_code == 201, resp.text
        out = execute(base, resp.json()["id"], (
            "import sys, os\n"
            "print('numpy' in sys.modules, 'numpy' in dir(), os.getcwd())\n"
            "opu.fit1d(n_features=16)\n"
            "print(opu.transform(__import__('numpy').ones((2, 16), 'uint8')).shape)"))
        assert out.split("\n")[:2] == ["True False /home/jovyan", "(2, 100)"], out
    finally:
        for container in list(containers.started):
            container.remove(force=True)
        containers.started.clear()
        docker_client.volumes.get(home).remove(force=True)
