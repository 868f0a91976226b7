"""The baseline of benchmarks/bench_spawn.py: what a JupyterHub operator gets out of the box.

Stock DockerSpawner, starting stock `jupyterhub-singleuser` (the image's entry point and our
server settings removed: see bench_spawn.stock_image) in the same kind of container as ours:
same network, memory limit, a named volume as home. Only what the benchmark needs on top: an
API token for the benchmark's service, and the timeouts and spawn limit of a burst.
"""

import os

c = get_config()  # noqa: F821 - provided by JupyterHub when it loads this file
state = "/srv/jupyterhub/state"

c.JupyterHub.spawner_class = "dockerspawner.DockerSpawner"
c.DockerSpawner.image = os.environ["BENCH_STOCK_IMAGE"]
c.DockerSpawner.network_name = os.environ["BENCH_NETWORK"]
c.DockerSpawner.use_internal_ip = True
c.DockerSpawner.remove = True
c.DockerSpawner.volumes = {"opuhub-stock-home-{username}-" + os.environ["BENCH_TAG"]: "/home/jovyan"}
c.DockerSpawner.mem_limit = "1G"
c.DockerSpawner.name_template = "stock-{username}"
c.Spawner.start_timeout = 300
c.Spawner.http_timeout = 300

c.JupyterHub.bind_url = "http://0.0.0.0:8000"
c.JupyterHub.hub_bind_url = "http://0.0.0.0:8081"
c.JupyterHub.hub_connect_url = os.environ["BENCH_HUB_CONNECT_URL"]
c.JupyterHub.db_url = f"sqlite:///{state}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = f"{state}/jupyterhub_cookie_secret"
c.ConfigurableHTTPProxy.pid_file = f"{state}/proxy.pid"
c.JupyterHub.concurrent_spawn_limit = int(os.environ.get("BENCH_SPAWN_LIMIT", "100"))
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.JupyterHub.services = [{"name": "bench", "api_token": os.environ["BENCH_TOKEN"]}]
c.JupyterHub.load_roles = [{
    "name": "bench", "services": ["bench"],
    "scopes": ["admin:users", "admin:servers", "tokens", "access:servers", "read:metrics"],
}]
