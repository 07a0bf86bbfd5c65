"""Turns the model's raw score into the verdict validators agree on.

All arithmetic is float32 with explicit float32 constants so a reimplementation
in another language can match it exactly.

The verdict is total: every finite float32 feature vector, however far outside
the ranges models/README.md documents, gets one, the same on every validator.
Where float32 arithmetic leaves the finite range the rules saturate
explicitly, and a NaN the model computes (e.g. Inf * 0 or Inf - Inf inside a
matmul, whose sign and payload bits depend on the CPU's kernel) is replaced by
the one CANONICAL_NAN before anything is hashed or returned. Each rule below
says what it does at the edges; the feature-layout table in models/README.md
says it per slot.
"""

import dataclasses

import numpy as np

from sidecar import features as F
from sidecar import hashing

_F32 = np.float32
# The NaN x86-64's SSE/AVX arithmetic produces for Inf - Inf or Inf * 0 (the
# "real indefinite"), and so what the model returned on every supported CPU
# for such inputs before NaNs were canonicalised: keeping it changes no answer
# already given. (The chain hash maps every NaN to 0x7fc00000 on its own.)
CANONICAL_NAN_BITS = 0xFFC00000
CANONICAL_NAN = np.array([CANONICAL_NAN_BITS], dtype=np.uint32).view(np.float32)[0]
_ZERO = _F32(0.0)
_FIFTY = _F32(50.0)
_HUNDRED = _F32(100.0)
_CONF_BASE = _F32(0.5)
_CONF_SPAN = _F32(0.4)
_CONF_MIN = _F32(0.3)
_CONF_MAX = _F32(0.95)
_HIGH_CONF = _F32(0.8)
_LOW_CONF = _F32(0.5)
_LOW_DOC_QUALITY = _F32(0.6)
_LOW_OCR = _F32(0.5)
_MIN_SCOPES = 2
_SCOPE_UNITS_MAX = _F32(F.SCOPE_COUNT_DIVISOR)

SUCCESS = "SUCCESS"
HIGH_CONFIDENCE = "HIGH_CONFIDENCE"
LOW_CONFIDENCE = "LOW_CONFIDENCE"
LOW_DOC_QUALITY = "LOW_DOC_QUALITY"
LOW_OCR_CONFIDENCE = "LOW_OCR_CONFIDENCE"
INSUFFICIENT_SCOPES = "INSUFFICIENT_SCOPES"
MISSING_FACE = "MISSING_FACE"


@dataclasses.dataclass(frozen=True, slots=True)
class ScoreResult:
    score: int
    raw_score: np.float32
    confidence: np.float32
    reason_codes: tuple[str, ...]
    input_hash: str
    output_hash: str
    exact_output_hash: str


def canonical(value: np.float32) -> np.float32:
    """`value` as float32, with any NaN (any sign or payload) as CANONICAL_NAN.

    The model's NaN bits are whatever the CPU's kernels made of an Inf - Inf or
    Inf * 0 (a kernel that negates on the way flips the sign bit), and the
    exact output hash hashes raw bits: canonicalising is what makes every
    validator return the same bytes for such an input.
    """
    value = _F32(value)
    if value != value:  # NaN; cheaper than np.isnan on the hot path
        return CANONICAL_NAN
    return value


def score(raw: np.float32) -> int:
    """0 for NaN or negative, 100 above 100, otherwise truncation toward zero."""
    raw = _F32(raw)
    if np.isnan(raw) or raw < _ZERO:
        return 0
    if raw > _HUNDRED:
        return 100
    return int(raw)


def confidence(raw: np.float32) -> np.float32:
    """clamp(0.5 + |raw - 50| / 50 * 0.4, 0.3, 0.95), every step in float32.

    NaN (which the sigmoid model cannot produce for finite input) maps to the
    floor 0.3 rather than propagating.
    """
    raw = _F32(raw)
    if np.isnan(raw):
        return _CONF_MIN
    c = _CONF_BASE + np.abs(raw - _FIFTY) / _FIFTY * _CONF_SPAN
    return _F32(min(max(c, _CONF_MIN), _CONF_MAX))


def ocr_mean(values: np.ndarray) -> np.float32:
    """Mean of the five OCR confidences: left-to-right float32 sum, then / 5.

    IEEE float32 throughout: a sum past FLT_MAX saturates to +Inf / -Inf, and
    one that has met both (+Inf + -Inf) is NaN; see ocr_is_low for the verdict.
    """
    total = _ZERO
    with np.errstate(over="ignore", invalid="ignore"):  # the saturation above is the rule, not an accident
        for i in F.OCR_CONFIDENCE_INDICES:
            total = _F32(total + values[i])
    return _F32(total / _F32(len(F.OCR_CONFIDENCE_INDICES)))


def ocr_is_low(values: np.ndarray) -> bool:
    """mean < 0.5; a NaN mean (the sum overflowed both ways) is not low.

    Spelled out rather than left to NaN comparison semantics, which give the
    same answer, so that a reimplementation cannot pick the other one.
    """
    mean = ocr_mean(values)
    if np.isnan(mean):
        return False
    return bool(mean < _LOW_OCR)


def scope_units(values: np.ndarray) -> int:
    """The scope count: float32(count feature * 10) saturated to [0, 10], truncated.

    The saturation makes the rule total (the product of a finite feature
    above ~3.4e37 is +Inf, which int() refuses) and changes no verdict:
    int(p) < 2 exactly when p < 2, clamped or not.
    """
    with np.errstate(over="ignore"):
        units = _F32(values[F.SCOPE_COUNT] * _SCOPE_UNITS_MAX)
    return int(min(max(units, _ZERO), _SCOPE_UNITS_MAX))


def reason_codes(values: np.ndarray, score_value: int, conf: np.float32) -> tuple[str, ...]:
    codes = []
    if score_value >= 50:
        codes.append(SUCCESS)
    if conf >= _HIGH_CONF:
        codes.append(HIGH_CONFIDENCE)
    elif conf < _LOW_CONF:
        codes.append(LOW_CONFIDENCE)
    if values[F.DOC_QUALITY] < _LOW_DOC_QUALITY:
        codes.append(LOW_DOC_QUALITY)
    if ocr_is_low(values):
        codes.append(LOW_OCR_CONFIDENCE)
    # float32 product, then truncation: int(0.2f * 10f) == 2.
    if scope_units(values) < _MIN_SCOPES:
        codes.append(INSUFFICIENT_SCOPES)
    if not np.any(values[F.FACE_EMBEDDING]):
        codes.append(MISSING_FACE)
    return tuple(codes)


def evaluate(values: np.ndarray, raw: np.float32) -> ScoreResult:
    """The one place a (features, raw score) pair becomes a result.

    `values` must already be F.validate()d; the service and golden vectors both
    go through here so they cannot drift apart.
    """
    raw = canonical(raw)
    s = score(raw)
    c = confidence(raw)
    return ScoreResult(
        score=s,
        raw_score=raw,
        confidence=c,
        reason_codes=reason_codes(values, s, c),
        input_hash=hashing.chain_hash(values),
        output_hash=hashing.chain_hash_one(raw),
        exact_output_hash=hashing.exact_hash(raw),
    )
