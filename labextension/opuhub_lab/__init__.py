"""OPU Hub in JupyterLab: a status-bar item (backend, device, lease holder, time left) and a
warning before the lease ends.

Two halves, shipped together:

- a Jupyter server extension (this package) answering ``GET <base_url>opuhub/status`` from the
  environment the hub gives the server (:mod:`opuhub_lab.status`);
- a prebuilt JupyterLab extension (``labextension/``, built from ``src/index.js`` with
  ``@jupyterlab/builder`` from npm) that polls it and counts down.

``python -m opuhub_lab.install --sys-prefix`` puts both in place (and turns off JupyterLab's
news prompt for the platform's users).
"""

from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"

LABEXTENSION_NAME = "opuhub-lab"
LABEXTENSION_DIR = Path(__file__).parent / "labextension"


def _jupyter_labextension_paths():
    return [{"src": "labextension", "dest": LABEXTENSION_NAME}]


def _jupyter_server_extension_points():
    return [{"module": "opuhub_lab"}]


def protect_server_process() -> bool:
    """Make this server non-dumpable: the user's kernels run as the same uid and could
    otherwise ptrace it or write its memory, and so serve their own pages under the server's
    (the hub's) origin. Kernels are new programs (exec), so they stay ordinary processes."""
    import ctypes
    import ctypes.util

    pr_set_dumpable = 4
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return libc.prctl(pr_set_dumpable, 0, 0, 0, 0) == 0


def _load_jupyter_server_extension(server_app):
    from .handlers import setup_handlers

    if not protect_server_process():
        server_app.log.warning("opuhub_lab: could not make the server non-dumpable")
    setup_handlers(server_app.web_app)
    server_app.log.info("opuhub_lab: OPU status at %sopuhub/status",
                        server_app.web_app.settings.get("base_url", "/"))
