# JupyterHub configuration of OPU Hub. Thin on purpose: the logic lives in the opuhub package.
#
# Settings come from OPUHUB_* environment variables (see hub/opuhub/settings.py and the README);
# `python -m opuhub.run` (make run) sets the usual ones. Finer traitlets config can follow the
# configure() call, e.g.  c.OPUSpawnerMixin.devices = ["/dev/opu0"]
import os

from opuhub.hubconfig import configure
from opuhub.settings import settings_from_env

c = get_config()  # noqa: F821 (provided by JupyterHub when it loads this file)
configure(c, settings_from_env(os.environ))
