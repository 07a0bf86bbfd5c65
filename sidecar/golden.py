"""Golden vectors: fixed inputs whose exact outputs every validator must reproduce."""

import json
import os
import sys
from typing import Any

import numpy as np

from sidecar import features as F
from sidecar import hashing
from sidecar import scoring

GOLDEN_FILE = "golden_vectors.json"


def vector_record(name: str, values: np.ndarray, raw: np.float32, without: dict[str, np.float32]) -> dict[str, Any]:
    """The JSON record for one vector; `without` maps group -> contribution."""
    r = scoring.evaluate(values, raw)
    return {
        "name": name,
        # float(np.float32) is exact in float64 and JSON round-trips it exactly.
        "features": [float(v) for v in values],
        # The *_bits fields are authoritative; the floats are for humans (and
        # also exact, since float32 -> float64 -> JSON round-trips).
        "raw_score": float(r.raw_score),
        "raw_score_bits": hashing.float32_hex(r.raw_score),
        "score": r.score,
        "confidence": float(r.confidence),
        "confidence_bits": hashing.float32_hex(r.confidence),
        "reason_codes": list(r.reason_codes),
        "input_hash": r.input_hash,
        "output_hash": r.output_hash,
        "exact_output_hash": r.exact_output_hash,
        "contribution_bits": {g: hashing.float32_hex(without[g]) for g in F.GROUP_NAMES},
    }


def load_vectors(model_dir: str, file_name: str = GOLDEN_FILE) -> list[dict[str, Any]]:
    with open(os.path.join(model_dir, file_name), encoding="utf-8") as f:
        vectors = json.load(f)["vectors"]
    if not isinstance(vectors, list) or not all(isinstance(v, dict) for v in vectors):
        raise ValueError(f"{file_name}: \"vectors\" must be a list of objects")
    return vectors


def check_all(model, vectors: list[dict[str, Any]] | None = None) -> list[str]:
    """Runs every golden vector through `model` (a TrustModel); [] means all match."""
    if vectors is None:
        vectors = load_vectors(model.path)
    problems = []
    for want in vectors:
        name = want.get("name", "?")
        try:
            values = F.validate(want["features"])
        except F.FeatureError as e:
            problems.append(f"{name}: invalid features: {e}")
            continue
        plain = model.infer(values)
        raw, contrib = model.infer_with_contributions(values)
        if hashing.float32_hex(plain) != hashing.float32_hex(raw):
            problems.append(
                f"{name}: contributions trust_score {hashing.float32_hex(raw)} != "
                f"serving_default {hashing.float32_hex(plain)}"
            )
        got = vector_record(name, values, plain, contrib)
        for key, expected in want.items():
            if got.get(key) != expected and key != "features":
                problems.append(f"{name}: {key} expected {expected!r}, got {got.get(key)!r}")
    return problems


def main(argv: list[str]) -> int:
    from sidecar import model as model_lib  # pylint: disable=import-outside-toplevel

    if len(argv) != 2:
        print("usage: python -m sidecar.golden MODEL_DIR", file=sys.stderr)
        return 2
    with model_lib.load_model(argv[1]) as m:
        problems = check_all(m)
    for p in problems:
        print(p)
    print(f"{'FAIL' if problems else 'OK'}: {len(problems)} mismatches, model {m.hash}")
    return 1 if problems else 0


if __name__ == "__main__":
    from absl import app

    app.run(lambda argv: sys.exit(main(argv)))
