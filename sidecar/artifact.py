"""A model release as an artifact with a digest: its format, packing and safe unpacking.

A model directory travels as one uncompressed tar: its regular files only,
sorted by the bytes of their paths, each with mtime 0, uid/gid 0, no owner
names and mode 0644 (directories are implied by the paths), so the same
directory gives the same bytes, and so the same sha256, on every machine. In
a registry that tar is the one layer of an OCI image manifest with
ARTIFACT_TYPE, the empty config and the model's version and hash as
annotations; the manifest's digest names the release (`oci://HOST/REPO@sha256:…`).
Outside a registry the tar itself is the artifact and its sha256 the checksum.

Unpacking trusts nothing in the tar: `check_member` (pure, one decision per
header, tested exhaustively) refuses absolute paths, `..`, links, devices,
duplicates and anything over the size cap before a single byte is written.
"""

import json
import os
import stat
import tarfile
from collections.abc import Mapping

from sidecar import hashing

ARTIFACT_TYPE = "application/vnd.veid.model.v1"
LAYER_MEDIA_TYPE = "application/vnd.veid.model.layer.v1.tar"
VERSION_ANNOTATION = "org.opencontainers.image.version"
MODEL_HASH_ANNOTATION = "dev.veid.model.hash"
TITLE_ANNOTATION = "org.opencontainers.image.title"
_CHUNK = 1 << 20


class ArtifactError(ValueError):
    """The artifact is unusable; the message names the entry or field."""


def pack(model_dir: str, out) -> None:
    """Writes the model directory's reproducible tar to the binary file object `out`."""
    root = os.path.realpath(model_dir)
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8", errors="strict") as tar:
        for rel in hashing.list_all_files(model_dir):
            fd = os.open(os.path.join(root, rel), os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb") as f:
                info = tarfile.TarInfo(rel)
                info.size, info.mode, info.mtime = os.fstat(f.fileno()).st_size, 0o644, 0
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                tar.addfile(info, f)


def model_layer(data: bytes, digest: str, version: str, model_hash: str, max_bytes: int) -> dict:
    """The tar layer's descriptor of the manifest `data` (already checked against `digest`).

    Refuses anything but a model artifact of this version and model hash.
    """
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise ArtifactError(f"{digest} is not a JSON manifest: {e}") from None
    if not isinstance(doc, dict) or doc.get("artifactType") != ARTIFACT_TYPE:
        got = doc.get("artifactType") if isinstance(doc, dict) else None
        raise ArtifactError(f"{digest} is not a model artifact (artifactType {got!r}, expected {ARTIFACT_TYPE})")
    layers = doc.get("layers")
    if not isinstance(layers, list) or len(layers) != 1 or not isinstance(layers[0], dict) \
            or layers[0].get("mediaType") != LAYER_MEDIA_TYPE:
        raise ArtifactError(f"{digest}: a model artifact has exactly one layer of type {LAYER_MEDIA_TYPE}")
    annotations = doc.get("annotations") if isinstance(doc.get("annotations"), Mapping) else {}
    for key, want in ((VERSION_ANNOTATION, version), (MODEL_HASH_ANNOTATION, model_hash)):
        if annotations.get(key) != want:
            raise ArtifactError(f"{digest} is annotated {key}={annotations.get(key)!r}, but governance approved {want}")
    layer = layers[0]
    size = layer.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= max_bytes:
        raise ArtifactError(f"{digest}: layer size {size!r} is over the size cap of {max_bytes} bytes")
    hashing.normalize_sha256(layer.get("digest"), f"{digest} layer digest")
    return layer


# --- unpacking --------------------------------------------------------------

_KINDS = {
    tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.DIRTYPE: "dir",
    tarfile.SYMTYPE: "symlink", tarfile.LNKTYPE: "hard link", tarfile.CHRTYPE: "character device",
    tarfile.BLKTYPE: "block device", tarfile.FIFOTYPE: "fifo", tarfile.CONTTYPE: "contiguous file",
    tarfile.GNUTYPE_SPARSE: "sparse file",
}


def check_member(name: str, kind: bytes, size: int, seen: Mapping[str, str], total: int, max_bytes: int) -> str | None:
    """Why this tar header must not be unpacked, or None.

    `seen` maps the names accepted so far to "file" or "dir"; `total` is the
    bytes of the files accepted so far. Sizes are checked first, so a huge
    member is refused by its header, before its first byte is read.
    """
    what = _KINDS.get(kind, f"entry of type {kind!r}")
    if size < 0 or total + size > max_bytes:
        return f"{name!r}: {size} bytes would take the model over the size cap of {max_bytes} bytes"
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return f"{name!r}: absolute path"
    parts = name.split("/")
    if ".." in parts:
        return f"{name!r}: path with '..'"
    if not name or any(p in ("", ".") for p in parts) or "\\" in name or "\0" in name:
        return f"{name!r}: not a canonical relative path"
    if what not in ("file", "dir"):
        return f"{name!r}: {what} (a model artifact holds only files and directories)"
    if name in seen:
        return f"{name!r}: duplicate entry"
    for i in range(1, len(parts)):
        if seen.get("/".join(parts[:i])) == "file":
            return f"{name!r}: below the file {'/'.join(parts[:i])!r}"
    if what == "file" and any(other.startswith(name + "/") for other in seen):
        return f"{name!r}: a file where a directory's entries are"
    return None


def unpack(tar_path: str, dest: str, max_bytes: int) -> None:
    """Checks every header of the tar, then writes its files under `dest` (which must not exist)."""
    try:
        with tarfile.open(tar_path, mode="r:") as tar:
            seen: dict[str, str] = {}
            total = 0
            members = []
            for m in tar:  # a header is checked before the next one is read
                why = check_member(m.name, m.type, m.size, seen, total, max_bytes)
                if why:
                    raise ArtifactError(f"refusing the artifact: {why}")
                seen[m.name] = _KINDS[m.type]
                total += m.size if m.isfile() else 0
                members.append(m)
            os.mkdir(dest, 0o755)
            for m in members:
                _write_member(tar, m, dest)
    except tarfile.TarError as e:
        raise ArtifactError(f"refusing the artifact: not a valid tar: {e}") from None


def _write_member(tar: tarfile.TarFile, m: tarfile.TarInfo, dest: str) -> None:
    path = os.path.join(dest, *m.name.split("/"))
    if m.isdir():
        os.makedirs(path, 0o755, exist_ok=True)
        return
    os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    written = 0
    with os.fdopen(fd, "wb") as out, tar.extractfile(m) as src:
        while chunk := src.read(_CHUNK):
            out.write(chunk)
            written += len(chunk)
    if written != m.size:
        raise ArtifactError(f"refusing the artifact: {m.name!r} holds {written} bytes, its header says {m.size}")
    if not stat.S_ISREG(os.lstat(path).st_mode):
        raise ArtifactError(f"refusing the artifact: {m.name!r} is not a regular file after unpacking")
