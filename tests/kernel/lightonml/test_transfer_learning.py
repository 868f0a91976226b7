"""Stands for LightOn's ``examples/api-docs/transfer_learning.ipynb``: the data folder
(``lightonml.utils.get_ml_data_dir_path``), ``Float32Encoder`` on convolutional features, an
unfitted ``OPUMap``, ``MixingBitPlanDecoder`` with ``fit``, and a classifier. (The notebook's
VGG16 features need torchvision and a download; random features stand in for them.)"""

import json

import numpy as np
import pytest
from sklearn.linear_model import RidgeClassifier


def test_the_data_folder_comes_from_env_setting_or_config(lightonml, tmp_path, monkeypatch):
    from lightonml.utils import get_ml_data_dir_path

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("LIGHTONML_DATA_DIR", raising=False)
    monkeypatch.setattr("lightonml.utils._config_files",
                        lambda: [tmp_path / ".lighton.json"])
    lightonml.set_ml_data_dir("")
    with pytest.raises(FileNotFoundError, match="set_ml_data_dir"):
        get_ml_data_dir_path()
    (tmp_path / ".lighton.json").write_text(json.dumps({"ml_data_path": "/from/config"}))
    assert str(get_ml_data_dir_path()) == "/from/config"
    lightonml.set_ml_data_dir(tmp_path / "set")
    try:
        assert get_ml_data_dir_path() == tmp_path / "set"
        assert lightonml.get_ml_data_dir() == str(tmp_path / "set")
        monkeypatch.setenv("LIGHTONML_DATA_DIR", "/from/env")
        assert str(get_ml_data_dir_path()) == "/from/env"
    finally:
        lightonml.set_ml_data_dir("")


def test_float32_bits_through_the_opu_and_back(lightonml):
    from lightonml.encoding.base import Float32Encoder, MixingBitPlanDecoder
    from lightonml.projections.sklearn import OPUMap

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    features = np.abs(rng.normal(0, 1, (200, 64))).astype("float32")
    features[:, :8] += 6.0 * y[:, None]  # the class sets the exponent of 8 features
    encoder = Float32Encoder(sign_bit=False, exp_bits=2, mantissa_bits=0)
    encoder.fit(features)
    bits = encoder.transform(features)
    assert bits.shape == (400, 64) and bits.dtype == np.uint8
    # a sample's rows: the exponent's two most significant bits (bits 30 and 29 of the word);
    # for values in [2, 2**65) the top bit is 1, for [2**-62, 2) it is 0
    assert np.array_equal(bits[0::2], (features >= 2).astype(np.uint8))
    assert np.array_equal(bits[1::2], (features.view(np.uint32) >> 29 & 1).astype(np.uint8))
    with pytest.warns(UserWarning, match="not fitted"):
        projected = OPUMap(n_components=500).transform(bits)
    decoder = MixingBitPlanDecoder(n_bits=2)
    decoder.fit(projected)
    decoded = decoder.transform(projected)
    assert decoded.shape == (200, 500) and decoded.dtype == np.float32
    assert np.allclose(decoded, projected[0::2] + 0.5 * projected[1::2].astype(np.float32))
    classifier = RidgeClassifier(alpha=10).fit(decoded[:150], y[:150])
    assert classifier.score(decoded[150:], y[150:]) > 0.9


def test_concatenated_float32_encoder_lays_bits_along_features(lightonml):
    from lightonml.encoding.base import ConcatenatedFloat32Encoder, Float32Encoder

    X = np.array([[1.0, -2.5], [0.15625, 3.0]], dtype=np.float32)
    separated = Float32Encoder().transform(X)  # all 32 bits, planes along the samples
    concatenated = ConcatenatedFloat32Encoder().transform(X)
    assert separated.shape == (64, 2) and concatenated.shape == (2, 64)
    words = X.view(np.uint32)
    expected = np.array([[(int(w) >> (31 - b)) & 1 for w in row for b in range(32)]
                         for row in words], dtype=np.uint8)
    assert np.array_equal(concatenated, expected)
    assert np.array_equal(separated[:32, 1], expected[0, 32:])
