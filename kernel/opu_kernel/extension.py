"""The IPython extension behind the "Python 3 (OPU)" kernel.

Loaded by the kernelspec's ``--ext opu_kernel`` (or ``%load_ext opu_kernel``), it puts a lazy
``opu`` and the ``OPU`` class in the user namespace, registers ``%opu``, makes LightOn's
``lightonml`` imports resolve to opu_kernel, and closes the device when the kernel exits.
A failure here prints a clear message and leaves an ordinary, working kernel.
"""

from __future__ import annotations

import atexit
import importlib.util
import sys

from .proxy import LazyOPU, LazyOPUClass

_state: dict = {}


def load(ipython) -> None:
    try:
        _load(ipython)
    except Exception as exc:  # noqa: BLE001 - the kernel must start whatever happens here
        message = (f"opu_kernel: the OPU extension could not load ({type(exc).__name__}: "
                   f"{exc}). This kernel works as plain Python; `from opu_kernel import OPU` "
                   "may still work.")
        print(message, file=sys.stderr)  # the kernel's log
        show_in_first_cell(ipython, message)


def show_in_first_cell(ipython, message: str) -> None:
    """At load time no cell runs yet, so output would only reach the log: repeat the message
    in the notebook, above the output of the first cell."""

    def show(*_):
        print(message, file=sys.stderr)
        ipython.events.unregister("pre_run_cell", show)

    try:
        ipython.events.register("pre_run_cell", show)
    except Exception:  # noqa: BLE001 - a shell without events: the log has the message
        pass


def _load(ipython) -> None:
    from .magics import OPUMagics

    proxy = _state.get("proxy") or LazyOPU()
    _state["proxy"] = proxy
    namespace = {"opu": proxy, "OPU": LazyOPUClass()}
    ipython.push(namespace)
    ipython.register_magics(OPUMagics(ipython, proxy))
    if not _state.get("atexit"):
        atexit.register(close_device)
        _state["atexit"] = True
    if importlib.util.find_spec("lightonml") is None or _lightonml_is_ours():
        from .compat import install_as_lightonml

        install_as_lightonml()
    restore_core_display_names()


#: Names that IPython 9 no longer offers in IPython.core.display but notebooks written for
#: older IPython import from there (LightOn's: ``from IPython.core.display import display``).
CORE_DISPLAY_NAMES = ("display", "clear_output", "update_display", "publish_display_data")


def restore_core_display_names() -> None:
    """Put back the few ``IPython.core.display`` names that moved to ``IPython.display``, as
    aliases of the same functions, so such notebooks run unchanged. Names that exist are left
    alone."""
    import IPython.core.display as core_display
    from IPython import display as public

    for name in CORE_DISPLAY_NAMES:
        if not hasattr(core_display, name) and hasattr(public, name):
            setattr(core_display, name, getattr(public, name))


def _lightonml_is_ours() -> bool:
    from .compat import installed

    return installed()


def close_device() -> None:
    """Release the device at kernel shutdown or restart, so another user can take it."""
    proxy = _state.get("proxy")
    if proxy is not None:
        try:
            proxy.close()
        except Exception as exc:  # noqa: BLE001 - shutting down: report, don't raise
            print(f"opu_kernel: closing the OPU failed: {exc}", file=sys.stderr)


def unload(ipython) -> None:
    close_device()
    for name in ("opu", "OPU"):
        ipython.user_ns.pop(name, None)
