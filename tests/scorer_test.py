"""The embeddable scorer (sidecar.registry.from_environment) in this process.

Refusals run first and fail before TensorFlow is imported; then one scorer is
loaded for the rest of the module.
"""

import json
import os

import numpy as np
import pytest

from ops import committed_model
from ops import sidecar_process
from sidecar import features as F
from sidecar import golden
from sidecar import hashing
from sidecar import registry as registry_lib
from sidecar import scorer as scorer_lib


@pytest.fixture(scope="module")
def model_path():
    return committed_model.copy_model(sidecar_process.tmpdir("scorer-"))


def env(model_path, **extra):
    return {registry_lib.ENV_MODEL_PATH: model_path, **extra}


def test_use_tensorflow_false_is_refused(model_path):
    for value in ("false", "0"):
        with pytest.raises(scorer_lib.ScorerError, match=f"VEID_USE_TENSORFLOW='{value}'"):
            registry_lib.from_environment(env(model_path, VEID_USE_TENSORFLOW=value))
    with pytest.raises(scorer_lib.ScorerError, match="not a boolean"):
        registry_lib.from_environment(env(model_path, VEID_USE_TENSORFLOW="maybe"))


def test_pinned_hash_mismatch_is_refused(model_path):
    with pytest.raises(scorer_lib.ScorerError, match="model hash mismatch.*" + "cd" * 32):
        registry_lib.from_environment(env(model_path, VEID_INFERENCE_MODEL_HASH="cd" * 32))
    with pytest.raises(scorer_lib.ScorerError, match="64 lowercase hex"):
        registry_lib.from_environment(env(model_path, VEID_INFERENCE_MODEL_HASH="short"))


@pytest.fixture(scope="module")
def scorer(model_path):
    with open(os.path.join(model_path, hashing.METADATA_FILE), encoding="utf-8") as f:
        pinned = json.load(f)["model_hash"]
    s = registry_lib.from_environment(env(model_path, VEID_USE_TENSORFLOW="true", VEID_INFERENCE_MODEL_HASH=pinned))
    yield s
    s.close()


def test_golden_vectors_through_the_embedded_scorer(scorer, model_path):
    for want in golden.load_vectors(model_path):
        s = scorer.score(want["features"], contributions=True)
        r = s.result
        assert (r.output_hash, r.exact_output_hash, r.input_hash) == (
            want["output_hash"], want["exact_output_hash"], want["input_hash"]), want["name"]
        assert (hashing.float32_hex(r.raw_score), r.score, list(r.reason_codes)) == (
            want["raw_score_bits"], want["score"], want["reason_codes"]), want["name"]
        assert {g: hashing.float32_hex(v) for g, v in s.contributions.items()} == want["contribution_bits"]
        assert scorer.verify_vector(want["name"]).passed


def test_bad_input_and_deadline(scorer):
    with pytest.raises(F.FeatureError, match="expected 768 features, got 3"):
        scorer.score([1.0, 2.0, 3.0])
    with pytest.raises(scorer_lib.DeadlineExceeded):
        scorer.score(np.zeros(768, np.float32), deadline=0.0)
    with pytest.raises(scorer_lib.UnknownVector, match="unknown test vector 'nope'"):
        scorer.verify_vector("nope")
    assert scorer.verify_vector(scorer_lib.DEFAULT_VECTOR).passed


def test_embedded_scorer_honours_the_upgrade_plan():
    models = committed_model.copy_models(sidecar_process.tmpdir("scorer-plan-"))
    plan_path = os.path.join(models, "plan.example.json")
    with open(plan_path, encoding="utf-8") as f:
        entries = json.load(f)["entries"]
    height = entries[1]["activation_height"]
    with pytest.raises(scorer_lib.ScorerError, match="unset VEID_INFERENCE_MODEL_PATH"):
        registry_lib.from_environment({registry_lib.ENV_UPGRADE_PLAN: plan_path, registry_lib.ENV_MODEL_PATH: "x"})
    with registry_lib.from_environment({registry_lib.ENV_UPGRADE_PLAN: plan_path}) as reg:
        for block_height, entry, model_dir in ((height - 1, entries[0], "trust_score"),
                                               (height, entries[1], "trust_score_v1_1")):
            want = golden.load_vectors(os.path.join(models, model_dir))[0]
            s = reg.score(want["features"], block_height=block_height)
            assert (s.model_version, s.model_hash) == (entry["version"], entry["expected_hash"])
            assert s.result.output_hash == want["output_hash"]
        with pytest.raises(registry_lib.NeedsHeight, match="no block height"):
            reg.score(np.zeros(768, np.float32))


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
