"""Metadata attached to every OPU output, compatible with ``lightonml.context``."""

from __future__ import annotations

import datetime as dt

import numpy as np

from .types import FeaturesFormat

#: Attributes beyond lightonml's, set by opu_kernel's transforms.
EXTRA_ATTRIBUTES = ("backend", "camera", "n_features", "n_components", "input_shape",
                    "saturated", "linear")


def from_epoch(datetime_or_epoch) -> dt.datetime:
    """A datetime from a datetime or an epoch in seconds (int or float)."""
    if isinstance(datetime_or_epoch, dt.datetime):
        return datetime_or_epoch
    if isinstance(datetime_or_epoch, int | float) and not isinstance(datetime_or_epoch, bool):
        return dt.datetime.fromtimestamp(datetime_or_epoch)
    raise ValueError(f"expected an epoch (seconds) or a datetime, got {datetime_or_epoch!r}")


def _pair(roi, what: str):
    if roi is None:
        return None, None
    try:
        upper, shape = roi
        return tuple(upper), tuple(shape)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be ((row, column), (height, width)), got {roi!r}") from None


class Context:
    """Describes how an output was acquired.

    The constructor and the attributes are lightonml's: ``Context(frametime, exposure,
    output_roi, start, end, gain, input_roi, n_ones, fmt_type, fmt_factor)`` gives
    ``frametime_us``, ``exposure_us``, ``output_roi_upper``/``_shape``, ``start``, ``end``,
    ``gain`` (also ``gain_dB``), ``input_roi_upper``/``_shape``, ``n_ones``, ``fmt_type``
    (a ``FeaturesFormat``), ``fmt_factor`` and ``info`` (``add_info``). Keywords add what a
    notebook user asks first: which ``backend`` produced the numbers, the ``camera`` model,
    ``n_features``/``n_components``, ``input_shape``, the fraction of ``saturated`` outputs,
    whether it was ``linear``; ``duration_s`` is computed.
    """

    def __init__(self, frametime=None, exposure=None, output_roi=None, start=None, end=None,
                 gain=None, input_roi=None, n_ones=None, fmt_type=None, fmt_factor=None,
                 **extra):
        unknown = set(extra) - set(EXTRA_ATTRIBUTES) - {
            "frametime_us", "exposure_us", "gain_dB", "input_roi_upper", "input_roi_shape",
            "output_roi_upper", "output_roi_shape", "info", "streaming"}
        if unknown:
            raise TypeError(f"Context got unexpected keyword(s) {sorted(unknown)}")
        self.info = None
        self.frametime_us = extra.pop("frametime_us", frametime)
        self.exposure_us = extra.pop("exposure_us", exposure)
        self.output_roi_upper, self.output_roi_shape = _pair(output_roi, "output_roi")
        self.input_roi_upper, self.input_roi_shape = _pair(input_roi, "input_roi")
        self.start = start
        self.end = end
        self.gain = extra.pop("gain_dB", gain)
        self.n_ones = n_ones
        self.fmt_type = None if fmt_type is None else (
            fmt_type if isinstance(fmt_type, FeaturesFormat) else FeaturesFormat[fmt_type])
        self.fmt_factor = fmt_factor
        for name in EXTRA_ATTRIBUTES:
            setattr(self, name, None)
        self.linear = False
        self.__dict__.update(extra)

    # -- lightonml's helpers ------------------------------------------------------------
    @property
    def gain_dB(self):  # noqa: N802 - lightonml's name
        return self.gain

    @gain_dB.setter
    def gain_dB(self, value):  # noqa: N802
        self.gain = value

    def from_opu(self, opu, start: dt.datetime, end: dt.datetime | None = None) -> None:
        """Take frametime, exposure, output ROI and gain from a device (lightonml's
        ``OpuDevice`` or one of our backends), and the given times."""
        self.frametime_us = opu.frametime_us
        self.exposure_us = opu.exposure_us
        self.output_roi_upper, self.output_roi_shape = _pair(opu.output_roi, "output_roi")
        self.gain = opu.gain_dB
        self.start = start
        self.end = end

    @staticmethod
    def from_timestamps(start, end=None) -> Context:
        return Context(-1, -1, ((-1, -1), (-1, -1)), from_epoch(start),
                       None if end is None else from_epoch(end))

    @staticmethod
    def from_dict(d: dict) -> Context:
        """A context from ``as_dict()`` or ``as_flat_dict()`` output (lightonml's key names,
        and the older ``ROI``/``roi_position_*`` ones)."""
        def flat_roi(prefix):
            keys = [f"{prefix}_position_0", f"{prefix}_position_1", f"{prefix}_shape_0",
                    f"{prefix}_shape_1"]
            if all(k in d for k in keys):
                return (d[keys[0]], d[keys[1]]), (d[keys[2]], d[keys[3]])
            return None

        output_roi = (d.get("output_roi") or d.get("ROI") or flat_roi("output_roi")
                      or flat_roi("roi"))
        input_roi = d.get("input_roi") or flat_roi("input_roi")
        extra = {k: d[k] for k in EXTRA_ATTRIBUTES if d.get(k) is not None}
        context = Context(d.get("frametime_us"), d.get("exposure_us"), output_roi,
                          d.get("start"), d.get("end"), d.get("gain_dB", d.get("gain_db")),
                          input_roi, d.get("n_ones"), d.get("fmt_type"), d.get("fmt_factor"),
                          **extra)
        context.add_info(d.get("info"))
        return context

    def add_info(self, info) -> None:
        self.info = info

    @property
    def duration_s(self) -> float | None:
        if self.start is None or self.end is None:
            return None
        return (self.end - self.start).total_seconds()

    def as_dict(self) -> dict:
        """lightonml's keys (``output_roi`` and ``input_roi`` as (upper, shape) pairs,
        ``fmt_type`` by name; unset optional ones left out), then ours that are set, and
        ``duration_s``."""
        result = {"exposure_us": self.exposure_us, "frametime_us": self.frametime_us,
                  "output_roi": (self.output_roi_upper, self.output_roi_shape),
                  "start": self.start}
        optional = {"gain_dB": self.gain, "info": self.info, "end": self.end,
                    "input_roi": None if self.input_roi_shape is None else (
                        self.input_roi_upper, self.input_roi_shape),
                    "n_ones": self.n_ones,
                    "fmt_type": None if self.fmt_type is None else self.fmt_type.name,
                    "fmt_factor": self.fmt_factor}
        result.update({k: v for k, v in optional.items() if v is not None})
        result.update({k: getattr(self, k) for k in EXTRA_ATTRIBUTES
                       if getattr(self, k, None) is not None})
        result["duration_s"] = self.duration_s
        return result

    def as_flat_dict(self) -> dict:
        """``as_dict`` with each ROI as four scalar keys (``output_roi_position_0``…)."""
        result = self.as_dict()
        for name in ("output_roi", "input_roi"):
            roi = result.pop(name, None)
            if roi is None or roi[0] is None:
                continue
            (row, column), (height, width) = roi
            result.update({f"{name}_position_0": row, f"{name}_position_1": column,
                           f"{name}_shape_0": height, f"{name}_shape_1": width})
        return result

    def __eq__(self, other):
        if not isinstance(other, Context):
            return NotImplemented
        return self.__dict__ == other.__dict__

    __hash__ = None

    def __str__(self) -> str:
        return str(self.as_dict())

    def __repr__(self) -> str:
        shown = {k: v for k, v in self.as_dict().items() if v is not None}
        inner = ", ".join(f"{k}={v!r}" for k, v in shown.items())
        return f"Context({inner})"


def now() -> dt.datetime:
    return dt.datetime.now()


class ContextArray(np.ndarray):
    """An ndarray that carries a :class:`Context` in ``.context``.

    Slices and ufunc results keep the context of their parent, as in lightonml.
    """

    def __new__(cls, data, context: Context | None = None):
        obj = np.asarray(data).view(cls)
        obj.context = context if context is not None else Context()
        return obj

    def __array_finalize__(self, obj):
        if obj is None:
            return
        self.context = getattr(obj, "context", None) or Context()

    def __reduce__(self):
        base_reduce = super().__reduce__()
        return base_reduce[0], base_reduce[1], (base_reduce[2], self.context)

    def __setstate__(self, state):
        nd_state, context = state
        super().__setstate__(nd_state)
        self.context = context
