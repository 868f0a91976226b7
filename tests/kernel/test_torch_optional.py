"""torch is an optional extra: the kernel package and every test module but those listed in
tests/kernel/conftest.py (TORCH_MODULES) work without it."""

import ast
import subprocess
import sys
from pathlib import Path

from tests.kernel.conftest import TORCH_MODULES

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

# torch made unimportable (as if not installed: a None in sys.modules would break scipy's own
# probe for it), then what a numpy user does, and test_opu.py, which once imported it at the top
WITHOUT_TORCH = """
import sys


class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "torch":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


sys.meta_path.insert(0, NoTorch())
import numpy as np
from opu_kernel import OPU
from opu_kernel.encoding import SeparatedBitPlanEncoder
opu = OPU(n_components=50, backend="simulator")
assert opu.fit_transform1d(np.ones((2, 20), dtype=np.uint8)).shape == (2, 50)
assert SeparatedBitPlanEncoder(precision=2).fit_transform(np.ones((2, 3))).shape == (4, 3)
import tests.kernel.test_opu
print("ok")
"""


def imports_torch(path: Path) -> bool:
    """Whether the module imports torch at its top level."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "torch" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "torch":
            return True
    return False


def test_the_torch_modules_are_exactly_those_that_import_it():
    found = sorted(str(p.relative_to(HERE)) for p in HERE.rglob("test_*.py") if imports_torch(p))
    assert found == sorted(TORCH_MODULES)


def test_the_kernel_and_the_other_tests_run_without_torch():
    result = subprocess.run([sys.executable, "-c", WITHOUT_TORCH], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]
