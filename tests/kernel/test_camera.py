"""Camera models: quantization, saturation, exposure."""

import numpy as np
import pytest

from opu_kernel import camera


def test_eight_bit_rounds_scales_and_saturates():
    cam = camera.EightBitCamera(exposure_us=camera.REFERENCE_EXPOSURE_US)
    intensity = np.array([0.0, 0.01, 0.5, 1.0, 7.9, 8.0, 100.0], dtype=np.float32)
    out = np.empty(intensity.shape, dtype=np.uint8)
    saturated = cam.expose(intensity.copy(), out)
    np.testing.assert_array_equal(out, [0, 0, 16, 32, 253, 255, 255])
    assert saturated == 2


def test_auto_exposure_targets_the_mean_count():
    assert camera.auto_exposure_us(1.0) == pytest.approx(camera.REFERENCE_EXPOSURE_US)
    assert camera.auto_exposure_us(0.5) == pytest.approx(2 * camera.REFERENCE_EXPOSURE_US)
    assert camera.auto_exposure_us(0.0) == camera.REFERENCE_EXPOSURE_US


def test_bad_camera_settings():
    with pytest.raises(ValueError, match="camera='rgb' is not valid"):
        camera.make_camera("rgb", 400, False, 0)
    with pytest.raises(ValueError, match="exposure_us must be positive"):
        camera.EightBitCamera(0)


def test_exposure_advice():
    assert camera.exposure_advice(np.full(10, 30, np.uint8), 0.0) is None
    assert "saturated" in camera.exposure_advice(np.full(10, 255, np.uint8), 1.0)
    assert "weak" in camera.exposure_advice(np.full(10, 3, np.uint8), 0.0)
