"""images/compose.yaml agrees with the images and the hub's settings (no engine needed); with
docker-compose installed, the file also passes its validation."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from .conftest import REPO

COMPOSE = REPO / "images" / "compose.yaml"


def hub_dockerfile_env() -> dict:
    text = (REPO / "images" / "hub" / "Dockerfile").read_text()
    return dict(re.findall(r"(OPUHUB_[A-Z_]+)=(\S+)", text))


def test_compose_runs_the_built_hub_on_the_spawners_network():
    spec = yaml.safe_load(COMPOSE.read_text())
    hub = spec["services"]["hub"]
    assert hub["image"] == "opuhub/hub:latest"  # images/build tags :latest
    assert hub["pull_policy"] == "never"
    env = hub["environment"]
    assert env["OPUHUB_IMAGE"] == "opuhub/singleuser:latest"
    # user containers go on this network and reach the hub there by its container name
    network = env["OPUHUB_DOCKER_NETWORK"]
    assert spec["networks"][hub["networks"][0]]["name"] == network
    assert env["OPUHUB_HUB_CONNECT_URL"] == f"http://{hub['container_name']}:8081"
    assert "/var/run/docker.sock:/var/run/docker.sock" in hub["volumes"]
    assert any(v.endswith(":/srv/jupyterhub/state") for v in hub["volumes"])
    # the image's own defaults say the same, for `docker run` without compose
    defaults = hub_dockerfile_env()
    for key in ("OPUHUB_IMAGE", "OPUHUB_DOCKER_NETWORK", "OPUHUB_HUB_CONNECT_URL"):
        assert defaults[key] == env[key], key
    assert defaults["OPUHUB_STATE_DIR"] == "/srv/jupyterhub/state"


@pytest.mark.skipif(not shutil.which("docker-compose"), reason="docker-compose not installed")
def test_compose_file_validates():
    result = subprocess.run(["docker-compose", "-f", str(COMPOSE), "config", "-q"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
