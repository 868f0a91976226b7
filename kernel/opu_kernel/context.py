"""Metadata attached to every OPU output, compatible with ``lightonml.context``."""

from __future__ import annotations

import datetime as dt

import numpy as np


class Context:
    """Describes how an output was acquired.

    Attributes mirror lightonml's ``Context`` (``exposure_us``, ``frametime_us``, ``start``,
    ``end``, ``gain_dB``, ``n_ones``, ``input_roi_*``, ``output_roi_*``, ``fmt_type``,
    ``fmt_factor``) and add what a notebook user asks first: which ``backend`` produced the
    numbers, the ``camera`` model, ``n_features``/``n_components``, ``input_shape``, the
    fraction of ``saturated`` outputs and the wall-clock ``duration_s``.
    """

    def __init__(self, **attributes):
        self.exposure_us = None
        self.frametime_us = None
        self.gain_dB = 0.0
        self.start = None
        self.end = None
        self.n_ones = None
        self.input_roi_upper = None
        self.input_roi_shape = None
        self.output_roi_upper = None
        self.output_roi_shape = None
        self.fmt_type = None
        self.fmt_factor = None
        self.backend = None
        self.camera = None
        self.n_features = None
        self.n_components = None
        self.input_shape = None
        self.saturated = None
        self.linear = False
        self.__dict__.update(attributes)

    @property
    def duration_s(self) -> float | None:
        if self.start is None or self.end is None:
            return None
        return (self.end - self.start).total_seconds()

    def as_dict(self) -> dict:
        out = dict(self.__dict__)
        out["duration_s"] = self.duration_s
        return out

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
