"""The 8-bit camera's integer arithmetic: int8 H, exact sums, identical bytes on every path.

The speckle statistics of the int8 matrix are checked by the statistics tests of
test_simulator.py, parametrized over both arithmetics.
"""

import importlib.util
import logging
import threading

import numpy as np
import pytest

from opu_kernel import OPU
from opu_kernel.backends import integer, simulator
from opu_kernel.backends.simulator import SimulatorBackend

# Crosses the int path's row tile (128), column tile (512) and a block (4096), with a
# partial last tile and block.
ROWS, N_FEATURES, N_COMPONENTS = 300, 45, 4096 + 1100


def bits(shape, seed=0, dtype=np.uint8):
    return np.random.default_rng(seed).integers(0, 2, shape).astype(dtype)


def opu_on(device_kwargs, X, n_components=N_COMPONENTS, **opu_kwargs):
    device = SimulatorBackend(**device_kwargs)
    return OPU(n_components=n_components, opu_device=device, max_n_features=X.shape[1],
               disable_pbar=True, **opu_kwargs).fit1d(X)


def test_levels_are_the_rounded_scaled_normals_of_the_float_paths_generators():
    real, imag = integer.split_parts(integer.build_matrix(5, N_FEATURES, N_COMPONENTS),
                                     N_FEATURES)
    assert real.dtype == np.int8 and real.shape == (N_COMPONENTS, N_FEATURES)
    for part, levels in enumerate((real, imag)):
        for block in range(simulator.n_blocks(N_COMPONENTS, N_FEATURES)):
            start, stop = simulator.block_bounds(block, N_COMPONENTS, N_FEATURES)
            drawn = simulator.block_rng(5, N_FEATURES, block, part).standard_normal(
                (stop - start, N_FEATURES), dtype=np.float32)
            expected = np.clip(np.rint(drawn.astype(np.float64) * 32), -127, 127)
            np.testing.assert_array_equal(levels[start:stop], expected)
    # the quantized Gaussian: variance 32² per level to 1 %, symmetric
    assert real.astype(np.float64).var() / 32**2 == pytest.approx(1.0, rel=0.01)
    assert abs(real.astype(np.float64).mean()) < 0.5


def test_growing_n_components_keeps_the_first_levels():
    small = integer.build_matrix(0, 64, 5000)
    large = integer.build_matrix(0, 64, 9000)
    for a, b in zip(integer.split_parts(small, 64), integer.split_parts(large, 64), strict=True):
        np.testing.assert_array_equal(b[:5000], a)


def test_counts_are_the_camera_reading_of_the_exact_integer_sums():
    X = bits((ROWS, N_FEATURES), seed=1)
    opu = opu_on({}, X)
    counts = opu.transform(X)
    real, imag = (part.astype(np.int64) for part in opu.device.integer_matrix())
    re, im = X.astype(np.int64) @ real.T, X.astype(np.int64) @ imag.T
    unit = integer.dequantization_scale(N_FEATURES)
    gain = counts.context.exposure_us * 32.0 / 400.0
    expected = np.rint(np.clip((re * re + im * im).astype(np.float64) * (unit * unit * gain),
                               0, 255))
    np.testing.assert_array_equal(counts, expected)
    assert counts.context.saturated == np.count_nonzero(expected == 255) / expected.size
    linear = opu_on({}, X, rescale="none").linear_transform(X)
    assert linear.dtype == np.float32
    np.testing.assert_array_equal(linear, (re.astype(np.float64) * unit).astype(np.float32))


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64, np.bool_])
def test_identical_bytes_on_every_path(dtype, monkeypatch):
    """numpy and torch engines, held and streamed, 1 and 2 worker threads, any input dtype."""
    X = bits((ROWS, N_FEATURES), seed=2, dtype=dtype)
    reference = np.asarray(opu_on({"gemm": "numpy", "streaming": False}, X).transform(X))
    engines = ["numpy"] + ([] if integer.int8_gemm_problem() else ["torch"])
    for workers in (1, 2):
        monkeypatch.setattr(simulator.os, "cpu_count", lambda workers=workers: workers)
        for gemm in engines:
            for streaming in (False, True):
                out = opu_on({"gemm": gemm, "streaming": streaming}, X).transform(X)
                assert np.asarray(out).tobytes() == reference.tobytes(), (workers, gemm,
                                                                          streaming)


def test_camera_noise_is_the_same_on_every_engine():
    X = bits((ROWS, N_FEATURES), seed=4)
    engines = ["numpy"] + ([] if integer.int8_gemm_problem() else ["torch"])
    noisy = [opu_on({"gemm": gemm, "camera_noise": True}, X).transform(X) for gemm in engines]
    assert all(np.array_equal(n, noisy[0]) for n in noisy[1:])
    assert not np.array_equal(noisy[0], opu_on({}, X).transform(X))


def test_torch_engine_runs_here_when_the_cpu_has_int8_dot_products():
    """Where the CPU has VNNI/AMX/dotprod and torch is installed (CI's venv), the fast engine
    must be usable: otherwise the bit-exactness test above compares numpy with itself."""
    problem = integer.int8_gemm_problem()
    if not integer.INT8_DOT_FLAGS & integer.cpu_flags():
        assert "no int8 dot-product" in problem
    elif importlib.util.find_spec("torch") is None:
        assert problem == "torch is not installed"
    else:
        assert problem is None


def test_wide_inputs_sum_exactly_beyond_float32s_integer_range():
    n_features = integer.FLOAT32_EXACT_FEATURES + 5000  # the numpy engine sums in two chunks
    X = np.ones((2, n_features), dtype=np.uint8)
    X[1, ::3] = 0
    device = SimulatorBackend(camera="exact", arithmetic="int8", gemm="numpy")
    opu = OPU(n_components=40, opu_device=device, max_n_features=n_features,
              rescale="none").fit1d(n_features=n_features)
    out = opu.linear_transform(X)
    real, _ = (part.astype(np.int64) for part in opu.device.integer_matrix())
    expected = (X.astype(np.int64) @ real.T).astype(np.float64)
    unit = integer.dequantization_scale(n_features)
    np.testing.assert_array_equal(out, (expected * unit).astype(np.float32))
    # the 8-bit counts of wide inputs: the same on every engine, held or streamed
    counts = [opu_on({"gemm": gemm, "streaming": streaming}, X, n_components=40).transform(X)
              for gemm in ["numpy"] + ([] if integer.int8_gemm_problem() else ["torch"])
              for streaming in (False, True)]
    assert all(np.array_equal(c, counts[0]) for c in counts[1:])
    # the worst case: an odd sum above 2**24, which no float32 holds
    n_features = integer.FLOAT32_EXACT_FEATURES + 5001
    x = np.ones((1, n_features), dtype=np.float32)
    h = np.full((3, n_features), 127, dtype=np.int8)
    total = integer.NumpyProducts(n_features).products(x, h)
    assert total.tolist() == [[127 * n_features] * 3] and 127 * n_features > 2**24


def test_eight_bit_counts_stay_close_to_the_float32_matrixs():
    """Quantizing H moves intensities by ~0.4 count (std) at the mean: most pixels read the
    same count, about a third one count apart, about 1 % more (bright pixels)."""
    X = bits((40, 400), seed=3)
    ints = opu_on({}, X, n_components=10_000).transform(X).astype(np.int16)
    floats = opu_on({"arithmetic": "float32"}, X, n_components=10_000).transform(X)
    diff = np.abs(ints - floats.astype(np.int16))
    assert ints.context.exposure_us == floats.context.exposure_us
    assert np.mean(diff >= 1) < 0.4
    assert np.mean(diff >= 2) < 0.03
    assert abs(float(ints.mean()) - float(floats.mean())) < 0.1


def test_held_matrix_is_int8_and_streaming_is_decided_on_its_size(monkeypatch):
    X = bits((3, 1000))
    opu = opu_on({}, X, n_components=5000)
    opu.transform(X)
    assert opu.device.held_matrix().nbytes == 2 * 1000 * 5000
    assert opu.describe()["arithmetic"] == "int8, exact"
    # 10 MB int8 fits in 30 MB of free memory (40 MB float32 would not)
    monkeypatch.setattr(simulator, "available_memory_bytes", lambda: 30 * 10**6)
    assert not opu.device.streams_at(1000, 5000)
    assert SimulatorBackend(camera="exact").streams_at(1000, 5000)


def test_streaming_draws_ahead_on_several_threads():
    # Two blocks must be drawn at the same time: with a single drawing thread the barrier
    # would never fill (the timeout only turns that hang into a failure).
    barrier = threading.Barrier(2, timeout=60)

    def draw(block, width):
        if block < 2:
            barrier.wait()
        return (block, width)

    blocks = list(simulator.draw_ahead(1000, 3 * 4096 + 10, draw, workers=2))
    assert blocks == [(0, 4096, 0, 4096), (4096, 8192, 1, 4096), (8192, 12288, 2, 4096),
                      (12288, 12298, 3, 10)]
    # one block per core, within DRAW_AHEAD_BYTES, at least one however large
    assert simulator.blocks_ahead(2, 8 * 2**20) == 2
    assert simulator.blocks_ahead(16, 128 * 2**20) == simulator.DRAW_AHEAD_BYTES // 2**27
    assert simulator.blocks_ahead(16, 10 * simulator.DRAW_AHEAD_BYTES) == 1


def test_engine_choice_and_the_one_fallback_log_line(monkeypatch, caplog):
    monkeypatch.setattr(integer, "_torch_problem", ["torch is not installed"])
    monkeypatch.setattr(integer, "_fallback_logged", threading.Event())
    caplog.set_level(logging.INFO, logger="opu_kernel")
    big = integer.TORCH_MIN_WORK
    assert integer.choose_engine("auto", big) == "numpy"
    assert integer.choose_engine("auto", big) == "numpy"
    lines = [r.getMessage() for r in caplog.records if "int8 GEMMs not used" in r.getMessage()]
    assert len(lines) == 1 and "torch is not installed" in lines[0]
    assert integer.choose_engine("numpy", big) == "numpy"
    with pytest.raises(RuntimeError, match="gemm='torch' is not available: torch is not"):
        integer.choose_engine("torch", 1)
    with pytest.raises(ValueError, match="gemm='blas'"):
        SimulatorBackend(gemm="blas")
    with pytest.raises(ValueError, match="arithmetic='int4'"):
        SimulatorBackend(arithmetic="int4")


def test_cpu_without_int8_dot_products_is_named(monkeypatch):
    monkeypatch.setattr(integer, "_torch_problem", [])
    monkeypatch.setattr(integer, "cpu_flags", lambda: {"sse2", "avx2"})
    assert "no int8 dot-product instructions" in integer.int8_gemm_problem()
