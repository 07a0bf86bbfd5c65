"""Chain/exact/model hashes against values computed independently with struct."""

import hashlib
import os
import struct

import numpy as np
import pytest

from sidecar import hashing


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _be32(*floats: float) -> bytes:
    # struct narrows float64 -> float32 with round-to-nearest-even, like the spec.
    return b"".join(struct.pack(">f", f) for f in floats)


def _be_bits(*bits: int) -> bytes:
    return b"".join(struct.pack(">I", b) for b in bits)


class TestChainHash:
    def test_tie_rounds_away_from_zero(self):
        # 0.0078125 = 2**-7 is exact; * 1e6 = 7812.5 exactly -> 7813, not round()'s 7812.
        assert hashing.chain_hash([0.0078125]) == _sha(_be32(0.007813))
        assert hashing.chain_hash([-0.0078125]) == _sha(_be32(-0.007813))
        assert hashing.chain_hash([0.0078125]) != _sha(_be32(0.007812))

    def test_another_tie_and_ordinary_values(self):
        # 3/128 * 1e6 = 23437.5 -> 23438.
        assert hashing.chain_hash([0.0234375, 0.5, 1.0, 0.0]) == _sha(_be32(0.023438, 0.5, 1.0, 0.0))

    def test_rounds_to_six_decimals(self):
        v = float(np.float32(0.123456789))  # 0.12345679104328156 -> 123456.79... -> 123457
        assert hashing.chain_hash([v]) == _sha(_be32(0.123457))

    def test_nan_is_canonical_quiet_nan(self):
        negative_payload_nan = np.frombuffer(struct.pack("<I", 0xFFC01234), np.float32)[0]
        assert hashing.chain_hash([float("nan")]) == _sha(_be_bits(0x7FC00000))
        assert hashing.chain_hash([negative_payload_nan]) == _sha(_be_bits(0x7FC00000))

    def test_infinities_stay(self):
        assert hashing.chain_hash([float("inf"), float("-inf")]) == _sha(_be_bits(0x7F800000, 0xFF800000))

    def test_negative_zero_keeps_its_sign(self):
        assert hashing.chain_hash([-0.0]) == _sha(_be_bits(0x80000000))
        assert hashing.chain_hash([0.0]) == _sha(_be_bits(0x00000000))
        # Small negatives round to -0.0, like Go's math.Round(-0.1) == -0.
        assert hashing.chain_hash([-4e-7]) == _sha(_be_bits(0x80000000))
        assert hashing.chain_hash([4e-7]) == _sha(_be_bits(0x00000000))

    def test_subnormals_round_to_signed_zero(self):
        smallest = struct.unpack("<f", struct.pack("<I", 0x00000001))[0]
        largest_sub = struct.unpack("<f", struct.pack("<I", 0x007FFFFF))[0]
        assert hashing.chain_hash([smallest, -largest_sub]) == _sha(_be_bits(0x00000000, 0x80000000))

    def test_float32_max_survives(self):
        fmax = struct.unpack("<f", struct.pack("<I", 0x7F7FFFFF))[0]
        assert hashing.chain_hash([fmax, -fmax]) == _sha(_be_bits(0x7F7FFFFF, 0xFF7FFFFF))

    def test_empty(self):
        assert hashing.chain_hash([]) == _sha(b"")

    def test_one_value_path_equals_array_path(self):
        rng = np.random.default_rng(7)
        edge = [0.0, -0.0, 0.0078125, -0.0078125, 4e-7, -4e-7, 5e-7, -5e-7, 1.5e-6, 2.5e-6, 73.25, 1e29, -1e29,
                1e30, 3.4e38, float("inf"), float("-inf"), float("nan"), 2.0**52 / 1e6]
        random_bits = rng.integers(0, 2**32, 20_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
        scores = (rng.random(20_000) * 100).astype(np.float32)  # where raw scores live
        # Values whose scaled form is a tie k + 0.5 (or a neighbour of one).
        ties = ((np.arange(-3000, 3000) + 0.5) / 1e6).astype(np.float32)
        for values in (np.array(edge, dtype=np.float32), random_bits, scores, ties):
            for v in values:
                assert hashing.chain_hash_one(v) == hashing.chain_hash([v]), hashing.float32_hex(v)


class TestExactHash:
    def test_little_endian_no_rounding(self):
        vals = [0.0078125, -0.0, 1.0 / 3.0]
        expected = b"".join(struct.pack("<f", v) for v in vals)
        assert hashing.exact_hash(vals) == _sha(expected)

    def test_float32_hex_round_trip(self):
        assert hashing.float32_hex(100.0) == "0x42c80000"
        assert hashing.float32_hex(-0.0) == "0x80000000"
        assert hashing.float32_from_hex("0x42c80000") == np.float32(100.0)


def _write(root, rel, data: bytes):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def _manifest_entry(rel: str, data: bytes) -> bytes:
    name = rel.encode()
    return struct.pack(">Q", len(name)) + name + struct.pack(">Q", len(data)) + hashlib.sha256(data).digest()


class TestModelHash:
    @pytest.fixture
    def model_dir(self, tmp_path):
        root = str(tmp_path / "m")
        _write(root, "saved_model.pb", b"graph")
        _write(root, "variables/variables.index", b"idx")
        _write(root, "variables/variables.data-00000-of-00001", b"weights")
        _write(root, "export_metadata.json", b"{}")
        return root

    def test_matches_hand_built_manifest(self, model_dir):
        manifest = (
            b"veid-model-manifest-v1\n"
            + _manifest_entry("saved_model.pb", b"graph")
            + _manifest_entry("variables/variables.data-00000-of-00001", b"weights")
            + _manifest_entry("variables/variables.index", b"idx")
        )
        assert hashing.model_hash(model_dir) == _sha(manifest)

    def test_top_level_metadata_excluded_nested_not(self, model_dir):
        before = hashing.model_hash(model_dir)
        _write(model_dir, "export_metadata.json", b'{"changed": 1}')
        assert hashing.model_hash(model_dir) == before
        _write(model_dir, "variables/export_metadata.json", b"{}")
        assert hashing.model_hash(model_dir) != before

    def test_empty_directories_ignored(self, model_dir):
        before = hashing.model_hash(model_dir)
        os.mkdir(os.path.join(model_dir, "assets"))
        assert hashing.model_hash(model_dir) == before

    def test_content_rename_add_change_it(self, model_dir):
        seen = {hashing.model_hash(model_dir)}
        _write(model_dir, "saved_model.pb", b"grapH")
        seen.add(hashing.model_hash(model_dir))
        os.rename(os.path.join(model_dir, "saved_model.pb"), os.path.join(model_dir, "saved_model2.pb"))
        seen.add(hashing.model_hash(model_dir))
        _write(model_dir, "extra", b"")
        seen.add(hashing.model_hash(model_dir))
        assert len(seen) == 4

    def test_moving_bytes_between_files_changes_it(self, tmp_path):
        a, b = str(tmp_path / "a"), str(tmp_path / "b")
        _write(a, "x", b"ab")
        _write(a, "y", b"c")
        _write(b, "x", b"a")
        _write(b, "y", b"bc")
        assert hashing.model_hash(a) != hashing.model_hash(b)

    def test_symlinked_file_refused(self, model_dir):
        os.symlink(os.path.join(model_dir, "saved_model.pb"), os.path.join(model_dir, "link.pb"))
        with pytest.raises(hashing.ModelHashError, match="symlink.*link.pb"):
            hashing.model_hash(model_dir)

    def test_symlinked_directory_refused(self, model_dir, tmp_path):
        outside = str(tmp_path / "outside")
        _write(outside, "w", b"w")
        os.symlink(outside, os.path.join(model_dir, "variables", "more"))
        with pytest.raises(hashing.ModelHashError, match="symlink.*variables/more"):
            hashing.model_hash(model_dir)

    def test_dangling_symlink_refused(self, model_dir):
        os.symlink("/nonexistent", os.path.join(model_dir, "dangling"))
        with pytest.raises(hashing.ModelHashError, match="dangling"):
            hashing.model_hash(model_dir)

    def test_special_file_refused(self, model_dir):
        os.mkfifo(os.path.join(model_dir, "fifo"))
        with pytest.raises(hashing.ModelHashError, match="special file.*fifo"):
            hashing.model_hash(model_dir)

    def test_symlinked_root_refused(self, model_dir, tmp_path):
        link = str(tmp_path / "current")
        os.symlink(model_dir, link)
        for path in (link, link + "/"):
            with pytest.raises(hashing.ModelHashError, match="is a symlink"):
                hashing.model_hash(path)
            with pytest.raises(hashing.ModelHashError, match="is a symlink"):
                with hashing.private_copy(path):
                    pass

    def test_private_copy_holds_the_hashed_bytes_whatever_happens_to_the_original(self, model_dir):
        _write(model_dir, hashing.METADATA_FILE, b"{}")
        want = hashing.model_hash(model_dir)
        with hashing.private_copy(model_dir) as copy:
            assert os.stat(copy).st_mode & 0o777 == 0o700
            assert hashing.model_hash(copy) == want
            assert os.path.isfile(os.path.join(copy, hashing.METADATA_FILE))
            _write(model_dir, "saved_model.pb", b"rsynced in place")  # the original changes mid-load
            assert hashing.model_hash(copy) == want
        assert not os.path.exists(copy)

    def test_private_copy_refuses_symlinks(self, model_dir):
        os.symlink(os.path.join(model_dir, "saved_model.pb"), os.path.join(model_dir, "link.pb"))
        with pytest.raises(hashing.ModelHashError, match="symlink.*link.pb"):
            with hashing.private_copy(model_dir):
                pass

    def test_not_a_directory(self, model_dir):
        with pytest.raises(hashing.ModelHashError, match="not a directory"):
            hashing.model_hash(os.path.join(model_dir, "saved_model.pb"))

    def test_cli(self, model_dir, capsys):
        assert hashing.main(["hashing", model_dir]) == 0
        assert capsys.readouterr().out.strip() == hashing.model_hash(model_dir)


_HEX = "ab" * 32


@pytest.mark.parametrize("text", [_HEX, _HEX.upper(), "sha256:" + _HEX, "SHA256:" + _HEX.upper(), "Sha256:" + _HEX])
def test_normalize_sha256_accepts_both_cases_with_or_without_prefix(text):
    assert hashing.normalize_sha256(text, "model_hash") == _HEX


@pytest.mark.parametrize("text", ["", _HEX[:-1], _HEX + "0", "sha512:" + _HEX, "sha256:" + _HEX[:-2] + "zz",
                                  " " + _HEX, _HEX + "  saved_model.pb", None, 7, ["x"]])
def test_normalize_sha256_refuses_the_rest_naming_the_field(text):
    with pytest.raises(ValueError, match=r"^info\.model_hash: .* is not a sha256"):
        hashing.normalize_sha256(text, "info.model_hash")


class TestMismatchHint:
    @pytest.fixture
    def model_dir(self, tmp_path):
        root = str(tmp_path / "m")
        _write(root, "saved_model.pb", b"graph")
        _write(root, "variables/variables.index", b"idx")
        _write(root, "variables.x", b"x")  # by full path it sorts before variables/…; Walk visits it after
        _write(root, "variables/variables.data-00000-of-00001", b"weights")
        _write(root, "export_metadata.json", b"{}")
        return root

    def test_graph_only_hash(self, model_dir):
        hint = hashing.mismatch_hint(model_dir, _sha(b"graph").upper())
        assert "sha256 of saved_model.pb alone" in hint and "model_hash" in hint

    @pytest.mark.parametrize("with_metadata", [True, False])
    def test_concatenated_contents_in_walk_order(self, model_dir, with_metadata):
        walk = [b"{}"] * with_metadata + [b"graph", b"weights", b"idx", b"x"]
        hint = hashing.mismatch_hint(model_dir, _sha(b"".join(walk)))
        assert "concatenated contents" in hint and "model_hash" in hint

    def test_other_hashes_get_no_hint(self, model_dir):
        assert hashing.mismatch_hint(model_dir, _sha(b"something else")) == ""
        assert hashing.mismatch_hint(model_dir, hashing.model_hash(model_dir)) == ""
        assert hashing.mismatch_hint(model_dir + "-missing", _sha(b"graph")) == ""


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
