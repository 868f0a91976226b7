"""Launcher of a local single-user server: isolate, drop to the user's account, exec the server.

    python -m opuhub.sandbox --uid U --gid G --home H [--cgroup DIR ...] [--tmp-size 512M]
                             [--cover DIR ...] [--keep PATH ...] [--nproc N] -- COMMAND ...

The hub (root) runs this in place of the server; it ``exec``s the server, so the pid the hub
tracks is the server's. Before dropping root it:

- joins the user's cgroups (memory, CPU, process limits: :mod:`opuhub.cgroups`);
- enters a private mount namespace in which every world-writable directory (``/tmp``,
  ``/var/tmp``, ``/dev/shm``, ``/run/lock``) is a fresh, size-limited tmpfs: users cannot see
  each other's temporary files, plant symlinks or lock files for each other, or fill the disk
  through them. Paths that must stay visible (the hub's Python environment, the home) are
  bound back in if they live under such a directory (``--keep``);
- covers the hub's state directory (secrets, databases) with an empty root-owned tmpfs
  (``--cover``), on top of its 0700 mode; so are directories other users cannot enter that
  hold the hub's Python (e.g. /root with a pyenv Python): covered, with just that Python
  bound back (``--keep``);
- sets no_new_privs (setuid programs such as ``su`` gain nothing), a private umask (077) and,
  without cgroups, an RLIMIT_NPROC fallback against fork bombs.

Linux only; needs root (CAP_SYS_ADMIN) to start.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import os
import resource
import sys
from pathlib import Path

CLONE_NEWNS = 0x00020000
MS_NOSUID, MS_NODEV = 0x2, 0x4
MS_BIND, MS_REC, MS_PRIVATE = 0x1000, 0x4000, 0x40000
PR_SET_NO_NEW_PRIVS = 38
SHARED_TMP_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


class SandboxError(OSError):
    pass


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise SandboxError(errno, f"{what}: {os.strerror(errno)}")


def _bytes(text: str | None) -> bytes | None:
    return text.encode() if text is not None else None


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    _check(_libc.mount(_bytes(source), _bytes(target), _bytes(fstype), ctypes.c_ulong(flags),
                       _bytes(data)), f"mount {target}")


def is_under(path: str, directory: str) -> bool:
    path, directory = os.path.realpath(path), os.path.realpath(directory)
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def cover(directory: str, keep: list[str], data: str) -> None:
    """Mount a fresh tmpfs on ``directory``; bind back the ``keep`` paths that lived under it."""
    held = {k: os.open(k, os.O_PATH) for k in keep if os.path.exists(k) and is_under(k, directory)}
    _mount("tmpfs", directory, "tmpfs", MS_NOSUID | MS_NODEV, data)
    os.umask(0o066)  # directories recreated on the way to a kept path: enter, never list
    for path, fd in held.items():
        real = os.path.realpath(path)
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            os.makedirs(real, 0o755, exist_ok=True)
        else:  # a file or a device node: bind it onto an empty file
            os.makedirs(os.path.dirname(real), 0o755, exist_ok=True)
            os.close(os.open(real, os.O_CREAT | os.O_WRONLY, 0o600))
        _mount(f"/proc/self/fd/{fd}", real, None, MS_BIND | MS_REC, None)
        os.close(fd)


def enter(args: argparse.Namespace) -> None:
    for cgroup in args.cgroup:
        with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))
    _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _mount(None, "/", None, MS_REC | MS_PRIVATE, None)  # our mounts stay ours
    keep = [args.home, *args.keep]
    for directory in args.cover:  # root-owned and empty but for what the server needs
        if os.path.isdir(directory):
            cover(directory, keep, "size=1M,mode=0755")
    for directory in SHARED_TMP_DIRS:
        if os.path.isdir(directory):
            cover(directory, keep, f"size={args.tmp_size},mode=1777")
    if not args.cgroup and args.nproc:
        resource.setrlimit(resource.RLIMIT_NPROC, (args.nproc, args.nproc))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core files filling the home
    os.setgroups([args.gid])
    os.setgid(args.gid)
    os.setuid(args.uid)
    if os.getuid() == 0 or os.geteuid() == 0:
        raise SandboxError("could not drop root")
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")
    os.umask(0o077)
    os.chdir(args.home)


def untraversable_ancestors(paths: list[str]) -> list[str]:
    """The topmost directory above each path that other users cannot enter (no o+x), e.g.
    /root holding a pyenv Python: covering it and binding the path back makes it reachable."""
    found: list[str] = []
    for path in paths:
        real = Path(os.path.realpath(path))
        for ancestor in reversed(real.parents):
            try:
                mode = ancestor.stat().st_mode
            except OSError:
                break
            if not mode & 0o001:
                if str(ancestor) not in found:
                    found.append(str(ancestor))
                break
    return found


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m opuhub.sandbox")
    parser.add_argument("--uid", type=int, required=True)
    parser.add_argument("--gid", type=int, required=True)
    parser.add_argument("--home", required=True)
    parser.add_argument("--cgroup", action="append", default=[])
    parser.add_argument("--tmp-size", default="512M")
    parser.add_argument("--cover", action="append", default=[])
    parser.add_argument("--keep", action="append", default=[])
    parser.add_argument("--nproc", type=int, default=0)
    parser.add_argument("command", nargs="+")
    args = parser.parse_args(argv)
    if args.uid == 0 or args.gid == 0:
        parser.error("refusing to run a user's server as root")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    try:
        enter(args)
    except OSError as e:
        print(f"opuhub.sandbox: cannot isolate the server: {e}", file=sys.stderr)
        return 70
    os.execvp(args.command[0], args.command)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
