"""Hashes that validators compare: chain hashes, exact hashes, model hash.

Chain hash (what the chain node's client recomputes): each value v is rounded
to 6 decimals as r = round_half_away_from_zero(float64(v) * 1e6) / 1e6 (the
multiply and divide are ordinary float64 operations), narrowed to float32, and
its IEEE-754 bits are appended big-endian; the digest is sha256, lowercase hex.
This matches Go's math.Round, so it is NOT Python's round() (which ties to
even): 0.0078125 -> 7812.5 -> 7813 -> 0.007813.
Special values, chosen to follow what that Go expression yields:
  * NaN (any sign or payload) -> canonical quiet NaN 0x7fc00000;
  * +Inf / -Inf stay +Inf / -Inf;
  * -0.0 stays -0.0, and negatives that round to zero become -0.0 (the sign
    survives rounding); +0.0 stays +0.0;
  * subnormals (and anything with |v| < 5e-7) round to +0.0 / -0.0 by sign.

Exact hash: sha256 of the float32 values' little-endian bytes, no rounding.

Model hash: sha256 over a canonical manifest of every regular file under the
model directory except the top-level export_metadata.json (which records the
hash). Manifest = b"veid-model-manifest-v1\\n" then, per file sorted by the
bytes of its relative POSIX path: u64be(len(path)) path u64be(size)
sha256(content). Lengths make the encoding unambiguous, so renaming a file or
moving bytes between files changes the hash. Only files are covered; empty
directories (which git cannot carry anyway) are ignored. Symlinks (the root
itself included), special files and non-canonical paths are refused.

private_copy() copies a model directory into a private one, refusing the same
things, so that the bytes hashed are the bytes TensorFlow later reads: a
symlink flip or an in-place rsync of the original cannot change them between
the hash and the load.

Operators arrive with other hashes of a model: the seed's guide had them run
`sha256sum saved_model.pb` (the graph alone, without the weights) and
upstream's Go sidecar hashes the files' concatenated contents (without their
names, so renaming or moving bytes between files goes unnoticed).
`mismatch_hint` recognises both, so a mismatch says which one was given and
points to model_hash, which pins every file and its name.
"""

import contextlib
import hashlib
import math
import os
import re
import stat
import struct
import sys
import tempfile
from collections.abc import Iterable, Iterator

import numpy as np

MANIFEST_HEADER = b"veid-model-manifest-v1\n"
SAVED_MODEL_FILE = "saved_model.pb"
_ANY_SHA256 = re.compile(r"^(?:sha256:)?([0-9a-f]{64})$", re.IGNORECASE)
METADATA_FILE = "export_metadata.json"
CANONICAL_NAN_BITS = 0x7FC00000
_CHUNK = 1 << 20


class ModelHashError(ValueError):
    """The model directory cannot be hashed safely."""


def chain_round(values: Iterable[float] | np.ndarray) -> np.ndarray:
    """Applies the chain's 6-decimal rounding; returns float32 values."""
    # Signalling NaNs would warn on conversion; they are handled below.
    with np.errstate(invalid="ignore"):
        x = np.asarray(values, dtype=np.float32).astype(np.float64).reshape(-1)
        y = x * 1e6
        a = np.abs(y)
        f = np.floor(a)
        # a - f is exact, so the tie test is exact; unlike floor(a + 0.5), this
        # is also right when a + 0.5 would itself round (|a| >= 2**52).
        f += a - f >= 0.5
    r = (np.copysign(f, y) / 1e6).astype(np.float32)
    if not np.isfinite(x).all():
        # Inf passes through unchanged: inf - inf is NaN, so f stayed inf.
        r.view(np.uint32)[np.isnan(x)] = CANONICAL_NAN_BITS
    return r


def chain_hash(values: Iterable[float] | np.ndarray) -> str:
    return hashlib.sha256(chain_round(values).astype(">f4").tobytes()).hexdigest()


def chain_hash_one(value: float | np.floating) -> str:
    """chain_hash([value]) without numpy's per-call overhead (~2 us instead of ~30).

    The same float64 operations in the same order on Python floats; values
    whose rounding could overflow float32, and NaN/Inf, take chain_hash.
    """
    x = float(np.float32(value))
    if not abs(x) < 1e30:
        return chain_hash([value])
    y = x * 1e6
    a = abs(y)
    f = float(math.floor(a))
    if a - f >= 0.5:
        f += 1.0
    # struct's "f" narrows like astype(float32): round to nearest, ties to even.
    return hashlib.sha256(struct.pack(">f", math.copysign(f, y) / 1e6)).hexdigest()


def exact_hash(values: Iterable[float] | np.ndarray) -> str:
    return hashlib.sha256(np.asarray(values, dtype="<f4").reshape(-1).tobytes()).hexdigest()


def float32_hex(value: float | np.floating) -> str:
    """IEEE-754 bits of a float32 as '0x%08x' (how golden vectors store raw scores)."""
    return "0x%08x" % struct.unpack("<I", np.float32(value).tobytes())[0]


def float32_from_hex(text: str) -> np.float32:
    return np.frombuffer(struct.pack("<I", int(text, 16)), dtype=np.float32)[0]


def list_model_files(model_dir: str) -> list[str]:
    """Relative POSIX paths of every regular file, sorted by bytes; refuses links."""
    root = _root(model_dir)
    found: list[str] = []
    _walk(root, "", found)
    found.sort(key=os.fsencode)
    return found


def _root(model_dir: str) -> str:
    """The directory to read; refuses a root that is a symlink (a flip would swap every file at once)."""
    st = os.lstat(model_dir.rstrip("/") or "/")
    if stat.S_ISLNK(st.st_mode):
        raise ModelHashError(f"model path {model_dir} is a symlink; name the directory itself")
    if not stat.S_ISDIR(st.st_mode):
        raise ModelHashError(f"model path {model_dir} is not a directory")
    return os.path.realpath(model_dir)


def _walk(root: str, rel: str, found: list[str]) -> None:
    here = os.path.join(root, rel) if rel else root
    with os.scandir(here) as it:
        entries = list(it)
    for entry in entries:
        child = f"{rel}/{entry.name}" if rel else entry.name
        if entry.name in ("", ".", "..") or "/" in entry.name or "\\" in entry.name:
            raise ModelHashError(f"refusing path escaping the model directory: {child}")
        st = entry.stat(follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            raise ModelHashError(f"refusing symlink in model directory: {child}")
        if stat.S_ISDIR(st.st_mode):
            _walk(root, child, found)
        elif stat.S_ISREG(st.st_mode):
            if child != METADATA_FILE:
                found.append(child)
        else:
            raise ModelHashError(f"refusing special file in model directory: {child}")


@contextlib.contextmanager
def _open_regular(root: str, rel: str):
    # O_NOFOLLOW plus fstat: a file swapped for a symlink after listing is refused.
    try:
        fd = os.open(os.path.join(root, rel), os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as e:
        raise ModelHashError(f"cannot open {rel}: {e.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise ModelHashError(f"refusing non-regular file in model directory: {rel}")
        yield f


def _file_digest(root: str, rel: str) -> tuple[int, bytes]:
    with _open_regular(root, rel) as f:
        h = hashlib.sha256()
        size = 0
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return size, h.digest()


@contextlib.contextmanager
def private_copy(model_dir: str) -> Iterator[str]:
    """A copy of the model directory (export_metadata.json included) in a new 0700
    temporary directory, removed on exit; refuses what the model hash refuses."""
    root = _root(model_dir)
    with tempfile.TemporaryDirectory(prefix="veid-model-") as dest:
        names = list_model_files(model_dir)
        if os.path.lexists(os.path.join(root, METADATA_FILE)):
            names.append(METADATA_FILE)
        for rel in names:
            target = os.path.join(dest, *rel.split("/"))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with _open_regular(root, rel) as src, open(target, "xb") as out:
                while chunk := src.read(_CHUNK):
                    out.write(chunk)
        yield dest


def model_manifest(model_dir: str) -> bytes:
    root = _root(model_dir)
    parts = [MANIFEST_HEADER]
    for rel in list_model_files(model_dir):
        name = os.fsencode(rel)
        size, digest = _file_digest(root, rel)
        parts += [struct.pack(">Q", len(name)), name, struct.pack(">Q", size), digest]
    return b"".join(parts)


def model_hash(model_dir: str) -> str:
    return hashlib.sha256(model_manifest(model_dir)).hexdigest()


def normalize_sha256(text: object, field: str) -> str:
    """'sha256:ABC…', 'abc…' -> 'abc…' (64 lowercase hex); anything else names `field`."""
    m = _ANY_SHA256.match(text) if isinstance(text, str) else None
    if not m:
        raise ValueError(f"{field}: {text!r} is not a sha256 (64 hex digits, optionally prefixed with sha256:)")
    return m.group(1).lower()


def list_all_files(model_dir: str) -> list[str]:
    """list_model_files plus the metadata file when there is one: everything a model release carries."""
    files = list_model_files(model_dir)
    if os.path.isfile(os.path.join(model_dir, METADATA_FILE)):
        files.append(METADATA_FILE)
    return sorted(files, key=os.fsencode)


def _walk_order(model_dir: str) -> list[str]:
    """Every regular file as Go's filepath.Walk visits them: names sorted within each directory."""
    return sorted(list_all_files(model_dir), key=lambda rel: [os.fsencode(part) for part in rel.split("/")])


def foreign_hashes(model_dir: str) -> dict[str, str]:
    """{sha256 hex: what it is} for the other hashes operators compute of a model directory."""
    found: dict[str, str] = {}
    root = os.path.realpath(model_dir)
    if os.path.isfile(os.path.join(root, SAVED_MODEL_FILE)):
        graph = _file_digest(root, SAVED_MODEL_FILE)[1].hex()
        found[graph] = f"the sha256 of {SAVED_MODEL_FILE} alone (the graph, without the weights)"
    files = _walk_order(model_dir)
    without_metadata = [f for f in files if f != METADATA_FILE]
    for label, names in (("every file", files), (f"every file but {METADATA_FILE}", without_metadata)):
        h = hashlib.sha256()
        for rel in names:
            with open(os.path.join(root, rel), "rb") as f:
                while chunk := f.read(_CHUNK):
                    h.update(chunk)
        found.setdefault(h.hexdigest(), f"the sha256 of the concatenated contents of {label}, without names")
    return found


def mismatch_hint(model_dir: str, expected: str) -> str:
    """'' or a sentence saying that `expected` is another kind of hash of this same directory."""
    try:
        what = foreign_hashes(model_dir).get(expected.lower())
    except (ModelHashError, OSError):
        return ""
    if what is None:
        return ""
    return (f" ({expected} is {what} of this directory, not its model_hash: the sidecar pins every file and its "
            "name, see export_metadata.json's model_hash or `bazel run //sidecar:model_hash -- DIR`)")


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m sidecar.hashing MODEL_DIR", file=sys.stderr)
        return 2
    # `bazel run` starts us inside runfiles; operators name paths from the repo root.
    path = os.path.join(os.environ.get("BUILD_WORKSPACE_DIRECTORY", ""), argv[1])
    try:
        print(model_hash(path))
    except (ModelHashError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    from absl import app

    app.run(lambda argv: sys.exit(main(argv)))
