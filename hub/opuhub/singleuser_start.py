"""Start a local single-user server the way the image's ``opuhub-start`` does: bring the shipped
example notebooks into ``~/examples`` first, then exec the server.

    python -m opuhub.singleuser_start [--examples DIR] -- COMMAND ...

It runs as the user (after :mod:`opuhub.sandbox` dropped root), so the copies belong to them.
The sync keeps the user's edits and deletions (:func:`opu_kernel.examples.sync_examples`); a
failed sync is reported on stderr (the hub's log) and never stops the server from starting.
"""

from __future__ import annotations

import argparse
import os
import sys


def sync(source: str, home: str) -> str:
    """The summary line of the sync, or why it did not happen."""
    try:
        from opu_kernel.examples import sync_examples
    except ImportError as e:  # opu-kernel not in this environment: nothing to ship
        return f"examples not synced: {e}"
    try:
        return sync_examples(source, os.path.join(home, "examples")).summary()
    except OSError as e:
        return f"examples not synced into {home}/examples: {e}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m opuhub.singleuser_start")
    parser.add_argument("--examples", default="", help="folder of the shipped notebooks")
    parser.add_argument("command", nargs="+", help="the server command to exec")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    home = os.environ.get("HOME", "")
    if args.examples and home and os.access(home, os.W_OK):
        print(f"opuhub.singleuser_start: {sync(args.examples, home)}", file=sys.stderr, flush=True)
    os.execvp(args.command[0], args.command)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
