"""`python -m opu_kernel.check`: its pure parts (notebook discovery, environment, pytest's
arguments, the explanation, nbval markers for --refresh) and the kernelspec shipped as wheel
data. The whole flow in a fresh environment is in test_check_ci.py."""

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from opu_kernel import check, install
from opu_kernel.check import CellFailure, NotebookResult
from opu_kernel.refresh import NBCLIENT_RAISES, NBCLIENT_SKIP, nbclient_tags

ROOT = Path(__file__).resolve().parents[2]


def test_folders_are_searched_without_checkpoints_and_each_notebook_comes_once(tmp_path):
    for name in ("b.ipynb", "a.ipynb", "sub/c.ipynb", ".ipynb_checkpoints/a-checkpoint.ipynb"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("{}")
    found = check.find_notebooks([str(tmp_path), str(tmp_path / "a.ipynb")])
    assert [p.relative_to(tmp_path).as_posix() for p in found] == [
        "a.ipynb", "b.ipynb", "sub/c.ipynb"]


@pytest.mark.parametrize("name, message", [
    ("missing.ipynb", "no such file or folder"),
    ("notes.txt", "not a notebook"),
    ("empty", "no notebooks (.ipynb) in"),
])
def test_bad_paths_say_what_is_wrong(tmp_path, name, message):
    (tmp_path / "notes.txt").write_text("")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check.find_notebooks([str(tmp_path / name)])


def test_the_environment_has_one_blas_thread_and_the_simulator_unless_chosen():
    env = check.check_environment({"OPENBLAS_NUM_THREADS": "8", "PYTEST_ADDOPTS": "-x",
                                   "HOME": "/h"})
    assert env == {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                   "OPU_BACKEND": "simulator", "HOME": "/h"}
    assert check.check_environment({"OPU_BACKEND": "hardware"})["OPU_BACKEND"] == "hardware"


def test_the_kernels_get_the_callers_environment_with_those_changes():
    environ = {"PATH": "/usr/bin", "LAB_DATA": "/data", "PYTEST_ADDOPTS": "-x",
               "OMP_NUM_THREADS": "4"}
    check.apply_environment(environ)
    assert environ == {"PATH": "/usr/bin", "LAB_DATA": "/data", "OPU_BACKEND": "simulator",
                       **check.SINGLE_THREADED_BLAS}


def test_the_single_threaded_blas_is_the_curated_notebooks_one():
    """One setup for users and for our notebooks: scripts/refresh-notebooks goes through it."""
    script = (ROOT / "scripts" / "refresh-notebooks").read_text()
    assert "python -m opu_kernel.check --refresh" in script
    assert "NUM_THREADS" not in script  # no second copy of the environment


def test_nbval_runs_on_the_kernel_isolated_from_the_projects_pytest_setup(tmp_path):
    args = check.nbval_args([Path("a.ipynb")], "opu", tmp_path / "s.cfg", tmp_path / "p.ini", 60)
    assert args[:3] == ["--nbval", "--nbval-kernel-name", "opu"]
    assert "--nbval-current-env" not in args  # would drop the OPU kernel's extension
    for option in (["--nbval-sanitize-with", str(tmp_path / "s.cfg")], ["-c", str(tmp_path / "p.ini")],
                   ["--noconftest"], ["-p", "no:randomly"], ["--nbval-cell-timeout", "60"]):
        assert any(args[i:i + len(option)] == option for i in range(len(args))), option
    assert args[-1] == "a.ipynb"


def test_the_shipped_sanitizers_are_nbval_pairs():
    from nbval.plugin import get_sanitize_patterns

    patterns = dict(get_sanitize_patterns(check.shipped_sanitizers()))
    assert len(patterns) >= 6
    masked = "<Figure size 640x480 with 1 Axes> at 0x7f3a2b1c9d40"
    for regex, replace in patterns.items():
        masked = re.sub(regex, replace, masked)
    assert masked == "<Figure> at 0xADDRESS"


@pytest.mark.parametrize("message, when, kind", [
    ("Cell outputs differ", "call", "differs"),
    ("Cell execution caused an exception", "call", "error"),
    ("Timeout of 60 seconds exceeded executing cell", "call", "timeout"),
    ("Unrun reference cell has outputs", "call", "unrun"),
    ("No such kernel named opu", "setup", "setup"),
    ("Kernel dead on test start", "call", "other"),
])
def test_nbval_failures_are_classified(message, when, kind):
    assert check.classify(message, when) == kind


def test_stale_and_varying_outputs_are_explained_apart():
    results = [NotebookResult("nb/my lab.ipynb", 1.0, 4, 4, [
        CellFailure(2, "stale", "print(Y.sum())", "Cell outputs differ"),
        CellFailure(3, "varies", "print(time())", "Cell outputs differ")]),
        NotebookResult("nb/ok.ipynb", 1.0, 3, 3)]
    text = check.explain(results, "opu")
    stale, varies = text.split("Varying outputs")
    assert "nb/my lab.ipynb: Cell 2 (print(Y.sum()))" in stale
    assert "python -m opu_kernel.check --refresh 'nb/my lab.ipynb'\n" in stale  # shell-quoted
    assert "Cell 3 (print(time()))" in varies and "--refresh" not in varies
    assert "# NBVAL_IGNORE_OUTPUT" in varies and "--sanitize-with" in varies
    assert "ok.ipynb" not in text


def test_an_undiagnosed_difference_offers_both_ways():
    text = check.explain([NotebookResult("a.ipynb", 1.0, 2, 2, [
        CellFailure(1, "differs", "x", "Cell outputs differ")])], "opu")
    assert "--refresh a.ipynb" in text and "# NBVAL_IGNORE_OUTPUT" in text


def test_outputs_are_compared_as_nbval_compares_them():
    patterns = check.sanitize_patterns(check.shipped_sanitizers())
    first = [{"output_type": "stream", "name": "stdout", "text": "a "},
             {"output_type": "stream", "name": "stdout", "text": ["b at 0x7f3a2b1c9d40\n"]},
             {"output_type": "display_data", "metadata": {"w": 1},
              "data": {"text/plain": "<Figure size 640x480 with 1 Axes>", "image/png": "AAA"}}]
    second = [{"output_type": "stream", "name": "stdout", "text": "a b at 0x55aa11bb22cc\n"},
              {"output_type": "display_data", "metadata": {},
               "data": {"text/plain": "<Figure size 900x300 with 2 Axes>", "image/png": "BBB"}}]
    assert check.comparable(first, patterns) == check.comparable(second, patterns)
    assert check.comparable(first, patterns) != check.comparable(
        [{"output_type": "stream", "name": "stdout", "text": "a c\n"}], patterns)


def test_an_exception_and_a_missing_kernel_are_explained_apart():
    results = [NotebookResult("a.ipynb", 1.0, 2, 1, [
        CellFailure(1, "error", "1/0", "Cell execution caused an exception")]),
        NotebookResult("b.ipynb", 0.1, 0, 0, [CellFailure(0, "setup", "import x", "boom")])]
    text = check.explain(results, "opu")
    assert "NBVAL_RAISES_EXCEPTION" in text and "--refresh" not in text
    assert "could not start its kernel 'opu'" in text and "opu-kernel[check]" in text


def test_a_notebook_without_stored_outputs_is_named():
    note = check.not_compared_note([NotebookResult("a.ipynb", 1.0, 3, 0),
                                    NotebookResult("b.ipynb", 1.0, 3, 3)])
    assert "a.ipynb" in note and "b.ipynb" not in note and "--refresh" in note


@pytest.mark.parametrize("source, tags, expected", [
    ("# NBVAL_SKIP\nslow()", [], {NBCLIENT_SKIP}),
    ("x = 1  # NBVAL_SKIP", [], set()),  # nbval: a marker is a comment line of its own
    ("  #  NBVAL_RAISES_EXCEPTION\n1/0", [], {NBCLIENT_RAISES}),
    ("1/0", ["nbval-raises-exception"], {NBCLIENT_RAISES}),
    ("1/0", ["raises-exception"], set()),  # already nbclient's own tag
    ("# NBVAL_IGNORE_OUTPUT\nprint(time())", [], set()),  # runs; its output is stored
])
def test_refresh_treats_nbval_markers_as_nbval_does(source, tags, expected):
    assert nbclient_tags({"source": source, "metadata": {"tags": tags}}) == expected


def test_the_installed_spec_is_the_shipped_one_with_this_python():
    shipped = json.loads((ROOT / "kernel/opu_kernel/resources/kernel.json").read_text())
    assert shipped["argv"][:1] == ["python"] and "{connection_file}" in shipped["argv"]
    assert install.kernel_json() == dict(shipped, argv=[sys.executable, *shipped["argv"][1:]])


def test_the_wheel_carries_the_kernelspec_as_data(tmp_path):
    """pip puts <wheel>.data/data/share/... under the environment's prefix: Jupyter finds it."""
    src = tmp_path / "src"
    subprocess.run(["cp", "-r", str(ROOT / "kernel"), str(src)], check=True)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(tmp_path / "dist"), str(src)],
                   check=True, capture_output=True, env=dict(os.environ, PIP_NO_INDEX="1"))
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    data = "opu_kernel-0.1.0.data/data/share/jupyter/kernels/opu/"
    assert {data + n for n in ("kernel.json", *install.LOGOS)} <= set(names)
    assert "opu_kernel/resources/sanitize.cfg" in names


def test_missing_notebooks_fail_before_anything_runs(tmp_path):
    result = subprocess.run([sys.executable, "-m", "opu_kernel.check", str(tmp_path / "nope")],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "no such file or folder" in result.stderr


@pytest.mark.slow
def test_a_check_tells_a_stale_output_from_a_varying_one(tmp_path, opu_kernelspecs):
    def cell(source, stored, count):
        return new_code_cell(source, execution_count=count, outputs=[
            new_output("stream", name="stdout", text=stored)])

    nb = new_notebook(cells=[
        cell("print(6 * 7)", "41\n", 1),                                    # stale
        cell("import time\nprint(time.time_ns())", "1\n", 2),               # varies
        cell("# NBVAL_IGNORE_OUTPUT\nprint(time.time_ns())", "2\n", 3),     # marked: passes
    ])
    nbformat.write(nb, tmp_path / "lab.ipynb")
    kernels = Path(opu_kernelspecs.kernel_dirs[0])
    env = dict(os.environ, JUPYTER_PATH=str(kernels.parent))
    result = subprocess.run([sys.executable, "-m", "opu_kernel.check", "lab.ipynb",
                             "--report", "report.json"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"({kernels / 'opu'})" in result.stdout
    stale, varies = result.stdout.split("Stale outputs", 1)[1].split("Varying outputs")
    assert "lab.ipynb: Cell 0 (print(6 * 7))" in stale and "--refresh lab.ipynb" in stale
    assert "lab.ipynb: Cell 1 (import time)" in varies and "Cell 2" not in varies
    (report,) = json.loads((tmp_path / "report.json").read_text())
    assert [(f["cell"], f["kind"]) for f in report["failures"]] == [(0, "stale"), (1, "varies")]
    assert report["cells"] == 3 and report["compared"] == 2 and not report["passed"]


@pytest.mark.slow
def test_a_notebook_without_code_is_not_a_pass(tmp_path, opu_kernelspecs):
    nbformat.write(new_notebook(cells=[nbformat.v4.new_markdown_cell("# Notes")]),
                   tmp_path / "notes.ipynb")
    env = dict(os.environ, JUPYTER_PATH=str(Path(opu_kernelspecs.kernel_dirs[0]).parent))
    result = subprocess.run([sys.executable, "-m", "opu_kernel.check", "notes.ipynb"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 5, result.stdout + result.stderr
    assert "no code cells in notes.ipynb: nothing to check" in result.stderr
