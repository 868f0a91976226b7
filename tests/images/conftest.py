"""Fixtures for the image tests: a Docker client, the images (built by images/build when needed)
and containers started per test, removed after it, with their logs printed when the test fails.

Traffic goes only to containers these fixtures create (their address on Docker's bridge).

Environment:
  OPUHUB_REQUIRE_DOCKER=1      no Docker engine is a failure, not a skip (CI sets it)
  OPUHUB_TEST_BUILD=always     run images/build before the tests (default: Docker's layer cache
                               makes it quick when nothing changed, and the tests always see the
                               current code); "missing": only build absent images; "never"
  OPUHUB_SINGLEUSER_IMAGE, OPUHUB_HUB_IMAGE   the images under test (default opuhub/*:latest)
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests

from tests.helpers import docker_teardown, wait_until

REPO = Path(__file__).resolve().parents[2]
SINGLEUSER_IMAGE = os.environ.get("OPUHUB_SINGLEUSER_IMAGE", "opuhub/singleuser:latest")
HUB_IMAGE = os.environ.get("OPUHUB_HUB_IMAGE", "opuhub/hub:latest")
LABEL = "opuhub.test"  # every container, volume and network the tests create carries it
# ... with this run's pid as its value: the clean-up removes this run's and those of runs that
# are over (interrupted), never those of a run going on beside it on the same engine
RUN = str(os.getpid())
LABELS = {LABEL: RUN}


def abandoned_or_ours(labels: dict) -> bool:
    """Whether a labelled object is this run's, or left by a run that is over."""
    owner = (labels or {}).get(LABEL, "")
    if owner in (RUN, "1"):  # "1": the label before runs were told apart
        return True
    if not owner.isdigit():
        return False
    try:
        os.kill(int(owner), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
NB_UID = 1000

# What the hub's spawner applies to every user container (hub/opuhub/container_spec.py):
# the image must work under it.
HARDENED = {
    "user": f"{NB_UID}:{NB_UID}",
    "cap_drop": ["ALL"],
    "security_opt": ["no-new-privileges"],
    "pids_limit": 512,
}


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    # lets fixtures see whether the test failed (to dump container logs)
    outcome = yield
    report = outcome.get_result()
    setattr(item, "rep_" + report.when, report)


@pytest.fixture(scope="session")
def docker_client():
    docker = pytest.importorskip("docker")
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as e:
        message = f"no Docker engine reachable ({type(e).__name__}: {e}); run scripts/ensure-docker"
        if os.environ.get("OPUHUB_REQUIRE_DOCKER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    yield client

    def remove_networks():
        for network in client.networks.list(filters={"label": LABEL}):
            if not abandoned_or_ours(network.attrs.get("Labels")):
                continue
            try:
                network.remove()
            except docker.errors.APIError:  # still in use by a container of another run
                pass

    def remove_volumes():
        for volume in client.volumes.list(filters={"label": LABEL}):
            if not abandoned_or_ours(volume.attrs.get("Labels")):
                continue
            try:
                volume.remove(force=True)
            except docker.errors.APIError:
                pass

    # leftovers of interrupted tests
    docker_teardown(client, lambda: [c.remove(force=True, v=True) for c in client.containers.list(
                        all=True, filters={"label": LABEL}) if abandoned_or_ours(c.labels)],
                    remove_networks, remove_volumes, client.close)


def _image_present(client, image: str) -> bool:
    import docker

    try:
        client.images.get(image)
        return True
    except docker.errors.ImageNotFound:
        return False


_built: set[str] = set()


def ensure_image(client, which: str, image: str) -> str:
    mode = os.environ.get("OPUHUB_TEST_BUILD", "always")
    if which not in _built and (mode == "always" or (mode == "missing" and not _image_present(client, image))):
        started = time.monotonic()
        result = subprocess.run([str(REPO / "images" / "build"), which], cwd=REPO,
                                capture_output=True, text=True)
        if result.returncode != 0:
            pytest.fail(f"images/build {which} failed ({result.returncode}):\n"
                        f"{result.stdout[-4000:]}\n{result.stderr[-6000:]}")
        print(f"images/build {which}: {time.monotonic() - started:.0f}s")
        _built.add(which)
    if not _image_present(client, image):
        pytest.fail(f"image {image} is missing (OPUHUB_TEST_BUILD={mode})")
    return image


@pytest.fixture(scope="session")
def singleuser_image(docker_client) -> str:
    return ensure_image(docker_client, "singleuser", SINGLEUSER_IMAGE)


@pytest.fixture(scope="session")
def hub_image(docker_client) -> str:
    return ensure_image(docker_client, "hub", HUB_IMAGE)


class Containers:
    """Starts containers for one test; removes them (and prints their logs on failure) after."""

    def __init__(self, client):
        self.client = client
        self.started = []

    def run(self, image: str, command=None, **kwargs):
        labels = {**LABELS, **kwargs.pop("labels", {})}
        name = kwargs.pop("name", f"opuhub-test-{uuid.uuid4().hex[:10]}")
        container = self.client.containers.run(image, command, detach=True, labels=labels,
                                               name=name, **kwargs)
        self.started.append(container)
        return container

    def cleanup(self, failed: bool) -> None:
        for container in self.started:
            if failed:
                try:
                    logs = container.logs(tail=200).decode(errors="replace")
                    print(f"\n----- logs of {container.name} ({container.image.tags}) -----\n{logs}")
                except Exception as e:
                    print(f"(no logs for {container.name}: {e})")
            try:
                container.remove(force=True, v=True)
            except Exception:
                pass


@pytest.fixture
def containers(docker_client, request):
    c = Containers(docker_client)
    yield c
    report = getattr(request.node, "rep_call", None)
    c.cleanup(failed=report is None or report.failed)


def container_ip(container, network: str | None = None) -> str:
    container.reload()
    networks = container.attrs["NetworkSettings"]["Networks"]
    ip = networks[network]["IPAddress"] if network else next(iter(networks.values()))["IPAddress"]
    assert ip, f"container {container.name} has no IP address: {networks}"
    return ip


def wait_http(url: str, container, timeout: float = 90, ok=(200,), **kwargs) -> requests.Response:
    """Poll url until it answers with a status in ok; fail early when the container exits."""
    last = None

    def answered():
        nonlocal last
        container.reload()
        if container.status not in ("created", "running"):
            pytest.fail(f"{container.name} exited ({container.status}) before {url} answered")
        try:
            response = requests.get(url, timeout=5, **kwargs)
        except requests.RequestException as e:
            last = type(e).__name__
            return None
        last = f"HTTP {response.status_code}"
        return response if response.status_code in ok else None

    return wait_until(answered, timeout, lambda: f"{url} to answer {ok} (last: {last})",
                      interval=0.25)
