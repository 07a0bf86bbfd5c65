"""The image's SBOM: an SPDX 2.3 JSON document of what build.py put in it.

`document(repo, spec, subject)` describes the layers of build.py's spec:
every Debian package (name, version and architecture from its control file,
each checked against third_party/debian/packages.lock.json; the .deb's sha256;
its licence from usr/share/doc/<package>/copyright), every wheel (name and
version from its METADATA, checked against third_party/pip/wheels.lock.json;
sha256; licence from METADATA), the model (its version, the model hash of
sidecar/hashing.py, every file) and the sidecar sources, stubs and upgrade
plan (every file with SHA1 and SHA256). `subject` is the image manifest's
descriptor: the document is about that digest.

Deterministic: no clock (`created` is image.json's source_date_epoch), no
paths of the builder, sorted lists, canonical key order. Licences are never
guessed: a stated name maps to an SPDX id only through sbom_licenses.json,
anything else becomes a LicenseRef carrying the package's own text, and a
package that states nothing gets NOASSERTION.
"""

import email.parser
import email.policy
import hashlib
import json
import os
import posixpath
import re
import shutil
import sys
import tempfile
import urllib.parse
import zipfile

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)

import assemble  # noqa: E402  pylint: disable=wrong-import-position
from assemble import deb_lib  # noqa: E402  pylint: disable=wrong-import-position  (the one .deb reader)

MEDIA_TYPE = "application/spdx+json"
NOASSERTION = "NOASSERTION"
TOOL = "veid-sidecar-image-sbom"
_DOC_DIR = "usr/share/doc/"

with open(os.path.join(_HERE, "sbom_licenses.json"), encoding="utf-8") as _f:
    LICENSES = json.load(_f)


class SbomError(ValueError):
    pass


def _idstring(text):
    """SPDX ids allow letters, digits, '.' and '-' only."""
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-")


def _digests(path, *algorithms):
    hashes = [hashlib.new(a) for a in algorithms]
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            for h in hashes:
                h.update(chunk)
    return [h.hexdigest() for h in hashes]


def _read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


class Licences:
    """The document's LicenseRefs (hasExtractedLicensingInfos), one text per id."""

    def __init__(self):
        self.extracted = {}

    def ref(self, owner, name, text):
        text = text.strip()
        if not text:
            raise SbomError(f"{owner}: no text for licence {name!r}")
        licence_id = "LicenseRef-" + _idstring(f"{owner}-{name}")
        known = self.extracted.get(licence_id)
        if known and known["extractedText"] != text:
            raise SbomError(f"{licence_id}: two different texts")
        self.extracted[licence_id] = {"licenseId": licence_id, "name": name, "extractedText": text}
        return licence_id

    def infos(self):
        return [self.extracted[k] for k in sorted(self.extracted)]


# --- Debian -------------------------------------------------------------------

def dep5_paragraphs(text):
    """[{field (lower case): value}] of a machine-readable copyright file;
    a value is its first line, then its continuation lines unindented, with
    " ." lines as blank lines."""
    def unfold(value):
        first, *rest = value.split("\n")
        return "\n".join([first] + ["" if line[1:].strip() == "." else line[1:] for line in rest])

    return [{name.lower(): unfold(value) for name, value in p.items()} for p in deb_lib.paragraphs(text)]


def is_dep5(paragraphs):
    return bool(paragraphs) and "copyright-format" in paragraphs[0].get("format", "")


def dep5_licence(owner, text, licences):
    """The SPDX expression of every licence a DEP-5 file's header and Files
    paragraphs state, joined with AND (each applies to some of the files);
    None when the file is not DEP-5 or states none."""
    paragraphs = dep5_paragraphs(text)
    if not is_dep5(paragraphs):
        return None
    standalone = {}
    for p in paragraphs[1:]:
        if "license" in p and "files" not in p:
            short, _, body = p["license"].partition("\n")
            standalone[short.strip()] = body

    def resolve(name):
        # A name's text is its stand-alone License paragraph, else the whole
        # file (a Files paragraph's text may cover only part of an "or").
        return LICENSES["debian"].get(name) or licences.ref(owner, name, standalone.get(name, "").strip() or text)

    expressions = set()
    for i, p in enumerate(paragraphs):
        if "license" not in p or (i and "files" not in p):
            continue
        short = p["license"].partition("\n")[0]
        if short.strip():  # a header may have only a summary; the Files paragraphs name the licences
            expressions.add(dep5_expression(" ".join(short.split()), resolve))
    if not expressions:
        return None
    return " AND ".join(sorted(expressions))


def dep5_expression(short, resolve):
    """DEP-5's "A or B" / "A and B" (", and" too) as SPDX; a name with "with
    ... exception" stays one name, and a mix of and/or is kept whole (its
    grouping is not written down)."""
    short = re.sub(r",\s+(and|or)\s", r" \1 ", short)
    has_or, has_and = " or " in short, " and " in short
    if has_or and has_and:
        return resolve(short)
    for word, op in ((" or ", " OR "), (" and ", " AND ")):
        if word in short:
            return "(" + op.join(resolve(atom.strip()) for atom in short.split(word)) + ")"
    return resolve(short)


def deb_contents(path):
    """(copyright texts by doc directory, doc directory symlinks) of one .deb."""
    copyrights, links = {}, {}
    with deb_lib.data_tar(path) as tar:
        for m in tar:
            name = posixpath.normpath(m.name[2:] if m.name.startswith("./") else m.name)
            if not name.startswith(_DOC_DIR):
                continue
            parts = name[len(_DOC_DIR):].split("/")
            if len(parts) == 1 and m.issym():
                links[parts[0]] = posixpath.basename(posixpath.normpath(m.linkname))
            elif len(parts) == 2 and parts[1] == "copyright" and m.isfile():
                copyrights[parts[0]] = tar.extractfile(m).read().decode("utf-8")
    return copyrights, links


def deb_packages(debs, lock, licences):
    by_name = {e["name"]: e for e in lock}
    infos, copyrights, links = [], {}, {}
    for path in sorted(debs, key=os.path.basename):
        fields = deb_lib.control(path)
        name = fields["Package"]
        entry = by_name.get(name)
        if entry is None:
            raise SbomError(f"{os.path.basename(path)}: {name} is not in packages.lock.json")
        (sha256,) = _digests(path, "sha256")
        got = (fields["Version"], fields["Architecture"], sha256)
        want = (entry["version"], entry["arch"], entry["sha256"])
        if got != want:
            raise SbomError(f"{os.path.basename(path)}: (version, arch, sha256) {got}, packages.lock.json says {want}")
        texts, dir_links = deb_contents(path)
        copyrights.update(texts)
        links.update(dir_links)
        infos.append((name, entry))
    if sorted(by_name) != sorted(name for name, _ in infos):
        raise SbomError(f"the .debs given are not packages.lock.json's ({len(infos)} for {len(by_name)}): "
                        f"missing {sorted(set(by_name) - {n for n, _ in infos})}")
    packages = []
    for name, entry in infos:
        doc = name
        for _ in range(8):  # libstdc++6's doc directory is a link to gcc-12-base's
            if doc in copyrights or doc not in links:
                break
            doc = links[doc]
        if doc not in copyrights:
            raise SbomError(f"{name}: no {_DOC_DIR}{name}/copyright in the .debs")
        text = copyrights[doc]
        declared = dep5_licence(doc, text, licences)
        if declared is None:  # not machine-readable: the file itself is the licence statement
            declared = licences.ref(doc, "copyright", text)
        version = urllib.parse.quote(entry["version"], safe="")
        packages.append({
            "SPDXID": "SPDXRef-deb-" + _idstring(name),
            "name": name,
            "versionInfo": entry["version"],
            "packageFileName": os.path.basename(entry["url"]),
            "downloadLocation": entry["url"],
            "filesAnalyzed": False,
            "checksums": [{"algorithm": "SHA256", "checksumValue": entry["sha256"]}],
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": f"pkg:deb/debian/{urllib.parse.quote(name)}@{version}?arch={entry['arch']}",
            }],
            "licenseConcluded": NOASSERTION,
            "licenseDeclared": declared,
            "copyrightText": NOASSERTION,
            "comment": f"licenseDeclared from /{_DOC_DIR}{doc}/copyright",
        })
    return packages


# --- wheels -------------------------------------------------------------------

def canonical(name):
    """A distribution's normalised name (PEP 503), as the locks and purls spell it."""
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_metadata(zf):
    # Top level only: setuptools vendors other distributions' .dist-info.
    dist_infos = sorted({n.split("/")[0] for n in zf.namelist()
                         if n.count("/") == 1 and n.endswith(".dist-info/METADATA")})
    if len(dist_infos) != 1:
        raise SbomError(f"expected one *.dist-info/METADATA, found {dist_infos}")
    raw = zf.read(f"{dist_infos[0]}/METADATA").decode("utf-8")
    return dist_infos[0], email.parser.Parser(policy=email.policy.compat32).parsestr(raw, headersonly=True)


def wheel_licence(name, zf, dist_info, meta, licences):
    """License-Expression (PEP 639) as stated; else the License field or one
    License classifier, mapped; else a LicenseRef with the wheel's licence
    files (or its License field) as text; else NOASSERTION."""
    expression = (meta.get("License-Expression") or "").strip()
    if expression:
        return expression
    field = str(meta.get("License") or "").strip()
    if field in LICENSES["pypi_license"]:
        return LICENSES["pypi_license"][field]
    classifiers = [c for c in meta.get_all("Classifier") or [] if c.startswith("License ::")]
    mapped = {LICENSES["pypi_classifier"][c] for c in classifiers if c in LICENSES["pypi_classifier"]}
    if len(mapped) == 1 and len(classifiers) == 1:
        return mapped.pop()
    texts = []
    for rel in sorted(set(meta.get_all("License-File") or [])):
        for member in (f"{dist_info}/licenses/{rel}", f"{dist_info}/{rel}"):
            if member in zf.namelist():
                texts.append(f"== {rel} ==\n" + zf.read(member).decode("utf-8", "replace").strip())
                break
    text = "\n\n".join(texts) or field or "\n".join(classifiers)
    return licences.ref(f"pypi-{name}", "license", text) if text else NOASSERTION


def wheel_packages(wheels, lock, licences):
    by_file = {w["filename"]: w for w in lock["wheels"]}
    packages = []
    for path in sorted(wheels, key=os.path.basename):
        filename = os.path.basename(path)
        entry = by_file.get(filename)
        if entry is None:
            raise SbomError(f"{filename} is not in wheels.lock.json")
        (sha256,) = _digests(path, "sha256")
        with zipfile.ZipFile(path) as zf:
            dist_info, meta = wheel_metadata(zf)
            name, version = canonical(meta["Name"]), meta["Version"].strip()
            got, want = (name, version, sha256), (entry["name"], entry["version"], entry["sha256"])
            if got != want:
                raise SbomError(f"{filename}: (name, version, sha256) {got}, wheels.lock.json says {want}")
            declared = wheel_licence(name, zf, dist_info, meta, licences)
        packages.append({
            "SPDXID": "SPDXRef-pypi-" + _idstring(name),
            "name": name,
            "versionInfo": version,
            "packageFileName": filename,
            "downloadLocation": entry["url"],
            "filesAnalyzed": False,
            "checksums": [{"algorithm": "SHA256", "checksumValue": sha256}],
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": f"pkg:pypi/{name}@{urllib.parse.quote(version, safe='')}",
            }],
            "licenseConcluded": NOASSERTION,
            "licenseDeclared": declared,
            "copyrightText": NOASSERTION,
        })
    return packages


# --- files of the model and the app -------------------------------------------

def file_element(dest, src):
    sha1, sha256 = _digests(src, "sha1", "sha256")
    return {
        "SPDXID": "SPDXRef-File-" + _idstring(dest),
        "fileName": "./" + dest.lstrip("/"),
        "checksums": [{"algorithm": "SHA1", "checksumValue": sha1},
                      {"algorithm": "SHA256", "checksumValue": sha256}],
    }


def analysed_package(spdx_id, name, files, **fields):
    """A package whose files are listed: SPDX 2.3 then wants the verification
    code, sha1 over its files' sorted SHA1s (section 7.9)."""
    sha1s = sorted(f["checksums"][0]["checksumValue"] for f in files)
    package = {
        "SPDXID": spdx_id,
        "name": name,
        "downloadLocation": NOASSERTION,
        "filesAnalyzed": True,
        "packageVerificationCode": {"packageVerificationCodeValue": hashlib.sha1("".join(sha1s).encode()).hexdigest()},
        "licenseConcluded": NOASSERTION,
        "licenseDeclared": NOASSERTION,
        "copyrightText": NOASSERTION,
    }
    package.update(fields)
    return package


def model_package(model_layer, repo):
    if repo not in sys.path:
        sys.path.insert(0, repo)
    from sidecar import hashing  # pylint: disable=import-outside-toplevel

    src, dest = model_layer["dir"]["src"], model_layer["dir"]["dest"]
    with tempfile.TemporaryDirectory() as tmp:
        # The tree as the layer holds it: build sandboxes and runfiles are
        # symlink farms, which the model hash rightly refuses.
        copy = shutil.copytree(src, os.path.join(tmp, "model"), symlinks=False)
        rels = hashing.list_model_files(copy) + [hashing.METADATA_FILE]
        files = [file_element(posixpath.join(dest, rel), os.path.join(copy, rel))
                 for rel in sorted(rels, key=os.fsencode)]
        metadata = _read_json(os.path.join(copy, hashing.METADATA_FILE))
        model_hash = hashing.model_hash(copy)
    package = analysed_package(
        "SPDXRef-Package-model", posixpath.basename(dest), files,
        versionInfo=metadata["version"],
        externalRefs=[{"referenceCategory": "OTHER", "referenceType": "veid-model-hash",
                       "referenceLocator": model_hash,
                       "comment": "sidecar/hashing.py model_hash: what --expected-hash and plan.json pin"}],
        comment=f"model hash {model_hash} (sidecar/hashing.py, veid-model-manifest-v1)")
    return package, files


def files_package(spdx_id, name, files_map, comment):
    files = [file_element(dest, src) for dest, src in sorted(files_map.items())]
    return analysed_package(spdx_id, name, files, comment=comment), files


# --- the document -------------------------------------------------------------

def document(repo, spec, subject):
    """The SPDX document (a dict) of the image built from `spec` whose manifest is `subject`."""
    layers = {layer["name"]: layer for layer in spec["layers"]}
    algorithm, hexdigest = subject["digest"].split(":", 1)
    if algorithm != "sha256":
        raise SbomError(f"manifest digest {subject['digest']}: only sha256 is supported")
    licences = Licences()
    debs = deb_packages(layers["debian"]["debs"],
                        _read_json(os.path.join(repo, "third_party", "debian", "packages.lock.json")), licences)
    wheels = wheel_packages(layers["python"]["wheels"],
                            _read_json(os.path.join(repo, "third_party", "pip", "wheels.lock.json")), licences)
    model, model_files = model_package(layers["model"], repo)
    plan, plan_files = files_package("SPDXRef-Package-plan", "upgrade-plan", layers["model"]["files"],
                                     "the upgrade plan the entrypoint serves (--upgrade-plan)")
    app, app_files = files_package("SPDXRef-Package-app", "veid-sidecar-app", layers["app"]["files"],
                                   "the sidecar's Python sources and the generated inference.v1 stubs")
    labels = spec["config"].get("Labels", {})
    image = {
        "SPDXID": "SPDXRef-Package-image",
        "name": "veid-sidecar",
        "versionInfo": labels.get("org.opencontainers.image.version", NOASSERTION),
        "primaryPackagePurpose": "CONTAINER",
        "downloadLocation": NOASSERTION,
        "filesAnalyzed": False,
        "checksums": [{"algorithm": "SHA256", "checksumValue": hexdigest}],
        "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                          "referenceLocator": f"pkg:oci/veid-sidecar@sha256%3A{hexdigest}"}],
        "licenseConcluded": NOASSERTION,
        "licenseDeclared": NOASSERTION,
        "copyrightText": NOASSERTION,
        "comment": f"the OCI image whose manifest is {subject['digest']} ({subject['size']} bytes); "
                   "checksum = the manifest's sha256",
    }
    contained = debs + wheels + [model, plan, app]
    relationships = [{"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
                      "relatedSpdxElement": image["SPDXID"]}]
    relationships += [{"spdxElementId": image["SPDXID"], "relationshipType": "CONTAINS",
                       "relatedSpdxElement": p["SPDXID"]} for p in contained]
    for package, files in ((model, model_files), (plan, plan_files), (app, app_files)):
        relationships += [{"spdxElementId": package["SPDXID"], "relationshipType": "CONTAINS",
                           "relatedSpdxElement": f["SPDXID"]} for f in files]
    packages = [image] + contained
    files = model_files + plan_files + app_files
    ids = [e["SPDXID"] for e in packages + files]
    if len(set(ids)) != len(ids):
        raise SbomError(f"two elements share an SPDXID: {sorted({i for i in ids if ids.count(i) > 1})}")
    return {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": f"veid-sidecar@{subject['digest']}",
        "documentNamespace": f"https://spdx.org/spdxdocs/veid-sidecar-{hexdigest}",
        "creationInfo": {
            "created": assemble.rfc3339(spec["source_date_epoch"]),
            "creators": [f"Tool: {TOOL}"],
            "comment": "generated by image/sbom.py from the inputs image/build.py put in the image",
        },
        "packages": sorted(packages, key=lambda p: p["SPDXID"]),
        "files": sorted(files, key=lambda f: f["SPDXID"]),
        "hasExtractedLicensingInfos": licences.infos(),
        "relationships": sorted(relationships, key=lambda r: (r["spdxElementId"], r["relationshipType"],
                                                              r["relatedSpdxElement"])),
    }


def dumps(doc):
    """The document's bytes: sorted keys, one-space indent, ASCII, a final newline."""
    return (json.dumps(doc, sort_keys=True, indent=1, ensure_ascii=True) + "\n").encode("ascii")
