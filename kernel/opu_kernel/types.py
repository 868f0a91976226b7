"""Enumerations shared with lightonml's public API (``lightonml.types``, ``lightonml.internal.types``).

Members and values are lightonml's (``OutputRescaling.norm.value == 2``), so an enum from
either library compares and pickles the same; names are accepted as strings too.
"""

from enum import Enum


class OutputRescaling(Enum):
    """How ``linear_transform`` rescales its output."""

    variance = 1  #: divide by stdev * sqrt(n_features)
    norm = 2  #: divide by stdev * sqrt(n_components)
    none = 3  #: raw output


class InputRoiStrategy(Enum):
    """How features are laid out on the input device (kept for API compatibility)."""

    full = 1
    small = 2
    auto = 3


class FeaturesFormat(Enum):
    """How features map onto the input device's pixels."""

    lined = 1
    macro_2d = 2
    auto = 3
    none = 4


class OutputRoiStrategy(Enum):
    """How the output region of the camera is chosen (hardware; kept for API compatibility)."""

    mid_width = 1
    mid_square = 2


class AcqState(Enum):
    """Acquisition state of a device."""

    stopped = 1
    batch = 2
    online = 3


def as_enum(enum_cls: type[Enum], value, argument: str):
    """An enum member from a member, an equal member of a same-named enum, or a name in any
    case ("norm", "NORM"); a ValueError naming the choices otherwise."""
    if isinstance(value, enum_cls):
        return value
    if isinstance(value, Enum) and type(value).__name__ == enum_cls.__name__:
        value = value.name
    if isinstance(value, str):
        try:
            return enum_cls[value.strip().lower()]
        except KeyError:
            pass
    choices = ", ".join(repr(m.name) for m in enum_cls)
    raise ValueError(f"{argument}={value!r} is not valid; choose one of {choices} "
                     f"(or {enum_cls.__name__}.<name>)")
