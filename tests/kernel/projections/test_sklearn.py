"""The scikit-learn OPUMap: parameters only in __init__, the same features as the OPU, and
Pipeline, clone and GridSearchCV."""

import importlib
import sys

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import RidgeClassifier
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

from opu_kernel import OPU
from opu_kernel.encoding import BinaryThresholdEncoder
from opu_kernel.errors import DeviceClosedError
from opu_kernel.projections.sklearn import OPUMap


def binary_inputs(n_samples=20, n_features=30, seed=0):
    return np.random.default_rng(seed).integers(0, 2, size=(n_samples, n_features),
                                                dtype=np.uint8)


def reference_opu(n_components, **options):
    return OPU(n_components=n_components, simulated=True, disable_pbar=True, **options)


def test_init_only_stores_parameters():
    opumap = OPUMap(n_components=40, simulated=True, linear=True)
    assert opumap.opu is None and not hasattr(opumap, "opu_")
    params = opumap.get_params()
    assert params["n_components"] == 40 and params["linear"] is True and params["ndims"] == 1


@pytest.mark.parametrize("linear", [False, True])
def test_features_are_the_opus(linear):
    X = binary_inputs()
    features = OPUMap(n_components=50, simulated=True, linear=linear).fit(X).transform(X)
    opu = reference_opu(50).fit1d(X)
    expected = opu.linear_transform(X) if linear else opu.transform(X)
    assert type(features) is np.ndarray and features.shape == (20, 50)
    np.testing.assert_array_equal(features, np.asarray(expected))


def test_two_dimensional_and_packed_inputs():
    X = binary_inputs(n_features=24).reshape(20, 4, 6)
    features = OPUMap(n_components=30, ndims=2, simulated=True).fit_transform(X)
    expected = reference_opu(30).fit2d(X).transform(X)
    np.testing.assert_array_equal(features, np.asarray(expected))

    packed = np.packbits(X.reshape(20, 24), axis=-1)
    packed_map = OPUMap(n_components=30, ndims=2, packed=True, n_2d_features=(4, 6),
                        simulated=True)
    np.testing.assert_array_equal(packed_map.fit_transform(packed), features)
    with pytest.raises(ValueError, match="ndims"):
        OPUMap(n_components=30, ndims=3, simulated=True).fit(X)


def test_max_n_features_defaults_to_the_input_size_and_is_enforced_when_given():
    X = binary_inputs(n_samples=3, n_features=1500)
    assert OPUMap(n_components=10, simulated=True).fit_transform(X).shape == (3, 10)
    with pytest.raises(ValueError, match="1500"):
        OPUMap(n_components=10, simulated=True, max_n_features=1000).fit(X)


def test_transform_before_fit_fits_on_the_input_with_a_warning():
    X = binary_inputs()
    with pytest.warns(UserWarning, match="not fitted"):
        features = OPUMap(n_components=20, simulated=True).transform(X)
    assert features.shape == (20, 20)


def test_clone_is_unfitted_and_shares_a_passed_opu():
    X = binary_inputs()
    opu = reference_opu(10)
    opumap = OPUMap(n_components=25, opu=opu, simulated=True).fit(X)
    assert opu.n_components == 25
    copy = clone(opumap)
    assert copy.opu is opu and not hasattr(copy, "opu_")
    assert copy.get_params() == opumap.get_params()


def test_maps_sharing_an_opu_each_keep_their_own_fit():
    # exact camera: a refit without a sample sets the 8-bit camera's exposure differently
    opu = reference_opu(10, camera="exact")
    small = OPUMap(n_components=15, opu=opu, simulated=True).fit(binary_inputs(n_features=10))
    large = OPUMap(n_components=35, opu=opu, simulated=True).fit(binary_inputs(n_features=20))
    X_small = binary_inputs(n_samples=4, n_features=10, seed=1)
    expected = reference_opu(15, camera="exact").fit1d(X_small).transform(X_small)
    np.testing.assert_array_equal(small.transform(X_small), np.asarray(expected))
    assert large.transform(binary_inputs(n_samples=4, n_features=20)).shape == (4, 35)


def test_passing_a_simulated_opu_with_simulated_false_warns():
    with pytest.warns(UserWarning, match="simulator is used"):
        OPUMap(n_components=5, opu=reference_opu(5), simulated=False).fit(binary_inputs())


def test_pipeline_and_grid_search():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(120, 16))
    y = (X[:, 0] > 0).astype(int)
    pipeline = make_pipeline(BinaryThresholdEncoder(threshold_enc=0.0),
                             OPUMap(n_components=200, simulated=True, camera="exact"),
                             RidgeClassifier())
    accuracy = pipeline.fit(X[:80], y[:80]).score(X[80:], y[80:])
    assert accuracy > 0.75  # the sign of feature 0 survives the random features
    search = GridSearchCV(pipeline, {"opumap__n_components": [50, 150],
                                     "binarythresholdencoder__greater_is_one": [True, False]},
                          cv=2)
    search.fit(X, y)
    assert len(search.cv_results_["params"]) == 4
    best_map = search.best_estimator_.named_steps["opumap"]
    assert best_map.opu_.n_components == search.best_params_["opumap__n_components"]


def test_open_close_and_context_manager():
    X = binary_inputs()
    opumap = OPUMap(n_components=10, simulated=True)
    with pytest.raises(RuntimeError, match="call fit"):
        opumap.close()
    opumap.fit(X)
    with opumap:
        opumap.transform(X)
    with pytest.raises(DeviceClosedError):
        opumap.transform(X)
    opumap.open()
    assert opumap.transform(X).shape == (20, 10)


def test_import_without_scikit_learn_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.base", None)
    monkeypatch.delitem(sys.modules, "opu_kernel.projections.sklearn")
    with pytest.raises(ImportError, match=r"pip install opu-kernel\[sklearn\]"):
        importlib.import_module("opu_kernel.projections.sklearn")


def test_default_simulated_takes_the_given_opu_silently_and_pbar_can_be_disabled():
    import warnings

    opu = reference_opu(20)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        OPUMap(n_components=20, opu=opu).fit(binary_inputs(n_features=10))
    created = OPUMap(n_components=20, simulated=True, disable_pbar=True)
    created.fit(binary_inputs(n_features=10))
    assert created.opu_.disable_pbar is True


def test_encoders_work_as_pipeline_steps():
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 12))
    encoding = make_pipeline(StandardScaler(), BinaryThresholdEncoder())
    bits = encoding.fit(X).transform(X)
    assert bits.dtype == np.uint8 and set(np.unique(bits)) <= {0, 1}
    full = make_pipeline(StandardScaler(), BinaryThresholdEncoder(),
                         OPUMap(n_components=16, simulated=True))
    assert full.fit(X).transform(X).shape == (30, 16)
