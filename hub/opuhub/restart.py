"""What a start finds of a hub that did not stop cleanly (SIGKILL, crash, power cut).

``python -m opuhub.run`` asks this module, before it starts JupyterHub:

- is a hub still running on this state directory? Then it refuses (two hubs, one database);
- which processes did the dead hub leave? Its configurable-http-proxy keeps running by design
  (it keeps routing to the users' servers): JupyterHub stops the one named in
  ``state/proxy.pid`` and starts a fresh one, and this module makes sure that file names *our*
  proxy (a reused process id would otherwise get SIGTERM, then SIGKILL, from JupyterHub).
  Hub-managed services die with the hub (:mod:`opuhub.lifeline`); ones left by older hubs or
  other causes are stopped here, so exactly one of each runs after the start;
- who holds the ports? A port held by something that is not ours is reported, not taken.

Processes are recognised by what they carry, never by name alone: the proxy by the state's
proxy token in its environment, services by ``OPUHUB_STATE_DIR`` (or the lease database path).
Users' servers are left alone: they survive a hub restart on purpose.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from . import secrets

HUB_PID_FILE = "jupyterhub.pid"
PROXY_PID_FILE = "proxy.pid"
SERVICE_NAMES = ("opu-lease", "idle-culler")
PROC = Path("/proc")


@dataclass(frozen=True)
class Process:
    pid: int
    cmdline: tuple[str, ...]
    environ: dict[str, str]


def read_pid_file(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    """Running and not a zombie."""
    try:
        return (PROC / str(pid) / "stat").read_text().rsplit(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def read_process(pid: int) -> Process | None:
    """The process ``pid`` as this user may see it (None: gone, a zombie, or not readable)."""
    if not _alive(pid):
        return None
    try:
        cmdline = (PROC / str(pid) / "cmdline").read_bytes().split(b"\0")
        raw_env = (PROC / str(pid) / "environ").read_bytes().split(b"\0")
    except OSError:  # gone meanwhile, or another user's process
        return None
    environ = {}
    for item in raw_env:
        key, sep, value = item.partition(b"=")
        if sep:
            environ[key.decode(errors="replace")] = value.decode(errors="replace")
    return Process(pid, tuple(a.decode(errors="replace") for a in cmdline if a), environ)


def all_processes() -> list[Process]:
    found = []
    for entry in PROC.iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            process = read_process(int(entry.name))
            if process is not None:
                found.append(process)
    return found


# --- recognising our processes (pure) --------------------------------------------------------

def is_hub(process: Process) -> bool:
    return any(os.path.basename(arg) == "jupyterhub" for arg in process.cmdline[:2])


def is_our_proxy(process: Process, proxy_token: str) -> bool:
    return (any("configurable-http-proxy" in arg for arg in process.cmdline[:3])
            and bool(proxy_token)
            and process.environ.get("CONFIGPROXY_AUTH_TOKEN") == proxy_token)


def is_our_service(process: Process, state_dir: Path) -> bool:
    """A hub-managed service of the hub on ``state_dir``: marked by OPUHUB_STATE_DIR (set by
    hubconfig.services), or, for services of older hubs, the lease database in that dir."""
    env = process.environ
    if env.get("JUPYTERHUB_SERVICE_NAME") not in SERVICE_NAMES:
        return False
    return (env.get("OPUHUB_STATE_DIR") == str(state_dir)
            or env.get("OPUHUB_LEASE_DB") == str(state_dir / "opu_leases.sqlite"))


# --- what the dead hub left --------------------------------------------------------------------

def live_hub(state_dir: Path) -> int | None:
    """The pid of a hub running on ``state_dir`` (its pid file names a live jupyterhub)."""
    pid = read_pid_file(state_dir / HUB_PID_FILE)
    if pid is None or pid == os.getpid():
        return None
    process = read_process(pid)
    return pid if process is not None and is_hub(process) else None


@dataclass
class Leftovers:
    proxy: int | None  # the proxy JupyterHub will replace (named in state/proxy.pid)
    extra_proxies: list[int]  # more of our proxies, not in the pid file
    services: list[Process]


def find_leftovers(state_dir: Path, processes: list[Process] | None = None) -> Leftovers:
    """Our proxy and services still running on ``state_dir``; a proxy.pid that does not name
    our proxy is removed, so that JupyterHub signals nothing it did not start."""
    processes = all_processes() if processes is None else processes
    try:
        token = (state_dir / secrets.PROXY_TOKEN).read_text().strip()
    except OSError:
        token = ""
    proxies = [p.pid for p in processes if is_our_proxy(p, token)]
    pid_file = state_dir / PROXY_PID_FILE
    named = read_pid_file(pid_file)
    if named not in proxies:
        pid_file.unlink(missing_ok=True)
        named = None
        if proxies:  # ours, but the pid file is gone: let JupyterHub replace it all the same
            named = proxies[0]
            pid_file.write_text(str(named))
    services = [p for p in processes if is_our_service(p, state_dir)]
    return Leftovers(named, [pid for pid in proxies if pid != named], services)


def stop_processes(pids: list[int], timeout: float = 5.0) -> list[int]:
    """SIGTERM, then SIGKILL after ``timeout``; returns the pids that would not die."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    alive = [pid for pid in pids if _alive(pid)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [pid for pid in alive if _alive(pid)]
    for pid in alive:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    time.sleep(0.2 if alive else 0)
    return [pid for pid in alive if _alive(pid)]


# --- who listens on a port -------------------------------------------------------------------

def listening_inodes(port: int, tables: tuple[str, ...] = ("tcp", "tcp6")) -> set[int]:
    """Socket inodes listening on TCP ``port`` (any address), from /proc/net."""
    inodes = set()
    for table in tables:
        try:
            lines = (PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(int(fields[9]))
    return inodes


def listeners(port: int) -> set[int]:
    """The pids holding a listening socket on ``port`` that this user can see."""
    inodes = listening_inodes(port)
    if not inodes:
        return set()
    wanted = {f"socket:[{inode}]" for inode in inodes}
    pids = set()
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                if os.readlink(fd) in wanted:
                    pids.add(int(entry.name))
                    break
        except OSError:
            continue
    return pids
