"""The torch OPUMap: tensors in and out, printable, online mode that keeps float outputs and
refuses non-binary input."""

import importlib
import sys

import numpy as np
import pytest
import torch
from torch import nn

from opu_kernel import OPU
from opu_kernel.projections.torch import OPUMap


def binary_batch(n_samples=8, n_features=20, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 2, (n_samples, n_features), generator=generator, dtype=torch.uint8)


def reference_features(X, n_components, linear=False, camera="8bit"):
    opu = OPU(n_components=n_components, simulated=True, camera=camera, disable_pbar=True)
    opu.fit1d(X)
    return opu.linear_transform(X) if linear else opu.transform(X)


def test_forward_returns_the_opus_features_as_a_tensor():
    X = binary_batch()
    opumap = OPUMap(n_components=30, simulated=True)
    features = opumap(X)  # the first forward fits on its batch
    assert opumap.fitted and isinstance(features, torch.Tensor)
    assert features.dtype == torch.uint8 and features.shape == (8, 30)
    torch.testing.assert_close(features, reference_features(X, 30))


def test_printing_shows_the_settings():
    text = repr(nn.Sequential(OPUMap(n_components=12, simulated=True, linear=True)))
    assert "OPUMap(n_components=12, ndims=1" in text and "linear=True" in text


@pytest.mark.parametrize("linear", [False, True])
def test_online_mode_matches_the_batch_and_keeps_float_outputs(linear):
    X = binary_batch().float()
    online = OPUMap(n_components=25, simulated=True, linear=linear, camera="exact")
    online.fit(X, online=True)
    features = online(X)
    expected = reference_features(X, 25, linear=linear, camera="exact")
    assert features.dtype == torch.float32
    torch.testing.assert_close(features, expected, rtol=1e-5, atol=1e-5)
    assert not torch.equal(features, features.round())  # not truncated to integers
    torch.testing.assert_close(online(X[0]), expected[0], rtol=1e-5, atol=1e-5)  # one input


@pytest.mark.parametrize("online", [False, True])
def test_non_binary_input_raises(online):
    opumap = OPUMap(n_components=10, simulated=True, linear=True)
    opumap.fit(n_features=20, online=online)
    with pytest.raises(ValueError, match="not binary"):
        opumap(binary_batch().float() * 0.7)


def test_outputs_are_detached_and_the_module_composes_with_layers():
    X = binary_batch().float().requires_grad_()
    model = nn.Sequential(OPUMap(n_components=16, simulated=True, camera="exact"),
                          nn.Linear(16, 3))
    output = model(X)
    assert output.shape == (8, 3)
    assert not model[0](X).requires_grad
    output.sum().backward()  # gradients reach the linear layer, not the OPU
    assert model[1].weight.grad is not None and X.grad is None


def test_two_dimensional_input_and_settable_n_components():
    X = binary_batch(n_features=24).reshape(8, 4, 6)
    opumap = OPUMap(n_components=10, ndims=2, simulated=True)
    assert opumap(X).shape == (8, 10)
    opumap.n_components = 14
    assert opumap(X).shape == (8, 14) and opumap.opu.n_components == 14


def test_a_passed_opu_is_used_and_set_to_n_components():
    opu = OPU(n_components=5, simulated=True, disable_pbar=True)
    opumap = OPUMap(n_components=9, opu=opu, simulated=True)
    assert opumap.opu is opu and opu.n_components == 9
    with pytest.raises(ValueError, match="ndims"):
        OPUMap(n_components=9, opu=opu, simulated=True, ndims=4)


def test_close_releases_the_opu():
    opumap = OPUMap(n_components=5, simulated=True)
    with opumap:
        assert opumap.opu.is_open
    assert not opumap.opu.is_open


def test_import_without_torch_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.delitem(sys.modules, "opu_kernel.projections.torch")
    with pytest.raises(ImportError, match=r"pip install opu-kernel\[torch\]"):
        importlib.import_module("opu_kernel.projections.torch")
    assert np.ndim(0) == 0  # numpy, imported before, is untouched
