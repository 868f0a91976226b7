"""Exceptions raised by opu_kernel. Each subclasses the builtin a user would catch."""


class OPUError(RuntimeError):
    """Base class for runtime errors of the OPU proxy."""


class BackendUnavailableError(OPUError):
    """The requested backend cannot be used on this machine (the message says what is missing)."""


class DeviceBusyError(OPUError):
    """Another process holds the OPU device."""


class DeviceClosedError(OPUError, AssertionError):
    """A transform was asked of a device that was closed. Also an ``AssertionError``, which is
    what lightonml raises there (its check is an ``assert``)."""


class NotFittedError(OPUError, AssertionError):
    """A transform before ``fit1d``/``fit2d``. Also an ``AssertionError``: lightonml asserts a
    fit, and LightOn's notebooks catch ``AssertionError``."""


class SimulatorLimitError(ValueError):
    """A simulated transform larger than this server allows (``OPU_SIMULATOR_MAX_*``)."""


class UnsafeLockError(OPUError):
    """The device lock file or its folder could be tampered with by another user."""
