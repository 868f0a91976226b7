"""Encoders and decoders: exact outputs on hand-made inputs, round trips through linear maps
against exact results, fit/transform separation and bad input (torch tensors in and out:
test_torch_tensors.py)."""

import numpy as np
import pytest
from sklearn.base import clone

from opu_kernel import OPU
from opu_kernel.encoding import (
    BinaryThresholdEncoder,
    ConcatenatedBitPlanEncoder,
    ConcatenatingBitPlanDecoder,
    MultiThresholdEncoder,
    NoDecoding,
    NoEncoding,
    SeparatedBitPlanDecoder,
    SeparatedBitPlanEncoder,
    SequentialBaseTwoEncoder,
)
from opu_kernel.encoding import base as encoding_base

# lightonml 1.4.3's relative errors of a decoded linear map vs the exact one (ANCHORS.md)
LIGHTONML_RELATIVE_ERRORS = {1: 0.94, 2: 0.41, 4: 0.082, 6: 0.020, 8: 0.0048}


def relative_error(approximation, exact):
    return np.linalg.norm(approximation - exact) / np.linalg.norm(exact)


def separated_bitplan_linear_map(X, matrix, precision, encoder=None):
    """Encode X, apply the linear map to the bit planes, decode: approximates X @ matrix."""
    encoder = encoder or SeparatedBitPlanEncoder(precision=precision).fit(X)
    planes = encoder.transform(X)
    return SeparatedBitPlanDecoder(**encoder.get_params()).transform(planes @ matrix)


def test_the_lightonml_import_path_holds_every_class():
    for name in ("BinaryThresholdEncoder", "MultiThresholdEncoder", "SequentialBaseTwoEncoder",
                 "ConcatenatedBitPlanEncoder", "ConcatenatingBitPlanDecoder",
                 "SeparatedBitPlanEncoder", "SeparatedBitPlanDecoder", "NoEncoding", "NoDecoding"):
        assert getattr(encoding_base, name).__module__ == "opu_kernel.encoding.base"


def test_no_encoding_and_no_decoding_pass_data_through():
    X = np.array([[0, 1], [1, 0]], dtype=np.uint8)
    assert NoEncoding().fit_transform(X) is X
    assert NoDecoding().transform(X) is X


# -- BinaryThresholdEncoder -------------------------------------------------------------

def test_binary_threshold_with_a_fixed_threshold():
    X = np.array([[0.1, 0.5, 0.9], [0.6, 0.2, 0.5]])
    encoded = BinaryThresholdEncoder(threshold_enc=0.5).transform(X)
    assert encoded.dtype == np.uint8
    np.testing.assert_array_equal(encoded, [[0, 0, 1], [1, 0, 0]])
    below = BinaryThresholdEncoder(threshold_enc=0.5, greater_is_one=False).transform(X)
    np.testing.assert_array_equal(below, [[1, 0, 0], [0, 1, 0]])


def test_binary_threshold_auto_learns_the_median_of_each_feature_without_touching_the_param():
    X = np.array([[1, 10], [2, 20], [3, 30]])
    encoder = BinaryThresholdEncoder().fit(X)
    np.testing.assert_array_equal(encoder.threshold_enc_, [2, 20])
    assert encoder.threshold_enc == "auto"
    np.testing.assert_array_equal(encoder.transform(X), [[0, 0], [0, 0], [1, 1]])
    # refitting learns again, from the new data
    encoder.fit(X + 1)
    np.testing.assert_array_equal(encoder.threshold_enc_, [3, 21])


def test_binary_threshold_auto_needs_a_fit_and_rejects_bad_settings_and_nan():
    with pytest.raises(RuntimeError, match="call fit"):
        BinaryThresholdEncoder().transform(np.ones((2, 2)))
    with pytest.raises(ValueError, match="'auto'"):
        BinaryThresholdEncoder(threshold_enc="median")
    with pytest.warns(UserWarning, match="outside the data range"):
        BinaryThresholdEncoder(threshold_enc=5).fit(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="NaN"):
        BinaryThresholdEncoder(threshold_enc=0).transform(np.array([[np.nan, 1.0]]))


# -- MultiThresholdEncoder --------------------------------------------------------------

def test_multi_threshold_linspace_is_a_threshold_major_thermometer_code():
    X = np.array([[0.0, 1.0, 2.0, 3.0, 4.0]])
    encoder = MultiThresholdEncoder(n_bins=4).fit(X)
    np.testing.assert_allclose(encoder.thresholds_, [1, 2, 3])
    np.testing.assert_array_equal(encoder.transform(X), [[0, 0, 1, 1, 1,    # X > 1
                                                          0, 0, 0, 1, 1,    # X > 2
                                                          0, 0, 0, 0, 1]])  # X > 3


def test_multi_threshold_quantiles_use_midpoint_interpolation():
    X = np.arange(1.0, 9.0).reshape(-1, 1)
    encoder = MultiThresholdEncoder(thresholds="quantiles", n_bins=4).fit(X)
    np.testing.assert_allclose(encoder.thresholds_, [2.5, 4.5, 6.5])
    np.testing.assert_array_equal(encoder.transform(np.array([[5.0]])), [[1, 1, 0]])


def test_multi_threshold_columnwise_learns_thresholds_per_feature():
    X = np.array([[0.0, 10.0], [4.0, 50.0]])
    encoder = MultiThresholdEncoder(n_bins=2, columnwise=True).fit(X)
    np.testing.assert_allclose(encoder.thresholds_, [[2.0], [30.0]])
    np.testing.assert_array_equal(encoder.transform(np.array([[3.0, 20.0]])), [[1, 0]])


def test_multi_threshold_with_given_thresholds_needs_no_fit_and_works_on_batches_of_2d():
    encoder = MultiThresholdEncoder(thresholds=[0.0, 1.0])
    assert encoder.n_bins_ == 3
    X = np.array([[[-1.0, 0.5], [2.0, 1.0]]])  # one 2x2 input
    np.testing.assert_array_equal(encoder.transform(X), [[[0, 1, 0, 0], [1, 1, 1, 0]]])
    with pytest.raises(ValueError, match="2D array"):
        MultiThresholdEncoder(thresholds=[0.0, 1.0], columnwise=True)
    with pytest.raises(ValueError, match="'linspace'"):
        MultiThresholdEncoder(thresholds="median")
    with pytest.raises(RuntimeError, match="call fit"):
        MultiThresholdEncoder().transform(X)


# -- SequentialBaseTwoEncoder -----------------------------------------------------------

def test_sequential_base_two_repeats_each_bit_by_its_weight():
    encoder = SequentialBaseTwoEncoder(n_gray_levels=8).fit(np.array([[0, 7]]))
    encoded = encoder.transform(np.array([[5, 3]]))
    #                                 5 = 1 0 1              3 = 0 1 1
    np.testing.assert_array_equal(encoded, [[1, 1, 1, 1, 0, 0, 1, 0, 0, 0, 0, 1, 1, 1]])
    assert encoded.dtype == np.uint8


def test_sequential_base_two_quantizes_to_the_fitted_range_and_clips_outside_it():
    encoder = SequentialBaseTwoEncoder(n_gray_levels=4).fit(np.array([[10.0, 40.0]]))
    levels = encoder.normalize(np.array([[10.0, 20.0, 30.0, 40.0, -5.0, 99.0]]))
    np.testing.assert_array_equal(levels, [[0, 1, 2, 3, 0, 3]])
    # the number of ones of a value's code is its level
    encoded = encoder.transform(np.array([[10.0, 20.0, 30.0, 40.0]]))
    np.testing.assert_array_equal(encoded.reshape(4, 3).sum(axis=1), [0, 1, 2, 3])


def test_sequential_base_two_rejects_non_powers_of_two_and_needs_a_fit():
    for bad in (6, 1, 0, 512, 4.0, True):
        with pytest.raises(ValueError, match="power of 2"):
            SequentialBaseTwoEncoder(n_gray_levels=bad)
    with pytest.raises(RuntimeError, match="call fit"):
        SequentialBaseTwoEncoder().transform(np.ones((1, 2)))


# -- ConcatenatedBitPlanEncoder / ConcatenatingBitPlanDecoder ---------------------------

def bit_weights(dtype, n_bits, starting_bit):
    """Weight of each kept bit in the documented order: bytes least significant first, bits
    within a byte most significant first."""
    positions = np.arange(starting_bit, starting_bit + n_bits)
    return 2.0 ** (8 * (positions // 8) + 7 - positions % 8)


def test_concatenated_bitplans_of_uint8_are_most_significant_first():
    sample = np.array([[204, 180, 73], [133, 11, 39]], dtype=np.uint8)
    encoded = ConcatenatedBitPlanEncoder().transform(sample)
    assert encoded.shape == (2, 24) and encoded.dtype == np.uint8
    np.testing.assert_array_equal(encoded[0, :8], [1, 1, 0, 0, 1, 1, 0, 0])  # 204
    np.testing.assert_array_equal(encoded[1, 16:], [0, 0, 1, 0, 0, 1, 1, 1])  # 39


@pytest.mark.parametrize("dtype, n_bits, starting_bit", [
    (np.uint8, 8, 0), (np.uint8, 4, 0), (np.uint8, 3, 2), (np.uint16, 16, 0), (np.uint16, 8, 0),
    (np.dtype(">u2"), 16, 0), (np.int32, 31, 0),
])
def test_concatenated_bitplans_recover_the_integers_exactly_through_a_linear_map(
        dtype, n_bits, starting_bit):
    rng = np.random.default_rng(0)
    X = rng.integers(0, np.iinfo(dtype).max, size=(50, 7), endpoint=True).astype(dtype)
    encoded = ConcatenatedBitPlanEncoder(n_bits=n_bits, starting_bit=starting_bit).transform(X)
    assert encoded.shape == (50, 7 * n_bits)
    # block-diagonal map: feature j's bits times their weights
    recombine = np.kron(np.eye(7), bit_weights(dtype, n_bits, starting_bit)[:, None])
    kept_bits_mask = int(bit_weights(dtype, n_bits, starting_bit).sum())
    np.testing.assert_array_equal(encoded @ recombine, X.astype(np.int64) & kept_bits_mask)


def test_concatenated_bitplans_reject_floats_and_too_many_bits():
    with pytest.raises(ValueError, match="integers"):
        ConcatenatedBitPlanEncoder().transform(np.ones((2, 2)))
    with pytest.raises(ValueError, match="exceeds the 8 bits"):
        ConcatenatedBitPlanEncoder(n_bits=8, starting_bit=1).transform(np.ones((2, 2), np.uint8))
    with pytest.raises(ValueError, match="positive"):
        ConcatenatedBitPlanEncoder(n_bits=0)


def test_concatenating_decoder_recombines_bitplane_projections_into_the_exact_projection():
    rng = np.random.default_rng(1)
    n_samples, n_features, n_out, n_bits = 6, 5, 4, 8
    X = rng.integers(0, 256, size=(n_samples, n_features), dtype=np.uint8)
    matrix = rng.integers(-3, 4, size=(n_features, n_out))
    # bit planes stacked along the samples: (n_samples * n_bits, n_features)
    bits = ConcatenatedBitPlanEncoder().transform(X).reshape(n_samples, n_features, n_bits)
    planes = bits.transpose(0, 2, 1).reshape(n_samples * n_bits, n_features)
    decoded = ConcatenatingBitPlanDecoder(n_bits=n_bits).transform(planes @ matrix)
    assert decoded.shape == (n_samples, n_bits * n_out)
    recombined = decoded.reshape(n_samples, n_bits, n_out).sum(axis=1) * 2 ** (n_bits - 1)
    np.testing.assert_array_equal(recombined, X.astype(np.int64) @ matrix)
    with pytest.raises(ValueError, match="n_bits=8"):
        ConcatenatingBitPlanDecoder(n_bits=8).transform(np.ones((12, 3)))


# -- SeparatedBitPlanEncoder / SeparatedBitPlanDecoder ----------------------------------

def test_separated_bitplan_error_shrinks_with_precision_as_in_lightonml():
    rng = np.random.default_rng(2)
    X, matrix = rng.normal(size=(100, 100)), rng.normal(size=(100, 200))
    exact = X @ matrix
    errors = {precision: relative_error(separated_bitplan_linear_map(X, matrix, precision), exact)
              for precision in LIGHTONML_RELATIVE_ERRORS}
    measured = list(errors.values())
    assert all(later < earlier for earlier, later in zip(measured, measured[1:])), errors
    for precision, lightonml_error in LIGHTONML_RELATIVE_ERRORS.items():
        assert errors[precision] < 1.25 * lightonml_error, errors
    assert errors[8] < 0.006


def test_separated_bitplan_layout_is_positive_planes_then_negative_planes():
    X = np.array([[0.75, -0.5]])
    encoder = SeparatedBitPlanEncoder(precision=2).fit(X)
    # positive part / 0.75 = [1, 0] → levels [3, 0]; negative part / 0.5 = [0, 1] → [0, 3]
    np.testing.assert_array_equal(encoder.transform(X), [[1, 0], [1, 0], [0, 1], [0, 1]])
    assert encoder.get_params() == {"precision": 2, "magnitude_p": 0.75 / 1.5,
                                    "magnitude_n": 0.5 / 1.5}


def test_separated_bitplan_encodes_small_integers_exactly():
    rng = np.random.default_rng(3)
    X = rng.integers(-100, 101, size=(20, 6)).astype(np.int16)
    matrix = rng.integers(-5, 6, size=(6, 9))
    decoded = separated_bitplan_linear_map(X, matrix, precision=8)
    np.testing.assert_allclose(decoded, X.astype(np.int64) @ matrix, atol=1e-3)


@pytest.mark.parametrize("sign", [1, -1])
def test_separated_bitplan_single_signed_data_takes_one_side(sign):
    rng = np.random.default_rng(4)
    X = sign * rng.uniform(0.1, 1, size=(10, 8))
    encoder = SeparatedBitPlanEncoder(precision=6).fit(X)
    assert encoder.transform(X).shape == (10 * 6, 8)
    matrix = rng.normal(size=(8, 5))
    assert relative_error(separated_bitplan_linear_map(X, matrix, 6, encoder), X @ matrix) < 0.03


def test_separated_bitplan_transform_uses_the_fit_and_changes_nothing():
    rng = np.random.default_rng(5)
    X_train, matrix = rng.normal(size=(50, 10)), rng.normal(size=(10, 4))
    X_test = X_train[:5] * 0.5  # inside the training range
    encoder = SeparatedBitPlanEncoder(precision=6).fit(X_train)
    params = encoder.get_params()
    encoder.transform(X_test)
    assert encoder.get_params() == params
    # a sample encodes the same alone or in a batch: the range is the fitted one, not the batch's
    alone = separated_bitplan_linear_map(X_test[:1], matrix, 6, encoder)
    in_batch = separated_bitplan_linear_map(X_test, matrix, 6, encoder)[:1]
    np.testing.assert_allclose(alone, in_batch, rtol=1e-6)


def test_separated_bitplan_out_of_range_input_raises_unless_clip():
    X_train = np.array([[-1.0, 2.0], [0.5, 1.0]])
    with pytest.raises(ValueError, match=r"fitted on \[-1, 2\].*clip=True"):
        SeparatedBitPlanEncoder(precision=4).fit(X_train).transform(np.array([[0.0, 3.0]]))
    with pytest.raises(ValueError, match="clip=True"):
        SeparatedBitPlanEncoder().fit(np.abs(X_train)).transform(np.array([[-0.1, 0.0]]))
    clipping = SeparatedBitPlanEncoder(precision=8, clip=True).fit(X_train)
    X = np.array([[-5.0, 3.0]])
    decoded = separated_bitplan_linear_map(X, np.eye(2), 8, clipping)
    np.testing.assert_allclose(decoded, [[-1.0, 2.0]], atol=1e-2)


def test_separated_bitplan_unfitted_transform_fits_itself_as_lightonml_does():
    X = np.array([[1.0, -3.0], [2.0, 0.0]])
    encoder = SeparatedBitPlanEncoder(precision=4)
    with pytest.raises(RuntimeError, match="call fit"):
        encoder.get_params()
    np.testing.assert_array_equal(encoder.transform(X),
                                  SeparatedBitPlanEncoder(precision=4).fit(X).transform(X))
    assert encoder.get_params()["magnitude_n"] == pytest.approx(3.0 / (2 * (1 - 0.5 ** 4)))


def test_separated_bitplan_encoder_clones_unfitted_with_its_settings():
    encoder = SeparatedBitPlanEncoder(precision=3, clip=True).fit(np.ones((2, 2)))
    copy = clone(encoder)
    assert (copy.precision, copy.clip) == (3, True) and not hasattr(copy, "magnitude_p_")
    assert repr(copy) == "SeparatedBitPlanEncoder(precision=3, clip=True)"


def test_separated_bitplan_rejects_bad_input():
    with pytest.raises(ValueError, match="precision"):
        SeparatedBitPlanEncoder(precision=0)
    with pytest.raises(ValueError, match="2D"):
        SeparatedBitPlanEncoder().fit(np.ones(3))
    with pytest.raises(ValueError, match="NaN"):
        SeparatedBitPlanEncoder().fit(np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError, match="get_params"):
        SeparatedBitPlanDecoder(precision=4, magnitude_p=1, magnitude_n=1).transform(np.ones((6, 2)))


def test_separated_bitplans_through_the_opu_linear_transform_match_the_exact_map():
    rng = np.random.default_rng(6)
    n_features = 32
    opu = OPU(n_components=64, max_n_features=n_features, simulated=True, disable_pbar=True)
    opu.fit1d(n_features=n_features)
    # the identity's rows are binary, so the OPU's linear map itself can be read off exactly
    linear_map = np.asarray(opu.linear_transform(np.eye(n_features, dtype=np.uint8)))
    X = rng.normal(size=(10, n_features))
    # classes, as lightonml users pass them: the OPU builds the decoder from the encoder
    decoded = opu.linear_transform(X, SeparatedBitPlanEncoder, SeparatedBitPlanDecoder)
    assert decoded.shape == (10, 64)
    assert relative_error(np.asarray(decoded), X @ linear_map) < 0.04


# -- scikit-learn conventions -----------------------------------------------------------

LEARNING_ENCODERS = [
    BinaryThresholdEncoder(greater_is_one=False),
    MultiThresholdEncoder(thresholds="quantiles", n_bins=4, columnwise=True),
    SequentialBaseTwoEncoder(n_gray_levels=4),
    ConcatenatedBitPlanEncoder(n_bits=4, starting_bit=2),
]


@pytest.mark.parametrize("encoder", LEARNING_ENCODERS, ids=lambda e: type(e).__name__)
def test_encoders_clone_and_set_params_like_sklearn_estimators(encoder):
    copy = clone(encoder)
    assert copy.get_params() == encoder.get_params() and copy is not encoder
    assert repr(copy).startswith(type(encoder).__name__ + "(")
    with pytest.raises(ValueError, match="no parameter"):
        copy.set_params(not_a_parameter=1)
