"""The hub image on its own: what is in it and how it starts. (Spawning through it is
test_platform_e2e.py.)"""

from __future__ import annotations

import pytest

from .conftest import LABELS, REPO

pytestmark = pytest.mark.docker


def run(docker_client, image: str, script: str) -> str:
    container = docker_client.containers.run(image, ["sh", "-c", script], detach=True,
                                             network_mode="none", labels=LABELS)
    try:
        result = container.wait(timeout=120)
        out = container.logs().decode().strip()
        assert result["StatusCode"] == 0, out
        return out
    finally:
        container.remove(force=True, v=True)  # v: the image's state VOLUME too


def test_hub_image_contents(docker_client, hub_image):
    out = run(docker_client, hub_image,
              "jupyterhub --version; configurable-http-proxy --version; "
              "python -c 'import opuhub.spawner, opuhub.service, jupyterhub_idle_culler, "
              "nativeauthenticator; print(opuhub.spawner.OPUDockerSpawner.__name__)'")
    assert out.splitlines() == ["6.1.1", "5.3.0", "OPUDockerSpawner"], out


def test_hub_image_config(docker_client, hub_image):
    config = docker_client.images.get(hub_image).attrs["Config"]
    assert config["Entrypoint"][0].endswith("tini")
    assert config["Cmd"] == ["jupyterhub", "-f", "/srv/jupyterhub/jupyterhub_config.py"]
    assert "/srv/jupyterhub/state" in (config.get("Volumes") or {})
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["OPUHUB_SPAWNER"] == "docker"
    assert env["OPUHUB_IMAGE"] == "opuhub/singleuser:latest"
    # the repository's hub configuration is what the image runs
    out = run(docker_client, hub_image, "cat /srv/jupyterhub/jupyterhub_config.py")
    assert out == (REPO / "hub" / "jupyterhub_config.py").read_text().strip()
