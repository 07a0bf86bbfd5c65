"""Reads a Debian package (.deb) with the standard library only.

A .deb is an `ar` archive whose data.tar.{xz,gz,bz2,} member holds the files
and control.tar.* its control file (name, version, architecture).
Used by fetch.py (unpacking the Python toolchain's root), image/assemble.py
(the image's Debian layer) and image/sbom.py (its SBOM), so all read
packages the same way. None runs maintainer scripts.
"""

import io
import tarfile


class DebError(ValueError):
    """Not a .deb this reader can read."""


def ar_members(data: bytes):
    """Yields (name, bytes) of a System V/GNU `ar` archive."""
    if data[:8] != b"!<arch>\n":
        raise DebError("not an ar archive")
    pos = 8
    while pos + 60 <= len(data):
        header = data[pos:pos + 60]
        if header[58:60] != b"`\n":
            raise DebError(f"bad ar member header at offset {pos}")
        name = header[0:16].decode("ascii").rstrip(" ").rstrip("/")
        size = int(header[48:58].decode("ascii").strip())
        pos += 60
        yield name, data[pos:pos + size]
        pos += size + (size & 1)


def _member_tar(path: str, member: str) -> tarfile.TarFile:
    """An open tarfile of the package's `member`.tar.* (zstd, which the stdlib lacks, is refused)."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        for name, body in ar_members(data):
            if name.startswith(member + ".tar"):
                if name.endswith(".zst"):
                    raise DebError(f"{name} is zstd-compressed, which this reader does not support "
                                   "(Debian 12 packages use xz)")
                # Member names as UTF-8 whatever the builder's locale (tarfile's
                # default is the file system encoding: ASCII in a C locale).
                return tarfile.open(fileobj=io.BytesIO(body), mode="r:*", encoding="utf-8",
                                    errors="surrogateescape")
    except DebError as e:
        raise DebError(f"{path}: {e}") from None
    raise DebError(f"{path}: no {member}.tar member")


def data_tar(path: str) -> tarfile.TarFile:
    """An open tarfile of the package's data.tar."""
    return _member_tar(path, "data")


def paragraphs(text: str) -> list:
    """The paragraphs of a deb822 text (a control file, a DEP-5 copyright
    file), split at blank lines: [{field: value}], where a continued field
    keeps its continuation lines as written, leading whitespace included."""
    found, fields, name = [], {}, None
    for line in text.splitlines() + [""]:
        if not line.strip():
            if fields:
                found.append(fields)
            fields, name = {}, None
        elif line[0] in " \t" and name:
            fields[name] += "\n" + line
        elif ":" in line:
            name, _, value = line.partition(":")
            name = name.strip()
            fields[name] = value.strip()
    return found


def control(path: str) -> dict:
    """The fields of the package's control file ({"Package": ..., "Version": ...});
    a continued field keeps its continuation lines."""
    with _member_tar(path, "control") as tar:
        for m in tar:
            if m.isfile() and m.name in ("control", "./control"):
                text = tar.extractfile(m).read().decode("utf-8")
                break
        else:
            raise DebError(f"{path}: control.tar has no control file")
    found = paragraphs(text)
    if len(found) != 1:
        raise DebError(f"{path}: control file has {len(found)} paragraphs, not one")
    return found[0]
