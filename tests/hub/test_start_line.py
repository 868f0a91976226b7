"""The spawners' start: admission (a burst waits in line and sees its place on the spawn page)
and returning only once the server answers. OPUSpawnerMixin on JupyterHub's base spawner, no
running hub; the server is a small HTTP server on 127.0.0.1."""

import asyncio
import http.server
import threading
from types import SimpleNamespace

import pytest

from opuhub import admission

from .test_lease_spawner import MixinSpawner


async def settle():
    for _ in range(10):
        await asyncio.sleep(0)


@pytest.fixture
def line(monkeypatch):
    fresh = admission.Admission(limit=1)
    monkeypatch.setattr(admission, "STARTS", fresh)
    return fresh


class StartingSpawner(MixinSpawner):
    """Its "server" is at ``address``; ``fail`` makes the start itself fail."""

    address = None
    fail = False

    async def start(self):
        return await super().start()


def make_spawner(tmp_path, name="bob", **kw):
    kw.setdefault("start_concurrency", 1)  # else one per core of this machine
    s = StartingSpawner(user=SimpleNamespace(name=name), devices=[],
                        lease_db=str(tmp_path / "leases.sqlite"), **kw)
    s.server = SimpleNamespace(base_url=f"/user/{name}/")
    return s


class Server:
    """Its API answers 503 to the first ``refusals`` requests, then 200 (counted); its
    opuhub/prestart says "starting" ``warming`` times, then "done" (only with the token)."""

    def __init__(self, refusals: int, warming: int = 0, token: str = ""):
        self.requests = 0
        self.prestart_requests = 0
        self.prestart_queries = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                path, _, query = self.path.partition("?")
                if path.endswith("/opuhub/prestart"):
                    outer.prestart_queries.append(query)
                    if self.headers.get("Authorization") != f"token {token}":
                        self.send_response(403)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    outer.prestart_requests += 1
                    state = "starting" if outer.prestart_requests <= warming else "done"
                    body = f'{{"state": "{state}"}}'.encode()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                outer.requests += 1
                self.send_response(503 if outer.requests <= refusals else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.address = ("127.0.0.1", self.httpd.server_address[1])

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_a_spawn_beyond_the_limit_waits_in_line_and_its_progress_says_where(line, tmp_path):
    async def scenario():
        earlier = line.enter("earlier")  # holds the one slot
        s = make_spawner(tmp_path)
        hook = asyncio.create_task(s.run_pre_spawn_hook())
        await settle()
        assert not hook.done()
        events = s.progress()
        first = await asyncio.wait_for(events.__anext__(), 5)
        assert "next in line" in first["message"] and first["progress"] < 20
        earlier.release()
        second = await asyncio.wait_for(events.__anext__(), 5)
        assert second["message"] == "Starting your notebook server…"
        await asyncio.wait_for(hook, 5)
        assert line.starting == 1  # bob's start holds the slot until its server answers
        await s.run_post_stop_hook()  # stopped before start(): the slot is freed
        assert line.starting == 0

    asyncio.run(scenario())


def test_the_place_in_line_counts_down(line, tmp_path):
    async def scenario():
        earlier = line.enter("earlier")
        spawners = [make_spawner(tmp_path, name=f"u{i}") for i in range(3)]
        hooks = [asyncio.create_task(s.run_pre_spawn_hook()) for s in spawners]
        await settle()
        last = spawners[2].progress()
        assert "number 3 in line: 2 people are ahead" in (await last.__anext__())["message"]
        earlier.release()  # u0 starts
        assert "number 2 in line: 1 person is ahead" in (
            await asyncio.wait_for(last.__anext__(), 5))["message"]
        for s in spawners:
            await s.run_post_stop_hook()
        await asyncio.gather(*hooks)

    asyncio.run(scenario())


def test_start_returns_once_the_server_answers_and_frees_the_slot(line, tmp_path, monkeypatch):
    server = Server(refusals=2)

    async def base_start(self):
        return server.address

    monkeypatch.setattr(MixinSpawner.__mro__[2], "start", base_start)  # jupyterhub's Spawner

    async def scenario():
        s = make_spawner(tmp_path, ready_poll_interval=0.01, http_timeout=30)
        await s.run_pre_spawn_hook()
        assert line.starting == 1
        assert await s.start() == server.address
        assert server.requests == 3  # two 503s, then the answer: only then start() returned
        assert line.starting == 0

    try:
        asyncio.run(scenario())
    finally:
        server.close()


def test_the_slot_is_held_until_the_servers_kernel_is_warm_the_attendee_is_in_at_once(
        line, tmp_path, monkeypatch):
    server = Server(refusals=0, warming=2, token="server-token")

    async def base_start(self):
        return server.address

    monkeypatch.setattr(MixinSpawner.__mro__[2], "start", base_start)

    async def scenario():
        s = make_spawner(tmp_path, ready_poll_interval=0.01)
        s.api_token = "server-token"
        await s.run_pre_spawn_hook()
        assert await s.start() == server.address  # the attendee is let in now
        assert line.starting == 1 and server.prestart_requests < 3  # still warming
        await asyncio.wait_for(s._kernel_warm_task, 10)
        assert server.prestart_requests == 3 and line.starting == 0
        # each request lets the server hold a "starting" answer back until it is warm (this
        # stand-in answers at once, as an image without long polls would)
        assert set(server.prestart_queries) == {"wait=10"}

    try:
        asyncio.run(scenario())
    finally:
        server.close()


def test_a_failed_start_frees_the_slot(line, tmp_path, monkeypatch):
    async def base_start(self):
        raise RuntimeError("the container could not be created")

    monkeypatch.setattr(MixinSpawner.__mro__[2], "start", base_start)

    async def scenario():
        s = make_spawner(tmp_path)
        await s.run_pre_spawn_hook()
        waiting = make_spawner(tmp_path, name="next")
        hook = asyncio.create_task(waiting.run_pre_spawn_hook())
        await settle()
        assert not hook.done()
        with pytest.raises(RuntimeError, match="could not be created"):
            await s.start()
        await asyncio.wait_for(hook, 5)  # the next in line goes
        await waiting.run_post_stop_hook()

    asyncio.run(scenario())


@pytest.mark.parametrize("trait, value", [("start_concurrency", -1), ("ready_poll_interval", 0),
                                          ("ready_poll_max_interval", -1)])
def test_start_traits_refuse_bad_values(tmp_path, trait, value):
    with pytest.raises(Exception, match=trait):
        make_spawner(tmp_path, **{trait: value})
