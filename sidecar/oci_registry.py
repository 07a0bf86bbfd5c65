"""A client for one repository of an OCI registry (the distribution API v2).

Standard library only, so the image's `stage` command pulls model artifacts
with it and image/referrers.py pushes the image's SBOM with it. Anonymous
registries, or basic auth / bearer tokens. Whatever names a digest is checked
against it: a registry that sends other bytes is an error, never a result.
"""

import base64
import hashlib
import json
import os
import urllib.error
import urllib.parse
import urllib.request

MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
_ACCEPT = ", ".join([MANIFEST_MEDIA_TYPE, INDEX_MEDIA_TYPE])


def auth_from_environment():
    """(user, password) from $REGISTRY_USER and $REGISTRY_PASSWORD, or None (anonymous)."""
    user, password = os.environ.get("REGISTRY_USER"), os.environ.get("REGISTRY_PASSWORD")
    return (user, password) if user and password is not None else None


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
        resp = self.open(method, url, data, headers, ok)
        with resp:
            return resp.status, resp.headers, resp.read()

    def open(self, method, url, data=None, headers=None, ok=(200,)):
        """The open response, for reading a body as it arrives; statuses outside `ok` raise."""
        for attempt in range(2):
            req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
            if self.token:
                req.add_header("Authorization", self.token)
            try:
                return urllib.request.urlopen(req, timeout=120)
            except urllib.error.HTTPError as e:
                if e.code == 401 and attempt == 0 and self._authenticate(e.headers.get("WWW-Authenticate", "")):
                    continue
                if e.code in ok:
                    return e
                raise RegistryError(f"{method} {url}: {e.code} {e.read()[:500]!r}") from None
            except OSError as e:
                raise RegistryError(f"{method} {url}: {getattr(e, 'reason', None) or e}") from None
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
