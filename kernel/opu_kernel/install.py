"""Install the "Python 3 (OPU)" kernelspec.

    python -m opu_kernel.install [--user | --sys-prefix | --prefix PREFIX] [--name opu]

Mirrors ``python -m ipykernel install``: the kernel runs this Python with ipykernel and the
``opu_kernel`` IPython extension.

``pip install opu-kernel`` already installs the spec (``share/jupyter/kernels/opu``, as wheel
data): its ``kernel.json`` names plain ``python``, which Jupyter replaces by the Python it runs
on. This command writes the absolute path of *this* Python instead, for a Jupyter that runs in
another environment (a hub, a system-wide JupyterLab), and can install under another name.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path

KERNEL_NAME = "opu"
DISPLAY_NAME = "Python 3 (OPU)"
LOGOS = ("logo-32x32.png", "logo-64x64.png", "logo-128x128.png")


def kernel_json(python: str = sys.executable, display_name: str = DISPLAY_NAME) -> dict:
    """The shipped spec (resources/kernel.json, also the wheel's data) run by ``python``."""
    spec = json.loads((resources.files("opu_kernel") / "resources" / "kernel.json").read_text())
    spec["argv"][0] = python
    spec["display_name"] = display_name
    return spec


def write_spec(directory: Path, display_name: str = DISPLAY_NAME) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "kernel.json").write_text(json.dumps(kernel_json(display_name=display_name),
                                                      indent=1) + "\n")
    package = resources.files("opu_kernel") / "resources"
    for logo in LOGOS:
        with resources.as_file(package / logo) as path:
            shutil.copy(path, directory / logo)
    return directory


def install(user: bool = False, prefix: str | None = None, name: str = KERNEL_NAME,
            display_name: str = DISPLAY_NAME) -> str:
    from jupyter_client.kernelspec import KernelSpecManager

    with tempfile.TemporaryDirectory() as tmp:
        spec_dir = write_spec(Path(tmp) / name, display_name)
        return KernelSpecManager().install_kernel_spec(str(spec_dir), kernel_name=name,
                                                       user=user, prefix=prefix)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m opu_kernel.install",
                                     description="Install the 'Python 3 (OPU)' kernelspec.")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true",
                       help="install for the current user (~/.local/share/jupyter)")
    where.add_argument("--sys-prefix", action="store_true",
                       help=f"install into this Python's prefix ({sys.prefix})")
    where.add_argument("--prefix", help="install into PREFIX/share/jupyter/kernels")
    parser.add_argument("--name", default=KERNEL_NAME, help="kernelspec name (default: opu)")
    parser.add_argument("--display-name", default=DISPLAY_NAME,
                        help=f"name shown in Jupyter (default: {DISPLAY_NAME!r})")
    args = parser.parse_args(argv)
    prefix = sys.prefix if args.sys_prefix else args.prefix
    path = install(user=args.user, prefix=prefix, name=args.name,
                   display_name=args.display_name)
    print(f"Installed kernelspec {args.name} ({args.display_name}) in {path}")


if __name__ == "__main__":
    main()
