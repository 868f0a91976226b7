"""The ``opu`` object of the OPU kernel: an OPU that costs nothing until it is used.

Creating it reads only settings; the OPU (device lock, or simulator) is created at the first
attribute access, and the simulator's matrix at the first transform. Defaults come from the
environment so that the hub can set them per container.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

ENV_PREFIX = "OPU_"
LEASE_ENV_PREFIX = "OPU_LEASE_"
DEFAULT_N_COMPONENTS = 10_000
DEFAULT_MAX_N_FEATURES = 1000


@dataclass
class ProxySettings:
    """What the lazy ``opu`` is created with (env ``OPU_*``, else defaults)."""

    backend: str | None = None
    device: str | None = None
    n_components: int = DEFAULT_N_COMPONENTS
    max_n_features: int = DEFAULT_MAX_N_FEATURES
    seed: int = 0

    @classmethod
    def from_env(cls, environ=None) -> ProxySettings:
        environ = os.environ if environ is None else environ
        return cls(
            backend=environ.get("OPU_BACKEND") or None,
            device=environ.get("OPU_DEVICE") or None,
            n_components=env_int(environ, "OPU_N_COMPONENTS", DEFAULT_N_COMPONENTS),
            max_n_features=env_int(environ, "OPU_MAX_N_FEATURES", DEFAULT_MAX_N_FEATURES),
            seed=env_int(environ, "OPU_SEED", 0, minimum=0),
        )


def env_int(environ, name: str, default: int, minimum: int = 1) -> int:
    raw = environ.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} is not an integer") from None
    if value < minimum:
        raise ValueError(f"environment variable {name}={raw!r} must be >= {minimum}")
    return value


def lease_info(environ=None) -> dict[str, str]:
    """The hub's OPU lease for this server, as set in ``OPU_LEASE_*`` variables."""
    environ = os.environ if environ is None else environ
    return {k[len(LEASE_ENV_PREFIX):].lower(): v for k, v in sorted(environ.items())
            if k.startswith(LEASE_ENV_PREFIX)}


class LazyOPU:
    """Behaves as an ``OPU``; creates it on first use and re-opens it after a close."""

    _OWN = frozenset({"_settings", "_opu", "_acquired_at", "_backend_choice"})
    _OPENING = frozenset({"fit1d", "fit2d", "transform", "linear_transform",
                          "fit_transform1d", "fit_transform2d"})

    def __init__(self, settings: ProxySettings | None = None):
        object.__setattr__(self, "_settings", settings)
        object.__setattr__(self, "_opu", None)
        object.__setattr__(self, "_acquired_at", None)
        object.__setattr__(self, "_backend_choice", None)

    # -- state --------------------------------------------------------------------------
    @property
    def settings(self) -> ProxySettings:
        if self._settings is None:
            object.__setattr__(self, "_settings", ProxySettings.from_env())
        return self._settings

    @property
    def materialized(self) -> bool:
        return self._opu is not None

    @property
    def acquired_at(self) -> float | None:
        """When the OPU was last created or opened (epoch seconds)."""
        return self._acquired_at

    def _get(self):
        if self._opu is None:
            from .errors import SimulatorLimitError
            from .opu import OPU

            settings = self.settings
            try:
                opu = OPU(n_components=settings.n_components,
                          max_n_features=settings.max_n_features, seed=settings.seed,
                          backend=self._backend_choice or settings.backend,
                          opu_device=settings.device)
            except SimulatorLimitError as exc:
                # The user did not choose this n_components: say where it came from.
                raise SimulatorLimitError(
                    f"{exc} (The kernel's `opu` takes n_components from OPU_N_COMPONENTS="
                    f"{settings.n_components}; create your own instead, e.g. "
                    "opu = OPU(n_components=10_000).)") from None
            object.__setattr__(self, "_opu", opu)
            object.__setattr__(self, "_acquired_at", time.time())
        return self._opu

    # -- delegation ---------------------------------------------------------------------
    def __getattr__(self, name):
        if name.startswith("_"):
            # Private names and IPython's display probes (_repr_html_, …) must not create it.
            raise AttributeError(name)
        opu = self._get()
        attribute = getattr(opu, name)
        if name in self._OPENING and not opu.is_open:
            self.open()
        return attribute

    def __setattr__(self, name, value):
        if name in self._OWN:
            object.__setattr__(self, name, value)
        else:
            setattr(self._get(), name, value)

    def __dir__(self):
        from .opu import OPU

        return sorted(set(dir(OPU)) | {"reset", "use_backend", "materialized", "settings"})

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, *exc_info):
        self.close()

    # -- life cycle ---------------------------------------------------------------------
    def open(self) -> None:
        opu = self._get()
        if not opu.is_open:
            opu.open()
            object.__setattr__(self, "_acquired_at", time.time())

    def close(self) -> None:
        """Release the device (or the simulator's memory); the next use re-acquires it."""
        if self._opu is not None:
            self._opu.close()

    def reset(self) -> None:
        """Close and forget the OPU: the next use creates a new one from the settings."""
        self.close()
        object.__setattr__(self, "_opu", None)
        object.__setattr__(self, "_acquired_at", None)

    def use_backend(self, backend: str) -> None:
        """Switch to ``backend`` ("simulator", "hardware" or "auto") for the next use."""
        from .backends import choose_backend

        choose_backend(backend, self.settings.device)  # raises on an unknown name
        self.reset()
        object.__setattr__(self, "_backend_choice", backend)

    # -- display ------------------------------------------------------------------------
    def status(self) -> dict:
        """What ``%opu`` shows; does not create the OPU."""
        if self._opu is not None:
            info = self._opu.describe()
            last = self._opu.last_context
            if last is not None:
                info["last_acquisition"] = last.end.isoformat(timespec="seconds")
                info["last_duration_s"] = round(last.duration_s, 4)
        else:
            from .backends import choose_backend, device_path

            settings = self.settings
            backend = choose_backend(self._backend_choice or settings.backend, settings.device)
            info = {"backend": backend, "open": False, "created": False,
                    "n_components": settings.n_components,
                    "max_n_features": settings.max_n_features,
                    "device": "simulated" if backend == "simulator"
                    else device_path(settings.device)}
            if backend == "simulator":
                from .limits import SimulatorLimitError, SimulatorLimits

                try:
                    info.update(SimulatorLimits.from_env().describe())
                except SimulatorLimitError as exc:
                    info["limits"] = str(exc)
        if info.get("backend") == "hardware" or self._opu is None:
            from .backends import device_path, hardware_problems

            info["device_node"] = device_path(self.settings.device)
            problems = hardware_problems(self.settings.device)
            info["hardware"] = "available" if not problems else "; ".join(problems)
        if self._acquired_at is not None:
            info["acquired_at"] = time.strftime("%H:%M:%S", time.localtime(self._acquired_at))
        lease = lease_info()
        if lease:
            info["lease"] = lease
        return info

    def __repr__(self) -> str:
        if self._opu is not None:
            return repr(self._opu)
        try:
            info = self.status()
        except ValueError as exc:
            return f"<OPU (lazy) misconfigured: {exc}>"
        return (f"<OPU {info['backend']} device={info['device']} "
                f"n_components={info['n_components']} max_n_features={info['max_n_features']} "
                "not yet opened (opens on first use)>")


class LazyOPUClass:
    """Stands for the ``OPU`` class in the kernel's namespace until it is used, so that starting
    a kernel does not import numpy. Calling, attributes, ``isinstance``, ``issubclass`` and
    subclassing (``class MyOPU(OPU)``) all reach the real class."""

    @staticmethod
    def _cls():
        from .opu import OPU

        return OPU

    def __call__(self, *args, **kwargs):
        return self._cls()(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._cls(), name)

    @property
    def __doc__(self):
        return self._cls().__doc__

    @property
    def __signature__(self):
        import inspect

        return inspect.signature(self._cls())

    def __instancecheck__(self, instance) -> bool:
        return isinstance(instance, self._cls())

    def __subclasscheck__(self, subclass) -> bool:
        return issubclass(subclass, self._cls())

    def __mro_entries__(self, bases):
        return (self._cls(),)

    def __repr__(self) -> str:
        return "<class 'opu_kernel.opu.OPU'>"
