"""The OPU proxy's lightonml-compatible API, on the simulator."""

import pickle

import numpy as np
import pytest

from opu_kernel import OPU, OutputRescaling
from opu_kernel.context import ContextArray
from opu_kernel.encoding.base import BinaryThresholdEncoder


def binary(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 2, shape, dtype=np.uint8)


@pytest.fixture
def exact_opu():
    opu = OPU(n_components=300, max_n_features=100, camera="exact", backend="simulator")
    yield opu
    opu.close()


def reference(opu, X):
    """|XH|² computed the slow, obvious way from the simulator's matrix."""
    real_t, imag_t = opu.device.matrix()
    H = (real_t.astype(np.float64) + 1j * imag_t.astype(np.float64)).T
    return np.abs(np.asarray(X, dtype=np.float64) @ H) ** 2


def test_fit1d_transform_matches_reference_for_vector_and_batches(exact_opu):
    X = binary((7, 50))
    exact_opu.fit1d(X)
    batch = exact_opu.transform(X)
    assert isinstance(batch, ContextArray) and batch.dtype == np.float32
    assert batch.shape == (7, 300)
    np.testing.assert_allclose(batch, reference(exact_opu, X), rtol=1e-4, atol=1e-5)
    single = exact_opu.transform(X[3])
    assert single.shape == (300,)
    np.testing.assert_allclose(single, batch[3], rtol=1e-5)
    nested = exact_opu.transform(X[:6].reshape(2, 3, 50))
    assert nested.shape == (2, 3, 300)
    np.testing.assert_allclose(nested.reshape(6, 300), batch[:6], rtol=1e-5)


def test_fit2d_takes_2d_features_and_matches_flattened_1d():
    X = binary((4, 6, 8))
    with OPU(n_components=64, max_n_features=48, camera="exact") as opu:
        out2d = opu.fit_transform2d(X)
        assert opu.n_features == (6, 8)
        assert out2d.shape == (4, 64)
        opu.fit1d(n_features=48)
        np.testing.assert_allclose(opu.transform(X.reshape(4, 48)), out2d, rtol=1e-5)
        opu.fit2d(n_features=(6, 8))
        assert opu.transform(X[0]).shape == (64,)


def test_packed_input_equals_unpacked(exact_opu):
    X = binary((5, 64))
    expected = exact_opu.fit_transform1d(X)
    packed = np.packbits(X, axis=-1)
    exact_opu.fit1d(packed, packed=True)
    assert exact_opu.n_features == 64
    np.testing.assert_allclose(exact_opu.transform(packed), expected, rtol=1e-5)
    exact_opu.fit2d(n_features=(8, 8), packed=True)
    np.testing.assert_allclose(exact_opu.transform(packed), expected, rtol=1e-5)


@pytest.mark.parametrize("dtype", [bool, np.uint8, np.int64, np.float32, np.float64])
def test_any_dtype_of_zeros_and_ones_gives_the_same_result(exact_opu, dtype):
    X = binary((3, 40))
    exact_opu.fit1d(n_features=40)
    np.testing.assert_allclose(exact_opu.transform(X.astype(dtype)), exact_opu.transform(X),
                               rtol=1e-6)


def test_context_describes_the_acquisition(exact_opu):
    X = np.zeros((2, 20), dtype=np.uint8)
    X[0, :5] = 1
    X[1, :15] = 1
    exact_opu.fit1d(n_features=20)
    context = exact_opu.transform(X).context
    assert context.n_ones == 10
    assert context.backend == "simulator" and context.camera == "exact"
    assert context.n_components == 300 and context.input_shape == (2, 20)
    assert context.duration_s >= 0 and context.end >= context.start
    assert context.frametime_us > 0
    assert context.output_roi_shape == (1, 300)
    sliced = exact_opu.transform(X)[1:]
    assert sliced.context.n_ones == 10


def test_eight_bit_camera_quantizes_the_exact_intensities():
    X = binary((50, 100), seed=3)
    opu = OPU(n_components=2000, camera="8bit").fit1d(X)
    counts = opu.transform(X)
    exact = reference(opu, X)  # |XH|² of the H it uses (int8 levels: test_integer_simulator)
    assert counts.dtype == np.uint8
    exposure = counts.context.exposure_us
    gain = exposure * 32.0 / 400.0
    expected = np.clip(np.rint(exact.astype(np.float64) * gain), 0, 255)
    assert np.mean(np.abs(expected - counts) > 1) < 1e-4  # float rounding at .5 edges only
    # Auto-exposure on typical inputs: few saturated values, a readable mean.
    assert counts.context.saturated < 0.005
    assert counts.mean() >= 11
    # A vector alone reads the same as within its batch: exposure is fixed at fit time.
    np.testing.assert_array_equal(opu.transform(X[7]), counts[7])


def test_fixed_exposure_override_and_saturation_warning():
    X = binary((20, 100))
    opu = OPU(n_components=500).fit1d(X, exposure_us=40_000)
    with pytest.warns(UserWarning, match="saturat"):
        out = opu.transform(X)
    assert out.context.exposure_us == 40_000
    assert out.context.saturated > 0.5


def test_camera_noise_is_seeded_and_changes_counts():
    X = binary((10, 100))
    clean = OPU(n_components=500).fit1d(X).transform(X)
    noisy = OPU(n_components=500, camera_noise=True).fit1d(X).transform(X)
    again = OPU(n_components=500, camera_noise=True).fit1d(X).transform(X)
    assert not np.array_equal(clean, noisy)
    np.testing.assert_array_equal(noisy, again)
    assert abs(float(noisy.mean()) - float(clean.mean())) < 1.0


@pytest.mark.parametrize("rescale, divisor", [("variance", np.sqrt(40)), ("norm", np.sqrt(300)),
                                              (OutputRescaling.none, 1.0)])
def test_linear_transform_is_real_part_rescaled_like_lightonml(rescale, divisor):
    X = binary((6, 40))
    opu = OPU(n_components=300, camera="exact", rescale=rescale).fit1d(n_features=40)
    out = opu.linear_transform(X)
    real_t, _ = opu.device.matrix()
    np.testing.assert_allclose(out, X @ real_t.T.astype(np.float64) / divisor, rtol=1e-4,
                               atol=1e-6)
    assert out.context.linear is True


def test_encoder_and_decoder_classes_are_applied(exact_opu):
    rng = np.random.default_rng(0)
    raw = rng.normal(size=(5, 60))
    exact_opu.fit1d(n_features=60)
    encoder = BinaryThresholdEncoder().fit(raw)
    via_encoder = exact_opu.transform(raw, encoder_cls=encoder)
    by_hand = exact_opu.transform(encoder.transform(raw))
    np.testing.assert_allclose(via_encoder, by_hand)

    class Halve:
        def transform(self, Y):
            return Y / 2

    halved = exact_opu.transform(encoder.transform(raw), decoder_cls=Halve)
    np.testing.assert_allclose(halved, by_hand / 2)
    assert halved.context.n_features == 60


def test_with_block_closes_what_it_opened():
    with OPU(n_components=10, backend="simulator") as opu:
        assert opu.is_open
        opu.fit_transform1d(binary((2, 10)))
        assert opu.device.matrix_allocated
    assert not opu.is_open
    assert not opu.device.matrix_allocated  # the simulator's memory is given back


def test_open_close_and_open_at_init():
    opu = OPU(n_components=10, open_at_init=False)
    assert not opu.is_open
    opu.open()
    assert opu.is_open
    opu.fit1d(n_features=5)
    opu.close()
    with pytest.raises(RuntimeError, match=r"opu.open\(\)"):
        opu.transform(np.ones(5))
    opu.open()
    assert opu.transform(np.ones(5)).shape == (10,)


def test_pickle_keeps_seed_and_shape_but_not_the_matrix():
    opu = OPU(n_components=200, seed=7, camera="exact").fit1d(n_features=30)
    X = binary((3, 30))
    before = opu.transform(X)
    blob = pickle.dumps(opu)
    assert len(blob) < 4000  # 200 × 30 complex entries would not fit
    restored = pickle.loads(blob)
    assert restored.seed == 7 and restored.n_components == 200 and restored.n_features == 30
    assert not restored.device.matrix_allocated
    np.testing.assert_array_equal(restored.transform(X), before)


def test_seed_selects_the_matrix_and_is_reproducible():
    X = binary((2, 30))
    a = OPU(n_components=100, camera="exact").fit1d(X).transform(X)
    b = OPU(n_components=100, camera="exact").fit1d(X).transform(X)
    c = OPU(n_components=100, camera="exact", seed=1).fit1d(X).transform(X)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_n_components_and_max_n_features_are_settable():
    X = binary((2, 30))
    opu = OPU(n_components=100, max_n_features=30, camera="exact").fit1d(X)
    first = opu.transform(X)
    opu.n_components = 150
    grown = opu.transform(X)
    assert grown.shape == (2, 150)
    np.testing.assert_allclose(grown[:, :100], first, rtol=1e-5)  # old components kept
    opu.max_n_features = 60
    opu.fit1d(n_features=60)
    assert opu.transform(binary((1, 60))).shape == (1, 150)


def test_version_repr_and_describe():
    opu = OPU(n_components=10)
    assert "opu_kernel version" in opu.version() and "simulator" in opu.version()
    assert "simulator" in repr(opu) and "open" in repr(opu)
    info = opu.describe()
    assert info["backend"] == "simulator" and info["n_components"] == 10
    assert info["matrix_allocated"] is False


def test_matrix_is_built_lazily_on_first_transform():
    opu = OPU(n_components=5000, max_n_features=1000)
    opu.fit1d(n_features=1000)
    assert not opu.device.matrix_allocated
    opu.transform(binary(1000))
    assert opu.device.matrix_allocated


def test_progress_bar_shows_only_when_enabled_and_slow(capsys, monkeypatch):
    import opu_kernel.opu as opu_module

    created = []

    class RecordingTqdm:
        def __init__(self, **kwargs):
            created.append(kwargs)

        def update(self, n):
            created[-1].setdefault("updates", []).append(n)

        def close(self):
            pass

    monkeypatch.setattr("tqdm.std.tqdm", RecordingTqdm)
    X = binary((3, 20))
    OPU(n_components=9000, disable_pbar=True).fit1d(X).transform(X)
    assert created == []
    OPU(n_components=9000).fit1d(X).transform(X)
    assert created[0]["delay"] >= 1.0  # appears only for transforms lasting over a second
    assert sum(created[0]["updates"]) == pytest.approx(1.0)
    assert opu_module.Progress  # one progress helper for every backend


def test_deprecated_verbose_level_warns():
    with pytest.warns(DeprecationWarning):
        OPU(n_components=10, verbose_level=2)
