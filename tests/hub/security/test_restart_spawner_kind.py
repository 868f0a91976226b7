"""A restart with another spawner kind must not hide users' files.

Homes of local servers live under the homes directory, homes of containers in Docker volumes
``opuhub-home-<user>``. A hub restarted with the other kind (Docker stopped, OPUHUB_SPAWNER
changed) gave every user an empty home: it now refuses, saying where the files are and how to
carry them over, until that is done (or the old kind is used again).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

from opuhub import spawner_kind
from tests.hub.hubtest import Hub, hub_root


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
        hub.create_users("erin")
        assert hub.spawn("erin").status_code in (201, 202)
        homes = Path(hub.env.get("OPUHUB_HOMES_DIR") or hub.root / "homes").resolve()
        assert spawner_kind.local_homes(homes)  # erin's home is there
        hub.stop()
        assert (hub.state / "spawner-kind").read_text().strip() == "local"

        hub.env["OPUHUB_SPAWNER"] = "docker"
        log = start_refused(hub)
        assert "refusing to start" in log
        assert f"Their files are in {homes}/" in log
        assert "docker volume create opuhub-home-NAME" in log
        assert "OPUHUB_SPAWNER=local" in log
        assert (hub.state / "spawner-kind").read_text().strip() == "local"

        hub.env["OPUHUB_SPAWNER"] = "local"  # as before: starts, erin's server still runs
        hub.start()
        assert hub.server_model("erin")["ready"]
    finally:
        hub.shutdown()


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
    hub = Hub(hub_root("kind"), via_run=True, spawner="docker")
    user = f"kind{uuid.uuid4().hex[:6]}"
    volume = None
    try:
        hub.start()  # a hub with containers (nobody spawns: the home volume stands for one)
        hub.stop()
        assert (hub.state / "spawner-kind").read_text().strip() == "docker"
        volume = client.volumes.create(f"opuhub-home-{user}")  # what a spawn of `user` makes

        hub.env["OPUHUB_SPAWNER"] = "local"
        log = start_refused(hub)
        assert "refusing to start" in log
        assert f"opuhub-home-{user}" in log
        assert "OPUHUB_SPAWNER=docker" in log
        assert (hub.state / "spawner-kind").read_text().strip() == "docker"
    finally:
        hub.shutdown()
        if volume is not None:
            volume.remove(force=True)
        client.close()


# --- the decision itself -----------------------------------------------------------------------

def test_refusal_decisions(tmp_path):
    state, homes = tmp_path / "state", tmp_path / "homes"

    def refusal(recorded, kind, local=(), docker=()):
        return spawner_kind.refusal(recorded, kind, state, homes, "img", list(local),
                                    None if docker is None else list(docker))

    assert refusal(None, "docker", local=["a"]) is None  # first start
    assert refusal("local", "local", local=["a"]) is None
    assert refusal("local", "docker") is None  # nothing to hide
    assert refusal("docker", "local", docker=[]) is None
    message = refusal("local", "docker", local=["a", "b"])
    assert f"{homes}/ (a, b;" in message and str(state / "spawner-kind") in message
    message = refusal("docker", "local", docker=["a"])
    assert "opuhub-home-a" in message and "OPUHUB_SPAWNER=docker" in message
    # the engine cannot be asked: the volumes may be there, so refuse and say so
    assert "not reachable" in refusal("docker", "local", docker=None)
    many = refusal("local", "docker", local=[f"u{i}" for i in range(20)])
    assert "and 12 more" in many


def test_local_homes_lists_directories_and_quota_images(tmp_path):
    (tmp_path / "alice").mkdir()
    (tmp_path / ".images").mkdir()
    (tmp_path / ".images" / "bob.ext4").write_bytes(b"")
    assert spawner_kind.local_homes(tmp_path) == ["alice", "bob"]
    assert spawner_kind.local_homes(tmp_path / "missing") == []
