"""The embedded spawner: single-user servers as local processes from this Python environment.

Used when no Docker engine is available. Who may start a server, and as whom:

- **hub running as root, ``multi_user`` on** (``OPUHUB_SPAWNER=local``): every user, each
  under a Unix account of their own (``opu-<name>``, created on first spawn, as TLJH does),
  launched through :mod:`opuhub.sandbox`: own home (0700, a size-limited filesystem), own
  cgroup (memory, CPU, processes), private ``/tmp``, the hub's state directory out of sight,
  the OPU device node handed to the lease holder's account only;
- **otherwise** only the hub's admins (and, for a hub not running as root, its own OS user):
  running a stranger's code as the hub's OS user would hand them the hub's secrets and
  everyone's files, so other users get a 403 that says why and what to ask for.

The server runs ``jupyterhub-singleuser`` from the hub's own environment, so the OPU kernel
installed there (``python -m opu_kernel.install --sys-prefix``) is available.
"""

from __future__ import annotations

import asyncio
import getpass
import hashlib
import os
import sqlite3
import sys
from pathlib import Path

from jupyterhub.spawner import LocalProcessSpawner
from tornado import web
from traitlets import Bool, Float, Integer, List, Unicode, default, validate

from . import cgroups, home_quota, unix_accounts, usernames
from .lease import Lease
from .lease_spawner import OPUSpawnerMixin
from .profiles import SpawnChoice
from .sandbox import untraversable_ancestors
from .settings import default_of


def hub_is_root() -> bool:
    return os.geteuid() == 0


def sandbox_command(account: unix_accounts.Account, home: Path, cgroup_dirs: list[Path],
                    tmp_size: str, cover: list[str], keep: list[str], nproc: int) -> list[str]:
    """The launcher prefix that isolates a server and drops to ``account`` (pure)."""
    command = [sys.executable, "-m", "opuhub.sandbox", "--uid", str(account.uid),
               "--gid", str(account.gid), "--home", str(home), "--tmp-size", tmp_size,
               "--nproc", str(nproc)]
    for directory in cgroup_dirs:
        command += ["--cgroup", str(directory)]
    for directory in cover:
        command += ["--cover", directory]
    for path in keep:
        command += ["--keep", path]
    return command + ["--"]


KERNEL_IPC_PATH = "/tmp/.opuhub-kernel"  # /tmp is the server's own (opuhub.sandbox)

# numpy in every kernel; the OPU module only in a kernel that loaded the OPU extension (the
# default kernel may be plain python3 here); binds no name the notebook could see
PRESTART_WARMUP = ("__import__('numpy'), 'opu_kernel' in __import__('sys').modules "
                   "and __import__('opu_kernel.opu')")


def fast_start_args() -> list[str]:
    """Server arguments for one kernel started in the background once the server answers
    and handed to the first notebook (opuhub_singleuser.kernel_pool), as the image's
    jupyter_server_config.json sets them (pure)."""
    return [
        "--ServerApp.kernel_manager_class="
        "opuhub_singleuser.kernel_pool.PrestartingKernelManager",
        # a server extension: starts the kernel, serves opuhub/prestart (the hub's start line)
        "--ServerApp.jpserver_extensions=opuhub_singleuser=True",
        "--PrestartingKernelManager.prestart_count=1",
        f"--PrestartingKernelManager.prestart_warmup={PRESTART_WARMUP}",
    ]


def hub_tag(homes_dir: str | os.PathLike) -> str:
    """Short name of one hub on this host (from its homes directory): the prefix of its
    users' cgroups, so two hubs on a machine never share or clean up each other's."""
    return hashlib.sha256(str(Path(homes_dir).resolve()).encode()).hexdigest()[:8]


def python_paths() -> list[str]:
    """Where the hub's Python and its packages live: the servers run the same environment, so
    these stay visible in the sandbox (editable installs included: their sources may sit under
    a covered directory such as /tmp)."""
    paths = [sys.prefix, sys.base_prefix]
    paths += [p for p in sys.path if p and os.path.isdir(p)]
    paths += [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    paths += editable_sources()
    return list(dict.fromkeys(os.path.realpath(p) for p in paths))


def editable_sources() -> list[str]:
    """Source folders of packages installed with ``pip install -e`` (this repository's own:
    opu_kernel, opuhub, the JupyterLab extension...), which live outside the environment."""
    import importlib.metadata
    import json
    from urllib.parse import unquote, urlparse

    found = []
    for dist in importlib.metadata.distributions():
        try:
            direct = json.loads(dist.read_text("direct_url.json") or "{}")
        except (OSError, ValueError):
            continue
        url = urlparse(direct.get("url", ""))
        if direct.get("dir_info", {}).get("editable") and url.scheme == "file":
            found.append(unquote(url.path))
    return found


def refusal(user: str, admin: bool, multi_user: bool, root: bool, os_user: str) -> str | None:
    """Why ``user`` may not start a local server, or None when they may (pure)."""
    if admin or (not root and user == os_user):
        return None
    if not multi_user:
        return (
            "This hub has no Docker engine, so servers would run as local processes, which it "
            "offers to its admins only. Ask an admin to start Docker (users then get "
            "containers) or to enable one Unix account per user (OPUHUB_SPAWNER=local, hub "
            "running as root).")
    if not root:
        return (
            f"This hub runs as the unprivileged OS user '{os_user}', so it cannot give you an "
            f"account of your own, and running your server as '{os_user}' would let you read "
            "the hub's secrets and everyone's files. Ask an admin to run the hub as root "
            "(one Unix account per user) or with Docker.")
    return None


class OPULocalSpawner(OPUSpawnerMixin, LocalProcessSpawner):
    homes_dir = Unicode(
        "homes",
        config=True,
        help="""Directory holding one home directory per user (0700, owned by the user's
        account). Keep it out of the hub's state directory: users must reach their home but
        never the state.""",
    )
    multi_user = Bool(
        False,
        config=True,
        help="""Let every hub user start a local server. Takes effect only when the hub runs as
        root: each user then gets a Unix account of their own (opu-<name>) and an isolated
        server. Off (the default, and what a hub without Docker falls back to), only admins
        may start local servers.""",
    )
    home_quota = Unicode(
        default_of("home_quota"),
        config=True,
        help="""Size limit of each user's home (e.g. 512M, 2G; 0 = none), enforced as a
        loop-mounted ext4 filesystem per user, so a full home never fills the hub's disk.
        An existing home keeps the size it was created with.""",
    )
    tmp_size = Unicode(
        "512M", config=True,
        help="Size of each server's private /tmp, /var/tmp and /dev/shm (tmpfs, counted as memory).",
    )
    mem_limit_local = Unicode(
        default_of("mem_limit"), config=True, help="Memory limit of each user's server and kernels (cgroup; 0 = none).")
    cpu_limit_local = Float(
        default_of("cpu_limit"), config=True, help="CPU cores each user's server and kernels may use (cgroup; 0 = no limit).")
    pids_limit_local = Integer(
        default_of("pids_limit"), config=True, help="Processes and threads each user's server may run (0 = no limit).")
    hidden_paths = List(
        Unicode(),
        config=True,
        help="Directories covered by an empty one in every user's view (the hub's state directory).",
    )

    @validate("home_quota", "tmp_size", "mem_limit_local")
    def _check_size(self, proposal):
        cgroups.parse_bytes(proposal.value)  # raises with a message naming the bad size
        return proposal.value

    examples_dir = Unicode(
        config=True,
        help="""Folder of the curated notebooks synced into each user's ~/examples at every
        start, as the image does (user edits and deletions kept; opuhub.singleuser_start).
        Default: the repository's notebooks/ when the hub runs from a checkout; '' = none.""",
    )

    @default("examples_dir")
    def _examples_dir_default(self):
        notebooks = Path(__file__).resolve().parents[2] / "notebooks"
        return str(notebooks) if notebooks.is_dir() else ""

    fast_start = Bool(
        True,
        config=True,
        help="""Start servers with opuhub-singleuser (jupyterhub-singleuser without the
        hub-side imports it never uses: about half the start's CPU) and one kernel started in
        the background, handed to the first notebook, as the single-user image does. Takes
        effect when this environment has opuhub-singleuser (singleuser/ in the repository);
        otherwise servers start with plain jupyterhub-singleuser.""",
    )

    @property
    def fast_start_available(self) -> bool:
        return self.fast_start and self._fast_launcher().is_file()

    @staticmethod
    def _fast_launcher() -> Path:
        return Path(sys.executable).with_name("opuhub-singleuser")

    @default("cmd")
    def _cmd_default(self):
        # the singleuser entry point of the hub's own environment, so the kernels installed
        # with --sys-prefix (python3, opu) are the ones users get; run as the user after the
        # examples are synced into their home
        launcher = (self._fast_launcher() if self.fast_start_available
                    else Path(sys.executable).with_name("jupyterhub-singleuser"))
        server = [str(launcher)]
        if not self.examples_dir:
            return server
        # -P: the working directory is the user's home; a module planted there must not run
        return [sys.executable, "-P", "-m", "opuhub.singleuser_start", "--examples",
                self.examples_dir, "--", *server]

    @property
    def isolated(self) -> bool:
        return hub_is_root()

    @property
    def home_dir(self) -> str:
        return str(Path(self.homes_dir).resolve() / usernames.home_dir_name(self.user.name))

    def cgroup(self) -> cgroups.UserCgroup:
        return cgroups.UserCgroup(
            f"{hub_tag(self.homes_dir)}-{usernames.home_dir_name(self.user.name)}")

    # --- who may start ---------------------------------------------------------------------

    def check_may_spawn(self) -> None:
        why = refusal(self.user.name, bool(self.user.admin), self.multi_user, self.isolated,
                      getpass.getuser())
        if why:
            raise web.HTTPError(403, why)

    # --- isolation (root only) -----------------------------------------------------------

    def prepare_account(self) -> tuple[unix_accounts.Account, list[Path]]:
        """Account, home and cgroup of this user (blocking I/O: runs in a thread)."""
        homes = Path(self.homes_dir).resolve()
        homes.mkdir(parents=True, exist_ok=True)
        os.chmod(homes, 0o711)  # users may enter their own home, not list the others
        home = Path(self.home_dir)
        account = unix_accounts.ensure(self.user.name, home)
        home_quota.ensure_home(homes, home.name, cgroups.parse_bytes(self.home_quota),
                               account.uid, account.gid)
        group = self.cgroup()
        if group.available:
            group.create(cgroups.Limits(cgroups.parse_bytes(self.mem_limit_local),
                                        self.cpu_limit_local, self.pids_limit_local))
        else:
            self.log.warning("no cgroups here: %s's server gets an RLIMIT_NPROC limit only, "
                             "no memory or CPU limit", self._log_name)
        return account, group.paths()

    def launch_prefix(self, account: unix_accounts.Account, cgroup_dirs: list[Path]) -> list[str]:
        """What the server needs to see (the hub's Python, its home, the OPU nodes) is kept;
        the state directory and closed directories above what it needs are covered."""
        keep = [self.home_dir, *self.devices, *python_paths()]
        keep += [self.examples_dir] if self.examples_dir else []
        cover = [str(Path(p).resolve()) for p in self.hidden_paths]
        cover += [d for d in untraversable_ancestors(keep) if d not in cover]
        return sandbox_command(account, Path(self.home_dir), cgroup_dirs, self.tmp_size,
                               cover, keep, self.pids_limit_local)

    async def start(self):
        self.check_may_spawn()
        if not hasattr(self, "_server_cmd"):
            self._server_cmd = list(self.cmd)
        if self.isolated:
            try:
                account, cgroup_dirs = await asyncio.to_thread(self.prepare_account)
            except (OSError, RuntimeError) as e:
                self.log.error("could not prepare %s's account: %s", self._log_name, e)
                raise web.HTTPError(500, f"Your server could not be prepared: {e}") from None
            self._account = account
            self.cmd = self.launch_prefix(account, cgroup_dirs) + self._server_cmd
        else:
            self.cmd = self._server_cmd
        return await super().start()

    def prepare_profile(self, choice: SpawnChoice, lease: Lease | None) -> None:
        if not self.isolated:
            return
        for device in self.devices:  # nobody but the holder may open a node
            _restrict(device)
        if lease is not None:
            os.chown(lease.device, self._account.uid, self._account.gid)

    def make_preexec_fn(self, name):
        if self.isolated:
            return None  # opuhub.sandbox does it all, as root, then drops to the account
        home = self.home_dir

        def preexec():
            os.makedirs(home, 0o700, exist_ok=True)
            os.chdir(home)

        return preexec

    def user_env(self, env):
        account = getattr(self, "_account", None) if self.isolated else None
        env["USER"] = account.name if account else getpass.getuser()
        env["HOME"] = self.home_dir
        env["SHELL"] = "/bin/bash"
        # the environment's bin first: jupyter, python and the kernels of this venv
        bin_dir = str(Path(sys.executable).parent)
        env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", os.defpath)])
        return env

    def get_args(self):
        args = super().get_args()
        if self.fast_start_available:
            args += fast_start_args()
        if self.isolated:
            # kernels talk to the server over unix sockets in the server's private /tmp:
            # loopback TCP ports would let any local user subscribe to their output
            args += ["--KernelManager.transport=ipc", f"--KernelManager.ip={KERNEL_IPC_PATH}"]
        elif os.geteuid() == 0:
            args.append("--ServerApp.allow_root=True")
        return args

    async def move_certs(self, paths):
        return paths  # internal TLS is not used with local servers

    async def run_post_stop_hook(self):
        if self.isolated:
            # leftover kernels and background jobs go with the server, before the device is
            # handed back: nobody keeps an open descriptor on it
            group = self.cgroup()
            if group.available:
                await asyncio.to_thread(group.kill_all)
            try:
                lease = await self.current_lease()
            except sqlite3.Error:  # the stop must complete; the device is re-restricted at spawn
                self.log.exception("could not read the OPU lease of %s", self._log_name)
                lease = None
            if lease is not None:
                _restrict(lease.device, owner=0)
        return await super().run_post_stop_hook()


def _restrict(device: str, owner: int | None = None) -> None:
    """No access for group or others to an OPU node; ``owner`` → root owns it again."""
    try:
        if owner is not None:
            os.chown(device, owner, 0)
        mode = os.stat(device).st_mode & 0o777
        if mode & 0o077:
            os.chmod(device, mode & 0o700)
    except FileNotFoundError:
        pass


def release_host(homes_dir: str | os.PathLike) -> None:
    """Undo what local servers of the hub with ``homes_dir`` left on the host: kill their
    processes, remove their cgroups, unmount their homes (files stay in the images). For an
    admin retiring a hub, and for tests."""
    homes = Path(homes_dir).resolve()
    tag = hub_tag(homes)
    version = cgroups.detect_version()
    if version is not None:
        parents = ([cgroups.ROOT / cgroups.GROUP] if version == 2
                   else [cgroups.ROOT / c / cgroups.GROUP for c in ("memory", "cpu", "pids")])
        names = {d.name for parent in parents if parent.is_dir() for d in parent.iterdir()
                 if d.is_dir() and d.name.startswith(tag + "-")}
        for name in names:
            group = cgroups.UserCgroup(name, version=version)
            group.kill_all()
            group.remove()
    if homes.is_dir():
        for home in homes.iterdir():
            home_quota.unmount(home)
