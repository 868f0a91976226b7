"""Fake of LightOn's vendor driver, for tests only (see tests/fakes/README.md)."""

__version__ = "0.0-fake"
