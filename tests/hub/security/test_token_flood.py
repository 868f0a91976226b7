"""An attendee cannot fill the hub's database with API tokens, nor hold one forever.

Before: 300 POSTs of /hub/api/users/mallory/tokens with a 15,000-character note each grew
jupyterhub.sqlite by 5 MB in 8 s, and the tokens never expired. Now (opuhub.token_limits) the
note has at most 256 characters and the body at most 4 KiB, a user holds at most 50 live API
tokens, and every requested token expires within OPUHUB_TOKEN_MAX_SECONDS (30 days), through
the proxy and on the hub's own port alike.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests
from jupyterhub import orm

from opuhub.token_limits import TokenLimits, live_api_tokens, request_problem
from tests.hub.security.authflows import accounts, issued_passwords

LIMITS = TokenLimits()
MAX_SECONDS = 30 * 24 * 3600  # the hub's default OPUHUB_TOKEN_MAX_SECONDS
FLOOD = 200  # requests past the cap, as an attacker would keep sending them


# --- the policy (no hub) -----------------------------------------------------------------------

@pytest.mark.parametrize("body, problem", [
    ({}, None),
    ({"note": "laptop", "expires_in": 3600}, None),
    ({"note": "n" * LIMITS.max_note_chars, "expires_in": None}, None),
    ({"note": "n" * (LIMITS.max_note_chars + 1)}, "257 characters long; at most 256"),
    ({"note": ["a list"]}, "must be a string"),
    ({"expires_in": 0}, "at least 1"),
    ({"expires_in": -5}, "at least 1"),
    ({"expires_in": True}, "whole number"),
    ({"expires_in": 1.5}, "whole number"),
    ([1, 2], None),  # not a dict: JupyterHub's own 400
])
def test_what_a_token_request_may_carry(body, problem):
    found = request_problem(body, LIMITS)
    assert (found is None) if problem is None else (problem in found), found


def test_expired_tokens_are_deleted_and_only_api_tokens_count():
    db = orm.new_session_factory("sqlite://")()
    user = orm.User(name="mallory")
    service = orm.OAuthClient(identifier="service-opu-lease")
    db.add_all([user, orm.OAuthClient(identifier="jupyterhub"), service])
    db.commit()
    live = [user.new_api_token(note=f"live {i}") for i in range(3)]
    orm.APIToken.new(user=user, oauth_client=service, note="an OAuth login")  # not counted
    user.new_api_token(note="lasting", expires_in=3600)
    expired = orm.APIToken.find(db, user.new_api_token(note="old", expires_in=60))
    expired.expires_at = datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=1)
    db.commit()
    found = live_api_tokens(db, user)
    assert sorted(t.note for t in found) == ["lasting", "live 0", "live 1", "live 2"]
    assert "old" not in [t.note for t in db.query(orm.APIToken)]  # gone from the database
    assert len(live) == 3


# --- against the hub -----------------------------------------------------------------------------

def db_bytes(hub) -> int:
    return (hub.state / "jupyterhub.sqlite").stat().st_size


def new_token(base_url: str, name: str, token: str | None = None, **body) -> requests.Response:
    headers = {"Authorization": f"token {token}"} if token else {}
    return requests.post(f"{base_url}/hub/api/users/{name}/tokens", headers=headers, json=body,
                         timeout=30)


@pytest.mark.slow
def test_notes_are_short_and_tokens_expire(hub):
    hub.create_users("tf-notes")
    token = hub.user_token("tf-notes")
    long_note = new_token(hub.url, "tf-notes", token, note="x" * (LIMITS.max_note_chars + 1))
    assert long_note.status_code == 400 and "at most 256" in long_note.json()["message"]
    huge = new_token(hub.url, "tf-notes", token, note="x" * 15_000)  # the red team's request
    assert huge.status_code == 413
    forever = new_token(hub.url, "tf-notes", token, note="x" * 10, expires_in=10 * MAX_SECONDS)
    assert forever.status_code == 400 and "must not exceed" in forever.json()["message"]
    assert new_token(hub.url, "tf-notes", token, expires_in=-1).status_code == 400

    made = new_token(hub.url, "tf-notes", token, note="n" * LIMITS.max_note_chars,
                     expires_in=None)
    assert made.status_code == 201, made.text
    model = made.json()
    created = datetime.fromisoformat(model["created"].replace("Z", "+00:00"))
    expires = datetime.fromisoformat(model["expires_at"].replace("Z", "+00:00"))
    assert expires - created == pytest.approx(timedelta(seconds=MAX_SECONDS),
                                              abs=timedelta(minutes=5))
    assert hub.get("/hub/api/user", made.json()["token"]).status_code == 200  # it works


@pytest.mark.slow
def test_a_token_flood_stops_at_the_cap_and_the_database_stays_small(hub):
    name = "tf-mallory"
    password = issued_passwords(accounts(hub, "create", name))[name]
    token = hub.user_token(name)  # counts as the first of the user's tokens
    hub_port = hub.env["OPUHUB_HUB_BIND_URL"]  # the hub itself, not through the proxy
    db_before = db_bytes(hub)
    note = "x" * LIMITS.max_note_chars
    codes = []
    for i in range(LIMITS.max_tokens + FLOOD):
        base = hub.url if i % 2 else hub_port
        resp = new_token(base, name, token, note=note)
        codes.append(resp.status_code)
        if resp.status_code != 201:
            assert resp.status_code == 403, resp.text
            assert "at most 50 per user: delete old ones first" in resp.json()["message"]
    assert codes.count(201) == LIMITS.max_tokens - 1 and codes.count(403) == FLOOD + 1
    # by name and password in the body (no token): the same cap
    by_password = new_token(hub.url, name, auth={"username": name, "password": password})
    assert by_password.status_code == 403, by_password.text

    listed = hub.api("GET", f"/users/{name}/tokens", token=token).json()["api_tokens"]
    assert len(listed) == LIMITS.max_tokens
    assert all(t["expires_at"] for t in listed if t["note"] == note)
    # 50 tokens with the longest note, and nothing of the refused 201
    assert db_bytes(hub) - db_before < 256 * 1024, db_bytes(hub) - db_before

    # deleting an old token makes room for one
    oldest = next(t for t in listed if t["note"] == note)
    assert hub.api("DELETE", f"/users/{name}/tokens/{oldest['id']}", token=token).status_code == 204
    assert new_token(hub.url, name, token, note="after cleanup").status_code == 201
    assert new_token(hub.url, name, token, note="one too many").status_code == 403
    # the hub's own tokens still work: the command-line service's, and the user's
    assert hub.api("GET", "/users").status_code == 200
    assert hub.get("/hub/api/user", token).status_code == 200
