"""Prepare the wheels of one image's build context on the host (used by images/build).

    python images/wheelhouse.py REQUIREMENTS OUT_DIR --python-version X.Y.Z [--local PKG_DIR ...]

1. Downloads (or builds, for sdist-only packages) every wheel that REQUIREMENTS needs into
   images/.cache/wheelhouse, with the versions pinned by requirements/constraints.txt (and
   images/constraints-override.txt where the image's Python needs an older release). This
   runs on the host, where pip already works behind the TLS-intercepting proxy; the image
   builds themselves never touch the network for Python packages.
2. Builds a wheel of each local package (kernel/, hub/) from a clean copy of its directory, so the
   working tree gets no build/ or egg-info litter.
3. Resolves REQUIREMENTS + the local packages against those wheels only, for the base image's
   Python version (pip's dry run), and refuses any distribution whose version is not pinned
   in constraints.txt: the image gets the same package set on every build.
4. Hard-links exactly the resolved third-party wheels into OUT_DIR and the local wheels into
   OUT_DIR/../local (separate Docker layers: a change in kernel/ does not reinstall numpy), and
   writes OUT_DIR/../packages.txt (name==version, for the record).
   Local wheels are built with a fixed SOURCE_DATE_EPOCH: the same sources give the same bytes,
   so Docker's layer cache holds across rebuilds.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "images" / ".cache"
WHEELHOUSE = CACHE / "wheelhouse"
CONSTRAINTS = ROOT / "requirements" / "constraints.txt"
OVERRIDES = ROOT / "images" / "constraints-override.txt"
# Not for the images: optional and huge (torch), or built from this repository.
EXCLUDED = {"torch", "opu-kernel", "opuhub"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*==\s*([^\s;]+)", line)
        if match:
            pins[canonical(match.group(1))] = match.group(3)
    return pins


def pip(*args: str, env: dict | None = None, quiet_failure: bool = False):
    cmd = [sys.executable, "-m", "pip", *args]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if result.returncode != 0 and quiet_failure:
        raise subprocess.CalledProcessError(result.returncode, cmd, result.stdout, result.stderr)
    if result.returncode != 0:
        noise = "is ignored: it is neither a file nor a directory"
        err = "\n".join(line for line in result.stderr.splitlines() if noise not in line)
        sys.exit(f"wheelhouse: {' '.join(cmd[2:5])} ... failed:\n{result.stdout[-3000:]}\n{err[-3000:]}")
    return result


def build_local(pkg_dir: Path, out: Path) -> Path:
    with tempfile.TemporaryDirectory(prefix="opuhub-wheel-") as tmp:
        src = Path(tmp) / pkg_dir.name
        shutil.copytree(pkg_dir, src, ignore=shutil.ignore_patterns(
            "__pycache__", "*.pyc", "*.egg-info", "build", "dist", "node_modules", ".pytest_cache"))
        before = set(out.glob("*.whl"))
        env = {**os.environ, "SOURCE_DATE_EPOCH": "315532800"}
        try:  # quick: this environment's setuptools
            pip("wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), str(src),
                env=env, quiet_failure=True)
        except subprocess.CalledProcessError:  # the build requirements pyproject.toml names
            pip("wheel", "-q", "--no-deps", "-w", str(out), str(src), env=env)
        new = set(out.glob("*.whl")) - before
    if len(new) != 1:
        sys.exit(f"wheelhouse: building {pkg_dir} gave {sorted(p.name for p in new)}")
    return new.pop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("requirements", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--local", type=Path, action="append", default=[])
    parser.add_argument("--python-version", required=True,
                        help="the base image's Python (e.g. 3.11.2): wheels must support it")
    args = parser.parse_args()

    pins = read_pins(CONSTRAINTS)
    for name, version in read_pins(OVERRIDES).items():
        print(f"wheelhouse: {name}=={version} for the image (host pin: {pins.get(name)}; "
              f"see {OVERRIDES.name})", file=sys.stderr)
        pins[name] = version
    CACHE.mkdir(parents=True, exist_ok=True)
    WHEELHOUSE.mkdir(parents=True, exist_ok=True)
    constraints = CACHE / "constraints.txt"
    constraints.write_text("".join(f"{n}=={v}\n" for n, v in sorted(pins.items()) if n not in EXCLUDED))

    # 1. third-party wheels (already present ones are reused; the few sdist-only packages are
    #    built into wheels). Step 3 checks them against the image's Python version.
    pip("wheel", "-q", "-w", str(WHEELHOUSE), "--find-links", str(WHEELHOUSE),
        "-c", str(constraints), "-r", str(args.requirements))
    target = ["--only-binary=:all:", "--python-version", args.python_version]

    # 2. local packages, fresh each time
    local_out = args.out.parent / "local"
    for d in (args.out, local_out):
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
    local_dir = Path(tempfile.mkdtemp(prefix="opuhub-local-wheels-"))
    try:
        local = [build_local(pkg.resolve(), local_dir) for pkg in args.local]
        local_names = [canonical(p.name.split("-")[0]) for p in local]

        # 3. resolve against the wheels only; every third-party version must be pinned
        report = local_dir / "report.json"
        pip("install", "-q", "--dry-run", "--ignore-installed", "--no-index", *target,
            "--find-links", str(WHEELHOUSE), "--find-links", str(local_dir),
            "-c", str(constraints), "-r", str(args.requirements), *local_names,
            "--report", str(report))
        items = json.loads(report.read_text())["install"]
        resolved = []
        unpinned = []
        for item in items:
            name = canonical(item["metadata"]["name"])
            version = item["metadata"]["version"]
            if name not in local_names and pins.get(name) != version:
                unpinned.append(f"{name}=={version} (constraints: {pins.get(name, 'none')})")
            url = item["download_info"]["url"]
            if not url.startswith("file://"):
                sys.exit(f"wheelhouse: {name} would come from {url}, not a local wheel")
            resolved.append((name, version, Path(url[len("file://"):])))
        if unpinned:
            sys.exit("wheelhouse: not pinned in requirements/constraints.txt (add them there):\n  "
                     + "\n  ".join(unpinned))

        # 4. exactly these wheels into the build context
        for name, _, path in resolved:
            target = (local_out if name in local_names else args.out) / path.name
            try:
                os.link(path, target)
            except OSError:
                shutil.copy2(path, target)
    finally:
        shutil.rmtree(local_dir, ignore_errors=True)
    listing = "".join(f"{n}=={v}\n" for n, v, _ in sorted(resolved))
    (args.out.parent / "packages.txt").write_text(listing)
    print(f"wheelhouse: {len(resolved)} wheels for {args.requirements.name} -> {args.out}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
