"""Stands for LightOn's ``examples/input_output.py``: the input shapes ``fit1d``/``fit2d``
and ``transform`` accept and the output shapes they give (batches of vectors, single vectors,
2D inputs, batches of batches, bit-packed 1D and 2D, raw inputs of the device's size, online
mode), on an OPU that stands for the device."""

import numpy as np
import pytest

from .common import random_bits


@pytest.fixture
def opu(lightonml):
    return lightonml.OPU(n_components=20)


def test_vectors(opu):
    batch = random_bits((50, 1000), dtype=bool)
    assert opu.fit_transform1d(batch).shape == (50, 20)
    other = random_bits((50, 1000), seed=1, dtype=bool)
    opu.fit1d(batch)
    assert opu.transform(batch).shape == opu.transform(other).shape == (50, 20)
    assert opu.linear_transform(batch).shape == (50, 20)
    opu.fit1d(n_features=1000)
    assert np.array_equal(opu.transform(batch[:3])[0], opu.transform(batch[0]))
    assert opu.fit_transform1d(batch[0]).shape == (20,)


def test_2d_inputs_and_batches_of_batches(opu):
    assert opu.fit_transform2d(random_bits((50, 13, 10), dtype=bool)).shape == (50, 20)
    # a 2D batch of 1D vectors, 3000 features each (beyond max_n_features=1000)
    assert opu.fit_transform1d(random_bits((3, 4, 3000), dtype=bool)).shape == (3, 4, 20)


def test_packed_inputs(opu):
    batch = random_bits((50, 1000), dtype=bool)
    packed = np.packbits(batch, axis=1)
    assert packed.shape == (50, 125)
    y_packed = opu.fit_transform1d(packed, packed=True)
    assert np.array_equal(y_packed, opu.fit_transform1d(batch))
    two_d = random_bits((50, 13, 10), dtype=bool)
    packed_2d = np.packbits(two_d.reshape(50, -1), axis=1)
    assert opu.fit_transform2d(packed_2d, packed=True, n_2d_features=(13, 10)).shape == (50, 20)


def test_raw_inputs_of_the_device_size(opu):
    shape = tuple(opu.device.input_shape)
    assert shape == (1140, 912)
    raw_2d = random_bits(shape, dtype=bool)
    assert opu.fit_transform1d(raw_2d.reshape(-1)).shape == (20,)
    assert opu.fit_transform2d(raw_2d).shape == (20,)
    many = random_bits((3, *shape), seed=1, dtype=bool)
    assert opu.fit_transform2d(many).shape == (3, 20)


def test_online_mode(opu):
    opu.fit1d(n_features=1200, online=True)
    assert opu.transform(random_bits(1200, dtype=bool)).shape == (20,)
    opu.fit2d(n_features=(50, 50), online=True)
    assert opu.transform(random_bits((50, 50), dtype=bool)).shape == (20,)
