"""opu_kernel: an OPU device proxy compatible with lightonml, with a fast simulator."""

__version__ = "0.1.0"

from .compat import install_as_lightonml  # noqa: E402
from .opu import OPU  # noqa: E402
from .types import OutputRescaling  # noqa: E402

__all__ = ["OPU", "OutputRescaling", "install_as_lightonml", "__version__"]
