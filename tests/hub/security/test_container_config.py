"""Deployer settings cannot undo the container hardening (issue 9, finding 8).

Before the fix, ``c.DockerSpawner.extra_host_config = {"shm_size": "1g"}`` *replaced* the
callable that carried cap_drop, no-new-privileges, the pids limit and the lease holder's device,
and ``extra_create_kwargs`` replaced the non-root user. Now whatever the deployer sets is merged
with the hardening at every spawn, and settings that would weaken it are refused: dicts when the
spawner is configured (a hub with such config cannot spawn anything), callables at the spawn
with an HTTP 500 naming the setting. No Docker engine needed here; the real-container check is
in tests/hub/test_docker_spawner.py.
"""

import asyncio
from types import SimpleNamespace

import pytest
from traitlets.config import Config

from opuhub import container_spec
from opuhub.container_spec import UnsafeContainerConfig
from opuhub.lease import Lease
from opuhub.profiles import SpawnChoice
from opuhub.spawner import OPUDockerSpawner, explain_docker_error

HARDENING = container_spec.host_config(512)


def configured(**docker_spawner) -> OPUDockerSpawner:
    """A spawner configured as jupyterhub_config.py would: ``c.DockerSpawner.<key> = value``."""
    config = Config()
    for key, value in docker_spawner.items():
        setattr(config.DockerSpawner, key, value)
    return OPUDockerSpawner(user=SimpleNamespace(name="alice"), config=config)


def assert_hardened(host: dict, pids_limit: int = 512):
    assert "ALL" in host["cap_drop"]
    assert "no-new-privileges" in host["security_opt"]
    assert host["pids_limit"] == pids_limit
    assert host["privileged"] is False
    assert not host.get("cap_add")


# --- the finding itself: a harmless setting no longer replaces the hardening --------------------


def test_a_harmless_extra_host_config_is_added_to_the_hardening():
    s = configured(extra_host_config={"shm_size": "1g"})
    host = s.extra_host_config(s)
    assert host["shm_size"] == "1g"
    assert_hardened(host)
    assert "devices" not in host  # no lease, no device


def test_the_lease_holder_still_gets_the_device_with_deployer_settings(tmp_path):
    node = tmp_path / "opu0"
    node.touch()
    s = configured(extra_host_config={"shm_size": "1g", "group_add": ["100"]})
    s.prepare_profile(SpawnChoice("hardware"), Lease(str(node), "alice", "", 0.0))
    host = s.extra_host_config(s)
    assert host["devices"] == [f"{node}:/dev/opu0:rwm"]
    assert "100" in host["group_add"] and host["shm_size"] == "1g"
    assert_hardened(host)


def test_deployer_lists_are_merged_and_ours_win():
    merged = container_spec.merge_host_config(
        {"cap_drop": ["NET_RAW"], "security_opt": ["apparmor=docker-default"], "pids_limit": 64},
        HARDENING,
    )
    assert merged["cap_drop"] == ["ALL", "NET_RAW"]
    assert merged["security_opt"] == ["no-new-privileges", "apparmor=docker-default"]
    assert merged["pids_limit"] == 64  # stricter than ours: kept
    assert container_spec.merge_host_config({"pids_limit": 100_000}, HARDENING)["pids_limit"] == 512


def test_a_harmless_extra_create_kwargs_keeps_the_non_root_user():
    s = configured(extra_create_kwargs={"labels": {"team": "optics"}, "working_dir": "/tmp"})
    kwargs = s.extra_create_kwargs(s)
    assert kwargs == {"user": "1000:1000", "working_dir": "/tmp", "labels": {"team": "optics"}}


def test_sync_and_async_callables_are_merged_at_the_spawn():
    async def async_config(spawner):
        return {"shm_size": "2g"}

    s = configured(extra_host_config=lambda spawner: {"shm_size": "1g"},
                   extra_create_kwargs=async_config)
    host = s.extra_host_config(s)
    assert host["shm_size"] == "1g"
    assert_hardened(host)
    assert asyncio.run(s.extra_create_kwargs(s))["user"] == "1000:1000"
    s.extra_host_config = async_config
    host = asyncio.run(s.extra_host_config(s))
    assert host["shm_size"] == "2g"
    assert_hardened(host)


# --- settings that would weaken the hardening are refused, naming the key ---------------------


WEAKENING_HOST_CONFIG = [
    ({"privileged": True}, "privileged"),
    ({"cap_add": ["SYS_ADMIN"]}, "cap_add"),
    ({"security_opt": ["seccomp=unconfined"]}, "seccomp"),
    ({"security_opt": ["seccomp:/etc/docker/loose.json"]}, "seccomp"),
    ({"security_opt": ["apparmor=unconfined"]}, "AppArmor"),
    ({"security_opt": ["apparmor:unconfined"]}, "AppArmor"),
    ({"security_opt": ["no-new-privileges:false"]}, "setuid"),
    ({"security_opt": ["label=disable"]}, "SELinux"),
    ({"security_opt": ["systempaths=unconfined"]}, "unknown security option"),
    ({"pids_limit": -1}, "process limit"),
    ({"pids_limit": 0}, "process limit"),
    ({"pid_mode": "host"}, "host's process namespace"),
    ({"ipc_mode": "host"}, "IPC"),
    ({"ipc_mode": "container:jupyter-bob"}, "another container's"),
    ({"pid_mode": "container:jupyter-bob"}, "another container's"),
    ({"uts_mode": "host"}, "host name"),
    ({"userns_mode": "host"}, "user namespace"),
    ({"cgroupns": "host"}, "cgroup namespace"),
    ({"network_mode": "host"}, "network_name"),
    ({"network_mode": "container:jupyter-bob"}, "network_name"),
    ({"devices": ["/dev/opu0:/dev/opu0:rwm"]}, "lease holder"),
    ({"devices": ["/dev/sda:/dev/sda:rwm"]}, "devices"),
    ({"device_cgroup_rules": ["c 1:3 rwm"]}, "device"),
    ({"binds": {"/var/run/docker.sock": {"bind": "/d.sock", "mode": "rw"}}}, "Docker socket"),
    ({"binds": ["/run/docker.sock:/var/run/docker.sock"]}, "Docker socket"),
    ({"binds": {"/": {"bind": "/host", "mode": "ro"}}}, "system path"),
    ({"binds": ["/etc:/host-etc:ro"]}, "system path"),
    ({"binds": ["/srv/../etc/shadow:/x:ro"]}, "system path"),
    ({"binds": ["/home:/host-home"]}, "allowed_host_paths"),
    ({"mounts": [{"Type": "bind", "Source": "/", "Target": "/host"}]}, "system path"),
    ({"mounts": [{"type": "bind", "source": "/home", "target": "/h"}]}, "allowed_host_paths"),
    ({"mounts": [{"Type": "volume", "Source": "v", "Target": "/v", "VolumeOptions": {
        "DriverConfig": {"Name": "local", "Options": {"o": "bind", "device": "/etc"}}}}]},
     "driver options"),
    ({"volumes_from": ["jupyter-bob"]}, "another user's home"),
    ({"cgroup_parent": "/"}, "cgroup"),
    ({"sysctls": {"kernel.shm_rmid_forced": "1"}}, "kernel parameters"),
    ({"oom_kill_disable": True}, "memory limit"),
    ({"group_add": ["0"]}, "root group"),
    ({"read_only": False}, "read-only"),
    ({"read_only": None}, "read-only"),
    ({"tmpfs": "/tmp"}, "dict or a list"),
    ({"log_config": "json-file"}, "must be a dict"),
    ("privileged", "must be a dict"),
]


@pytest.mark.parametrize("config, why", WEAKENING_HOST_CONFIG)
def test_weakening_host_settings_are_refused_when_the_hub_is_configured(config, why):
    with pytest.raises(UnsafeContainerConfig, match=why) as refused:
        container_spec.check_host_config(config)
    if isinstance(config, dict):
        [key] = config
        assert key in str(refused.value)
        # configured through c.DockerSpawner: the spawner refuses to exist
        with pytest.raises(UnsafeContainerConfig, match=key):
            configured(extra_host_config=config)


@pytest.mark.parametrize("kwargs, why", [
    ({"user": "root"}, "never run as root"),
    ({"user": 0}, "never run as root"),
    ({"user": "0:0"}, "never run as root"),
    ({"user": "1001:1001"}, "container_uid"),
    ({"host_config": {"Privileged": True}}, "extra_host_config"),
    ({"networking_config": {"EndpointsConfig": {"host": {}}}}, "network_name"),
])
def test_weakening_create_kwargs_are_refused(kwargs, why):
    with pytest.raises(UnsafeContainerConfig, match=why):
        configured(extra_create_kwargs=kwargs)


def test_a_weakening_callable_fails_the_spawn_with_a_500_naming_the_setting():
    async def sneaky(spawner):
        return {"shm_size": "1g", "privileged": True}

    s = configured(extra_host_config=sneaky)  # a callable: checked when it runs
    with pytest.raises(UnsafeContainerConfig, match="privileged") as refused:
        asyncio.run(s.extra_host_config(s))
    status, message = explain_docker_error(refused.value, s.image)
    assert status == 500 and "privileged" in message and "admin" in message

    s = configured(extra_create_kwargs=lambda spawner: {"user": "root"})
    with pytest.raises(UnsafeContainerConfig, match="root"):
        s.extra_create_kwargs(s)


def test_templates_are_checked_as_docker_will_see_them():
    # DockerSpawner expands {raw_username} after us: the path is checked expanded and normalised
    s = OPUDockerSpawner(user=SimpleNamespace(name="alice"), allowed_host_paths=["/srv/data"])
    s.extra_host_config = lambda spawner: {"binds": ["/srv/data/{raw_username}:/data:ro"]}
    assert s.extra_host_config(s)["binds"] == ["/srv/data/{raw_username}:/data:ro"]
    s.extra_host_config = lambda spawner: {"binds": ["/srv/data/{raw_username}/../../../etc:/x"]}
    with pytest.raises(UnsafeContainerConfig, match="system path"):
        s.extra_host_config(s)


def test_host_paths_need_the_allow_list_and_system_paths_never_pass():
    allowed = ["/srv/opuhub/datasets"]
    assert container_spec.check_host_config(
        {"binds": {"/srv/opuhub/datasets": {"bind": "/data", "mode": "ro"}}}, allowed)
    assert container_spec.check_host_config({"binds": ["named-volume:/data"]})
    with pytest.raises(UnsafeContainerConfig, match="allowed_host_paths"):
        container_spec.check_host_config({"binds": ["/srv/opuhub:/srv"]}, allowed)
    with pytest.raises(UnsafeContainerConfig, match="system path"):
        container_spec.check_host_config({"binds": ["/etc:/etc"]}, ["/etc"])
    with pytest.raises(UnsafeContainerConfig, match="other than '/'"):
        OPUDockerSpawner(allowed_host_paths=["/"])
    # the same rule for DockerSpawner's own volume and mount settings
    with pytest.raises(UnsafeContainerConfig, match="allowed_host_paths"):
        configured(volumes={"/home": "/host-home"})
    with pytest.raises(UnsafeContainerConfig, match="system path"):
        configured(mounts=[{"type": "bind", "source": "/", "target": "/host"}])
    ok = configured(volumes={"/srv/opuhub/datasets": {"bind": "/data", "mode": "ro"}},
                    allowed_host_paths=allowed)
    assert "/srv/opuhub/datasets" in ok.volumes


def test_network_host_only_through_network_name():
    assert configured(network_name="host").host_network
    with pytest.raises(UnsafeContainerConfig, match="another container"):
        configured(network_name="container:jupyter-bob")
    with pytest.raises(UnsafeContainerConfig, match="network_name"):
        configured(extra_host_config={"network_mode": "host"})


def test_settings_that_do_not_touch_isolation_pass():
    harmless = {
        "shm_size": "1g", "ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 2048}],
        "tmpfs": {"/scratch": "size=100m"}, "read_only": True, "extra_hosts": {"db": "10.0.0.2"},
        "dns": ["10.0.0.53"], "cpu_period": 50_000, "mem_reservation": "1g",
        "security_opt": ["no-new-privileges:true", "apparmor=docker-default"],
        "mounts": [{"Type": "tmpfs", "Target": "/tmp"}, {"Type": "volume", "Source": "v",
                                                         "Target": "/v"}],
        "device_requests": [{"Driver": "nvidia", "Count": -1, "Capabilities": [["gpu"]]}],
        "ipc_mode": "private", "privileged": False, "cap_add": [],
    }
    merged = container_spec.merge_host_config(harmless, HARDENING)
    assert_hardened(merged)
    assert merged["shm_size"] == "1g" and merged["device_requests"]


# --- disk (issue 9, finding 5): the deployer cannot give the container the host's disk -----------


def test_deployer_tmpfs_and_logs_are_merged_with_size_limits():
    hardening = container_spec.host_config(512, tmp_bytes=64 * 1024**2)
    merged = container_spec.merge_host_config(
        {"tmpfs": {"/tmp": "size=1g", "/scratch": "mode=1777", "/var/tmp": ""}}, hardening)
    assert merged["read_only"] is True
    # theirs may resize /tmp (memory, within the container's memory limit), never unbounded
    assert merged["tmpfs"]["/tmp"] == "size=1g"
    assert merged["tmpfs"]["/scratch"] == "mode=1777,size=67108864"
    assert merged["tmpfs"]["/var/tmp"] == "size=67108864"
    listed = container_spec.merge_host_config({"tmpfs": ["/scratch:mode=1777"]}, hardening)
    assert listed["tmpfs"]["/scratch"] == "mode=1777,size=67108864"
    assert listed["tmpfs"]["/tmp"] == hardening["tmpfs"]["/tmp"]
    # a file log is rotated: ours unless the deployer sets a size; other drivers are theirs
    merged = container_spec.merge_host_config({"log_config": {"type": "local"}}, hardening)
    assert merged["log_config"] == {"type": "local",
                                    "config": {"max-size": "10m", "max-file": "2"}}
    merged = container_spec.merge_host_config(
        {"log_config": {"Type": "json-file", "Config": {"max-size": "50m"}}}, hardening)
    assert merged["log_config"]["config"] == {"max-size": "50m", "max-file": "2"}
    merged = container_spec.merge_host_config({"log_config": {"type": "journald"}}, hardening)
    assert merged["log_config"] == {"type": "journald", "config": {}}
    # read_only=True from the deployer is fine; off is refused (above)
    assert container_spec.merge_host_config({"read_only": True}, hardening)["read_only"] is True


def test_the_spawner_refuses_a_writable_root_filesystem():
    with pytest.raises(UnsafeContainerConfig, match="read_only"):
        configured(extra_host_config={"read_only": False})
    s = configured(extra_host_config=lambda spawner: {"read_only": False})
    with pytest.raises(UnsafeContainerConfig, match="read-only"):
        s.extra_host_config(s)
    s = configured(extra_host_config={"shm_size": "1g"})
    host = s.extra_host_config(s)
    assert host["read_only"] is True and host["shm_size"] == "1g"
    assert {"/tmp", "/var/tmp"} <= set(host["tmpfs"])
