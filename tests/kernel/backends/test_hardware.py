"""Hardware backend: selection, locking and delegation to the vendor driver.

No OPU exists here. These tests use a stand-in character device node and a fake
``lightonopu`` driver (tests/fakes): they verify our plumbing, not a real device.
"""

import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from opu_kernel import OPU
from opu_kernel.backends import choose_backend, hardware_problems
from opu_kernel.errors import BackendUnavailableError, DeviceBusyError
from opu_kernel.lock import holder_pid
from tests.helpers import binary, make_stand_in_node


def test_auto_picks_hardware_when_node_and_driver_exist(stand_in_opu):
    assert hardware_problems() == []
    assert choose_backend() == "hardware"
    opu = OPU(n_components=100, max_n_features=64)
    assert opu.backend == "hardware" and not opu.simulated
    assert opu.describe()["device"] == str(stand_in_opu.node)
    assert opu.describe()["driver_version"] == "0.0-fake"
    opu.close()


def test_auto_falls_back_to_simulator_with_one_log_line(tmp_path, monkeypatch, caplog,
                                                        fake_driver_path):
    monkeypatch.setenv("OPU_DEVICE", str(tmp_path / "missing"))
    with caplog.at_level(logging.INFO, logger="opu_kernel"):
        opu = OPU(n_components=10)
    assert opu.backend == "simulator"
    lines = [r.getMessage() for r in caplog.records if r.name == "opu_kernel"]
    assert len(lines) == 1 and "using the simulator" in lines[0] and "missing" in lines[0]


def test_hardware_request_names_each_missing_piece(tmp_path, monkeypatch):
    monkeypatch.setenv("OPU_DEVICE", str(tmp_path / "opu0"))
    with pytest.raises(BackendUnavailableError) as info:
        OPU(backend="hardware")
    message = str(info.value)
    assert "no device node at" in message and "opu0" in message
    assert "'lightonopu' is not installed" in message
    assert "backend='simulator'" in message
    assert isinstance(info.value, RuntimeError)


def test_hardware_request_reports_a_regular_file_and_permissions(tmp_path, monkeypatch,
                                                                 fake_driver_path):
    regular = tmp_path / "opu0"
    regular.write_text("")
    assert any("is not a character device" in p for p in hardware_problems(str(regular)))

    public = tempfile.mkdtemp(prefix="opu-node-")  # reachable by an unprivileged user
    os.chmod(public, 0o755)
    locked = make_stand_in_node(Path(public) / "opu1", mode=0o000)
    if os.geteuid() == 0:
        # root passes every permission check; run the probe as an unprivileged user.
        code = ("from opu_kernel.backends import hardware_problems; "
                f"print(hardware_problems({str(locked)!r}))")
        out = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                              sys.executable, "-c", code], capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": os.environ["PYTHONPATH"] + ":"
                                  + os.pathsep.join(sys.path)})
        assert "no read/write permission" in out.stdout, out.stderr
    else:
        assert any("permission" in p for p in hardware_problems(str(locked)))
    shutil.rmtree(public)


def test_env_backend_and_explicit_device_argument(stand_in_opu, monkeypatch):
    monkeypatch.setenv("OPU_BACKEND", "simulator")
    assert OPU(n_components=10).backend == "simulator"
    monkeypatch.setenv("OPU_BACKEND", "hardware")
    monkeypatch.delenv("OPU_DEVICE")
    opu = OPU(n_components=10, opu_device=str(stand_in_opu.node))
    assert opu.backend == "hardware"
    opu.close()


def test_transform_is_delegated_to_the_driver(stand_in_opu):
    X = binary((3, 40))
    with OPU(n_components=100, max_n_features=64, backend="hardware") as opu:
        out = opu.fit_transform1d(X)
        assert out.shape == (3, 100) and out.dtype == np.uint8
        assert out.context.backend == "hardware"
        assert out.context.exposure_us == 400  # from the driver's configuration
    events = stand_in_opu.events()
    assert [e["event"] for e in events] == ["init", "open", "transform1", "close"]
    transform = events[2]
    assert transform["shape"] == [3, 1024]  # laid out on the device's 16 × 64 input
    assert transform["ones"] == int(X.sum())


def test_linear_transform_on_hardware_says_it_is_not_available(stand_in_opu):
    with OPU(n_components=10, backend="hardware") as opu:
        opu.fit1d(n_features=8)
        with pytest.raises(NotImplementedError, match="use the simulator"):
            opu.linear_transform(np.ones(8))


def test_device_is_exclusive_across_processes_and_released_on_close(stand_in_opu):
    opu = OPU(n_components=10, backend="hardware")
    assert holder_pid(str(stand_in_opu.node)) == os.getpid()
    code = "from opu_kernel import OPU; OPU(backend='hardware')"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert other.returncode != 0
    assert f"in use by process {os.getpid()}" in other.stderr
    assert "DeviceBusyError" in other.stderr
    with pytest.raises(DeviceBusyError):
        OPU(backend="hardware")  # a second handle in the same process is refused too
    opu.close()
    assert holder_pid(str(stand_in_opu.node)) is None
    again = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr


def test_pickled_hardware_opu_reacquires_its_device(stand_in_opu):
    import pickle

    opu = OPU(n_components=10, backend="hardware").fit1d(n_features=8)
    blob = pickle.dumps(opu)
    opu.close()
    restored = pickle.loads(blob)
    assert restored.backend == "hardware" and restored.is_open and restored.n_features == 8
    restored.close()


def test_shapes_beyond_the_device_are_refused_clearly(stand_in_opu):
    with OPU(n_components=20_000, max_n_features=2000, backend="hardware") as opu:
        opu.fit1d(n_features=8)
        with pytest.raises(ValueError, match="exceeds the device's 16384 output pixels"):
            opu.transform(np.ones(8))
        opu.n_components = 100
        opu.fit1d(n_features=1500)
        with pytest.raises(ValueError, match="1500 features do not fit the device's 1024"):
            opu.transform(np.ones(1500))
        opu.fit1d(n_features=8)
        assert opu.transform(np.ones(8)).shape == (100,)
