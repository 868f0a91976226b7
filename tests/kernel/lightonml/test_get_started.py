"""Stands for LightOn's ``examples/get_started.ipynb``: an OPU that stands for the device,
transform before fit, 1D and 2D batches from numpy and torch, the output's context, the
scikit-learn and torch ``OPUMap`` and a simulated OPU."""

import numpy as np
import pytest
import torch

from .common import random_bits


def test_transform_before_fit_raises_what_the_notebook_catches(lightonml):
    opu = lightonml.OPU(n_components=100)
    with pytest.raises(AssertionError, match="fit1d") as info:
        opu.transform(random_bits((3, 50)))
    assert isinstance(info.value, RuntimeError)  # opu_kernel's own callers catch this
    opu.fit1d(random_bits((3, 50)))
    assert opu.transform(random_bits((3, 50))).shape == (3, 100)


def test_an_opu_standing_for_the_device_returns_camera_counts(lightonml):
    opu = lightonml.OPU(n_components=1000)
    X = random_bits((30, 5000))  # beyond max_n_features=1000: the device takes it
    opu.fit1d(X)
    y = opu.transform(X)
    assert isinstance(y, np.ndarray) and y.dtype == np.uint8 and y.shape == (30, 1000)
    assert 11 <= y.mean() <= 64  # auto-exposure: a usable signal, as on the device
    assert type(np.array(y)) is np.ndarray and np.array_equal(np.array(y), y)
    assert opu.simulated and opu.stands_for_device


def test_the_context_has_lightonmls_keys(lightonml):
    opu = lightonml.OPU(n_components=64)
    y = opu.fit_transform1d(random_bits((4, 40)))
    context = y.context.as_dict()
    for key in ("exposure_us", "frametime_us", "output_roi", "start", "end", "gain_dB",
                "input_roi", "n_ones", "fmt_type", "fmt_factor"):
        assert key in context, key
    assert context["output_roi"] == ((0, 0), (1, 64))
    assert context["input_roi"] == ((0, 0), (1, 40))
    assert context["fmt_type"] == "lined" and context["end"] >= context["start"]
    assert 0 < context["n_ones"] < 40


def test_torch_in_torch_out(lightonml):
    opu = lightonml.OPU(n_components=32)
    data = torch.randint(0, 2, size=(5, 60), dtype=torch.uint8)
    y = opu.fit_transform1d(data)
    assert isinstance(y, torch.Tensor) and y.dtype == torch.uint8 and y.shape == (5, 32)


def test_2d_batches_and_a_hardware_sized_input(lightonml):
    opu = lightonml.OPU(n_components=16)
    data_2d = random_bits((6, 30, 30))
    opu.fit2d(data_2d)
    y = opu.transform(data_2d)
    assert y.shape == (6, 16) and y.context.as_dict()["fmt_type"] == "macro_2d"
    # the input device's full size: more than a thousand times max_n_features' default
    full = random_bits((2, 1140, 912), seed=1, dtype=bool)
    y = opu.fit_transform2d(full)
    assert y.shape == (2, 16) and y.context.input_roi_shape == (1140, 912)
    with pytest.raises(ValueError, match="can't be greater than"):
        opu.fit1d(n_features=1140 * 912 + 1)


def test_opumaps_and_close(lightonml):
    from lightonml.projections.sklearn import OPUMap as SklearnMap
    from lightonml.projections.torch import OPUMap as TorchMap

    numpy_data = random_bits((20, 100))
    mapping = SklearnMap(n_components=50)
    out = mapping.fit_transform(numpy_data)
    assert type(out) is np.ndarray and out.shape == (20, 50) and out.dtype == np.uint8
    mapping.close()

    layer = TorchMap(n_components=50)
    out = layer(torch.from_numpy(numpy_data))  # fits on its first batch
    assert isinstance(out, torch.Tensor) and out.shape == (20, 50)
    layer.close()
    assert not layer.opu.is_open


def test_a_simulated_opu_is_lightonmls_float32_simulator(lightonml):
    opu = lightonml.OPU(n_components=1000, max_n_features=1000, simulated=True)
    assert opu.max_n_features == 1000 and not opu.stands_for_device
    X = random_bits((10, 1000))
    y = opu.fit_transform1d(X)
    assert y.dtype == np.float32
    # lightonml's H: entries N(0, 1/max_n_features) per part, so E|Hx|² = 2·ones/1000
    expected = 2 * X.sum(axis=1, keepdims=True) / 1000
    assert np.allclose(y.mean(axis=1, keepdims=True), expected, rtol=0.15)
    with pytest.raises(ValueError, match="can't be greater than"):
        opu.fit1d(n_features=1001)


def test_standing_in_for_the_device_is_said_once(lightonml, caplog, monkeypatch):
    import logging

    from opu_kernel.lightonml_compat import opu as shim

    monkeypatch.setattr(shim, "_told_standing_in", False)
    caplog.set_level(logging.WARNING, logger="opu_kernel")
    lightonml.OPU(n_components=10)
    lightonml.OPU(n_components=10)
    lightonml.OPU(n_components=10, simulated=True)
    lines = [r.getMessage() for r in caplog.records if "answers as the device" in r.getMessage()]
    assert len(lines) == 1 and "uint8" in lines[0] and "1140 × 912" in lines[0]
