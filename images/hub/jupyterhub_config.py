# JupyterHub configuration of the hub image: the repository's hub/jupyterhub_config.py (copied
# next to this file as opuhub_config.py at build time) plus what differs when the hub itself
# runs in a container.
import os

c = get_config()  # noqa: F821 (provided by JupyterHub when it loads this file)
load_subconfig("/srv/jupyterhub/opuhub_config.py")  # noqa: F821

# User containers reach the hub by its container name on the user network, not at the address
# it binds to (0.0.0.0).
if os.environ.get("OPUHUB_HUB_CONNECT_URL"):
    c.JupyterHub.hub_connect_url = os.environ["OPUHUB_HUB_CONNECT_URL"]
