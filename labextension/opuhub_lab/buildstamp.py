"""Which sources the committed build in ``labextension/`` was made from.

The prebuilt extension is committed (CI and the images then need no npm); its sources'
SHA-256 sums are recorded beside it, so a test can tell when ``src/`` changed without a
rebuild (``labextension/build``).

    python -m opuhub_lab.buildstamp [--write]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

from . import LABEXTENSION_DIR

SOURCE_ROOT = Path(__file__).resolve().parent.parent
STAMP = LABEXTENSION_DIR / "opuhub-sources.json"
SOURCES = ("package.json", "package-lock.json", "src/*.js", "style/*.css")


def source_sums(root: Path = SOURCE_ROOT) -> dict[str, str]:
    files = sorted({p for pattern in SOURCES for p in root.glob(pattern) if p.is_file()})
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in files}


def recorded(stamp: Path = STAMP) -> dict[str, str] | None:
    try:
        return json.loads(stamp.read_text())["sources"]
    except (OSError, ValueError, KeyError):
        return None


def stale(root: Path = SOURCE_ROOT, stamp: Path = STAMP) -> list[str]:
    """The sources whose sums differ from the build's record (all of them with no record)."""
    now, then = source_sums(root), recorded(stamp) or {}
    return sorted(name for name in set(now) | set(then) if now.get(name) != then.get(name))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m opuhub_lab.buildstamp")
    parser.add_argument("--write", action="store_true", help="record the current sources")
    args = parser.parse_args(argv)
    if args.write:
        STAMP.write_text(json.dumps({"sources": source_sums()}, indent=1, sort_keys=True) + "\n")
        return 0
    changed = stale()
    for name in changed:
        print(f"changed since the last build: {name}")
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
