# JupyterHub configuration of OPU Hub. Thin on purpose: the logic lives in the opuhub package.
#
# Settings come from OPUHUB_* environment variables (hub/README.md lists them all; `python -m
# opuhub.run`, i.e. `make run`, sets the usual ones). Deployer additions go into
# OPUHUB_CONFIG_DIR (default: jupyterhub_config.d/ beside the state directory): every *.py file
# there runs after this one, in name order, with the same `c`, e.g.
#     c.OPUDockerSpawner.tmp_size = "1G"
import os

from opuhub.host import log, prepare_host
from opuhub.hubconfig import configure, install_hub_limits
from opuhub.settings import settings_from_env

c = get_config()  # noqa: F821 (provided by JupyterHub when it loads this file)
settings = settings_from_env(os.environ)
host = prepare_host(settings)  # the I/O: state, secrets, Docker network, proxy (idempotent)
for line in configure(c, settings, host):  # pure: settings in, config out
    log(line)
install_hub_limits(settings)
for path in host.config_files:
    log(f"loading deployer config {path}")
    load_subconfig(str(path))  # noqa: F821 (provided with get_config)
