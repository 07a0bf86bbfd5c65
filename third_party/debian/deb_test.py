"""deb.py against real .debs from the lock and hand-made broken ones."""

import glob
import io
import os
import tarfile

import pytest

import deb  # third_party/debian is this test's directory


def _ar(members):
    out = io.BytesIO(b"!<arch>\n")
    out.seek(0, io.SEEK_END)
    for name, body in members:
        out.write(f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(body):<10}`\n".encode("ascii"))
        out.write(body + (b"\n" if len(body) % 2 else b""))
    return out.getvalue()


def _tar_gz(files):
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as tar:
        for name, body in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(body)
            tar.addfile(ti, io.BytesIO(body))
    return data.getvalue()


def _write(tmp_path, blob, name="p.deb"):
    path = tmp_path / name
    path.write_bytes(blob)
    return str(path)


def test_odd_sized_members_and_gzip_data(tmp_path):
    blob = _ar([("debian-binary", b"2.0\n"), ("control.tar.gz", b"odd"), ("data.tar.gz", _tar_gz({"./a": b"x"}))])
    with deb.data_tar(_write(tmp_path, blob)) as tar:
        assert [(m.name, tar.extractfile(m).read()) for m in tar] == [("./a", b"x")]


def test_real_packages_from_the_lock():
    debs = glob.glob(os.path.join(os.environ["TEST_SRCDIR"], "debian", "debs", "*.deb"))
    assert len(debs) > 10
    for path in debs:
        with deb.data_tar(path) as tar:
            assert any(m.isfile() for m in tar), path


def test_control_of_real_packages_matches_their_file_names():
    debs = glob.glob(os.path.join(os.environ["TEST_SRCDIR"], "debian", "debs", "*.deb"))
    for path in debs:
        fields = deb.control(path)
        # Debian names files <Package>_<Version without epoch>_<Architecture>.deb.
        version = fields["Version"].split(":", 1)[-1]
        assert os.path.basename(path) == f"{fields['Package']}_{version}_{fields['Architecture']}.deb"
        assert "\n " in fields["Description"]  # the long description's continuation lines are kept


def test_control_fields_and_continuations(tmp_path):
    control = b"Package: p\nVersion: 1:2.0-1\nDescription: short\n long line\n .\n"
    blob = _ar([("debian-binary", b"2.0\n"), ("control.tar.gz", _tar_gz({"./control": control})),
                ("data.tar.gz", _tar_gz({}))])
    assert deb.control(_write(tmp_path, blob)) == {"Package": "p", "Version": "1:2.0-1",
                                                   "Description": "short\n long line\n ."}


@pytest.mark.parametrize("blob, message", [
    (b"PK\x03\x04 a zip", "not an ar archive"),
    (b"!<arch>\n" + b"x" * 60, "bad ar member header at offset 8"),
    (_ar([("debian-binary", b"2.0\n"), ("data.tar.zst", b"")]), "data.tar.zst is zstd-compressed"),
    (_ar([("debian-binary", b"2.0\n"), ("control.tar.xz", b"")]), "no data.tar member"),
])
def test_refusals_name_the_file(tmp_path, blob, message):
    path = _write(tmp_path, blob)
    with pytest.raises(deb.DebError, match=message) as e:
        deb.data_tar(path)
    assert path in str(e.value)


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
