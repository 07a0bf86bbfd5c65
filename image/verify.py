"""Compares the image this checkout builds with an expected manifest digest.

  bazel run //image:digest                        # print the built digest
  bazel run //image:verify -- --expected=sha256:…  # exit 1 unless equal
  bazel run //image:update_digest                 # record the built one in image/

image/DIGEST is the digest of the current commit and image/manifest.json its
manifest (whose sha256 is that digest), so on a mismatch against it this
names the layers that differ. Validators compare digests: two people who
build the same commit must see the same one. image/SBOM_DIGEST is the digest
of the SBOM referrer the layout carries (image/sbom.py), checked the same way,
so a build that puts the same image but another SBOM beside it fails too.
"""

import argparse
import hashlib
import json
import os
import re
import sys

from image import assemble
from image import sbom

_LAYOUT = os.path.join("image", "image")
_DIGEST_FILE = os.path.join("image", "DIGEST")
_MANIFEST_FILE = os.path.join("image", "manifest.json")
_SBOM_DIGEST_FILE = os.path.join("image", "SBOM_DIGEST")
# Files that pull the image by digest; --write keeps them on the recorded one.
_PINNED_FILES = [os.path.join("deploy", "docker-compose.yml"), os.path.join("deploy", "k8s", "validator-pod.yaml")]
_IMAGE_REF = re.compile(r"(veid-sidecar@)sha256:[0-9a-f]{64}")


def built(layout=_LAYOUT):
    """(manifest digest, manifest bytes, layer names) of the built layout."""
    desc = assemble.tagged(assemble.read_index(layout))
    manifest = assemble.read_blob(layout, desc["digest"])
    config = json.loads(assemble.read_blob(layout, json.loads(manifest)["config"]["digest"]))
    names = [h["created_by"].rsplit("layer ", 1)[-1] for h in config["history"]]
    return desc["digest"], manifest, names


def built_sbom(image_digest, layout=_LAYOUT):
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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--expected", help="sha256:… to compare with (default: image/DIGEST)")
    ap.add_argument("--print-only", action="store_true", help="print the built digest and exit")
    ap.add_argument("--write", action="store_true",
                    help="record the built digest and manifest in the workspace's image/ (after a deliberate change)")
    args = ap.parse_args(argv)
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
