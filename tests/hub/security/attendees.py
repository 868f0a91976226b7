"""Attendees for the attack tests on the session hub: each acts with a token of their own,
created through the REST API (never the hub's command-line token), as an attendee would with
the token page. Also runs code in an attendee's kernel and reads its JSON answer."""

from __future__ import annotations

import json
import pwd
from dataclasses import dataclass

import requests

from opuhub import usernames
from tests.helpers import wait_until
from tests.hub.hubtest import Hub


@dataclass
class Attendee:
    hub: Hub
    name: str
    token: str

    @classmethod
    def create(cls, hub: Hub, name: str) -> Attendee:
        hub.create_users(name)
        return cls(hub, name, hub.user_token(name))

    @property
    def headers(self) -> dict:
        return {"Authorization": f"token {self.token}"}

    # --- as the attendee -------------------------------------------------------------------

    def api(self, method: str, path: str, **kw) -> requests.Response:
        """The hub's REST API (``/hub/api`` + ``path``) with this attendee's token."""
        return self.hub.api(method, path, token=self.token, allow_redirects=False, **kw)

    def request(self, method: str, path: str, **kw) -> requests.Response:
        """Any URL of the hub's proxy (``/user/...``, ``/services/...``) with this token."""
        kw.setdefault("timeout", 30)
        return requests.request(method, f"{self.hub.url}{path}", headers=self.headers,
                                allow_redirects=False, **kw)

    def start(self, profile: str = "simulator", timeout: float = 90) -> requests.Response:
        """Start the attendee's own server with their own token; wait until it is ready."""
        resp = self.api("POST", f"/users/{self.name}/server", json={"profile": profile})
        assert resp.status_code in (201, 202), resp.text
        self.wait_ready(timeout)
        return resp

    def wait_ready(self, timeout: float = 90) -> None:
        wait_until(lambda: (self.hub.server_model(self.name) or {}).get("ready"), timeout,
                 f"{self.name}'s server to be ready")
        self.hub.remember_pid(self.name)

    def stop(self) -> None:
        if self.hub.server_model(self.name) is not None:
            self.hub.stop_server(self.name, timeout=60)

    def run(self, code: str, timeout: float = 120) -> dict:
        """Run ``code`` in a new kernel of the attendee's server; its last stdout line is JSON."""
        out = self.hub.execute(self.name, self.token, code, timeout=timeout)
        assert out["error"] is None, out
        lines = out["stdout"].strip().splitlines()
        assert lines, out
        return json.loads(lines[-1])

    def start_kernel(self) -> str:
        """A kernel that stays up (for the others to attack); its id."""
        resp = self.request("POST", f"/user/{self.name}/api/kernels", json={"name": "python3"})
        assert resp.status_code == 201, resp.text
        return resp.json()["id"]

    # --- the host's view -------------------------------------------------------------------

    @property
    def uid(self) -> int:
        """The Unix account a root hub runs this attendee's server under."""
        return pwd.getpwnam(usernames.unix_account(self.name)).pw_uid

    @property
    def home(self):
        return self.hub.root / "homes" / usernames.home_dir_name(self.name)


# Prelude of the attack cells: `attempt(fn)` runs one attack and says how it ended.
ATTEMPT = r'''
import json, os, signal, sys

def attempt(fn, *args):
    try:
        value = fn(*args)
    except OSError as e:
        return {"ok": False, "error": type(e).__name__}
    if isinstance(value, bytes):
        value = value[:200].decode(errors="replace")
    elif not isinstance(value, (str, int, float, bool, list, type(None))):
        value = repr(value)[:200]
    return {"ok": True, "value": value}

def read(path):
    with open(path, "rb") as f:
        return f.read()

def procs():
    """(pid, uid) of every process this kernel can see."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                status = read(f"/proc/{entry}/status").decode()
            except OSError:
                continue
            uid = int(status.split("\nUid:\t", 1)[1].split()[0])
            found.append((int(entry), uid))
    return found
'''


def failed(outcome: dict, *errors: str) -> bool:
    """The attack did not work, and ended with one of ``errors`` (any error if none given)."""
    return not outcome["ok"] and (not errors or outcome["error"] in errors)
