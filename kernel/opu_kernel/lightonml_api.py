"""What ``import lightonml`` provides once ``install_as_lightonml()`` ran."""

import logging

from .compat import LIGHTONML_VERSION
from .opu import OPU

__version__ = LIGHTONML_VERSION
#: A package to the import system, so that ``lightonml.opu`` & co. can be found below it.
__path__: list[str] = []
__all__ = ["OPU", "get_verbose_level", "set_verbose_level"]

_verbose_level = 0


def set_verbose_level(verbose_level: int) -> None:
    """lightonml's verbosity (0 silent … 3 debug), mapped onto the 'opu_kernel' logger."""
    global _verbose_level
    _verbose_level = int(verbose_level)
    levels = {0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG, 3: logging.DEBUG}
    logging.getLogger("opu_kernel").setLevel(levels.get(_verbose_level, logging.DEBUG))


def get_verbose_level() -> int:
    return _verbose_level
