"""OPU Hub's single-user server: a faster start of ``jupyterhub-singleuser``
(:mod:`opuhub_singleuser.launch`) and a kernel ready before the first notebook asks for one
(:mod:`opuhub_singleuser.kernel_pool`)."""

__version__ = "0.1.0"


def _jupyter_server_extension_points():
    # the server extension that starts the pre-started kernels once the server runs
    return [{"module": "opuhub_singleuser.kernel_pool"}]
