"""Put OPU Hub's JupyterLab pieces where a Jupyter environment finds them.

    python -m opuhub_lab.install [--sys-prefix | --prefix P]

Into the prefix (default: this Python's ``sys.prefix``):

- ``share/jupyter/labextensions/opuhub-lab/``: the prebuilt JupyterLab extension (a copy of
  ``opuhub_lab/labextension``; JupyterLab loads prebuilt extensions from there, no build);
- ``etc/jupyter/jupyter_server_config.d/opuhub_lab.json``: enables the server extension that
  answers ``opuhub/status``;
- ``share/jupyter/lab/settings/overrides.d/opuhub.json``: JupyterLab defaults for a hosted
  platform: no "get notified about official Jupyter news?" prompt, no news or update checks
  (attendees' browsers make no requests to jupyter.org on our behalf). Users can still change
  them in their own settings.

The make install step and the single-user image both run it; it fails when the built
extension is missing (build it with ``labextension/build``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from . import LABEXTENSION_DIR, LABEXTENSION_NAME

SERVER_CONFIG = {"ServerApp": {"jpserver_extensions": {"opuhub_lab": True}}}
LAB_OVERRIDES = {
    "@jupyterlab/apputils-extension:notification": {
        "fetchNews": "false",
        "checkForUpdates": False,
    }
}


def paths(prefix: Path) -> dict[str, Path]:
    return {
        "labextension": prefix / "share" / "jupyter" / "labextensions" / LABEXTENSION_NAME,
        "server_config": prefix / "etc" / "jupyter" / "jupyter_server_config.d" / "opuhub_lab.json",
        "lab_overrides": prefix / "share" / "jupyter" / "lab" / "settings" / "overrides.d"
        / "opuhub.json",
    }


def check_built(source: Path = LABEXTENSION_DIR) -> None:
    if not (source / "package.json").is_file() or not list((source / "static").glob("remoteEntry.*.js")):
        raise FileNotFoundError(
            f"no built JupyterLab extension in {source}; build it with labextension/build "
            "(npm and the npm registry needed)")


def install(prefix: Path, source: Path = LABEXTENSION_DIR) -> dict[str, Path]:
    check_built(source)
    target = paths(prefix)
    if target["labextension"].exists():
        shutil.rmtree(target["labextension"])  # no stale remoteEntry of an older build
    shutil.copytree(source, target["labextension"],
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for key, content in (("server_config", SERVER_CONFIG), ("lab_overrides", LAB_OVERRIDES)):
        target[key].parent.mkdir(parents=True, exist_ok=True)
        target[key].write_text(json.dumps(content, indent=2) + "\n")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m opuhub_lab.install", description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--sys-prefix", action="store_true", help="this environment (the default)")
    where.add_argument("--prefix", help="another prefix, e.g. /usr/local")
    args = parser.parse_args(argv)
    prefix = Path(args.prefix) if args.prefix else Path(sys.prefix)
    try:
        done = install(prefix)
    except FileNotFoundError as e:
        print(f"opuhub_lab.install: {e}", file=sys.stderr)
        return 1
    for key, path in done.items():
        print(f"opuhub_lab.install: {key} -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
