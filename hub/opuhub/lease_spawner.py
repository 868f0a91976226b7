"""What both OPU spawners share: the profile choice, the device lease, and the kernel's env.

:class:`OPUSpawnerMixin` goes first in a spawner's bases (``class S(OPUSpawnerMixin,
SomeSpawner)``). Its ``start`` validates the user's options, claims a device for the
"OPU hardware" profile (failing fast, before any container or process exists), then lets the
real spawner start. The lease ends in ``run_post_stop_hook``, which JupyterHub runs after every
stop: an explicit stop, the idle culler, a crashed server noticed by ``poll``, or a failed spawn.

Every lease-store call runs on a few threads of its own (:func:`in_store_thread`): SQLite may wait
up to its busy timeout for the lock, and the hub's event loop, which serves every user, must not
wait with it.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor

from tornado import web
from traitlets import Float, Integer, List, Unicode, default, validate
from traitlets.config import LoggingConfigurable

from . import admission, readiness
from .devices import DEVICE_GLOB, detect_devices
from .lease import ENDED_SPAWN_FAILED, ENDED_STOPPED, Grant, Lease, LeasePolicy, iso_utc
from .lease_store import LeaseStore
from .profiles import (
    SHARED,
    SpawnChoice,
    device_status_lines,
    kernel_env,
    options_form_html,
    options_from_form,
    parse_user_options,
)
from .settings import default_of, hub_timezone, trait_help


@functools.lru_cache(maxsize=8)
def _store_at(path: str) -> LeaseStore:
    # one store object per file for the hub's lifetime (it opens a connection per operation)
    return LeaseStore(path)


# seconds a server may hold back its "still warming" answer (opuhub/prestart?wait=): the hub
# hears "warm" the moment it is, and the next start in line goes without a polling delay
KERNEL_WARM_LONG_POLL = 10.0

# Apart from asyncio's default executor, so that claims queued behind a locked database never
# hold up other work the hub hands to threads. Threads start on first use.
_STORE_THREADS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="opu-lease-store")


async def in_store_thread(path: str, operation):
    """``operation(store)`` on the store of ``path``, run on the lease-store threads (opening
    the store, which creates the schema, happens there too)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_STORE_THREADS, lambda: operation(_store_at(path)))


class OPUSpawnerMixin(LoggingConfigurable):
    devices = List(
        Unicode(),
        config=True,
        help="""Host device nodes of the OPUs that users can lease, in the order they are handed
        out. Default: every node matching `device_glob` when the hub starts. An empty list means
        the hub offers the simulator only.""",
    )
    device_glob = Unicode(
        DEVICE_GLOB, config=True, help="Pattern used to auto-detect OPU device nodes."
    )

    @default("devices")
    def _detect_devices(self):
        return detect_devices(self.device_glob)

    lease_db = Unicode(
        "opu_leases.sqlite",
        config=True,
        help="""SQLite file holding leases, usage history and refused claims. Shared with the
        opu-lease service, so both must point at the same file.""",
    )
    # the traits that mirror an OPUHUB_* setting take its default and help (opuhub.settings)
    lease_max_duration = Float(
        default_of("lease_max_seconds"), config=True,
        help=trait_help("lease_max_seconds", "In seconds; the lease service stops the server."),
    )
    lease_warning = Float(
        default_of("lease_warning_seconds"), config=True, help=trait_help("lease_warning_seconds")
    )
    lease_quota = Float(
        default_of("quota_seconds"), config=True,
        help=trait_help("quota_seconds", "The period is `lease_quota_period`."),
    )
    lease_quota_period = Float(
        default_of("quota_period_seconds"), config=True, help=trait_help("quota_period_seconds")
    )
    lease_timezone = Unicode(default_of("timezone"), config=True, help=trait_help("timezone"))
    default_n_components = Integer(
        default_of("n_components"), config=True,
        help=trait_help("n_components", "The kernel reads it as OPU_N_COMPONENTS."),
    )
    simulator_max_n_components = Integer(
        default_of("simulator_max_n_components"), config=True,
        help=trait_help("simulator_max_n_components", """The kernel reads it as
        OPU_SIMULATOR_MAX_N_COMPONENTS. The device itself reads out up to about 2 million;
        larger simulated outputs only hold a core and memory for hours."""),
    )
    simulator_max_work = Float(
        default_of("simulator_max_work"), config=True,
        help=trait_help("simulator_max_work", """The kernel reads it as OPU_SIMULATOR_MAX_WORK:
        rows x features x components, plus drawing the random matrix; larger batches get an
        error saying how to split them."""),
    )

    shared_opu = Unicode(
        default_of("shared_opu"), config=True,
        help=trait_help("shared_opu", """Offers the "Shared OPU" profile; the hub's config runs
        the broker (service opu-broker) and sets shared_opu_url and shared_opu_secret."""),
    )
    shared_opu_url = Unicode(
        "", config=True, help="Where users' servers reach the shared OPU's broker (tcp://HOST:PORT).")
    shared_opu_secret = Unicode(
        "", config=True,
        help="""The broker's secret (hex). Each shared server gets only its user's key, derived
        from it (opuhub.shared_opu).""",
    )

    start_concurrency = Integer(
        default_of("start_concurrency"),
        config=True,
        help=trait_help("start_concurrency", """A start is mostly CPU. The spawn page tells each
        attendee waiting their place; a start's slot is held from before its container or
        process is created until its server answers. Raise JupyterHub's
        concurrent_spawn_limit above the largest expected burst: it counts those waiting too,
        and refuses (429) beyond it."""),
    )
    ready_poll_interval = Float(
        0.05,
        config=True,
        help="""First wait, in seconds, between two checks that a new server answers (it grows
        by half at each check, up to ready_poll_max_interval). The spawner returns only once
        its server answers, so the hub notices it at once instead of up to seconds late.""",
    )
    kernel_warm_hold = Float(
        60.0,
        config=True,
        help="""Longest time, in seconds, a start keeps its slot after its server answered,
        while the server's pre-started kernel warms up (opuhub_singleuser: the image's
        <base_url>opuhub/prestart says when it is done). The attendee is let in at the answer;
        only the next start in line waits, so that in a burst the first attendees' kernels
        and first cells do not share the cores with everyone's start-up. 0 = free the slot
        at the answer.""",
    )
    ready_poll_max_interval = Float(
        0.5,
        config=True,
        help="Longest wait, in seconds, between two checks that a new server answers.",
    )

    @validate("start_concurrency")
    def _concurrency_not_negative(self, proposal):
        if proposal.value < 0:
            raise ValueError(f"start_concurrency must be >= 0 (0 = cores + 1), got {proposal.value}")
        return proposal.value

    @validate("kernel_warm_hold")
    def _hold_not_negative(self, proposal):
        if proposal.value < 0:
            raise ValueError(f"kernel_warm_hold must be >= 0 seconds, got {proposal.value}")
        return proposal.value

    @validate("ready_poll_interval", "ready_poll_max_interval")
    def _positive_interval(self, proposal):
        if proposal.value <= 0:
            raise ValueError(f"{proposal.trait.name} must be > 0 seconds, got {proposal.value}")
        return proposal.value

    @validate("lease_max_duration", "lease_warning", "lease_quota")
    def _non_negative(self, proposal):
        if proposal.value < 0:
            raise ValueError(f"{proposal.trait.name} must be >= 0 seconds, got {proposal.value}")
        return proposal.value

    @validate("lease_quota_period")
    def _positive_period(self, proposal):
        if proposal.value <= 0:
            raise ValueError(f"lease_quota_period must be > 0 seconds, got {proposal.value}")
        return proposal.value

    @validate("simulator_max_n_components", "simulator_max_work")
    def _cap_not_negative(self, proposal):
        if proposal.value < 0:
            raise ValueError(f"{proposal.trait.name} must be >= 0 (0 = no cap), got {proposal.value}")
        return proposal.value

    @validate("default_n_components")
    def _positive_components(self, proposal):
        if proposal.value <= 0:
            raise ValueError(f"default_n_components must be > 0, got {proposal.value}")
        return proposal.value

    @default("disable_user_config")
    def _user_config_disabled(self):
        # Every user server shares the hub's origin unless OPUHUB_SUBDOMAIN_HOST is set. A
        # server that loaded ~/.jupyter config (a tornado handler) or a labextension folder in
        # ~/.local/share/jupyter would serve the attendee's own pages to anyone, unauthenticated,
        # and a script on such a page acts as whoever opens it (a token of the victim). With
        # JUPYTERHUB_DISABLE_USER_CONFIG the server ignores config, extensions and data under
        # the home (kernelspecs installed with --user too); kernels still read ~/.ipython and
        # JupyterLab keeps the user's settings. tests/hub/security/test_same_origin.py
        return True

    # --- derived -------------------------------------------------------------------------------

    @property
    def lease_policy(self) -> LeasePolicy:
        return LeasePolicy(
            max_duration=self.lease_max_duration,
            warning=self.lease_warning,
            quota=self.lease_quota,
            quota_period=self.lease_quota_period,
        )

    @property
    def lease_store(self) -> LeaseStore:
        return _store_at(self.lease_db)

    async def current_lease(self) -> Lease | None:
        """The lease this server holds right now (the store is the source of truth)."""
        key = self._lease_key
        return await self.in_store_thread(lambda store: store.lease_for(*key))

    @property
    def opu_lease(self) -> Lease | None:
        """:meth:`current_lease`, blocking: it may wait for SQLite's lock, so never call it on
        the hub's event loop (coroutines await ``current_lease()``)."""
        return self.lease_store.lease_for(*self._lease_key)

    @property
    def _lease_key(self) -> tuple[str, str]:
        return self.user.name, self.name or ""

    async def in_store_thread(self, operation):
        """``operation(store)`` off the event loop (see :func:`in_store_thread`)."""
        return await in_store_thread(self.lease_db, operation)

    # --- the spawn form ------------------------------------------------------------------------

    @default("options_form")
    def _default_options_form(self):
        if not self.devices and not self.shared_opu:
            return ""  # simulator only: no choice to make, no form

        async def render(spawner):  # JupyterHub awaits a coroutine here
            leases = await spawner.in_store_thread(lambda store: store.active())
            tz = hub_timezone(spawner.lease_timezone)
            now = time.time()
            lines = device_status_lines(spawner.devices, leases, tz, now)
            shared_status = (device_status_lines([spawner.shared_opu], leases, tz, now)[0]
                             if spawner.shared_opu else None)
            max_minutes = spawner.lease_max_duration / 60 if spawner.lease_max_duration else None
            return options_form_html(lines, max_minutes, shared=spawner.shared_opu or None,
                                     shared_status=shared_status)

        return render

    def options_from_form(self, formdata):
        # validated here, before JupyterHub stores them as this server's options: the spawn
        # page shows the message and nothing refused is kept (also used for /hub/spawn?query)
        options = options_from_form(formdata)
        try:
            parse_user_options(options, hardware_available=bool(self.devices),
                               shared_available=bool(self.shared_opu))
        except ValueError as e:
            raise web.HTTPError(400, str(e)) from None
        return options

    # --- start / stop --------------------------------------------------------------------------

    def spawn_choice(self) -> SpawnChoice:
        try:
            return parse_user_options(self.user_options, hardware_available=bool(self.devices),
                                      shared_available=bool(self.shared_opu))
        except ValueError as e:
            self._forget_refused_options()
            raise web.HTTPError(400, str(e)) from None

    def _forget_refused_options(self) -> None:
        """JupyterHub stores API spawn options before start() sees them and reuses them for
        the next spawn without options: drop refused ones so that spawn gets the defaults."""
        self.user_options = {}
        if self.orm_spawner is not None and self.orm_spawner.user_options:
            self.orm_spawner.user_options = {}
            if self.db is not None:
                self.db.commit()

    async def claim_device(self, choice: SpawnChoice) -> Lease | None:
        """The lease ``choice`` needs: on one of ``devices``, or on the shared OPU's device
        (named as OPUHUB_SHARED_OPU names it), which its broker then reserves for the holder."""
        if not choice.wants_lease:
            return None
        username, server_name = self._lease_key
        devices = [self.shared_opu] if choice.reserved else list(self.devices)
        policy = self.lease_policy
        tz = hub_timezone(self.lease_timezone)

        def claim(store: LeaseStore):
            decision = store.claim(username, server_name, devices, policy,
                                   requested_duration=choice.lease_seconds, tz=tz)
            lease = store.lease_for(username, server_name) if isinstance(decision, Grant) else None
            return decision, lease

        try:
            decision, lease = await self.in_store_thread(claim)
        except sqlite3.Error as e:
            self.log.error("OPU lease store %s failed: %s", self.lease_db, e)
            raise web.HTTPError(
                503, "The OPU lease service is unavailable right now; start the 'Simulator' "
                "profile, or try again later.") from None
        if not isinstance(decision, Grant):
            self.log.info("OPU lease refused for %s (%s): %s", self._log_name, decision.reason,
                          decision.message)
            # 409 Conflict: the request is fine, the device is not available right now
            raise web.HTTPError(409, decision.message)
        until = "its server stops" if decision.expires_at is None else iso_utc(decision.expires_at)
        self.log.info("OPU lease: %s holds %s until %s", self._log_name, decision.device, until)
        return lease

    def kernel_device(self, lease: Lease) -> str:
        """The device path as the kernel sees it; the Docker spawner maps it into the container."""
        return lease.device

    def prepare_profile(self, choice: SpawnChoice, lease: Lease | None) -> None:
        """Hook for subclasses (pick the image, the devices to pass, ...)."""

    # --- admission: a burst waits in line (opuhub.admission) ---------------------------------

    async def run_pre_spawn_hook(self):
        # JupyterHub awaits this before start() and outside start_timeout: waiting in line
        # here never times a spawn out
        self._release_start_slot()
        limit = self.start_concurrency or admission.default_limit()
        ticket = admission.STARTS.enter(self._log_name, limit)
        self._start_ticket = ticket
        if not ticket.admitted:
            self.log.info("%s waits to start: number %d in line (%d starting)", self._log_name,
                          ticket.position, admission.STARTS.starting)
        await ticket.wait()
        result = super().run_pre_spawn_hook()
        if inspect.isawaitable(result):
            result = await result
        return result

    def _release_start_slot(self) -> None:
        ticket = getattr(self, "_start_ticket", None)
        if ticket is not None:
            ticket.release()

    async def progress(self):
        """The spawn page's messages: the place in line while waiting, then the start."""
        ticket = getattr(self, "_start_ticket", None)
        shown = None
        while ticket is not None and not ticket.admitted and not ticket.released:
            ticket.changed.clear()  # before reading: a change after the read wakes us
            position = ticket.position
            if position != shown:
                shown = position
                yield {"progress": 5, "message": admission.line_message(
                    position, admission.STARTS.starting)}
                continue
            try:
                await asyncio.wait_for(ticket.changed.wait(), timeout=5)
            except TimeoutError:
                pass
        yield {"progress": 20, "message": "Starting your notebook server…"}
        async for event in super().progress():
            yield event

    async def _wait_answering(self, start_result):
        """Return once the server answers (or http_timeout passed: the hub's own check then
        decides), polling with short intervals (opuhub.readiness)."""
        server = getattr(self, "server", None)
        url = readiness.api_url(start_result, server.base_url if server else "/")
        if url is None:
            return
        started = time.monotonic()
        answered = await readiness.wait_until(
            lambda: readiness.answers(url), self.http_timeout,
            first=self.ready_poll_interval, cap=self.ready_poll_max_interval)
        if answered:
            self.log.info("%s's server answered %.2fs after its start", self._log_name,
                          time.monotonic() - started)

    def _hold_slot_while_kernel_warms(self, start_result) -> bool:
        """Free this start's slot once the server's pre-started kernel is warm (in the
        background: the attendee is in already). False when there is nothing to wait for."""
        ticket = getattr(self, "_start_ticket", None)
        server = getattr(self, "server", None)
        url = readiness.api_url(start_result, server.base_url if server else "/",
                                "opuhub/prestart")
        if ticket is None or ticket.released or url is None or self.kernel_warm_hold <= 0 \
                or not self.api_token:
            return False
        token = self.api_token

        async def hold():
            try:
                await readiness.wait_until(
                    lambda: readiness.kernel_warm(
                        url, token, wait=min(KERNEL_WARM_LONG_POLL, self.kernel_warm_hold)),
                    self.kernel_warm_hold,
                    first=self.ready_poll_interval, cap=self.ready_poll_max_interval)
            finally:
                ticket.release()  # the next in line goes

        self._kernel_warm_task = asyncio.ensure_future(hold())
        return True

    async def start(self):
        holding = False
        try:
            result = await self._start_with_lease()
            await self._wait_answering(result)
            holding = self._hold_slot_while_kernel_warms(result)
            return result
        finally:
            if not holding:
                self._release_start_slot()  # the next in line goes

    async def _start_with_lease(self):
        choice = self.spawn_choice()
        lease = await self.claim_device(choice)
        # a device passed through is the leased one; a reserved shared OPU stays the broker's
        passed = lease if choice.wants_device else None
        self._opu_kernel_env = kernel_env(
            choice,
            self.default_n_components,
            self.kernel_device(passed) if passed else None,
            lease,
            warning=self.lease_warning,
            broker_env=self.shared_opu_env(choice),
        )
        try:
            self.prepare_profile(choice, passed)
            return await super().start()
        except BaseException:
            if lease is not None:
                await self._release(ENDED_SPAWN_FAILED)
            raise

    def shared_opu_env(self, choice: SpawnChoice) -> dict[str, str] | None:
        """The broker's address, this user's name and key, for a "Shared OPU" server."""
        if choice.profile != SHARED or not self.shared_opu_secret:
            return None
        from .shared_opu import kernel_broker_env

        return kernel_broker_env(self.shared_opu_secret, self.user.name, self.shared_opu_url)

    def get_env(self):
        env = super().get_env()
        env.update(getattr(self, "_opu_kernel_env", None) or {})
        env["OPU_SIMULATOR_MAX_N_COMPONENTS"] = str(int(self.simulator_max_n_components))
        env["OPU_SIMULATOR_MAX_WORK"] = f"{self.simulator_max_work:g}"
        return env

    async def _release(self, reason: str) -> Lease | None:
        username, server_name = self._lease_key
        try:
            return await self.in_store_thread(
                lambda store: store.release(username, server_name, reason))
        except sqlite3.Error:
            # the stop (or the failed spawn's error) must go through; the lease service ends
            # the orphaned lease later
            self.log.exception("could not release the OPU lease of %s", self._log_name)
            return None

    async def run_post_stop_hook(self):
        self._release_start_slot()  # a spawn stopped while in line
        # JupyterHub awaits this (maybe_future), so the release runs off the event loop
        ended = await self._release(ENDED_STOPPED)
        if ended is not None:
            self.log.info("OPU lease on %s released: %s stopped after %.0fs", ended.device,
                          self._log_name, ended.seconds_used(time.time()))
        result = super().run_post_stop_hook()
        if inspect.isawaitable(result):  # a deployer's post_stop_hook may be async
            result = await result
        return result
