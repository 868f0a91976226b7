"""The Docker spawner with real containers, when an engine and the singleuser image are here
(the images' own tests cover the image; this checks the spawner's container spec and lease)."""

import json
import os
import shutil
import subprocess

import pytest

from tests.helpers import docker_teardown
from tests.hub.hubtest import (
    docker_spawner_hub,
    hub_factory,
    hub_root,
    launched_hub,
)

pytestmark = [pytest.mark.docker, pytest.mark.slow]

IMAGE = os.environ.get("OPUHUB_TEST_IMAGE", "opuhub/singleuser:latest")
ABSENT_IMAGE = "opuhub/absent-for-tests:never"
ROOT_WANTED = "wantsroot"

# What a deployer appends to the hub's config (issue 9, finding 8): a harmless host setting,
# which used to replace the whole hardening, and a callable that goes wrong for one user.
DEPLOYER_CONFIG = f"""
c.DockerSpawner.extra_host_config = {{"shm_size": "1g"}}


def create_kwargs(spawner):
    if spawner.user.name == {ROOT_WANTED!r}:
        return {{"user": "root"}}
    return {{"labels": {{"opuhub.test": "merged"}}}}


c.DockerSpawner.extra_create_kwargs = create_kwargs
"""

# Run in the holder's kernel: what the container really grants.
INSIDE = r"""
import json, os, threading
status = dict(line.split(":\t", 1) for line in open("/proc/self/status").read().splitlines()
              if ":\t" in line)
shm = os.statvfs("/dev/shm")
release, started, refused = threading.Event(), [], None
try:
    for _ in range(700):  # past the pids limit: threads count as processes there
        t = threading.Thread(target=release.wait, daemon=True)
        t.start()
        started.append(t)
except RuntimeError as e:
    refused = str(e)
release.set()
print(json.dumps({
    "uid": os.getuid(), "cap_eff": status["CapEff"].strip(), "cap_prm": status["CapPrm"].strip(),
    "no_new_privs": status["NoNewPrivs"].strip(), "shm_bytes": shm.f_blocks * shm.f_frsize,
    "threads_started": len(started), "refused": refused,
    "pids_max": open("/sys/fs/cgroup/pids.max").read().strip()
    if os.path.exists("/sys/fs/cgroup/pids.max") else None,
}))
"""


def unavailable(why: str):
    # CI sets OPUHUB_REQUIRE_DOCKER=1 after starting an engine and building the images
    if os.environ.get("OPUHUB_REQUIRE_DOCKER") == "1":
        pytest.fail(f"OPUHUB_REQUIRE_DOCKER=1 but {why}")
    pytest.skip(why)


def docker_client():
    """A client when an engine and the image are here, else None."""
    try:
        import docker

        client = docker.from_env(timeout=5)
        client.ping()
        client.images.get(IMAGE)
        return client
    except Exception:
        return None


def launched_docker_hub(name: str, tmp_path_factory, why_none: str):
    """(hub, client) of the launched Docker-spawner hub ``name``; without an engine and the
    image, or without the hub (``why_none`` says why), the test is skipped — a failure under
    OPUHUB_REQUIRE_DOCKER=1."""
    client = docker_client()
    if client is None:
        unavailable(f"no Docker engine with the image {IMAGE}")
    hub = launched_hub(name, tmp_path_factory)
    if hub is None:
        unavailable(why_none)
    return hub, client


@hub_factory("docker", ("test_docker_spawner.py",))
def make_docker_hub(tmp_path_factory):
    if docker_client() is None or shutil.which("mknod") is None:
        return None
    root = hub_root("docker-hub")
    node = root / "opu0"
    if subprocess.run(["mknod", str(node), "c", "1", "3"]).returncode:
        return None
    # the simulator profile's image is missing on purpose: that spawn must say so
    hub = docker_spawner_hub(root, DEPLOYER_CONFIG, devices=str(node), image=ABSENT_IMAGE,
                             hardware_image=IMAGE)
    hub.devices = [str(node)]
    return hub


@pytest.fixture(scope="module")
def docker_hub(tmp_path_factory):
    hub, client = launched_docker_hub("docker", tmp_path_factory,
                                      "cannot create a stand-in device node")
    yield hub, client
    docker_teardown(client, hub.shutdown, lambda: remove_docker_objects(client, hub, "dockeruser"))


def remove_docker_objects(client, hub, *users: str) -> None:
    """The home volumes of ``users`` and the network of a Docker-spawner test ``hub``."""
    for user in users:
        for volume in client.volumes.list(filters={"name": f"opuhub-home-{user}"}):
            volume.remove(force=True)
    for net in client.networks.list(names=[hub.network]):
        net.remove()


def test_holder_container_is_locked_down_and_gets_the_device(docker_hub):
    hub, client = docker_hub
    hub.create_users("dockeruser")
    hub.spawn("dockeruser", profile="hardware", timeout=120)
    [container] = [c for c in client.containers.list() if c.name == "jupyter-dockeruser"]
    host = container.attrs["HostConfig"]
    assert container.attrs["Config"]["User"] == "1000:1000"
    assert host["CapDrop"] == ["ALL"] and host["SecurityOpt"] == ["no-new-privileges"]
    assert host["PidsLimit"] == 512 and host["Memory"] > 0 and host["AutoRemove"] is True
    assert host["Privileged"] is False and not host.get("CapAdd")
    assert host["ReadonlyRootfs"] is True and set(host["Tmpfs"]) == {"/tmp", "/var/tmp"}
    # the deployer's settings were added, not substituted for the hardening
    assert host["ShmSize"] == 1024**3
    assert container.attrs["Config"]["Labels"]["opuhub.test"] == "merged"
    assert host["Devices"] == [
        {"PathOnHost": hub.devices[0], "PathInContainer": "/dev/opu0", "CgroupPermissions": "rwm"}
    ]
    mounts = {m["Destination"]: m for m in container.attrs["Mounts"]}
    # a hub running as root beside the engine gives each user a size-limited home (2G default)
    home = hub.root / "homes" / "dockeruser"
    assert mounts["/home/jovyan"]["Type"] == "bind"
    assert mounts["/home/jovyan"]["Source"] == str(home) and os.path.ismount(home)
    assert not any("docker.sock" in (m.get("Source") or "") for m in mounts.values())

    token = hub.user_token("dockeruser")
    out = hub.execute("dockeruser", token, "import os; print(os.getuid(), os.environ['OPU_DEVICE'], "
                      "os.environ['OPU_LEASE_HOLDER'], os.path.exists('/dev/opu0'))")
    assert out["stdout"].split() == ["1000", "/dev/opu0", "dockeruser", "True"], out
    out = hub.execute("dockeruser", token, INSIDE, timeout=120)
    inside = json.loads(out["stdout"])
    assert inside["uid"] == 1000
    assert inside["cap_eff"] == inside["cap_prm"] == "0000000000000000", inside
    assert inside["no_new_privs"] == "1"
    assert inside["shm_bytes"] == 1024**3
    assert inside["pids_max"] in ("512", None)
    assert inside["refused"] and inside["threads_started"] < 512, inside

    hub.stop_server("dockeruser", timeout=60)
    assert hub.leases() == []
    assert not [c for c in client.containers.list(all=True) if c.name == "jupyter-dockeruser"]
    # the home outlives the container, and no volume was made in the engine's data directory
    assert os.path.ismount(home) and (home / "examples").is_dir()
    assert not client.volumes.list(filters={"name": "opuhub-home-dockeruser"})


def test_a_deployer_callable_asking_for_root_fails_that_spawn_only(docker_hub):
    hub, client = docker_hub
    hub.create_users(ROOT_WANTED)
    resp = hub.api("POST", f"/users/{ROOT_WANTED}/server", json={"profile": "hardware"})
    assert resp.status_code == 500, resp.text
    message = resp.json()["message"]
    assert "extra_create_kwargs" in message and "root" in message and "admin" in message
    assert hub.server_model(ROOT_WANTED) is None
    assert not [c for c in client.containers.list(all=True) if c.name == f"jupyter-{ROOT_WANTED}"]
    assert hub.leases() == []  # the claimed device went back at once
    assert "extra_create_kwargs" in hub.log()
    assert hub.api("GET", "/users").status_code == 200


def test_a_missing_image_is_a_clear_error_and_the_hub_stays_up(docker_hub):
    hub, client = docker_hub
    hub.create_users("imageless")
    resp = hub.api("POST", "/users/imageless/server", json={"profile": "simulator"})
    assert resp.status_code == 503, resp.text
    assert ABSENT_IMAGE in resp.json()["message"] and "make images" in resp.json()["message"]
    assert hub.server_model("imageless") is None
    assert hub.api("GET", "/users").status_code == 200
