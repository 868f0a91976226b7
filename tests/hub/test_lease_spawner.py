"""OPUSpawnerMixin behaviour that needs no running hub."""

import asyncio
import sqlite3
import threading
from types import SimpleNamespace

import pytest
from jupyterhub.spawner import Spawner
from tornado import web

from opuhub.lease_spawner import OPUSpawnerMixin
from opuhub.lease_store import LeaseStore
from opuhub.profiles import SpawnChoice
from opuhub.usernames import InvalidUsername, home_dir_name


class MixinSpawner(OPUSpawnerMixin, Spawner):
    """The mixin on JupyterHub's base spawner: what it adds, without a real spawner's extras."""

    async def stop(self, now=False):
        pass

    async def poll(self):
        return 0


def spawner(user="alice", **kw):
    return MixinSpawner(user=SimpleNamespace(name=user), **kw)


def test_an_unusable_lease_store_fails_the_spawn_clearly_and_never_the_stop(tmp_path):
    broken = tmp_path / "not-a-database.sqlite"
    broken.write_bytes(b"this is not SQLite" * 100)
    s = spawner(devices=["/dev/opu0"], lease_db=str(broken))
    with pytest.raises(web.HTTPError) as raised:
        asyncio.run(s.claim_device(SpawnChoice("hardware")))
    assert raised.value.status_code == 503 and "Simulator" in raised.value.log_message
    asyncio.run(s.run_post_stop_hook())  # logs, does not raise


def test_simulator_needs_no_lease_and_bad_options_are_a_400(tmp_path):
    s = spawner(devices=[], lease_db=str(tmp_path / "leases.sqlite"))
    assert asyncio.run(s.claim_device(SpawnChoice("simulator"))) is None
    assert s.options_form == ""  # no device: no choice to offer
    s.user_options = {"profile": "hardware"}
    with pytest.raises(web.HTTPError) as raised:
        s.spawn_choice()
    assert raised.value.status_code == 400 and "no OPU device" in raised.value.log_message


@pytest.mark.parametrize("trait, value", [("lease_max_duration", -1), ("lease_quota_period", 0),
                                          ("default_n_components", 0)])
def test_traits_refuse_bad_values(trait, value):
    with pytest.raises(Exception, match=trait):
        spawner(**{trait: value})


def test_home_directories_cannot_escape():
    assert home_dir_name("alice") == "alice"
    for name in ("../../etc", "..", "."):
        with pytest.raises(InvalidUsername):
            home_dir_name(name)


# --- the hub's event loop never waits for SQLite ---------------------------------------------------


class WriteLock:
    """Another connection holding the lease database's write lock (BEGIN EXCLUSIVE) until
    :meth:`release`, in its own thread, as a slow lease-service transaction would. If the lock
    is never released by the test, it lets go after ``limit`` seconds so a failing test fails
    instead of hanging."""

    def __init__(self, path, limit: float = 20.0):
        self.path, self.limit = path, limit
        self.held, self.done = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._hold, daemon=True)

    def _hold(self):
        db = sqlite3.connect(self.path, isolation_level=None)
        try:
            db.execute("BEGIN EXCLUSIVE")
            self.held.set()
            self.done.wait(self.limit)
            db.execute("COMMIT")
        finally:
            db.close()

    def __enter__(self):
        self.thread.start()
        assert self.held.wait(10), "could not lock the lease database"
        return self

    def release(self):
        self.done.set()

    def __exit__(self, *exc):
        self.release()
        self.thread.join()


async def steps_while_pending(task: asyncio.Task, steps: int = 5) -> int:
    """Let another coroutine take ``steps`` turns of the event loop while ``task`` waits;
    returns how many it took before ``task`` finished (all of them when the loop is free)."""
    taken = 0
    for _ in range(steps):
        await asyncio.sleep(0.01)
        if task.done():
            break
        taken += 1
    return taken


def hardware_spawner(tmp_path, user="alice"):
    db = tmp_path / "leases.sqlite"
    LeaseStore(db)  # the schema exists; the lock below is on a real lease database
    s = spawner(user, devices=["/dev/opu0"], lease_db=str(db))
    return s, db


def test_a_claim_waiting_for_the_database_lock_leaves_the_event_loop_free(tmp_path):
    s, db = hardware_spawner(tmp_path)

    async def scenario():
        with WriteLock(db) as lock:
            claim = asyncio.create_task(s.claim_device(SpawnChoice("hardware")))
            taken = await steps_while_pending(claim)
            lock.release()
            return taken, await claim

    taken, lease = asyncio.run(scenario())
    # the other coroutine ran every step while the claim waited for the lock
    assert taken == 5
    assert lease is not None and lease.device == "/dev/opu0" and lease.username == "alice"


def test_the_stop_hook_and_the_spawn_form_wait_for_the_lock_off_the_event_loop(tmp_path):
    s, db = hardware_spawner(tmp_path)
    assert asyncio.run(s.claim_device(SpawnChoice("hardware"))) is not None
    render = s.options_form
    assert callable(render)

    async def scenario():
        with WriteLock(db) as lock:
            stop = asyncio.create_task(s.run_post_stop_hook())
            taken_by_stop = await steps_while_pending(stop)
            lock.release()
            await stop
        with WriteLock(db) as lock:
            # WAL: reading the leases for the form does not wait for a writer; it still runs
            # on the store's threads, so nothing here may block the loop
            form = asyncio.create_task(render(s))
            await steps_while_pending(form, steps=1)
            lock.release()
            html = await form
        return taken_by_stop, html, await s.current_lease()

    taken_by_stop, html, lease_after = asyncio.run(scenario())
    assert taken_by_stop == 5
    assert lease_after is None  # the stop released it once the lock was free
    assert "/dev/opu0" in html


def test_a_locked_store_past_its_busy_timeout_is_still_a_503(tmp_path):
    s, db = hardware_spawner(tmp_path)
    from opuhub import lease_spawner

    lease_spawner._store_at.cache_clear()
    quick = LeaseStore(db, busy_timeout=0.1)
    real = lease_spawner._store_at
    lease_spawner._store_at = lambda path: quick
    try:
        with WriteLock(db), pytest.raises(web.HTTPError) as raised:
            asyncio.run(s.claim_device(SpawnChoice("hardware")))
    finally:
        lease_spawner._store_at = real
    assert raised.value.status_code == 503
