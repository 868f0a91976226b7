"""The simulator's physics (statistics of |Hx|²), determinism and memory behaviour."""

import numpy as np
import pytest
from scipy import stats

from opu_kernel import OPU
from opu_kernel.backends import simulator
from opu_kernel.backends.simulator import SimulatorBackend

#: The statistics hold for both matrices: float32 Gaussian (camera="exact") and the int8 one
#: behind the 8-bit camera, read here as exact float32 intensities.
ARITHMETICS = ["float32", "int8"]


def exact(n_components, n_features, arithmetic="float32", **kwargs):
    device = SimulatorBackend(camera="exact", arithmetic=arithmetic, **kwargs)
    return OPU(n_components=n_components, max_n_features=n_features,
               opu_device=device).fit1d(n_features=n_features)


@pytest.mark.parametrize("arithmetic", ARITHMETICS)
def test_outputs_for_a_fixed_input_are_exponential(arithmetic):
    n_features = 400
    x = np.zeros(n_features, dtype=np.uint8)
    x[:150] = 1
    y = exact(40_000, n_features, arithmetic).transform(x).astype(np.float64)
    assert y.mean() == pytest.approx(2 * 150 / n_features, rel=0.03)  # E|Hx|² = 2|x|²/n
    assert y.std() / y.mean() == pytest.approx(1.0, abs=0.03)  # coefficient of variation
    assert stats.kstest(y / y.mean(), "expon").pvalue > 1e-3


@pytest.mark.parametrize("arithmetic", ARITHMETICS)
@pytest.mark.parametrize("overlap", [0, 50, 100, 150])
def test_correlation_across_components_is_squared_normalized_overlap(overlap, arithmetic):
    n_features = 300
    x = np.zeros(n_features, dtype=np.uint8)
    x_prime = np.zeros(n_features, dtype=np.uint8)
    x[:150] = 1
    x_prime[150 - overlap: 300 - overlap] = 1
    y = exact(40_000, n_features, arithmetic).transform(np.stack([x, x_prime])).astype(
        np.float64)
    expected = float(x @ x_prime) ** 2 / (float(x @ x) * float(x_prime @ x_prime))
    assert np.corrcoef(y)[0, 1] == pytest.approx(expected, abs=0.03)


def test_matrix_entries_are_complex_gaussian_with_lightonml_scaling():
    real_t, imag_t = simulator.build_matrix(seed=3, n_features=256, n_components=5000)
    for part in (real_t, imag_t):
        assert part.dtype == np.float32 and part.shape == (5000, 256)
        assert part.std() == pytest.approx(1 / np.sqrt(256), rel=0.01)
        assert abs(part.mean()) < 1e-3
    assert abs(np.corrcoef(real_t.ravel()[:100_000], imag_t.ravel()[:100_000])[0, 1]) < 0.02


@pytest.mark.parametrize("camera", ["exact", "8bit"])
def test_streaming_gives_what_holding_the_matrix_gives(camera):
    X = np.random.default_rng(0).integers(0, 2, (300, 70))
    held = OPU(n_components=9000, camera=camera, streaming=False).fit1d(X)
    streamed = OPU(n_components=9000, camera=camera, streaming=True).fit1d(X)
    np.testing.assert_array_equal(held.transform(X), streamed.transform(X))
    assert streamed.describe()["streaming"] and not streamed.device.matrix_allocated


def test_tiles_and_partial_blocks_match_a_plain_complex_product():
    # Shapes that cross the row tile (1024), column tile (1024) and block (4096) boundaries.
    X = np.random.default_rng(1).integers(0, 2, (1025, 33)).astype(np.float64)
    opu = exact(4096 + 4097, 33)
    out = opu.transform(X)
    real_t, imag_t = opu.device.matrix()
    H = (real_t.astype(np.float64) + 1j * imag_t).T
    np.testing.assert_allclose(out, np.abs(X @ H) ** 2, rtol=2e-4, atol=1e-6)
    linear = OPU(n_components=8193, camera="exact", rescale="none").fit1d(n_features=33)
    np.testing.assert_allclose(linear.linear_transform(X), X @ real_t.T.astype(np.float64),
                               rtol=2e-4, atol=1e-5)


def test_growing_n_components_keeps_the_first_components():
    small = simulator.build_matrix(0, 64, 5000)
    large = simulator.build_matrix(0, 64, 9000)
    np.testing.assert_array_equal(large[0][:5000], small[0])
    np.testing.assert_array_equal(large[1][:5000], small[1])


def test_auto_streaming_when_the_matrix_would_not_fit(monkeypatch):
    monkeypatch.setattr(simulator, "available_memory_bytes", lambda: 10 * 2**20)
    opu = OPU(n_components=5000, max_n_features=1000).fit1d(n_features=1000)
    out = opu.transform(np.random.default_rng(0).integers(0, 2, (2, 1000)))
    assert out.context.streaming is True and not opu.device.matrix_allocated
    monkeypatch.setattr(simulator, "available_memory_bytes", lambda: 64 * 2**30)
    opu.n_components = 5000
    half_on = (np.arange(1000) % 2).astype(np.uint8)
    assert opu.transform(half_on).context.streaming is False


def test_invalid_streaming_choice():
    with pytest.raises(ValueError, match="streaming='sometimes'"):
        OPU(streaming="sometimes", backend="simulator")


def test_close_frees_the_matrix_and_reopen_rebuilds_it_identically():
    opu = exact(3000, 50)
    x = np.ones(50)
    first = opu.transform(x)
    opu.close()
    assert not opu.device.matrix_allocated
    opu.open()
    np.testing.assert_array_equal(opu.transform(x), first)


def test_blocks_get_narrower_for_hardware_sized_inputs():
    assert simulator.block_components(1000) == simulator.BLOCK_COMPONENTS
    assert simulator.block_components(4096) == simulator.BLOCK_COMPONENTS
    for n_features in (4097, 810_000, 1140 * 912):
        width = simulator.block_components(n_features)
        assert width & (width - 1) == 0  # a power of two
        assert width * n_features <= simulator.BLOCK_ENTRIES < 2 * width * n_features
    assert simulator.block_components(1140 * 912) == 16  # 2 × 64 MiB per drawn block


def test_wide_inputs_streamed_equal_held_and_the_batch_is_never_float32():
    n_features = 300_000  # blocks of 32 components
    X = np.random.default_rng(0).integers(0, 2, (3, n_features), dtype=np.uint8)
    held = exact(70, n_features, streaming=False)
    streamed = exact(70, n_features, streaming=True)
    assert simulator.block_components(n_features) == 32
    assert np.array_equal(held.transform(X), streamed.transform(X))
    # inputs go to the backend as a view of the caller's uint8 batch, converted tile by tile
    from opu_kernel.inputs import prepare

    prepared = prepare(X, held._traits, held.max_n_features)
    assert prepared.rows.dtype == np.uint8 and np.shares_memory(prepared.rows, X)
    row_tile = simulator.ROW_TILE_ENTRIES // n_features
    assert row_tile * n_features * 4 <= 64 * 2**20  # float32 scratch per thread
