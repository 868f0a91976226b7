"""The production spawner: one Docker container per user, with the OPU lease.

On top of DockerSpawner:
- the image comes from the profile ("Simulator" / "OPU hardware"), never from the user;
- the lease holder's container, and only it, gets the device;
- non-root (uid 1000), all capabilities dropped, no-new-privileges, pids/memory/CPU limits,
  no Docker socket, no host path outside ``allowed_host_paths``;
- a deployer's ``extra_host_config`` / ``extra_create_kwargs`` (dict, or callable, sync or
  async) is merged with that hardening at every spawn, never substituted for it; settings that
  would weaken it are refused: dicts when the spawner is configured, callables at the spawn;
- a named volume per user on /home/jovyan with ``remove=True``;
- ``network_name = "host"`` works: a free port per spawn and ``get_ip_and_port`` overridden
  (DockerSpawner's host mode binds every user to 8888).
"""

from __future__ import annotations

import inspect
import os
import socket

from dockerspawner import DockerSpawner
from tornado import web
from traitlets import Dict, Integer, List, Unicode, default, validate

from . import container_spec
from .lease import Lease
from .lease_spawner import OPUSpawnerMixin
from .profiles import HARDWARE, SIMULATOR, SpawnChoice


def explain_docker_error(exc: BaseException, image: str) -> tuple[int, str] | None:
    """What to tell the user when Docker fails a spawn (None: not a Docker failure).

    DockerSpawner lets docker-py's exceptions through, and the hub then shows a bare
    "500: Internal Server Error"; these messages say what is wrong and who can fix it.
    """
    import docker.errors
    import requests

    if isinstance(exc, container_spec.UnsafeContainerConfig):
        return 500, (
            f"This hub's container settings are unsafe, so no notebook server starts: {exc}. "
            "An admin must fix the hub's configuration.")
    if isinstance(exc, docker.errors.ImageNotFound):
        return 503, (
            f"The notebook image {image} is not on this host (images are never pulled here). "
            "An admin builds it with `make images`."
        )
    if isinstance(exc, docker.errors.APIError):
        detail = getattr(exc, "explanation", None) or str(exc)
        return 500, f"Docker refused to start your server: {detail}"
    if isinstance(exc, docker.errors.DockerException | requests.exceptions.ConnectionError):
        return 503, (
            "The Docker engine is unreachable, so no notebook server can start right now "
            f"({type(exc).__name__}). An admin must start it; try again later."
        )
    return None


class Hardened:
    """A deployer's ``extra_host_config`` or ``extra_create_kwargs`` with the hardening merged
    in, as the callable DockerSpawner evaluates at each spawn.

    ``deployer`` is what the deployer configured: a dict, or a callable of the spawner
    returning one (or an awaitable of one). ``merge(spawner, value)`` checks and merges.
    """

    def __init__(self, deployer, merge):
        self.deployer = deployer
        self.merge = merge

    def __call__(self, spawner):
        value = self.deployer(spawner) if callable(self.deployer) else self.deployer
        if inspect.isawaitable(value):
            return self._merge_awaited(spawner, value)
        return self.merge(spawner, value)

    async def _merge_awaited(self, spawner, value):
        return self.merge(spawner, await value)

    def __repr__(self):
        return f"Hardened({self.deployer!r})"


def _rendered(spawner, value):
    # DockerSpawner expands {username}-style templates after us: check what Docker will get
    render = getattr(spawner, "_render_templates", None)
    return render(value) if render and isinstance(value, dict) else value


def _merge_host_config(spawner, value) -> dict:
    container_spec.check_host_config(_rendered(spawner, value), spawner.allowed_host_paths)
    return container_spec.merge_host_config(
        value, spawner.opu_host_config(), spawner.allowed_host_paths)


def _merge_create_kwargs(spawner, value) -> dict:
    container_spec.check_create_kwargs(_rendered(spawner, value))
    return container_spec.merge_create_kwargs(
        value, container_spec.create_kwargs(spawner.container_uid, spawner.container_gid))


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class OPUDockerSpawner(OPUSpawnerMixin, DockerSpawner):
    images = Dict(
        {SIMULATOR: "opuhub/singleuser:latest", HARDWARE: "opuhub/singleuser:latest"},
        config=True,
        help="""Image per profile ('simulator', 'hardware'). Users pick a profile, never an
        image; both may be the same image (the profile only changes env and devices).""",
    )
    container_device = Unicode(
        container_spec.CONTAINER_DEVICE,
        config=True,
        help="Path of the leased device inside the container (env OPU_DEVICE).",
    )
    device_gid = Integer(
        -1,
        config=True,
        help="Group added to the holder's container so uid 1000 may open the device; "
        "-1 = the group owning the host's device node.",
    )
    pids_limit = Integer(512, config=True, help="Maximum number of processes per container.")
    container_uid = Integer(1000, config=True, help="uid:gid the single-user server runs as.")
    container_gid = Integer(1000, config=True, help="gid of the single-user server.")
    allowed_host_paths = List(
        Unicode(),
        config=True,
        help="""Host directories that may be bound into user containers (through `volumes`,
        `mounts` or `extra_host_config` binds/mounts), e.g. ['/srv/opuhub/datasets']. Empty
        by default: users get named volumes only. The Docker socket and system paths (/etc,
        /proc, /sys, /dev, /run, /root, /boot, Docker's data) are refused even below an entry.""",
    )

    @validate("images")
    def _check_images(self, proposal):
        images = proposal.value
        missing = {SIMULATOR, HARDWARE} - set(images)
        if missing:
            raise ValueError(f"OPUDockerSpawner.images needs an image for: {', '.join(sorted(missing))}")
        return images

    @validate("allowed_host_paths")
    def _check_allowed_host_paths(self, proposal):
        return container_spec.check_allowed_host_paths(proposal.value)

    @validate("volumes")
    def _no_docker_socket(self, proposal):
        return container_spec.check_volumes(proposal.value, self.allowed_host_paths)

    @validate("mounts")
    def _no_host_mounts(self, proposal):
        container_spec.check_host_config({"mounts": proposal.value}, self.allowed_host_paths)
        return proposal.value

    @validate("network_name")
    def _no_foreign_namespace(self, proposal):
        if str(proposal.value).startswith("container:"):
            raise container_spec.UnsafeContainerConfig(
                f"network_name {proposal.value!r} is refused: it shares another container's "
                "network namespace (another user's server)")
        return proposal.value

    @validate("extra_host_config")
    def _harden_host_config(self, proposal):
        # whatever the deployer sets is merged with the hardening at each spawn; a dict is
        # checked now, so a weakening setting stops the spawner's configuration, not a spawn
        value = proposal.value
        if isinstance(value, Hardened):
            return value
        if not callable(value):
            container_spec.merge_host_config(value, self.opu_host_config(),
                                             self.allowed_host_paths)
        return Hardened(value, _merge_host_config)

    @validate("extra_create_kwargs")
    def _harden_create_kwargs(self, proposal):
        value = proposal.value
        if isinstance(value, Hardened):
            return value
        if not callable(value):
            container_spec.merge_create_kwargs(
                value, container_spec.create_kwargs(self.container_uid, self.container_gid))
        return Hardened(value, _merge_create_kwargs)

    @validate("container_uid")
    def _not_root(self, proposal):
        if proposal.value == 0:
            raise ValueError("container_uid must not be 0: user containers never run as root")
        return proposal.value

    @default("allowed_images")
    def _allowed_images_default(self):
        # DockerSpawner's own check stays armed: only our images, chosen by profile
        return {image: image for image in self.images.values()}

    @default("remove")
    def _remove_default(self):
        return True

    @default("volumes")
    def _volumes_default(self):
        return container_spec.home_volume()

    @default("notebook_dir")
    def _notebook_dir_default(self):
        return container_spec.HOME

    @default("cmd")
    def _cmd_default(self):
        return container_spec.singleuser_command()

    @default("pull_policy")
    def _pull_policy_default(self):
        # images are built on the host; a pull would block every spawn (one Docker thread)
        return "never"

    @default("network_name")
    def _network_default(self):
        return "opuhub"

    @default("use_internal_ip")
    def _use_internal_ip_default(self):
        # host mode: no port bindings (docker-py refuses them with network_mode=host)
        return True

    @default("mem_limit")
    def _mem_default(self):
        return "2G"

    @default("cpu_limit")
    def _cpu_default(self):
        return 2.0

    @default("extra_create_kwargs")
    def _create_kwargs_default(self):
        return Hardened({}, _merge_create_kwargs)

    @default("extra_host_config")
    def _host_config_default(self):
        # evaluated per spawn: only the lease holder's container gets the device
        return Hardened({}, _merge_host_config)

    @property
    def host_network(self) -> bool:
        return self.network_name == "host"

    def opu_host_config(self) -> dict:
        lease = getattr(self, "_opu_spawn_lease", None)
        gid = None
        if lease is not None:
            gid = self.device_gid if self.device_gid >= 0 else _node_gid(lease.device)
        return container_spec.host_config(
            self.pids_limit,
            device=lease.device if lease else None,
            container_device=self.container_device,
            device_gid=gid,
        )

    def kernel_device(self, lease: Lease) -> str:
        return self.container_device

    def prepare_profile(self, choice: SpawnChoice, lease: Lease | None) -> None:
        self._opu_spawn_lease = lease
        self.image = self.images[choice.profile]
        if self.host_network:
            # every container shares the host's ports: pick a free one per spawn
            self.ip = "127.0.0.1"
            self.port = free_port()

    async def start(self):
        try:
            return await super().start()
        except web.HTTPError:
            raise
        except Exception as e:
            explained = explain_docker_error(e, self.image)
            if explained is None:
                raise
            self.log.error("Docker could not start %s: %s", self._log_name, e)
            raise web.HTTPError(*explained) from None

    async def get_ip_and_port(self):
        if self.host_network:
            return "127.0.0.1", self.port
        return await super().get_ip_and_port()

    def get_state(self):
        state = super().get_state()
        if self.host_network and self.port:
            state["opu_port"] = self.port  # the port is per spawn: remember it across restarts
        return state

    def load_state(self, state):
        super().load_state(state)
        if state.get("opu_port"):
            self.port = state["opu_port"]


def _node_gid(path: str) -> int | None:
    try:
        return os.stat(path).st_gid
    except OSError:
        return None
