"""Check notebooks against their stored outputs on the OPU kernel, as CI does.

    python -m opu_kernel.check NOTEBOOK_OR_FOLDER...            # nbval: run, compare outputs
    python -m opu_kernel.check --refresh NOTEBOOK_OR_FOLDER...  # re-run, store the new outputs

Needs ``pip install "opu-kernel[check]"`` (nbval, nbclient). Each notebook runs from a fresh
"opu" kernel with nbval; outputs are compared after the sanitizers shipped with this package
(times, dates, addresses, figure sizes, progress bars) and any given with ``--sanitize-with``.
Both modes run in the same environment, so that what ``--refresh`` stores is what the check
gets: one BLAS thread (results that do not depend on the machine's cores) and the simulator
(``OPU_BACKEND=simulator`` unless set). Each notebook's time is printed; a failure is explained
(stale outputs: the refresh command; a cell whose output varies: how to mark it).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shlex
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

KERNEL_NAME = "opu"
#: One BLAS thread in the kernel, as in our own notebook tests: a BLAS may split its sums
#: differently with more threads, so float results printed with all their digits could depend
#: on the machine's cores; and a busy CI runner makes multi-threaded BLAS spin (3x slower on
#: 2 cores).
SINGLE_THREADED_BLAS = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
                        "MKL_NUM_THREADS": "1"}
#: Stored outputs come from the simulator, whatever hardware the checking machine has.
DEFAULT_BACKEND = "simulator"
#: Seconds a cell may run (nbval's own default is 2000).
CELL_TIMEOUT_S = 600
PROG = "python -m opu_kernel.check"
INSTALL_HINT = 'pip install "opu-kernel[check]"'


@dataclass
class CellFailure:
    cell: int            # nbval's number: code cells counted from 0
    kind: str            # stale | varies | differs | error | timeout | unrun | setup | other
    first_line: str      # of the cell's source, to find it
    message: str


@dataclass
class NotebookResult:
    path: str
    seconds: float = 0.0
    cells: int = 0       # code cells nbval ran (or tried to)
    compared: int = 0    # of which the stored outputs were compared
    failures: list[CellFailure] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


def find_notebooks(paths: list[str]) -> list[Path]:
    """The notebooks named, and those under the folders named (checkpoints excluded), in order,
    each once. A path that does not exist or is not a notebook raises ValueError."""
    found: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*.ipynb")
                            if ".ipynb_checkpoints" not in p.parts)
        elif path.suffix == ".ipynb" and path.is_file():
            found.append(path)
        elif not path.exists():
            raise ValueError(f"{name}: no such file or folder")
        else:
            raise ValueError(f"{name}: not a notebook (.ipynb) or a folder")
    unique = list(dict.fromkeys(found))
    if not unique:
        raise ValueError(f"no notebooks (.ipynb) in {' '.join(paths)}")
    return unique


def check_environment(base: dict[str, str]) -> dict[str, str]:
    """The environment both modes run the kernel in: ``base`` with one BLAS thread (always)
    and the simulator backend (unless chosen)."""
    env = dict(base, **SINGLE_THREADED_BLAS)
    env.setdefault("OPU_BACKEND", DEFAULT_BACKEND)
    env.pop("PYTEST_ADDOPTS", None)  # a user's pytest options must not change the check
    return env


def apply_environment(environ) -> None:
    """Turn ``environ`` (os.environ) into check_environment() of itself, in place: the kernels
    nbval and nbclient start inherit it, with everything else of the caller's."""
    target = check_environment(dict(environ))
    for key in set(environ) - set(target):
        del environ[key]
    environ.update(target)


def shipped_sanitizers() -> str:
    return (resources.files("opu_kernel") / "resources" / "sanitize.cfg").read_text()


def nbval_args(notebooks: list[Path], kernel: str, sanitize_file: Path, ini_file: Path,
               timeout: float) -> list[str]:
    """pytest's arguments: nbval on ``kernel``, isolated from the project's pytest setup
    (its ini options, conftest.py files, cache and plugins that reorder tests)."""
    return ["--nbval", "--nbval-kernel-name", kernel,
            "--nbval-sanitize-with", str(sanitize_file),
            "--nbval-cell-timeout", str(timeout),
            "-c", str(ini_file), "--rootdir", os.getcwd(), "--noconftest",
            "-p", "no:cacheprovider", "-p", "no:randomly", "-p", "no:xdist",
            # nbval colours its report unless told "no"; colours only for a terminal
            "--color", "yes" if sys.stdout.isatty() else "no",
            "-q", *map(str, notebooks)]


def classify(message: str, when: str) -> str:
    if when == "setup":
        return "setup"
    if message.startswith("Cell outputs differ"):
        return "differs"
    if message.startswith("Cell execution caused an exception"):
        return "error"
    if message.startswith("Timeout"):
        return "timeout"
    if message.startswith("Unrun reference cell"):
        return "unrun"
    return "other"


class Recorder:
    """pytest plugin: each notebook's time, cells and failures, from nbval's items (plain hooks:
    importable without pytest)."""

    def __init__(self, notebooks: list[Path]):
        self.results = {str(p.resolve()): NotebookResult(str(p)) for p in notebooks}
        self.items: dict[str, tuple[NotebookResult, object]] = {}
        #: nbval's fresh outputs of the cells whose stored outputs differ, by (path, cell)
        self.fresh: dict[tuple[str, int], list] = {}

    def pytest_itemcollected(self, item):
        result = self.results.get(str(Path(item.path).resolve()))
        if result is not None and hasattr(item, "cell_num"):  # an nbval cell
            self.items[item.nodeid] = (result, item)

    def pytest_runtest_logreport(self, report):
        if report.nodeid not in self.items:
            return
        result, item = self.items[report.nodeid]
        result.seconds += report.duration  # the first cell's setup starts the kernel
        if report.when == "call":
            result.cells += 1
            if report.passed and item.options.get("check") \
                    and item.cell.get("execution_count") is not None:
                result.compared += 1  # a differing cell is counted where it fails

    def pytest_exception_interact(self, node, call, report):
        if node.nodeid not in self.items:
            return
        result, item = self.items[node.nodeid]
        kind = classify(str(call.excinfo.value), call.when)
        if kind == "setup" and any(f.kind == "setup" for f in result.failures):
            return  # every later cell repeats the notebook's setup error
        if kind == "differs":
            result.compared += 1
            self.fresh[(result.path, item.cell_num)] = list(item.test_outputs or [])
        first = next((line for line in item.cell.source.splitlines() if line.strip()), "")
        result.failures.append(CellFailure(item.cell_num, kind, first.strip()[:60],
                                           str(call.excinfo.value)[:500]))


def sanitize_patterns(text: str) -> list[tuple[str, str]]:
    """The regex/replace pairs of a sanitizer file, read as nbval reads them."""
    return re.findall(r"^regex: (.*)$\n^replace: (.*)$", text, flags=re.MULTILINE)


def comparable(outputs: list, patterns: list[tuple[str, str]]) -> list:
    """What nbval compares of a cell's outputs: the text of streams (consecutive ones joined),
    results and displays (images and metadata left out), error names; sanitized."""
    def clean(text) -> str:
        text = "".join(text) if isinstance(text, list) else str(text)
        for regex, replace in patterns:
            text = re.sub(regex, replace, text)
        return text

    items: list = []
    for out in outputs:
        kind = out.get("output_type")
        if kind == "stream":
            if items and items[-1][0] == "stream" and items[-1][1] == out.get("name"):
                items[-1] = ("stream", out.get("name"), items[-1][2] + clean(out.get("text", "")))
            else:
                items.append(("stream", out.get("name"), clean(out.get("text", ""))))
        elif kind in ("execute_result", "display_data"):
            data = out.get("data", {})
            items.append(("data", sorted((mime, clean(value)) for mime, value in data.items()
                                         if not mime.startswith("image/"))))
        elif kind == "error":
            items.append(("error", out.get("ename")))
    return items


def code_cell_outputs(nb) -> dict[int, list]:
    """Outputs by nbval's cell number (code cells counted from 0)."""
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    return {number: list(cell.get("outputs", [])) for number, cell in enumerate(code)}


def diagnose(results: list[NotebookResult], fresh: dict[tuple[str, int], list],
             patterns: list[tuple[str, str]], kernel: str, timeout: float) -> None:
    """Tell stale outputs from varying ones: run each notebook with differing cells once more;
    a cell that gives what nbval's run gave is stale (refresh it), one that gives something else
    varies (mark it). Failures stay "differs" when the second run cannot be made."""
    import nbformat

    from opu_kernel.refresh import execute

    for result in results:
        differing = [f for f in result.failures if f.kind == "differs"]
        if not differing:
            continue
        path = Path(result.path)
        try:
            nb = nbformat.read(path, as_version=4)
            execute(nb, path, kernel, timeout, allow_errors=True)
        except Exception as exc:  # noqa: BLE001 - keep the generic explanation
            print(f"{PROG}: could not run {path} again to tell stale outputs from varying "
                  f"ones: {exc}", file=sys.stderr)
            continue
        second = code_cell_outputs(nb)
        for failure in differing:
            first_run = comparable(fresh.get((result.path, failure.cell), []), patterns)
            failure.kind = ("stale" if first_run == comparable(second.get(failure.cell, []),
                                                               patterns) else "varies")


def explain(results: list[NotebookResult], kernel: str) -> str:
    """What the failures mean and what to do, with the commands to type."""
    by_kind: dict[str, list[tuple[NotebookResult, CellFailure]]] = {}
    for result in results:
        for failure in result.failures:
            by_kind.setdefault(failure.kind, []).append((result, failure))

    def cells(kinds):
        return "\n".join(f"  {r.path}: Cell {f.cell} ({f.first_line})"
                         for kind in kinds for r, f in by_kind.get(kind, []))

    def paths(kinds):
        return " ".join(shlex.quote(p) for p in dict.fromkeys(
            r.path for kind in kinds for r, _ in by_kind.get(kind, [])))

    parts = ["(nbval numbers code cells from 0: Cell 2 is the third code cell)"]
    refresh = "then review the diff and commit the notebooks"
    mark = f"""\
  make it reproducible (seed the OPU and every random generator), or mark the cell with a line
      # NBVAL_IGNORE_OUTPUT
  of its own: it still runs, its output is not compared. To mask only part of an output, give
  regex/replace pairs with --sanitize-with FILE (nbval's format: see {PROG} --show-sanitizers)."""
    if "stale" in by_kind or "unrun" in by_kind:
        parts.append(f"""\
Stale outputs: these cells give the same output on every run, but not the stored one:
{cells(["stale", "unrun"])}
- If the change is intended (you edited the code, a library changed), store the new outputs,
  {refresh}:
      {PROG} --refresh {paths(["stale", "unrun"])}""")
    if "varies" in by_kind:
        parts.append(f"""\
Varying outputs: these cells gave different outputs in two runs of the same code:
{cells(["varies"])}
- Refreshing will not help:
{mark}""")
    if "differs" in by_kind:
        parts.append(f"""\
Stored outputs differ from what the code gives now:
{cells(["differs"])}
- If the change is intended, store the new outputs, {refresh}:
      {PROG} --refresh {paths(["differs"])}
- If a cell's output changes from run to run (timings, unseeded random numbers, dates),
{mark}""")
    if "error" in by_kind:
        parts.append(f"""\
A cell raised an exception (traceback above):
{cells(["error"])}
- Fix the notebook; a cell that is meant to raise gets a line "# NBVAL_RAISES_EXCEPTION".""")
    if "timeout" in by_kind:
        parts.append(f"""\
A cell ran out of time:
{cells(["timeout"])}
- Make it smaller (fewer samples or components on the simulator) or allow more: --timeout SECONDS.""")
    if "setup" in by_kind:
        parts.append(f"""\
A notebook could not start its kernel '{kernel}':
{cells(["setup"])}
- See the error above. {INSTALL_HINT} installs the kernel into this environment.""")
    if "other" in by_kind:
        parts.append(f"Other failures (see above):\n{cells(['other'])}")
    return "\n\n".join(parts)


def notebooks_(n: int) -> str:
    return f"{n} notebook" + ("" if n == 1 else "s")


def summary(results: list[NotebookResult]) -> str:
    width = max(len(r.path) for r in results)
    lines = []
    for r in results:
        state = "ok" if r.passed else f"FAILED ({len(r.failures)} of {r.cells} cells)"
        lines.append(f"  {r.path:<{width}}  {r.seconds:6.1f} s  {r.cells:3d} cells, "
                     f"{r.compared:3d} compared  {state}")
    total = sum(r.seconds for r in results)
    lines.append(f"{notebooks_(len(results))} in {total:.1f} s")
    return "\n".join(lines)


def not_compared_note(results: list[NotebookResult]) -> str:
    empty = [r.path for r in results if r.cells and not r.compared]
    if not empty:
        return ""
    return ("No stored outputs were compared in " + ", ".join(empty) + ": they only ran. "
            f"Store outputs with {PROG} --refresh, and commit them.")


def find_kernel(kernel: str) -> tuple[str | None, str | None]:
    """(the kernelspec's folder, None), or (None, why ``kernel`` cannot start from here)."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        return KernelSpecManager().get_kernel_spec(kernel).resource_dir, None
    except NoSuchKernel:
        return None, (f"no '{kernel}' kernelspec is visible to {sys.executable}: "
                      f"{INSTALL_HINT} installs it into this environment "
                      "(python -m opu_kernel.install --user, for a Jupyter elsewhere)")


def run_check(notebooks: list[Path], kernel: str, sanitizers: str,
              timeout: float) -> tuple[int, Recorder]:
    import pytest

    recorder = Recorder(notebooks)
    with tempfile.TemporaryDirectory(prefix="opu-check-") as tmp:
        sanitize = Path(tmp) / "sanitize.cfg"
        sanitize.write_text(sanitizers)
        ini = Path(tmp) / "pytest.ini"
        ini.write_text("[pytest]\n")
        code = pytest.main(nbval_args(notebooks, kernel, sanitize, ini, timeout),
                           plugins=[recorder])
    return int(code), recorder


def run_refresh(notebooks: list[Path], kernel: str, timeout: float) -> int:
    from opu_kernel.refresh import RefreshError, refresh

    total = 0.0
    for path in notebooks:
        try:
            seconds = refresh(path, kernel, timeout)
        except RefreshError as exc:
            print(f"{PROG} --refresh: {exc}", file=sys.stderr)
            return 1
        total += seconds
        print(f"  {path}  {seconds:6.1f} s  outputs stored")
    print(f"{notebooks_(len(notebooks))} in {total:.1f} s. Review the diff (git diff) and commit "
          "the notebooks.")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG, description="Check notebooks against their stored outputs on the OPU kernel "
        "(nbval), or store new outputs (--refresh).")
    p.add_argument("paths", nargs="*", metavar="NOTEBOOK_OR_FOLDER",
                   help="notebooks, or folders searched for *.ipynb")
    p.add_argument("--refresh", action="store_true",
                   help="re-execute the notebooks and store their outputs (no comparison)")
    p.add_argument("--kernel", default=KERNEL_NAME, help=f"kernelspec (default: {KERNEL_NAME})")
    p.add_argument("--sanitize-with", type=Path, metavar="FILE",
                   help="more regex/replace pairs (nbval's format) besides the shipped ones")
    p.add_argument("--timeout", type=float, default=CELL_TIMEOUT_S,
                   help=f"seconds a cell may run (default: {CELL_TIMEOUT_S})")
    p.add_argument("--report", type=Path, metavar="FILE",
                   help="also write each notebook's result and time as JSON")
    p.add_argument("--show-sanitizers", action="store_true",
                   help="print the shipped sanitizers and exit")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.show_sanitizers:
        print(shipped_sanitizers(), end="")
        return 0
    if not args.paths:
        parser().error("name at least one notebook or folder")
    try:
        notebooks = find_notebooks(args.paths)
    except ValueError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    if args.sanitize_with and not args.sanitize_with.is_file():
        print(f"{PROG}: --sanitize-with {args.sanitize_with}: no such file", file=sys.stderr)
        return 2
    # find_spec, not import: pytest must import nbval itself (assertion rewriting)
    missing = [m for m in ("nbval", "nbclient") if importlib.util.find_spec(m) is None]
    if missing:
        print(f"{PROG}: {' and '.join(missing)} missing: {INSTALL_HINT}", file=sys.stderr)
        return 2
    spec_dir, problem = find_kernel(args.kernel)
    if problem:
        print(f"{PROG}: {problem}", file=sys.stderr)
        return 2
    # the kernels nbval and nbclient start inherit this process's environment
    apply_environment(os.environ)
    opu_env = " ".join(f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("OPU_"))
    mode = "refresh" if args.refresh else "check"
    print(f"{PROG}: {mode} {notebooks_(len(notebooks))} on kernel '{args.kernel}' ({spec_dir}), "
          f"one BLAS thread, {opu_env}", flush=True)
    if args.refresh:
        return run_refresh(notebooks, args.kernel, args.timeout)

    sanitizers = shipped_sanitizers() + "\n" + (
        args.sanitize_with.read_text() if args.sanitize_with else "")
    start = time.perf_counter()
    code, recorder = run_check(notebooks, args.kernel, sanitizers, args.timeout)
    results = list(recorder.results.values())
    print(f"\n{PROG}: {time.perf_counter() - start:.1f} s\n{summary(results)}")
    if recorder.fresh:
        print(f"{PROG}: running the notebooks with differing outputs once more, to tell stale "
              "outputs from varying ones", flush=True)
        diagnose(results, recorder.fresh, sanitize_patterns(sanitizers), args.kernel,
                 args.timeout)
    if note := not_compared_note(results):
        print(note)
    if args.report:
        args.report.write_text(json.dumps([asdict(r) | {"passed": r.passed} for r in results],
                                          indent=1) + "\n")
    failed = [r for r in results if not r.passed]
    if failed:
        print("\n" + explain(results, args.kernel))
    if code == 0 and failed:  # never report success over a failure nbval recorded
        code = 1
    if code == 5:  # pytest: nothing collected
        print(f"{PROG}: no code cells in {' '.join(args.paths)}: nothing to check",
              file=sys.stderr)
    elif code not in (0, 1):
        print(f"{PROG}: pytest/nbval stopped with exit code {code}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
