#!/usr/bin/env python3
"""Assemble a reproducible OCI image layout from a JSON spec (stdlib only, Python 3.11).

    python3 image/assemble.py --spec SPEC.json --out DIR [--digest-file FILE]

Writes DIR/oci-layout, DIR/index.json and DIR/blobs/sha256/* (OCI image-spec
1.1) and prints the manifest digest ("sha256:...") on stdout. The same spec and
input bytes give the same digest whatever the machine, directory, time, umask,
TZ or locale: nothing is read from the filesystem but file contents, the
symlink targets inside a copied tree, and whether a file has an x bit. See
image/README.md for the spec format and the normalisation rules.
"""

import argparse
import base64
import csv
import datetime
import fnmatch
import hashlib
import io
import json
import os
import posixpath
import shutil
import stat
import sys
import tarfile
import tempfile
import zipfile
import zlib

# third_party/debian/deb.py reads .debs for the Python toolchain's root too;
# this script runs on its own (Bazel, Nix, tests), so it finds it by path.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "third_party", "debian"))
import deb as deb_lib  # noqa: E402  pylint: disable=wrong-import-position

LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar"
GZIP_LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
# OCI 1.1: an artifact manifest's config when it has none (the two bytes "{}").
EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
REF_NAME = "org.opencontainers.image.ref.name"

DEFAULT_CONFIG = {
    "User": "65532",
    "ExposedPorts": {"50051/tcp": {}, "9090/tcp": {}},
}
CONFIG_KEYS = {"Cmd", "Entrypoint", "Env", "ExposedPorts", "Labels", "StopSignal", "User", "Volumes", "WorkingDir"}

NONROOT = 65532
PASSWD = (
    "root:x:0:0:root:/root:/sbin/nologin\n"
    f"nonroot:x:{NONROOT}:{NONROOT}:nonroot:/home/nonroot:/sbin/nologin\n"
)
GROUP = f"root:x:0:\nnonroot:x:{NONROOT}:\n"
NSSWITCH = "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\nprotocols: files\nservices: files\n"


class SpecError(Exception):
    pass


def canonical_json(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def clean_path(path, what):
    """'/usr//bin/./x' -> 'usr/bin/x'; rejects escapes."""
    norm = posixpath.normpath("/" + path.replace("\\", "/")).lstrip("/")
    if path.replace("\\", "/").split("/").count("..") or norm.startswith(".."):
        raise SpecError(f"{what}: path {path!r} leaves the root")
    return "" if norm == "." else norm


def is_bytecode(path):
    return path.endswith((".pyc", ".pyo")) or "__pycache__" in path.split("/")


# --- layer model --------------------------------------------------------------

class Entry:
    """One tar entry. Content comes from `data` (bytes) or `opener()` (a binary
    file object of exactly `size` bytes); `record` is an optional expected
    sha256 (hex) checked while writing."""

    __slots__ = ("path", "kind", "mode", "uid", "gid", "linkname", "size", "data", "opener", "origin", "record")

    def __init__(self, path, kind, *, mode=None, uid=0, gid=0, linkname="", size=0, data=None, opener=None,
                 origin="", record=None):
        self.path, self.kind, self.uid, self.gid, self.linkname = path, kind, uid, gid, linkname
        self.size, self.data, self.opener, self.origin, self.record = size, data, opener, origin, record
        self.mode = mode

    def open(self):
        return io.BytesIO(self.data) if self.data is not None else self.opener()

    def content_digest(self):
        h = hashlib.sha256()
        with self.open() as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()


class Layer:
    def __init__(self, name, exclude=(), include=()):
        self.name = name
        self.exclude, self.include = list(exclude), list(include)
        self.entries = {}  # path -> Entry

    def _parents(self, path, origin):
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            parent = "/".join(parts[:i])
            existing = self.entries.get(parent)
            if existing is None:
                self.entries[parent] = Entry(parent, "dir", origin=origin)
            elif existing.kind != "dir":
                raise SpecError(f"layer {self.name}: {path} ({origin}) is under {parent}, a {existing.kind} "
                                f"from {existing.origin}")

    def add(self, entry):
        if not entry.path:
            return  # the root directory itself is never an entry
        if is_bytecode(entry.path) or excluded(entry.path, self.exclude, self.include):
            return
        self._parents(entry.path, entry.origin)
        old = self.entries.get(entry.path)
        if old is not None:
            if old.kind == "dir" and entry.kind == "dir":
                if entry.mode is not None or entry.uid or entry.gid:
                    old.mode, old.uid, old.gid = entry.mode, entry.uid, entry.gid
                return
            same = old.kind == entry.kind and (
                (entry.kind == "symlink" and old.linkname == entry.linkname)
                or (entry.kind == "file" and old.size == entry.size
                    and old.content_digest() == entry.content_digest()))
            if not same:
                raise SpecError(f"layer {self.name}: /{entry.path} comes from both {old.origin} and {entry.origin}")
            return
        self.entries[entry.path] = entry


def tarinfo_for(entry, epoch):
    ti = tarfile.TarInfo(entry.path)
    ti.mtime = int(epoch)
    ti.uid, ti.gid = int(entry.uid), int(entry.gid)
    ti.uname = ti.gname = ""
    if entry.kind == "dir":
        ti.type = tarfile.DIRTYPE
        ti.mode = 0o755 if entry.mode is None else entry.mode
    elif entry.kind == "symlink":
        ti.type = tarfile.SYMTYPE
        ti.mode = 0o777
        ti.linkname = entry.linkname
    else:
        ti.type = tarfile.REGTYPE
        ti.mode = entry.mode if entry.mode in (0o755, 0o644) else (0o755 if (entry.mode or 0) & 0o111 else 0o644)
        ti.size = entry.size
    return ti


class HashingWriter:
    def __init__(self, f):
        self.f, self.h, self.n = f, hashlib.sha256(), 0

    def write(self, b):
        self.h.update(b)
        self.n += len(b)
        return self.f.write(b)

    def tell(self):
        return self.n


class HashingReader:
    def __init__(self, f):
        self.f, self.h = f, hashlib.sha256()

    def read(self, n=-1):
        b = self.f.read(n)
        self.h.update(b)
        return b


class GzipWriter:
    """A gzip member written with this interpreter's zlib at a fixed level: a
    header with no name, mtime 0, XFL 0 and OS 255 (unknown), so the bytes
    depend only on the input, the level and the zlib build (checked against
    the spec by `check_zlib`)."""

    HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"

    def __init__(self, f, level):
        self.f, self.crc, self.n = f, 0, 0
        self.z = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS, 8, zlib.Z_DEFAULT_STRATEGY)
        f.write(self.HEADER)

    def write(self, b):
        self.crc = zlib.crc32(b, self.crc)
        self.n += len(b)
        self.f.write(self.z.compress(b))
        return len(b)

    def close(self):
        self.f.write(self.z.flush(zlib.Z_FINISH))
        self.f.write((self.crc & 0xFFFFFFFF).to_bytes(4, "little") + (self.n & 0xFFFFFFFF).to_bytes(4, "little"))


def check_zlib(gzip):
    """Deflate output is only fixed for one zlib: refuse any other than the
    pinned one rather than build a different digest."""
    level, version = gzip.get("level"), gzip.get("zlib")
    if not isinstance(level, int) or isinstance(level, bool) or not 0 <= level <= 9:
        raise SpecError(f"gzip: level must be an integer 0-9, not {level!r}")
    if zlib.ZLIB_RUNTIME_VERSION != version:
        raise SpecError(f"gzip: this interpreter's zlib is {zlib.ZLIB_RUNTIME_VERSION}, the spec pins {version!r}: "
                        "build with the pinned Python (its own loader and libz), or the layer bytes would differ")
    return level


def write_layer(layer, epoch, blobs, gzip_level=None):
    """Writes layer as a tar blob, gzipped when `gzip_level` is given.
    Returns (diff_id, blob digest, tar size, blob size)."""
    fd, tmp = tempfile.mkstemp(dir=blobs, prefix=".layer-")
    try:
        with os.fdopen(fd, "wb") as raw:
            blob = HashingWriter(raw)
            gz = GzipWriter(blob, gzip_level) if gzip_level is not None else None
            out = HashingWriter(gz or blob)
            with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8",
                              errors="strict") as tar:
                for path in sorted(layer.entries, key=lambda p: p.encode("utf-8", "surrogateescape")):
                    entry = layer.entries[path]
                    ti = tarinfo_for(entry, epoch)
                    if entry.kind != "file":
                        tar.addfile(ti)
                        continue
                    with entry.open() as src:
                        reader = HashingReader(src)
                        tar.addfile(ti, reader)
                        if src.read(1):
                            raise SpecError(f"{entry.origin}: grew while the layer was written")
                    if entry.record and reader.h.hexdigest() != entry.record:
                        raise SpecError(f"{entry.origin}: content does not match the hash in its RECORD")
            if gz:
                gz.close()
        os.replace(tmp, os.path.join(blobs, blob.h.hexdigest()))
        return "sha256:" + out.h.hexdigest(), "sha256:" + blob.h.hexdigest(), out.n, blob.n
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# --- sources ------------------------------------------------------------------

def deb_members(deb_path):
    """Yields (path, kind, mode, payload) of a .deb's data.tar; payload = bytes / link target.
    Hard links come out as regular files with their target's bytes."""
    try:
        tar = deb_lib.data_tar(deb_path)
    except deb_lib.DebError as e:
        raise SpecError(str(e)) from None
    files = {}
    with tar:
        for m in tar:
            path = clean_path(m.name, deb_path)
            if m.isdir():
                yield path, "dir", m.mode, None
            elif m.issym():
                yield path, "symlink", 0o777, m.linkname
            elif m.islnk():
                target = clean_path(m.linkname, deb_path)
                if target not in files:
                    raise SpecError(f"{deb_path}: hard link {m.name} to unknown {m.linkname}")
                yield path, "file", files[target][0], files[target][1]
            elif m.isfile():
                data = tar.extractfile(m).read()
                files[path] = (m.mode, data)
                yield path, "file", m.mode, data
            else:
                raise SpecError(f"{deb_path}: {m.name} is a device/fifo, not supported")


def excluded(path, exclude, include):
    if any(fnmatch.fnmatchcase(path, pat) for pat in include):
        return False
    parts = path.split("/")
    return any(fnmatch.fnmatchcase("/".join(parts[:i]), pat)
               for i in range(1, len(parts) + 1) for pat in exclude)


def add_debs(layer, debs):
    for deb in debs:
        origin = os.path.basename(deb)
        for path, kind, mode, payload in deb_members(deb):
            if kind == "dir":
                layer.add(Entry(path, "dir", origin=origin))
            elif kind == "symlink":
                layer.add(Entry(path, "symlink", linkname=payload, origin=origin))
            else:
                layer.add(Entry(path, "file", mode=mode, size=len(payload), data=payload, origin=origin))


def ca_bundle(deb):
    """Concatenates the .deb's usr/share/ca-certificates/**/*.crt in path-byte order."""
    certs = {}
    for path, kind, _, payload in deb_members(deb):
        if kind == "file" and path.startswith("usr/share/ca-certificates/") and path.endswith(".crt"):
            certs[path] = payload if payload.endswith(b"\n") else payload + b"\n"
    if not certs:
        raise SpecError(f"{deb}: no usr/share/ca-certificates/**/*.crt")
    return b"".join(certs[p] for p in sorted(certs, key=lambda p: p.encode("utf-8")))


def add_base(layer, spec):
    origin = "generated base"

    def text(path, s, mode=0o644):
        b = s.encode("utf-8")
        layer.add(Entry(path, "file", mode=mode, size=len(b), data=b, origin=origin))

    text("etc/passwd", PASSWD)
    text("etc/group", GROUP)
    text("etc/nsswitch.conf", NSSWITCH)
    layer.add(Entry("tmp", "dir", mode=0o1777, origin=origin))
    layer.add(Entry("root", "dir", mode=0o700, origin=origin))
    layer.add(Entry("home", "dir", origin=origin))
    layer.add(Entry("home/nonroot", "dir", mode=0o755, uid=NONROOT, gid=NONROOT, origin=origin))
    if spec.get("ca_certificates_deb"):
        bundle = ca_bundle(spec["ca_certificates_deb"])
        layer.add(Entry("etc/ssl/certs/ca-certificates.crt", "file", mode=0o644, size=len(bundle), data=bundle,
                        origin=origin))
        # Debian's OPENSSLDIR is /usr/lib/ssl; the links usually come from the openssl
        # package, which the lock leaves out (tools/debian_lock.py).
        layer.add(Entry("usr/lib/ssl/certs", "symlink", linkname="/etc/ssl/certs", origin=origin))
        layer.add(Entry("usr/lib/ssl/cert.pem", "symlink", linkname="/etc/ssl/certs/ca-certificates.crt",
                        origin=origin))


def wheel_record(zf, dist_info):
    """RECORD path -> sha256 hex (only sha256 entries)."""
    try:
        raw = zf.read(f"{dist_info}/RECORD").decode("utf-8")
    except KeyError:
        return {}
    out = {}
    for row in csv.reader(io.StringIO(raw)):
        if len(row) >= 2 and row[1].startswith("sha256="):
            b64 = row[1][len("sha256="):]
            out[row[0]] = base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4)).hex()
    return out


def add_wheel(layer, wheel, site_packages, scripts_dir, data_prefix, python):
    origin = os.path.basename(wheel)
    zf = zipfile.ZipFile(wheel)
    names = [i.filename for i in zf.infolist()]
    dist_infos = sorted({n.split("/", 1)[0] for n in names
                         if n.split("/", 1)[0].endswith(".dist-info") and n.endswith("/WHEEL")})
    if len(dist_infos) != 1:
        raise SpecError(f"{wheel}: expected one *.dist-info/WHEEL, found {dist_infos}")
    dist_info = dist_infos[0]
    data_dir = dist_info[: -len(".dist-info")] + ".data"
    record = wheel_record(zf, dist_info)
    for info in zf.infolist():
        name = info.filename
        if info.is_dir():
            continue
        clean_path(name, wheel)
        mode = (info.external_attr >> 16) & 0o777
        data = None
        if name.startswith(data_dir + "/"):
            scheme, _, rest = name[len(data_dir) + 1:].partition("/")
            if scheme in ("purelib", "platlib"):
                dest = posixpath.join(site_packages, rest)
            elif scheme == "scripts":
                if not scripts_dir:
                    continue
                dest = posixpath.join(scripts_dir, rest)
                data = zf.read(info)
                if data.startswith(b"#!python"):
                    data = b"#!" + python.encode() + data[data.index(b"\n"):] if b"\n" in data else b"#!" + python.encode()
                mode = 0o755
            elif scheme == "data":
                if not data_prefix:
                    continue
                dest = posixpath.join(data_prefix, rest)
            else:  # headers: nothing compiles against the image
                continue
        else:
            dest = posixpath.join(site_packages, name)
        path = clean_path(dest, wheel)
        if data is not None:
            layer.add(Entry(path, "file", mode=mode, size=len(data), data=data, origin=origin))
        else:
            layer.add(Entry(path, "file", mode=mode, size=info.file_size, origin=f"{origin}:{name}",
                            opener=lambda info=info: zf.open(info), record=record.get(name)))


def add_tree(layer, src, dest, what):
    """Copies a directory: real files and dirs; relative symlinks that stay inside
    the tree are kept, any other symlink is replaced by what it points to."""
    src = os.path.abspath(src)
    if not os.path.isdir(src):
        raise SpecError(f"{what}: {src} is not a directory")
    real_root = os.path.realpath(src)
    layer.add(Entry(clean_path(dest, what), "dir", origin=src))
    for dirpath, dirnames, filenames in os.walk(src, followlinks=True):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, src)
        for name in sorted(dirnames) + sorted(filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.normpath(os.path.join(rel_dir, name)).replace(os.sep, "/")
            target = posixpath.join(dest, rel)
            if os.path.islink(full):
                link = os.readlink(full)
                inside = os.path.realpath(full).startswith(real_root + os.sep)
                if not os.path.isabs(link) and inside:
                    if name in dirnames:
                        dirnames.remove(name)  # keep as a link, do not descend
                    layer.add(Entry(clean_path(target, what), "symlink", linkname=link, origin=full))
                    continue
            if name in dirnames:
                layer.add(Entry(clean_path(target, what), "dir", origin=full))
            else:
                add_file(layer, full, target, what)


def add_file(layer, src, dest, what, mode=None):
    """`mode` overrides the source's x bit, which build tools set at will
    (Bazel leaves every output r-x)."""
    st = os.stat(src)  # follows symlinks: content is what counts
    if not stat.S_ISREG(st.st_mode):
        raise SpecError(f"{what}: {src} is not a regular file")
    if mode is None:
        mode = 0o755 if st.st_mode & 0o111 else 0o644
    layer.add(Entry(clean_path(dest, what), "file", mode=mode,
                    size=st.st_size, opener=lambda: open(src, "rb"), origin=src))


def build_layer(spec, index):
    name = spec.get("name") or f"layer{index}"
    # `exclude`/`include` apply to whatever the layer's sources put in it.
    layer = Layer(name, spec.get("exclude", []), spec.get("include", []))
    known = {"name", "debs", "exclude", "include", "generated", "ca_certificates_deb", "wheels", "site_packages",
             "scripts", "data_prefix", "python", "files", "file_mode", "dir", "dirs", "symlinks", "empty_dirs", "comment"}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise SpecError(f"layer {name}: unknown keys {unknown}")
    if spec.get("generated") not in (None, "base"):
        raise SpecError(f"layer {name}: unknown generator {spec['generated']!r}")
    if spec.get("generated") == "base":
        add_base(layer, spec)
    add_debs(layer, spec.get("debs", []))
    if spec.get("wheels"):
        site = spec.get("site_packages")
        if not site:
            raise SpecError(f"layer {name}: wheels need site_packages")
        for wheel in spec["wheels"]:
            add_wheel(layer, wheel, site, spec.get("scripts"), spec.get("data_prefix"),
                      spec.get("python", "/usr/bin/python3.11"))
    file_mode = int(spec["file_mode"], 8) if "file_mode" in spec else None
    for dest, src in sorted(spec.get("files", {}).items()):
        add_file(layer, src, dest, f"layer {name}", file_mode)
    dirs = list(spec.get("dirs", [])) + ([spec["dir"]] if "dir" in spec else [])
    for d in dirs:
        add_tree(layer, d["src"], d["dest"], f"layer {name}")
    for dest, target in sorted(spec.get("symlinks", {}).items()):
        layer.add(Entry(clean_path(dest, name), "symlink", linkname=target, origin=f"layer {name} symlinks"))
    for d in spec.get("empty_dirs", []):
        layer.add(Entry(clean_path(d, name), "dir", origin=f"layer {name} empty_dirs"))
    return layer


# --- image --------------------------------------------------------------------

def rfc3339(epoch):
    return datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_blob(blobs, data):
    hexdigest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, hexdigest), "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + hexdigest, "size": len(data)}


def prepare_out(out):
    if os.path.exists(out):
        leftovers = set(os.listdir(out)) - {"oci-layout", "index.json", "blobs"}
        if leftovers:
            raise SpecError(f"{out} exists and is not an OCI layout (has {sorted(leftovers)[:3]})")
        shutil.rmtree(out)
    blobs = os.path.join(out, "blobs", "sha256")
    os.makedirs(blobs)
    return blobs


def assemble(spec, out, log=sys.stderr):
    epoch = spec.get("source_date_epoch")
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
        raise SpecError("source_date_epoch must be a non-negative integer")
    created = rfc3339(epoch)
    gzip_level = check_zlib(spec["gzip"]) if "gzip" in spec else None
    media_type = LAYER_MEDIA_TYPE if gzip_level is None else GZIP_LAYER_MEDIA_TYPE
    blobs = prepare_out(out)
    layer_descs, diff_ids, history = [], [], []
    for i, layer_spec in enumerate(spec.get("layers", [])):
        layer = build_layer(layer_spec, i)
        diff_id, digest, tar_size, size = write_layer(layer, epoch, blobs, gzip_level)
        print(f"assemble: layer {layer.name}: {len(layer.entries)} entries, {tar_size} bytes tar, "
              f"{size} bytes blob, {digest}", file=log)
        layer_descs.append({"mediaType": media_type, "digest": digest, "size": size})
        diff_ids.append(diff_id)  # the uncompressed tar's digest, whatever the blob is
        history.append({"created": created, "created_by": f"veid-sidecar image/assemble.py: layer {layer.name}"})

    cfg = dict(DEFAULT_CONFIG)
    for key, value in (spec.get("config") or {}).items():
        if key not in CONFIG_KEYS:
            raise SpecError(f"config: unsupported key {key!r} (allowed: {sorted(CONFIG_KEYS)})")
        cfg[key] = value
    if isinstance(cfg.get("Env"), dict):
        cfg["Env"] = [f"{k}={v}" for k, v in sorted(cfg["Env"].items())]
    config = {
        "architecture": spec.get("architecture", "amd64"),
        "os": "linux",
        "created": created,
        "config": cfg,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    }
    config_desc = dict(mediaType=CONFIG_MEDIA_TYPE, **write_blob(blobs, canonical_json(config)))
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": config_desc,
        "layers": layer_descs,
    }
    manifest_desc = dict(mediaType=MANIFEST_MEDIA_TYPE, **write_blob(blobs, canonical_json(manifest)))
    manifest_desc["annotations"] = {REF_NAME: spec.get("tag", "latest")}
    write_index(out, {"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": [manifest_desc]})
    with open(os.path.join(out, "oci-layout"), "wb") as f:
        f.write(canonical_json({"imageLayoutVersion": "1.0.0"}))
    return manifest_desc["digest"]


def read_index(out):
    with open(os.path.join(out, "index.json"), encoding="utf-8") as f:
        return json.load(f)


def write_index(out, index):
    with open(os.path.join(out, "index.json"), "wb") as f:
        f.write(canonical_json(index))


def read_blob(out, digest):
    """The bytes of a layout's blob `algorithm:hex`."""
    with open(os.path.join(out, "blobs", *digest.split(":", 1)), "rb") as f:
        return f.read()


def tagged(index, tag="latest"):
    """The descriptor an index names `tag`: a layout also lists its image's
    referrers, which carry no ref.name."""
    found = [d for d in index["manifests"] if d.get("annotations", {}).get(REF_NAME) == tag]
    if len(found) != 1:
        raise SpecError(f"index.json names {tag!r} {len(found)} times")
    return found[0]


def referrers(out, subject_digest, artifact_type=None):
    """Descriptors of the layout's artifact manifests (of `artifact_type`, if
    given) whose subject is `subject_digest`."""
    found = []
    for desc in read_index(out)["manifests"]:
        if "artifactType" not in desc or artifact_type not in (None, desc["artifactType"]):
            continue
        if json.loads(read_blob(out, desc["digest"])).get("subject", {}).get("digest") == subject_digest:
            found.append(desc)
    return found


def referrer_manifest(subject, artifact_type, data):
    """An OCI 1.1 referrer attaching `data` to the manifest `subject`: an
    image manifest with `artifactType`, the empty config, `data` as its one
    layer (media type `artifact_type`) and `subject`. Returns the manifest's
    bytes and the blobs it names (config, layer)."""
    config = b"{}"

    def descriptor(media_type, blob):
        return {"mediaType": media_type, "digest": "sha256:" + hashlib.sha256(blob).hexdigest(), "size": len(blob)}

    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "artifactType": artifact_type,
        "config": descriptor(EMPTY_MEDIA_TYPE, config),
        "layers": [descriptor(artifact_type, data)],
        "subject": {key: subject[key] for key in ("mediaType", "digest", "size")},
    }
    return canonical_json(manifest), [config, data]


def add_referrer(out, subject, artifact_type, data):
    """Writes referrer_manifest(subject, artifact_type, data) into the layout.
    Its descriptor is appended to index.json with its artifactType and no
    ref.name, so the tag still names the image alone and the image's bytes do
    not change."""
    blobs = os.path.join(out, "blobs", "sha256")
    manifest, named = referrer_manifest(subject, artifact_type, data)
    for blob in named:
        write_blob(blobs, blob)
    desc = dict(mediaType=MANIFEST_MEDIA_TYPE, artifactType=artifact_type, **write_blob(blobs, manifest))
    index = read_index(out)
    index["manifests"].append(desc)
    write_index(out, index)
    return desc


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spec", required=True, help="JSON spec (see image/README.md)")
    ap.add_argument("--out", required=True, help="OCI layout directory to (re)create")
    ap.add_argument("--digest-file", help="also write the manifest digest here")
    args = ap.parse_args(argv)
    with open(args.spec, encoding="utf-8") as f:
        spec = json.load(f)
    return run("assemble", lambda: spec, args.out, args.digest_file)


def run(program, make_spec, out, digest_file=None, then=None):
    """CLI tail shared with build.py: assemble, `then(spec, out)` (build.py
    attaches the SBOM), report the digest, map errors to exit 1."""
    try:
        spec = make_spec()
        digest = assemble(spec, out)
        if then:
            then(spec, out)
    except (SpecError, OSError, ValueError, zipfile.BadZipFile, tarfile.TarError) as e:
        print(f"{program}: {e}", file=sys.stderr)
        return 1
    if digest_file:
        with open(digest_file, "w", encoding="ascii") as f:
            f.write(digest + "\n")
    print(digest)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
