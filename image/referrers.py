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
import base64
import hashlib
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)

import assemble  # noqa: E402  pylint: disable=wrong-import-position  (the layout's index and referrers)

MANIFEST_MEDIA_TYPE = assemble.MANIFEST_MEDIA_TYPE
INDEX_MEDIA_TYPE = assemble.INDEX_MEDIA_TYPE
_ACCEPT = ", ".join([MANIFEST_MEDIA_TYPE, INDEX_MEDIA_TYPE])
_LAYOUT = os.path.join("image", "image")
_TAG = "latest"


class RegistryError(Exception):
    pass


def digest_of(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def fallback_tag(subject_digest):
    """The referrers tag schema: sha256:<hex> -> sha256-<hex>."""
    return subject_digest.replace(":", "-", 1)


class Registry:
    """One repository of a registry, over the distribution API (v2)."""

    def __init__(self, base_url, repository, auth=None):
        self.base, self.repository = base_url.rstrip("/"), repository
        self.auth = auth  # (user, password) or None
        self.token = None

    def url(self, path):
        return f"{self.base}/v2/{self.repository}/{path}"

    def request(self, method, url, data=None, headers=None, ok=(200,)):
        """(status, headers, body); statuses outside `ok` raise, except 404 when in ok."""
        for attempt in range(2):
            req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
            if self.token:
                req.add_header("Authorization", self.token)
            try:
                with urllib.request.urlopen(req, timeout=120) as resp:
                    return resp.status, resp.headers, resp.read()
            except urllib.error.HTTPError as e:
                body = e.read()
                if e.code == 401 and attempt == 0 and self._authenticate(e.headers.get("WWW-Authenticate", "")):
                    continue
                if e.code in ok:
                    return e.code, e.headers, body
                raise RegistryError(f"{method} {url}: {e.code} {body[:500]!r}") from None
        raise RegistryError(f"{method} {url}: not authorised")

    def _authenticate(self, challenge):
        scheme, _, params = challenge.partition(" ")
        basic = base64.b64encode(f"{self.auth[0]}:{self.auth[1]}".encode()).decode() if self.auth else None
        if scheme.lower() == "basic" and basic:
            self.token = "Basic " + basic
            return True
        if scheme.lower() != "bearer":
            return False
        fields = dict(p.split("=", 1) for p in params.split(",") if "=" in p)
        fields = {k.strip(): v.strip().strip('"') for k, v in fields.items()}
        query = urllib.parse.urlencode({k: fields[k] for k in ("service", "scope") if k in fields})
        req = urllib.request.Request(f"{fields['realm']}?{query}")
        if basic:
            req.add_header("Authorization", "Basic " + basic)
        with urllib.request.urlopen(req, timeout=60) as resp:
            answer = json.load(resp)
        self.token = "Bearer " + (answer.get("token") or answer["access_token"])
        return True

    def has_blob(self, digest):
        status, _, _ = self.request("HEAD", self.url(f"blobs/{digest}"), ok=(200, 404))
        return status == 200

    def push_blob(self, data):
        digest = digest_of(data)
        if self.has_blob(digest):
            return digest
        _, headers, _ = self.request("POST", self.url("blobs/uploads/"), data=b"", ok=(202,))
        location = urllib.parse.urljoin(self.base + "/", headers["Location"])
        separator = "&" if urllib.parse.urlparse(location).query else "?"
        self.request("PUT", f"{location}{separator}digest={urllib.parse.quote(digest)}", data=data,
                     headers={"Content-Type": "application/octet-stream"}, ok=(201,))
        return digest

    def blob(self, digest):
        _, _, body = self.request("GET", self.url(f"blobs/{digest}"))
        if digest_of(body) != digest:
            raise RegistryError(f"blob {digest}: the registry sent other bytes")
        return body

    def put_manifest(self, reference, data, media_type):
        """Returns the response headers (OCI-Subject tells a referrers-aware registry)."""
        _, headers, _ = self.request("PUT", self.url(f"manifests/{reference}"), data=data,
                                     headers={"Content-Type": media_type}, ok=(201,))
        return headers

    def manifest(self, reference):
        """(bytes, media type), or None when the registry has no such manifest."""
        status, headers, body = self.request("GET", self.url(f"manifests/{reference}"),
                                             headers={"Accept": _ACCEPT}, ok=(200, 404))
        if status == 404:
            return None
        if reference.startswith("sha256:") and digest_of(body) != reference:
            raise RegistryError(f"manifest {reference}: the registry sent other bytes")
        return body, headers.get("Content-Type", "").split(";")[0]

    def referrers_api(self, subject_digest, artifact_type=None):
        """The referrers API's descriptors, or None where the registry lacks the API."""
        query = f"?artifactType={urllib.parse.quote(artifact_type)}" if artifact_type else ""
        status, headers, body = self.request("GET", self.url(f"referrers/{subject_digest}{query}"),
                                             headers={"Accept": INDEX_MEDIA_TYPE}, ok=(200, 404))
        if status == 404 or not headers.get("Content-Type", "").startswith(INDEX_MEDIA_TYPE):
            return None
        return json.loads(body).get("manifests", [])

    def referrers(self, subject_digest, artifact_type=None):
        """Descriptors of the manifests whose subject is `subject_digest`: the API, else the fallback tag."""
        found = self.referrers_api(subject_digest, artifact_type)
        if found is None:
            tagged = self.manifest(fallback_tag(subject_digest))
            found = json.loads(tagged[0]).get("manifests", []) if tagged else []
        return [d for d in found if artifact_type is None or d.get("artifactType") == artifact_type]


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
    user, password = os.environ.get("REGISTRY_USER"), os.environ.get("REGISTRY_PASSWORD")
    auth = (user, password) if user and password is not None else None
    return Registry(f"{'http' if plain_http else 'https'}://{host}", repository, auth), digest or None


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
