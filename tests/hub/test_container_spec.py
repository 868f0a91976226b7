"""The container spec for a user's server, as pure dicts (no Docker engine needed)."""

from types import SimpleNamespace

import pytest

from opuhub import container_spec
from opuhub.lease import Lease
from opuhub.profiles import SpawnChoice
from opuhub.spawner import OPUDockerSpawner


def test_every_container_is_locked_down():
    config = container_spec.host_config(256)
    assert config == {
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "pids_limit": 256,
        "privileged": False,
        "read_only": True,
        "tmpfs": {"/tmp": "size=536870912,mode=1777,nosuid,nodev,exec",
                  "/var/tmp": "size=536870912,mode=1777,nosuid,nodev,exec"},
        "log_config": {"type": "json-file", "config": {"max-size": "10m", "max-file": "2"}},
    }
    assert "devices" not in config


def test_the_container_cannot_write_to_the_hosts_disk_outside_its_home():
    # read-only root (the writable layer lies in /var/lib/docker), tmpfs scratch, rotated log
    config = container_spec.host_config(1, tmp_bytes=64 * 1024**2,
                                        log=container_spec.log_config("1m", 3))
    assert config["read_only"] is True
    assert set(config["tmpfs"]) == {"/tmp", "/var/tmp"}
    assert all("size=67108864" in options.split(",") for options in config["tmpfs"].values())
    assert config["log_config"] == {"type": "json-file",
                                    "config": {"max-size": "1m", "max-file": "3"}}
    with pytest.raises(ValueError, match="tmpfs size"):
        container_spec.tmpfs_options(0)
    with pytest.raises(ValueError, match="max_files"):
        container_spec.log_config("1m", 0)


def test_a_size_limited_home_replaces_the_home_volume_only():
    binds = {"opuhub-home-alice": {"bind": "/home/jovyan", "mode": "rw"},
             "datasets": {"bind": "/data", "mode": "ro"}}
    assert container_spec.home_volume_name(binds) == "opuhub-home-alice"
    replaced = container_spec.home_bind(binds, "/srv/homes/alice")
    assert replaced == {"/srv/homes/alice": {"bind": "/home/jovyan", "mode": "rw"},
                        "datasets": {"bind": "/data", "mode": "ro"}}
    assert container_spec.home_volume_name(replaced) is None
    assert container_spec.home_bind(replaced, "/srv/homes/alice") == replaced  # idempotent


def test_only_the_holder_gets_the_device_and_its_group():
    config = container_spec.host_config(256, device="/dev/opu1", device_gid=44)
    assert config["devices"] == ["/dev/opu1:/dev/opu0:rwm"]
    assert config["group_add"] == ["44"]
    assert "group_add" not in container_spec.host_config(1, device="/dev/opu1", device_gid=0)
    with pytest.raises(ValueError, match="pids_limit"):
        container_spec.host_config(0)


def test_non_root_user_home_volume_and_command():
    assert container_spec.create_kwargs() == {"user": "1000:1000", "working_dir": "/home/jovyan"}
    with pytest.raises(ValueError, match="root"):
        container_spec.create_kwargs(uid=0)
    assert container_spec.home_volume() == {"opuhub-home-{username}": "/home/jovyan"}
    assert container_spec.singleuser_command() == ["jupyterhub-singleuser"]


@pytest.mark.parametrize(
    "volumes",
    [
        {"/var/run/docker.sock": "/var/run/docker.sock"},
        {"/run/docker.sock": {"bind": "/x", "mode": "rw"}},
        {"sock": {"bind": "/var/run/docker.sock", "mode": "ro"}},
    ],
)
def test_the_docker_socket_is_never_mounted(volumes):
    with pytest.raises(ValueError, match="Docker socket"):
        container_spec.check_volumes(volumes)
    with pytest.raises(ValueError, match="Docker socket"):
        OPUDockerSpawner(volumes=volumes)


def spawner(**kw):
    return OPUDockerSpawner(user=SimpleNamespace(name="alice"), **kw)


def test_docker_spawner_defaults():
    s = spawner()
    assert s.remove is True
    assert s.volumes == {"opuhub-home-{username}": "/home/jovyan"}
    assert s.cmd == ["jupyterhub-singleuser"]
    assert s.pull_policy == "never"
    assert s.extra_create_kwargs(s)["user"] == "1000:1000"
    assert set(s.allowed_images) == set(s.images.values())
    assert s.mem_limit and s.cpu_limit


def test_extra_host_config_passes_the_device_only_with_a_lease(tmp_path):
    node = tmp_path / "opu0"
    node.touch()
    s = spawner()
    s.prepare_profile(SpawnChoice("simulator"), None)
    assert "devices" not in s.extra_host_config(s)
    s.prepare_profile(SpawnChoice("hardware"), Lease(str(node), "alice", "", 0.0))
    config = s.extra_host_config(s)
    assert config["devices"] == [f"{node}:/dev/opu0:rwm"]
    assert s.kernel_device(Lease(str(node), "alice", "", 0.0)) == "/dev/opu0"


def test_profile_picks_the_image():
    s = spawner(images={"simulator": "sim:1", "hardware": "hw:1"})
    s.prepare_profile(SpawnChoice("hardware"), None)
    assert s.image == "hw:1"
    s.prepare_profile(SpawnChoice("simulator"), None)
    assert s.image == "sim:1"
    with pytest.raises(ValueError, match="hardware"):
        spawner(images={"simulator": "sim:1"})


async def _ip_and_port(s):
    return await s.get_ip_and_port()


def test_host_network_picks_a_free_port_per_spawn():
    import asyncio

    s = spawner(network_name="host")
    s.prepare_profile(SpawnChoice("simulator"), None)
    first = s.port
    assert s.ip == "127.0.0.1" and first not in (0, 8888)
    assert asyncio.run(_ip_and_port(s)) == ("127.0.0.1", first)
    assert s.get_state()["opu_port"] == first
    restored = spawner(network_name="host")
    restored.load_state({"opu_port": first})
    assert restored.port == first
    # no port bindings in host mode (docker-py refuses them there)
    assert s.use_internal_ip is True


def test_disk_traits_reach_the_host_config(tmp_path):
    s = spawner(tmp_size="64M", log_max_size="1m", log_max_files=1)
    host = s.extra_host_config(s)
    assert host["read_only"] is True
    assert host["tmpfs"]["/tmp"].startswith("size=67108864,")
    assert host["log_config"]["config"] == {"max-size": "1m", "max-file": "1"}
    for bad in ({"tmp_size": "0"}, {"tmp_size": "lots"}, {"home_quota": "-1G"},
                {"log_max_size": "0"}, {"homes_dir": "/var/lib/docker/homes"},
                {"homes_dir": "/etc"}):
        with pytest.raises(ValueError):
            spawner(**bad)
    s = spawner(homes_dir=str(tmp_path / "homes"))
    assert s.host_home == tmp_path / "homes" / "alice"


def test_uid_zero_is_refused():
    with pytest.raises(ValueError, match="root"):
        spawner(container_uid=0)



def test_docker_failures_are_explained_to_the_user():
    import docker.errors
    import requests

    from opuhub.spawner import explain_docker_error

    status, message = explain_docker_error(docker.errors.ImageNotFound("No such image"), "img:9")
    assert status == 503 and "img:9" in message and "make images" in message
    status, message = explain_docker_error(
        docker.errors.DockerException("Error while fetching server API version"), "img:9")
    assert status == 503 and "Docker engine is unreachable" in message
    status, _ = explain_docker_error(requests.exceptions.ConnectionError("refused"), "img:9")
    assert status == 503
    assert explain_docker_error(ValueError("not docker"), "img:9") is None
