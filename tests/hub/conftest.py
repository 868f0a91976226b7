"""Fixtures for the hub tests; the helpers live in tests/hub/hubtest.py."""

from __future__ import annotations

import pytest

from tests.hub.hubtest import HUB_FACTORIES, Hub, _launched


@pytest.fixture(scope="session", autouse=True)
def proxy_installed():
    """configurable-http-proxy comes from npm; install it once if this is a fresh clone."""
    from opuhub.proxy import ensure_chp

    return ensure_chp()


@pytest.fixture(scope="session")
def hub(tmp_path_factory, request):
    """One hub for the spawn and lease tests (a hub start costs seconds on 2 cores)."""
    wanted = {item.path.name for item in request.session.items}
    for module, factory in HUB_FACTORIES.items():
        if module in wanted:
            made = factory(tmp_path_factory)
            if made is not None:
                _launched[module] = made.launch()
    hub = Hub(tmp_path_factory.mktemp("hub")).start()
    yield hub
    hub.shutdown()
    for leftover in _launched.values():
        leftover.shutdown()
