"""Fixtures for tests that run real OPU kernels."""

import subprocess
import sys

import pytest
from jupyter_client.kernelspec import KernelSpecManager


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
