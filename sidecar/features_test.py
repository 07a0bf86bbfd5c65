"""Feature layout constants and validation."""

import numpy as np
import pytest

from sidecar import features as F


class TestValidate:
    @pytest.mark.parametrize("n", [0, 767, 769, 100000])
    def test_wrong_length(self, n):
        with pytest.raises(F.FeatureError, match=f"^expected 768 features, got {n}$"):
            F.validate([0.0] * n)

    def test_feature_error_is_value_error(self):
        assert issubclass(F.FeatureError, ValueError)

    @pytest.mark.parametrize(
        "index, value, word",
        [(17, float("nan"), "NaN"), (0, float("inf"), r"\+Inf"), (767, float("-inf"), "-Inf")],
    )
    def test_non_finite(self, index, value, word):
        v = [0.5] * 768
        v[index] = value
        with pytest.raises(F.FeatureError, match=f"^feature {index} is {word}$"):
            F.validate(v)

    def test_first_non_finite_is_reported(self):
        v = np.zeros(768, np.float32)
        v[[300, 40, 600]] = [np.nan, np.inf, -np.inf]
        with pytest.raises(F.FeatureError, match="^feature 40 is"):
            F.validate(v)

    def test_float64_overflow(self):
        v = np.zeros(768)
        v[5] = 1e39
        with pytest.raises(F.FeatureError, match="feature 5 overflows float32"):
            F.validate(v)

    def test_rejects_2d_and_non_numbers(self):
        with pytest.raises(F.FeatureError, match="shape"):
            F.validate(np.zeros((1, 768), np.float32))
        with pytest.raises(F.FeatureError):
            F.validate(["x"] * 768)

    def test_returns_fresh_contiguous_float32(self):
        src = np.arange(768 * 2, dtype=np.float32)[::2]
        out = F.validate(src)
        assert out.dtype == np.float32 and out.shape == (768,) and out.flags.c_contiguous
        src[0] = 99.0
        assert out[0] == 0.0
        same = np.zeros(768, np.float32)
        assert F.validate(same) is not same

    def test_python_floats_narrow_like_float32(self):
        out = F.validate([0.1] * 768)
        assert out[0] == np.float32(0.1)


class TestLayout:
    def test_indices(self):
        assert F.FEATURE_DIM == 768
        assert F.OCR_CONFIDENCE_INDICES == (517, 519, 521, 523, 525)
        assert F.OCR_VALIDATED_INDICES == (518, 520, 522, 524, 526)
        assert (F.SCOPE_ONE_HOT.start, F.SCOPE_ONE_HOT.stop) == (528, 536)
        assert len(F.SCOPE_TYPES) == 8
        assert (F.FACE_CONFIDENCE, F.BLOCK_HEIGHT) == (536, 537)
        assert (F.RESERVED.start, F.RESERVED.stop, F.PADDING.start, F.PADDING.stop) == (538, 543, 543, 768)

    def test_contribution_groups(self):
        assert F.GROUP_NAMES == ("face_embedding", "doc_quality", "ocr", "metadata")
        idx = [i for g in F.CONTRIBUTION_GROUPS for i in g.indices]
        assert len(idx) == len(set(idx))
        assert sorted(idx) == list(range(0, 538))

    def test_keep_masks(self):
        m = F.group_keep_masks()
        assert m.shape == (4, 768)
        assert not m[0, :512].any() and not m[0, 536] and m[0, 512:536].all()
        assert (~m).sum(axis=1).tolist() == [513, 5, 10, 10]


class TestAssemble:
    def test_places_values(self):
        emb = np.zeros(512)
        emb[3] = 1.0
        v = F.assemble(
            embedding=emb, doc_quality=0.9, sharpness=0.8, brightness=0.7, contrast=0.6, noise_inverted=0.5,
            ocr={"name": (0.9, 1.0), "nationality": (0.4, 0.0)}, scopes=["selfie", "sms_proof"],
            face_confidence=0.95, block_height=2_000_123,
        )
        assert v[3] == 1.0 and v[512:517].tolist() == np.float32([0.9, 0.8, 0.7, 0.6, 0.5]).tolist()
        assert v[517] == np.float32(0.9) and v[518] == 1.0 and v[525] == np.float32(0.4) and v[519] == 0.0
        assert v[527] == np.float32(0.2) and v[529] == 1.0 and v[534] == 1.0 and v[528:536].sum() == 2
        assert v[536] == np.float32(0.95) and v[537] == np.float32(0.000123)
        assert not v[538:].any()

    def test_scope_count_capped(self):
        v = F.assemble(embedding=None, doc_quality=0, sharpness=0, brightness=0, contrast=0, noise_inverted=0,
                       ocr={}, scopes=[], scope_count=25, face_confidence=0, block_height=0)
        assert v[F.SCOPE_COUNT] == 1.0

    def test_unknown_names(self):
        kw = dict(embedding=None, doc_quality=0, sharpness=0, brightness=0, contrast=0, noise_inverted=0,
                  face_confidence=0, block_height=0)
        with pytest.raises(F.FeatureError, match="scope"):
            F.assemble(ocr={}, scopes=["passport"], **kw)
        with pytest.raises(F.FeatureError, match="OCR"):
            F.assemble(ocr={"surname": (1.0, 1.0)}, scopes=[], **kw)


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
