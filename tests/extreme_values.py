"""Hypothesis strategies for finite float32 features at and beyond the documented ranges.

Shared by the scoring unit test (sidecar/scoring_test.py) and the end-to-end
test against a real sidecar (tests/extreme_features_test.py).
"""

import numpy as np
from hypothesis import strategies as st

from sidecar import features as F

f32 = np.float32
FLT_MAX = float(np.finfo(np.float32).max)
TINY = float(np.finfo(np.float32).smallest_subnormal)
EXTREMES = (FLT_MAX, -FLT_MAX, 1e38, -1e38, 3e38, -3e38, TINY, -TINY,
            float(np.finfo(np.float32).smallest_normal), 0.0, -0.0, 1.0, -1.0)


def just_outside(r: F.SlotRange) -> tuple[float, ...]:
    """The nearest float32 values outside the slot's range, and one unit beyond."""
    return (float(np.nextafter(f32(r.low), f32(-np.inf))), float(np.nextafter(f32(r.high), f32(np.inf))),
            r.low - 1.0, r.high + 1.0)


OUTSIDE = {r.name: just_outside(r) for r in F.SLOT_RANGES}
_ANY_SPECIAL = EXTREMES + tuple(x for xs in OUTSIDE.values() for x in xs)


@st.composite
def features(draw) -> np.ndarray:
    """Slot by slot a fill (zeros, one extreme, a scaled normal draw, just outside
    the range), then a few positions overwritten with extremes: the mixes a
    hostile or broken producer sends. Always finite float32."""
    v = np.zeros(F.FEATURE_DIM, np.float32)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    for r in F.SLOT_RANGES:
        fill = draw(st.sampled_from(["zero", "extreme", "normal", "outside"]))
        n = len(range(F.FEATURE_DIM)[r.indices])
        if fill == "extreme":
            v[r.indices] = draw(st.sampled_from(EXTREMES))
        elif fill == "normal":
            v[r.indices] = rng.standard_normal(n).astype(np.float32) * f32(draw(st.sampled_from([1.0, 1e19, 1e37])))
        elif fill == "outside":
            v[r.indices] = draw(st.sampled_from(OUTSIDE[r.name]))
    for i in draw(st.lists(st.integers(0, F.FEATURE_DIM - 1), max_size=12)):
        v[i] = draw(st.sampled_from(_ANY_SPECIAL))
    return v


def uniform(value: float) -> np.ndarray:
    return np.full(F.FEATURE_DIM, value, np.float32)
