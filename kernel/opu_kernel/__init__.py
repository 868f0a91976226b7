"""opu_kernel: an OPU device proxy compatible with lightonml, with a fast simulator.

``import opu_kernel`` is cheap (numpy and the rest load on first use of ``OPU``), so the
Jupyter kernel that preloads it starts as fast as a plain one.
"""

__version__ = "0.1.0"

__all__ = ["OPU", "OutputRescaling", "install_as_lightonml", "load_ipython_extension",
           "unload_ipython_extension", "__version__"]


def __getattr__(name):
    if name == "OPU":
        from .opu import OPU

        return OPU
    if name == "OutputRescaling":
        from .types import OutputRescaling

        return OutputRescaling
    if name == "install_as_lightonml":
        from .compat import install_as_lightonml

        return install_as_lightonml
    raise AttributeError(f"module 'opu_kernel' has no attribute {name!r}")


def load_ipython_extension(ipython):
    """``%load_ext opu_kernel`` (and the OPU kernel's ``--ext opu_kernel``)."""
    from .extension import load

    load(ipython)


def unload_ipython_extension(ipython):
    from .extension import unload

    unload(ipython)
