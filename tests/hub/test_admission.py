"""opuhub.admission: at most `limit` starts at a time, the rest in arrival order, each knowing
its place; opuhub.readiness: short bounded polling and the URL the hub checks."""

import asyncio
import http.server
import threading

import pytest

from opuhub import admission, readiness


def run(coro):
    return asyncio.run(coro)


async def settle():
    """Let woken tasks run (a shielded wait takes a few turns of the loop)."""
    for _ in range(5):
        await asyncio.sleep(0)


def test_starts_beyond_the_limit_wait_in_arrival_order_and_know_their_place():
    async def scenario():
        line = admission.Admission(limit=2)
        tickets = [line.enter(f"u{i}") for i in range(5)]
        assert [t.position for t in tickets] == [0, 0, 1, 2, 3]
        assert (line.starting, line.waiting) == (2, 3)
        order = []

        async def start(ticket):
            await ticket.wait()
            order.append(ticket.name)

        tasks = [asyncio.create_task(start(t)) for t in tickets]
        await settle()
        assert order == ["u0", "u1"]
        tickets[1].release()
        await settle()
        assert order == ["u0", "u1", "u2"]
        assert [t.position for t in tickets[3:]] == [1, 2]
        tickets[1].release()  # twice: no extra slot
        assert line.starting == 2
        for t in tickets:
            t.release()
        await asyncio.gather(*tasks)
        assert order == ["u0", "u1", "u2", "u3", "u4"]
        assert (line.starting, line.waiting) == (0, 0)

    run(scenario())


def test_a_spawn_abandoned_in_line_frees_its_place():
    async def scenario():
        line = admission.Admission(limit=1)
        first, second, third = (line.enter(n) for n in ("a", "b", "c"))
        waiting = asyncio.create_task(second.wait())
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert third.position == 1
        first.release()
        await asyncio.wait_for(third.wait(), 1)
        assert third.admitted and not second.admitted

    run(scenario())


def test_place_changes_wake_the_progress_page():
    async def scenario():
        line = admission.Admission(limit=1)
        first, second = line.enter("a"), line.enter("b")
        second.changed.clear()
        first.release()
        await asyncio.wait_for(second.changed.wait(), 1)
        assert second.position == 0

    run(scenario())


def test_a_larger_limit_admits_those_waiting():
    async def scenario():
        line = admission.Admission(limit=1)
        line.enter("a")
        b = line.enter("b")
        assert b.position == 1
        c = line.enter("c", limit=3)
        assert (b.position, c.position, line.starting) == (0, 0, 3)

    run(scenario())


def test_the_default_limit_is_one_more_than_the_cores_this_process_may_use():
    import os

    assert admission.default_limit() == len(os.sched_getaffinity(0)) + 1
    assert admission.Admission().limit == admission.default_limit()


def test_the_line_message_says_the_place_and_who_is_ahead():
    assert "next in line" in admission.line_message(1, 2)
    assert "number 2 in line: 1 person is ahead" in admission.line_message(2, 2)
    assert "number 7 in line: 6 people are ahead of you and 2 server(s)" in \
        admission.line_message(7, 2)


# --- readiness ---------------------------------------------------------------------------------


def test_intervals_grow_to_the_cap():
    waits = readiness.intervals(0.05, 1.5, 0.5)
    got = [round(next(waits), 4) for _ in range(9)]
    assert got[:3] == [0.05, 0.075, 0.1125]
    assert got[-2:] == [0.5, 0.5]
    assert all(a <= b for a, b in zip(got, got[1:]))


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def clock(self):
        return self.now

    async def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def test_wait_until_returns_at_the_first_true_check_and_never_sleeps_past_the_timeout():
    fake = FakeClock()
    answers = iter([False, False, False, True])

    async def check():
        return next(answers)

    assert run(readiness.wait_until(check, 10, clock=fake.clock, sleep=fake.sleep))
    assert fake.sleeps == pytest.approx([0.05, 0.075, 0.1125])

    fake = FakeClock()

    async def never():
        return False

    assert not run(readiness.wait_until(never, 2, clock=fake.clock, sleep=fake.sleep))
    assert fake.now == pytest.approx(2)  # the last wait is cut at the deadline
    assert max(fake.sleeps) == 0.5


def test_api_url_is_what_the_hub_checks():
    assert readiness.api_url(("172.18.0.5", 8888), "/user/ann/") == \
        "http://172.18.0.5:8888/user/ann/api"
    assert readiness.api_url(("::1", 9000), "/user/ann/") == "http://[::1]:9000/user/ann/api"
    assert readiness.api_url("http://127.0.0.1:5000/", "/user/b/") == \
        "http://127.0.0.1:5000/user/b/api"
    assert readiness.api_url(("127.0.0.1", 80), "/") == "http://127.0.0.1:80/api"
    assert readiness.api_url("https://10.0.0.1:8888", "/user/c/") is None  # internal TLS
    assert readiness.api_url(None, "/user/c/") is None


def test_answers_is_true_for_any_non_5xx_and_false_when_nothing_listens():
    statuses = {"/ok/api": 200, "/redirect/api": 302, "/broken/api": 503}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(statuses.get(self.path, 404))
            self.send_header("Location", "/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"

    async def check_all():
        try:
            got = [await readiness.answers(f"{base}/{path}/api")
                   for path in ("ok", "redirect", "missing", "broken")]
        finally:
            server.shutdown()
            server.server_close()
        return got + [await readiness.answers(f"{base}/ok/api")]  # closed: refused

    # a 404 is an answer too; a 5xx is not
    assert run(check_all()) == [True, True, True, False, False]
