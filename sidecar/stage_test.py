"""sidecar/stage.py's pure decisions: governance input, sources, install and plan merge.

tests/stage_test.py runs the whole command against a real registry, HTTPS
server and sidecar.
"""

import json

import pytest

from sidecar import plan as plan_lib
from sidecar import stage

H = "ab" * 32
H2 = "cd" * 32


@pytest.mark.parametrize("value,expected", [(0, 0), (5000, 5000), ("5000", 5000), ("0", 0)])
def test_height_as_number_or_string(value, expected):
    assert stage.parse_height(value, "height") == expected


@pytest.mark.parametrize("value", [-1, "-1", "5e3", "", " 5", "0x10", 1.5, True, None, "٣"])
def test_other_heights_are_refused_naming_the_field(value):
    with pytest.raises(stage.StageError, match=r"^upgrade-info\[2\]\.height: "):
        stage.parse_height(value, "upgrade-info[2].height")


@pytest.mark.parametrize("text,kind,location,digest,repository", [
    (f"oci://127.0.0.1:5000/veid/models@sha256:{H}", "oci", "https://127.0.0.1:5000", f"sha256:{H}", "veid/models"),
    (f"oci://r.example/m@SHA256:{H.upper()}", "oci", "https://r.example", f"sha256:{H}", "m"),
    (f"https://m.example/v/model.tar?checksum=sha256:{H}", "url", "https://m.example/v/model.tar", f"sha256:{H}", ""),
    (f"http://127.0.0.1:1/model.tar?checksum={H.upper()}", "url", "http://127.0.0.1:1/model.tar", f"sha256:{H}", ""),
    ("/srv/model.tar", "file", "/srv/model.tar", None, ""),
    (f"model.tar?checksum=sha256:{H}", "file", "model.tar", f"sha256:{H}", ""),
    (f"file:///srv/model.tar?checksum=sha256:{H}", "file", "/srv/model.tar", f"sha256:{H}", ""),
])
def test_sources(text, kind, location, digest, repository):
    assert stage.parse_source(text) == stage.Source(kind, location, digest, repository)


def test_plain_http_registry():
    assert stage.parse_source(f"oci://127.0.0.1:5000/m@sha256:{H}", plain_http=True).location == "http://127.0.0.1:5000"


@pytest.mark.parametrize("text,fragment", [
    ("oci://127.0.0.1:5000/m:v1.1.0", "a digest, not a tag"),
    (f"oci://127.0.0.1:5000@sha256:{H}", "oci://HOST/REPOSITORY@sha256"),
    ("oci://r/m@sha256:1234", "artifact digest: "),
    ("https://m.example/model.tar", "has no ?checksum"),
    ("https://m.example/model.tar?checksum=md5:00", "artifact checksum: "),
    (f"https://m.example/model.tar?checksum={H}&checksum={H}", "one checksum"),
    (f"https://m.example/model.tar?checksum={H}&x=1", "one checksum"),
    (f"ftp://m.example/model.tar?checksum={H}", "unsupported scheme 'ftp'"),
])
def test_bad_sources_name_the_field(text, fragment):
    with pytest.raises(stage.StageError, match="artifact"):
        stage.parse_source(text)
    with pytest.raises(stage.StageError) as e:
        stage.parse_source(text)
    assert fragment in str(e.value)


def _upgrade(name="v1.1.0", height="5000", **info):
    info = {"model_artifact": f"oci://r/m@sha256:{H2}", "model_hash": f"sha256:{H.upper()}", **info}
    return {"name": name, "height": height, "info": json.dumps(info), "time": "0001-01-01T00:00:00Z"}


def test_cosmos_plan_array_and_query_wrapper():
    want = stage.Release("v1.1.0", H, 5000, f"oci://r/m@sha256:{H2}")
    assert stage.releases(_upgrade(), None) == [want]
    assert stage.releases({"plan": _upgrade()}, None) == [want]
    two = stage.releases([_upgrade(), _upgrade("v1.2.0", 9000)], None)
    assert [r.version for r in two] == ["v1.1.0", "v1.2.0"] and two[1].height == 9000
    as_object = dict(_upgrade(), info={"model_artifact": "m.tar", "model_hash": H})
    assert stage.releases(as_object, None) == [stage.Release("v1.1.0", H, 5000, "m.tar")]


def test_info_url_is_fetched_through_the_callback():
    seen = []

    def fetch(url):
        seen.append(url)
        return json.dumps({"model_artifact": "m.tar", "model_hash": H}).encode()

    doc = dict(_upgrade(), info=f" https://gov.example/info.json?checksum=sha256:{H2}")
    assert stage.releases(doc, fetch)[0].artifact == "m.tar"
    assert seen == [f"https://gov.example/info.json?checksum=sha256:{H2}"]


@pytest.mark.parametrize("doc,fragment", [
    ([], "empty array"),
    ({"name": "v1.1.0", "height": 1}, "an x/upgrade plan is an object"),
    ([_upgrade(), {"name": "x"}], r"upgrade-info\[1\]: an x/upgrade plan"),
    (dict(_upgrade(), info="{not json"), r"upgrade-info\.info is not JSON"),
    (dict(_upgrade(), info=json.dumps({"model_hash": H})), r"upgrade-info\.info must have exactly the keys"),
    (dict(_upgrade(), info=json.dumps({"model_hash": H, "model_artifact": "x", "extra": 1})), "exactly the keys"),
    (_upgrade(model_hash="sha1:" + H[:40]), r"upgrade-info\.info\.model_hash: "),
    (_upgrade(model_hash=H[:63]), r"upgrade-info\.info\.model_hash: "),
    (_upgrade(height="-3"), r"upgrade-info\.height: "),
    (_upgrade(name=""), r"upgrade-info\.name: "),
    (_upgrade(name="../x"), r"upgrade-info\.name: "),
    (dict(_upgrade(), info=json.dumps({"model_hash": H, "model_artifact": 7})), "model_artifact must be a string"),
])
def test_bad_upgrade_info_names_the_field(doc, fragment):
    with pytest.raises(stage.StageError, match=fragment):
        stage.releases(doc, None)


@pytest.mark.parametrize("existing,expected", [(None, True), (H, False)])
def test_install_decision(existing, expected):
    assert stage.install_decision(existing, H, "/m/x") is expected


def test_install_decision_refuses_a_different_directory_naming_both_hashes():
    with pytest.raises(stage.StageError, match=f"/m/x already exists with model hash {H2}, not the approved {H}"):
        stage.install_decision(H2, H, "/m/x")


_PLAN = {"comment": "kept", "entries": [
    {"version": "v1.0.0", "path": "trust_score", "expected_hash": H2, "activation_height": 0},
    {"version": "v1.2.0", "path": "v12", "expected_hash": H2, "activation_height": 9000}]}


def _entry(version="v1.1.0", height=5000, h=H, path="trust_score_v1.1.0"):
    return {"version": version, "path": path, "expected_hash": h, "activation_height": height}


def test_plan_with_inserts_in_height_order_and_keeps_the_rest():
    new = stage.plan_with(_PLAN, _entry())
    assert [e["version"] for e in new["entries"]] == ["v1.0.0", "v1.1.0", "v1.2.0"]
    assert new["comment"] == "kept" and len(_PLAN["entries"]) == 2  # the input is not modified
    plan_lib.parse(json.dumps(new).encode(), "/models")  # the sidecar accepts it
    assert [e["version"] for e in stage.plan_with(_PLAN, _entry(height=10000))["entries"]][-1] == "v1.1.0"


@pytest.mark.parametrize("entry", [_entry("v1.2.0", 9000, H2, "v12"), _entry("v1.2.0", 9000, H2, "elsewhere")])
def test_plan_with_the_same_entry_is_a_no_op(entry):
    assert stage.plan_with(_PLAN, entry) is None


@pytest.mark.parametrize("entry,fragment", [
    (_entry("v1.2.0", 9000, H), f"already has v1.2.0 with hash {H2} at height 9000; governance approved hash {H}"),
    (_entry("v1.2.0", 8000, H2), "at height 9000; governance approved hash .* at height 8000"),
    (_entry("v1.1.0", 9000), "already activates v1.2.0 at height 9000"),
])
def test_plan_with_refuses_a_conflict_naming_both(entry, fragment):
    with pytest.raises(stage.StageError, match=fragment):
        stage.plan_with(_PLAN, entry)


@pytest.mark.parametrize("argv,expected", [
    (["main.py", "--grpc-addr=:50051", "--upgrade-plan=/models/plan.json", "stage", "--version=v1"], True),
    (["main.py", "stage"], True),
    (["main.py", "--grpc-addr=:50051"], False),
    (["main.py", "--grpc-addr=:50051", "serve", "stage"], False),
    (["main.py", "--log-level", "stage"], False),
])
def test_wants_stage(argv, expected):
    assert stage.wants_stage(argv) is expected


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
