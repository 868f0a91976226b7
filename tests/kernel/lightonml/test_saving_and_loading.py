"""Stands for LightOn's ``examples/api-docs/saving_and_loading.ipynb``: pickling a fitted
OPU and the scikit-learn and torch ``OPUMap`` (``fitted`` survives)."""

import pickle

import numpy as np
import torch

from .common import random_bits


def test_a_pickled_opu_transforms_as_before(lightonml, tmp_path):
    opu = lightonml.OPU(n_components=200)
    train = random_bits((50, 300))
    opu.fit1d(train)
    before = opu.transform(train)
    path = tmp_path / "opu.pkl"
    path.write_bytes(pickle.dumps(opu))
    restored = pickle.loads(path.read_bytes())
    assert type(restored) is lightonml.OPU and restored.stands_for_device
    test = random_bits((50, 300), seed=1)
    assert np.array_equal(restored.transform(train), before)  # same matrix, same fit
    assert restored.transform(test).context.as_dict()["n_ones"] > 0


def test_a_pickled_simulated_opu_stays_lightonmls_simulator(lightonml):
    opu = lightonml.OPU(n_components=20, max_n_features=64, simulated=True)
    opu.fit1d(n_features=64)
    X = random_bits((3, 64))
    restored = pickle.loads(pickle.dumps(opu))
    assert restored.max_n_features == 64 and not restored.stands_for_device
    assert restored.transform(X).dtype == np.float32
    assert np.allclose(restored.transform(X), opu.transform(X))


def test_sklearn_opumap_fitted_survives_pickling(lightonml):
    from lightonml.projections.sklearn import OPUMap

    opu = lightonml.OPU(n_components=100)
    train = random_bits((30, 80))
    mapping = OPUMap(opu=opu, n_components=100)
    assert not mapping.fitted
    mapping.fit(train)
    assert mapping.fitted
    restored = pickle.loads(pickle.dumps(mapping))
    assert restored.fitted
    assert np.array_equal(restored.transform(train), mapping.transform(train))
    restored.close()


def test_torch_opumap_fitted_survives_pickling(lightonml):
    from lightonml.projections.torch import OPUMap

    mapping = OPUMap(n_components=100)
    mapping.fit(torch.from_numpy(random_bits((30, 80))))
    assert mapping.fitted
    restored = pickle.loads(pickle.dumps(mapping))
    assert restored.fitted and restored.n_components == 100
