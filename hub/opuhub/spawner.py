"""The production spawner: one Docker container per user, with the OPU lease.

On top of DockerSpawner:
- the image comes from the profile ("Simulator" / "OPU hardware"), never from the user;
- the lease holder's container, and only it, gets the device;
- non-root (uid 1000), all capabilities dropped, no-new-privileges, pids/memory/CPU limits,
  no Docker socket, no host path outside ``allowed_host_paths``;
- a deployer's ``extra_host_config`` / ``extra_create_kwargs`` (dict, or callable, sync or
  async) is merged with that hardening at every spawn, never substituted for it; settings that
  would weaken it are refused: dicts when the spawner is configured, callables at the spawn;
- disk: a read-only root filesystem, size-limited tmpfs on /tmp and /var/tmp, a rotated log,
  and a home of ``home_quota`` bytes (a loop-mounted filesystem under ``homes_dir``, bound on
  /home/jovyan) when the hub can make one (:mod:`opuhub.docker_homes`), else a named volume
  per user; the container itself has ``remove=True``;
- a deleted user's host home is archived (:mod:`opuhub.retired_homes`); a named volume older
  than its user (an earlier user's of that name) is never handed to the new one;
- ``network_name = "host"`` works: a free port per spawn and ``get_ip_and_port`` overridden
  (DockerSpawner's host mode binds every user to 8888).
"""

from __future__ import annotations

import asyncio
import inspect
import os
import socket
from pathlib import Path

from dockerspawner import DockerSpawner
from tornado import web
from traitlets import Dict, Enum, Integer, List, Unicode, default, validate

from . import container_spec, docker_homes, home_quota, usernames
from .cgroups import parse_bytes
from .lease import Lease
from .lease_spawner import OPUSpawnerMixin
from .profiles import HARDWARE, SIMULATOR, SpawnChoice
from .settings import default_of


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
    pids_limit = Integer(default_of("pids_limit"), config=True, help="Maximum number of processes per container.")
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

    home_quota = Unicode(
        default_of("home_quota"),
        config=True,
        help="""Size limit of each user's home (e.g. 512M, 2G; 0 = none): a loop-mounted ext4
        filesystem per user under homes_dir, bound on /home/jovyan, so a full home is "No
        space left on device" for its user only and never fills the disk under the hub's
        databases. Needs the hub to run as root beside the Docker engine (see home_storage).
        An existing home keeps the size it was created with.""",
    )
    homes_dir = Unicode(
        "homes",
        config=True,
        help="""Host directory holding the size-limited homes (<homes_dir>/<user>, images in
        <homes_dir>/.images, 0700 root). Only the spawner binds from it, each user's own home;
        it need not be in allowed_host_paths. Keep it out of the hub's state directory.""",
    )
    home_storage = Enum(
        list(docker_homes.MODES),
        "auto",
        config=True,
        help="""Where homes live. 'host': the size-limited homes of home_quota under homes_dir
        (the hub must run as root and share its filesystem with the Docker engine; a spawn
        fails with a clear error if the home cannot be made). 'volume': a named Docker volume
        opuhub-home-<user> per user, NOT size-limited (it lies in the engine's data
        directory). 'auto' (default): 'host' when home_quota is not 0, the hub runs as root
        and a Docker engine runs in its mount namespace; otherwise 'volume', logged at start
        (a hub inside a container, such as images/compose.yaml's). A user whose volume exists
        from before keeps it, with a warning in the log.""",
    )
    tmp_size = Unicode(
        "512M",
        config=True,
        help="""Size of each of the tmpfs on /tmp and /var/tmp (e.g. 256M, 1G): the only
        writable paths besides the home, since the root filesystem is read-only. tmpfs is
        memory, counted in the container's memory limit, never the host's disk; writing past
        it is "No space left on device" for that user. A deployer's extra_host_config tmpfs
        entry for these paths (with its own size=) takes precedence.""",
    )
    log_max_size = Unicode(
        container_spec.DEFAULT_LOG_MAX_SIZE,
        config=True,
        help="""Largest file of a container's log before it is rotated (Docker's json-file
        max-size, e.g. 10m). The user can write to the server's stdout, so the log would
        otherwise grow on the host's disk without end.""",
    )
    log_max_files = Integer(
        container_spec.DEFAULT_LOG_MAX_FILES,
        config=True,
        help="Log files kept per container (json-file max-file): at most log_max_size × this.",
    )

    @validate("home_quota", "tmp_size")
    def _check_size(self, proposal):
        size = parse_bytes(proposal.value)  # raises with a message naming the bad size
        if proposal.trait.name == "tmp_size" and size <= 0:
            raise ValueError("tmp_size must be > 0 (e.g. 512M): /tmp must be writable")
        return proposal.value

    @validate("log_max_size")
    def _check_log_size(self, proposal):
        if parse_bytes(proposal.value) <= 0:
            raise ValueError(f"log_max_size must be a size > 0 such as 10m, got {proposal.value!r}")
        return proposal.value

    @validate("homes_dir")
    def _check_homes_dir(self, proposal):
        path = os.path.abspath(proposal.value)
        problem = container_spec.host_path_problem(path, [path])
        if problem:
            raise container_spec.UnsafeContainerConfig(f"homes_dir is refused: {problem}")
        return proposal.value

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
        return default_of("mem_limit")

    @default("cpu_limit")
    def _cpu_default(self):
        return default_of("cpu_limit")

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
            tmp_bytes=parse_bytes(self.tmp_size),
            log=container_spec.log_config(self.log_max_size, self.log_max_files),
        )

    # --- the home ------------------------------------------------------------------------

    def home_storage_now(self) -> docker_homes.HomeStorage:
        return docker_homes.storage(self.home_storage, parse_bytes(self.home_quota),
                                    self.home_quota, self.homes_dir)

    @property
    def host_home(self) -> Path:
        return Path(self.homes_dir).resolve() / usernames.home_dir_name(self.user.name)

    def prepare_host_home(self) -> Path:
        """Create and mount this user's size-limited home (blocking I/O: runs in a thread)."""
        homes = Path(self.homes_dir).resolve()
        homes.mkdir(parents=True, exist_ok=True)
        os.chmod(homes, 0o700)  # only the engine (root) binds from here; no host user looks in
        home = home_quota.ensure_home(homes, self.host_home.name, parse_bytes(self.home_quota),
                                      self.container_uid, self.container_gid)
        warning = docker_homes.overcommit_warning(homes)
        if warning:
            self.log.warning("disk: %s", warning)
        return home

    async def _existing_home_volume(self) -> tuple[str, bool] | None:
        """This user's named home volume if it exists: (name, made for an earlier user of
        this name, deleted since)."""
        import docker.errors

        name = container_spec.home_volume_name(DockerSpawner.volume_binds.fget(self))
        if name is None:
            return None
        try:
            info = await self.docker("inspect_volume", name)
        except docker.errors.NotFound:
            return None
        created = info.get("CreatedAt") or ""
        # a volume recorded when its user was deleted is an earlier user's, whatever the
        # clocks say (Docker keeps whole seconds: a quick delete and re-create share one)
        retired = docker_homes.read_retired(self.retired_volumes_file).get(name) == created
        return name, retired or docker_homes.volume_predates(created, self.user.created)

    @property
    def retired_volumes_file(self) -> Path:
        return Path(self.lease_db).resolve().parent / "retired-volumes.json"

    @property
    def volume_binds(self):
        binds = super().volume_binds
        host_home = getattr(self, "_host_home", None)
        return container_spec.home_bind(binds, str(host_home)) if host_home else binds

    async def create_object(self):
        # the home is made before each new container: a size-limited filesystem when the hub
        # can (else the named volume of `volumes`, which Docker creates on first use)
        self._host_home = None
        volume = await self._existing_home_volume()
        on_host = self.home_storage_now().on_host
        if volume and volume[1] and not on_host:
            self.log.error("%s's home volume %s is older than the user: it was an earlier "
                           "user's; no server", self._log_name, volume[0])
            raise web.HTTPError(
                409, f"Your home cannot be set up: the Docker volume {volume[0]} holds the files "
                f"of an earlier user named {self.user.name}, deleted since. An admin must archive "
                f"or remove it first (docker volume rm {volume[0]}).")
        if on_host:
            if volume and not volume[1]:
                self.log.warning(
                    "%s keeps the Docker volume %s as home (files from before size-limited "
                    "homes; NOT size-limited): copy its files into %s and remove the volume "
                    "to move this user to a size-limited home", self._log_name, volume[0],
                    self.host_home)
            else:
                if volume:  # an earlier user's: never given to this one
                    self.log.warning("%s: the Docker volume %s is older than the user (an "
                                     "earlier user's files): not used; an admin may remove it",
                                     self._log_name, volume[0])
                try:
                    self._host_home = await asyncio.to_thread(self.prepare_host_home)
                except (OSError, home_quota.HomeQuotaError, usernames.InvalidUsername) as e:
                    self.log.error("could not prepare %s's home: %s", self._log_name, e)
                    raise web.HTTPError(
                        500, f"Your home directory could not be prepared: {e}. "
                        "An admin must fix the hub's home settings.") from None
        return await super().create_object()

    async def retire_home(self, stamp: str) -> list[str]:
        """The user is being deleted (opuhub.retired_homes): archive the size-limited home on
        the host; a named volume cannot be renamed, so it stays, and later users of the name
        are refused it (create_object) until an admin removes it."""
        moved = []
        homes = Path(self.homes_dir).resolve()
        name = usernames.home_dir_name(self.user.name)
        if (homes / name).exists() or home_quota.image_path(homes, name).exists():
            moved = await asyncio.to_thread(home_quota.archive, homes, name, stamp)
        volume = await self._existing_home_volume()
        if volume:
            info = await self.docker("inspect_volume", volume[0])
            await asyncio.to_thread(docker_homes.record_retired, self.retired_volumes_file,
                                    volume[0], info.get("CreatedAt") or "")
            self.log.warning(
                "deleted user %s: their home stays in the Docker volume %s (volumes cannot be "
                "renamed); a later user named %s gets no server until an admin archives or "
                "removes it (docker volume rm %s)", self.user.name, volume[0], self.user.name,
                volume[0])
        return [str(path) for path in moved]

    def kernel_device(self, lease: Lease) -> str:
        return self.container_device

    def prepare_profile(self, choice: SpawnChoice, lease: Lease | None) -> None:
        self._opu_spawn_lease = lease
        # a shared OPU server needs no image of its own: the simulator's
        self.image = self.images.get(choice.profile) or self.images[SIMULATOR]
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
