"""torch tensors in, torch tensors out (opu_kernel.tensors): the OPU and the encoders.

torch is an optional extra (opu-kernel[torch]); the tests that need it live in modules of their
own (tests/kernel/conftest.py lists them), so that every other module runs without it.
"""

import numpy as np
import pytest
import torch
from sklearn.base import clone

from opu_kernel import OPU
from opu_kernel.encoding import SeparatedBitPlanDecoder, SeparatedBitPlanEncoder
from tests.helpers import binary
from tests.kernel.test_encoding import LEARNING_ENCODERS


@pytest.fixture
def exact_opu():
    opu = OPU(n_components=300, max_n_features=100, camera="exact", backend="simulator")
    yield opu
    opu.close()


def test_torch_in_torch_out_with_context(exact_opu):
    X = binary((4, 30))
    exact_opu.fit1d(n_features=30)
    out = exact_opu.transform(torch.from_numpy(X))
    assert isinstance(out, torch.Tensor) and out.shape == (4, 300)
    assert out.context.n_features == 30
    np.testing.assert_allclose(out.numpy(), exact_opu.transform(X), rtol=1e-6)


@pytest.mark.parametrize("encoder", LEARNING_ENCODERS, ids=lambda e: type(e).__name__)
def test_encoders_give_torch_tensors_back_for_torch_tensors(encoder):
    X = np.random.default_rng(7).integers(0, 200, size=(6, 3)).astype(np.uint8)
    expected = clone(encoder).fit(X).transform(X)
    encoded = clone(encoder).fit(torch.from_numpy(X)).transform(torch.from_numpy(X))
    assert isinstance(encoded, torch.Tensor) and encoded.dtype == torch.uint8
    np.testing.assert_array_equal(encoded.numpy(), expected)


def test_bitplan_encoder_and_decoder_give_torch_tensors_back():
    X = torch.randn(4, 3, dtype=torch.float64)
    encoder = SeparatedBitPlanEncoder(precision=8)
    planes = encoder.fit_transform(X)
    assert isinstance(planes, torch.Tensor) and planes.dtype == torch.uint8
    decoded = SeparatedBitPlanDecoder(**encoder.get_params()).transform(planes.double())
    assert isinstance(decoded, torch.Tensor)
    torch.testing.assert_close(decoded, X, atol=0.02, rtol=0)
