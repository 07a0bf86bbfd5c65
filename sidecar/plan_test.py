"""Parsing, selection by height and the history rule of sidecar.plan."""

import json
import os

import pytest

from sidecar import plan as plan_lib

H1, H2 = "a" * 64, "b" * 64


def doc(*entries, **top):
    return json.dumps({"entries": [dict(zip(("version", "path", "expected_hash", "activation_height"), e))
                                   for e in entries], **top}).encode()


TWO = doc(("v1", "m1", H1, 0), ("v2", "/abs/m2", H2, 100))


def test_parse_resolves_paths_and_selects_by_height():
    p = plan_lib.parse(TWO, "/models", "plan.json")
    assert [e.path for e in p.entries] == ["/models/m1", "/abs/m2"]
    assert p.heights == (0, 100)
    assert p.requires_height
    assert [p.entry_for(h).version for h in (0, 1, 99, 100, 101, 10**12)] == ["v1"] * 3 + ["v2"] * 3
    assert p.successor(p.entries[0]) is p.entries[1] and p.successor(p.entries[1]) is None
    assert p.digest and p.digest == plan_lib.parse(TWO, "/elsewhere").digest  # bytes, not location


def test_load_reads_relative_to_the_file(tmp_path):
    f = tmp_path / "plan.json"
    f.write_bytes(TWO)
    p = plan_lib.load(str(f))
    assert p.entries[0].path == os.path.join(str(tmp_path), "m1") and p.source == str(f)
    with pytest.raises(plan_lib.PlanError, match="cannot read upgrade plan"):
        plan_lib.load(str(tmp_path / "missing.json"))


def test_single_plan_serves_every_height_without_one():
    p = plan_lib.single("models/trust_score", "v1.0.0", None)
    assert not p.requires_height and p.entry_for(123).expected_hash is None and os.path.isabs(p.entries[0].path)


@pytest.mark.parametrize("data, message", [
    (b"{", "not valid JSON"),
    (b"[]", 'with an "entries" list'),
    (json.dumps({"entries": [], "x": 1}).encode(), "unknown top-level keys"),
    (doc(), "no entries"),
    (doc(("v1", "m", H1, 5)), "first entry must activate at height 0"),
    (doc(("v1", "m", H1, 0), ("v2", "m2", H2, 0)), "strictly increase"),
    (doc(("v1", "m", H1, 0), ("v1", "m2", H2, 9)), "appears twice"),
    (doc(("v1", "m", "ABC", 0)), "64 lowercase hex"),
    (doc(("v1", "m", H1, -1)), "integer >= 0"),
    (doc(("v1", "m", H1, True)), "integer >= 0"),
    (doc(("v1", "m", H1, 1.5)), "integer >= 0"),
    (doc(("", "m", H1, 0)), "version must be"),
    (doc(("v1", "", H1, 0)), "path must be"),
    (json.dumps({"entries": [{"version": "v1", "path": "m", "expected_hash": H1, "activation_heigth": 0}]}).encode(),
     "keys must be exactly"),
])
def test_invalid_plans_name_the_problem(data, message):
    with pytest.raises(plan_lib.PlanError, match=message):
        plan_lib.parse(data, "/m", "plan.json")


def test_history_rule():
    old = plan_lib.parse(TWO, "/m")
    later = plan_lib.parse(doc(("v1", "m1", H1, 0), ("v3", "m3", "c" * 64, 200)), "/m")
    moved = plan_lib.parse(doc(("v1", "elsewhere", H1, 0), ("v2", "m2", H2, 100)), "/m")
    # Nothing served yet: any plan goes.
    assert plan_lib.history_conflict(old, later, -1) is None
    # Heights up to 99 keep v1 in both; the moved path is the same model.
    assert plan_lib.history_conflict(old, later, 99) is None
    assert plan_lib.history_conflict(old, moved, 10**6) is None
    # Height 100 was served by v2; the new plan would serve it with v1.
    version, why = plan_lib.history_conflict(old, later, 100)
    assert version == "v2" and "up to 100" in why and "v2" in why
    rehashed = plan_lib.parse(doc(("v1", "m1", "d" * 64, 0)), "/m")
    assert plan_lib.history_conflict(old, rehashed, 0)[0] == "v1"


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
