"""A restart with another spawner kind must not hide users' files.

Homes of local servers live under the homes directory; homes of containers there too (host
homes) or in Docker volumes ``opuhub-home-<user>``. A hub restarted with homes elsewhere
(Docker stopped, OPUHUB_SPAWNER changed) gave every user an empty home: it now refuses, saying
where the files are and how to carry them over, until that is done (or it starts as before).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

from opuhub import spawner_kind, unix_accounts
from tests.hub.hubtest import Hub, hub_root

USER = "rs-erin"


def start_refused(hub: Hub) -> str:
    """Run the hub, which must stop by itself with a refusal; its log."""
    hub.launch()
    try:
        code = hub.proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the hub started instead of refusing:\n{hub.log()[-3000:]}")
    finally:
        hub.stop()
    assert code != 0
    return hub.log()


def test_local_homes_block_a_switch_to_docker():
    hub = Hub(hub_root("kind"), via_run=True)
    try:
        hub.start()
        hub.create_users(USER)
        assert hub.spawn(USER).status_code in (201, 202)
        homes = Path(hub.env.get("OPUHUB_HOMES_DIR") or hub.root / "homes").resolve()
        assert spawner_kind.local_homes(homes)  # the user's home is there
        hub.stop()
        assert (hub.state / "spawner-kind").read_text().strip() == "local host"

        # containers with homes in Docker volumes (no size-limited host homes without a quota)
        hub.env.update(OPUHUB_SPAWNER="docker", OPUHUB_HOME_QUOTA="0")
        log = start_refused(hub)
        assert "refusing to start" in log
        assert f"Their files are in {homes}/" in log
        assert "docker volume create opuhub-home-NAME" in log
        assert "OPUHUB_SPAWNER=local" in log
        assert (hub.state / "spawner-kind").read_text().strip() == "local host"

        del hub.env["OPUHUB_HOME_QUOTA"]
        hub.env["OPUHUB_SPAWNER"] = "local"  # as before: starts, the user's server still runs
        hub.start()
        assert hub.server_model(USER)["ready"]
    finally:
        hub.shutdown()
        unix_accounts.remove(USER)  # made by the local spawner (one account per user)


def docker_client():
    try:
        import docker

        client = docker.from_env(timeout=5)
        client.ping()
        return client
    except Exception:
        return None


def test_docker_volumes_block_a_switch_to_local():
    client = docker_client()
    if client is None:
        # CI sets OPUHUB_REQUIRE_DOCKER=1 after starting an engine (as test_docker_spawner)
        if os.environ.get("OPUHUB_REQUIRE_DOCKER") == "1":
            pytest.fail("OPUHUB_REQUIRE_DOCKER=1 but no Docker engine is reachable")
        pytest.skip("no Docker engine: a Docker hub cannot run here")
    hub = Hub(hub_root("kind"), via_run=True, spawner="docker", home_quota="0")
    # The message lists the first spawner_kind.SHOWN home volumes on the engine, sorted, and this
    # machine's engine is shared (other tests, benchmarks make opuhub-home-* volumes): a name that
    # sorts before theirs is the one shown.
    user = f"000kind{uuid.uuid4().hex[:6]}"
    volume = None
    try:
        hub.start()  # containers, homes in volumes (nobody spawns: a volume stands for one)
        hub.stop()
        assert (hub.state / "spawner-kind").read_text().strip() == "docker volume"
        volume = client.volumes.create(f"opuhub-home-{user}")  # what a spawn of `user` makes

        hub.env["OPUHUB_SPAWNER"] = "local"
        log = start_refused(hub)
        assert "refusing to start" in log
        assert f"opuhub-home-{user}" in log
        assert "OPUHUB_SPAWNER=docker" in log
        assert (hub.state / "spawner-kind").read_text().strip() == "docker volume"
    finally:
        hub.shutdown()
        if volume is not None:
            volume.remove(force=True)
        client.close()


# --- the decision itself -----------------------------------------------------------------------

def test_refusal_decisions(tmp_path):
    state, homes = tmp_path / "state", tmp_path / "homes"
    local = spawner_kind.Placement("local", "host")
    docker_volumes = spawner_kind.Placement("docker", "volume")
    docker_host = spawner_kind.Placement("docker", "host")

    def refusal(recorded, now, on_host=(), volumes=()):
        return spawner_kind.refusal(recorded, now, state, homes, "img", list(on_host),
                                    None if volumes is None else list(volumes))

    assert refusal(None, docker_volumes, on_host=["a"]) is None  # first start
    assert refusal(local, local, on_host=["a"]) is None
    assert refusal(local, docker_host, on_host=["a"]) is None  # same homes: nothing hidden
    assert refusal(docker_host, local, on_host=["a"], volumes=None) is None
    assert refusal(local, docker_volumes) is None  # no homes to hide
    assert refusal(docker_volumes, local, volumes=[]) is None
    message = refusal(local, docker_volumes, on_host=["a", "b"])
    assert f"{homes}/ (a, b;" in message and str(state / "spawner-kind") in message
    assert "OPUHUB_SPAWNER=local" in message
    message = refusal(docker_volumes, local, volumes=["a"])
    assert "opuhub-home-a" in message and "OPUHUB_SPAWNER=docker" in message
    assert "chown -R opu-NAME:" in message
    # same spawner, homes moved (e.g. OPUHUB_HOME_QUOTA changed): start as before
    assert "start as before" in refusal(docker_volumes, docker_host, volumes=["a"])
    # the engine cannot be asked: the volumes may be there, so refuse and say so
    assert "not reachable" in refusal(docker_volumes, local, volumes=None)
    assert "and 12 more" in refusal(local, docker_volumes, on_host=[f"u{i}" for i in range(20)])


def test_records_of_older_hubs_and_garbage():
    parse = spawner_kind.Placement.parse
    assert parse("docker\n") == spawner_kind.Placement("docker", "volume")
    assert parse("local") == spawner_kind.Placement("local", "host")
    assert parse("docker host") == spawner_kind.Placement("docker", "host")
    assert parse("nonsense") is None and parse("") is None


def test_local_homes_lists_directories_and_quota_images(tmp_path):
    (tmp_path / "alice").mkdir()
    (tmp_path / ".images").mkdir()
    (tmp_path / ".images" / "bob.ext4").write_bytes(b"")
    assert spawner_kind.local_homes(tmp_path) == ["alice", "bob"]
    assert spawner_kind.local_homes(tmp_path / "missing") == []
