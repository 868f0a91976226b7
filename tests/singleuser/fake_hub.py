"""A stand-in for the hub's REST API, as much as a single-user server asks at start and per
request (version check, activity, the token's owner): enough to run ``jupyterhub-singleuser``
or ``opuhub-singleuser`` without a hub. Serves on the address it is given only."""

from __future__ import annotations

import http.server
import json
import threading

VERSION = "6.1.1"


def handler_for(user: str):
    class FakeHub(http.server.BaseHTTPRequestHandler):
        def _answer(self):
            if self.path.startswith("/hub/api/user"):  # the token's owner: the user, allowed in
                body = json.dumps({"kind": "user", "name": user, "admin": False, "groups": [],
                                   "scopes": [f"access:servers!user={user}"]}).encode()
            else:
                body = json.dumps({"version": VERSION}).encode()
            self.send_response(200)
            self.send_header("X-JupyterHub-Version", VERSION)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args):
            pass

    return FakeHub


class FakeHubServer:
    def __init__(self, host: str, user: str, port: int = 0):
        self.user = user
        self.server = http.server.ThreadingHTTPServer((host, port), handler_for(user))
        self.url = f"http://{host}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def singleuser_env(self, token: str, service_url: str) -> dict:
        """The environment the hub gives a single-user server (service_url: where it listens,
        ending in /user/<name>/)."""
        prefix = f"/user/{self.user}/"
        scopes = json.dumps([f"access:servers!user={self.user}"])
        return {
            "JUPYTERHUB_API_TOKEN": token, "JPY_API_TOKEN": token,
            "JUPYTERHUB_CLIENT_ID": f"jupyterhub-user-{self.user}",
            "JUPYTERHUB_API_URL": f"{self.url}/hub/api",
            "JUPYTERHUB_ACTIVITY_URL": f"{self.url}/hub/api/users/{self.user}/activity",
            "JUPYTERHUB_BASE_URL": "/", "JUPYTERHUB_SERVICE_PREFIX": prefix,
            "JUPYTERHUB_USER": self.user, "JUPYTERHUB_SERVER_NAME": "",
            "JUPYTERHUB_OAUTH_CALLBACK_URL": f"{prefix}oauth_callback",
            "JUPYTERHUB_OAUTH_SCOPES": scopes, "JUPYTERHUB_OAUTH_ACCESS_SCOPES": scopes,
            "JUPYTERHUB_SERVICE_URL": service_url, "JUPYTERHUB_HOST": "",
        }
