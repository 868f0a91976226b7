"""Checking and shaping what users pass to ``fit``/``transform``.

Every check runs on the whole input and costs a few vectorized passes, small next to the
projection itself. Each error says what was wrong and what to do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .tensors import is_tensor, to_numpy


@dataclass(frozen=True)
class InputTraits:
    """What a fit fixes about inputs: feature count/shape and packing."""

    n_features: int | tuple[int, int]
    packed: bool = False
    is_2d: bool = False

    @property
    def n_features_s(self) -> int:
        """Total number of features (lightonml's name)."""
        if isinstance(self.n_features, tuple):
            return int(np.prod(self.n_features))
        return int(self.n_features)

    @property
    def feature_ndim(self) -> int:
        """How many trailing dimensions of an input hold features."""
        return 2 if self.is_2d and not self.packed else 1


@dataclass
class PreparedInput:
    """A validated input, flattened to rows × n_features, plus how to shape outputs.

    ``rows`` keeps a compact dtype (uint8 for bool, integer and packed input, float32 for
    floats), a view of the input where possible: a batch of hardware-sized uint8 inputs is not
    copied into float32 (backends convert tile by tile)."""

    rows: np.ndarray
    batch_shape: tuple[int, ...]
    input_shape: tuple[int, ...]
    n_ones: np.ndarray
    is_tensor: bool


def as_array(X) -> tuple[np.ndarray, bool]:
    """numpy view of ``X`` and whether it was a torch tensor (detached, moved to the CPU)."""
    if is_tensor(X):
        return to_numpy(X), True
    if isinstance(X, np.ndarray):
        return X, False
    try:
        array = np.asarray(X)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"input must be an array of 0/1 values, got {type(X).__name__}") from exc
    return array, False


def check_numeric(X: np.ndarray) -> None:
    if X.dtype.kind not in "biuf":
        raise ValueError(f"input has dtype {X.dtype}; the OPU takes 0/1 values (bool, integer "
                         "or float) or bit-packed uint8. Encode other data first, e.g. with "
                         "opu_kernel.encoding.BinaryThresholdEncoder")


def traits_for_fit(X, n_features, packed: bool, is_2d: bool) -> InputTraits:
    """Input traits from a fit's sample ``X`` or its explicit ``n_features``."""
    if X is not None:
        array, _ = as_array(X)
        check_numeric(array)
        min_ndim = 2 if is_2d and not packed else 1
        if array.ndim < min_ndim:
            raise ValueError(f"fit2d needs inputs of at least 2 dimensions, got shape "
                             f"{array.shape}; use fit1d for vectors")
        if packed:
            if is_2d:
                if n_features is None:
                    raise ValueError("packed 2D input needs n_features=(height, width) (the "
                                     "shape of one unpacked input)")
                n_features = tuple(int(n) for n in n_features)
            else:
                n_features = 8 * array.shape[-1] if n_features is None else int(n_features)
        else:
            n_features = tuple(array.shape[-2:]) if is_2d else int(array.shape[-1])
    elif n_features is None:
        raise ValueError("fit needs either X (a sample input) or n_features")
    elif is_2d:
        if np.ndim(n_features) != 1 or len(n_features) != 2:
            raise ValueError(f"fit2d's n_features must be (height, width), got {n_features!r}")
        n_features = tuple(int(n) for n in n_features)
    else:
        if np.ndim(n_features) != 0:
            raise ValueError(f"fit1d's n_features must be an int, got {n_features!r}; use "
                             "fit2d for 2D features")
        n_features = int(n_features)
    traits = InputTraits(n_features, bool(packed), bool(is_2d))
    if traits.n_features_s < 1:
        raise ValueError(f"n_features must be positive, got {n_features!r}")
    return traits


def check_binary(X: np.ndarray) -> None:
    """Raise a ValueError unless every value of ``X`` is 0 or 1."""
    if X.dtype == np.bool_:
        return
    if X.dtype.kind in "iu":
        # Viewed as unsigned, negative values become large, so one max() covers both bounds.
        if X.size and X.view(X.dtype.str.replace("i", "u")).max() > 1:
            bad = X[(X != 0) & (X != 1)]
            raise ValueError(non_binary_message(bad))
        return
    not_binary = np.count_nonzero(X * (X - 1))
    if not_binary:
        if np.isnan(X).any():
            raise ValueError("input contains NaN; the OPU takes 0/1 values. Replace missing "
                             "values (e.g. np.nan_to_num) before encoding")
        raise ValueError(non_binary_message(X[(X != 0) & (X != 1)]))


def non_binary_message(bad: np.ndarray) -> str:
    examples = ", ".join(str(v) for v in np.unique(bad)[:3])
    return (f"input is not binary: {bad.size} values are neither 0 nor 1 (e.g. {examples}). "
            "Encode it first, e.g. BinaryThresholdEncoder().fit_transform(X) or another "
            "encoder from opu_kernel.encoding")


def prepare(X, traits: InputTraits, max_n_features: int) -> PreparedInput:
    """Validate ``X`` against the fitted ``traits`` and flatten it to rows of 0/1 values."""
    array, tensor = as_array(X)
    check_numeric(array)
    n_features = traits.n_features_s
    if n_features > max_n_features:
        raise ValueError(too_many_features(n_features, max_n_features))
    if traits.packed:
        expected = -(-n_features // 8)
        if array.dtype != np.uint8:
            raise ValueError(f"packed input must be uint8 (np.packbits), got {array.dtype}")
        if array.ndim < 1 or array.shape[-1] != expected:
            raise ValueError(f"packed input must have {expected} bytes per input for "
                             f"{n_features} features, got shape {array.shape}; pack with "
                             "np.packbits(X, axis=-1) or refit with the right n_features")
        feature_shape = (expected,)
    elif traits.is_2d:
        feature_shape = tuple(traits.n_features)
    else:
        feature_shape = (n_features,)
    nd = len(feature_shape)
    if array.ndim < nd or array.ndim > nd + 2:
        kind = "2D inputs" if traits.is_2d and not traits.packed else "vectors"
        raise ValueError(f"input has {array.ndim} dimensions (shape {array.shape}); expected "
                         f"{kind} of shape {feature_shape}, or a batch of them (up to "
                         f"{nd + 2} dimensions)")
    if array.shape[array.ndim - nd:] != feature_shape:
        got = array.shape[array.ndim - nd:]
        if len(got) == 1 and not traits.packed and got[0] > max_n_features:
            raise ValueError(too_many_features(got[0], max_n_features))
        raise ValueError(f"input has {got} features per input but the OPU was fitted for "
                         f"{feature_shape}; refit with opu.fit1d/fit2d on this data")
    batch_shape = array.shape[: array.ndim - nd]
    if 0 in batch_shape:
        raise ValueError(f"input batch is empty (shape {array.shape}); pass at least one input")
    if traits.packed:
        flat = np.unpackbits(array.reshape(-1, feature_shape[0]), axis=-1, count=n_features)
    else:
        flat = array.reshape(-1, n_features)
        check_binary(flat)
    if flat.dtype == np.bool_:
        rows = np.ascontiguousarray(flat).view(np.uint8)
    elif flat.dtype.kind in "iu":
        rows = np.ascontiguousarray(flat, dtype=np.uint8)  # checked: 0/1 only
    else:
        rows = np.ascontiguousarray(flat, dtype=np.float32)
    # values are 0/1: a sum counts the ones, buffered (count_nonzero(axis=1) would allocate a
    # boolean copy of the whole batch)
    n_ones = rows.sum(axis=1, dtype=np.int64)
    return PreparedInput(rows, tuple(batch_shape), tuple(array.shape), n_ones, tensor)


def too_many_features(n_features: int, max_n_features: int) -> str:
    return (f"input's number of features ({n_features}) can't be greater than "
            f"max_n_features ({max_n_features}); create the OPU with "
            f"OPU(max_n_features={n_features}) or set opu.max_n_features")
