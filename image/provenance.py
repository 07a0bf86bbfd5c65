"""What a validator's rebuild attestation says: an in-toto Statement v1 whose
subject is the image manifest (and its SBOM referrer) and whose predicate is
SLSA Provenance v1, and how the gate reads one back.

The statement is the DSSE envelope's payload (image/attest.py signs it,
image/gate.py checks it). Its fields, the one place they are named:

  subject[]                       {"name": "veid-sidecar", "digest": {"sha256": …}}
                                  {"name": "veid-sidecar.sbom", "digest": {"sha256": …}}
  predicate.buildDefinition
    .buildType                    urn:veid-sidecar:build:bazel | …:nix
    .externalParameters           {"commit", "target", "locks": {path: {"sha256": …}}}
    .resolvedDependencies[0]      {"uri": "git+veid-sidecar", "digest": {"gitCommit": commit}}
  predicate.runDetails.builder.id the validator's id (one vote per id)
"""

import json
import re

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PROVENANCE_TYPE = "https://slsa.dev/provenance/v1"
VSA_TYPE = "https://slsa.dev/verification_summary/v1"
# DSSE payloadType of an in-toto statement; the media type of an envelope as
# an OCI referrer's artifactType and layer (what cosign and in-toto use).
PAYLOAD_TYPE = "application/vnd.in-toto+json"
ENVELOPE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"
IMAGE_NAME = "veid-sidecar"
SBOM_NAME = IMAGE_NAME + ".sbom"
BUILD_TYPES = {"bazel": "urn:veid-sidecar:build:bazel", "nix": "urn:veid-sidecar:build:nix"}
TARGETS = {"bazel": "//image:image", "nix": ".#default"}
# The files that pin every input of the image; their hashes are part of what is vouched for.
LOCK_FILES = ("requirements_lock.txt", "third_party/debian/packages.lock.json", "third_party/pip/wheels.lock.json")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_COMMIT = re.compile(r"[0-9a-f]{40}")


class StatementError(ValueError):
    """The payload is not a statement the gate can count, and why."""


def check_digest(value, what):
    if not isinstance(value, str) or not _DIGEST.fullmatch(value):
        raise ValueError(f"{what}: {value!r} is not sha256:<64 hex>")
    return value


def check_commit(value, what):
    if not isinstance(value, str) or not _COMMIT.fullmatch(value):
        raise ValueError(f"{what}: {value!r} is not a 40-hex git commit")
    return value


def statement(image_digest, sbom_digest, builder_id, build_type, commit, lock_hashes):
    """The provenance statement (a dict) for one rebuild. lock_hashes: {path: sha256 hex}."""
    if build_type not in BUILD_TYPES:
        raise ValueError(f"build type {build_type!r}: expected one of {', '.join(BUILD_TYPES)}")
    subjects = [(IMAGE_NAME, check_digest(image_digest, "image digest"))]
    if sbom_digest:
        subjects.append((SBOM_NAME, check_digest(sbom_digest, "SBOM digest")))
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": name, "digest": {"sha256": d.split(":", 1)[1]}} for name, d in subjects],
        "predicateType": PROVENANCE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPES[build_type],
                "externalParameters": {
                    "commit": check_commit(commit, "commit"),
                    "target": TARGETS[build_type],
                    "locks": {path: {"sha256": h} for path, h in sorted(lock_hashes.items())},
                },
                "resolvedDependencies": [{"uri": "git+" + IMAGE_NAME, "digest": {"gitCommit": commit}}],
            },
            "runDetails": {"builder": {"id": builder_id}},
        },
    }


def encode(obj):
    """The payload bytes: sorted keys, no spaces, so equal statements are equal bytes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def read(payload):
    """(image digest, commit, builder id, build type name) of a provenance payload.

    Raises StatementError naming what is wrong: not a Statement v1 with a SLSA
    Provenance v1 predicate, no veid-sidecar image among the subjects (a
    statement about something else), or missing fields."""
    try:
        st = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise StatementError(f"payload is not JSON ({e})") from None
    if not isinstance(st, dict) or st.get("_type") != STATEMENT_TYPE or st.get("predicateType") != PROVENANCE_TYPE:
        got = (st.get("_type"), st.get("predicateType")) if isinstance(st, dict) else type(st).__name__
        raise StatementError(f"not an in-toto Statement v1 of SLSA Provenance v1 (got {got})")
    subjects = st.get("subject") if isinstance(st.get("subject"), list) else []
    images = [s.get("digest", {}).get("sha256") for s in subjects
              if isinstance(s, dict) and s.get("name") == IMAGE_NAME and isinstance(s.get("digest"), dict)]
    if len(images) != 1 or not isinstance(images[0], str) or not _DIGEST.fullmatch("sha256:" + images[0]):
        names = sorted(str(s.get("name")) for s in subjects if isinstance(s, dict))
        raise StatementError(f"wrong subject: expected one {IMAGE_NAME} image digest, got subjects {names}")
    try:
        build = st["predicate"]["buildDefinition"]
        commit = check_commit(build["externalParameters"]["commit"], "externalParameters.commit")
        builder_id = st["predicate"]["runDetails"]["builder"]["id"]
        build_type = {v: k for k, v in BUILD_TYPES.items()}.get(build["buildType"], build["buildType"])
    except (KeyError, TypeError, ValueError) as e:
        raise StatementError(f"provenance is missing or has a bad field ({e})") from None
    return "sha256:" + images[0], commit, builder_id, build_type
