"""Stands for LightOn's ``examples/benchmark.py``: ``with OPU() as opu``, inputs as wide as
``opu.max_n_features`` (the device's), bit-packed ``fit_transform1d``, ``linear_transform``
after ``fit1d`` and an online loop of single transforms."""

import numpy as np


def test_benchmark_paths(lightonml):
    from lightonml import OPU, __version__

    assert __version__ == "1.4.3"
    with OPU(n_components=8) as opu:
        assert opu.is_open and opu.device.active
        assert opu.max_n_features == 1140 * 912
        ones = np.ones((2, opu.max_n_features), dtype=np.uint8)
        y = opu.fit_transform1d(np.packbits(ones, axis=1), packed=True)
        assert y.shape == (2, 8) and y.context.n_ones == 1140 * 912
        opu.n_components = 64
        ins = np.ones((10, 1000), dtype=np.uint8)
        opu.fit1d(ins)
        linear = opu.linear_transform(ins)
        assert linear.dtype == np.float32 and linear.shape == (10, 64)
        assert opu.fit_transform1d(ins).shape == (10, 64)
        opu.fit1d(n_features=1000, online=True)
        single = [opu.transform(ins[0]) for _ in range(5)]
        assert all(np.array_equal(s, single[0]) for s in single)
    assert not opu.is_open  # the with block closed what it opened
