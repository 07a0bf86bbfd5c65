"""A validator vouches for its rebuild: signs an in-toto SLSA provenance
statement about the image it built (image/provenance.py) into a DSSE envelope.

  bazel run //image:attest -- --generate-key=~/.veid/attest.pem
  bazel run //image:attest -- --key=~/.veid/attest.pem --validator-id=val-a --release=v1.4.0
  bazel run //image:attest -- --key=… --validator-id=val-a --release=v1.4.0 \\
      --build-type=nix --layout=result/image          # after `nix build`
  … --push=registry.example:5000/veid-sidecar        # also as an OCI referrer of the image

The key is ECDSA P-256 (what cosign and hardware tokens use), PEM PKCS#8, and
is the validator's attestation key only, never its consensus key;
--generate-key writes it (mode 0600) with its public half beside it
(`.pub`) and prints the entry to add to attestations/policy.json. The
envelope goes to attestations/<release>/<validator-id>/sha256-<hex>.intoto.json
in the workspace, for a pull request. The commit is the workspace's HEAD, and
a checkout with uncommitted changes to tracked files is refused: what was
built must be what the commit says. Signing is securesystemslib's
(CryptoSigner, DSSE); nothing here computes a signature itself.
"""

import argparse
import datetime
import hashlib
import json
import os
import re
import subprocess
import sys

from image import policy
from image import provenance
from image import referrers
from image import signing
from image import verify

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class AttestError(Exception):
    pass


def lock_hashes(root):
    out = {}
    for rel in provenance.LOCK_FILES:
        with open(os.path.join(root, rel), "rb") as f:
            out[rel] = hashlib.sha256(f.read()).hexdigest()
    return out


def layout_digests(layout):
    """(image manifest digest, its SBOM referrer's digest) of an OCI layout."""
    digest, _, _ = verify.built(layout)
    return digest, verify.built_sbom(digest, layout)


def attest(signer, validator_id, build_type, layout, commit, root):
    """(image digest, envelope bytes) for the rebuild in `layout` at `commit` of the checkout `root`."""
    digest, sbom_digest = layout_digests(layout)
    st = provenance.statement(digest, sbom_digest, validator_id, build_type, commit, lock_hashes(root))
    return digest, signing.sign(signer, st)


def relative_path(release, validator_id, digest):
    """attestations/<release>/<validator-id>/sha256-<hex>.intoto.json, below the attestations directory."""
    for what, value in (("release", release), ("validator id", validator_id)):
        if not _NAME.fullmatch(value or ""):
            raise AttestError(f"{what} {value!r}: use letters, digits, '.', '_', '-' (a directory name)")
    return os.path.join(release, validator_id, referrers.fallback_tag(digest) + ".intoto.json")


def head_commit(root):
    """HEAD of the checkout `root`, refusing uncommitted changes to tracked files."""
    def git(*args):
        return subprocess.run(["git", "-C", root, *args], check=True, capture_output=True, text=True).stdout

    try:
        dirty = git("status", "--porcelain", "--untracked-files=no").split("\n")
        commit = git("rev-parse", "HEAD").strip()
    except (OSError, subprocess.CalledProcessError) as e:
        raise AttestError(f"{root}: cannot read the git commit ({e})") from None
    dirty = [line[3:] for line in dirty if line.strip()]
    if dirty:
        raise AttestError(f"{root} has uncommitted changes ({', '.join(dirty[:5])}): "
                          "commit them, rebuild, then attest")
    return commit


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--generate-key", metavar="PATH", help="write a new P-256 key (and PATH.pub) and exit")
    ap.add_argument("--key", help="the validator's attestation key (PEM PKCS#8, P-256)")
    ap.add_argument("--validator-id", help="the id policy.json lists the key under (builder.id)")
    ap.add_argument("--release", help="release name, the directory under attestations/")
    ap.add_argument("--build-type", choices=sorted(provenance.BUILD_TYPES), default="bazel")
    ap.add_argument("--layout", default=verify.LAYOUT, help="the rebuilt OCI layout (default: Bazel's image)")
    ap.add_argument("--out-dir", help="attestations directory (default: the workspace's attestations/)")
    ap.add_argument("--push", metavar="REGISTRY/REPO", help="also push the envelope as a referrer of the image")
    ap.add_argument("--plain-http", action="store_true", help="--push over http:// (a loopback registry)")
    args = ap.parse_args(argv)
    cwd = os.environ.get("BUILD_WORKING_DIRECTORY", "")
    workspace = os.environ.get("BUILD_WORKSPACE_DIRECTORY")
    try:
        if args.generate_key:
            entry = signing.generate_key(os.path.join(cwd, os.path.expanduser(args.generate_key)),
                                 datetime.datetime.now(datetime.timezone.utc))
            print(f"wrote {args.generate_key} (keep it apart from your consensus key) and {args.generate_key}.pub; "
                  "propose this entry for attestations/policy.json's validators:")
            print(json.dumps({"id": args.validator_id or "<your validator id>", "keys": [entry]}, indent=1))
            return 0
        missing = [f"--{n.replace('_', '-')}" for n in ("key", "validator_id", "release") if not getattr(args, n)]
        if missing:
            raise AttestError(f"missing {', '.join(missing)}")
        if not workspace:
            raise AttestError("run it with `bazel run` (it reads the workspace's commit and locks)")
        layout = args.layout if args.layout == verify.LAYOUT else os.path.join(cwd, args.layout)
        signer = signing.load_signer(os.path.join(cwd, os.path.expanduser(args.key)))
        digest, envelope = attest(signer, args.validator_id, args.build_type, layout, head_commit(workspace),
                                  workspace)
        out_dir = os.path.join(cwd, args.out_dir) if args.out_dir else os.path.join(workspace, "attestations")
        path = os.path.join(out_dir, relative_path(args.release, args.validator_id, digest))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(envelope)
        print(f"{args.validator_id} attests {digest} ({args.build_type}) at "
              f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%dT%H:%M:%SZ}: wrote {path}")
        if args.push:
            registry, _ = referrers.parse_reference(args.push, args.plain_http)
            desc = referrers.push_artifact(registry, digest, provenance.ENVELOPE_MEDIA_TYPE, envelope)
            print(f"pushed {desc['digest']} as a referrer of {args.push}@{digest}")
        return 0
    except (AttestError, signing.SigningError, policy.PolicyError, referrers.RegistryError, OSError, ValueError) as e:
        print(f"attest: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
