"""Fixtures for the hub tests; the helpers live in tests/hub/hubtest.py."""

from __future__ import annotations

import pytest

from tests.hub.hubtest import Hub, _launched, hub_root, launch_needed_hubs, launched_hub


@pytest.fixture(scope="session", autouse=True)
def proxy_installed():
    """configurable-http-proxy comes from npm; install it once if this is a fresh clone."""
    from opuhub.proxy import ensure_chp

    return ensure_chp()


@pytest.fixture(scope="session")
def hub(tmp_path_factory, request):
    """One hub for the spawn and lease tests (a hub start costs seconds on 2 cores)."""
    launch_needed_hubs(tmp_path_factory, {item.path.name for item in request.session.items})
    try:
        hub = Hub(hub_root("hub"), via_run=True).start()
        yield hub
        hub.shutdown()
    finally:
        for leftover in _launched.values():  # launched for modules that did not run
            leftover.shutdown()


@pytest.fixture(scope="session")
def second_hub(tmp_path_factory, request):
    """A hub with NativeAuthenticator and a short idle-culler timeout."""
    launch_needed_hubs(tmp_path_factory, {item.path.name for item in request.session.items})
    hub = launched_hub("second", tmp_path_factory)
    yield hub
    hub.shutdown()
