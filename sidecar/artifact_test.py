"""sidecar/artifact.py: the reproducible tar, and unpacking that trusts nothing in it."""

import io
import itertools
import os
import shutil
import subprocess
import tarfile

import pytest

from sidecar import artifact
from sidecar import hashing

_CAP = 1000
_FILE, _DIR = tarfile.REGTYPE, tarfile.DIRTYPE
_BAD_KINDS = {
    tarfile.SYMTYPE: "symlink", tarfile.LNKTYPE: "hard link", tarfile.CHRTYPE: "character device",
    tarfile.BLKTYPE: "block device", tarfile.FIFOTYPE: "fifo", tarfile.CONTTYPE: "contiguous file",
    tarfile.GNUTYPE_SPARSE: "sparse file", b"X": "entry of type",
}
_NAMES = {  # name -> the refusal it gets on its own, None if fine
    "a": None, "d/a": None, "d/e/f.bin": None, "saved_model.pb": None,
    "/etc/passwd": "absolute path", "C:x": "absolute path",
    "../x": "'..'", "d/../../x": "'..'", "..": "'..'",
    "": "canonical", "./a": "canonical", "d//a": "canonical", "d/./a": "canonical", "a\\b": "canonical",
    "a\0b": "canonical", "d/": "canonical",
}


@pytest.mark.parametrize("name,kind", itertools.product(_NAMES, [_FILE, tarfile.AREGTYPE, _DIR] + list(_BAD_KINDS)))
def test_check_member_every_name_and_kind(name, kind):
    why = artifact.check_member(name, kind, 10, {}, 0, _CAP)
    expected = _NAMES[name] or (_BAD_KINDS[kind] if kind in _BAD_KINDS else None)
    if expected is None:
        assert why is None
    else:
        assert why is not None and expected in why and repr(name) in why


@pytest.mark.parametrize("kind", [_FILE, _DIR, tarfile.GNUTYPE_SPARSE, tarfile.SYMTYPE])
@pytest.mark.parametrize("size,total,refused", [
    (0, 0, False), (_CAP, 0, False), (_CAP + 1, 0, True), (1, _CAP, True), (500, 500, False), (501, 500, True),
    (10 << 30, 0, True), (-1, 0, True),
])
def test_check_member_size_cap_comes_first(kind, size, total, refused):
    why = artifact.check_member("x", kind, size, {}, total, _CAP)
    if refused:
        assert "size cap" in why
    else:
        assert why is None or "size cap" not in why


@pytest.mark.parametrize("seen,name,kind,fragment", [
    ({"a": "file"}, "a", _FILE, "duplicate"),
    ({"a": "file"}, "a", _DIR, "duplicate"),
    ({"d": "dir"}, "d", _DIR, "duplicate"),
    ({"a": "file"}, "a/b", _FILE, "below the file"),
    ({"d": "dir", "d/a": "file"}, "d/a/b/c", _FILE, "below the file"),
    ({"d/a": "file"}, "d", _FILE, "a file where a directory's entries are"),
    ({"d": "dir", "d/a": "file"}, "d/b", _FILE, None),
    ({"d/a": "file"}, "d", _DIR, None),
    ({"ab": "file"}, "a", _FILE, None),
    ({"a": "file"}, "ab/c", _FILE, None),
])
def test_check_member_against_what_came_before(seen, name, kind, fragment):
    why = artifact.check_member(name, kind, 1, seen, 0, _CAP)
    assert (why is None) if fragment is None else (fragment in why)


def _model(root, files):
    for rel, data in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    return root


_FILES = {"saved_model.pb": b"graph", "variables/variables.index": b"idx", "variables/variables.data": b"w" * 3000,
          "export_metadata.json": b"{}", "golden_vectors.json": b"[]"}


def _pack(model_dir):
    out = io.BytesIO()
    artifact.pack(model_dir, out)
    return out.getvalue()


def test_pack_is_reproducible_and_round_trips(tmp_path):
    a = _model(str(tmp_path / "a"), _FILES)
    b = _model(str(tmp_path / "elsewhere" / "b"), dict(reversed(list(_FILES.items()))))
    for path, mode, mtime in ((b, 0o600, 1), (os.path.join(b, "saved_model.pb"), 0o755, 2_000_000_000)):
        os.chmod(path, mode)
        os.utime(path, (mtime, mtime))
    data = _pack(a)
    assert data == _pack(b)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == sorted(_FILES)
    assert {(m.type, m.mode, m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {(_FILE, 0o644, 0, 0, 0, "", "")}
    (tmp_path / "a.tar").write_bytes(data)
    artifact.unpack(str(tmp_path / "a.tar"), str(tmp_path / "out"), 1 << 20)
    assert hashing.model_hash(str(tmp_path / "out")) == hashing.model_hash(a)
    assert hashing.list_all_files(str(tmp_path / "out")) == sorted(_FILES)


def test_pack_refuses_a_symlink(tmp_path):
    a = _model(str(tmp_path / "a"), _FILES)
    os.symlink("saved_model.pb", os.path.join(a, "link.pb"))
    with pytest.raises(hashing.ModelHashError, match="symlink"):
        _pack(a)


def _tar(path, members):
    """members: (TarInfo, bytes or None)."""
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _info(name, kind=_FILE, size=0, linkname=""):
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname = kind, size, linkname
    return info


@pytest.mark.parametrize("members,fragment", [
    ([(_info("../evil", size=1), b"x")], "'..'"),
    ([(_info("/tmp/evil", size=1), b"x")], "absolute path"),
    ([(_info("a", size=1), b"x"), (_info("link", tarfile.SYMTYPE, linkname="/etc/passwd"), None)], "symlink"),
    ([(_info("a", size=1), b"x"), (_info("hard", tarfile.LNKTYPE, linkname="a"), None)], "hard link"),
    ([(_info("null", tarfile.CHRTYPE), None)], "character device"),
    ([(_info("a", size=1), b"x"), (_info("a", size=1), b"y")], "duplicate"),
    ([(_info("big", size=2000), b"z" * 2000)], "size cap"),
])
def test_unpack_refuses_and_writes_nothing(tmp_path, members, fragment):
    path = _tar(str(tmp_path / "bad.tar"), [(_info("ok", size=2), b"ok")] + members)
    dest = str(tmp_path / "out")
    with pytest.raises(artifact.ArtifactError, match=fragment):
        artifact.unpack(path, dest, _CAP)
    assert not os.path.exists(dest) and not os.path.exists(str(tmp_path / "evil"))


def test_a_10_gib_sparse_member_is_refused_by_its_header(tmp_path):
    tar = shutil.which("tar")
    assert tar, "GNU tar writes the sparse archive"
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "weights", "wb") as f:
        f.truncate(10 << 30)  # a hole: nothing is written
    subprocess.run([tar, "--sparse", "--format=gnu", "-cf", str(tmp_path / "sparse.tar"), "-C", str(src), "weights"],
                   check=True)
    assert os.path.getsize(tmp_path / "sparse.tar") < 1 << 20
    with pytest.raises(artifact.ArtifactError, match="10737418240 bytes would take the model over the size cap"):
        artifact.unpack(str(tmp_path / "sparse.tar"), str(tmp_path / "out"), 1 << 30)
    assert not os.path.exists(tmp_path / "out")


def test_not_a_tar(tmp_path):
    (tmp_path / "x.tar").write_bytes(b"not a tar at all" * 100)
    with pytest.raises(artifact.ArtifactError, match="not a valid tar"):
        artifact.unpack(str(tmp_path / "x.tar"), str(tmp_path / "out"), _CAP)


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
