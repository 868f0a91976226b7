"""Stands for LightOn's ``examples/api-docs/kernels_and_random_features.ipynb``: the
``MNIST`` loader, a fixed-threshold ``BinaryThresholdEncoder`` used without ``fit``, a 2D
scikit-learn ``OPUMap`` fitted on images, and a linear classifier on the random features;
plus the old-IPython ``display`` import of its first cell."""

import gzip

import numpy as np
import pytest
from sklearn.linear_model import RidgeClassifier

from opu_kernel.extension import restore_core_display_names


def write_idx(path, array, magic):
    """An IDX file as MNIST ships them: a header, then the bytes."""
    header = magic.to_bytes(4, "big") + b"".join(n.to_bytes(4, "big") for n in array.shape)
    with gzip.open(path, "wb") as stream:
        stream.write(header + array.astype(np.uint8).tobytes())


def two_class_images(n, seed):
    """Images of a bright bar, vertical for class 0 and horizontal for class 1, with noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = rng.integers(0, 30, (n, 28, 28))
    for image, label in zip(X, y, strict=True):
        start = rng.integers(4, 20)
        if label:
            image[start:start + 4, :] = 230
        else:
            image[:, start:start + 4] = 230
    return X.astype(np.uint8), y.astype(np.uint8)


@pytest.fixture
def mnist_files(data_dir):
    folder = data_dir / "MNIST"
    folder.mkdir()
    (X_train, y_train), (X_test, y_test) = two_class_images(300, 0), two_class_images(100, 1)
    write_idx(folder / "train-images-idx3-ubyte.gz", X_train, 2051)
    write_idx(folder / "train-labels-idx1-ubyte.gz", y_train, 2049)
    write_idx(folder / "t10k-images-idx3-ubyte.gz", X_test, 2051)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", y_test, 2049)
    return (X_train, y_train), (X_test, y_test)


def test_mnist_reads_lightonmls_files(lightonml, mnist_files):
    from lightonml.datasets import MNIST

    (X_train, y_train), (X_test, y_test) = MNIST()
    assert X_train.shape == (300, 28, 28) and X_train.dtype == np.uint8
    assert np.array_equal(X_train, mnist_files[0][0]) and np.array_equal(y_test, mnist_files[1][1])


def test_a_missing_dataset_says_what_to_fetch_and_where(lightonml, data_dir):
    from lightonml.datasets import MNIST, DatasetNotFoundError

    with pytest.raises(DatasetNotFoundError) as info:
        MNIST()
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    assert str(data_dir / "MNIST") in message and "train-images-idx3-ubyte.gz" in message
    assert "https://ossci-datasets.s3.amazonaws.com/mnist/" in message
    assert not (data_dir / "MNIST").exists()  # nothing half-made, no download attempted


def test_random_features_classify_encoded_images(lightonml, mnist_files):
    from lightonml.datasets import MNIST
    from lightonml.encoding.base import BinaryThresholdEncoder
    from lightonml.projections.sklearn import OPUMap

    (X_train, y_train), (X_test, y_test) = MNIST()
    encoder = BinaryThresholdEncoder(threshold_enc=25)  # a number: no fit needed
    train_bits, test_bits = encoder.transform(X_train), encoder.transform(X_test)
    mapping = OPUMap(n_components=2000, ndims=2)
    train_features = mapping.fit_transform(train_bits)
    test_features = mapping.transform(test_bits)
    assert train_features.dtype == np.uint8 and train_features.shape == (300, 2000)
    classifier = RidgeClassifier().fit(train_features.astype("float32"), y_train)
    assert classifier.score(test_features.astype("float32"), y_test) > 0.9


def test_old_notebooks_import_display_from_ipython_core(monkeypatch):
    import IPython.core.display as core_display
    from IPython import display as public

    monkeypatch.delattr(core_display, "display", raising=False)
    restore_core_display_names()
    from IPython.core.display import HTML, display  # the notebook's first line

    assert display is public.display and HTML is public.HTML
