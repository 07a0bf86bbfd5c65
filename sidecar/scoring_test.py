"""Scoring rules with expected values worked out by hand (float32 arithmetic)."""

import dataclasses
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from sidecar import features as F
from sidecar import hashing
from sidecar import scoring
from tests import extreme_values as X

f32 = np.float32


def below(x) -> np.float32:
    return np.nextafter(f32(x), f32(-np.inf))


def good_features() -> np.ndarray:
    v = np.zeros(F.FEATURE_DIM, np.float32)
    v[0] = 1.0
    v[F.DOC_QUALITY] = 0.9
    v[list(F.OCR_CONFIDENCE_INDICES)] = 0.9
    v[F.SCOPE_COUNT] = 0.5
    return v


class TestScore:
    @pytest.mark.parametrize(
        "raw, want",
        [
            (0.0, 0), (-0.0, 0), (0.99999994, 0), (1.0, 1), (49.999996, 49), (50.0, 50),
            (99.99999, 99), (100.0, 100), (100.00001, 100), (1e30, 100), (np.inf, 100),
            (-1e-30, 0), (-5.0, 0), (-np.inf, 0), (np.nan, 0),
        ],
    )
    def test_truncation_and_clamps(self, raw, want):
        assert scoring.score(f32(raw)) == want


class TestConfidence:
    def test_midpoint(self):
        assert scoring.confidence(f32(50.0)) == f32(0.5)

    def test_extremes_of_valid_range(self):
        # 0.5f + 0.4f (0.4000000059604645) is exactly halfway between float32
        # 0x3f666666 and 0x3f666667; ties-to-even gives 0x3f666666 == 0.9f.
        assert hashing.float32_hex(scoring.confidence(f32(100.0))) == "0x3f666666"
        assert hashing.float32_hex(scoring.confidence(f32(0.0))) == "0x3f666666"

    def test_exact_high_confidence_boundary(self):
        # |87.5-50|/50 = 0.75 exactly; 0.75 * 0.4f = 0.30000000447 -> 0.3f
        # (0.30000001192); 0.5 + that = 0.80000001192 = 0.8f exactly.
        assert scoring.confidence(f32(87.5)) == f32(0.8)
        assert scoring.confidence(f32(12.5)) == f32(0.8)
        assert scoring.confidence(below(87.5)) < f32(0.8)

    def test_clamps(self):
        assert scoring.confidence(f32(200.0)) == f32(0.95)
        assert scoring.confidence(f32(-1000.0)) == f32(0.95)
        assert scoring.confidence(f32(np.inf)) == f32(0.95)
        assert scoring.confidence(f32(np.nan)) == f32(0.3)

    def test_result_is_float32(self):
        assert isinstance(scoring.confidence(f32(73.0)), np.float32)


class TestReasonCodes:
    def codes(self, values, raw):
        return scoring.evaluate(values, f32(raw)).reason_codes

    def test_clean_success(self):
        assert self.codes(good_features(), 95.0) == ("SUCCESS", "HIGH_CONFIDENCE")

    def test_order_when_everything_fires(self):
        assert self.codes(np.zeros(F.FEATURE_DIM, np.float32), np.nan) == (
            "LOW_CONFIDENCE", "LOW_DOC_QUALITY", "LOW_OCR_CONFIDENCE", "INSUFFICIENT_SCOPES", "MISSING_FACE",
        )

    def test_success_boundary(self):
        assert "SUCCESS" in self.codes(good_features(), 50.0)
        assert "SUCCESS" not in self.codes(good_features(), below(50.0))

    def test_neither_high_nor_low_confidence(self):
        codes = self.codes(good_features(), 60.0)  # 0.5 + 0.2*0.4 = 0.58
        assert "HIGH_CONFIDENCE" not in codes and "LOW_CONFIDENCE" not in codes

    def test_doc_quality_boundary(self):
        v = good_features()
        v[F.DOC_QUALITY] = f32(0.6)
        assert "LOW_DOC_QUALITY" not in self.codes(v, 90.0)
        v[F.DOC_QUALITY] = below(0.6)
        assert "LOW_DOC_QUALITY" in self.codes(v, 90.0)

    def test_ocr_mean_boundary(self):
        v = good_features()
        v[list(F.OCR_CONFIDENCE_INDICES)] = 0.5  # 5 * 0.5 = 2.5, / 5 = 0.5 exactly
        assert "LOW_OCR_CONFIDENCE" not in self.codes(v, 90.0)
        v[F.OCR_CONFIDENCE_INDICES[-1]] = 0.25  # sum 2.25 -> mean 0.45
        assert "LOW_OCR_CONFIDENCE" in self.codes(v, 90.0)
        v[list(F.OCR_CONFIDENCE_INDICES)] = [1.0, 1.0, 0.5, 0.0, 0.0]  # mean 0.5
        assert "LOW_OCR_CONFIDENCE" not in self.codes(v, 90.0)

    def test_ocr_validated_flags_do_not_count(self):
        v = good_features()
        v[list(F.OCR_VALIDATED_INDICES)] = 0.0
        assert "LOW_OCR_CONFIDENCE" not in self.codes(v, 90.0)

    def test_scope_boundary(self):
        v = good_features()
        v[F.SCOPE_COUNT] = f32(0.2)  # 0.2f * 10f = 2.0000000298 -> 2.0f -> 2
        assert "INSUFFICIENT_SCOPES" not in self.codes(v, 90.0)
        v[F.SCOPE_COUNT] = below(0.2)  # 0.19999999 * 10 -> 1.9999999f -> 1
        assert "INSUFFICIENT_SCOPES" in self.codes(v, 90.0)
        v[F.SCOPE_COUNT] = f32(0.1)
        assert "INSUFFICIENT_SCOPES" in self.codes(v, 90.0)

    def test_missing_face(self):
        v = good_features()
        v[F.FACE_EMBEDDING] = -0.0
        assert "MISSING_FACE" in self.codes(v, 90.0)
        v[511] = 1e-45
        assert "MISSING_FACE" not in self.codes(v, 90.0)

    def test_face_confidence_alone_is_not_a_face(self):
        v = good_features()
        v[F.FACE_EMBEDDING] = 0.0
        v[F.FACE_CONFIDENCE] = 1.0
        assert "MISSING_FACE" in self.codes(v, 90.0)


class TestEvaluate:
    def test_fields(self):
        v = good_features()
        r = scoring.evaluate(v, f32(73.5))
        assert (r.score, r.raw_score, r.confidence) == (73, f32(73.5), scoring.confidence(f32(73.5)))
        assert r.input_hash == hashing.chain_hash(v)
        assert r.output_hash == hashing.chain_hash([f32(73.5)])
        assert r.exact_output_hash == hashing.exact_hash([f32(73.5)])
        assert isinstance(r.raw_score, np.float32) and isinstance(r.confidence, np.float32)

    def test_frozen(self):
        r = scoring.evaluate(good_features(), f32(10.0))
        with pytest.raises(dataclasses.FrozenInstanceError):
            r.score = 99


# -- totality: every finite float32 input gets a verdict -----------------------------

def raw_scores():
    """Every float32 bit pattern class, NaNs of any sign and payload included."""
    bits = st.one_of(st.integers(0, 2**32 - 1), st.sampled_from([0x7FC00000, 0xFFC00000, 0x7F800001, 0xFFFFFFFF]))
    return bits.map(lambda b: np.array([b], np.uint32).view(np.float32)[0])


class TestTotality:
    @pytest.mark.parametrize("fill", X.EXTREMES)
    def test_uniform_extremes(self, fill):
        # The reproducer: all-1e38 used to raise in the INSUFFICIENT_SCOPES rule.
        r = self.checked(X.uniform(fill), f32(np.nan))
        assert ("INSUFFICIENT_SCOPES" in r.reason_codes) == (fill * 10 < 2)

    @settings(max_examples=500, deadline=None, database=None, derandomize=True)
    @given(values=X.features(), raw=raw_scores())
    def test_every_finite_input_gets_a_verdict(self, values, raw):
        self.checked(values, raw)

    @staticmethod
    def checked(values, raw) -> scoring.ScoreResult:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # an overflow warning would be a log line per call
            r = scoring.evaluate(F.validate(values), raw)
        assert 0 <= r.score <= 100
        assert scoring.confidence(r.raw_score) == r.confidence and f32(0.3) <= r.confidence <= f32(0.95)
        if np.isnan(raw):
            assert hashing.float32_hex(r.raw_score) == "0xffc00000"
            assert r.exact_output_hash == hashing.exact_hash([scoring.CANONICAL_NAN])
        else:
            assert hashing.float32_hex(r.raw_score) == hashing.float32_hex(raw)
        return r

    @settings(max_examples=300, deadline=None, database=None, derandomize=True)
    @given(raw=raw_scores().filter(np.isnan))
    def test_every_nan_gives_the_same_bytes(self, raw):
        def fields(r):
            return dataclasses.replace(r, raw_score=hashing.float32_hex(r.raw_score))  # NaN != NaN

        v = good_features()
        assert fields(scoring.evaluate(v, raw)) == fields(scoring.evaluate(v, f32(np.nan)))

    @settings(max_examples=2000, deadline=None, database=None, derandomize=True)
    @given(count=st.floats(width=32, allow_nan=False, allow_infinity=False))
    def test_scope_saturation_changes_no_finite_verdict(self, count):
        v = good_features()
        v[F.SCOPE_COUNT] = count
        with np.errstate(over="ignore"):
            product = f32(f32(count) * f32(10))
        insufficient = "INSUFFICIENT_SCOPES" in scoring.evaluate(v, f32(90.0)).reason_codes
        if np.isfinite(product):
            assert insufficient == (int(product) < 2)  # the rule before saturation
        else:
            assert insufficient == (product < 0)

    @pytest.mark.parametrize("ocr, low", [
        ([X.FLT_MAX, X.FLT_MAX, 0, 0, 0], False),    # +Inf sum: not low
        ([-X.FLT_MAX, -X.FLT_MAX, 0, 0, 0], True),   # -Inf sum: low
        ([X.FLT_MAX, X.FLT_MAX, -X.FLT_MAX, -X.FLT_MAX, -X.FLT_MAX], False),  # +Inf then -Inf: NaN, not low
        ([1e38, 1e38, 1e38, -1e38, -1e38], False),  # 3e38 stays finite: mean 2e37
    ])
    def test_ocr_overflow(self, ocr, low):
        v = good_features()
        v[list(F.OCR_CONFIDENCE_INDICES)] = ocr
        assert ("LOW_OCR_CONFIDENCE" in self.checked(v, f32(90.0)).reason_codes) == low

    def test_slot_ranges_cover_every_feature_once(self):
        covered = [i for r in F.SLOT_RANGES for i in range(F.FEATURE_DIM)[r.indices]]
        assert sorted(covered) == list(range(F.FEATURE_DIM))


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
