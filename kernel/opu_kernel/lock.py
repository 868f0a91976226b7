"""An exclusive, process-wide lock per OPU device node.

Like lightonml's PID file, it tells a second process who holds the device; unlike a PID
file, an ``flock`` is released by the kernel when the holder dies, so a crashed notebook
never leaves the device stuck.

Its job is exclusivity among the processes of one user (two kernels of the same server);
between users, the device node's permissions and the hub's lease decide. So it lives in a
folder of that user: ``OPU_LOCK_DIR``, else ``/tmp/opu-<uid>`` (a name that depends on the uid
only, so every process of the user finds the same lock, whatever its environment). A lock in
a folder others can write to could be turned against its holder: a symlink planted at the
lock's path would make the holder truncate a file of the attacker's choosing, a lock file
created and held by someone else would lock the holder out. Hence: the folder and the file
must belong to us (or root), the folder must not be writable by others unless sticky, the
file is opened relative to the checked folder, never through a symlink, and must be a plain
file with one link. Anything else raises ``UnsafeLockError`` saying what to fix.
"""

from __future__ import annotations

import errno
import fcntl
import os
import pwd
import stat
from pathlib import Path

from .errors import DeviceBusyError, UnsafeLockError

#: Where the per-user default folder ``opu-<uid>`` is made. A literal, not TMPDIR: every
#: process of the user must agree on it.
DEFAULT_PARENT = "/tmp"
LOCK_DIR_ENV = "OPU_LOCK_DIR"
FIX = f"set {LOCK_DIR_ENV} to a folder only you can write to"


def default_lock_dir() -> Path:
    return Path(DEFAULT_PARENT) / f"opu-{os.geteuid()}"


def lock_dir() -> Path:
    configured = os.environ.get(LOCK_DIR_ENV)
    return Path(configured) if configured else default_lock_dir()


def lock_path(device: str) -> Path:
    return lock_dir() / f"opu_kernel-{Path(device).name}.lock"


def user_name(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def trusted_owner(uid: int) -> bool:
    return uid in (os.geteuid(), 0)


def open_lock_dir(path: Path) -> int:
    """A descriptor of the lock folder, created 0700 if missing, checked to be safe."""
    configured = bool(os.environ.get(LOCK_DIR_ENV))
    try:
        if configured:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        else:
            os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    # The default folder sits in world-writable /tmp, where anyone could have planted a
    # symlink by that name: never follow one. A configured path is the admin's choice.
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | (0 if configured else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise UnsafeLockError(
                f"the OPU lock folder {path} is a symbolic link or not a folder; another user "
                f"may have planted it. Remove it (rm {path}), or {FIX}") from None
        raise
    info = os.fstat(fd)
    problem = None
    if not trusted_owner(info.st_uid):
        problem = (f"belongs to {user_name(info.st_uid)}, not to you "
                   f"({user_name(os.geteuid())}): another user created it and could replace "
                   f"the lock in it. Remove it, or {FIX}")
    elif info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not info.st_mode & stat.S_ISVTX:
        problem = (f"is writable by other users (mode {stat.S_IMODE(info.st_mode):o}) without "
                   f"the sticky bit, so they could replace the lock in it. Run "
                   f"chmod go-w {path} (or chmod +t), or {FIX}")
    if problem:
        os.close(fd)
        raise UnsafeLockError(f"the OPU lock folder {path} {problem}")
    return fd


def lock_file_problem(info: os.stat_result) -> str | None:
    """What makes this lock file unsafe to write, or None."""
    if stat.S_ISLNK(info.st_mode):
        return ("is a symbolic link: someone may be trying to make this process overwrite the "
                "file it points to. Nothing was written. Remove the link")
    if not stat.S_ISREG(info.st_mode):
        return "is not a regular file. Remove it"
    if not trusted_owner(info.st_uid):
        return (f"belongs to {user_name(info.st_uid)}, not to you ({user_name(os.geteuid())}): "
                "another user created it, which could lock you out of the device. Ask them or "
                "an admin to remove it")
    if info.st_nlink != 1:
        return (f"has {info.st_nlink} hard links: it may be another file of yours, linked there "
                "to make this process overwrite it. Nothing was written. Remove it")
    return None


def open_lock_file(path: Path) -> int:
    """The lock file, created if missing, opened without following links, checked ours."""
    dir_fd = open_lock_dir(path.parent)
    fd = None
    try:
        fd = os.open(path.name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK
                     | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
        info = os.fstat(fd)
    except OSError as exc:
        # ELOOP: a symlink. Some kernels answer EACCES for another user's entry in a sticky
        # folder. Say which it is.
        if exc.errno not in (errno.ELOOP, errno.EACCES, errno.EPERM):
            raise
        info = os.lstat(path.name, dir_fd=dir_fd)
        if lock_file_problem(info) is None:
            raise
    finally:
        os.close(dir_fd)
    problem = lock_file_problem(info)
    if problem:
        if fd is not None:
            os.close(fd)
        raise UnsafeLockError(f"the OPU lock file {path} {problem} (rm {path}), or {FIX}")
    if info.st_uid == os.geteuid() and info.st_mode & 0o077:
        # flock needs no write permission: a file others can open, others can hold.
        os.fchmod(fd, 0o600)
    return fd


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
        fd = open_lock_file(self.path)
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
    """PID of the process holding ``device``, or None when it is free (or no safe lock file
    is there: a symlink is not followed, a FIFO does not block)."""
    path = lock_path(device)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 64, 0).decode(errors="replace").strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
