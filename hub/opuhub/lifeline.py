"""Tie a hub-managed service to the hub's life: ``python -m opuhub.lifeline --parent PID -- CMD``.

JupyterHub starts its managed services (the OPU lease service, jupyterhub-idle-culler) in
sessions of their own and stops them only at a clean shutdown. A hub killed with SIGKILL (or
crashing) left them running: the next hub then had two lease services fighting for one port
and one more culler per restart. This launcher, put in front of each service's command:

1. asks Linux to send SIGTERM when its parent dies (``PR_SET_PDEATHSIG``; it survives the
   ``exec`` below). The signal follows the *thread* that forked: JupyterHub starts services
   from its event loop, in the main thread, which lives as long as the hub;
2. exits at once if the hub died before that (its parent is no longer ``PID``);
3. gives SIGINT and SIGTERM their default action and unblocks them: ignored or blocked
   signals survive ``exec``, and a hub started where SIGINT is ignored (a background job of a
   script, ``nohup … &``) passed that on, so each service ignored the SIGINT JupyterHub stops
   it with and the hub waited 30 s per service before sending SIGTERM;
4. replaces itself with the service (same process id, so JupyterHub's handle stays valid).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
DEATH_SIGNAL = signal.SIGTERM
# signals a service must obey: JupyterHub stops services with SIGINT, then SIGTERM
RESET_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def lifeline_command(command: list[str], parent_pid: int | None = None) -> list[str]:
    """``command`` run through this launcher, bound to ``parent_pid`` (default: this
    process, which is the hub when called from its config file)."""
    pid = os.getpid() if parent_pid is None else parent_pid
    return [sys.executable, "-m", "opuhub.lifeline", "--parent", str(pid), "--", *command]


def parse_args(argv: list[str]) -> tuple[int, list[str]]:
    """``--parent PID -- CMD...`` → (PID, CMD); ValueError with a usage line otherwise."""
    usage = "usage: python -m opuhub.lifeline --parent PID -- COMMAND [ARG...]"
    if len(argv) < 4 or argv[0] != "--parent" or argv[2] != "--":
        raise ValueError(usage)
    try:
        parent = int(argv[1])
    except ValueError:
        raise ValueError(f"{usage} (PID must be a number, got {argv[1]!r})") from None
    return parent, argv[3:]


def die_with_parent(sig: int = DEATH_SIGNAL) -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_PDEATHSIG) failed: {os.strerror(err)}")


def obey_stop_signals() -> None:
    for sig in RESET_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, RESET_SIGNALS)


def main(argv: list[str] | None = None) -> int:
    try:
        parent, command = parse_args(sys.argv[1:] if argv is None else argv)
    except ValueError as e:
        print(f"opuhub.lifeline: {e}", file=sys.stderr)
        return 2
    die_with_parent()
    if os.getppid() != parent:
        print(f"opuhub.lifeline: the hub (pid {parent}) is gone; not starting {command[0]}",
              file=sys.stderr)
        return 1
    obey_stop_signals()
    try:
        os.execvp(command[0], command)
    except OSError as e:
        print(f"opuhub.lifeline: cannot run {command[0]}: {e}", file=sys.stderr)
        return 127
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
