"""Fixtures for the hub tests; the helpers live in tests/hub/hubtest.py."""

from __future__ import annotations

import pytest

from tests.hub.hubtest import (
    Hub,
    free_port,
    hub_root,
    launch_needed_hubs,
    launched_hub,
    shutdown_unclaimed_hubs,
)


@pytest.fixture(scope="session")
def early_hubs(tmp_path_factory, request):
    """Launches, once, the hubs the selected modules will need (starting one is mostly
    waiting, so they start side by side), and at the end of the session shuts down those that
    no fixture claimed. Set up before the hub fixtures, so torn down after them."""
    launch_needed_hubs(tmp_path_factory, {item.path.name for item in request.session.items})
    yield
    shutdown_unclaimed_hubs()


@pytest.fixture(scope="session")
def hub(early_hubs):
    """One hub for the spawn and lease tests (a hub start costs seconds on 2 cores)."""
    # with a shared OPU (simulated), for tests/hub/test_shared_opu.py
    hub = Hub(hub_root("hub"), via_run=True, shared_opu="simulated",
              shared_opu_port=free_port()).start()
    yield hub
    hub.shutdown()


@pytest.fixture(scope="session")
def second_hub(early_hubs, tmp_path_factory):
    """A hub with NativeAuthenticator and a short idle-culler timeout."""
    hub = launched_hub("second", tmp_path_factory)
    yield hub
    hub.shutdown()
