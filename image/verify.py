"""Compares the image this checkout builds with an expected manifest digest.

  bazel run //image:digest                        # print the built digest
  bazel run //image:verify -- --expected=sha256:…  # exit 1 unless equal
  bazel run //image:update_digest                 # record the built one in image/
  bazel run //image:verify -- --expected=sha256:… --policy=attestations/policy.json \
      --attestations=attestations/v1.4.0 | --attestations=REGISTRY/REPO [--plain-http]
                                                  # the k-of-n gate (image/gate.py)

image/DIGEST is the digest of the current commit and image/manifest.json its
manifest (whose sha256 is that digest), so on a mismatch against it this
names the layers that differ. Validators compare digests: two people who
build the same commit must see the same one. image/SBOM_DIGEST is the digest
of the SBOM referrer the layout carries (image/sbom.py), checked the same way,
so a build that puts the same image but another SBOM beside it fails too.

With --policy, verify is the deploy gate instead: it exits 0 only when at
least the policy's threshold of distinct trusted validators have signed
provenance for the --expected digest (default image/DIGEST) at this
release's commit (--commit, default the workspace's HEAD), read from a
directory of *.intoto.json envelopes or from the image's referrers in a
registry, and prints who vouched and what it refused. On a pass,
--summary-key writes a SLSA Verification Summary signed by the operator.
"""

import argparse
import datetime
import hashlib
import json
import os
import re
import subprocess
import sys

from image import assemble
from image import gate
from image import policy
from image import provenance
from image import referrers
from image import sbom
from image import signing
from image import summary

LAYOUT = os.path.join("image", "image")
_DIGEST_FILE = os.path.join("image", "DIGEST")
_MANIFEST_FILE = os.path.join("image", "manifest.json")
_SBOM_DIGEST_FILE = os.path.join("image", "SBOM_DIGEST")
# Files that pull the image by digest; --write keeps them on the recorded one.
_PINNED_FILES = [os.path.join("deploy", "docker-compose.yml"), os.path.join("deploy", "k8s", "validator-pod.yaml")]
_IMAGE_REF = re.compile(r"(veid-sidecar@)sha256:[0-9a-f]{64}")


def built(layout=LAYOUT):
    """(manifest digest, manifest bytes, layer names) of the built layout."""
    desc = assemble.tagged(assemble.read_index(layout))
    manifest = assemble.read_blob(layout, desc["digest"])
    config = json.loads(assemble.read_blob(layout, json.loads(manifest)["config"]["digest"]))
    names = [h["created_by"].rsplit("layer ", 1)[-1] for h in config["history"]]
    return desc["digest"], manifest, names


def built_sbom(image_digest, layout=LAYOUT):
    """The digest of the layout's SBOM referrer (its artifact manifest) of the image `image_digest`."""
    (desc,) = assemble.referrers(layout, image_digest, sbom.MEDIA_TYPE)
    return desc["digest"]


def read_digest(path):
    with open(path, encoding="ascii") as f:
        return f.read().strip()


def recorded():
    digest = read_digest(_DIGEST_FILE)
    with open(_MANIFEST_FILE, "rb") as f:
        manifest = f.read()
    return digest, manifest


def layer_diff(expected_manifest, actual_manifest, names):
    want = json.loads(expected_manifest)
    got = json.loads(actual_manifest)
    lines = []
    if want["config"]["digest"] != got["config"]["digest"]:
        lines.append(f"  config: expected {want['config']['digest']}, built {got['config']['digest']}")
    for i in range(max(len(want["layers"]), len(got["layers"]))):
        w = want["layers"][i]["digest"] if i < len(want["layers"]) else "(none)"
        g = got["layers"][i]["digest"] if i < len(got["layers"]) else "(none)"
        name = names[i] if i < len(names) else f"#{i}"
        lines.append(f"  layer {name}: {'same' if w == g else f'expected {w}, built {g}'}")
    return lines


def read_attestations(where, digest, plain_http):
    """[(source, envelope bytes)] from a directory (every *.intoto.json below
    it) or from REGISTRY/REPO (the referrers of `digest`)."""
    if os.path.isdir(where):
        found = []
        for parent, dirs, files in os.walk(where):
            dirs.sort()
            for name in sorted(files):
                if name.endswith(".intoto.json"):
                    path = os.path.join(parent, name)
                    with open(path, "rb") as f:
                        found.append((os.path.relpath(path, where), f.read()))
        return found
    # Docker's rule: the first component names a registry only with a '.' or a ':', or as localhost.
    host = where.split("/", 1)[0]
    if not (re.fullmatch(r"[A-Za-z0-9.-]+(:[0-9]+)?/[a-z0-9._/-]+", where)
            and ("." in host or ":" in host or host == "localhost")):
        raise referrers.RegistryError(f"--attestations={where}: neither a directory nor REGISTRY/REPOSITORY "
                                      "(a registry host has a '.' or a ':port')")
    registry, _ = referrers.parse_reference(where, plain_http)
    return [(f"{where} referrer {ref}", data)
            for ref, data in referrers.fetch_all(registry, digest, provenance.ENVELOPE_MEDIA_TYPE)]


def workspace_commit():
    root = os.environ.get("BUILD_WORKSPACE_DIRECTORY", ".")
    return subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], check=True, capture_output=True,
                          text=True).stdout.strip()


def run_gate(args, cwd):
    """The gate's exit status: 0 pass, 1 fail, 2 a bad policy or unreadable attestations."""
    errors = (policy.PolicyError, referrers.RegistryError, signing.SigningError, OSError, ValueError,
              subprocess.CalledProcessError)
    try:
        trust = policy.load(os.path.join(cwd, args.policy))
        digest = args.expected or read_digest(_DIGEST_FILE)
        commit = args.commit or workspace_commit()
        local = os.path.join(cwd, args.attestations)
        found = read_attestations(local if os.path.isdir(local) else args.attestations, digest, args.plain_http)
        now = datetime.datetime.now(datetime.timezone.utc)
        verdict = gate.decide(trust, found, digest, commit, now)
    except errors as e:
        print(f"gate: {e}", file=sys.stderr)
        return 2
    print("\n".join(verdict.lines()))
    if verdict.ok and args.summary_key:
        path = os.path.join(cwd, args.summary_out or "verification_summary.intoto.json")
        try:
            envelope = summary.write(os.path.join(cwd, os.path.expanduser(args.summary_key)), args.verifier_id, verdict, args.policy,
                                     os.path.join(cwd, args.policy), found, now)
            with open(path, "wb") as f:
                f.write(envelope)
        except errors as e:
            print(f"gate: passed, but the verification summary was not written: {e}", file=sys.stderr)
            return 2
        print(f"wrote the verification summary {path}")
    return 0 if verdict.ok else 1


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--expected", help="sha256:… to compare with (default: image/DIGEST)")
    ap.add_argument("--print-only", action="store_true", help="print the built digest and exit")
    ap.add_argument("--write", action="store_true",
                    help="record the built digest and manifest in the workspace's image/ (after a deliberate change)")
    ap.add_argument("--policy", help="attestations/policy.json: run the k-of-n gate instead")
    ap.add_argument("--attestations", help="gate: a directory of *.intoto.json, or REGISTRY/REPOSITORY")
    ap.add_argument("--commit", help="gate: the release's git commit (default: the workspace's HEAD)")
    ap.add_argument("--plain-http", action="store_true", help="gate: http:// to the registry (loopback)")
    ap.add_argument("--summary-key", help="gate: on a pass, sign a SLSA verification summary with this P-256 key")
    ap.add_argument("--summary-out", help="gate: where to write it (default verification_summary.intoto.json)")
    ap.add_argument("--verifier-id", default="operator", help="gate: verifier.id in the summary")
    args = ap.parse_args(argv)
    if args.policy or args.attestations:
        if not (args.policy and args.attestations):
            ap.error("the gate needs both --policy and --attestations")
        return run_gate(args, os.environ.get("BUILD_WORKING_DIRECTORY", ""))
    digest, manifest, names = built()
    if args.print_only:
        print(digest)
        return 0
    if args.write:
        workspace = os.environ.get("BUILD_WORKSPACE_DIRECTORY")
        if not workspace:
            print("--write needs `bazel run` (BUILD_WORKSPACE_DIRECTORY)", file=sys.stderr)
            return 2
        sbom_digest = built_sbom(digest)
        with open(os.path.join(workspace, _DIGEST_FILE), "w", encoding="ascii") as f:
            f.write(digest + "\n")
        with open(os.path.join(workspace, _MANIFEST_FILE), "wb") as f:
            f.write(manifest)
        with open(os.path.join(workspace, _SBOM_DIGEST_FILE), "w", encoding="ascii") as f:
            f.write(sbom_digest + "\n")
        for rel in _PINNED_FILES:
            path = os.path.join(workspace, rel)
            with open(path, encoding="utf-8") as f:
                text = f.read()
            with open(path, "w", encoding="utf-8") as f:
                f.write(_IMAGE_REF.sub(lambda m: m.group(1) + digest, text))
        print(f"recorded {digest} in {_DIGEST_FILE}, {_MANIFEST_FILE} and {', '.join(_PINNED_FILES)}; "
              f"the SBOM's {sbom_digest} in {_SBOM_DIGEST_FILE}")
        return 0
    recorded_digest, recorded_manifest = recorded()
    if hashlib.sha256(recorded_manifest).hexdigest() != recorded_digest.split(":", 1)[1]:
        print(f"{_MANIFEST_FILE} does not hash to {_DIGEST_FILE}: refresh both together", file=sys.stderr)
        return 2
    expected = args.expected or recorded_digest
    if digest == expected:
        if digest == recorded_digest:
            sbom_digest, recorded_sbom = built_sbom(digest), read_digest(_SBOM_DIGEST_FILE)
            if sbom_digest != recorded_sbom:
                print(f"SBOM MISMATCH: built the image's SBOM referrer {sbom_digest}, "
                      f"{_SBOM_DIGEST_FILE} says {recorded_sbom}")
                return 1
        print(f"OK: built {digest}")
        return 0
    print(f"MISMATCH: built {digest}, expected {expected}")
    if expected == recorded_digest:
        print("\n".join(layer_diff(recorded_manifest, manifest, names)))
    else:
        print(f"(no reference manifest for {expected}; layers built: "
              + ", ".join(f"{n}={l['digest']}" for n, l in zip(names, json.loads(manifest)["layers"])) + ")")
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
