"""Enumerations shared with lightonml's public API (``lightonml.types``)."""

from enum import Enum


class OutputRescaling(Enum):
    """How ``linear_transform`` rescales its output (same names as lightonml)."""

    variance = "variance"  #: divide by stdev * sqrt(n_features)
    norm = "norm"  #: divide by stdev * sqrt(n_components)
    none = "none"  #: raw output


class InputRoiStrategy(Enum):
    """How features are laid out on the input device (kept for API compatibility)."""

    full = "full"
    small = "small"
    auto = "auto"


class FeaturesFormat(Enum):
    """How features map onto the input device's pixels."""

    lined = 1
    macro_2d = 2
    none = 3


def as_enum(enum_cls: type[Enum], value, argument: str):
    """Accept an enum member or its name; raise a ValueError naming the choices otherwise."""
    if isinstance(value, enum_cls):
        return value
    try:
        return enum_cls[str(value)]
    except KeyError:
        choices = ", ".join(repr(m.name) for m in enum_cls)
        raise ValueError(f"{argument}={value!r} is not valid; choose one of {choices}") from None
