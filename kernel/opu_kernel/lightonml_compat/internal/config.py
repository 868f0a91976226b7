"""``lightonml.internal.config``: where an OPU's configuration lives (``/etc/lighton``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ...backends import hardware
from .utils import blank_fn

host_path = hardware.HOST_CONFIG
default_path = hardware.DEFAULT_CONFIG


def get_config_from(config_location: str, trace_fn=blank_fn) -> dict:
    """The JSON configuration at ``config_location``: an absolute path. (lightonml also
    fetched http URLs; we do not reach the network: download it and pass the file.)"""
    trace_fn(f"loading config from {config_location}")
    if config_location.startswith("/"):
        return json.loads(Path(config_location).read_text())
    if config_location.startswith("http"):
        raise ValueError(f"{config_location}: configurations are read from files here; "
                         "download it and pass its path")
    raise ValueError(f"{config_location!r} is not an absolute path to a configuration file")


def load_config(override_location: str = "", trace_fn=blank_fn) -> dict:
    """The OPU configuration: ``override_location``, else the file named by
    ``/etc/lighton/host.json`` ("opu_config"), else ``/etc/lighton/opu.json``."""
    if override_location:
        return get_config_from(str(override_location), trace_fn)
    if host_path.exists():
        location = json.loads(host_path.read_text())["opu_config"]
    else:
        location = str(default_path)
    return get_config_from(location, trace_fn)


def host_has_opu_config() -> bool:
    return host_path.exists() or default_path.exists()


def get_host_option(key: str, default: Any = None) -> Any:
    """An option of ``/etc/lighton/host.json``, or ``default``."""
    if host_path.exists():
        return json.loads(host_path.read_text()).get(key, default)
    return default


def opu_version(config_d: dict | None) -> str:
    """One line naming the OPU of a configuration: name, version, location, core type."""
    config_d = config_d or {}

    def get(key):
        return config_d.get(key, "NA")

    return (f"OPU {get('name')}-{get('version')}-{get('location')}; "
            f"core type {get('core_type')}, core version {get('core_version')}")
