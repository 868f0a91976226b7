"""Where Docker homes live: size-limited host filesystems or named volumes (pure parts)."""

import os
from pathlib import Path

import pytest

from opuhub import docker_homes
from opuhub.docker_homes import HOST, VOLUME, decide, engine_shares_filesystem


def test_auto_limits_homes_only_where_the_hub_can_mount_them():
    assert decide("auto", 2**31, True, True, "2G", "/srv/homes").kind == HOST
    assert "2G each" in decide("auto", 2**31, True, True, "2G", "/srv/homes").reason
    for quota, root, shares, why in [
        (0, True, True, "OPUHUB_HOME_QUOTA is 0"),
        (2**31, False, True, "does not run as root"),
        (2**31, True, False, "run the hub on the engine's host"),
    ]:
        storage = decide("auto", quota, root, shares)
        assert storage.kind == VOLUME and not storage.on_host
        assert "NOT size-limited" in storage.reason and why in storage.reason


def test_explicit_modes():
    assert decide("host", 2**31, False, False).kind == HOST  # a spawn then says what fails
    assert "NOT size-limited" in decide("host", 0, True, True).reason
    assert decide("volume", 2**31, True, True).kind == VOLUME
    with pytest.raises(ValueError, match="home_storage"):
        decide("tmpfs", 1, True, True)


def fake_proc(root: Path, ours: str, processes: dict[int, tuple[str, str]]) -> Path:
    (root / "self" / "ns").mkdir(parents=True)
    os.symlink(ours, root / "self" / "ns" / "mnt")
    for pid, (comm, namespace) in processes.items():
        (root / str(pid) / "ns").mkdir(parents=True)
        (root / str(pid) / "comm").write_text(comm + "\n")
        os.symlink(namespace, root / str(pid) / "ns" / "mnt")
    return root


def test_the_engine_must_run_in_the_hubs_mount_namespace(tmp_path):
    same = fake_proc(tmp_path / "a", "mnt:[1]", {7: ("bash", "mnt:[1]"), 9: ("dockerd", "mnt:[1]")})
    assert engine_shares_filesystem("", same)
    assert engine_shares_filesystem("unix:///var/run/docker.sock", same)
    assert not engine_shares_filesystem("tcp://10.0.0.5:2376", same)  # a remote engine
    # rootless Docker: dockerd in a namespace of its own
    other = fake_proc(tmp_path / "b", "mnt:[1]", {9: ("dockerd", "mnt:[2]")})
    assert not engine_shares_filesystem("", other)
    # hub in a container: the engine is not in its PID namespace at all
    alone = fake_proc(tmp_path / "c", "mnt:[1]", {1: ("jupyterhub", "mnt:[1]")})
    assert not engine_shares_filesystem("", alone)


def test_overcommitted_homes_are_reported(tmp_path):
    images = tmp_path / ".images"
    images.mkdir()
    assert docker_homes.overcommit_warning(tmp_path) is None
    free = os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize
    with open(images / "alice.ext4", "wb") as f:
        f.truncate(free + 2**30)  # sparse: costs nothing, could grow past the free space
    warning = docker_homes.overcommit_warning(tmp_path)
    assert warning and "1 homes" in warning and "filesystem of its own" in warning


def test_retired_volumes_are_recorded_with_their_creation_time(tmp_path):
    from opuhub.docker_homes import read_retired, record_retired

    path = tmp_path / "retired-volumes.json"
    assert read_retired(path) == {}
    record_retired(path, "opuhub-home-dana", "2026-11-29T04:00:00Z")
    record_retired(path, "opuhub-home-eve", "2026-11-29T04:00:01Z")
    assert read_retired(path) == {"opuhub-home-dana": "2026-11-29T04:00:00Z",
                                  "opuhub-home-eve": "2026-11-29T04:00:01Z"}
    assert (path.stat().st_mode & 0o777) == 0o600
