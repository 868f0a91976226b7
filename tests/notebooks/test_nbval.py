"""Run every example notebook with nbval against its stored outputs, on the "opu" kernel.

One pytest subprocess runs ``pytest --nbval --nbval-kernel-name opu --nbval-sanitize-with
notebooks/sanitize.cfg notebooks/`` — the same command as in notebooks/README.md — so each
notebook executes once. Its JUnit report gives each notebook's run time (kernel start included),
which is printed and checked against the per-notebook budget.
"""

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict

import pytest
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

from tests.notebooks.common import (
    BUDGET_S,
    KERNEL_NAME,
    MIN_NOTEBOOKS,
    NOTEBOOK_DIR,
    NOTEBOOKS,
    ROOT,
    SANITIZE,
)

pytestmark = pytest.mark.slow

#: As in scripts/refresh-notebooks: one BLAS thread, so that results do not depend on the number
#: of cores, and a busy CI runner does not make multi-threaded BLAS spin (3x slower here).
SINGLE_THREADED_BLAS = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
                        "MKL_NUM_THREADS": "1"}


def nbval_command(junit_path):
    return [sys.executable, "-m", "pytest", "--nbval", "--nbval-kernel-name", KERNEL_NAME,
            "--nbval-sanitize-with", str(SANITIZE.relative_to(ROOT)), "-p", "no:cacheprovider",
            "-q", f"--junitxml={junit_path}", "-o", "junit_family=xunit2",
            str(NOTEBOOK_DIR.relative_to(ROOT))]


def notebook_times(junit_path) -> dict[str, float]:
    """Seconds per notebook: the sum of its cells' test times (setup, which starts the kernel,
    included)."""
    times = defaultdict(float)
    for case in ET.parse(junit_path).getroot().iter("testcase"):
        # nbval names a cell's test "notebooks/NN-name.ipynb::Cell N"; JUnit keeps the file
        # in the classname ("notebooks.NN-name.ipynb" or similar) or in a file attribute
        source = case.get("file") or case.get("classname", "")
        name = next((p.name for p in NOTEBOOKS if p.stem in source), source)
        times[name] += float(case.get("time", 0))
    return dict(times)


def test_kernel_is_installed():
    try:
        KernelSpecManager().get_kernel_spec(KERNEL_NAME)
    except NoSuchKernel:
        pytest.fail(f"no '{KERNEL_NAME}' kernelspec: run `make install` "
                    "(python -m opu_kernel.install --sys-prefix)")


def test_notebooks_match_their_stored_outputs(tmp_path, capsys, record_testsuite_property):
    assert len(NOTEBOOKS) >= MIN_NOTEBOOKS, f"only {len(NOTEBOOKS)} notebooks in {NOTEBOOK_DIR}"
    junit = tmp_path / "nbval.xml"
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", **SINGLE_THREADED_BLAS)
    result = subprocess.run(nbval_command(junit), cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=len(NOTEBOOKS) * BUDGET_S * 2)
    times = notebook_times(junit) if junit.exists() else {}
    report = "\n".join(f"  {name:<45} {seconds:6.1f} s" for name, seconds in sorted(times.items()))
    summary = f"nbval: {len(times)} notebooks in {sum(times.values()):.1f} s\n{report}"
    with capsys.disabled():
        print("\n" + summary)
    for name, seconds in sorted(times.items()):  # also in the JUnit report of this run
        record_testsuite_property(f"notebook_seconds[{name}]", round(seconds, 1))
    assert result.returncode == 0, (
        f"nbval failed (exit {result.returncode}); refresh the stored outputs with "
        f"scripts/refresh-notebooks if the change was intended.\n{summary}\n"
        f"{result.stdout[-20000:]}\n{result.stderr[-5000:]}")
    assert set(times) == {p.name for p in NOTEBOOKS}, f"not every notebook ran: {sorted(times)}"
    over = {name: s for name, s in times.items() if s > BUDGET_S}
    assert not over, f"over the {BUDGET_S:.0f} s budget: {over}\n{summary}"
