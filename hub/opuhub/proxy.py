"""Find or install configurable-http-proxy (CHP), the Node.js proxy in front of the hub.

``python -m opuhub.proxy`` installs the version pinned in ``hub/package.json`` into
``hub/node_modules`` (gitignored) with npm; ``make install``, ``make run`` and the tests
call it, so a fresh clone needs only Node.js and npm.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

HUB_DIR = Path(__file__).resolve().parent.parent
LOCAL_CHP = HUB_DIR / "node_modules" / ".bin" / "configurable-http-proxy"


class ProxyInstallError(RuntimeError):
    pass


def find_chp() -> str | None:
    """The local install first (pinned version), then one on PATH."""
    if LOCAL_CHP.exists() and os.access(LOCAL_CHP, os.X_OK):
        return str(LOCAL_CHP)
    return shutil.which("configurable-http-proxy")


def ensure_chp(quiet: bool = False) -> str:
    found = find_chp()
    if found:
        return found
    npm = shutil.which("npm")
    if npm is None:
        raise ProxyInstallError(
            "configurable-http-proxy is missing and npm is not installed: install Node.js >= 20 "
            "and npm (e.g. `apt-get install nodejs npm`), then run `python -m opuhub.proxy`."
        )
    cmd = [npm, "install", "--no-audit", "--no-fund", "--omit=dev", "--prefix", str(HUB_DIR)]
    if not quiet:
        print("installing configurable-http-proxy:", " ".join(cmd), file=sys.stderr)
    result = subprocess.run(cmd, cwd=HUB_DIR, capture_output=True, text=True)
    if result.returncode != 0 or not LOCAL_CHP.exists():
        raise ProxyInstallError(
            f"npm could not install configurable-http-proxy (exit {result.returncode}):\n"
            f"{result.stderr[-2000:]}"
        )
    return str(LOCAL_CHP)


if __name__ == "__main__":
    try:
        print(ensure_chp())
    except ProxyInstallError as e:
        sys.exit(str(e))
