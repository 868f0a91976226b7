"""Make ``import lightonml`` resolve to opu_kernel, so LightOn's notebooks run unchanged.

The established pattern of ``pymysql.install_as_MySQLdb()``: an import hook maps each
``lightonml.*`` module onto the same path under ``opu_kernel.lightonml_compat``, lazily
(``lightonml.projections.torch`` imports torch only when asked for). The module objects are
shared: ``lightonml.opu`` *is* ``opu_kernel.lightonml_compat.opu``.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys

LIGHTONML_VERSION = "1.4.3"

#: The package that provides lightonml's modules: ``lightonml.X.Y`` is ``SHIM.X.Y``.
SHIM = "opu_kernel.lightonml_compat"


def shim_name(fullname: str) -> str:
    return SHIM + fullname[len("lightonml"):]


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target: str):
        self.target = target

    def create_module(self, spec):
        return importlib.import_module(self.target)

    def exec_module(self, module):
        """The target module ran when it was imported."""


class LightonmlAliasFinder(importlib.abc.MetaPathFinder):
    """Resolves ``lightonml`` and its submodules to opu_kernel's shim package."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "lightonml" and not fullname.startswith("lightonml."):
            return None
        alias = shim_name(fullname)
        try:
            spec = importlib.util.find_spec(alias)
        except ModuleNotFoundError:
            spec = None
        if spec is None:
            raise ModuleNotFoundError(
                f"{fullname} is not provided by opu_kernel's lightonml compatibility layer "
                "(it has every public module of lightonml 1.4.3: "
                + ", ".join(public_modules()) + ")", name=fullname)
        return importlib.machinery.ModuleSpec(
            fullname, _AliasLoader(alias), is_package=spec.submodule_search_locations is not None)


def public_modules() -> list[str]:
    """The lightonml modules the shim provides."""
    import pkgutil

    shim = importlib.import_module(SHIM)
    names = ["lightonml"]
    for info in pkgutil.walk_packages(shim.__path__, prefix="lightonml."):
        names.append(info.name)
    return sorted(names)


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
