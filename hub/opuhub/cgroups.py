"""CPU, memory and process limits for local single-user servers, with Linux cgroups.

Containers get ``--memory``, ``--cpus`` and ``--pids-limit`` from Docker; a local server gets
the same three limits from a cgroup of its own, ``opuhub/<name>``, created by the hub (root)
before the server starts. The launcher (:mod:`opuhub.sandbox`) moves the server into it before
dropping privileges, so every process the user starts (kernels, ``nohup`` jobs) is counted and
can be killed when the server stops.

Both hierarchies exist in the wild: cgroup v2 (one ``/sys/fs/cgroup`` tree, file names
``memory.max``, ``cpu.max``, ``pids.max``) and cgroup v1 (one mount per controller, file names
``memory.limit_in_bytes``, ``cpu.cfs_quota_us``, ``pids.max``). :func:`limit_files` is the pure
mapping from limits to files; the rest is I/O.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
GROUP = "opuhub"
CFS_PERIOD_US = 100_000
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


@dataclass(frozen=True)
class Limits:
    memory_bytes: int  # 0 = unlimited
    cpus: float  # 0 = unlimited
    pids: int  # 0 = unlimited


def parse_bytes(text: str | int) -> int:
    """'2G' → 2147483648 (Docker's units: b, k, m, g, t; 1024-based). '' or 0 → 0."""
    if isinstance(text, int):
        return text
    raw = text.strip().lower().removesuffix("b")
    if not raw:
        return 0
    unit = raw[-1] if raw[-1] in _UNITS else ""
    number = raw[: -1] if unit else raw
    try:
        value = float(number)
    except ValueError:
        raise ValueError(f"not a size: {text!r} (use e.g. 512M or 2G)") from None
    if value < 0:
        raise ValueError(f"a size must be >= 0, got {text!r}")
    return int(value * _UNITS[unit])


def limit_files(limits: Limits, version: int) -> dict[str, dict[str, str]]:
    """{controller: {file: value}} for cgroup v1, or {"": {file: value}} for v2."""
    if version == 2:
        files = {
            "memory.max": str(limits.memory_bytes) if limits.memory_bytes else "max",
            "pids.max": str(limits.pids) if limits.pids else "max",
            "cpu.max": (f"{int(limits.cpus * CFS_PERIOD_US)} {CFS_PERIOD_US}"
                        if limits.cpus else f"max {CFS_PERIOD_US}"),
        }
        if limits.memory_bytes:
            files["memory.swap.max"] = "0"  # swap would only make a full memory slower
        return {"": files}
    return {
        "memory": {"memory.limit_in_bytes": str(limits.memory_bytes) if limits.memory_bytes else "-1"},
        "cpu": {
            "cpu.cfs_period_us": str(CFS_PERIOD_US),
            "cpu.cfs_quota_us": str(int(limits.cpus * CFS_PERIOD_US)) if limits.cpus else "-1",
        },
        "pids": {"pids.max": str(limits.pids) if limits.pids else "max"},
    }


def detect_version(root: Path = ROOT) -> int | None:
    """2, 1, or None when no usable hierarchy is mounted (then limits cannot be enforced)."""
    if (root / "cgroup.controllers").exists():
        return 2
    if all((root / c / "cgroup.procs").exists() for c in ("memory", "cpu", "pids")):
        return 1
    return None


class UserCgroup:
    """The cgroup(s) of one user's server: ``opuhub/<name>`` in each needed hierarchy."""

    def __init__(self, name: str, root: Path = ROOT, version: int | None = None):
        self.name = name
        self.root = root
        self.version = version if version is not None else detect_version(root)

    @property
    def available(self) -> bool:
        return self.version is not None

    def _dirs(self) -> dict[str, Path]:
        if self.version == 2:
            return {"": self.root / GROUP / self.name}
        return {c: self.root / c / GROUP / self.name for c in ("memory", "cpu", "pids")}

    def paths(self) -> list[Path]:
        """Directories a process must join (their cgroup.procs); the launcher writes its pid."""
        return list(self._dirs().values()) if self.available else []

    def create(self, limits: Limits) -> None:
        if not self.available:
            raise OSError("no cgroup hierarchy with the memory, cpu and pids controllers is mounted")
        if self.version == 2:
            parent = self.root / GROUP
            parent.mkdir(exist_ok=True)
            # controllers must be enabled on the way down for the leaf to get its files
            for level in (self.root, parent):
                (level / "cgroup.subtree_control").write_text("+memory +cpu +pids")
        for controller, files in limit_files(limits, self.version).items():
            directory = self._dirs()[controller]
            directory.mkdir(parents=True, exist_ok=True)
            for file, value in files.items():
                try:
                    (directory / file).write_text(value)
                except FileNotFoundError:
                    if file != "memory.swap.max":  # absent where swap accounting is off
                        raise

    def pids(self) -> set[int]:
        found: set[int] = set()
        for directory in self.paths():
            try:
                found.update(int(p) for p in (directory / "cgroup.procs").read_text().split())
            except FileNotFoundError:
                pass
        return found

    def kill_all(self, timeout: float = 5.0) -> int:
        """SIGKILL every process left in the group (kernels, background jobs); returns how many."""
        killed = 0
        deadline = time.monotonic() + timeout
        while (pids := self.pids()) and time.monotonic() < deadline:
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed += 1
                except ProcessLookupError:
                    pass
            time.sleep(0.05)
        return killed

    def remove(self) -> None:
        for directory in self.paths():
            try:
                directory.rmdir()
            except (FileNotFoundError, OSError):
                pass  # still busy: left for the next start, which reuses it
