"""The whole platform on the real Docker engine, no mocks: the hub image (as compose runs it)
-> OPUDockerSpawner -> a single-user container per user -> the OPU kernel -> a result, through
the hub's proxy. One hub for the module (a hub start costs many seconds on 2 cores).

Covers issue 6's end-to-end list: two users spawn and compute; containers are hardened; files
survive stop -> start (container removed) and a hub restart; a stand-in device node reaches only
the lease holder's container, whose kernel reports the hardware backend's state honestly; the
lease is released when the holder's server stops; an unreachable engine or a missing image
gives a clear spawn error while the hub stays up.
"""

from __future__ import annotations

import ast
import os
import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.helpers import container_exec

from .conftest import REPO, Containers
from .hubcontainer import HubContainer, hub_network

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(900)]

TAG = uuid.uuid4().hex[:8]
DEVICE_GID = 4242
COMPUTE = (
    "import numpy as np, os\n"
    "x = (np.arange(64) % 3 == 0).astype('uint8')\n"
    "opu.fit1d(n_features=64)\n"
    "y = np.asarray(opu.transform(x), dtype='float64')\n"
    "print(y.shape[0], round(float(y.sum()), 3), os.environ.get('OPU_BACKEND'))\n"
)


def user(name: str) -> str:
    return f"{name}{TAG}"  # letters and digits only: DockerSpawner keeps it as is in names


@pytest.fixture(scope="module")
def network(docker_client):
    with hub_network(docker_client, f"opuhub-test-net-{TAG}", TAG) as net:
        yield net


@pytest.fixture(scope="module")
def module_containers(docker_client, network, request):
    c = Containers(docker_client)
    failed_before = request.session.testsfailed
    yield c
    c.cleanup(failed=request.session.testsfailed > failed_before)


@pytest.fixture(scope="module")
def device_dir():
    """A stand-in OPU: a character device node (the null device's numbers) owned by a
    dedicated group, mode 0660, as a udev rule would set it up."""
    if os.geteuid() != 0:
        pytest.skip("mknod needs root")
    directory = Path(f"/tmp/opuhub-test-dev-{TAG}")
    directory.mkdir(mode=0o755)
    node = directory / "opu0"
    os.mknod(node, 0o660 | 0o020000, os.makedev(1, 3))
    os.chown(node, 0, DEVICE_GID)
    os.chmod(node, 0o660)
    yield node
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def hub(module_containers, hub_image, singleuser_image, network, device_dir):
    h = HubContainer(
        module_containers, hub_image, singleuser_image, network, TAG,
        # the shared OPU too: its broker in a container of its own, started by the hub's
        env={"OPUHUB_DEVICES": str(device_dir), "OPUHUB_SHARED_OPU": "simulated",
             "OPUHUB_SHARED_OPU_FRAME_US": "50"},
        binds={str(device_dir.parent): str(device_dir.parent)},  # same path as on the host
    )
    return h.start()


def test_two_users_spawn_and_run_opu_code(hub, docker_client):
    alice, bob = user("alice"), user("bob")
    hub.create_users(alice, bob)
    with ThreadPoolExecutor(2) as pool:  # both spawn at once
        models = list(pool.map(hub.spawn, [alice, bob]))
    assert all(m["ready"] for m in models)
    results = {}
    for name in (alice, bob):
        out = hub.execute(name, hub.user_token(name), COMPUTE)
        assert out["error"] is None, out
        n, total, backend = out["stdout"].split()
        assert (n, backend) == ("100", "simulator"), out
        results[name] = float(total)
    # the same simulated OPU (same seed and shape) gives both users the same numbers
    assert results[alice] == pytest.approx(results[bob])
    # the curated notebooks are in the user's home
    listing = hub.execute(alice, hub.user_token(alice),
                          "import os; print(sorted(f for f in os.listdir('/home/jovyan/examples')"
                          " if f.endswith('.ipynb')))")
    shipped = sorted(p.name for p in (REPO / "notebooks").glob("*.ipynb"))
    assert ast.literal_eval(listing["stdout"]) == shipped, listing


def test_user_containers_are_hardened(hub, docker_client):
    alice = user("alice")
    if hub.server_model(alice) is None:
        hub.create_users(alice)
        hub.spawn(alice)
    [container] = docker_client.containers.list(filters={"name": f"jupyter-{alice}"})
    host = container.attrs["HostConfig"]
    assert container.attrs["Config"]["User"] == "1000:1000"
    assert host["CapDrop"] == ["ALL"] and not host.get("CapAdd")
    assert "no-new-privileges" in host["SecurityOpt"]
    assert host["PidsLimit"] and host["PidsLimit"] > 0
    assert host["Memory"] == 1024**3  # OPUHUB_MEM_LIMIT=1G
    assert not host["Privileged"]
    mounts = container.attrs["Mounts"]
    assert not any("docker.sock" in (m.get("Source", "") + m.get("Destination", "")) for m in mounts)
    assert [m["Destination"] for m in mounts] == ["/home/jovyan"]
    assert not host.get("Devices")  # simulator profile: no device
    # and from the inside
    lines = container_exec(container, ["sh", "-c", "id -u; grep CapEff /proc/self/status; "
                                                   "ls /var/run/docker.sock 2>&1 || true"]).splitlines()
    assert lines[0] == "1000" and lines[1].split()[1] == "0000000000000000", lines
    assert "No such file" in lines[2], lines


def test_files_survive_stop_start_and_hub_restart(hub, docker_client):
    carol = user("carol")
    hub.create_users(carol)
    hub.spawn(carol)
    token = hub.user_token(carol)
    write = "open('/home/jovyan/kept.txt', 'w').write('still here'); print('written')"
    read = "print(open('/home/jovyan/kept.txt').read())"
    assert hub.execute(carol, token, write)["stdout"].strip() == "written"
    first = docker_client.containers.get(f"jupyter-{carol}").id

    hub.stop_server(carol)  # remove=True: the container is gone, the volume is not
    assert not docker_client.containers.list(all=True, filters={"id": first})
    hub.spawn(carol)
    assert docker_client.containers.get(f"jupyter-{carol}").id != first
    assert hub.execute(carol, token, read)["stdout"].strip() == "still here"

    # a hub restart (upgrade, crash) keeps the running server and its files
    server = docker_client.containers.get(f"jupyter-{carol}").id
    hub.restart()
    model = hub.wait_ready_server(carol)
    assert model["ready"]
    assert docker_client.containers.get(f"jupyter-{carol}").id == server
    assert hub.execute(carol, token, read)["stdout"].strip() == "still here"


DEVICE_CODE = (
    "import os\n"
    "from opu_kernel.backends.hardware import hardware_problems\n"
    "print({'exists': os.path.exists('/dev/opu0'),\n"
    "       'rw': os.access('/dev/opu0', os.R_OK | os.W_OK),\n"
    "       'backend': os.environ.get('OPU_BACKEND'),\n"
    "       'lease': os.environ.get('OPU_LEASE_STATUS'),\n"
    "       'problems': hardware_problems('/dev/opu0')})\n"
)


def test_device_only_in_the_lease_holders_container(hub, docker_client, device_dir):
    holder, other = user("holder"), user("other")
    hub.create_users(holder, other)
    hub.spawn(holder, profile="hardware")
    hub.spawn(other)  # simulator

    seen = ast.literal_eval(hub.execute(holder, hub.user_token(holder), DEVICE_CODE)["stdout"])
    assert seen["exists"] and seen["rw"], seen  # the device node's group was added
    assert seen["backend"] == "hardware" and seen["lease"] == "held", seen
    # honest about the rest: the node is there, LightOn's driver is not
    assert seen["problems"] == ["LightOn's driver module 'lightonopu' is not installed"], seen
    host = docker_client.containers.get(f"jupyter-{holder}").attrs["HostConfig"]
    assert host["Devices"][0]["PathOnHost"] == str(device_dir)
    assert host["Devices"][0]["PathInContainer"] == "/dev/opu0"
    assert str(DEVICE_GID) in (host.get("GroupAdd") or [])

    seen = ast.literal_eval(hub.execute(other, hub.user_token(other), DEVICE_CODE)["stdout"])
    assert not seen["exists"] and seen["backend"] != "hardware", seen
    assert not docker_client.containers.get(f"jupyter-{other}").attrs["HostConfig"].get("Devices")

    # the lease ends with the holder's server: the other user gets the device now
    hub.stop_server(holder)
    hub.stop_server(other)
    hub.spawn(other, profile="hardware")
    host = docker_client.containers.get(f"jupyter-{other}").attrs["HostConfig"]
    assert host["Devices"][0]["PathOnHost"] == str(device_dir)
    hub.stop_server(other)


SHARED_STATUS = (
    "from opu_kernel.backends.shared import broker_status\n"
    "from opu_kernel.broker.client import BrokerClient\n"
    "print(broker_status(BrokerClient.from_env()).get('reserved_for', 'nobody'))\n"
)


def test_the_shared_opu_runs_beside_the_hub_container_and_serves_a_reservation(
        hub, docker_client):
    """As compose runs it: the hub's container starts the broker's container through the
    engine's socket, on the users' network, without a device; a "Shared OPU" server reserved
    for its user gets the in-process simulator's numbers through it, and the broker, reading
    the hub container's lease service, serves that user alone meanwhile."""
    from tests.hub.test_shared_opu import local_sum

    [broker] = docker_client.containers.list(filters={"name": f"{hub.network.name}-opu-broker"})
    config = broker.attrs["HostConfig"]
    assert not config.get("Devices") and config["ReadonlyRootfs"] and config["CapDrop"] == ["ALL"]
    assert list(broker.attrs["NetworkSettings"]["Networks"]) == [hub.network.name]
    sharer = user("sharer")
    hub.create_users(sharer)
    hub.spawn(sharer, profile="shared", reserve_minutes=5)
    out = hub.execute(sharer, hub.user_token(sharer), COMPUTE + SHARED_STATUS)
    assert out["error"] is None, out
    numbers, reserved = out["stdout"].strip().split("\n")
    n, total, backend = numbers.split()
    assert (n, backend) == ("100", "shared"), out
    assert float(total) == local_sum(n_components=100)
    assert reserved.startswith(f"{sharer} until "), (reserved, broker.logs(tail=20))
    assert b"cannot read the leases" not in broker.logs()
    hub.stop_server(sharer)


@pytest.mark.parametrize("problem", ["image-missing", "engine-unreachable"])
def test_clear_spawn_error_and_hub_stays_up(problem, module_containers, hub_image,
                                            singleuser_image, network):
    tag = f"{TAG}{problem[:3]}"
    if problem == "image-missing":
        h = HubContainer(module_containers, hub_image, f"opuhub/absent-{tag}:latest", network, tag)
        expected = f"opuhub/absent-{tag}"  # the image's name
    else:
        h = HubContainer(module_containers, hub_image, singleuser_image, network, tag,
                         docker_socket=False)
        expected = "docker"
    h.start()
    name = f"dave{tag}"
    h.create_users(name)
    resp = h.request_spawn(name)
    message = resp.text
    if resp.status_code in (201, 202):
        # the spawn goes on in the background: its progress events end with the reason
        message = requests.get(f"{h.url}/hub/api/users/{name}/server/progress",
                               headers={"Authorization": f"token {h.token}"}, timeout=150).text
    assert resp.status_code >= 400 or "failed" in message.lower(), (resp.status_code, message)

    # the hub stays up and usable; the user has no server
    assert requests.get(f"{h.url}/hub/health", timeout=10).status_code == 200
    assert h.api("GET", "/users").status_code == 200
    model = h.server_model(name)
    assert model is None or not model.get("ready")

    # and the user is told why
    assert expected in message.lower(), f"spawn error does not say what is wrong: {message[:500]}"
