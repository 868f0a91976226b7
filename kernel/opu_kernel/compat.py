"""Make ``import lightonml`` resolve to opu_kernel, so LightOn's notebooks run unchanged.

The established pattern of ``pymysql.install_as_MySQLdb()``: an import hook maps each
``lightonml.*`` module that we provide onto ours, lazily (``lightonml.projections.torch``
imports torch only when asked for).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys

LIGHTONML_VERSION = "1.4.3"

#: lightonml module → the opu_kernel module that provides its API.
MODULE_ALIASES = {
    "lightonml": "opu_kernel.lightonml_api",
    "lightonml.opu": "opu_kernel.opu",
    "lightonml.context": "opu_kernel.context",
    "lightonml.types": "opu_kernel.types",
    "lightonml.encoding": "opu_kernel.encoding",
    "lightonml.encoding.base": "opu_kernel.encoding.base",
    "lightonml.projections": "opu_kernel.projections",
    "lightonml.projections.sklearn": "opu_kernel.projections.sklearn",
    "lightonml.projections.torch": "opu_kernel.projections.torch",
}


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target: str):
        self.target = target

    def create_module(self, spec):
        return importlib.import_module(self.target)

    def exec_module(self, module):
        """The target module ran when it was imported."""


class LightonmlAliasFinder(importlib.abc.MetaPathFinder):
    """Resolves ``lightonml`` and its submodules to opu_kernel's."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "lightonml" and not fullname.startswith("lightonml."):
            return None
        alias = MODULE_ALIASES.get(fullname)
        if alias is None:
            raise ModuleNotFoundError(
                f"{fullname} is not provided by opu_kernel's lightonml compatibility layer; "
                "available: " + ", ".join(sorted(MODULE_ALIASES)), name=fullname)
        is_package = alias.rsplit(".", 1)[-1] in ("encoding", "projections", "lightonml_api")
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(alias),
                                              is_package=is_package)


def installed() -> bool:
    return any(isinstance(finder, LightonmlAliasFinder) for finder in sys.meta_path)


def install_as_lightonml() -> None:
    """Let ``from lightonml import OPU`` (and lightonml's other public modules) use opu_kernel.

    Refuses when the real lightonml is importable: that one would be shadowed silently.
    """
    if installed():
        return
    loaded = sys.modules.get("lightonml")
    if loaded is not None and not loaded.__name__.startswith("opu_kernel"):
        raise RuntimeError("the real lightonml is already imported; opu_kernel will not "
                           "replace it. Use one or the other in a process")
    if loaded is None and importlib.util.find_spec("lightonml") is not None:
        origin = importlib.util.find_spec("lightonml").origin
        raise RuntimeError(f"the real lightonml is installed ({origin}); opu_kernel will not "
                           "shadow it. Uninstall it (pip uninstall lightonml) to use "
                           "opu_kernel under that name, or import opu_kernel directly")
    sys.meta_path.insert(0, LightonmlAliasFinder())
