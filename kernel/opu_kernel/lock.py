"""An exclusive, process-wide lock per OPU device node.

Like lightonml's PID file, it tells a second process who holds the device; unlike a PID
file, an ``flock`` is released by the kernel when the holder dies, so a crashed notebook
never leaves the device stuck.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from .errors import DeviceBusyError


def lock_dir() -> Path:
    return Path(os.environ.get("OPU_LOCK_DIR", "/tmp"))


def lock_path(device: str) -> Path:
    return lock_dir() / f"opu_kernel-{Path(device).name}.lock"


class DeviceLock:
    def __init__(self, device: str):
        self.device = device
        self.path = lock_path(device)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        if self._fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise DeviceBusyError(
                f"the OPU {self.device} is in use by process {holder}. Close it there "
                "(opu.close() or shut that kernel down), or use the simulator: "
                "OPU(backend='simulator')") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None


def holder_pid(device: str) -> int | None:
    """PID of the process holding ``device``, or None when it is free."""
    path = lock_path(device)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 64, 0).decode(errors="replace").strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
