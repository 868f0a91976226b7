"""``lightonml.utils``: the data folder, model pickling and small data helpers."""

from __future__ import annotations

import json
import os
import pickle
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

#: Seconds a download may wait for the server before giving up (never a hang).
DOWNLOAD_TIMEOUT_S = 30


def _config_files() -> list[Path]:
    return [Path.home() / ".lighton.json", Path("/etc/lighton.json"),
            Path("/etc/lighton/host.json")]


def get_ml_data_dir_path() -> Path:
    """The datasets' folder, from the first of: env ``LIGHTONML_DATA_DIR``,
    ``lightonml.set_ml_data_dir()``, the ``ml_data_path`` of ``~/.lighton.json``,
    ``/etc/lighton.json`` or ``/etc/lighton/host.json``."""
    from . import get_ml_data_dir

    for location in (os.environ.get("LIGHTONML_DATA_DIR"), get_ml_data_dir()):
        if location:
            return Path(location)
    for config in _config_files():
        if config.exists():
            data_path = json.loads(config.read_text()).get("ml_data_path")
            if data_path:
                return Path(data_path)
    raise FileNotFoundError(
        "lightonml's data folder is not set: call lightonml.set_ml_data_dir('/some/folder'), "
        "set LIGHTONML_DATA_DIR, or put {\"ml_data_path\": \"/some/folder\"} in "
        "~/.lighton.json")


def download(url: str, directory) -> Path:
    """Download ``url`` into ``directory`` (the file keeps its name); gives up after
    ``DOWNLOAD_TIMEOUT_S`` without an answer. Needs internet access, which hub servers may
    not have: then download elsewhere and upload the file into ``directory``."""
    target = Path(directory) / url.split("/")[-1]
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            data = response.read()
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise OSError(f"could not download {url} ({exc}); download it on a machine with "
                      f"internet access and put it in {directory}") from exc
    target.write_bytes(data)
    return target


def load_model(model_path):
    """The object pickled at ``model_path`` (only load files you trust: unpickling runs
    code)."""
    if not os.path.exists(model_path):
        raise FileNotFoundError(f"{model_path} doesn't exist")
    with open(model_path, "rb") as stream:
        return pickle.load(stream)


def save_model(model, model_name, model_path) -> None:
    """Pickle ``model`` into ``model_path/model_name`` (creating the folder)."""
    print("Saving model...")
    os.makedirs(model_path, exist_ok=True)
    with open(os.path.join(model_path, model_name), "wb") as stream:
        pickle.dump(model, stream)


def select_subset(X, y, classes=range(10), ratio=1, random_state=None):
    """The samples of ``X``, ``y`` whose label is in ``classes``; with ``ratio`` < 1, a
    random fraction of them (without replacement)."""
    selected = np.flatnonzero(np.isin(y, np.asarray(list(classes))))
    if ratio != 1:
        rng = np.random.RandomState(random_state) if not isinstance(
            random_state, np.random.RandomState) else random_state
        selected = rng.choice(selected, size=int(len(selected) * ratio), replace=False)
    return X[selected], y[selected]


def load_data_from_numpy_archive(path_to_file):
    """((X_train, y_train), (X_test, y_test)) from an .npz with those four arrays."""
    if not os.path.exists(path_to_file):
        raise FileNotFoundError(f"{path_to_file} does not exist")
    data = np.load(path_to_file)
    return (data["X_train"], data["y_train"]), (data["X_test"], data["y_test"])


def cast_01_to_uint8(X):
    """Values in [0, 1] to uint8 in [0, 255] (rounded)."""
    return np.round(255 * np.asarray(X)).astype(np.uint8)
