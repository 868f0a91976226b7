"""Stands for LightOn's ``examples/api-docs/newma_online.ipynb``: an OPU fitted by
``n_features`` in online mode, transforming one thermometer-encoded vector at a time, and
the float copies it keeps of the features."""

import numpy as np


def test_online_transforms_equal_batch_transforms(lightonml):
    rng = np.random.default_rng(0)
    X = rng.normal(0, 1, (40, 50))
    levels = (255 * (X - X.min()) / (X.max() - X.min())).astype("uint8")
    encoded = np.concatenate([levels > 65 + 5 * i for i in range(38)], axis=1).astype("uint8")
    assert encoded.shape == (40, 50 * 38)  # 1900 features: wider than max_n_features

    opu = lightonml.OPU(n_components=300)
    opu.fit1d(n_features=encoded.shape[1], online=True)
    online = np.stack([opu.transform(x).astype("float32") for x in encoded])
    assert online.shape == (40, 300)
    assert np.array_equal(online, opu.transform(encoded).astype("float32"))
