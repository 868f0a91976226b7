"""A kernel that is ready when the attendee opens the first notebook.

:class:`PrestartingKernelManager` is jupyter_server's kernel manager plus a few kernels
started in the background once the server runs (after it answered the hub, so the spawn does
not wait for them). The first requests for a kernel of that name (a notebook, a console,
``POST /api/kernels``) get one of them instead of waiting for a new kernel to start: the kernel
is moved to the notebook's directory and given the session's name, as a new kernel would have
been, silently (no output, nothing in the history, the execution count unchanged).

The pre-started kernels are not refilled (each idle kernel holds memory), are not listed in
``/api/kernels`` until handed out, and the server's idle-kernel culling ends them like any
other kernel. Enabled in the single-user image's jupyter_server_config.json::

    "ServerApp": {"kernel_manager_class": "opuhub_singleuser.kernel_pool.PrestartingKernelManager",
                  "jpserver_extensions": {"opuhub_singleuser": true}}

(the server extension starts the kernels once the event loop runs).
"""

from __future__ import annotations

import asyncio
import json
import time

from jupyter_server.base.handlers import APIHandler
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from jupyter_server.utils import url_path_join
from tornado import web
from traitlets import Float, Integer, Unicode

STATUS_PATH = "opuhub/prestart"  # below the server's base URL


def handover_code(cwd: str | None, session_name: str | None) -> str:
    """The code that makes a pre-started kernel look started for this notebook: its working
    directory, and JPY_SESSION_NAME / ``__session__`` as ipykernel sets them at start."""
    lines = ["import os as _opuhub_os"]
    if cwd:
        lines.append(f"_opuhub_os.chdir({cwd!r})")
    if session_name:
        lines.append(f"_opuhub_os.environ['JPY_SESSION_NAME'] = {session_name!r}")
        lines.append(f"get_ipython().user_ns['__session__'] = {session_name!r}")
    lines.append("del _opuhub_os")
    return "\n".join(lines)


class PrestartingKernelManager(AsyncMappingKernelManager):
    prestart_count = Integer(
        1,
        config=True,
        help="""Kernels started in the background when the server starts, handed to the first
        requests for a kernel of `prestart_kernel_name` (0 = none). Not refilled: each idle
        kernel holds memory (about 50 MiB for the OPU kernel).""",
    )
    prestart_kernel_name = Unicode(
        "",
        config=True,
        help="Kernelspec of the pre-started kernels; '' = the server's default kernel.",
    )
    prestart_warmup = Unicode(
        "",
        config=True,
        help="""Code run silently in each pre-started kernel once it is up, so that the first
        cell does not wait for imports, e.g. "__import__('numpy')" (binding no name: the
        notebook must not see variables it did not define). Output is discarded; an error is
        logged and the kernel handed out all the same. '' = none.""",
    )
    prestart_timeout = Float(
        120.0,
        config=True,
        help="Seconds a pre-started kernel may take to answer; after that it is shut down.",
    )

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._prestarted: list[str] = []  # ready to hand out, oldest first
        self._prestart_task: asyncio.Task | None = None
        # held while a pre-started kernel launches, until it answers: see start_kernel
        self._launching = asyncio.Lock()

    # --- the pool --------------------------------------------------------------------------

    @property
    def prestart_state(self) -> str:
        """'off' (none configured), 'starting', or 'done' (ready, or given up: see the log)."""
        if self.prestart_count <= 0:
            return "off"
        if self._prestart_task is None or not self._prestart_task.done():
            return "starting"
        return "done"

    @property
    def prestart_name(self) -> str:
        return self.prestart_kernel_name or self.default_kernel_name

    def start_prestarting(self) -> asyncio.Task | None:
        """Start the pre-started kernels in the background (once; needs the running loop)."""
        if self._prestart_task is None and self.prestart_count > 0:
            self._prestart_task = asyncio.ensure_future(self._prestart())
        return self._prestart_task

    async def wait_prestart_done(self, timeout: float) -> None:
        """Return once the pre-started kernels are done starting, or after ``timeout``
        seconds, whichever comes first (the state is read afterwards)."""
        deadline = time.monotonic() + timeout
        # the extension starts the task once the loop runs: a request may come just before
        while self._prestart_task is None and self.prestart_count > 0:
            if time.monotonic() >= deadline:
                return
            await asyncio.sleep(0.05)
        if self._prestart_task is not None:
            await asyncio.wait([self._prestart_task],
                               timeout=max(0.0, deadline - time.monotonic()))

    async def _prestart(self) -> None:
        for _ in range(self.prestart_count):
            started = time.monotonic()
            kernel_id = None
            try:
                async with self._launching:
                    kernel_id = await super().start_kernel(kernel_name=self.prestart_name)
                    await self._run_silently(kernel_id, "")  # until it answers
            except Exception as e:  # the server works without: kernels start on demand
                self.log.warning("[opuhub] could not pre-start a %s kernel: %s",
                                 self.prestart_name, e)
                if kernel_id is not None and kernel_id in self:
                    await self.shutdown_kernel(kernel_id, now=True)
                return
            if self.prestart_warmup:
                try:
                    await self._run_silently(kernel_id, self.prestart_warmup)
                except Exception as e:  # the kernel itself is fine: only colder
                    self.log.warning("[opuhub] the warm-up of kernel %s failed: %s", kernel_id, e)
            self._prestarted.append(kernel_id)
            self.log.info("[opuhub] pre-started %s kernel %s ready in %.2fs", self.prestart_name,
                          kernel_id, time.monotonic() - started)

    async def _run_silently(self, kernel_id: str, code: str) -> None:
        """Wait until the kernel answers, then run ``code`` (if any) without any visible trace;
        raises when it fails or takes longer than prestart_timeout."""
        client = self.get_kernel(kernel_id).client()
        client.start_channels()
        try:
            await client.wait_for_ready(timeout=self.prestart_timeout)
            if not code:
                return
            msg_id = client.execute(code, silent=True, store_history=False, allow_stdin=False)
            deadline = time.monotonic() + self.prestart_timeout
            while True:
                reply = await client.get_shell_msg(timeout=max(0.1, deadline - time.monotonic()))
                if reply["parent_header"].get("msg_id") == msg_id:
                    break
            content = reply["content"]
            if content.get("status") != "ok":
                raise RuntimeError(f"{content.get('ename')}: {content.get('evalue')}")
        finally:
            client.stop_channels()

    async def _take_prestarted(self, kernel_name: str | None) -> str | None:
        if (kernel_name or self.default_kernel_name) != self.prestart_name:
            return None
        if not self._prestarted and self._prestart_task is not None:
            # one is on its way: it will be ready sooner than a new one
            await asyncio.shield(self._prestart_task)
        while self._prestarted:
            kernel_id = self._prestarted.pop(0)
            if kernel_id in self:  # not culled or shut down meanwhile
                return kernel_id
        return None

    # --- jupyter_server's kernel manager -----------------------------------------------------

    async def start_kernel(self, *, kernel_id=None, path=None, **kwargs):
        if kernel_id is None:
            prestarted = await self._take_prestarted(kwargs.get("kernel_name"))
            if prestarted is not None:
                env = kwargs.get("env") or {}
                cwd = self.cwd_for_path(path, env=env) if path is not None else None
                try:
                    await self._run_silently(
                        prestarted, handover_code(cwd, env.get("JPY_SESSION_NAME")))
                except Exception as e:
                    self.log.warning("[opuhub] pre-started kernel %s not used: %s", prestarted, e)
                    await self.shutdown_kernel(prestarted, now=True)
                else:
                    self.log.info("[opuhub] handed the pre-started kernel %s to %s", prestarted,
                                  path or "a new kernel request")
                    return prestarted
        # Not while a pre-started kernel launches: jupyter_client picks a new kernel's ports
        # (with the ipc transport: socket files /tmp/x-1, -2, ...) among those not in use yet,
        # and the launching kernel binds its own only once it runs; a kernel started in that
        # window got the same sockets, and each one's messages reached the other ("Invalid
        # Signature"). Found with a local server's pre-started kernel and a first notebook of
        # another kernel opened at the same time.
        async with self._launching:
            pass
        return await super().start_kernel(kernel_id=kernel_id, path=path, **kwargs)

    def list_kernels(self):
        # the pre-started kernels are nobody's yet: the kernel list shows them once handed out
        waiting = set(self._prestarted)
        return [k for k in super().list_kernels() if k["id"] not in waiting]


# --- the server extension: starts the pool once the server's event loop runs -----------------


MAX_WAIT = 30.0  # seconds a request may wait for the state to change


class PrestartHandler(APIHandler):
    """``GET <base_url>opuhub/prestart[?wait=SECONDS]``: whether the pre-started kernels are
    done starting. The hub's spawner asks it with the server's own token to let the next
    start in line go only once this one's kernel is warm (opuhub.admission); the owner may
    read it too. With ``wait`` (up to 30 s), a "starting" answer is held back until they are
    done or the time is up: the hub learns it the moment it happens, with one request
    instead of polls."""

    @web.authenticated
    async def get(self):
        manager = self.kernel_manager
        try:
            wait = min(MAX_WAIT, max(0.0, float(self.get_argument("wait", "0"))))
        except ValueError:
            raise web.HTTPError(400, "wait: a number of seconds") from None
        if not isinstance(manager, PrestartingKernelManager):
            state = "off"
        else:
            if wait and manager.prestart_state == "starting":
                await manager.wait_prestart_done(wait)
            state = manager.prestart_state
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps({"state": state}))


def _load_jupyter_server_extension(serverapp):
    route = url_path_join(serverapp.web_app.settings.get("base_url", "/"), STATUS_PATH)
    serverapp.web_app.add_handlers(".*$", [(route, PrestartHandler)])
    if not isinstance(serverapp.kernel_manager, PrestartingKernelManager):
        serverapp.log.info("[opuhub] no kernel is pre-started: ServerApp.kernel_manager_class "
                           "is not opuhub_singleuser.kernel_pool.PrestartingKernelManager")


async def _start_jupyter_server_extension(serverapp):
    manager = serverapp.kernel_manager
    if isinstance(manager, PrestartingKernelManager):
        manager.start_prestarting()  # in the background: the server answers meanwhile
