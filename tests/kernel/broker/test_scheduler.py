"""The shared OPU's scheduler, on its own: a fake clock, no sockets, no threads."""

import random

import pytest

from opu_kernel.broker.scheduler import FairScheduler, Job, QuotaExceeded


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def make(clock=None, **kwargs):
    clock = clock or Clock()
    return FairScheduler(clock=clock, **kwargs), clock


def submit(sched, user, frames, key=None):
    job = Job(key or (user, random.random()), user, frames)
    sched.submit(job)
    return job


def drain(sched, clock=None, frame_s=0.0, limit=100_000):
    """Run slices until idle; returns [(user, frames)] in order."""
    served = []
    for _ in range(limit):
        piece = sched.next_slice()
        if piece is None:
            return served
        served.append((piece.job.user, piece.frames))
        if clock is not None:
            clock.now += piece.frames * frame_s
    raise AssertionError("the scheduler did not run dry")


def test_two_busy_users_alternate_by_quantum_whatever_their_batch_sizes():
    sched, _ = make(quantum=32, max_slice=256)
    submit(sched, "big", 100_000)
    for _ in range(200):
        submit(sched, "small", 10)
    order = drain(sched)
    # While both have work, every turn is one quantum of frames (or the small user's whole
    # request plus its next ones, within its credit).
    served = {"big": 0, "small": 0}
    for user, frames in order:
        served[user] += frames
        if served["small"] < 2000:
            assert abs(served["big"] - served["small"]) <= 32 + 10
    assert served == {"big": 100_000, "small": 2000}


def test_weights_share_frames_in_proportion():
    sched, _ = make(quantum=16, max_slice=64, weights={"tutor": 3.0})
    submit(sched, "tutor", 30_000)
    submit(sched, "alice", 30_000)
    submit(sched, "bob", 30_000)
    served = {"tutor": 0, "alice": 0, "bob": 0}
    for _ in range(1000):
        piece = sched.next_slice()
        served[piece.job.user] += piece.frames
    total = sum(served.values())
    assert served["tutor"] / total == pytest.approx(0.6, abs=0.01)
    assert served["alice"] == pytest.approx(served["bob"], abs=16)


def test_a_huge_batch_is_sliced_and_a_small_request_waits_one_turn_at_most():
    sched, _ = make(quantum=512, max_slice=128)
    huge = submit(sched, "huge", 100_000)
    first = sched.next_slice()
    assert first.job is huge and first.frames == 128  # the slice cap, not the credit
    submit(sched, "quick", 10)
    frames_before_quick = first.frames
    while True:
        piece = sched.next_slice()
        if piece.job.user == "quick":
            break
        assert piece.frames <= 128
        frames_before_quick += piece.frames
    assert piece.frames == 10
    assert frames_before_quick <= 512  # the rest of huge's turn, no more


def test_a_slice_never_leaves_a_single_row_behind():
    sched, _ = make(quantum=32, max_slice=256)
    submit(sched, "alice", 33)
    assert [f for _, f in drain(sched)] == [33]
    sched, _ = make(quantum=32, max_slice=256)
    submit(sched, "alice", 1)
    assert [f for _, f in drain(sched)] == [1]


def test_a_user_who_comes_straight_back_keeps_place_and_credit():
    sched, clock = make(quantum=32, max_slice=256, credit_ttl_s=2.0)
    submit(sched, "bob", 1000)
    submit(sched, "alice", 10)
    assert sched.next_slice().job.user == "bob"
    assert sched.next_slice().frames == 10  # alice: 22 frames of credit left
    clock.now += 0.5
    submit(sched, "alice", 100)  # the next cell: she is still in the round
    assert sched.next_slice().job.user == "bob"  # no early turn for her
    assert sched.next_slice().frames == 54  # 22 kept + 32 granted


def test_credit_is_forfeited_by_who_stays_away():
    sched, clock = make(quantum=32, max_slice=256, credit_ttl_s=2.0)
    submit(sched, "bob", 1000)
    submit(sched, "alice", 10)
    sched.next_slice()
    assert sched.next_slice().frames == 10  # 22 left
    sched.next_slice()  # bob; then alice's empty place comes round and is removed
    assert sched.waiting_users() == ["bob"] and sched.next_slice().job.user == "bob"
    clock.now += 3.0
    submit(sched, "alice", 100)
    assert sched.next_slice().frames == 32  # a newcomer's turn, without the old credit


def test_a_newcomer_goes_before_the_round_once():
    sched, _ = make(quantum=32, max_slice=256)
    for user in ("a", "b", "c"):
        submit(sched, user, 10_000)
    assert [sched.next_slice().job.user for _ in range(4)] == ["a", "b", "c", "a"]
    submit(sched, "quick", 40)
    assert sched.position("quick") == 1 and sched.position("a") == 4
    # its first turn now (32 of its 40 frames), then the back of the round
    assert [sched.next_slice().job.user for _ in range(5)] == ["quick", "b", "c", "a", "quick"]


def test_cancel_frees_the_place_and_the_round():
    sched, _ = make(quantum=32)
    alice = submit(sched, "alice", 1000)
    submit(sched, "bob", 1000)
    sched.next_slice()  # alice's turn: then bob is next
    assert sched.position("bob") == 1 and sched.position("alice") == 2
    assert sched.cancel(alice)
    assert alice.cancelled and sched.position("alice") is None
    assert sched.position("bob") == 1
    assert {u for u, _ in drain(sched)} == {"bob"}
    assert not sched.cancel(alice)


def test_quota_refuses_what_would_exceed_it_and_says_when_it_frees():
    sched, clock = make(quantum=100, quota_frames=1000, quota_window_s=600)
    submit(sched, "alice", 600)
    drain(sched)
    submit(sched, "alice", 300)
    with pytest.raises(QuotaExceeded) as info:
        submit(sched, "alice", 200)  # 600 used + 300 queued + 200 > 1000
    assert "600 of 1000 frames" in str(info.value) and "Try again in" in str(info.value)
    submit(sched, "bob", 1000)  # quotas are per user
    drain(sched)
    clock.now += 700  # the first 600 left the window
    submit(sched, "alice", 700)


def test_a_reservation_serves_only_its_holder_and_the_others_keep_their_place():
    sched, clock = make(quantum=32)
    submit(sched, "alice", 100)
    submit(sched, "bob", 100)
    sched.reserve("carol", clock.now, clock.now + 10)
    assert sched.next_slice() is None  # reserved, and carol has nothing to do: idle
    submit(sched, "carol", 100)
    assert [u for u, _ in drain(sched)] == ["carol"]
    assert sched.position("alice") == 1 and sched.position("bob") == 2
    with pytest.raises(ValueError, match="reserved for carol"):
        sched.reserve("dave", clock.now + 5, clock.now + 20)
    clock.now += 10
    assert {u for u, _ in drain(sched)} == {"alice", "bob"}


def test_release_ends_a_reservation_early():
    sched, clock = make()
    sched.reserve("carol", clock.now, clock.now + 100)
    submit(sched, "alice", 10)
    assert sched.next_slice() is None
    sched.release("carol")
    assert sched.next_slice().job.user == "alice"


def test_share_reports_recent_frames_and_fair_share():
    sched, clock = make(quantum=10, weights={"alice": 3.0})
    submit(sched, "alice", 30)
    submit(sched, "bob", 10)
    drain(sched)
    submit(sched, "bob", 10)
    share = sched.share("alice")
    assert share["recent_frames"] == 30 and share["recent_total_frames"] == 40
    assert share["fair_share"] == pytest.approx(0.75)
    clock.now += 120
    assert sched.share("alice")["recent_share"] is None


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="weight of alice"):
        FairScheduler(weights={"alice": 0})
    with pytest.raises(ValueError, match="quantum"):
        FairScheduler(quantum=0)


def test_fifty_closed_loop_users_get_their_fair_share():
    """A notebook-like workload (one request at a time, think time between) for 50 users of
    different batch sizes and weights, on a simulated clock: each user's frames over the
    contended stretch are within 10 % of its weighted fair share."""
    rng = random.Random(7)
    clock = Clock()
    weights = {f"u{i}": 2.0 for i in range(5)}
    sched = FairScheduler(clock=clock, quantum=16, max_slice=128, weights=weights)
    frame_s = 0.0005
    users = [f"u{i}" for i in range(50)]
    batch = {u: rng.choice([40, 100, 333, 1000, 5000]) for u in users}
    think = {u: rng.uniform(0, 0.05) for u in users}
    back_at = {u: clock.now + rng.uniform(0, 0.2) for u in users}
    pending = {}
    served = dict.fromkeys(users, 0)
    start, end = clock.now + 1.0, clock.now + 30.0
    while clock.now < end:
        for u in users:
            if u not in pending and back_at[u] <= clock.now:
                pending[u] = submit(sched, u, batch[u])
        piece = sched.next_slice()
        if piece is None:
            clock.now = min(back_at.values())
            continue
        clock.now += piece.frames * frame_s
        if clock.now > start:
            served[piece.job.user] += piece.frames
        job = piece.job
        if job.remaining == 0 and pending.get(job.user) is job:
            del pending[job.user]
            back_at[job.user] = clock.now + think[job.user]
    total = sum(served.values())
    weight_sum = sum(sched.weight(u) for u in users)
    for u in users:
        fair = total * sched.weight(u) / weight_sum
        assert abs(served[u] - fair) <= 0.10 * fair, (u, batch[u], served[u], fair)


def test_a_charged_user_waits_her_debt_out_and_the_device_never_idles_for_it():
    """A slice that held the device for seconds (a new simulated matrix) is charged: the
    others get that many frames before her next slice; alone, she is served at once."""
    sched, clock = make(quantum=10)
    submit(sched, "mallory", 40)
    submit(sched, "alice", 400)
    first = sched.next_slice()
    assert first.job.user == "mallory"
    sched.charge("mallory", 200)
    served = drain(sched)
    before = served[:[u for u, _ in served].index("mallory")]
    assert sum(f for u, f in before if u == "alice") >= 190
    assert sched.served["mallory"] == 40 + 200 and sched.share("mallory")["recent_frames"] == 240
    sched.charge("mallory", 10_000)  # deep in debt, and alone: no idle rounds
    submit(sched, "mallory", 10)
    assert sched.next_slice().job.user == "mallory"
