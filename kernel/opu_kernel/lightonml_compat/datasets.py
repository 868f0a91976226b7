"""``lightonml.datasets``: loaders of common datasets from lightonml's data folder.

They read the files in lightonml's layout under ``lightonml.utils.get_ml_data_dir_path()``
(e.g. ``<folder>/MNIST/train-images-idx3-ubyte.gz``). Unlike lightonml they never download:
hub servers usually have no internet access, and a download that cannot connect would hang
the notebook. A missing dataset raises ``DatasetNotFoundError`` naming each file to fetch and
where to put it; ``lightonml.utils.download(url, folder)`` fetches one where the network is
reachable.
"""

from __future__ import annotations

import gzip
import itertools
import pickle
import tarfile
from pathlib import Path

import numpy as np

from .utils import get_ml_data_dir_path

__all__ = ["CIFAR10", "CIFAR100", "DatasetNotFoundError", "FashionMNIST", "MNIST", "STL10",
           "SignMNIST", "movielens100k", "movielens20m", "parse_line"]

MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
STL10_URL = "http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz"
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR100_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
MOVIELENS_URL = "https://grouplens.org/datasets/movielens/"


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are not in the data folder (the message says which, from where)."""


def _require(name: str, folder: Path, files, source: str) -> None:
    missing = [f for f in files if not (folder / f).exists()]
    if missing:
        raise DatasetNotFoundError(
            f"{name} is not in {folder}: missing {', '.join(missing)}. This loader does not "
            f"download. Fetch them from {source} (e.g. with lightonml.utils.download(url, "
            f"'{folder}') where the internet is reachable) and put them in {folder}; or "
            "point lightonml.set_ml_data_dir() at a folder that has them.")


def _idx(path: Path, offset: int) -> np.ndarray:
    with gzip.open(path, "rb") as stream:
        return np.frombuffer(stream.read(), np.uint8, offset=offset)


def _idx_dataset(name: str, url: str):
    folder = get_ml_data_dir_path() / name
    _require(name, folder, IDX_FILES, url)
    paths = [folder / f for f in IDX_FILES]
    X_train = _idx(paths[0], 16).reshape(-1, 28, 28)
    y_train = _idx(paths[1], 8)
    X_test = _idx(paths[2], 16).reshape(-1, 28, 28)
    y_test = _idx(paths[3], 8)
    return (X_train, y_train), (X_test, y_test)


def MNIST():  # noqa: N802 - lightonml's names
    """((X_train, y_train), (X_test, y_test)): uint8 images (60000, 28, 28), (10000, 28, 28)
    and their labels, from ``<data>/MNIST``."""
    return _idx_dataset("MNIST", MNIST_URL)


def FashionMNIST():  # noqa: N802
    """As ``MNIST``, from ``<data>/FashionMNIST``."""
    return _idx_dataset("FashionMNIST", FASHION_URL)


def SignMNIST():  # noqa: N802
    """((X_train, y_train), (X_test, y_test)): flattened uint8 images (n, 784) and labels
    0-25, from ``<data>/SignMNIST/sign_mnist_{train,test}.csv`` (Kaggle's)."""
    folder = get_ml_data_dir_path() / "SignMNIST"
    files = ("sign_mnist_train.csv", "sign_mnist_test.csv")
    _require("SignMNIST", folder, files,
             "https://www.kaggle.com/datamunge/sign-language-mnist (unzip it)")
    parts = []
    for name in files:
        data = np.genfromtxt(folder / name, dtype=np.uint8, skip_header=True, delimiter=",")
        parts.append((data[:, 1:], data[:, 0]))
    return parts[0], parts[1]


def _extracted(name: str, url: str, inner: str, files) -> Path:
    """The folder of an archive's files, extracted from the archive if it is there."""
    folder = get_ml_data_dir_path() / name
    archive = folder / url.split("/")[-1]
    if not all((folder / inner / f).exists() for f in files) and archive.exists():
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(folder, filter="data")
    _require(name, folder, [f"{inner}/{f}" for f in files], f"{url} (the archive, in "
             f"{folder}, is extracted on first use)")
    return folder / inner


def STL10(unlabeled=False):  # noqa: N802
    """((X_train, y_train), (X_test, y_test)) [, X_unlabeled]: uint8 images (n, 3, 96, 96)
    and labels, from ``<data>/STL10``."""
    files = ["train_X.bin", "test_X.bin", "train_y.bin", "test_y.bin"]
    folder = _extracted("STL10", STL10_URL, "stl10_binary",
                        files + (["unlabeled_X.bin"] if unlabeled else []))

    def images(name):
        return np.fromfile(folder / name, dtype=np.uint8).reshape(-1, 3, 96, 96)

    result = ((images("train_X.bin"), np.fromfile(folder / "train_y.bin", dtype=np.uint8)),
              (images("test_X.bin"), np.fromfile(folder / "test_y.bin", dtype=np.uint8)))
    return (*result, images("unlabeled_X.bin")) if unlabeled else result


def _unpickled(path: Path) -> dict:
    # CIFAR's "python version" files are pickles (read them only from the official archive)
    with open(path, "rb") as stream:
        return pickle.load(stream, encoding="latin1")


def CIFAR10():  # noqa: N802
    """((X_train, y_train), (X_test, y_test)): uint8 images (n, 3, 32, 32) and labels."""
    batches = [f"data_batch_{i}" for i in range(1, 6)]
    folder = _extracted("CIFAR10", CIFAR10_URL, "cifar-10-batches-py", batches + ["test_batch"])
    train = [_unpickled(folder / b) for b in batches]
    test = _unpickled(folder / "test_batch")
    X_train = np.concatenate([b["data"] for b in train]).reshape(-1, 3, 32, 32)
    y_train = np.concatenate([b["labels"] for b in train])
    return (X_train, y_train), (test["data"].reshape(-1, 3, 32, 32), np.asarray(test["labels"]))


def CIFAR100():  # noqa: N802
    """((X_train, y_train), (X_test, y_test)): uint8 images (n, 3, 32, 32), fine labels."""
    folder = _extracted("CIFAR100", CIFAR100_URL, "cifar-100-python", ["train", "test"])
    parts = [_unpickled(folder / name) for name in ("train", "test")]
    return tuple((p["data"].reshape(-1, 3, 32, 32), np.asarray(p["fine_labels"]))
                 for p in parts)


def parse_line(line: str, sep: str = ",") -> list[str]:
    """The first three fields of a line, stripped."""
    return [field.strip() for field in line.split(sep)][:3]


def _movielens(name: str, processed: bool, raw: str, sep: str, header):
    folder = get_ml_data_dir_path() / name
    if processed:
        _require(name, folder, ["ratings_mat.npy"],
                 f"{MOVIELENS_URL} (ratings_mat.npy is the user × movie ratings matrix, "
                 "built from the ratings file)")
        return np.load(folder / "ratings_mat.npy")
    _require(name, folder, [raw], MOVIELENS_URL)
    with open(folder / raw) as stream:
        ratings = [parse_line(line, sep) for line in itertools.islice(stream, 0, None)]
    if header:
        ratings.insert(0, header)
    return ratings


def movielens100k(processed=False):
    """MovieLens 100k from ``<data>/movielens-100k``: the rating rows of ``u.data`` (with a
    header row) or, ``processed``, the (943, 1682) ratings matrix ``ratings_mat.npy``."""
    return _movielens("movielens-100k", processed, "u.data", "\t",
                      ["userId", "movieId", "rating"])


def movielens20m(processed=False, id_to_movie=False):
    """MovieLens 20M from ``<data>/movielens-20m``: (ratings, id_to_movie), ratings as rows
    of ``ratings.csv`` or, ``processed``, the ratings matrix ``ratings_mat.npy``; with
    ``id_to_movie``, the rows of ``movies.csv`` (else None)."""
    ratings = _movielens("movielens-20m", processed, "ratings.csv", ",", None)
    mapping = None
    if id_to_movie:
        folder = get_ml_data_dir_path() / "movielens-20m"
        _require("movielens-20m", folder, ["movies.csv"], MOVIELENS_URL)
        with open(folder / "movies.csv") as stream:
            mapping = [parse_line(line) for line in stream]
    return ratings, mapping
