"""Tests of the lightonml names, one module per piece of material LightOn ships with
lightonml 1.4.3 (its notebooks, examples, bit-plane tutorial and ``opu_test``): each
exercises the API paths that piece uses, on small data, through ``import lightonml``.

None of LightOn's code is copied here; the module docstrings say which material they
stand for.
"""

import importlib
import logging

import pytest

import opu_kernel


@pytest.fixture(scope="session")
def lightonml():
    """``import lightonml``, resolved to opu_kernel's compatibility layer."""
    opu_kernel.install_as_lightonml()
    return importlib.import_module("lightonml")


@pytest.fixture(autouse=True)
def quiet_standing_in(caplog):
    """The one-time 'simulator answers as the device' line is not what these tests check."""
    caplog.set_level(logging.ERROR, logger="opu_kernel")


@pytest.fixture
def data_dir(lightonml, tmp_path, monkeypatch):
    """An empty lightonml data folder (env LIGHTONML_DATA_DIR)."""
    monkeypatch.setenv("LIGHTONML_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "data").mkdir()
    return tmp_path / "data"
