"""image/referrers.py against a real registry (Debian's docker-registry 2.8 on
loopback, no referrers API), with a small layout from assemble.py: the image
pushed by the client's own blob and manifest calls, then its referrer pushed,
listed through the fallback tag, fetched byte for byte and merged with
another. engine_test does the same with the real image after skopeo.
"""

import json
import os
import shutil

import pytest

from image import assemble
from image import fixtures
from image import referrers

_SBOM = fixtures.SBOM
registry = pytest.fixture(scope="module")(fixtures.registry)
layout = pytest.fixture(scope="module")(fixtures.layout)


def test_push_needs_the_image_first(registry, layout):
    out, _, _ = layout
    client = referrers.Registry(f"http://{registry.host}", "first")
    with pytest.raises(referrers.RegistryError, match="push the image first"):
        referrers.push(client, out)


def test_push_list_fetch_and_merge(registry, layout):
    out, subject, desc = layout
    client = referrers.Registry(f"http://{registry.host}", "veid")
    referrers.push_image(client, out, subject)
    digest = subject["digest"]
    assert client.referrers(digest) == []
    assert referrers.push(client, out) == [desc]
    assert client.referrers_api(digest) is None  # docker-registry 2.8: the tag schema it is
    tagged, media_type = client.manifest(referrers.fallback_tag(digest))
    assert media_type == referrers.INDEX_MEDIA_TYPE and json.loads(tagged)["manifests"] == [desc]
    assert client.referrers(digest, "application/spdx+json") == [desc]
    assert referrers.fetch(client, digest, "application/spdx+json") == _SBOM
    # Again: nothing is added twice.
    referrers.push(client, out)
    assert client.referrers(digest) == [desc]
    # A second referrer, from a copy of the layout, is merged into the tag's index.
    other_layout = out + "-other"
    shutil.copytree(out, other_layout)
    other = assemble.add_referrer(other_layout, subject, "text/plain", b"note\n")
    assert referrers.push(client, other_layout) == [desc, other]
    assert client.referrers(digest) == [desc, other]
    assert client.referrers(digest, "text/plain") == [other]
    assert referrers.fetch(client, digest, "text/plain") == b"note\n"
    assert client.manifest(digest)[0] == referrers.layout_blob(out, digest)  # the image is as pushed


def test_the_command_line(registry, layout, capsys):
    out, subject, desc = layout
    ref = f"{registry.host}/cli"
    referrers.push_image(referrers.Registry(f"http://{registry.host}", "cli"), out, subject)
    assert referrers.main(["push", ref, "--plain-http", "--layout", out]) == 0
    assert referrers.main(["list", f"{ref}@{subject['digest']}", "--plain-http"]) == 0
    assert f"pushed application/spdx+json {desc['digest']}" in capsys.readouterr().out
    path = os.path.join(os.path.dirname(out), "fetched.json")
    assert referrers.main(["fetch", f"{ref}@{subject['digest']}", "--plain-http",
                           "--artifact-type", "application/spdx+json", "--out", path]) == 0
    with open(path, "rb") as f:
        assert f.read() == _SBOM
    assert referrers.main(["fetch", f"{ref}@{subject['digest']}", "--plain-http", "--artifact-type", "x/y"]) == 1


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
