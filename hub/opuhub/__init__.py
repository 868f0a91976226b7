"""OPU Hub: spawners, the OPU device lease, workshop accounts and metrics for JupyterHub."""

__version__ = "0.1.0"
