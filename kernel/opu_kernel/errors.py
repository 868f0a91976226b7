"""Exceptions raised by opu_kernel. Each subclasses the builtin a user would catch."""


class OPUError(RuntimeError):
    """Base class for runtime errors of the OPU proxy."""


class BackendUnavailableError(OPUError):
    """The requested backend cannot be used on this machine (the message says what is missing)."""


class DeviceBusyError(OPUError):
    """Another process holds the OPU device."""


class DeviceClosedError(OPUError):
    """A transform was asked of a device that was closed."""


class SimulatorLimitError(ValueError):
    """A simulated transform larger than this server allows (``OPU_SIMULATOR_MAX_*``)."""


class UnsafeLockError(OPUError):
    """The device lock file or its folder could be tampered with by another user."""
