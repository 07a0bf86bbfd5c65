"""Pushes the image's referrers (its SBOM) to a registry, and lists and fetches them.

  bazel run //image:referrers -- push REGISTRY/REPO [--plain-http]
  bazel run //image:referrers -- list REGISTRY/REPO@sha256:… [--artifact-type application/spdx+json]
  bazel run //image:referrers -- fetch REGISTRY/REPO@sha256:… --artifact-type application/spdx+json --out F

`push` uploads every referrer of the layout's image (bazel-bin/image/image,
or --layout) to a repository that already holds the image: the blobs, then
the artifact manifest by digest. A registry that implements the OCI 1.1
referrers API says so (an `OCI-Subject` header) and indexes it itself; for one
that does not (Debian 12's docker-registry 2.8, Docker Hub's older
registries) the "referrers tag schema" fallback of the distribution spec is
kept up: an image index tagged `sha256-<hex of the image digest>` listing the
referrers, merged with the one already there. `list` asks the referrers API
first and falls back to that tag; `fetch` writes the one referrer layer of
that artifact type, checked against its digest.

skopeo 1.9 (Debian 12) copies an image but not its referrers, so publishing
an image is `skopeo copy` and then this. Standard library only; anonymous
registries, or basic auth / bearer tokens from $REGISTRY_USER and
$REGISTRY_PASSWORD.
"""

import argparse
import json
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)

import assemble  # noqa: E402  pylint: disable=wrong-import-position  (the layout's index and referrers)
from sidecar.oci_registry import Registry, RegistryError, auth_from_environment, digest_of, fallback_tag  # noqa: E402,F401  pylint: disable=wrong-import-position

MANIFEST_MEDIA_TYPE = assemble.MANIFEST_MEDIA_TYPE
INDEX_MEDIA_TYPE = assemble.INDEX_MEDIA_TYPE
_LAYOUT = os.path.join("image", "image")
_TAG = "latest"


def layout_blob(layout, digest):
    data = assemble.read_blob(layout, digest)
    if digest_of(data) != digest:
        raise RegistryError(f"{layout}: blob {digest} does not hash to its name")
    return data


def push_image(registry, layout, subject):
    """The image manifest `subject` of the layout, with its config and layers:
    what `skopeo copy oci:…:latest docker://…@digest` does, for a small layout."""
    manifest = layout_blob(layout, subject["digest"])
    for desc in [json.loads(manifest)["config"]] + json.loads(manifest)["layers"]:
        registry.push_blob(layout_blob(layout, desc["digest"]))
    registry.put_manifest(subject["digest"], manifest, subject["mediaType"])


def push(registry, layout=_LAYOUT, tag=_TAG):
    """Pushes the layout's referrers of its image; returns their descriptors."""
    try:
        image = assemble.tagged(assemble.read_index(layout), tag)
    except assemble.SpecError as e:
        raise RegistryError(f"{layout}: {e}") from None
    found = assemble.referrers(layout, image["digest"])
    if registry.manifest(image["digest"]) is None:
        raise RegistryError(f"{registry.repository} has no {image['digest']}: push the image first "
                            f"(skopeo copy oci:{layout}:{tag} docker://…@{image['digest']})")
    pushed_without_api = []
    for desc in found:
        data = layout_blob(layout, desc["digest"])
        manifest = json.loads(data)
        for blob_desc in [manifest["config"]] + manifest["layers"]:
            registry.push_blob(layout_blob(layout, blob_desc["digest"]))
        headers = registry.put_manifest(desc["digest"], data, desc["mediaType"])
        if headers.get("OCI-Subject") != image["digest"]:
            pushed_without_api.append(desc)
    if pushed_without_api:
        merge_fallback_index(registry, image["digest"], pushed_without_api)
    return found


def merge_fallback_index(registry, subject_digest, descriptors):
    """Adds `descriptors` to the index tagged sha256-<hex>, keeping what it listed."""
    tag = fallback_tag(subject_digest)
    existing = registry.manifest(tag)
    index = json.loads(existing[0]) if existing else {"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE,
                                                      "manifests": []}
    listed = {d["digest"] for d in index["manifests"]}
    added = [{k: d[k] for k in ("mediaType", "digest", "size", "artifactType", "annotations") if k in d}
             for d in descriptors if d["digest"] not in listed]
    if added:
        index["manifests"] += added
        data = json.dumps(index, sort_keys=True, separators=(",", ":")).encode()
        registry.put_manifest(tag, data, INDEX_MEDIA_TYPE)


def push_artifact(registry, subject_digest, artifact_type, data):
    """Attaches `data` to the registry's manifest `subject_digest` as a
    referrer of `artifact_type` (an attestation pushed after the image);
    returns its descriptor."""
    found = registry.manifest(subject_digest)
    if found is None:
        raise RegistryError(f"{registry.repository} has no {subject_digest}: push the image first")
    subject = {"mediaType": found[1], "digest": subject_digest, "size": len(found[0])}
    manifest, blobs = assemble.referrer_manifest(subject, artifact_type, data)
    for blob in blobs:
        registry.push_blob(blob)
    desc = {"mediaType": MANIFEST_MEDIA_TYPE, "artifactType": artifact_type, "digest": digest_of(manifest),
            "size": len(manifest)}
    if registry.put_manifest(desc["digest"], manifest, MANIFEST_MEDIA_TYPE).get("OCI-Subject") != subject_digest:
        merge_fallback_index(registry, subject_digest, [desc])
    return desc


def fetch_all(registry, subject_digest, artifact_type):
    """[(referrer digest, its one layer)] of every `artifact_type` referrer of `subject_digest`."""
    out = []
    for desc in registry.referrers(subject_digest, artifact_type):
        got = registry.manifest(desc["digest"])
        if got is None:
            raise RegistryError(f"referrer {desc['digest']} is listed but missing")
        manifest = json.loads(got[0])
        if manifest.get("subject", {}).get("digest") != subject_digest:
            raise RegistryError(f"referrer {desc['digest']} is not about {subject_digest}")
        if len(manifest.get("layers", [])) != 1:
            raise RegistryError(f"referrer {desc['digest']} has {len(manifest.get('layers', []))} layers, expected one")
        layer = manifest["layers"][0]
        out.append((desc["digest"], registry.blob(layer["digest"])))
    return out


def fetch(registry, subject_digest, artifact_type):
    """The one layer of the one `artifact_type` referrer of `subject_digest`."""
    found = fetch_all(registry, subject_digest, artifact_type)
    if len(found) != 1:
        raise RegistryError(f"{len(found)} {artifact_type} referrers of {subject_digest}, expected one")
    return found[0][1]


def parse_reference(ref, plain_http):
    """'host:port/repo[@sha256:…]' -> (Registry, digest or None)."""
    name, _, digest = ref.partition("@")
    host, _, repository = name.partition("/")
    if not repository:
        raise RegistryError(f"{ref}: expected REGISTRY/REPOSITORY")
    return Registry(f"{'http' if plain_http else 'https'}://{host}", repository, auth_from_environment()), digest or None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=["push", "list", "fetch"])
    ap.add_argument("reference", help="REGISTRY/REPOSITORY (push) or REGISTRY/REPOSITORY@sha256:… (list, fetch)")
    ap.add_argument("--layout", default=_LAYOUT, help="OCI layout to push from (default: the built image)")
    ap.add_argument("--artifact-type", help="only referrers of this artifactType (fetch: required)")
    ap.add_argument("--out", help="fetch: write the artifact here (default: stdout)")
    ap.add_argument("--plain-http", action="store_true", help="http:// instead of https:// (a loopback registry)")
    args = ap.parse_args(argv)
    try:
        registry, digest = parse_reference(args.reference, args.plain_http)
        if args.command == "push":
            for desc in push(registry, args.layout):
                print(f"pushed {desc['artifactType']} {desc['digest']}")
            return 0
        if not digest:
            raise RegistryError(f"{args.command} needs REGISTRY/REPOSITORY@sha256:…")
        if args.command == "list":
            print(json.dumps(registry.referrers(digest, args.artifact_type), indent=1, sort_keys=True))
            return 0
        if not args.artifact_type:
            raise RegistryError("fetch needs --artifact-type")
        data = fetch(registry, digest, args.artifact_type)
        if args.out:
            with open(os.path.join(os.environ.get("BUILD_WORKING_DIRECTORY", ""), args.out), "wb") as f:
                f.write(data)
        else:
            sys.stdout.buffer.write(data)
        return 0
    except (RegistryError, OSError) as e:
        print(f"referrers: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
