"""The Docker path in a browser: the hub image run as compose runs it, a user container from the
single-user image, JupyterLab with the OPU kernel, the examples and the OPU status-bar item
(shipped in the image), no news prompt. Needs a Docker engine (skipped without one, a failure
with OPUHUB_REQUIRE_DOCKER=1, as in CI); all traffic goes to containers this module creates.
"""

from __future__ import annotations

import re
import uuid

import pytest

from tests.browser.lab import STATUS_ITEM, api_json, log_in, status_text, wait_for_lab
from tests.helpers import container_exec
from tests.images.conftest import (  # noqa: F401  (fixtures: the engine and the built images)
    LABEL,
    Containers,
    docker_client,
    hub_image,
    singleuser_image,
)
from tests.images.hubcontainer import HubContainer, hub_network

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(900)]

TAG = uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def docker_hub(docker_client, hub_image, singleuser_image):  # noqa: F811
    """The hub image on a network of its own, without an OPU device."""
    with hub_network(docker_client, f"opuhub-test-net-br{TAG}", TAG) as network:
        containers = Containers(docker_client)
        try:
            yield HubContainer(containers, hub_image, singleuser_image, network, f"br{TAG}").start()
        finally:
            containers.cleanup(failed=False)


def workshop_account(hub) -> tuple[str, str]:
    """One account made as the organiser does, inside the hub container: (name, password)."""
    out = container_exec(
        hub.container,
        ["python", "-m", "opuhub.accounts", "create", "--count", "1", "--prefix", f"br{TAG}-"],
        stderr=False)
    name, password = out.split()[:2]
    return name, password


def test_a_user_container_opens_jupyterlab_with_the_opu_item(page, docker_hub):
    name, password = workshop_account(docker_hub)
    page.goto(f"{docker_hub.url}/hub/login")
    intro = page.locator("#opuhub-intro").inner_text()
    assert "OPU Hub" in intro and "This hub has no OPU device" in intro

    seen = []
    page.on("framenavigated", lambda frame: seen.append(frame.url))
    log_in(page, docker_hub.url, name, password)
    # no device, so no profile to choose: straight on (through the progress page when the
    # start takes more than a moment), then JupyterLab
    wait_for_lab(page, name, timeout=240_000)
    assert not any(re.search(r"/hub/spawn(\?|$)", url) for url in seen), seen

    assert status_text(page, "OPU: simulator") == "OPU: simulator"
    assert page.locator(STATUS_ITEM).get_attribute("data-backend") == "simulator"
    specs = api_json(page, docker_hub.url, f"/user/{name}/api/kernelspecs")
    assert specs["default"] == "opu"
    page.locator(".jp-DirListing-item[title^='Name: examples']").wait_for()
    listing = api_json(page, docker_hub.url, f"/user/{name}/api/contents/examples")
    assert "01-getting-started.ipynb" in {item["name"] for item in listing["content"]}
    news = api_json(page, docker_hub.url,
                    f"/user/{name}/lab/api/settings/@jupyterlab/apputils-extension:notification")
    assert news["schema"]["properties"]["fetchNews"]["default"] == "false"
    page.locator(".jp-LauncherCard[title='Python 3 (OPU)'] img").first.wait_for()
