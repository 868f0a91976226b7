"""Output context travels with the array."""

import pickle

import numpy as np

from opu_kernel.context import Context, ContextArray


def test_context_survives_slicing_ufuncs_and_pickling():
    context = Context(n_ones=4, backend="simulator", exposure_us=400.0)
    array = ContextArray(np.arange(6, dtype=np.float32).reshape(2, 3), context)
    assert array[1:].context is context
    assert (array * 2).context is context
    restored = pickle.loads(pickle.dumps(array))
    assert restored.context.n_ones == 4 and restored.context.backend == "simulator"
    np.testing.assert_array_equal(restored, array)


def test_context_repr_and_dict():
    context = Context(n_ones=3)
    assert "n_ones=3" in repr(context)
    assert context.as_dict()["duration_s"] is None
