"""The 768-wide float32 feature layout shared by training, serving and tests.

This is the only place the layout is defined; everything else imports it so a
layout change is one edit and shows up in every consumer at once.
"""

from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

import numpy as np

FEATURE_DIM = 768

# Face embedding: L2-normalised, all zeros when no face was detected.
FACE_EMBEDDING_DIM = 512
FACE_EMBEDDING = slice(0, 512)

# Document quality block, every value in [0, 1].
DOC_QUALITY = 512
SHARPNESS = 513
BRIGHTNESS = 514
CONTRAST = 515
NOISE_INVERTED = 516  # 1 - noise level, so that higher is better like the rest.
DOC_QUALITY_BLOCK = slice(512, 517)

# OCR: per field a confidence in [0, 1] followed by a validated flag (1.0/0.0).
OCR_FIELDS = ("name", "date_of_birth", "document_number", "expiry_date", "nationality")
OCR_START = 517
OCR_BLOCK = slice(517, 527)
OCR_CONFIDENCE_INDICES = tuple(OCR_START + 2 * i for i in range(len(OCR_FIELDS)))
OCR_VALIDATED_INDICES = tuple(OCR_START + 2 * i + 1 for i in range(len(OCR_FIELDS)))

# Scopes: count / 10 capped at 1, then a one-hot (multi-hot) of scope types.
SCOPE_COUNT = 527
SCOPE_COUNT_DIVISOR = 10
SCOPE_TYPES = (
    "id_document",
    "selfie",
    "face_video",
    "biometric",
    "sso_metadata",
    "email_proof",
    "sms_proof",
    "domain_verify",
)
SCOPE_ONE_HOT = slice(528, 536)

FACE_CONFIDENCE = 536
BLOCK_HEIGHT = 537
BLOCK_HEIGHT_MODULUS = 1_000_000
RESERVED = slice(538, 543)
PADDING = slice(543, 768)


class SlotRange(NamedTuple):
    """The values a well-formed producer writes into `indices` (inclusive bounds).

    Documentation and test input only: the service does not enforce it. Any
    finite value gets a verdict (sidecar/scoring.py saturates), because
    rejecting values outside these ranges would change answers the network
    already gives (e.g. to the standard-normal vectors of the cross-CPU check).
    """

    name: str
    indices: slice
    low: float
    high: float


SLOT_RANGES: tuple[SlotRange, ...] = (
    SlotRange("face_embedding", FACE_EMBEDDING, -1.0, 1.0),
    SlotRange("doc_quality_block", DOC_QUALITY_BLOCK, 0.0, 1.0),
    SlotRange("ocr", OCR_BLOCK, 0.0, 1.0),
    SlotRange("scope_count", slice(SCOPE_COUNT, SCOPE_COUNT + 1), 0.0, 1.0),
    SlotRange("scope_one_hot", SCOPE_ONE_HOT, 0.0, 1.0),
    SlotRange("face_confidence", slice(FACE_CONFIDENCE, FACE_CONFIDENCE + 1), 0.0, 1.0),
    SlotRange("block_height", slice(BLOCK_HEIGHT, BLOCK_HEIGHT + 1), 0.0, 1.0),
    SlotRange("reserved", RESERVED, 0.0, 0.0),
    SlotRange("padding", PADDING, 0.0, 0.0),
)


class ContributionGroup(NamedTuple):
    name: str
    indices: tuple[int, ...]


# Order matters: the model's `contributions` signature emits group_scores in
# exactly this order, and the service reports contributions by these names.
CONTRIBUTION_GROUPS: tuple[ContributionGroup, ...] = (
    ContributionGroup("face_embedding", tuple(range(0, 512)) + (FACE_CONFIDENCE,)),
    ContributionGroup("doc_quality", tuple(range(512, 517))),
    ContributionGroup("ocr", tuple(range(517, 527))),
    ContributionGroup("metadata", tuple(range(527, 536)) + (BLOCK_HEIGHT,)),
)
GROUP_NAMES = tuple(g.name for g in CONTRIBUTION_GROUPS)


class FeatureError(ValueError):
    """Features are unusable; the service maps this to INVALID_ARGUMENT."""


def validate(values: Iterable[float] | np.ndarray) -> np.ndarray:
    """Returns a fresh C-contiguous float32 (768,) copy or raises FeatureError."""
    try:
        arr = np.asarray(values)
    except (TypeError, ValueError) as e:
        raise FeatureError(f"features are not a numeric sequence: {e}") from None
    if arr.ndim != 1:
        raise FeatureError(f"expected a flat sequence of {FEATURE_DIM} features, got shape {arr.shape}")
    if arr.shape[0] != FEATURE_DIM:
        raise FeatureError(f"expected {FEATURE_DIM} features, got {arr.shape[0]}")
    if arr.dtype.kind not in "fiub":
        raise FeatureError(f"features must be numbers, got dtype {arr.dtype}")
    # Check finiteness before narrowing so a NaN is reported as such, then again
    # after, because a finite float64 can overflow float32 to Inf.
    _check_finite(arr, narrowed=False)
    with np.errstate(over="ignore"):  # reported precisely just below
        out = np.array(arr, dtype=np.float32, order="C", copy=True)
    _check_finite(out, narrowed=arr.dtype != np.float32)
    return out


def _check_finite(arr: np.ndarray, narrowed: bool) -> None:
    if arr.dtype.kind != "f":
        return
    finite = np.isfinite(arr)
    if finite.all():
        return
    i = int(np.argmin(finite))
    v = arr[i]
    if narrowed:
        raise FeatureError(f"feature {i} overflows float32")
    kind = "NaN" if np.isnan(v) else ("+Inf" if v > 0 else "-Inf")
    raise FeatureError(f"feature {i} is {kind}")


def group_keep_masks() -> np.ndarray:
    """(len(CONTRIBUTION_GROUPS), 768) bool; False marks the features a group zeroes."""
    masks = np.ones((len(CONTRIBUTION_GROUPS), FEATURE_DIM), dtype=bool)
    for row, group in enumerate(CONTRIBUTION_GROUPS):
        masks[row, list(group.indices)] = False
    return masks


def assemble(
    *,
    embedding: Sequence[float] | np.ndarray | None,
    doc_quality: float,
    sharpness: float,
    brightness: float,
    contrast: float,
    noise_inverted: float,
    ocr: Mapping[str, tuple[float, float]],
    scopes: Sequence[str],
    face_confidence: float,
    block_height: int,
    scope_count: int | None = None,
) -> np.ndarray:
    """Builds one float32 feature vector from named parts (used for golden vectors).

    The embedding is stored as given (callers normalise); `None` means no face.
    `scope_count` defaults to the number of distinct scope types.
    """
    out = np.zeros(FEATURE_DIM, dtype=np.float32)
    if embedding is not None:
        emb = np.asarray(embedding, dtype=np.float32)
        if emb.shape != (FACE_EMBEDDING_DIM,):
            raise FeatureError(f"embedding must have {FACE_EMBEDDING_DIM} values, got {emb.shape}")
        out[FACE_EMBEDDING] = emb
    out[DOC_QUALITY] = doc_quality
    out[SHARPNESS] = sharpness
    out[BRIGHTNESS] = brightness
    out[CONTRAST] = contrast
    out[NOISE_INVERTED] = noise_inverted
    unknown = set(ocr) - set(OCR_FIELDS)
    if unknown:
        raise FeatureError(f"unknown OCR fields {sorted(unknown)}")
    for i, field in enumerate(OCR_FIELDS):
        conf, validated = ocr.get(field, (0.0, 0.0))
        out[OCR_CONFIDENCE_INDICES[i]] = conf
        out[OCR_VALIDATED_INDICES[i]] = validated
    for scope in scopes:
        if scope not in SCOPE_TYPES:
            raise FeatureError(f"unknown scope type {scope!r}")
        out[SCOPE_ONE_HOT.start + SCOPE_TYPES.index(scope)] = 1.0
    count = len(set(scopes)) if scope_count is None else scope_count
    out[SCOPE_COUNT] = min(count / SCOPE_COUNT_DIVISOR, 1.0)
    out[FACE_CONFIDENCE] = face_confidence
    out[BLOCK_HEIGHT] = (block_height % BLOCK_HEIGHT_MODULUS) / BLOCK_HEIGHT_MODULUS
    return validate(out)
