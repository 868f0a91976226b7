"""Stands for LightOn's ``examples/api-docs/randomized_linear_algebra.ipynb``: fitting on a
real-valued matrix, ``linear_transform`` of real data with ``SeparatedBitPlanEncoder`` /
``SeparatedBitPlanDecoder`` classes, inputs wider than max_n_features, trace estimation and
randomized SVD from the OPU's linear projections."""

import numpy as np
import pytest

from opu_kernel import OPU as OwnOPU


@pytest.fixture
def opu(lightonml):
    return lightonml.OPU(n_components=400)


def linear(opu, X):
    from lightonml.encoding import base

    return opu.linear_transform(X, base.SeparatedBitPlanEncoder, base.SeparatedBitPlanDecoder)


def test_fit_on_a_real_matrix_uses_its_shape(lightonml, opu):
    A = np.random.default_rng(0).uniform(0, 1, (1200, 1200))  # 1200 > max_n_features=1000
    opu.fit1d(A)
    assert opu.n_features == 1200
    # opu_kernel's own OPU refuses it, saying how to fit for real-valued data
    own = OwnOPU(n_components=10, max_n_features=2000)
    with pytest.raises(ValueError, match=r"fit1d\(n_features=X.shape\[-1\]\)"):
        own.fit1d(A)


def test_linear_transform_of_real_data_matches_the_exact_projection(lightonml, opu):
    rng = np.random.default_rng(1)
    A = rng.normal(0, 1, (20, 300))
    opu.fit1d(A)
    approximation = np.asarray(linear(opu, A))
    # the exact Re(Hx) of the simulator: the same projection of each ±, bit-plane-free value
    exact_opu = type(opu)(n_components=400, rescale="none")
    exact_opu.fit1d(n_features=300)
    positive, negative = np.clip(A, 0, None), np.clip(-A, 0, None)
    assert positive.max() > 0 and negative.max() > 0
    exact = (exact_linear(exact_opu, positive) - exact_linear(exact_opu, negative)) \
        / np.sqrt(300)
    error = np.linalg.norm(approximation - exact) / np.linalg.norm(exact)
    assert error < 0.05  # precision 6 bits: ~2 % (lightonml measured 0.020)


def exact_linear(opu, X):
    """Re(HX) for non-negative real X, from the held matrix."""
    opu.linear_transform(np.zeros((1, X.shape[1]), dtype=np.uint8))  # builds H
    real_t, _ = opu.device.matrix()
    return X @ real_t.T


def test_trace_estimation(lightonml, opu):
    rng = np.random.default_rng(2)
    n, m = 300, 300
    A = rng.uniform(0, 1, (n, n))
    A = A @ A.T / n  # a PSD matrix: the estimator's variance is small
    opu.fit1d(A)
    variance = np.asarray(linear(opu, rng.normal(0, 1, (100, n)))).var()
    AR = np.asarray(linear(opu, A))[:, :m]
    RtAR = np.asarray(linear(opu, np.ascontiguousarray(AR.T)))[:, :m]
    estimate = RtAR.trace() / m * n / variance
    assert abs(estimate - np.trace(A)) / np.trace(A) < 0.25


def test_randomized_svd(lightonml, opu):
    rng = np.random.default_rng(3)
    low_rank = rng.normal(0, 1, (300, 20)) @ rng.normal(0, 1, (20, 300))
    A = low_rank + 0.01 * rng.normal(0, 1, (300, 300))
    opu.fit1d(A)
    Q, _ = np.linalg.qr(np.asarray(linear(opu, A))[:, :40])
    U, s, Vt = np.linalg.svd(Q.T @ A, full_matrices=False)
    reconstruction = Q @ U @ np.diag(s) @ Vt
    assert np.linalg.norm(reconstruction - A) / np.linalg.norm(A) < 0.05


def test_rescale_strings_and_enums(lightonml, opu):
    from lightonml.types import OutputRescaling

    X = (np.random.default_rng(4).random((5, 100)) > 0.5).astype(np.uint8)
    opu.fit1d(X)
    opu.rescale = "none"
    raw = opu.linear_transform(X)
    for value, divisor in (("variance", np.sqrt(100)), ("NORM", np.sqrt(400)),
                           (OutputRescaling.none, 1.0)):
        opu.rescale = value  # a string as lightonml allows: never silently ignored
        assert isinstance(opu.rescale, OutputRescaling)
        assert np.allclose(opu.linear_transform(X), raw / divisor, rtol=1e-5)
    assert OutputRescaling.norm.value == 2  # lightonml's values
    with pytest.raises(ValueError, match="rescale='norms' is not valid"):
        opu.rescale = "norms"
