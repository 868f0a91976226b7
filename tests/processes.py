"""Which processes a test run started and left behind: the end-of-run check of tests/conftest.py.

A process belongs to this run when it descends from the pytest process, or when its
environment carries this run's marker (``RUN_MARKER``, which every child inherits unless a
spawner filters the environment: the hubs' proxies keep it), or an ``OPUHUB_STATE_DIR`` inside
a directory this run registered (hub services and user servers, whose environment JupyterHub
builds afresh). The last two still find a process after its parent died and it was
re-parented to init, which is how a hub's proxy, lease service or culler outlive a killed hub.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

RUN_MARKER = "PYTEST_OPUHUB_RUN"

_roots: set[str] = set()


def register_root(path: Path | str) -> None:
    """Count processes whose OPUHUB_STATE_DIR lies under ``path`` as this run's."""
    _roots.add(os.path.realpath(path))


def registered_roots() -> frozenset[str]:
    return frozenset(_roots)


def mark_this_run() -> str:
    """Put a marker unique to this run into the environment (children inherit it). Always a
    new one: a pytest started by a test must not count the outer run's processes as its own."""
    value = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
    os.environ[RUN_MARKER] = value
    return value


@dataclass(frozen=True)
class Leftover:
    pid: int
    ppid: int
    why: str
    cmdline: str

    def __str__(self) -> str:
        return f"pid {self.pid} (parent {self.ppid}, {self.why}): {self.cmdline[:300]}"


def _stat(proc: Path) -> tuple[int, str] | None:
    """(parent pid, state letter), None when the process is gone."""
    try:
        after_name = (proc / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(after_name[1]), after_name[0]


def _environ(proc: Path) -> dict[str, str]:
    try:
        raw = (proc / "environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def _cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _under(path: str, roots: frozenset[str]) -> bool:
    real = os.path.realpath(path)
    return any(real == root or real.startswith(root.rstrip("/") + "/") for root in roots)


def leftover_processes(root_pid: int, marker: str | None, roots: frozenset[str] | set[str],
                       proc_dir: Path = Path("/proc")) -> list[Leftover]:
    """Live processes (not zombies) other than ``root_pid`` that descend from it, carry
    ``RUN_MARKER=marker`` or an OPUHUB_STATE_DIR under one of ``roots``."""
    roots = frozenset(os.path.realpath(r) for r in roots)
    table: dict[int, tuple[int, str]] = {}
    for entry in proc_dir.iterdir():
        if entry.name.isdigit():
            stat = _stat(entry)
            if stat is not None:
                table[int(entry.name)] = stat
    found = []
    for pid, (ppid, state) in sorted(table.items()):
        if pid == root_pid or state in "ZX":
            continue
        why = None
        ancestor, seen = ppid, set()
        while ancestor > 1 and ancestor not in seen:
            if ancestor == root_pid:
                why = "child of the test run"
                break
            seen.add(ancestor)
            ancestor = table.get(ancestor, (0, ""))[0]
        if why is None:
            env = _environ(proc_dir / str(pid))
            if marker and env.get(RUN_MARKER) == marker:
                why = f"{RUN_MARKER}={marker}"
            elif env.get("OPUHUB_STATE_DIR") and _under(env["OPUHUB_STATE_DIR"], roots):
                why = f"OPUHUB_STATE_DIR={env['OPUHUB_STATE_DIR']}"
        if why is not None:
            found.append(Leftover(pid, ppid, why, _cmdline(proc_dir / str(pid))))
    return found


def end_leftovers(leftovers: list[Leftover], grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds: a failed run leaves the machine clean."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for p in leftovers:
            try:
                os.kill(p.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(_alive(p.pid) for p in leftovers):
            time.sleep(0.1)


def _alive(pid: int) -> bool:
    stat = _stat(Path("/proc") / str(pid))
    return stat is not None and stat[1] not in "ZX"
