"""sidecar.policy exhaustively, and sidecar.registry with a fake loader (no TensorFlow).

Each finding of issue 19 has a test here: replay that settles (1), heights
that cannot poison the plan (2), a refused plan said once (3), start-up that
does not depend on future entries (5) and the smaller fixes (7). The hashing
side (4) is in hashing_test.py and tests/startup_test.py, signals (6) in
tests/upgrade_test.py: they need real files and a real process.
"""

import json
import threading
import time

import pytest

from sidecar import model as model_lib
from sidecar import plan as plan_lib
from sidecar import policy
from sidecar import registry as registry_lib
from sidecar import scorer as scorer_lib

H = 5000  # v1.1.0's activation height in the two-entry plan


def entry(version, height, path=None):
    return plan_lib.Entry(version, path or f"/models/{version}", "ab" * 32, height)


def make_plan(*heights, source=None):
    return plan_lib.Plan(tuple(entry(f"v{i}", h) for i, h in enumerate(heights)), source)


TWO = make_plan(0, H)
V0, V1 = TWO.entries
LIMITS = policy.Limits(max_loaded=3, retire_after_blocks=10, idle_requests=100, idle_s=30.0)


class FakeScorer:
    def __init__(self, e):
        self.model_version, self.model_hash, self.closed = e.version, e.expected_hash, False

    def score(self, values, contributions=False, deadline=None):
        if self.closed:
            raise model_lib.ModelError("model is closed")
        return self.model_version

    def has_vector(self, name):
        return name == "v"

    def vector_names(self):
        return ["v"]

    def verify_vector(self, name, deadline=None):
        if self.closed:
            raise model_lib.ModelError("model is closed")
        return scorer_lib.Verification(True, self.model_version, self.model_version, (), name)

    def close(self):
        self.closed = True


class FakeLoader:
    """Loads instantly unless told otherwise; counts loads per version."""

    def __init__(self, broken=(), errors=None):
        self.loads: dict[str, int] = {}
        self.broken = set(broken)
        self.errors = errors or {}
        self.gate = threading.Event()
        self.gate.set()
        self.lock = threading.Lock()

    def __call__(self, e):
        self.gate.wait()
        with self.lock:
            self.loads[e.version] = self.loads.get(e.version, 0) + 1
        if e.version in self.errors:
            raise self.errors[e.version]
        if e.version in self.broken:
            raise scorer_lib.ScorerError(f"{e.version} is broken", "missing_files")
        return FakeScorer(e)


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def registry(plan=TWO, loader=None, background=False, **kw):
    kw.setdefault("retire_after_blocks", 10)
    r = registry_lib.Registry(plan, loader=loader or FakeLoader(), poll_s=kw.pop("poll_s", 0.01), **kw)
    r.start(background=background)
    return r


def loaded(r):
    return [s.model_version for s in r.loaded_scorers()]


# -- policy.aspired, case by case -------------------------------------------------------


def view(position, plan=TWO, **kw):
    return policy.View(plan=plan, position=position, **kw)


def versions(entries):
    return [e.version for e in entries]


def test_policy_unknown_position_wants_newest_first_skipping_rejected():
    three = make_plan(0, 10, 20)
    assert versions(policy.aspired(view(-1, three), LIMITS)) == ["v2", "v1", "v0"]
    one = policy.Limits(1, 10, 100, 30.0)
    assert versions(policy.aspired(view(-1, three, rejected=frozenset({three.entries[2].key})), one)) == ["v1"]


def test_policy_current_then_upcoming_and_old_ones_kept_until_retirable():
    three = make_plan(0, 10, 20)
    k = [e.key for e in three.entries]
    assert versions(policy.aspired(view(12, three), LIMITS)) == ["v1", "v2"]  # v0 not loaded: not staged back
    loaded_all = frozenset(k)
    assert versions(policy.aspired(view(12, three, loaded=loaded_all), LIMITS)) == ["v1", "v2", "v0"]
    # At 20 v0's successor has been active for 10 blocks: v0 is retirable (and idle); v1 is not yet.
    assert versions(policy.aspired(view(20, three, loaded=loaded_all), LIMITS)) == ["v2", "v1"]
    assert versions(policy.aspired(view(30, three, loaded=loaded_all), LIMITS)) == ["v2"]


def test_policy_retirement_and_eviction_respect_recent_use_in_requests_and_seconds():
    k0 = V0.key
    base = dict(loaded=frozenset({k0, V1.key}), requests=500, now=100.0)
    tip = H + 10  # v0 retirable
    used = {k0: policy.Use(450, 0.0)}  # 50 requests ago, long ago in seconds
    assert versions(policy.aspired(view(tip, last_use=used, **base), LIMITS)) == ["v1", "v0"]
    used = {k0: policy.Use(0, 90.0)}  # 10 s ago, 500 requests ago
    assert versions(policy.aspired(view(tip, last_use=used, **base), LIMITS)) == ["v1", "v0"]
    used = {k0: policy.Use(400, 70.0)}  # idle by both measures
    assert versions(policy.aspired(view(tip, last_use=used, **base), LIMITS)) == ["v1"]
    # A model in use keeps its slot against staging an upcoming one.
    three = make_plan(0, 10, 20)
    one_slot = policy.Limits(2, 10, 100, 30.0)
    ks = [e.key for e in three.entries]
    v = view(12, three, loaded=frozenset(ks[:2]), last_use={ks[0]: policy.Use(499, 99.0)}, requests=500, now=100.0)
    assert versions(policy.aspired(v, one_slot)) == ["v1", "v0"]


def test_policy_pinned_before_demanded_before_current_in_arrival_order():
    three = make_plan(0, 10, 20)
    ks = [e.key for e in three.entries]
    one = policy.Limits(1, 10, 100, 30.0)
    assert versions(policy.aspired(view(25, three, demanded=(ks[0], ks[1])), one)) == ["v0"]
    assert versions(policy.aspired(view(25, three, demanded=(ks[1], ks[0])), one)) == ["v1"]
    assert versions(policy.aspired(view(25, three, demanded=(ks[0],), pinned=frozenset({ks[1]})), one)) == ["v1"]
    two = policy.Limits(2, 10, 100, 30.0)
    assert versions(policy.aspired(view(25, three, demanded=(ks[0],)), two)) == ["v0", "v2"]
    # Rejected and unknown keys are never aspired.
    assert versions(policy.aspired(view(25, three, demanded=(("gone",), ks[0]), rejected=frozenset({ks[0]})),
                                   two)) == ["v2"]


def test_policy_next_event_height():
    three = make_plan(0, 10, 20)
    assert [policy.next_event_height(three, p, LIMITS) for p in (-1, 0, 10, 20, 29, 30)] == [
        0, 10, 20, 30, 30, plan_lib.MAX_HEIGHT]


# -- 1. replay that settles --------------------------------------------------------------


def test_replay_of_a_retired_model_settles_after_one_load():
    loader = FakeLoader()
    r = registry(loader=loader, background=True, start_height=0)
    try:
        r.score([], block_height=H + 10)  # the tip passes retirement
        deadline = time.monotonic() + 5
        while "v0" in loaded(r):
            assert time.monotonic() < deadline, "v0 never retired"
            time.sleep(0.01)
        unavailable = []
        for h in range(1, 10_001):
            height = 1 + h % (H - 1)
            try:
                assert r.score([], block_height=height, deadline=time.monotonic() + 5) == "v0"
            except registry_lib.Unavailable as e:
                unavailable.append((h, str(e)))
        assert unavailable == []
        assert loader.loads["v0"] == 2  # start-up, then once for the whole replay
    finally:
        r.close()


def test_a_replayed_model_retires_once_idle_by_requests_and_seconds():
    clock = Clock()
    r = registry(clock=clock, idle_requests=5, idle_s=10.0, start_height=0)
    r.score([], block_height=H + 10)
    r._reconcile()
    assert loaded(r) == ["v1"]
    r._demands[V0.key] = registry_lib._Demand()  # what a request for a replayed height does
    r._reconcile()
    r._reconcile()
    assert loaded(r) == ["v0", "v1"]  # loaded on demand counts as used: not retired before its request ran
    assert r.score([], block_height=1) == "v0"
    for _ in range(4):
        r.score([], block_height=H + 11)
    clock.t += 11
    r._reconcile()
    assert loaded(r) == ["v0", "v1"]  # 4 requests since its use: still in use
    r.score([], block_height=H + 12)
    r._reconcile()
    assert loaded(r) == ["v1"]
    r.close()


def test_max_loaded_one_alternates_replay_and_tip_without_hanging():
    loader = FakeLoader()
    r = registry(loader=loader, background=True, max_loaded=1, start_height=H)
    answers, errors = [], []

    def client(height):
        for _ in range(30):
            try:
                answers.append((height, r.score([], block_height=height)))
            except Exception as e:  # pylint: disable=broad-except
                errors.append(e)

    threads = [threading.Thread(target=client, args=(h,)) for h in (10, H + 1, 11, H + 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    try:
        assert not any(t.is_alive() for t in threads), "a request hung"
        assert errors == []
        assert all(v == ("v0" if h < H else "v1") for h, v in answers) and len(answers) == 120
        assert len(loaded(r)) == 1
    finally:
        r.close()


def test_waits_are_bounded_without_a_deadline_and_close_wakes_waiters():
    loader = FakeLoader()
    r = registry(loader=loader, background=True, start_height=H, max_wait_s=0.2)
    r.score([], block_height=H + 10)
    loader.gate.clear()  # every load from now on hangs
    deadline = time.monotonic() + 5
    while "v0" in loaded(r):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    t0 = time.monotonic()
    with pytest.raises(registry_lib.Unavailable, match="not loaded yet"):
        r.score([], block_height=1, deadline=None)
    assert time.monotonic() - t0 < 5
    r._max_wait = 60.0
    woke = []
    waiter = threading.Thread(target=lambda: woke.append(pytest.raises(registry_lib.Unavailable,
                                                                        r.score, [], None, None, 1)))
    waiter.start()
    time.sleep(0.1)
    closer = threading.Thread(target=r.close)
    closer.start()
    waiter.join(5)
    assert not waiter.is_alive(), "close() did not wake the waiting request"
    assert "shutting down" in str(woke[0].value)
    loader.gate.set()
    closer.join(5)


def test_a_model_loaded_on_demand_is_pinned_until_its_waiter_used_it():
    r = registry(max_loaded=1, start_height=H)
    demand = registry_lib._Demand(waiters=1)
    r._demands[V0.key] = demand
    r._reconcile()
    assert demand.scorer is not None and r._pins == {V0.key: 1}
    r._demands[V1.key] = registry_lib._Demand(waiters=1)  # the tip wants the only slot
    r._reconcile()
    assert loaded(r) == ["v0"] and not demand.scorer.closed
    r._unpin(V0.key)
    r._reconcile()
    assert loaded(r) == ["v1"]
    r.close()


# -- 2. heights cannot poison the plan ---------------------------------------------------


class BadFeatures(FakeScorer):
    def score(self, values, contributions=False, deadline=None):
        raise scorer_lib.FeatureError("3 features, expected 768")


def test_an_invalid_request_does_not_move_the_highest_height():
    r = registry(loader=lambda e: BadFeatures(e))
    with pytest.raises(scorer_lib.FeatureError):
        r.score([0.0] * 3, block_height=plan_lib.MAX_HEIGHT)
    assert r.highest_height == -1
    r.close()


def test_a_request_too_far_ahead_is_out_of_range_and_a_new_plan_is_still_adopted(tmp_path):
    path = tmp_path / "plan.json"
    doc = {"entries": [{"version": "v0", "path": "a", "expected_hash": "ab" * 32, "activation_height": 0}]}
    path.write_text(json.dumps(doc))
    r = registry(plan=plan_lib.load(str(path)), start_height=100, max_blocks_ahead=1000)
    with pytest.raises(registry_lib.HeightOutOfRange, match=r"more than 1000 blocks \(--max-blocks-ahead\).*\(100\)"):
        r.score([], block_height=plan_lib.MAX_HEIGHT)
    with pytest.raises(registry_lib.HeightOutOfRange):
        r.score([], block_height=1101)
    r.score([], block_height=1100)  # the bound moves with the heights served
    r.score([], block_height=2100)
    assert r.highest_height == 2100
    doc["entries"].append({"version": "v1", "path": "b", "expected_hash": "cd" * 32, "activation_height": 3000})
    path.write_text(json.dumps(doc))
    r._reload(forced=True)
    assert r.plan_error == "" and [e.version for e in r.plan.entries] == ["v0", "v1"]
    r.close()


# -- 3. a refused plan is said once, and shown while it lasts ---------------------------


class Counter:
    def __init__(self):
        self.rejections = []

    def record_rejection(self, version, reason):
        self.rejections.append((version, reason))


def test_a_refused_plan_is_counted_once_per_file_and_cleared_when_restored(tmp_path):
    path = tmp_path / "plan.json"
    doc = {"entries": [{"version": "v0", "path": "a", "expected_hash": "ab" * 32, "activation_height": 0},
                       {"version": "v1", "path": "b", "expected_hash": "cd" * 32, "activation_height": 50}]}
    original = json.dumps(doc)
    path.write_text(original)
    counter = Counter()
    r = registry(plan=plan_lib.load(str(path)), observer=counter)
    r.score([], block_height=60)
    doc["entries"][1]["activation_height"] = 70
    path.write_text(json.dumps(doc))
    for h in range(61, 66):  # the message names the highest height, which moves
        r.score([], block_height=h)
        r._reload(forced=False)
    assert counter.rejections == [("v1", "history_rewrite")]
    assert "heights already served (up to 65)" in r.plan_error
    path.write_text("{not json")
    r._reload(forced=False)
    r._reload(forced=False)
    assert counter.rejections[1:] == [("", "invalid_plan")]
    path.write_text(original)
    r._reload(forced=False)
    assert r.plan_error == ""
    r.close()


# -- 5. start-up ---------------------------------------------------------------------------


def test_start_up_with_a_broken_future_entry_starts_and_rejects_it():
    r = registry(loader=FakeLoader(broken={"v1"}), max_loaded=2, start_height=10)
    assert loaded(r) == ["v0"]
    states = {s.entry.version: (s.state, s.reason) for s in r.statuses()}
    assert states == {"v0": (registry_lib.State.ACTIVE, ""),
                      "v1": (registry_lib.State.REJECTED, "v1 is broken")}
    r.close()
    # With one slot the future entry cannot be staged ahead: it stays pending
    # (VeidUpgradeModelNotVerified warns before its activation), and start-up succeeds.
    r = registry(loader=FakeLoader(broken={"v1"}), max_loaded=1, start_height=10)
    assert loaded(r) == ["v0"] and r.statuses()[1].state == registry_lib.State.PENDING
    r.close()
    # Position unknown: the newest is tried first, and its failure is not fatal.
    r = registry(loader=FakeLoader(broken={"v1"}), max_loaded=1)
    assert loaded(r) == ["v0"]
    r.close()


def test_the_manager_stages_the_other_entries_right_after_start_up_not_at_the_first_poll():
    r = registry(background=True, max_loaded=2, poll_s=3600.0)
    deadline = time.monotonic() + 10
    while sorted(loaded(r)) != ["v0", "v1"]:
        assert time.monotonic() < deadline, [(s.entry.version, s.state) for s in r.statuses()]
        time.sleep(0.01)
    r.close()


def test_start_up_refuses_a_broken_entry_for_the_start_height_and_loads_it_first():
    loader = FakeLoader(broken={"v0"})
    with pytest.raises(scorer_lib.ScorerError, match="v0 is broken"):
        registry(loader=loader, start_height=10)
    assert loader.loads == {"v0": 1}  # refused before anything else was loaded


# -- 7. smaller fixes ----------------------------------------------------------------------


def test_a_loader_error_that_is_not_a_scorer_error_is_a_rejection_not_a_retry_loop():
    loader = FakeLoader(errors={"v1": json.JSONDecodeError("Expecting value", "x", 0)})
    r = registry(loader=loader, start_height=10)
    for _ in range(3):
        r._reconcile()
    assert loader.loads["v1"] == 1
    (st,) = [s for s in r.statuses() if s.entry.version == "v1"]
    assert st.state == registry_lib.State.REJECTED and st.reason.startswith("JSONDecodeError: Expecting value")
    r.close()


def test_verify_determinism_skips_a_model_closed_under_it():
    r = registry(start_height=0)
    assert loaded(r) == ["v0", "v1"]
    r.loaded_scorers()[0].close()  # unloaded between listing and checking
    v = r.verify_vector("v")
    assert v.passed and v.actual_output_hash == "v1"
    r.close()


def test_plan_activation_height_is_bounded_by_int64():
    doc = {"entries": [{"version": "v0", "path": "a", "expected_hash": "ab" * 32, "activation_height": 0},
                       {"version": "v1", "path": "b", "expected_hash": "cd" * 32, "activation_height": 2**63}]}
    with pytest.raises(plan_lib.PlanError, match=r"v1.*<= 2\^63-1"):
        plan_lib.parse(json.dumps(doc).encode(), "/")


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
