"""The embedded spawner: single-user servers as local processes from this Python environment.

Used when no Docker engine is reachable (a laptop, CI, a small VM). Same hub, same lease, same
auth as the Docker spawner; what it lacks is isolation between users: every server runs as
the hub's OS user. Each user gets a home directory under the state directory, and the server
runs ``jupyterhub-singleuser`` from the hub's own environment, so the OPU kernel installed
there (``python -m opu_kernel.install --sys-prefix``) is available.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from escapism import escape
from jupyterhub.spawner import SimpleLocalProcessSpawner
from traitlets import Unicode, default

from .lease_spawner import OPUSpawnerMixin

SAFE_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-_.")


def home_dir_name(username: str) -> str:
    """A file name for ``username`` that cannot escape the homes directory."""
    name = escape(username, safe=SAFE_CHARS, escape_char="%")
    return name if name not in ("", ".", "..") else escape(username, safe=set(), escape_char="%")


class OPULocalSpawner(OPUSpawnerMixin, SimpleLocalProcessSpawner):
    homes_dir = Unicode(
        "homes",
        config=True,
        help="Directory holding one home directory per user (created 0700 on first spawn).",
    )

    @default("home_dir")
    def _home_dir_default(self):
        return str(Path(self.homes_dir).resolve() / home_dir_name(self.user.name))

    @default("cmd")
    def _cmd_default(self):
        # the singleuser entry point of the hub's own environment, so the kernels installed
        # with --sys-prefix (python3, opu) are the ones users get
        return [str(Path(sys.executable).with_name("jupyterhub-singleuser"))]

    def get_args(self):
        args = super().get_args()
        if os.geteuid() == 0:
            # containers and CI run everything as root; jupyter_server refuses that by default
            args.append("--ServerApp.allow_root=True")
        return args

    def make_preexec_fn(self, name):
        home = self.home_dir

        def preexec():
            os.makedirs(home, 0o700, exist_ok=True)
            os.chdir(home)

        return preexec

    def user_env(self, env):
        env = super().user_env(env)
        # the environment's bin first: jupyter, python and the kernels of this venv
        bin_dir = str(Path(sys.executable).parent)
        env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", os.defpath)])
        return env
