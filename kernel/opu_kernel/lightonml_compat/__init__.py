"""What ``import lightonml`` provides once ``opu_kernel.install_as_lightonml()`` ran.

Every public module and name of lightonml 1.4.3 is here, in a module of the same path
(``lightonml.opu`` is ``opu_kernel.lightonml_compat.opu``…). Where lightonml's behaviour and
opu_kernel's own API differ, these names follow lightonml (see kernel/README.md, "lightonml
compatibility"): code written for lightonml gets lightonml's results.
"""

from __future__ import annotations

import logging

from ..compat import LIGHTONML_VERSION

__version__ = LIGHTONML_VERSION
__all__ = ["OPU", "get_debug_fn", "get_ml_data_dir", "get_print_fn", "get_trace_fn",
           "get_verbose_level", "set_ml_data_dir", "set_verbose_level", "__version__"]

_verbose_level = 0
_ml_data_dir = ""
_LEVELS = {0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG}
_log = logging.getLogger("opu_kernel")


def set_verbose_level(verbose_level: int) -> None:
    """lightonml's verbosity (0 silent, 1 info, 2 debug, 3 trace), mapped onto the
    'opu_kernel' logger."""
    global _verbose_level
    _verbose_level = int(verbose_level)
    _log.setLevel(_LEVELS.get(max(0, _verbose_level), logging.DEBUG))


def get_verbose_level() -> int:
    return _verbose_level


def get_ml_data_dir() -> str:
    """The data folder set with ``set_ml_data_dir`` ("" when unset)."""
    return _ml_data_dir


def set_ml_data_dir(value) -> None:
    """Set the folder of ``lightonml.datasets`` (env ``LIGHTONML_DATA_DIR`` still wins)."""
    global _ml_data_dir
    _ml_data_dir = "" if value is None else str(value)


def _blank(*args, **kwargs) -> None:
    """Logging below the verbosity: does nothing."""


def _logging_fn(threshold: int, level: int):
    if _verbose_level < threshold:
        return _blank

    def emit(message, *args, **kwargs):
        _log.log(level, str(message), *args)

    return emit


def get_debug_fn():
    """A function that logs at debug level when the verbosity is 2 or more, else does nothing."""
    return _logging_fn(2, logging.DEBUG)


def get_trace_fn():
    """A function that logs at debug level when the verbosity is 3, else does nothing."""
    return _logging_fn(3, logging.DEBUG)


def get_print_fn():
    """``print`` when the verbosity is 1 or more, else a function that does nothing."""
    return print if _verbose_level >= 1 else _blank


def __getattr__(name):
    # OPU is imported on first use, so that ``import lightonml`` stays as cheap as opu_kernel
    if name == "OPU":
        from .opu import OPU

        return OPU
    raise AttributeError(f"module 'lightonml' has no attribute {name!r}")
