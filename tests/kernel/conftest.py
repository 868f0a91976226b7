"""Fixtures for tests that run real OPU kernels."""

import os
import subprocess
import sys

import pytest
from jupyter_client.kernelspec import KernelSpecManager

# torch is an optional extra (opu-kernel[torch]). The modules that need it import it at the top
# and are listed here; every other module runs without it (test_torch_optional.py checks both).
# Without torch these modules fail to collect: make test and CI install it
# (requirements/dev.txt), so a lost torch fails the run instead of skipping its tests.
# OPUHUB_WITHOUT_TORCH=1 leaves them out on purpose (testing an install without the extra).
TORCH_MODULES = [
    "test_torch_tensors.py",
    "projections/test_torch.py",
    "lightonml/test_autoencoder_tutorial.py",
    "lightonml/test_bitplan_tutorial.py",
    "lightonml/test_get_started.py",
    "lightonml/test_saving_and_loading.py",
]
collect_ignore = TORCH_MODULES if os.environ.get("OPUHUB_WITHOUT_TORCH") == "1" else []


@pytest.fixture(scope="session")
def opu_kernelspecs(tmp_path_factory) -> KernelSpecManager:
    """The OPU kernelspec installed into a private prefix, and a manager that sees only it."""
    prefix = tmp_path_factory.mktemp("jupyter-prefix")
    subprocess.run([sys.executable, "-m", "opu_kernel.install", "--prefix", str(prefix)],
                   check=True, capture_output=True)
    kernels = prefix / "share" / "jupyter" / "kernels"
    return KernelSpecManager(kernel_dirs=[str(kernels)])


@pytest.fixture(autouse=True)
def no_simulator_limits(monkeypatch):
    """Caps come from the hub's environment; tests set them where they test them."""
    for name in ("OPU_SIMULATOR_MAX_N_COMPONENTS", "OPU_SIMULATOR_MAX_WORK"):
        monkeypatch.delenv(name, raising=False)
