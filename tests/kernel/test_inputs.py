"""Bad input gets a clear error and leaves the OPU usable."""

import numpy as np
import pytest

from opu_kernel import OPU
from opu_kernel.errors import DeviceClosedError


@pytest.fixture
def opu():
    opu = OPU(n_components=50, max_n_features=100, camera="exact").fit1d(n_features=20)
    yield opu
    opu.close()


def still_works(opu):
    assert opu.transform(np.ones(opu.n_features)).shape == (50,)


@pytest.mark.parametrize("bad, message", [
    (np.full((3, 20), 0.5), r"not binary: 60 values .*e\.g\. 0\.5.*BinaryThresholdEncoder\(\)\.fit_transform"),
    (np.array([[0, 1, 2] + [0] * 17]), r"not binary: 1 values .*\b2\b"),
    (np.array([[-1] + [0] * 19], dtype=np.int8), r"not binary.*-1"),
    (np.array([[np.nan] + [0.0] * 19]), r"NaN"),
    (np.array([[np.inf] + [0.0] * 19]), r"not binary"),
    (np.array([["a"] * 20]), r"dtype.*0/1"),
    (np.zeros((2, 2, 2, 20)), r"4 dimensions.*up to 3"),
    (np.zeros(()), r"0 dimensions"),
    (np.zeros((3, 19)), r"19,\) features per input .* fitted for \(20,\).*refit"),
    (np.zeros((3, 200)), r"number of features \(200\) can't be greater than max_n_features \(100\)"),
    (np.zeros((0, 20)), r"empty"),
    ("hello", r"dtype"),
])
def test_bad_input_raises_value_error_and_opu_survives(opu, bad, message):
    with pytest.raises(ValueError, match=message):
        opu.transform(bad)
    still_works(opu)


def test_non_binary_check_covers_the_whole_input(opu):
    X = np.zeros((5000, 20), dtype=np.float32)
    X[-1, -1] = 3.0  # a lone bad value at the very end is still found
    with pytest.raises(ValueError, match="not binary: 1 values"):
        opu.transform(X)


def test_transform_before_fit():
    opu = OPU(n_components=10)
    with pytest.raises(RuntimeError, match=r"fit1d\(...\) or opu.fit2d"):
        opu.transform(np.ones(5))


def test_fit_needs_a_sample_or_a_size_and_respects_max_n_features():
    opu = OPU(n_components=10, max_n_features=100)
    with pytest.raises(ValueError, match="either X .* or n_features"):
        opu.fit1d()
    with pytest.raises(ValueError, match=r"\(150\) can't be greater than max_n_features \(100\)"):
        opu.fit1d(n_features=150)
    with pytest.raises(ValueError, match=r"\(height, width\)"):
        opu.fit2d(n_features=12)
    with pytest.raises(ValueError, match="use fit2d"):
        opu.fit1d(n_features=(3, 4))
    with pytest.raises(ValueError, match="not binary"):
        opu.fit1d(np.full((2, 10), 7))
    assert opu.n_features is None  # a failed fit changes nothing


def test_wrong_packed_input():
    opu = OPU(n_components=10).fit1d(n_features=64, packed=True)
    with pytest.raises(ValueError, match="8 bytes per input for 64 features"):
        opu.transform(np.zeros((2, 7), dtype=np.uint8))
    with pytest.raises(ValueError, match="must be uint8"):
        opu.transform(np.zeros((2, 8), dtype=np.float32))
    assert opu.transform(np.packbits(np.ones((2, 64), np.uint8), axis=-1)).shape == (2, 10)


def test_unknown_backend_camera_rescale_and_sizes():
    with pytest.raises(ValueError, match="'quantum' is not a backend; choose one of 'auto'"):
        OPU(backend="quantum")
    with pytest.raises(ValueError, match="camera='16bit' is not valid"):
        OPU(camera="16bit", backend="simulator")
    with pytest.raises(ValueError, match="rescale='max' is not valid"):
        OPU(rescale="max")
    with pytest.raises(ValueError, match="n_components must be a positive integer"):
        OPU(n_components=0)
    with pytest.raises(ValueError, match="simulated=True conflicts"):
        OPU(simulated=True, backend="hardware")
    with pytest.raises(TypeError, match="opu_device must be a device node path"):
        OPU(opu_device=3.5)


def test_unknown_backend_from_environment(monkeypatch):
    monkeypatch.setenv("OPU_BACKEND", "gpu")
    with pytest.raises(ValueError, match="OPU_BACKEND='gpu'"):
        OPU(n_components=10)


def test_closed_device(opu):
    opu.close()
    with pytest.raises(DeviceClosedError, match=r"closed; call opu.open\(\)") as info:
        opu.transform(np.ones(20))
    assert isinstance(info.value, RuntimeError)
    opu.open()
    still_works(opu)


def test_unknown_fit_override(opu):
    opu.fit1d(n_features=20, exposur_us=10)
    with pytest.raises(ValueError, match="unknown override.*exposur_us.*exposure_us"):
        opu.transform(np.ones(20))
