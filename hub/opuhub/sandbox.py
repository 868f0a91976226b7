"""Launcher of a local single-user server: isolate, drop to the user's account, run the server.

    python -m opuhub.sandbox --uid U --gid G --home H [--cgroup DIR ...] [--tmp-size 512M]
                             [--cover DIR ...] [--keep PATH ...] [--nproc N] [--nofile N]
                             -- COMMAND ...

The hub (root) runs this in place of the server. As root it:

- joins the user's cgroups (memory, CPU, process limits: :mod:`opuhub.cgroups`);
- enters new mount, IPC and PID namespaces. In the mount namespace every world-writable
  directory (``/tmp``, ``/var/tmp``, ``/dev/shm``, ``/run/lock``) is a fresh, size-limited
  tmpfs: users cannot see each other's temporary files or kernel sockets, plant symlinks or lock
  files for each other, or fill the disk through them. Paths that must stay visible (the hub's
  Python environment, the home) are bound back in if they live under such a directory
  (``--keep``). The hub's state directory (secrets, databases) is covered with an empty
  root-owned tmpfs (``--cover``), on top of its 0700 mode; so are directories other users
  cannot enter that hold the hub's Python (e.g. /root with a pyenv Python), with just that
  Python bound back. SysV shared memory dies with the server (IPC namespace);
- caps open files per process (``--nofile``) and, without cgroups, processes (RLIMIT_NPROC).

Then it forks: the child is PID 1 of the new PID namespace and ``exec``s the server, so when
the server ends every process the user started ends with it (nobody can keep its port), and
``/proc`` shows the user's own processes only. The parent, the pid the hub tracks, passes the
hub's signals on and exits as the server does. Both run as the user's account with
no_new_privs (setuid programs such as ``su`` gain nothing) and a private umask (077).

Linux only; needs root (CAP_SYS_ADMIN) to start.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import os
import resource
import signal
import sys
from pathlib import Path

CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWPID = 0x00020000, 0x08000000, 0x20000000
MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x2, 0x4, 0x8
MS_BIND, MS_REC, MS_PRIVATE = 0x1000, 0x4000, 0x40000
PR_SET_NO_NEW_PRIVS, PR_SET_PDEATHSIG = 38, 1
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


def isolate(args: argparse.Namespace) -> None:
    """As root: cgroups, then new mount, IPC and PID namespaces with the private view."""
    for cgroup in args.cgroup:
        with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))
    _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWPID), "unshare")
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
    # a user's processes share one pids limit; this keeps their sockets well below what the
    # hub and the proxy can hold open (a connection flood hurts only its sender)
    resource.setrlimit(resource.RLIMIT_NOFILE, (args.nofile, args.nofile))


def drop_privileges(args: argparse.Namespace) -> None:
    os.setgroups([args.gid])
    os.setgid(args.gid)
    os.setuid(args.uid)
    if os.getuid() == 0 or os.geteuid() == 0:
        raise SandboxError("could not drop root")
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")


def become_server(args: argparse.Namespace) -> None:
    """In the child, PID 1 of the new namespace: when it exits, every process the user started
    goes with it, so nobody can keep the server's port, and /proc shows only the user's own."""
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
    drop_privileges(args)
    _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PDEATHSIG)")
    os.umask(0o077)
    os.chdir(args.home)


def wait_for(child: int) -> int:
    """In the parent (the pid the hub knows): pass the hub's signals on, end as the server."""
    def forward(signum, frame):
        try:
            os.kill(child, signum)
        except ProcessLookupError:
            pass

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(signum, forward)
    while True:
        try:
            _, status = os.waitpid(child, 0)
        except InterruptedError:
            continue
        if os.WIFSIGNALED(status):
            return 128 + os.WTERMSIG(status)
        return os.WEXITSTATUS(status)


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
    parser.add_argument("--nofile", type=int, default=4096)
    parser.add_argument("command", nargs="+")
    args = parser.parse_args(argv)
    if args.uid == 0 or args.gid == 0:
        parser.error("refusing to run a user's server as root")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    try:
        isolate(args)
        child = os.fork()
    except OSError as e:
        print(f"opuhub.sandbox: cannot isolate the server: {e}", file=sys.stderr)
        return 70
    if child == 0:
        try:
            become_server(args)
            os.execvp(args.command[0], args.command)
        except OSError as e:
            print(f"opuhub.sandbox: cannot start the server: {e}", file=sys.stderr)
        os._exit(70)
    try:
        drop_privileges(args)  # the waiter needs no root either: same account as the server
    except OSError as e:
        print(f"opuhub.sandbox: {e}", file=sys.stderr)
        os.kill(child, signal.SIGKILL)
        return 70
    return wait_for(child)


if __name__ == "__main__":
    sys.exit(main())
