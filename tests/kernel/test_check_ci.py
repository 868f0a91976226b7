"""Notebook CI as a user meets it: a fresh virtual environment, a project with a notebook of
their own (not one of ours), the GitHub action's steps (action.yml) run as written.

One test, in order: install + check passes; an edited stored output fails with the explanation;
the refresh command that explanation prints makes it pass again; pre-commit itself runs the
hook (.pre-commit-hooks.yaml) on the notebook: passes. The notebook's outputs are made the way a user makes them — in
Jupyter, multi-threaded BLAS — so the check (one thread, a fresh environment) also holds the
promise that stored outputs do not depend on the thread count.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
import yaml
from jupyter_client import KernelManager
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[2]
ACTION = ROOT / "action.yml"
GITLAB = ROOT / "docs" / "gitlab-ci-notebooks.yml"
HOOKS = ROOT / ".pre-commit-hooks.yaml"
CONSTRAINTS = ROOT / "requirements" / "constraints.txt"

pytestmark = pytest.mark.slow

#: A lab's notebook: its own data, the OPU with a seed and a shape, a rounded float, a cell
#: whose output varies (marked), a cell that prints a timing-free table.
USER_CELLS = [
    new_markdown_cell("# Speckle statistics of our sample"),
    new_code_cell("import numpy as np\nfrom opu_kernel import OPU\n"
                  "rng = np.random.default_rng(7)\n"
                  "X = (rng.random((50, 400)) > 0.5).astype(np.uint8)"),
    new_code_cell("with OPU(n_components=2000, seed=3) as opu:\n"
                  "    opu.fit1d(X)\n    Y = opu.transform(X)\n"
                  "print(Y.shape, Y.dtype, int(Y.sum()))"),
    new_code_cell("Y[:3, :6]"),
    new_code_cell("print(f'contrast {Y.std() / Y.mean():.3f}')"),
    new_code_cell("# NBVAL_IGNORE_OUTPUT\nimport time\nprint('checked at', time.time())"),
]


def composite_steps(action: dict, inputs: dict[str, str]) -> list[tuple[str, dict[str, str]]]:
    """Each `run:` step of a composite action: its script and environment, with the expressions
    GitHub would substitute (`inputs.*`, `github.action_path`)."""
    def substitute(text: str) -> str:
        text = text.replace("${{ github.action_path }}", str(ROOT))
        return re.sub(r"\$\{\{\s*inputs\.([\w-]+)\s*\}\}", lambda m: inputs[m.group(1)], text)

    assert action["runs"]["using"] == "composite"
    steps = []
    for step in action["runs"]["steps"]:
        assert "run" in step, f"a step the test cannot run: {step}"
        assert step["shell"] == "bash"
        env = {k: substitute(str(v)) for k, v in step.get("env", {}).items()}
        assert "${{" not in step["run"], "expressions in run: go through env (injection-safe)"
        steps.append((step["run"], env))
    return steps


def run_step(script: str, env: dict[str, str], cwd: Path, timeout: float):
    # GitHub runs a composite step with `shell: bash` as `bash --noprofile --norc -eo pipefail`
    return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def user_environment(venv: Path, home: Path) -> dict[str, str]:
    """What a CI job has: the venv first on PATH, nothing of ours (no PYTHONPATH, no Jupyter
    folders of this machine), the pinned versions (constraints) from the warm pip cache."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("JUPYTER", "PYTHON", "OPU_", "VIRTUAL_ENV", "PIP_CONSTRAINT"))}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env['PATH']}", VIRTUAL_ENV=str(venv),
               HOME=str(home), JUPYTER_DATA_DIR=str(home / "jupyter-data"),
               JUPYTER_CONFIG_DIR=str(home / "jupyter-config"),
               PIP_CONSTRAINT=str(CONSTRAINTS), PIP_CACHE_DIR=os.environ.get(
                   "PIP_CACHE_DIR", str(Path.home() / ".cache" / "pip")))
    return env


def make_user_notebook(path: Path, kernelspecs) -> None:
    """Executed the way a user does in Jupyter: this environment's "opu" kernel, BLAS threads
    as the machine gives (not the check's single thread: the caller unset those variables)."""
    nb = new_notebook(cells=USER_CELLS, metadata={"kernelspec": {
        "name": "opu", "display_name": "Python 3 (OPU)", "language": "python"}})
    manager = KernelManager(kernel_name="opu", kernel_spec_manager=kernelspecs)
    try:
        NotebookClient(nb, km=manager, timeout=120, record_timing=False,
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    finally:  # a kernel manager handed to nbclient is the caller's to stop
        if manager.has_kernel:
            manager.shutdown_kernel(now=True)
    nbformat.write(nb, path)


def edit_stored_output(path: Path) -> str:
    """Change one digit of the stored `Y[:3, :6]`: a stale output, as after a code change."""
    nb = json.loads(path.read_text())
    cell = next(c for c in nb["cells"] if "".join(c["source"]) == "Y[:3, :6]")
    text = "".join(cell["outputs"][0]["data"]["text/plain"])
    edited = re.sub(r"\d+", lambda m: str(int(m.group()) + 1), text, count=1)
    cell["outputs"][0]["data"]["text/plain"] = edited
    path.write_text(json.dumps(nb, indent=1))
    return edited


def test_a_users_notebooks_in_a_fresh_environment(tmp_path, capsys, monkeypatch,
                                                  opu_kernelspecs):
    timings = {}
    project = tmp_path / "lab-project"
    (project / "notebooks").mkdir(parents=True)
    notebook = project / "notebooks" / "speckle.ipynb"
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    make_user_notebook(notebook, opu_kernelspecs)

    t = time.perf_counter()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    env = user_environment(venv, tmp_path / "home")
    timings["venv"] = time.perf_counter() - t

    action = yaml.safe_load(ACTION.read_text())
    (install, install_env), (check, check_env) = composite_steps(
        action, {"notebooks": "notebooks", "packages": ""})

    # 1. the action's steps: install (one command), then check: passes
    t = time.perf_counter()
    result = run_step(install, {**env, **install_env}, project, timeout=600)
    timings["install"] = time.perf_counter() - t
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    spec = json.loads((venv / "share/jupyter/kernels/opu/kernel.json").read_text())
    assert spec["argv"][0] == "python" and "{connection_file}" in spec["argv"]  # wheel data
    assert (venv / "share/jupyter/kernels/opu/logo-64x64.png").is_file()

    t = time.perf_counter()
    passed = run_step(check, {**env, **check_env}, project, timeout=300)
    timings["check"] = time.perf_counter() - t
    assert passed.returncode == 0, passed.stdout[-5000:] + passed.stderr[-3000:]
    assert f"({venv}/share/jupyter/kernels/opu)" in passed.stdout, "not the venv's kernelspec"
    line = next(ln for ln in passed.stdout.splitlines() if "notebooks/speckle.ipynb" in ln)
    assert re.search(r"\d+\.\d s\s+5 cells,\s+4 compared\s+ok$", line), line

    # 2. a stale stored output: fails, says which cell, that it is stale (a second run gives
    #    the same output) and the command that refreshes it
    edit_stored_output(notebook)
    t = time.perf_counter()
    failed = run_step(check, {**env, **check_env}, project, timeout=300)
    timings["check (fails)"] = time.perf_counter() - t
    assert failed.returncode == 1, failed.stdout[-5000:] + failed.stderr[-3000:]
    out = failed.stdout
    assert "notebooks/speckle.ipynb: Cell 2 (Y[:3, :6])" in out, out[-3000:]
    assert "Stale outputs" in out and "Varying outputs" not in out, out[-3000:]
    assert "FAILED (1 of 5 cells)" in out
    refresh = re.search(r"^\s+(python -m opu_kernel\.check --refresh .*)$", out, re.M)
    assert refresh and refresh.group(1).endswith(" notebooks/speckle.ipynb"), out[-3000:]

    # 3. the printed refresh command, as printed; then the check passes again
    t = time.perf_counter()
    refreshed = run_step(refresh.group(1), env, project, timeout=300)
    timings["refresh"] = time.perf_counter() - t
    assert refreshed.returncode == 0, refreshed.stdout[-3000:] + refreshed.stderr[-3000:]
    assert "outputs stored" in refreshed.stdout

    # 4. the pre-commit hook, by pre-commit itself (pinned in constraints.txt), on the notebook
    #    as a commit would stage it
    hook = next(h for h in yaml.safe_load(HOOKS.read_text()) if h["id"] == "opu-notebooks")
    assert hook["entry"] == "python -m opu_kernel.check" and hook["types"] == ["jupyter"]
    t = time.perf_counter()
    hook_env = {**env, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-cache")}
    hooked = run_step("python -m pip install -q pre-commit && git init -q && git add notebooks && "
                      f"pre-commit try-repo {ROOT} opu-notebooks --files notebooks/speckle.ipynb",
                      hook_env, project, timeout=300)
    timings["pre-commit"] = time.perf_counter() - t
    assert hooked.returncode == 0, hooked.stdout[-5000:] + hooked.stderr[-3000:]
    assert re.search(r"OPU notebooks match their stored outputs\.+Passed", hooked.stdout), \
        hooked.stdout[-3000:]

    with capsys.disabled():
        print("\nnotebook CI in a fresh venv: " + ", ".join(
            f"{k} {v:.1f} s" for k, v in timings.items()))


def test_the_recipes_run_the_same_two_commands():
    """GitLab's script is the action's run: lines (so the test above covers it too), and every
    recipe calls the one check command."""
    action = yaml.safe_load(ACTION.read_text())
    runs = [step["run"] for step in action["runs"]["steps"]]
    job = yaml.safe_load(GITLAB.read_text())["opu-notebooks"]
    assert job["script"] == runs
    assert set(job["variables"]) >= {"OPU_KERNEL_SOURCE", "NOTEBOOKS", "PACKAGES"}
    assert set(action["inputs"]) == {"notebooks", "packages"}
    hook = yaml.safe_load(HOOKS.read_text())[0]
    assert runs[-1].split(" $")[0] == hook["entry"] == "python -m opu_kernel.check"
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Check your own notebooks", 1)[1].split("\n## ", 1)[0]
    assert len(section.strip().splitlines()) < 15, "the README section must stay short"
    assert "python -m opu_kernel.check" in section and "--refresh" in section
