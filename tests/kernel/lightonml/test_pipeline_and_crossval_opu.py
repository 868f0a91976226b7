"""Stands for LightOn's ``examples/api-docs/pipeline_and_crossval_OPU.ipynb``: a
scikit-learn ``Pipeline`` of ``BinaryThresholdEncoder``, a 2D ``OPUMap`` (device-standing
and ``simulated=True``), ``NoDecoding`` and a classifier; scoring and ``GridSearchCV``."""

import numpy as np
import pytest
from sklearn.linear_model import RidgeClassifier
from sklearn.model_selection import GridSearchCV, ShuffleSplit
from sklearn.pipeline import Pipeline

from .test_kernels_and_random_features import two_class_images


@pytest.mark.parametrize("simulated", [False, True])
def test_pipeline_scores_and_grid_search(lightonml, simulated):
    from lightonml.encoding.base import BinaryThresholdEncoder, NoDecoding
    from lightonml.projections.sklearn import OPUMap

    X, y = two_class_images(240, 2)
    if simulated:
        mapping = OPUMap(n_components=1500, simulated=True, max_n_features=1000, ndims=2)
    else:
        mapping = OPUMap(n_components=1500, ndims=2)
    pipe = Pipeline([("encoder", BinaryThresholdEncoder(threshold_enc=24)),
                     ("mapping", mapping), ("decoding", NoDecoding()),
                     ("classifier", RidgeClassifier())])
    assert list(pipe.named_steps) == ["encoder", "mapping", "decoding", "classifier"]
    if simulated:  # 28 × 28 = 784 features fit lightonml's simulator of 1000
        pipe.fit(X[:200], y[:200])
        assert pipe.named_steps["mapping"].opu_.transform(
            (X[:1] > 24).astype(np.uint8)).dtype == np.float32
    else:
        pipe.fit(X[:200], y[:200])
    assert pipe.score(X[200:], y[200:]) > 0.9
    grid = GridSearchCV(pipe, [{"classifier__alpha": 10.0 ** np.arange(-1, 1)}],
                        scoring="accuracy", cv=ShuffleSplit(n_splits=2, test_size=0.15,
                                                            random_state=0),
                        refit=False, return_train_score=True)
    grid.fit(X, y)
    assert len(grid.cv_results_["mean_test_score"]) == 2
    assert min(grid.cv_results_["mean_test_score"]) > 0.8
