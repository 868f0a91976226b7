"""Caps on the simulator's work, which the hub sets per user server.

A simulated transform runs on the server's CPU for as long as it takes, and kernel culling
skips busy kernels: ``OPU(n_components=10**9).transform(x)`` would hold a core all day. Two
environment variables (unset or 0: no cap) make the simulator refuse such a call before it
computes anything:

``OPU_SIMULATOR_MAX_N_COMPONENTS``
    the largest ``n_components`` of a simulated OPU (checked when it is set and before a fit
    or transform);
``OPU_SIMULATOR_MAX_WORK``
    the largest cost of one ``transform``/``linear_transform`` call, in multiply-adds:
    n_samples × n_features × n_components, plus, when the call draws the random matrix H
    (every call when streaming; the first one at a shape otherwise), ``DRAW_COST`` per entry
    of H, because drawing it costs that much (see ``DRAW_COST``).

They guard against accidents, not against a determined user, who can run any code in the
notebook; the container's CPU limit bounds that. The real OPU (hardware backend) is not capped.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from .errors import SimulatorLimitError

__all__ = ["SimulatorLimitError", "SimulatorLimits", "check_n_components", "check_work",
           "transform_work"]

MAX_N_COMPONENTS_ENV = "OPU_SIMULATOR_MAX_N_COMPONENTS"
MAX_WORK_ENV = "OPU_SIMULATOR_MAX_WORK"

#: Multiply-adds that drawing one entry of H (two float32 normals) costs in time. Measured on
#: 2 cores (benchmarks/bench_work.py): a GEMM does ~3e10 multiply-adds/s, drawing H ~3e7
#: entries/s. Without it, one input row at n_components=10**9 would count as 1e12 (~30 s of
#: GEMM) when drawing its matrix takes hours.
DRAW_COST = 1000

WAY_OUT = ("ask the hub's admin to raise {env}, or, on a hub with an OPU, start your server "
           "with the 'OPU hardware' profile (the real OPU has no such limit)")


@dataclass(frozen=True)
class SimulatorLimits:
    """This server's caps; None means no cap."""

    max_n_components: int | None = None
    max_work: int | None = None

    @classmethod
    def from_env(cls, environ=None) -> SimulatorLimits:
        environ = os.environ if environ is None else environ
        return cls(max_n_components=env_cap(environ, MAX_N_COMPONENTS_ENV),
                   max_work=env_cap(environ, MAX_WORK_ENV))

    def describe(self) -> dict:
        """The caps that are set, for ``%opu``."""
        caps = {"max_n_components": self.max_n_components, "max_work": self.max_work}
        return {k: f"{v:,}" for k, v in caps.items() if v is not None}


def env_cap(environ, name: str) -> int | None:
    """A non-negative whole number from ``name`` ("1e12" accepted); unset, empty or 0: None."""
    raw = (environ.get(name) or "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (value >= 0 and math.isfinite(value) and value.is_integer()):
        raise SimulatorLimitError(f"environment variable {name}={raw!r} must be a whole number "
                                  ">= 0 (0: no limit); ask the hub's admin to fix it")
    return int(value) or None


def check_n_components(n_components: int, limits: SimulatorLimits) -> None:
    cap = limits.max_n_components
    if cap is not None and n_components > cap:
        raise SimulatorLimitError(
            f"n_components={n_components:,} is above this server's limit of {cap:,} for the "
            f"simulator ({MAX_N_COMPONENTS_ENV}): a simulated transform that large would "
            f"occupy the CPU for a very long time. Use n_components <= {cap:,}, or "
            + WAY_OUT.format(env=MAX_N_COMPONENTS_ENV) + ".")


def transform_work(n_rows: int, n_features: int, n_components: int, draws: bool) -> int:
    """Cost of one simulated transform in multiply-adds (drawing H included when it happens)."""
    return n_features * n_components * (n_rows + (DRAW_COST if draws else 0))


def check_work(n_rows: int, n_features: int, n_components: int, draws: bool,
               limits: SimulatorLimits) -> None:
    cap = limits.max_work
    if cap is None:
        return
    work = transform_work(n_rows, n_features, n_components, draws)
    if work <= cap:
        return
    draw = DRAW_COST if draws else 0
    terms = (f"{n_rows:,} row{'s' if n_rows != 1 else ''} × {n_features:,} features × "
             f"{n_components:,} components")
    if draws:
        terms += (f", plus drawing the {n_features:,} × {n_components:,} random matrix, "
                  f"which costs as much as {DRAW_COST:,} rows")
    options = []
    rows = cap // (n_features * n_components) - draw
    if rows >= 1:
        options.append(f"split X into batches of at most {rows:,} rows (e.g. "
                       "np.concatenate([opu.transform(b) for b in "
                       f"np.array_split(X, {math.ceil(n_rows / rows)})]))")
    components = cap // (n_features * (n_rows + draw))
    if components >= 1:
        options.append(f"use fewer components for this batch (opu.n_components = "
                       f"{components:,} or less)")
    else:
        options.append("use fewer features")
    raise SimulatorLimitError(
        f"this transform is too large for the simulator on this server: {terms} = "
        f"{amount(work)} multiply-adds, above the limit of {amount(cap)} ({MAX_WORK_ENV}). "
        + sentence("; or ".join(options)) + "; or " + WAY_OUT.format(env=MAX_WORK_ENV) + ".")


def amount(number: int) -> str:
    """1,234,567 below a billion, 1.235e+12 above: readable, and distinct when close."""
    return f"{number:,}" if number < 10**9 else f"{number:.4g}"


def sentence(text: str) -> str:
    return text[:1].upper() + text[1:]
