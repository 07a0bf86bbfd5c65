"""Reproducibility tests for image/assemble.py (no TensorFlow, a few seconds)."""

import base64
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
import zlib

import pytest

from image import assemble

ASSEMBLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assemble.py")
EPOCH = 1700000000


def _ar(members):
    out = io.BytesIO()
    out.write(b"!<arch>\n")
    for name, body in members:
        out.write(f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(body):<10}`\n".encode("ascii"))
        out.write(body)
        if len(body) % 2:
            out.write(b"\n")
    return out.getvalue()


def make_deb(path, mtime):
    """A tiny .deb: dirs, an executable, a hard link, a symlink, two CA certs."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:xz", format=tarfile.GNU_FORMAT) as tar:
        def add(name, kind=tarfile.REGTYPE, body=b"", mode=0o644, link=""):
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode, ti.mtime, ti.linkname = kind, mode, mtime, link
            ti.uname, ti.gname = "root", "root"
            ti.size = len(body) if kind == tarfile.REGTYPE else 0
            tar.addfile(ti, io.BytesIO(body) if kind == tarfile.REGTYPE else None)
        add("./", tarfile.DIRTYPE, mode=0o755)
        add("./usr/", tarfile.DIRTYPE, mode=0o755)
        add("./usr/bin/", tarfile.DIRTYPE, mode=0o755)
        add("./usr/bin/tool", body=b"#!/bin/sh\necho hi\n", mode=0o4755)  # setuid must be dropped
        add("./usr/bin/tool-alias", tarfile.LNKTYPE, link="./usr/bin/tool")
        add("./usr/bin/tool-link", tarfile.SYMTYPE, link="tool", mode=0o777)
        add("./usr/share/", tarfile.DIRTYPE, mode=0o755)
        add("./usr/share/ca-certificates/", tarfile.DIRTYPE, mode=0o755)
        add("./usr/share/ca-certificates/b/", tarfile.DIRTYPE, mode=0o755)
        add("./usr/share/ca-certificates/b/two.crt", body=b"CERT-B\n")
        add("./usr/share/ca-certificates/a/", tarfile.DIRTYPE, mode=0o755)
        add("./usr/share/ca-certificates/a/one.crt", body=b"CERT-A")  # no trailing newline
        add("./usr/share/doc/", tarfile.DIRTYPE, mode=0o755)
        add("./usr/share/doc/fake/", tarfile.DIRTYPE, mode=0o755)
        add("./usr/share/doc/fake/changelog.gz", body=b"x")
        add("./usr/share/doc/fake/copyright", body=b"MIT\n")
    with open(path, "wb") as f:
        f.write(_ar([("debian-binary", b"2.0\n"), ("control.tar.xz", b""), ("data.tar.xz", data.getvalue())]))


def _record_hash(b):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(b).digest()).rstrip(b"=").decode()


def make_wheel(path, date_time):
    files = {
        "tinypkg/__init__.py": b"VALUE = 42\n",
        "tinypkg/native.so": b"\x7fELF-not-really",
        "tinypkg/__pycache__/__init__.cpython-311.pyc": b"bytecode",
        "tinypkg-1.0.data/scripts/tiny": b"#!python\nimport tinypkg\n",
        "tinypkg-1.0.data/headers/tiny.h": b"int x;\n",
        "tinypkg-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: tinypkg\nVersion: 1.0\n",
        "tinypkg-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: cp311-cp311-linux_x86_64\n",
    }
    record = "".join(f"{n},{_record_hash(b)},{len(b)}\n" for n, b in files.items())
    record += "tinypkg-1.0.dist-info/RECORD,,\n"
    files["tinypkg-1.0.dist-info/RECORD"] = record.encode()
    with zipfile.ZipFile(path, "w") as zf:
        for name, body in files.items():
            info = zipfile.ZipInfo(name, date_time)
            info.external_attr = (0o100755 if name.endswith(".so") else 0o100644) << 16
            zf.writestr(info, body)


def make_inputs(root, umask, mtime, date_time):
    old = os.umask(umask)
    try:
        os.makedirs(os.path.join(root, "app", "pkg"))
        os.makedirs(os.path.join(root, "model", "variables"))
        with open(os.path.join(root, "app", "pkg", "main.py"), "w") as f:
            f.write("print('hello')\n")
        with open(os.path.join(root, "app", "run.sh"), "w") as f:
            f.write("#!/bin/sh\nexec python3 -m pkg.main\n")
        os.chmod(os.path.join(root, "app", "run.sh"), 0o777 & ~umask | 0o100)
        with open(os.path.join(root, "model", "saved_model.pb"), "wb") as f:
            f.write(b"\x08\x01model")
        with open(os.path.join(root, "model", "variables", "variables.index"), "wb") as f:
            f.write(b"index")
        os.link(os.path.join(root, "model", "saved_model.pb"), os.path.join(root, "model", "hardlink.pb"))
        os.symlink("variables/variables.index", os.path.join(root, "model", "index-link"))
        # An absolute symlink (like Bazel's sandbox) is dereferenced.
        os.symlink(os.path.join(root, "app", "pkg", "main.py"), os.path.join(root, "model", "abs-link.py"))
        make_deb(os.path.join(root, "fake.deb"), mtime)
        make_wheel(os.path.join(root, "tinypkg-1.0-cp311-cp311-linux_x86_64.whl"), date_time)
        for dirpath, dirnames, filenames in os.walk(root):
            for n in dirnames + filenames:
                p = os.path.join(dirpath, n)
                if not os.path.islink(p):
                    os.utime(p, (mtime, mtime))
    finally:
        os.umask(old)
    j = lambda *p: os.path.join(root, *p)  # noqa: E731
    return {
        "source_date_epoch": EPOCH,
        "layers": [
            {"name": "debian", "debs": [j("fake.deb")], "exclude": ["usr/share/doc"],
             "include": ["usr/share/doc/*/copyright"]},
            {"name": "base", "generated": "base", "ca_certificates_deb": j("fake.deb")},
            {"name": "python", "wheels": [j("tinypkg-1.0-cp311-cp311-linux_x86_64.whl")],
             "site_packages": "/usr/lib/python3/dist-packages", "scripts": "/usr/local/bin"},
            {"name": "app", "files": {"/app/pkg/main.py": j("app", "pkg", "main.py"), "/app/run.sh": j("app", "run.sh")},
             "symlinks": {"/usr/bin/python3": "python3.11"}},
            {"name": "model", "dir": {"dest": "/models/tiny", "src": j("model")}},
        ],
        "config": {
            "Entrypoint": ["/usr/bin/python3.11", "-m", "pkg.main"],
            "Env": ["PYTHONDONTWRITEBYTECODE=1", "PYTHONPATH=/app"],
            "Labels": {"org.opencontainers.image.revision": "0" * 40, "org.opencontainers.image.version": "test"},
        },
    }


def build(tmp_path, tag, umask, mtime, date_time, tz, lc):
    root = tmp_path / tag
    spec = make_inputs(str(root / "inputs"), umask, mtime, date_time)
    spec_path = root / "spec.json"
    spec_path.write_text(json.dumps(spec))
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TZ": tz, "LC_ALL": lc, "LANG": lc}
    out = root / "oci"
    proc = subprocess.run([sys.executable, ASSEMBLE, "--spec", str(spec_path), "--out", str(out)],
                          cwd=str(root), env=env, umask=umask, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip(), out


@pytest.fixture(scope="module")
def two_builds(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("assemble")
    a = build(tmp, "first", 0o022, 1111111111, (2001, 2, 3, 4, 5, 6), "UTC", "C.UTF-8")
    b = build(tmp, "second-with-a-longer-directory-name", 0o077, 1600000000, (2020, 9, 9, 9, 9, 10),
              "Pacific/Chatham", "de_DE.ISO-8859-1")
    return a, b


def read_json(layout, digest):
    with open(os.path.join(layout, "blobs", "sha256", digest.split(":")[1]), "rb") as f:
        return json.loads(f.read())


def manifest_of(layout):
    return read_json(layout, assemble.tagged(assemble.read_index(layout))["digest"])


def layers_of(layout):
    out = {}
    manifest = manifest_of(layout)
    config = read_json(layout, manifest["config"]["digest"])
    for desc, h in zip(manifest["layers"], config["history"]):
        name = h["created_by"].rsplit(" ", 1)[1]
        with open(os.path.join(layout, "blobs", "sha256", desc["digest"].split(":")[1]), "rb") as f:
            out[name] = f.read()
    return out


def test_same_digest_across_umask_mtime_tz_locale_and_directory(two_builds):
    (da, a), (db, b) = two_builds
    assert da.startswith("sha256:") and len(da) == 71
    assert da == db
    assert sorted(os.listdir(a / "blobs" / "sha256")) == sorted(os.listdir(b / "blobs" / "sha256"))
    for name in ("index.json", "oci-layout"):
        assert (a / name).read_bytes() == (b / name).read_bytes()


def test_blobs_match_their_names(two_builds):
    (_, a), _ = two_builds
    for name in os.listdir(a / "blobs" / "sha256"):
        assert hashlib.sha256((a / "blobs" / "sha256" / name).read_bytes()).hexdigest() == name


def test_config_and_manifest(two_builds):
    (digest, a), _ = two_builds
    manifest = manifest_of(a)
    raw_manifest = (a / "blobs" / "sha256" / digest.split(":")[1]).read_bytes()
    assert raw_manifest == json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    assert [l["mediaType"] for l in manifest["layers"]] == ["application/vnd.oci.image.layer.v1.tar"] * 5
    config = read_json(a, manifest["config"]["digest"])
    assert config["created"] == "2023-11-14T22:13:20Z"
    assert config["architecture"] == "amd64" and config["os"] == "linux"
    assert config["config"]["User"] == "65532"
    assert config["config"]["ExposedPorts"] == {"50051/tcp": {}, "9090/tcp": {}}
    assert config["config"]["Entrypoint"] == ["/usr/bin/python3.11", "-m", "pkg.main"]
    assert config["rootfs"]["diff_ids"] == [l["digest"] for l in manifest["layers"]]
    assert all(h["created"] == config["created"] for h in config["history"])


def test_tar_entries_are_normalised(two_builds):
    (_, a), _ = two_builds
    for name, blob in layers_of(a).items():
        with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
            members = tar.getmembers()
        paths = [m.name.rstrip("/") for m in members]
        assert paths == sorted(paths, key=lambda p: p.encode()), name
        seen = set()
        for m in members:
            p = m.name.rstrip("/")
            parent = p.rsplit("/", 1)[0] if "/" in p else None
            assert parent is None or parent in seen, f"{name}: {p} before its parent"
            seen.add(p)
            assert m.mtime == EPOCH and isinstance(m.mtime, int)
            assert m.uname == "" and m.gname == ""
            assert m.pax_headers == {}, (name, p, m.pax_headers)
            assert not m.islnk(), f"{name}: hard link {p}"
            assert not p.startswith(("/", "./"))
            if m.isdir():
                want = {"tmp": 0o1777, "root": 0o700}.get(p, 0o755)
                assert m.mode == want, (name, p, oct(m.mode))
            elif m.isfile():
                assert m.mode in (0o644, 0o755), (name, p, oct(m.mode))
            if (m.uid, m.gid) != (0, 0):
                assert p == "home/nonroot" and (m.uid, m.gid) == (65532, 65532)
            assert not p.endswith(".pyc") and "__pycache__" not in p


def _files(blob):
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        return {m.name.rstrip("/"): (m, tar.extractfile(m).read() if m.isfile() else None) for m in tar}


def test_layer_contents(two_builds):
    (_, a), _ = two_builds
    layers = {k: _files(v) for k, v in layers_of(a).items()}
    deb = layers["debian"]
    assert deb["usr/bin/tool"][0].mode == 0o755
    assert deb["usr/bin/tool-alias"][0].isfile() and deb["usr/bin/tool-alias"][1] == deb["usr/bin/tool"][1]
    assert deb["usr/bin/tool-link"][0].issym() and deb["usr/bin/tool-link"][0].linkname == "tool"
    assert "usr/share/doc/fake/copyright" in deb and "usr/share/doc/fake/changelog.gz" not in deb
    base = layers["base"]
    assert base["etc/ssl/certs/ca-certificates.crt"][1] == b"CERT-A\nCERT-B\n"
    assert base["usr/lib/ssl/cert.pem"][0].linkname == "/etc/ssl/certs/ca-certificates.crt"
    assert b"nonroot:x:65532:65532:" in base["etc/passwd"][1]
    assert base["home/nonroot"][0].uid == 65532
    py = layers["python"]
    site = "usr/lib/python3/dist-packages/"
    assert py[site + "tinypkg/__init__.py"][1] == b"VALUE = 42\n"
    assert py[site + "tinypkg/native.so"][0].mode == 0o755
    assert py["usr/local/bin/tiny"][1] == b"#!/usr/bin/python3.11\nimport tinypkg\n"
    assert py["usr/local/bin/tiny"][0].mode == 0o755
    assert not any("headers" in p or p.endswith(".h") for p in py)
    assert site + "tinypkg-1.0.dist-info/METADATA" in py
    app = layers["app"]
    assert app["app/run.sh"][0].mode == 0o755 and app["app/pkg/main.py"][0].mode == 0o644
    assert app["usr/bin/python3"][0].issym()
    model = layers["model"]
    assert model["models/tiny/hardlink.pb"][0].isfile()
    assert model["models/tiny/hardlink.pb"][1] == model["models/tiny/saved_model.pb"][1]
    assert model["models/tiny/index-link"][0].issym()
    assert model["models/tiny/index-link"][0].linkname == "variables/variables.index"
    assert model["models/tiny/abs-link.py"][0].isfile()


def test_wheel_record_mismatch_fails(tmp_path):
    wheel = tmp_path / "bad-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("bad/__init__.py", b"tampered")
        zf.writestr("bad-1.0.dist-info/WHEEL", b"Wheel-Version: 1.0\n")
        zf.writestr("bad-1.0.dist-info/RECORD", f"bad/__init__.py,{_record_hash(b'original')},8\n")
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"source_date_epoch": 0, "layers": [
        {"wheels": [str(wheel)], "site_packages": "/site"}]}))
    proc = subprocess.run([sys.executable, ASSEMBLE, "--spec", str(spec), "--out", str(tmp_path / "oci")],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "RECORD" in proc.stderr


def _assemble(tmp_path, spec, name):
    spec_path = tmp_path / f"{name}.json"
    spec_path.write_text(json.dumps(spec))
    out = tmp_path / name
    proc = subprocess.run([sys.executable, ASSEMBLE, "--spec", str(spec_path), "--out", str(out)],
                          capture_output=True, text=True)
    return proc, out


def test_gzip_layers_hold_the_same_tars_with_uncompressed_diff_ids(two_builds, tmp_path):
    (_, plain), _ = two_builds
    spec = make_inputs(str(tmp_path / "inputs"), 0o022, 1111111111, (2001, 2, 3, 4, 5, 6))
    spec["gzip"] = {"level": 6, "zlib": zlib.ZLIB_RUNTIME_VERSION}
    proc, out = _assemble(tmp_path, spec, "gz")
    assert proc.returncode == 0, proc.stderr
    manifest = manifest_of(out)
    assert {l["mediaType"] for l in manifest["layers"]} == {"application/vnd.oci.image.layer.v1.tar+gzip"}
    config = read_json(out, manifest["config"]["digest"])
    plain_manifest = manifest_of(plain)
    # Compression changes the blobs, never the layers: diff_ids are the plain tars' digests.
    assert config["rootfs"]["diff_ids"] == [l["digest"] for l in plain_manifest["layers"]]
    for desc, diff_id in zip(manifest["layers"], config["rootfs"]["diff_ids"]):
        blob = (out / "blobs" / "sha256" / desc["digest"].split(":")[1]).read_bytes()
        assert len(blob) == desc["size"]
        # No FNAME/FEXTRA flags, mtime 0, XFL 0, OS unknown: nothing of the build machine.
        assert blob[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
        assert "sha256:" + hashlib.sha256(zlib.decompress(blob, 16 + zlib.MAX_WBITS)).hexdigest() == diff_id
    again_proc, again = _assemble(tmp_path, spec, "gz-again")
    assert again_proc.stdout == proc.stdout
    assert sorted(os.listdir(again / "blobs" / "sha256")) == sorted(os.listdir(out / "blobs" / "sha256"))


def test_another_zlib_than_the_pinned_one_is_refused(tmp_path):
    proc, _ = _assemble(tmp_path, {"source_date_epoch": 0, "gzip": {"level": 6, "zlib": "0.0.1"}, "layers": []}, "oci")
    assert proc.returncode == 1 and "pins '0.0.1'" in proc.stderr


def test_exclude_applies_to_wheel_files(tmp_path):
    spec = make_inputs(str(tmp_path / "inputs"), 0o022, 1111111111, (2001, 2, 3, 4, 5, 6))
    spec["layers"][2]["exclude"] = ["usr/lib/python3/dist-packages/tinypkg/*.so", "*/tinypkg-1.0.dist-info/RECORD"]
    proc, out = _assemble(tmp_path, spec, "oci")
    assert proc.returncode == 0, proc.stderr
    py = _files(layers_of(out)["python"])
    site = "usr/lib/python3/dist-packages/"
    assert site + "tinypkg/__init__.py" in py and site + "tinypkg-1.0.dist-info/METADATA" in py
    assert site + "tinypkg/native.so" not in py and site + "tinypkg-1.0.dist-info/RECORD" not in py


@pytest.mark.skipif(not shutil.which("skopeo"), reason="skopeo is not installed (apt-get install skopeo)")
def test_skopeo_inspects_layout(two_builds):
    (digest, a), _ = two_builds
    proc = subprocess.run(["skopeo", "inspect", f"oci:{a}"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["Digest"] == digest


@pytest.mark.skipif(not shutil.which("umoci"), reason="umoci is not installed (apt-get install umoci)")
def test_umoci_unpacks_layout(two_builds, tmp_path):
    (_, a), _ = two_builds
    bundle = tmp_path / "bundle"
    # --rootless: Bazel's sandbox is a user namespace where only uid 0 maps,
    # so restoring owner 65532 fails even as root; contents are what we check.
    cmd = ["umoci", "unpack", "--rootless", "--image", f"{a}:latest", str(bundle)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    rootfs = bundle / "rootfs"
    assert (rootfs / "usr/lib/python3/dist-packages/tinypkg/__init__.py").read_bytes() == b"VALUE = 42\n"
    assert os.readlink(rootfs / "models/tiny/index-link") == "variables/variables.index"
    assert (rootfs / "etc/ssl/certs/ca-certificates.crt").read_bytes() == b"CERT-A\nCERT-B\n"


@pytest.fixture(scope="module")
def with_referrer(two_builds, tmp_path_factory):
    """Build a's layout, copied, with an SBOM-like referrer attached."""
    (digest, a), _ = two_builds
    layout = tmp_path_factory.mktemp("referrer") / "oci"
    shutil.copytree(a, layout)
    subject = assemble.tagged(assemble.read_index(layout))
    desc = assemble.add_referrer(str(layout), subject, "application/spdx+json", b'{"spdxVersion": "SPDX-2.3"}\n')
    return digest, layout, subject, desc


def test_a_referrer_leaves_the_image_as_it_was(two_builds, with_referrer):
    (_, a), _ = two_builds
    digest, layout, subject, desc = with_referrer
    index = assemble.read_index(layout)
    assert index["manifests"][0] == assemble.read_index(a)["manifests"][0] == subject
    assert subject["digest"] == digest and assemble.tagged(index) == subject
    assert index["manifests"][1] == desc and "annotations" not in desc  # the tag names the image alone
    assert (layout / "index.json").read_bytes() == json.dumps(index, sort_keys=True, separators=(",", ":")).encode()


def test_the_referrer_manifest_is_oci_1_1(with_referrer):
    _, layout, subject, desc = with_referrer
    raw = (layout / "blobs" / "sha256" / desc["digest"].split(":")[1]).read_bytes()
    assert hashlib.sha256(raw).hexdigest() == desc["digest"].split(":")[1] and len(raw) == desc["size"]
    manifest = json.loads(raw)
    assert desc["artifactType"] == manifest["artifactType"] == "application/spdx+json"
    assert manifest["mediaType"] == desc["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["config"] == {"mediaType": "application/vnd.oci.empty.v1+json", "size": 2,
                                  "digest": "sha256:" + hashlib.sha256(b"{}").hexdigest()}
    assert manifest["subject"] == {k: subject[k] for k in ("mediaType", "digest", "size")}
    (layer,) = manifest["layers"]
    assert layer["mediaType"] == "application/spdx+json"
    assert read_json(layout, layer["digest"]) == {"spdxVersion": "SPDX-2.3"}
    assert assemble.referrers(str(layout), subject["digest"], "application/spdx+json") == [desc]
    assert assemble.referrers(str(layout), subject["digest"], "application/other") == []


@pytest.mark.skipif(not shutil.which("skopeo"), reason="skopeo is not installed (apt-get install skopeo)")
def test_skopeo_copies_the_tagged_image_of_a_layout_with_a_referrer(with_referrer, tmp_path):
    digest, layout, _, _ = with_referrer
    proc = subprocess.run(["skopeo", "inspect", f"oci:{layout}:latest"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["Digest"] == digest
    copy = ["skopeo", "copy", "--quiet", "--preserve-digests", f"oci:{layout}:latest", f"oci:{tmp_path / 'copy'}:latest"]
    proc = subprocess.run(copy, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert assemble.tagged(assemble.read_index(tmp_path / "copy"))["digest"] == digest


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
