"""Encoders that turn data into the 0/1 ``uint8`` input an OPU takes, and decoders for its output.

Class names, parameters and output layouts follow ``lightonml.encoding.base`` so that lightonml
code runs unchanged. Differences, all deliberate:

- ``fit`` never overwrites a constructor parameter. What it learns goes into attributes ending
  in ``_`` (``threshold_enc_``, ``thresholds_``, ``offset_``/``scale_``, ``magnitude_p_``...),
  so an encoder can be refitted, cloned and grid-searched like any scikit-learn estimator.
- ``SeparatedBitPlanEncoder`` learns its value range in ``fit``; ``transform`` then encodes
  with that range and leaves the encoder unchanged, and raises ``ValueError`` for values outside
  it unless ``clip=True`` (lightonml issue #6). An encoder that was never fitted fits itself on
  the first input it transforms, which is what ``OPU.linear_transform(X,
  SeparatedBitPlanEncoder, SeparatedBitPlanDecoder)`` relies on.
- NaN input raises ``ValueError`` instead of silently encoding to zeros.

Every ``transform`` takes numpy arrays or torch tensors and returns the same kind.
"""

from __future__ import annotations

import functools
import inspect
import warnings

import numpy as np

from ..tensors import is_tensor, to_numpy, to_torch


def _keeps_input_kind(transform):
    """Run ``transform`` on numpy data and give torch tensors back to torch callers."""

    @functools.wraps(transform)
    def wrapper(self, X, *args, **kwargs):
        result = transform(self, to_numpy(X), *args, **kwargs)
        return to_torch(result, like=X) if is_tensor(X) else result

    return wrapper


def _reject_nan(X: np.ndarray, who: str) -> None:
    if X.dtype.kind in "fc" and np.isnan(X).any():
        raise ValueError(f"{who} got NaN values; impute or drop them before encoding")


def _check_ndim(X: np.ndarray, who: str, exactly_2d: bool = False) -> None:
    if exactly_2d and X.ndim != 2:
        raise ValueError(f"{who} takes a 2D array (n_samples, n_features), got shape {X.shape}; "
                         "use X.reshape(1, -1) for a single sample")
    if X.ndim < 1:
        raise ValueError(f"{who} takes an array with a feature axis, got a scalar")


def _require_fitted(estimator, attribute: str) -> None:
    if not hasattr(estimator, attribute):
        name = type(estimator).__name__
        raise RuntimeError(f"this {name} learns from data: call fit (or fit_transform) on "
                           "training data before transform")


class BaseTransformer:
    """Shared behaviour of encoders and decoders.

    ``fit`` is a no-op for those that learn nothing. ``get_params``/``set_params`` and the repr
    follow scikit-learn's conventions (parameters are the constructor's arguments), so encoders
    work in ``Pipeline``, ``clone`` and ``GridSearchCV`` without scikit-learn being a dependency.
    """

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        raise NotImplementedError

    def fit_transform(self, X, y=None):
        return self.fit(X, y).transform(X)

    @classmethod
    def _param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return [name for name, parameter in signature.parameters.items()
                if name != "self" and parameter.kind is parameter.POSITIONAL_OR_KEYWORD]

    def get_params(self, deep: bool = True) -> dict:
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params):
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"{type(self).__name__} has no parameter {name!r}; "
                                 f"its parameters are {valid}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        params = ", ".join(f"{name}={value!r}"
                           for name, value in BaseTransformer.get_params(self).items())
        return f"{type(self).__name__}({params})"

    def __sklearn_tags__(self):
        """scikit-learn ≥ 1.6 asks every step of a Pipeline for its tags (only called there,
        so scikit-learn stays optional)."""
        from sklearn.utils import InputTags, Tags, TargetTags, TransformerTags

        return Tags(estimator_type=None, target_tags=TargetTags(required=False),
                    transformer_tags=TransformerTags(), input_tags=InputTags(allow_nan=False),
                    requires_fit=self._learns_from_data())

    def __sklearn_is_fitted__(self) -> bool:
        """Encoders that learn nothing are always ready; the others once fit has run."""
        learned = [name for name in vars(self) if name.endswith("_") and not name.startswith("_")]
        return bool(learned) or not self._learns_from_data()

    def _learns_from_data(self) -> bool:
        return type(self).fit is not BaseTransformer.fit


class NoEncoding(BaseTransformer):
    """Passes the input through unchanged (it is already binary)."""

    def transform(self, X):
        return X


class NoDecoding(BaseTransformer):
    """Passes the OPU output through unchanged."""

    def transform(self, X):
        return X


class BinaryThresholdEncoder(BaseTransformer):
    """One bit per value: 1 where the value is above the threshold (below, if not
    ``greater_is_one``), 0 elsewhere. Output has the input's shape.

    Parameters
    ----------
    threshold_enc : number, array-like or 'auto'
        The threshold, or one per feature (broadcast along the last axis). ``'auto'`` learns the
        per-feature median in ``fit``, stored in ``threshold_enc_``.
    greater_is_one : bool
        Whether values above the threshold encode to 1 (True) or values below it (False).
    """

    def __init__(self, threshold_enc="auto", greater_is_one=True):
        if isinstance(threshold_enc, str) and threshold_enc != "auto":
            raise ValueError(f"threshold_enc must be a number, an array or 'auto', "
                             f"got {threshold_enc!r}")
        self.threshold_enc = threshold_enc
        self.greater_is_one = greater_is_one

    def fit(self, X, y=None):
        """Learn the per-feature median when ``threshold_enc='auto'``; otherwise warn when the
        fixed threshold lies outside the data's range, which would encode every value alike."""
        X = to_numpy(X)
        _reject_nan(X, type(self).__name__)
        if isinstance(self.threshold_enc, str):
            self.threshold_enc_ = np.median(X, axis=0)
        else:
            self.threshold_enc_ = np.asarray(self.threshold_enc)
            if np.any(self.threshold_enc_ < X.min()) or np.any(self.threshold_enc_ > X.max()):
                warnings.warn(f"threshold_enc={self.threshold_enc!r} is outside the data range "
                              f"[{X.min()}, {X.max()}]: the encoding will be constant",
                              stacklevel=2)
        return self

    @_keeps_input_kind
    def transform(self, X):
        _reject_nan(X, type(self).__name__)
        if isinstance(self.threshold_enc, str):
            _require_fitted(self, "threshold_enc_")
            threshold = self.threshold_enc_
        else:
            threshold = np.asarray(self.threshold_enc)
        encoded = X > threshold if self.greater_is_one else X < threshold
        return encoded.astype(np.uint8)


class MultiThresholdEncoder(BaseTransformer):
    """``n_bins - 1`` bits per value, one per threshold: bit k is 1 where the value is above
    threshold k (a thermometer code when the thresholds are increasing).

    The output's last axis is ``n_thresholds * n_features`` long, threshold-major:
    ``[X > t0 for every feature, X > t1 for every feature, ...]`` (lightonml's layout).

    Parameters
    ----------
    thresholds : 'linspace', 'quantiles' or array-like
        'linspace': evenly spaced over the data range; 'quantiles': the data's 1/n_bins,
        2/n_bins... quantiles (midpoint interpolation); both learned in ``fit`` and stored in
        ``thresholds_``. An array is used as is: shape (n_thresholds,), or
        (n_features, n_thresholds) with ``columnwise=True``.
    n_bins : int
        Number of levels the encoding distinguishes, for 'linspace' and 'quantiles'. An array
        of thresholds sets it to ``n_thresholds + 1`` (see ``n_bins_``).
    columnwise : bool
        Learn (or take) thresholds per feature instead of one set for all features.
    """

    def __init__(self, thresholds="linspace", n_bins=8, columnwise=False):
        if isinstance(thresholds, str):
            if thresholds not in ("linspace", "quantiles"):
                raise ValueError(f"thresholds must be 'linspace', 'quantiles' or an array, "
                                 f"got {thresholds!r}")
            if isinstance(n_bins, bool) or not isinstance(n_bins, int | np.integer) or n_bins < 2:
                raise ValueError(f"n_bins must be an integer >= 2, got {n_bins!r}")
        else:
            expected_ndim = 2 if columnwise else 1
            if np.ndim(thresholds) != expected_ndim:
                raise ValueError(
                    f"with columnwise={columnwise}, thresholds must be a {expected_ndim}D array"
                    + (" of shape (n_features, n_thresholds)" if columnwise else "")
                    + f", got shape {np.shape(thresholds)}")
        self.thresholds = thresholds
        self.n_bins = n_bins
        self.columnwise = columnwise

    @property
    def n_bins_(self) -> int:
        """The number of levels actually encoded (one more than the number of thresholds)."""
        if isinstance(self.thresholds, str):
            return int(self.n_bins)
        return np.shape(self.thresholds)[-1] + 1

    def fit(self, X, y=None):
        """Learn the thresholds for 'linspace' and 'quantiles'; a no-op for given thresholds."""
        if not isinstance(self.thresholds, str):
            return self
        X = to_numpy(X)
        _check_ndim(X, type(self).__name__)
        _reject_nan(X, type(self).__name__)
        # Per feature: reduce over every axis but the last; otherwise over everything.
        values = X.reshape(-1, X.shape[-1]) if self.columnwise else X.reshape(-1)
        if self.thresholds == "linspace":
            levels = np.linspace(values.min(axis=0), values.max(axis=0), self.n_bins + 1)[1:-1]
        else:
            levels = np.quantile(values, np.arange(1, self.n_bins) / self.n_bins, axis=0,
                                 method="midpoint")
        # columnwise thresholds are stored (n_features, n_thresholds), as lightonml does
        self.thresholds_ = levels.T if self.columnwise else levels
        return self

    def _active_thresholds(self) -> np.ndarray:
        if isinstance(self.thresholds, str):
            _require_fitted(self, "thresholds_")
            return np.asarray(self.thresholds_)
        return np.asarray(self.thresholds)

    @_keeps_input_kind
    def transform(self, X):
        _check_ndim(X, type(self).__name__)
        _reject_nan(X, type(self).__name__)
        thresholds = self._active_thresholds()
        # Compare every value with every threshold: shape (..., n_thresholds, n_features)
        per_threshold = thresholds.T if thresholds.ndim == 2 else thresholds[:, None]
        encoded = X[..., None, :] > per_threshold
        return encoded.reshape(*X.shape[:-1], -1).astype(np.uint8)


class SequentialBaseTwoEncoder(BaseTransformer):
    """Quantizes each value to one of ``n_gray_levels`` levels and writes the level in base 2,
    each bit repeated as many times as it weighs, most significant first: with 8 levels,
    5 = 101 in base 2 becomes ``1111 00 1``. A value takes ``n_gray_levels - 1`` bits, so the
    number of ones equals the level; outputs are (..., n_features * (n_gray_levels - 1)).

    ``fit`` learns the offset (data minimum) and scale (data range) over the whole array; values
    outside the fitted range are clipped to the extreme levels.

    Parameters
    ----------
    n_gray_levels : int
        Number of levels, a power of 2 from 2 to 256.
    """

    def __init__(self, n_gray_levels=16):
        is_int = isinstance(n_gray_levels, int | np.integer) and not isinstance(n_gray_levels, bool)
        if not is_int or not 2 <= n_gray_levels <= 256 or n_gray_levels & (n_gray_levels - 1):
            raise ValueError(f"n_gray_levels must be a power of 2 from 2 to 256, "
                             f"got {n_gray_levels!r}")
        self.n_gray_levels = n_gray_levels

    @property
    def n_bits(self) -> int:
        return int(self.n_gray_levels).bit_length() - 1

    def fit(self, X, y=None):
        X = to_numpy(X)
        _reject_nan(X, type(self).__name__)
        self.offset_ = X.min()
        self.scale_ = X.max() - self.offset_
        return self

    def normalize(self, X):
        """The quantized levels, integers in [0, n_gray_levels - 1], of ``X``."""
        _require_fitted(self, "offset_")
        X = to_numpy(X)
        # constant training data: every value maps to level 0 rather than to NaN
        scale = self.scale_ if self.scale_ != 0 else 1
        levels = np.rint((self.n_gray_levels - 1) * ((X - self.offset_) / scale))
        return np.clip(levels, 0, self.n_gray_levels - 1).astype(np.uint8)

    @_keeps_input_kind
    def transform(self, X):
        _check_ndim(X, type(self).__name__)
        _reject_nan(X, type(self).__name__)
        # Each level's whole code is fetched at once, as one opaque item: a single np.take,
        # much faster than broadcasting over the short code axis.
        encoded = np.take(self._codes_as_items(), self.normalize(X)).view(np.uint8)
        return encoded.reshape(*X.shape[:-1], -1)

    def _codes_as_items(self) -> np.ndarray:
        """Item k holds the n_gray_levels - 1 bytes that encode level k."""
        shifts = np.arange(self.n_bits - 1, -1, -1)  # most significant bit first
        # a bit of weight 2**k fills 2**k consecutive outputs
        output_shifts = np.repeat(shifts, 2 ** shifts)
        levels = np.arange(self.n_gray_levels)[:, None]
        codes = ((levels >> output_shifts) & 1).astype(np.uint8)
        return codes.view(f"V{codes.shape[1]}").ravel()


class ConcatenatedBitPlanEncoder(BaseTransformer):
    """Writes integers as their bits, concatenated along the feature axis:
    (..., n_features) → (..., n_features * n_bits), ``[bits of feature 0, bits of feature 1...]``.

    Bits are taken in lightonml's order on little-endian machines, whatever this machine's
    byte order: bytes from least to most significant, and within a byte bits from most to
    least significant. For ``uint8`` that is simply most significant first. ``starting_bit``
    bits are skipped at the start of that order and the next ``n_bits`` are kept, so with
    ``uint8``, ``n_bits=4, starting_bit=0`` keeps the 4 high bits.

    Parameters
    ----------
    n_bits : int
        Number of bits kept per value (positive).
    starting_bit : int
        Number of bits skipped before them (0 or positive). ``n_bits + starting_bit`` must not
        exceed the input dtype's width.
    """

    def __init__(self, n_bits=8, starting_bit=0):
        if n_bits <= 0:
            raise ValueError(f"n_bits must be a positive integer, got {n_bits!r}")
        if starting_bit < 0:
            raise ValueError(f"starting_bit must be 0 or a positive integer, got {starting_bit!r}")
        self.n_bits = n_bits
        self.starting_bit = starting_bit

    @_keeps_input_kind
    def transform(self, X):
        _check_ndim(X, type(self).__name__)
        if X.dtype.kind not in "iu":
            raise ValueError(f"{type(self).__name__} encodes integers, got dtype {X.dtype}; "
                             "cast first (e.g. X.astype(np.uint8)), or use "
                             "SeparatedBitPlanEncoder for real values")
        bitwidth = X.dtype.itemsize * 8
        if self.n_bits + self.starting_bit > bitwidth:
            raise ValueError(f"n_bits + starting_bit = {self.n_bits} + {self.starting_bit} "
                             f"exceeds the {bitwidth} bits of the input dtype {X.dtype}")
        little_endian = np.ascontiguousarray(X, dtype=X.dtype.newbyteorder("<"))
        bits = np.unpackbits(little_endian[..., None].view(np.uint8), axis=-1)
        kept = bits[..., self.starting_bit:self.starting_bit + self.n_bits]
        return kept.reshape(*X.shape[:-1], -1)


class ConcatenatingBitPlanDecoder(BaseTransformer):
    """Weights bit-plane projections and lays them side by side along the feature axis.

    Takes (n_samples * n_bits, n_out), the projections of ``n_bits`` bit planes per sample
    stacked along the samples (most significant first), and returns
    (n_samples, n_bits * n_out) where plane k is multiplied by ``decoding_decay ** k``.
    Summing the ``n_bits`` blocks of a row recovers the projection of the value scaled by
    ``decoding_decay ** (n_bits - 1)`` when the decay is 0.5.

    Parameters
    ----------
    n_bits : int
        Number of bit planes per sample, as encoded.
    decoding_decay : float
        Weight ratio between consecutive planes.
    """

    def __init__(self, n_bits=8, decoding_decay=0.5):
        self.n_bits = n_bits
        self.decoding_decay = decoding_decay

    @_keeps_input_kind
    def transform(self, X):
        planes, weights = _weighted_planes(self, X)
        weighted = planes * weights[:, None]
        return weighted.reshape(planes.shape[0], self.n_bits * planes.shape[2])


class SeparatedBitPlanEncoder(BaseTransformer):
    """Encodes real values as bit planes stacked along the samples, so that a linear map of
    the planes can be recombined (by ``SeparatedBitPlanDecoder``) into the linear map of the
    values.

    Values are split into a positive part and a negative part, each scaled by its magnitude
    (learned in ``fit``) to [0, 1], quantized to ``precision`` bits and written as
    ``precision`` planes, most significant first. Output: (sides * n_samples * precision,
    n_features), the positive part's planes for every sample, then the negative part's;
    ``sides`` is 1 when the fitted data has a single sign.

    For integer data the magnitude is rounded up to a power of two times
    ``(2**precision - 1) / 2**precision``, which makes quantization an exact bit shift
    (integers below ``2**precision`` encode exactly).

    Parameters
    ----------
    precision : int
        Bits per value (1 to 16); the relative error of a decoded linear map roughly halves
        with each extra bit.
    clip : bool
        Whether ``transform`` clips values outside the fitted range to it (True) or raises
        ``ValueError`` (False, the default).
    """

    def __init__(self, precision=6, clip=False):
        if isinstance(precision, bool) or not isinstance(precision, int | np.integer) \
                or not 1 <= precision <= 16:
            raise ValueError(f"precision must be an integer from 1 to 16, got {precision!r}")
        self.precision = precision
        self.clip = clip

    def _integer_magnitude(self, largest) -> float:
        """The smallest ``2**k * (2**precision - 1) / 2**precision`` with ``2**k > largest``."""
        if largest <= 0:
            return 0.0
        power = np.ceil(np.log2(float(largest) + 1))
        return float((2 ** self.precision - 1) * 0.5 ** (self.precision - power))

    def fit(self, X, y=None):
        """Learn the magnitudes of the positive and negative parts of ``X``."""
        X = to_numpy(X)
        _check_ndim(X, type(self).__name__, exactly_2d=True)
        _reject_nan(X, type(self).__name__)
        if X.size == 0:
            raise ValueError(f"{type(self).__name__}.fit got an empty array")
        largest, smallest = X.max(), X.min()
        if X.dtype.kind in "iu":
            self.magnitude_p_ = self._integer_magnitude(largest)
            self.magnitude_n_ = self._integer_magnitude(-int(smallest))
        else:
            self.magnitude_p_ = max(float(largest), 0.0)
            self.magnitude_n_ = max(-float(smallest), 0.0)
        # Inputs inside this interval encode without clipping beyond quantization
        # (+ 0.0 turns -0.0 into 0.0).
        self.input_range_ = (-max(self.magnitude_n_, -float(smallest)) + 0.0,
                             max(self.magnitude_p_, float(largest)))
        return self

    @_keeps_input_kind
    def transform(self, X):
        _check_ndim(X, type(self).__name__, exactly_2d=True)
        _reject_nan(X, type(self).__name__)
        if not hasattr(self, "magnitude_p_"):
            self.fit(X)
        low, high = self.input_range_
        if not self.clip and X.size and (X.min() < low or X.max() > high):
            raise ValueError(
                f"input values span [{X.min():g}, {X.max():g}] but this encoder was fitted on "
                f"[{low:g}, {high:g}]; fit it on data that covers the whole range, or create it "
                "with clip=True to clip values to the fitted range")
        sides = [(sign, magnitude) for sign, magnitude in
                 ((1, self.magnitude_p_), (-1, self.magnitude_n_)) if magnitude > 0]
        if not sides:  # all-zero training data: one side of all-zero planes
            sides = [(1, 1.0)]
        top_level = 2 ** self.precision - 1
        level_dtype = np.uint8 if self.precision <= 8 else np.uint16
        n_samples, n_features = X.shape
        planes = np.empty((len(sides), n_samples, self.precision, n_features), np.uint8)
        scaled = np.empty(X.shape, np.float64)
        for side, (sign, magnitude) in enumerate(sides):
            # level = floor(clip(±X / magnitude, 0, 1) * top_level + 0.5) (halves round up, as
            # in lightonml), in place to spare memory
            np.multiply(X, sign * top_level / magnitude, out=scaled)
            np.clip(scaled, 0, top_level, out=scaled)
            np.floor(scaled + 0.5, out=scaled)
            levels = scaled.astype(level_dtype)
            for plane in range(self.precision):  # most significant bit first
                shift = level_dtype(self.precision - 1 - plane)
                np.bitwise_and(levels >> shift, 1, out=planes[side, :, plane], casting="unsafe")
        return planes.reshape(-1, n_features)

    def get_params(self, deep: bool = True) -> dict:
        """What ``SeparatedBitPlanDecoder`` needs to undo the encoding (lightonml's contract:
        ``SeparatedBitPlanDecoder(**encoder.get_params())``): the precision and the
        magnitudes, scaled for the decoder's power-of-two weights."""
        _require_fitted(self, "magnitude_p_")
        # The decoder sums planes with weights 0.5**k, i.e. level / 2**(precision-1), while
        # levels stand for value / magnitude * (2**precision - 1).
        dequantization = 2 * (1 - 0.5 ** self.precision)
        return {"precision": self.precision,
                "magnitude_p": self.magnitude_p_ / dequantization,
                "magnitude_n": self.magnitude_n_ / dequantization}

    def __sklearn_clone__(self):
        # get_params serves the decoder, so scikit-learn's generic clone cannot be used
        return type(self)(precision=self.precision, clip=self.clip)

class SeparatedBitPlanDecoder(BaseTransformer):
    """Recombines the projections of ``SeparatedBitPlanEncoder``'s bit planes into projections
    of the encoded values: (sides * n_samples * precision, n_out) → (n_samples, n_out).

    Build it from the encoder: ``SeparatedBitPlanDecoder(**encoder.get_params())``.
    """

    def __init__(self, precision, magnitude_p=1, magnitude_n=0, decoding_decay=0.5):
        self.precision = precision
        self.magnitude_p = magnitude_p
        self.magnitude_n = magnitude_n
        self.decoding_decay = decoding_decay

    @_keeps_input_kind
    def transform(self, X):
        X = np.asarray(X)
        _check_ndim(X, type(self).__name__, exactly_2d=True)
        magnitudes = [m for m in (self.magnitude_p, -self.magnitude_n) if m != 0] or [0]
        n_rows, n_out = X.shape
        rows_per_sample = len(magnitudes) * self.precision
        if n_rows % rows_per_sample:
            raise ValueError(f"{n_rows} rows are not a whole number of samples of "
                             f"{rows_per_sample} bit planes; build the decoder with "
                             "SeparatedBitPlanDecoder(**encoder.get_params())")
        dtype = np.result_type(X.dtype, np.float32)
        planes = X.reshape(len(magnitudes), n_rows // rows_per_sample, self.precision, n_out)
        decoded = np.zeros((n_rows // rows_per_sample, n_out), dtype)
        # sum over sides and planes of magnitude * decay**plane * projection
        for side, magnitude in enumerate(magnitudes):
            for plane in range(self.precision):
                weight = dtype.type(magnitude * self.decoding_decay ** plane)
                decoded += weight * planes[side, :, plane]
        return decoded


#: lightonml's name for the decorator that runs a transform on numpy data and gives torch
#: tensors back to torch callers.
preserve_type = _keeps_input_kind


def _float32_bit_indices(sign_bit, exp_bits, mantissa_bits) -> np.ndarray:
    """Which bits of a float32 to keep, numbered from the most significant (0: the sign,
    1-8: the exponent, 9-31: the mantissa): the sign, the top ``exp_bits`` of the exponent,
    the top ``mantissa_bits`` of the mantissa."""
    if isinstance(exp_bits, bool) or not isinstance(exp_bits, int | np.integer) \
            or not 0 <= exp_bits <= 8:
        raise ValueError(f"exp_bits must be an integer from 0 to 8, got {exp_bits!r}")
    if isinstance(mantissa_bits, bool) or not isinstance(mantissa_bits, int | np.integer) \
            or not 0 <= mantissa_bits <= 23:
        raise ValueError(f"mantissa_bits must be an integer from 0 to 23, got {mantissa_bits!r}")
    kept = ([0] if sign_bit else []) + list(range(1, 1 + exp_bits)) \
        + list(range(9, 9 + mantissa_bits))
    if not kept:
        raise ValueError("keep at least one bit: sign_bit, exp_bits or mantissa_bits")
    return np.array(kept)


def _float32_bits(X: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """(..., n_features, len(indices)) uint8: the chosen bits of each value as float32."""
    words = np.ascontiguousarray(X, dtype=np.float32).view(np.uint32)
    shifts = (31 - indices).astype(np.uint32)
    return ((words[..., None] >> shifts) & 1).astype(np.uint8)


class Float32Encoder(BaseTransformer):
    """Bits of the float32 representation, as bit planes stacked along the samples: each
    sample becomes ``n_bits`` rows (the kept bits, most significant first: sign, exponent,
    mantissa) of its ``n_features`` values. Output: (n_samples * n_bits, n_features).

    Values are cast to float32 first (lightonml read the bytes of float64 input as if they
    were float32).

    Parameters
    ----------
    sign_bit : bool
        Keep the sign bit.
    exp_bits : int
        How many of the 8 exponent bits to keep, from the most significant.
    mantissa_bits : int
        How many of the 23 mantissa bits to keep, from the most significant.
    """

    def __init__(self, sign_bit=True, exp_bits=8, mantissa_bits=23):
        self.indices = _float32_bit_indices(sign_bit, exp_bits, mantissa_bits).tolist()
        self.sign_bit = sign_bit
        self.exp_bits = exp_bits
        self.mantissa_bits = mantissa_bits
        self.n_bits = len(self.indices)

    @_keeps_input_kind
    def transform(self, X):
        _check_ndim(X, type(self).__name__, exactly_2d=True)
        _reject_nan(X, type(self).__name__)
        bits = _float32_bits(X, np.array(self.indices))  # (n_samples, n_features, n_bits)
        return np.ascontiguousarray(bits.transpose(0, 2, 1)).reshape(-1, X.shape[1])


class ConcatenatedFloat32Encoder(Float32Encoder):
    """Like ``Float32Encoder``, with each value's kept bits side by side along the features:
    output (n_samples, n_features * n_bits), the bits of feature 0, then of feature 1, …"""

    @_keeps_input_kind
    def transform(self, X):
        _check_ndim(X, type(self).__name__, exactly_2d=True)
        _reject_nan(X, type(self).__name__)
        bits = _float32_bits(X, np.array(self.indices))
        return bits.reshape(X.shape[0], -1)


class MixingBitPlanDecoder(BaseTransformer):
    """Recombines the projections of bit planes stacked along the samples (``Float32Encoder``,
    and the bit planes of lightonml < 1.4): (n_samples * n_bits, n_out) → (n_samples, n_out),
    plane k weighted by ``decoding_decay ** k``.

    lightonml 1.4 removed it, but its 1.4.3 notebooks and bit-plane tutorial still use it.

    Parameters
    ----------
    n_bits : int
        Bit planes per sample, as encoded.
    decoding_decay : float
        Weight ratio between consecutive planes (0.5 for planes most significant first).
    """

    def __init__(self, n_bits=8, decoding_decay=0.5):
        self.n_bits = n_bits
        self.decoding_decay = decoding_decay

    @_keeps_input_kind
    def transform(self, X):
        planes, weights = _weighted_planes(self, X)
        return np.einsum("spf,p->sf", planes.astype(np.float32, copy=False), weights)


def _weighted_planes(decoder, X):
    """(samples, planes, outputs) view of bit-plane outputs, and each plane's weight."""
    X = np.asarray(X)
    _check_ndim(X, type(decoder).__name__, exactly_2d=True)
    n_rows, n_out = X.shape
    if n_rows % decoder.n_bits:
        raise ValueError(f"{n_rows} rows are not a whole number of samples of "
                         f"n_bits={decoder.n_bits} planes; use the encoder's n_bits")
    weights = (decoder.decoding_decay ** np.arange(decoder.n_bits)).astype(np.float32)
    return X.reshape(n_rows // decoder.n_bits, decoder.n_bits, n_out), weights
