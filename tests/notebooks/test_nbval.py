"""Run every example notebook against its stored outputs, on the "opu" kernel.

With the command users run on their own notebooks, ``python -m opu_kernel.check notebooks``
(nbval, the shipped sanitizers, one BLAS thread; see notebooks/README.md), in one subprocess so
that each notebook executes once. Its JSON report gives each notebook's run time (kernel start
included), which is printed and checked against the per-notebook budget.
"""

import json
import os
import subprocess
import sys

import pytest
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

from tests.notebooks.common import (
    BUDGET_S,
    KERNEL_NAME,
    MIN_NOTEBOOKS,
    NOTEBOOK_DIR,
    NOTEBOOKS,
    ROOT,
)

pytestmark = pytest.mark.slow


def check_command(report_path):
    return [sys.executable, "-m", "opu_kernel.check", "--kernel", KERNEL_NAME,
            "--report", str(report_path), str(NOTEBOOK_DIR.relative_to(ROOT))]


def test_kernel_is_installed():
    try:
        KernelSpecManager().get_kernel_spec(KERNEL_NAME)
    except NoSuchKernel:
        pytest.fail(f"no '{KERNEL_NAME}' kernelspec: run `make install` "
                    "(python -m opu_kernel.install --sys-prefix)")


def test_notebooks_match_their_stored_outputs(tmp_path, capsys, record_testsuite_property):
    assert len(NOTEBOOKS) >= MIN_NOTEBOOKS, f"only {len(NOTEBOOKS)} notebooks in {NOTEBOOK_DIR}"
    report = tmp_path / "check.json"
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    result = subprocess.run(check_command(report), cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=len(NOTEBOOKS) * BUDGET_S * 2)
    results = json.loads(report.read_text()) if report.exists() else []
    times = {os.path.basename(r["path"]): r["seconds"] for r in results}
    lines = "\n".join(f"  {name:<45} {seconds:6.1f} s" for name, seconds in sorted(times.items()))
    summary = f"opu_kernel.check: {len(times)} notebooks in {sum(times.values()):.1f} s\n{lines}"
    with capsys.disabled():
        print("\n" + summary)
    for name, seconds in sorted(times.items()):  # also in the JUnit report of this run
        record_testsuite_property(f"notebook_seconds[{name}]", round(seconds, 1))
    assert result.returncode == 0, (
        f"the check failed (exit {result.returncode}); if the change was intended, refresh the "
        f"stored outputs with scripts/refresh-notebooks.\n{result.stdout[-20000:]}\n"
        f"{result.stderr[-5000:]}")
    assert set(times) == {p.name for p in NOTEBOOKS}, f"not every notebook ran: {sorted(times)}"
    uncompared = [r["path"] for r in results if not r["compared"]]
    assert not uncompared, f"no stored output was compared in {uncompared}"
    over = {name: s for name, s in times.items() if s > BUDGET_S}
    assert not over, f"over the {BUDGET_S:.0f} s budget: {over}\n{summary}"
