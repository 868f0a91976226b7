"""The kernelspec: one command installs "Python 3 (OPU)" where Jupyter finds it."""

import json
import subprocess
import sys

from jupyter_client.kernelspec import KernelSpecManager


def test_install_into_a_prefix_is_listed_with_logo_and_extension(tmp_path, monkeypatch):
    prefix = tmp_path / "prefix"
    result = subprocess.run([sys.executable, "-m", "opu_kernel.install", "--prefix",
                             str(prefix)], capture_output=True, text=True, check=True)
    assert "Installed kernelspec opu (Python 3 (OPU))" in result.stdout
    monkeypatch.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))
    specs = KernelSpecManager().get_all_specs()
    assert specs["opu"]["resource_dir"].startswith(str(prefix))
    spec = specs["opu"]["spec"]
    assert spec["display_name"] == "Python 3 (OPU)" and spec["language"] == "python"
    assert spec["argv"][:3] == [sys.executable, "-m", "ipykernel_launcher"]
    assert spec["argv"][-2:] == ["--ext", "opu_kernel"]
    kernel_dir = prefix / "share" / "jupyter" / "kernels" / "opu"
    assert (kernel_dir / "logo-64x64.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    written = json.loads((kernel_dir / "kernel.json").read_text())
    assert written == {k: v for k, v in spec.items() if k in written}


def test_install_for_the_user_and_under_another_name(tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "data"))
    subprocess.run([sys.executable, "-m", "opu_kernel.install", "--user", "--name", "opu-test",
                    "--display-name", "OPU (test)"], check=True, capture_output=True)
    spec = json.loads((tmp_path / "data" / "kernels" / "opu-test" / "kernel.json").read_text())
    assert spec["display_name"] == "OPU (test)"


def test_install_rejects_two_destinations():
    result = subprocess.run([sys.executable, "-m", "opu_kernel.install", "--user",
                             "--sys-prefix"], capture_output=True, text=True)
    assert result.returncode == 2 and "not allowed with argument" in result.stderr
