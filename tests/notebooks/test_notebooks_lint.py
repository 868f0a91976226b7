"""Static checks of the example notebooks (notebooks/*.ipynb), on their stored content.

Execution, output comparison and the per-notebook time budget are checked by test_nbval.py,
which runs every notebook once.
"""

import re

import pytest

from tests.notebooks.common import KERNEL_NAME, MIN_NOTEBOOKS, NOTEBOOK_DIR, NOTEBOOKS, load

NAME = re.compile(r"^\d{2}-[a-z0-9]+(-[a-z0-9]+)*\.ipynb$")


def ids(paths):
    return [p.name for p in paths]


def code_cells(nb):
    return [c for c in nb["cells"] if c["cell_type"] == "code" and "".join(c["source"]).strip()]


def text_of(output) -> str:
    if output["output_type"] == "stream":
        return "".join(output["text"])
    data = output.get("data", {})
    return "".join(data.get("text/plain", ""))


def test_notebooks_exist():
    assert len(NOTEBOOKS) >= MIN_NOTEBOOKS, (
        f"expected at least {MIN_NOTEBOOKS} notebooks in {NOTEBOOK_DIR}, found {len(NOTEBOOKS)}")


def test_notebook_files_are_numbered_and_unique():
    assert all(NAME.match(p.name) for p in NOTEBOOKS), ids(NOTEBOOKS)
    numbers = [p.name[:2] for p in NOTEBOOKS]
    assert len(set(numbers)) == len(numbers), f"two notebooks share a number: {numbers}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids(NOTEBOOKS))
class TestNotebook:
    def test_kernelspec_is_opu(self, path):
        spec = load(path)["metadata"].get("kernelspec", {})
        assert spec.get("name") == KERNEL_NAME, spec
        assert spec.get("display_name") == "Python 3 (OPU)", spec
        assert spec.get("language") == "python", spec

    def test_starts_with_a_title(self, path):
        first = load(path)["cells"][0]
        assert first["cell_type"] == "markdown"
        assert "".join(first["source"]).startswith("# "), "the first cell must be '# Title'"

    def test_says_what_you_will_learn(self, path):
        cells = load(path)["cells"][:4]
        assert any(c["cell_type"] == "markdown" and "what you will learn" in
                   "".join(c["source"]).lower() for c in cells), \
            "a 'What you will learn' cell must come right after the title"

    def test_every_code_cell_was_executed_in_order(self, path):
        counts = [c.get("execution_count") for c in code_cells(load(path))]
        assert None not in counts, "some cells were never run: refresh with scripts/refresh-notebooks"
        assert counts == list(range(1, len(counts) + 1)), \
            f"cells were run out of order or in a reused kernel: {counts}"

    def test_has_outputs(self, path):
        outputs = [o for c in code_cells(load(path)) for o in c.get("outputs", [])]
        assert outputs, "no stored outputs: nbval would have nothing to compare"

    def test_has_no_error_outputs(self, path):
        for cell in code_cells(load(path)):
            for output in cell.get("outputs", []):
                assert output["output_type"] != "error", \
                    f"{output.get('ename')}: {output.get('evalue')} in\n{''.join(cell['source'])}"

    def test_has_no_warnings_or_progress_bars(self, path):
        """Stored outputs should teach, not show noise: no stderr (warnings, tqdm bars)."""
        for cell in code_cells(load(path)):
            for output in cell.get("outputs", []):
                if output["output_type"] == "stream" and output["name"] == "stderr":
                    pytest.fail(f"stderr output in\n{''.join(cell['source'])}\n---\n"
                                f"{text_of(output)}")

    def test_ignored_outputs_say_why(self, path):
        """nbval only recognizes a marker alone on its comment line, so the reason goes on
        the next comment line."""
        for cell in code_cells(load(path)):
            lines = "".join(cell["source"]).splitlines()
            for i, line in enumerate(lines):
                if "NBVAL_IGNORE_OUTPUT" not in line:
                    continue
                assert line.strip() == "# NBVAL_IGNORE_OUTPUT", \
                    f"nbval ignores a marker with text after it: {line!r}"
                following = lines[i + 1].strip() if i + 1 < len(lines) else ""
                assert following.startswith("#") and len(following) > 10, \
                    f"say why the output is ignored, in a comment after the marker:\n{lines}"

    def test_no_downloads(self, path):
        """Data come from scikit-learn's bundled sets or are synthetic."""
        source = "\n".join("".join(c["source"]) for c in code_cells(load(path)))
        for forbidden in ("fetch_openml", "fetch_", "urlopen", "requests.", "wget", "download="):
            assert forbidden not in source, f"{forbidden!r} in {path.name}"
