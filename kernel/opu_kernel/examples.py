"""Deliver the example notebooks into a user's home without clobbering their work.

The single-user image ships the curated notebooks (e.g. in ``/opt/opuhub/examples``); on every
server start ``python -m opu_kernel.examples SRC ~/examples`` brings them into the user's home:

- a shipped file the user does not have yet is copied (**added**);
- a file the user has not modified since we copied it is replaced by the new release
  (**updated**), or left alone when the release did not change it (**unchanged**);
- a file the user modified is never overwritten (**kept**);
- a file we shipped earlier and the user deleted stays deleted (**deleted**): they removed it
  on purpose. Deleting the manifest (or the whole folder) brings every example back;
- a file that is in the target but was never recorded (say, a manifest lost) is adopted when
  it is identical to the shipped one, and kept as the user's otherwise.

"Modified" is decided with SHA-256 checksums of what we copied, recorded in a manifest in the
target folder (``.opuhub-examples.json``). Files are written to a temporary name and renamed,
so an interrupted start never leaves a half-written notebook.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

MANIFEST_NAME = ".opuhub-examples.json"
MANIFEST_VERSION = 1
#: Files shipped by default: the notebooks and their README. Hidden files, checkpoints and
#: test configuration (e.g. nbval's sanitize file) stay in the image.
DEFAULT_PATTERNS = ("*.ipynb", "*.md")
SKIPPED_DIRS = {".ipynb_checkpoints", "__pycache__"}

ACTIONS = ("added", "updated", "unchanged", "kept", "deleted")


@dataclass
class SyncReport:
    """What ``sync_examples`` did, file by file (paths relative to the target folder)."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[str]]:
        return {action: list(getattr(self, action)) for action in ACTIONS}

    def lines(self) -> list[str]:
        explanations = {
            "added": "added",
            "updated": "updated to the new release",
            "unchanged": "up to date",
            "kept": "kept: you modified it (the shipped version was not copied)",
            "deleted": "not restored: you deleted it",
        }
        return [f"{path}: {explanations[action]}"
                for action in ACTIONS for path in getattr(self, action)]

    def summary(self) -> str:
        counts = ", ".join(f"{len(getattr(self, a))} {a}" for a in ACTIONS)
        return f"examples: {counts}"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def shipped_files(source_dir: Path, patterns=DEFAULT_PATTERNS) -> list[str]:
    """Relative POSIX paths of the files to ship, sorted."""
    found = []
    for root, dirs, files in os.walk(source_dir):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS and not d.startswith("."))
        for name in files:
            if name.startswith(".") or not any(fnmatch.fnmatch(name, p) for p in patterns):
                continue
            found.append((Path(root) / name).relative_to(source_dir).as_posix())
    return sorted(found)


def read_manifest(target_dir: Path) -> dict[str, str]:
    """Checksums of the files we copied, by relative path; empty when absent or unreadable."""
    try:
        data = json.loads((target_dir / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return {}
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict):
        return {}
    return {str(k): str(v) for k, v in files.items()}


def write_manifest(target_dir: Path, files: dict[str, str]) -> None:
    payload = {"version": MANIFEST_VERSION, "files": dict(sorted(files.items()))}
    atomic_write(target_dir / MANIFEST_NAME, (json.dumps(payload, indent=1) + "\n").encode())


def atomic_write(path: Path, data: bytes | None = None, copy_from: Path | None = None) -> None:
    """Write ``data`` (or a copy of ``copy_from``) to ``path`` through a temporary file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as stream:
            if copy_from is not None:
                with open(copy_from, "rb") as source:
                    shutil.copyfileobj(source, stream)
            else:
                stream.write(data or b"")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def sync_examples(source_dir, target_dir, patterns=DEFAULT_PATTERNS) -> SyncReport:
    """Bring the shipped examples of ``source_dir`` into ``target_dir`` (see module doc).

    Returns a :class:`SyncReport`. Raises ``FileNotFoundError`` when ``source_dir`` is missing.
    """
    source_dir, target_dir = Path(source_dir), Path(target_dir)
    if not source_dir.is_dir():
        raise FileNotFoundError(f"no examples folder at {source_dir}")
    target_dir.mkdir(parents=True, exist_ok=True)
    recorded = read_manifest(target_dir)
    manifest = dict(recorded)
    report = SyncReport()

    for relative in shipped_files(source_dir, patterns):
        source = source_dir / relative
        target = target_dir / relative
        new_sum = sha256(source)
        if target.is_symlink() or (target.exists() and not target.is_file()):
            report.kept.append(relative)  # something of the user's own: never touch it
            continue
        if not target.exists():
            if relative in recorded:
                report.deleted.append(relative)
                continue
            atomic_write(target, copy_from=source)
            manifest[relative] = new_sum
            report.added.append(relative)
            continue
        current = sha256(target)
        if current == new_sum:
            manifest[relative] = new_sum
            report.unchanged.append(relative)
        elif recorded.get(relative) == current:
            atomic_write(target, copy_from=source)
            manifest[relative] = new_sum
            report.updated.append(relative)
        else:
            report.kept.append(relative)

    if manifest != recorded or not (target_dir / MANIFEST_NAME).exists():
        write_manifest(target_dir, manifest)
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m opu_kernel.examples",
        description="Copy the shipped example notebooks into a folder, keeping the user's "
                    "changes: new files are added, unmodified ones updated, modified ones kept.")
    parser.add_argument("source", help="folder of the shipped examples")
    parser.add_argument("target", help="the user's examples folder (e.g. ~/examples)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--quiet", action="store_true", help="print only the summary line")
    args = parser.parse_args(argv)
    try:
        report = sync_examples(args.source, os.path.expanduser(args.target))
    except OSError as exc:
        print(f"examples: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report.as_dict(), indent=1))
        return 0
    if not args.quiet:
        for line in report.lines():
            print(line)
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
