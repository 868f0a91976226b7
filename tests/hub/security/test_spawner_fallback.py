"""A hub that falls back to local processes (no Docker engine) never runs a stranger's server:
attendees get a 403 that says why, admins still get theirs (under their own account)."""

from __future__ import annotations

import os

import pytest

from tests.hub.hubtest import Hub, hub_factory, hub_root, launched_hub

pytestmark = pytest.mark.slow


@hub_factory("fallback", ("test_spawner_fallback.py",))
def make_fallback_hub(tmp_path_factory):
    hub = Hub(hub_root("fallback-hub"), spawner="auto")
    hub.env["DOCKER_HOST"] = "unix:///nonexistent/opuhub-test-docker.sock"  # no engine here
    return hub


@pytest.fixture(scope="module")
def fallback_hub(tmp_path_factory, hub):  # `hub` first: it launches this one alongside
    hub_ = launched_hub("fallback", tmp_path_factory)
    yield hub_
    hub_.shutdown()


def test_the_fallback_is_logged_with_its_reason(fallback_hub):
    assert "local processes for admins only: no Docker engine reachable" in fallback_hub.log()


def test_an_attendee_is_refused_with_a_reason(fallback_hub):
    fallback_hub.create_users("stranger")
    token = fallback_hub.user_token("stranger")
    resp = fallback_hub.api("POST", "/users/stranger/server", token=token, json={})
    assert resp.status_code == 403, resp.text
    assert "admins only" in resp.json()["message"]
    assert fallback_hub.server_model("stranger") is None  # nothing was started


@pytest.mark.skipif(os.geteuid() != 0, reason="as root the admin's server gets its own account")
def test_an_admin_still_gets_a_server_under_an_own_account(fallback_hub):
    fallback_hub.create_users("admin")
    assert fallback_hub.spawn("admin").status_code in (201, 202)
    out = fallback_hub.execute("admin", fallback_hub.user_token("admin"),
                               "import os, pwd; print(pwd.getpwuid(os.getuid()).pw_name)")
    assert out["stdout"].strip() == "opu-admin", out
