"""image/gate.py and image/policy.py: the k-of-n decision over real P-256
keys and real DSSE envelopes (securesystemslib), every refusal reason, the
conflict, one vote per validator, and every malformed policy."""

import base64
import copy
import datetime
import json
import os
import re

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from securesystemslib.signer import CryptoSigner

from image import gate
from image import policy
from image import provenance
from image import signing

NOW = datetime.datetime(2026, 12, 6, 12, 0, tzinfo=datetime.timezone.utc)
DIGEST = "sha256:" + "d1" * 32
OTHER_DIGEST = "sha256:" + "0f" * 32
SBOM = "sha256:" + "5b" * 32
COMMIT = "c0" * 20
OTHER_COMMIT = "ab" * 20
LOCKS = {path: "11" * 32 for path in provenance.LOCK_FILES}
WINDOW = {"valid_from": "2026-01-01T00:00:00Z", "valid_until": "2027-01-01T00:00:00Z"}


def entry(signer, **window):
    return {"public_key": signer.public_key.keyval["public"], **(window or WINDOW)}


@pytest.fixture(scope="module")
def keys():
    return {name: CryptoSigner.generate_ecdsa() for name in ("a", "b", "c", "d", "stranger", "old", "new", "a2")}


@pytest.fixture(scope="module")
def trust(keys):
    """3 of 5: a (two keys), b, c, d; old's only key expired; new's not valid yet."""
    return policy.parse({
        "threshold": 3,
        "validators": [
            {"id": "a", "keys": [entry(keys["a"]), entry(keys["a2"])]},
            {"id": "b", "keys": [entry(keys["b"])]},
            {"id": "c", "keys": [entry(keys["c"])]},
            {"id": "d", "keys": [entry(keys["d"])]},
            {"id": "old", "keys": [entry(keys["old"], valid_from="2025-01-01T00:00:00Z",
                                         valid_until="2026-06-01T00:00:00Z")]},
            {"id": "new", "keys": [entry(keys["new"], valid_from="2027-01-01T00:00:00Z",
                                         valid_until="2028-01-01T00:00:00Z")]},
        ],
    })


def statement(builder, digest=DIGEST, commit=COMMIT, build_type="bazel"):
    return provenance.statement(digest, SBOM, builder, build_type, commit, LOCKS)


def envelope(signer, builder, **kw):
    return signing.sign(signer, statement(builder, **kw))


def good(keys, *names):
    return [(f"{n}.intoto.json", envelope(keys[n], n)) for n in names]


def test_threshold_met_passes_and_names_who(trust, keys):
    v = gate.decide(trust, good(keys, "a", "b", "c"), DIGEST, COMMIT, NOW)
    assert v.ok and list(v.votes) == ["a", "b", "c"] and not v.refused
    assert v.lines()[-1] == (f"PASS: 3 of threshold 3 distinct trusted validators vouch for {DIGEST} "
                             f"at commit {COMMIT}: a, b, c")


def test_one_short_fails_naming_the_count(trust, keys):
    v = gate.decide(trust, good(keys, "a", "b"), DIGEST, COMMIT, NOW)
    assert not v.ok
    assert v.lines()[-1] == f"FAIL: 2 of threshold 3 distinct trusted validators vouch for {DIGEST} at commit {COMMIT}"


def test_one_vote_per_validator(trust, keys):
    """Three envelopes from a (one signed with a's second key) and b's: two validators."""
    found = good(keys, "a", "b") + [("a-again", envelope(keys["a2"], "a")), ("a-nix", envelope(keys["a"], "a"))]
    v = gate.decide(trust, found, DIGEST, COMMIT, NOW)
    assert not v.ok and list(v.votes) == ["a", "b"]
    assert "vouched: a (bazel; a.intoto.json; 3 attestations, counted once)" in v.lines()


def test_one_envelope_signed_by_two_keys_of_one_validator_is_one_vote(trust, keys):
    env = json.loads(envelope(keys["a"], "a"))
    env["signatures"] += json.loads(envelope(keys["a2"], "a"))["signatures"]
    v = gate.decide(trust, [("both", json.dumps(env).encode())] + good(keys, "b"), DIGEST, COMMIT, NOW)
    assert list(v.votes) == ["a", "b"] and v.votes["a"] == [("both", "bazel")] and not v.ok


def flip_payload_byte(data):
    env = json.loads(data)
    payload = bytearray(provenance.encode(json.loads(base64.b64decode(env["payload"]))))
    payload[payload.index(b"bazel")] ^= 0x01  # "bazel" -> "cazel": still JSON, another build type
    env["payload"] = base64.b64encode(bytes(payload)).decode()
    return json.dumps(env).encode()


def wrong_subject(signer, builder):
    st = statement(builder)
    st["subject"] = [{"name": "some-other-image", "digest": {"sha256": OTHER_DIGEST.split(":")[1]}}]
    return signing.sign(signer, st)


def not_provenance(signer, builder):
    st = statement(builder)
    st["predicateType"] = provenance.VSA_TYPE
    return signing.sign(signer, st)


def missing_commit(signer, builder):
    st = statement(builder)
    del st["predicate"]["buildDefinition"]["externalParameters"]["commit"]
    return signing.sign(signer, st)


# Every reason an attestation does not count: (name, how to make it, what the gate says).
REFUSALS = [
    ("unknown key", lambda k: envelope(k["stranger"], "c"), r"unknown key [0-9a-f]{16}"),
    ("expired key", lambda k: envelope(k["old"], "old"), r"expired key of old \(valid 2025-01-01.* \.\. 2026-06-01"),
    ("key not yet valid", lambda k: envelope(k["new"], "new"), r"not yet valid key of new"),
    ("flipped payload byte", lambda k: flip_payload_byte(envelope(k["c"], "c")),
     r"bad signature by c's key: the payload or signature was altered"),
    ("wrong payload type", lambda k: signing.sign(k["c"], statement("c"), payload_type="application/json"),
     r"wrong payload type 'application/json' \(expected application/vnd.in-toto\+json\)"),
    ("wrong subject", lambda k: wrong_subject(k["c"], "c"),
     r"wrong subject: expected one veid-sidecar image digest, got subjects \['some-other-image'\]"),
    ("not provenance", lambda k: not_provenance(k["c"], "c"), r"not an in-toto Statement v1 of SLSA Provenance v1"),
    ("missing commit", lambda k: missing_commit(k["c"], "c"), r"provenance is missing or has a bad field"),
    ("other commit", lambda k: envelope(k["c"], "c", commit=OTHER_COMMIT, digest=OTHER_DIGEST),
     rf"statement for commit {OTHER_COMMIT}, not this release's {COMMIT}"),
    ("builder is not the signer", lambda k: envelope(k["c"], "d"), r"builder.id 'd' did not sign it \(signed by c\)"),
    ("not JSON", lambda k: b"<html>404</html>", r"not a DSSE envelope \(JSONDecodeError"),
    ("not an envelope", lambda k: b'{"payload": "e30="}', r"not a DSSE envelope \(ValueError"),
    ("no signatures", lambda k: json.dumps(dict(json.loads(envelope(k["c"], "c")), signatures=[])).encode(),
     r"no signatures"),
    ("bad base64 signature", lambda k: json.dumps(dict(json.loads(envelope(k["c"], "c")),
                                                       signatures=[{"keyid": "x", "sig": "%%"}])).encode(),
     r"not a DSSE envelope"),
]


@pytest.mark.parametrize("make,reason", [(m, r) for _, m, r in REFUSALS], ids=[n for n, _, _ in REFUSALS])
def test_each_refusal_is_named_and_does_not_count(trust, keys, make, reason):
    v = gate.decide(trust, good(keys, "a", "b") + [("bad.intoto.json", make(keys))], DIGEST, COMMIT, NOW)
    assert not v.ok and list(v.votes) == ["a", "b"] and not v.conflicts
    assert len(v.refused) == 1 and v.refused[0][0] == "bad.intoto.json", v.refused
    line = [l for l in v.lines() if l.startswith("refused: bad.intoto.json: ")]
    assert len(line) == 1 and re.search(reason, line[0]), line


def test_conflicting_digest_fails_loudly_whatever_the_count(trust, keys):
    found = good(keys, "a", "b", "c") + [("d/other.intoto.json", envelope(keys["d"], "d", digest=OTHER_DIGEST))]
    v = gate.decide(trust, found, DIGEST, COMMIT, NOW)
    assert not v.ok and len(v.votes) == 3
    assert (f"CONFLICT: d attests {OTHER_DIGEST} for commit {COMMIT}, not {DIGEST} (d/other.intoto.json): "
            "two builds of one commit differ") in v.lines()
    assert v.lines()[-1].startswith(f"FAIL: reproducibility break for {DIGEST} at commit {COMMIT}: d built")


def test_an_unknown_key_cannot_raise_a_conflict(trust, keys):
    found = good(keys, "a", "b", "c") + [("x", envelope(keys["stranger"], "d", digest=OTHER_DIGEST))]
    v = gate.decide(trust, found, DIGEST, COMMIT, NOW)
    assert v.ok and not v.conflicts and "unknown key" in v.refused[0][1]


def test_bad_arguments_are_refused(trust):
    with pytest.raises(ValueError, match="digest"):
        gate.decide(trust, [], "sha256:short", COMMIT, NOW)
    with pytest.raises(ValueError, match="commit"):
        gate.decide(trust, [], DIGEST, "HEAD", NOW)


def test_committed_policy_parses():
    trust = policy.load(os.path.join("attestations", "policy.json"))
    assert trust.threshold >= 1


def base_policy(keys):
    return {"threshold": 1, "validators": [{"id": "a", "keys": [entry(keys["a"])]}]}


def ed25519_pem():
    return ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


BAD_POLICIES = [
    ("zero threshold", lambda p, k: p.update(threshold=0), r"policy.threshold: 0"),
    ("bool threshold", lambda p, k: p.update(threshold=True), r"policy.threshold: True"),
    ("no list", lambda p, k: p.update(validators={}), r"policy.validators: expected a list"),
    ("no id", lambda p, k: p["validators"][0].pop("id"), r"validators\[0\].id"),
    ("twice", lambda p, k: p["validators"].append(copy.deepcopy(p["validators"][0])), r"a is listed twice"),
    ("shared key", lambda p, k: p["validators"].append({"id": "b", "keys": [entry(k["a"])]}),
     r"validators\[1\].keys\[0\] \(b\): the same key is already a's"),
    ("no keys", lambda p, k: p["validators"][0].update(keys=[]), r"keys \(a\): expected a non-empty list"),
    ("not PEM", lambda p, k: p["validators"][0]["keys"][0].update(public_key="ssh-ed25519 AAAA"),
     r"public_key: not a PEM public key"),
    ("not P-256", lambda p, k: p["validators"][0]["keys"][0].update(public_key=ed25519_pem()),
     r"public_key: not an ECDSA P-256 key"),
    ("bad time", lambda p, k: p["validators"][0]["keys"][0].update(valid_from="soon"),
     r"valid_from: 'soon' is not an RFC 3339 time"),
    ("no zone", lambda p, k: p["validators"][0]["keys"][0].update(valid_until="2027-01-01T00:00:00"),
     r"valid_until: .* has no time zone"),
    ("empty window", lambda p, k: p["validators"][0]["keys"][0].update(valid_until=WINDOW["valid_from"]),
     r"valid_until is not after valid_from"),
]


@pytest.mark.parametrize("spoil,message", [(s, m) for _, s, m in BAD_POLICIES], ids=[n for n, _, _ in BAD_POLICIES])
def test_a_bad_policy_is_refused_naming_the_field(keys, spoil, message):
    doc = base_policy(keys)
    policy.parse(doc)  # the unspoiled one is fine
    spoil(doc, keys)
    with pytest.raises(policy.PolicyError, match=message):
        policy.parse(doc)


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
