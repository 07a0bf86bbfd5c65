"""The image's SBOM (//image:sbom): valid SPDX 2.3 by spdx-tools, true to the
locks, the input files and the model hash, and carried by the layout as a
referrer of the image manifest.

Every expected value is recomputed here from the inputs themselves (the .debs
and wheels Bazel fetched, the committed model, the sources), not read back
from what image/sbom.py wrote.
"""

import glob
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import zipfile

import pytest
from spdx_tools.spdx.parser.parse_anything import parse_file
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

from image import assemble
from sidecar import hashing

_SBOM = os.path.join("image", "sbom.spdx.json")
_LAYOUT = os.path.join("image", "image")
_MEDIA_TYPE = "application/spdx+json"


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def sha(path, algorithm="sha256"):
    with open(path, "rb") as f:
        return hashlib.new(algorithm, f.read()).hexdigest()


def external(pattern):
    """Files of an external repository's runfiles (@debian, @wheelhouse)."""
    found = glob.glob(os.path.join(os.environ["TEST_SRCDIR"], pattern))
    assert found, pattern
    return {os.path.basename(p): p for p in found}


@pytest.fixture(scope="module")
def doc():
    return read_json(_SBOM)


@pytest.fixture(scope="module")
def packages(doc):
    return {p["SPDXID"]: p for p in doc["packages"]}


def by_purl_type(packages, kind):
    out = {}
    for p in packages.values():
        purls = [r["referenceLocator"] for r in p.get("externalRefs", []) if r["referenceType"] == "purl"]
        if purls and purls[0].startswith(f"pkg:{kind}/"):
            out[p["name"]] = p
    return out


def checksum(element, algorithm="SHA256"):
    (value,) = [c["checksumValue"] for c in element["checksums"] if c["algorithm"] == algorithm]
    return value


def test_spdx_tools_validates_it_without_a_message():
    document = parse_file(_SBOM)
    messages = validate_full_spdx_document(document)
    assert [m.validation_message for m in messages] == []
    assert document.creation_info.spdx_version == "SPDX-2.3"


def test_it_is_about_the_committed_image(doc, packages):
    digest = open(os.path.join("image", "DIGEST"), encoding="ascii").read().strip()
    hexdigest = digest.split(":", 1)[1]
    image = packages["SPDXRef-Package-image"]
    assert checksum(image) == hexdigest
    assert {"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
            "referenceLocator": f"pkg:oci/veid-sidecar@sha256%3A{hexdigest}"} in image["externalRefs"]
    assert doc["documentNamespace"] == f"https://spdx.org/spdxdocs/veid-sidecar-{hexdigest}"
    epoch = read_json(os.path.join("image", "image.json"))["source_date_epoch"]
    assert doc["creationInfo"]["created"] == assemble.rfc3339(epoch)
    relationships = {(r["spdxElementId"], r["relationshipType"], r["relatedSpdxElement"]) for r in doc["relationships"]}
    assert ("SPDXRef-DOCUMENT", "DESCRIBES", image["SPDXID"]) in relationships
    for spdx_id in packages:
        if spdx_id != image["SPDXID"]:
            assert (image["SPDXID"], "CONTAINS", spdx_id) in relationships


def test_every_deb_of_the_lock_with_its_version_hash_and_url(packages):
    lock = read_json(os.path.join("third_party", "debian", "packages.lock.json"))
    debs = external("debian/debs/*.deb")
    found = by_purl_type(packages, "deb")
    assert sorted(found) == sorted(e["name"] for e in lock)
    for entry in lock:
        p = found[entry["name"]]
        assert p["versionInfo"] == entry["version"]
        assert p["downloadLocation"] == entry["url"]
        assert checksum(p) == entry["sha256"] == sha(debs[os.path.basename(entry["url"])])
        assert p["licenseDeclared"] and p["licenseConcluded"] == "NOASSERTION"


def test_every_image_wheel_with_its_version_and_hash(packages):
    wanted = read_json(os.path.join("image", "image.json"))["python_runtime"]
    lock = {w["name"]: w for w in read_json(os.path.join("third_party", "pip", "wheels.lock.json"))["wheels"]}
    wheels = external("wheelhouse/wheels/*.whl")
    found = by_purl_type(packages, "pypi")
    assert sorted(found) == sorted(wanted)
    for name in wanted:
        p, entry = found[name], lock[name]
        assert p["versionInfo"] == entry["version"]
        assert p["downloadLocation"] == entry["url"]
        assert checksum(p) == entry["sha256"] == sha(wheels[entry["filename"]])
        assert p["licenseDeclared"]


def test_licences_come_from_the_packages_own_statements(doc, packages):
    found = by_purl_type(packages, "deb")
    extracted = {e["licenseId"]: e["extractedText"] for e in doc["hasExtractedLicensingInfos"]}
    # A DEP-5 file whose one licence has an SPDX id.
    assert found["zlib1g"]["licenseDeclared"] == "Zlib"
    # glibc's copyright file is not machine-readable: the file itself is the statement.
    ref = found["libc6"]["licenseDeclared"]
    assert ref.startswith("LicenseRef-")
    (libc6,) = [p for name, p in external("debian/debs/*.deb").items() if name.startswith("libc6_")]
    with assemble.deb_lib.data_tar(libc6) as tar:
        copyright_file = tar.extractfile("./usr/share/doc/libc6/copyright").read().decode()
    assert extracted[ref] == copyright_file.strip()
    # libstdc++6's doc directory is a link to gcc-12-base's: the same statement.
    assert found["libstdc++6"]["licenseDeclared"] == found["gcc-12-base"]["licenseDeclared"]
    # A wheel's PEP 639 License-Expression is taken as written.
    wheels = by_purl_type(packages, "pypi")
    with zipfile.ZipFile(external("wheelhouse/wheels/numpy-*.whl").popitem()[1]) as zf:
        (metadata,) = [n for n in zf.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
        (line,) = [l for l in zf.read(metadata).decode().splitlines() if l.startswith("License-Expression:")]
    assert wheels["numpy"]["licenseDeclared"] == line.split(":", 1)[1].strip()


def test_the_model_with_its_hash_and_files(packages, doc):
    model = packages["SPDXRef-Package-model"]
    src = os.path.join("models", "trust_score")
    metadata = read_json(os.path.join(src, hashing.METADATA_FILE))
    assert model["versionInfo"] == metadata["version"]
    refs = [r["referenceLocator"] for r in model["externalRefs"] if r["referenceType"] == "veid-model-hash"]
    # Runfiles are symlinks, which the hash refuses: hash what the files hold.
    assert refs == [model_hash_of_copy(src)] == [metadata["model_hash"]]
    files = files_of(doc, model["SPDXID"])
    assert sorted(files) == sorted(f"./models/trust_score/{rel}" for rel in walk(src))
    for name, f in files.items():
        path = os.path.join("models", name[len("./models/"):])
        assert (checksum(f, "SHA1"), checksum(f)) == (sha(path, "sha1"), sha(path))


def test_the_app_files_with_sha1_and_sha256(packages, doc):
    # What the image's app layer really holds, read from the layout, not from
    # the function that lists the files for the build and the SBOM alike.
    want = layer_files(_LAYOUT, "app")
    assert any(name.endswith("/sidecar/main.py") for name in want), sorted(want)
    files = files_of(doc, packages["SPDXRef-Package-app"]["SPDXID"])
    assert sorted(files) == sorted(want)
    for name, data in want.items():
        f = files[name]
        assert (checksum(f, "SHA1"), checksum(f)) == (hashlib.sha1(data).hexdigest(), hashlib.sha256(data).hexdigest())
    # The verification code (SPDX 2.3 7.9): sha1 of the files' sorted SHA1s.
    sha1s = sorted(checksum(f, "SHA1") for f in files.values())
    code = packages["SPDXRef-Package-app"]["packageVerificationCode"]["packageVerificationCodeValue"]
    assert code == hashlib.sha1("".join(sha1s).encode()).hexdigest()


def test_the_layout_carries_it_as_a_referrer_of_the_image():
    digest = open(os.path.join("image", "DIGEST"), encoding="ascii").read().strip()
    index = assemble.read_index(_LAYOUT)
    image = assemble.tagged(index)
    assert image["digest"] == digest
    (desc,) = assemble.referrers(_LAYOUT, digest, _MEDIA_TYPE)
    assert desc in index["manifests"] and "annotations" not in desc
    assert desc["digest"] == open(os.path.join("image", "SBOM_DIGEST"), encoding="ascii").read().strip()
    manifest = read_json(os.path.join(_LAYOUT, "blobs", *desc["digest"].split(":")))
    assert manifest["subject"] == {"mediaType": image["mediaType"], "digest": digest, "size": image["size"]}
    (layer,) = manifest["layers"]
    with open(os.path.join(_LAYOUT, "blobs", *layer["digest"].split(":")), "rb") as f, open(_SBOM, "rb") as g:
        assert f.read() == g.read()


def files_of(doc, package_id):
    ids = {r["relatedSpdxElement"] for r in doc["relationships"]
           if r["spdxElementId"] == package_id and r["relationshipType"] == "CONTAINS"}
    return {f["fileName"]: f for f in doc["files"] if f["SPDXID"] in ids}


def layer_files(layout, name):
    """{"./path": bytes} of the regular files in the image's layer `name` (its config's history says which)."""
    manifest = json.loads(assemble.read_blob(layout, assemble.tagged(assemble.read_index(layout))["digest"]))
    config = json.loads(assemble.read_blob(layout, manifest["config"]["digest"]))
    (index,) = [i for i, h in enumerate(config["history"]) if h["created_by"].endswith(f": layer {name}")]
    blob = assemble.read_blob(layout, manifest["layers"][index]["digest"])
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:*") as tar:
        return {"./" + m.name.removeprefix("./"): tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def walk(root):
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            yield os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/")


def model_hash_of_copy(src):
    with tempfile.TemporaryDirectory() as tmp:
        return hashing.model_hash(shutil.copytree(src, os.path.join(tmp, "m"), symlinks=False))


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
