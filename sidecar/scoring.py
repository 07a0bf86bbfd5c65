"""Turns the model's raw score into the verdict validators agree on.

All arithmetic is float32 with explicit float32 constants so a reimplementation
in another language can match it exactly.
"""

import dataclasses

import numpy as np

from sidecar import features as F
from sidecar import hashing

_F32 = np.float32
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
    """Mean of the five OCR confidences: left-to-right float32 sum, then / 5."""
    total = _ZERO
    for i in F.OCR_CONFIDENCE_INDICES:
        total = _F32(total + values[i])
    return _F32(total / _F32(len(F.OCR_CONFIDENCE_INDICES)))


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
    if ocr_mean(values) < _LOW_OCR:
        codes.append(LOW_OCR_CONFIDENCE)
    # float32 product, then truncation: int(0.2f * 10f) == 2.
    if int(_F32(values[F.SCOPE_COUNT] * _F32(F.SCOPE_COUNT_DIVISOR))) < _MIN_SCOPES:
        codes.append(INSUFFICIENT_SCOPES)
    if not np.any(values[F.FACE_EMBEDDING]):
        codes.append(MISSING_FACE)
    return tuple(codes)


def evaluate(values: np.ndarray, raw: np.float32) -> ScoreResult:
    """The one place a (features, raw score) pair becomes a result.

    `values` must already be F.validate()d; the service and golden vectors both
    go through here so they cannot drift apart.
    """
    raw = _F32(raw)
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
