"""scripts/ensure-docker on a machine where the engine already runs: idempotent, says so."""

from __future__ import annotations

import subprocess

import pytest

from .conftest import REPO

pytestmark = pytest.mark.docker

SCRIPT = str(REPO / "scripts" / "ensure-docker")


def test_ensure_docker_is_idempotent(docker_client):
    first = subprocess.run([SCRIPT], capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert "engine already answers" in first.stderr
    status = subprocess.run([SCRIPT, "status"], capture_output=True, text=True, timeout=60)
    assert status.returncode == 0 and status.stdout.startswith("running"), status
    assert docker_client.ping()


def test_ensure_docker_rejects_unknown_commands():
    result = subprocess.run([SCRIPT, "restart-everything"], capture_output=True, text=True)
    assert result.returncode == 2 and "usage" in result.stderr
