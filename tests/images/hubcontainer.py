"""The hub image run the way images/compose.yaml runs it: a container on a user network, the
host's Docker socket mounted, state in a named volume; plus helpers to drive it over its REST
API and to run code in a user's kernel through its proxy. Every request goes to a container
address on a bridge network that the tests created."""

from __future__ import annotations

import uuid
from contextlib import contextmanager

import requests

from tests.helpers import container_exec, docker_teardown, execute_in_user_kernel, wait_until

from .conftest import LABELS, container_ip, wait_http

USER_PASSWORD = "e2e-workshop-password"


class HubContainer:
    def __init__(self, containers, image: str, singleuser_image: str, network, tag: str,
                 docker_socket: bool = True, env: dict | None = None, binds: dict | None = None):
        self.containers = containers
        self.client = containers.client
        self.image = image
        self.network = network
        self.tag = tag
        self.name = f"opuhub-test-hub-{tag}-{uuid.uuid4().hex[:6]}"
        self.state_volume = f"opuhub-test-state-{self.name[-6:]}-{tag}"
        self.env = {
            "OPUHUB_IMAGE": singleuser_image,
            "OPUHUB_DOCKER_NETWORK": network.name,
            "OPUHUB_HUB_CONNECT_URL": f"http://{self.name}:8081",
            "OPUHUB_USER_PASSWORD": USER_PASSWORD,
            "OPUHUB_ADMINS": "admin",
            "OPUHUB_DEVICES": "",
            "OPUHUB_CULL_IDLE_SECONDS": "0",
            "OPUHUB_N_COMPONENTS": "100",
            "OPUHUB_POLL_INTERVAL": "1",
            "OPUHUB_LEASE_CHECK_INTERVAL": "1",
            "OPUHUB_LEASE_GRACE_SECONDS": "3",
            "OPUHUB_TIMEZONE": "UTC",
            "OPUHUB_MEM_LIMIT": "1G",
            "OPUHUB_START_TIMEOUT": "120",
            **(env or {}),
        }
        self.volumes = {self.state_volume: {"bind": "/srv/jupyterhub/state", "mode": "rw"}}
        if docker_socket:
            self.volumes["/var/run/docker.sock"] = {"bind": "/var/run/docker.sock", "mode": "rw"}
        for host, target in (binds or {}).items():
            self.volumes[host] = {"bind": target, "mode": "rw"}
        self.container = None
        self._token = None

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self, timeout: float = 120) -> HubContainer:
        self.client.volumes.create(self.state_volume, labels=LABELS)
        self.container = self.containers.run(
            self.image, name=self.name, hostname=self.name, environment=self.env,
            volumes=self.volumes, network=self.network.name,
        )
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 120) -> None:
        self.url = f"http://{container_ip(self.container, self.network.name)}:8000"
        wait_http(f"{self.url}/hub/health", self.container, timeout=timeout)

    def restart(self, timeout: float = 120) -> None:
        self.container.restart(timeout=30)
        self.wait_ready(timeout)

    def logs(self) -> str:
        return self.container.logs(tail=300).decode(errors="replace")

    # --- REST API --------------------------------------------------------------------------------

    @property
    def token(self) -> str:
        if self._token is None:
            self._token = container_exec(self.container, ["cat", "/srv/jupyterhub/state/cli-token"],
                                         stderr=False).strip()
        return self._token

    def api(self, method: str, path: str, token: str | None = None, **kw) -> requests.Response:
        headers = {"Authorization": f"token {token or self.token}"}
        return requests.request(method, f"{self.url}/hub/api{path}", headers=headers,
                                timeout=60, **kw)

    def create_users(self, *names: str) -> None:
        resp = self.api("POST", "/users", json={"usernames": list(names)})
        assert resp.status_code in (201, 409), resp.text

    def user_token(self, user: str) -> str:
        resp = self.api("POST", f"/users/{user}/tokens", json={"note": "e2e"})
        assert resp.status_code == 201, resp.text
        return resp.json()["token"]

    def server_model(self, user: str) -> dict | None:
        resp = self.api("GET", f"/users/{user}")
        assert resp.status_code == 200, resp.text
        return (resp.json().get("servers") or {}).get("")

    def request_spawn(self, user: str, **options) -> requests.Response:
        return self.api("POST", f"/users/{user}/server", json=options)

    def wait_ready_server(self, user: str, timeout: float = 150) -> dict:
        def ready():
            model = self.server_model(user)
            if model is None:
                # the spawn failed and the hub dropped the server: say why
                raise AssertionError(f"{user}'s server is gone; hub log:\n{self.logs()[-4000:]}")
            return model if model.get("ready") else None

        return wait_until(ready, timeout, lambda: f"{user}'s server to be ready; hub log:\n"
                                                  f"{self.logs()[-4000:]}", interval=0.5)

    def spawn(self, user: str, timeout: float = 150, **options) -> dict:
        resp = self.request_spawn(user, **options)
        assert resp.status_code in (201, 202), resp.text
        return self.wait_ready_server(user, timeout)

    def stop_server(self, user: str, timeout: float = 60) -> None:
        resp = self.api("DELETE", f"/users/{user}/server")
        assert resp.status_code in (202, 204), resp.text
        wait_until(lambda: self.server_model(user) is None, timeout, f"{user}'s server to stop",
                   interval=0.25)

    # --- a kernel in the user's server, through the proxy ---------------------------------------

    def execute(self, user: str, token: str, code: str, kernel: str = "opu",
                timeout: float = 120) -> dict:
        """Run ``code`` in a new kernel of ``user``'s server, through the hub's proxy."""
        return execute_in_user_kernel(self.url, user, token, code, kernel, timeout)


@contextmanager
def hub_network(client, name: str, tag: str):
    """A bridge network of its own for a test hub; afterwards the user containers and volumes
    that hub made (their names carry ``tag``), then the network, are removed."""
    network = client.networks.create(name, driver="bridge", labels=LABELS)
    try:
        yield network
    finally:
        docker_teardown(client, lambda: remove_tagged(client, tag),
                        lambda: remove_network(network))


def remove_network(network) -> None:
    """Remove a test network and whatever containers are still attached to it."""
    network.reload()
    for container in network.containers:
        container.remove(force=True)
    network.remove()


def remove_tagged(client, tag: str) -> None:
    """Remove the user containers and volumes a test hub created (their names carry the tag)."""
    for container in client.containers.list(all=True, filters={"name": tag}):
        container.remove(force=True, v=True)
    for volume in client.volumes.list(filters={"name": tag}):
        try:
            volume.remove(force=True)
        except Exception:
            pass
