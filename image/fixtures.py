"""Shared by the registry tests (referrers_test, attest_test): Debian's
docker-registry on loopback, and a small OCI layout whose image has an SBOM
referrer (pushing the real image would cost those tests their time)."""

import os

import pytest

from image import assemble
from image import podman

SBOM = b'{"spdxVersion": "SPDX-2.3"}\n'
SBOM_MEDIA_TYPE = "application/spdx+json"


def registry(tmp_path_factory):
    """A module fixture: the registry, stopped after the module; a skip (a failure under CI) without it."""
    if not podman.tool("docker-registry"):
        if os.environ.get("CI") == "true":
            pytest.fail("CI must run the registry tests: apt-get install docker-registry")
        pytest.skip("docker-registry is not installed (apt-get install docker-registry)")
    r = podman.Registry(str(tmp_path_factory.mktemp("registry")))
    yield r
    r.close()


def layout(tmp_path_factory):
    """A module fixture: (layout dir, the image's descriptor, its SBOM referrer's descriptor)."""
    tmp = tmp_path_factory.mktemp("layout")
    (tmp / "hello.txt").write_bytes(b"hello\n")
    out = str(tmp / "oci")
    spec = {"source_date_epoch": 0, "layers": [{"name": "app", "files": {"/hello.txt": str(tmp / "hello.txt")}}]}
    assemble.assemble(spec, out)
    subject = assemble.tagged(assemble.read_index(out))
    desc = assemble.add_referrer(out, subject, SBOM_MEDIA_TYPE, SBOM)
    return out, subject, desc
