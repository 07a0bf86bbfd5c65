"""Trains and exports the deterministic trust-score model.

Run from the repository root:
    python models/train.py --output_dir=models/trust_score

The network is a small Keras MLP (768 -> 256 -> 64 -> 1, relu, sigmoid * 100).
Everything that reaches the exported bytes is a pure function of this file,
the seed and the pinned TensorFlow/Keras/NumPy versions: weights start from
NumPy's frozen stream rather than Keras' RNG, the data are synthetic,
training steps one example at a time (batch-1 products are the only ones
oneDNN computes identically on every CPU), and the export is normalised.
See models/README.md for the data rule and what needed normalising.
"""

import json
import math
import os
import shutil
import tempfile
from typing import NamedTuple

from absl import app
from absl import flags
import numpy as np

from sidecar import determinism
from sidecar import features as F
from sidecar import golden
from sidecar import hashing
from sidecar import model as model_lib

FLAGS = flags.FLAGS
flags.DEFINE_string("output_dir", None, "Directory to export the SavedModel to (replaced).")
flags.mark_flag_as_required("output_dir")


class Release(NamedTuple):
    """What distinguishes one released model from another; everything else is shared."""

    epochs: int
    export_timestamp: str  # recorded in export_metadata.json; fixed so exports are reproducible
    # What changed against the previous release, recorded in export_metadata.json;
    # empty for v1.0.0, whose committed metadata predates the field.
    change: str


# One entry per model version the network has approved. An entry never
# changes once released: validators must be able to rebuild it bit for bit.
RELEASES = {
    "v1.0.0": Release(epochs=4, export_timestamp="2026-11-27T00:00:00Z", change=""),
    "v1.1.0": Release(
        epochs=6,
        export_timestamp="2026-11-30T00:00:00Z",
        change="two more epochs over the same data, seed and order stream (6 instead of 4)",
    ),
}
flags.DEFINE_enum("version", "v1.0.0", list(RELEASES), "Model version to train and export.")

PIPELINE_VERSION = "veid-pipeline-v1"
TRAIN_EXAMPLES = 3000
LEARNING_RATE = 0.01
HIDDEN = (256, 64)


# --- synthetic data --------------------------------------------------------
# Only uniform draws and + - * / sqrt (all exactly rounded in IEEE-754) are
# used, so the data do not depend on libm or on NumPy's SIMD dispatch.
# np.random.RandomState's stream is frozen by NumPy's compatibility policy.

def _clip01(x: np.ndarray) -> np.ndarray:
    return np.minimum(np.maximum(x, 0.0), 1.0)


def _l2_normalise(rows: np.ndarray) -> np.ndarray:
    # math.fsum is exactly rounded, so the norm does not depend on summation order.
    norms = np.array([math.sqrt(math.fsum(r * r)) for r in rows])
    return rows / norms[:, None]


def synthetic_data(rng: np.random.RandomState, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Returns (features float32 [n, 768], target trust in [0, 1] float32 [n, 1]).

    Ground truth, before noise: trust = 0.30*face + 0.25*doc + 0.25*ocr + 0.20*scopes
    with face = face confidence (0 without a face), doc = doc quality, ocr = mean
    of confidence*validated over the five fields, scopes = min(count, 5)/5;
    then stretched around 0.5 by 1.6, plus uniform noise of +-0.05, clipped.
    """
    x = np.zeros((n, F.FEATURE_DIM), dtype=np.float64)
    has_face = rng.random_sample(n) < 0.85
    emb = _l2_normalise(rng.uniform(-1.0, 1.0, size=(n, F.FACE_EMBEDDING_DIM)))
    x[:, F.FACE_EMBEDDING] = emb * has_face[:, None]
    face_conf = np.where(has_face, 0.3 + 0.7 * rng.random_sample(n), 0.0)
    x[:, F.FACE_CONFIDENCE] = face_conf

    doc = rng.random_sample(n)
    x[:, F.DOC_QUALITY] = doc
    for idx in (F.SHARPNESS, F.BRIGHTNESS, F.CONTRAST, F.NOISE_INVERTED):
        x[:, idx] = _clip01(doc + rng.uniform(-0.2, 0.2, size=n))

    ocr_term = np.zeros(n)
    for conf_i, valid_i in zip(F.OCR_CONFIDENCE_INDICES, F.OCR_VALIDATED_INDICES):
        conf = _clip01(0.6 * doc + 0.4 * rng.random_sample(n) + rng.uniform(-0.1, 0.1, size=n))
        valid = ((conf > 0.5) & (rng.random_sample(n) < 0.9)).astype(np.float64)
        x[:, conf_i] = conf
        x[:, valid_i] = valid
        ocr_term = ocr_term + conf * valid  # explicit order, not np.sum's
    ocr_term = ocr_term / len(F.OCR_FIELDS)

    counts = rng.randint(0, len(F.SCOPE_TYPES) + 1, size=n)
    for row in range(n):
        chosen = rng.permutation(len(F.SCOPE_TYPES))[: counts[row]]
        x[row, F.SCOPE_ONE_HOT.start + chosen] = 1.0
    x[:, F.SCOPE_COUNT] = np.minimum(counts / F.SCOPE_COUNT_DIVISOR, 1.0)
    x[:, F.BLOCK_HEIGHT] = rng.randint(0, F.BLOCK_HEIGHT_MODULUS, size=n) / F.BLOCK_HEIGHT_MODULUS

    trust = 0.30 * face_conf + 0.25 * doc + 0.25 * ocr_term + 0.20 * (np.minimum(counts, 5) / 5.0)
    trust = _clip01(0.5 + 1.6 * (trust - 0.5) + rng.uniform(-0.05, 0.05, size=n))
    return x.astype(np.float32), trust.astype(np.float32)[:, None]


def glorot_uniform(rng: np.random.RandomState, fan_in: int, fan_out: int) -> np.ndarray:
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=(fan_in, fan_out)).astype(np.float32)


# --- model -------------------------------------------------------------------

def import_keras(tf):
    """Imports Keras 3 on the TensorFlow backend, after determinism has configured TF.

    KERAS_BACKEND is pinned (a user's keras.json or environment could otherwise
    select JAX or PyTorch); floatx is reset to float32 and every layer is also
    given dtype float32 explicitly, so a keras.json cannot change the model.
    """
    have = os.environ.get("KERAS_BACKEND")
    if have not in (None, "", "tensorflow"):
        raise determinism.DeterminismError(f"KERAS_BACKEND={have!r} contradicts required 'tensorflow'")
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import keras  # pylint: disable=import-outside-toplevel

    if keras.backend.backend() != "tensorflow":
        raise determinism.DeterminismError(f"Keras runs on {keras.backend.backend()!r}, not tensorflow")
    keras.config.set_floatx("float32")  # a keras.json could say otherwise
    del tf
    return keras


def build_keras_model(keras, rng: np.random.RandomState):
    """The 768 -> 256 -> 64 -> 1 Keras MLP: relu hidden layers, final Dense(1).

    Returns a functional model with two outputs, {"logit": [n, 1], "trust_score":
    sigmoid(logit) * 100}; training uses the logit, serving the score. Layers
    are created with zero initialisers, so Keras' RNG is never consulted, and
    the Glorot-uniform kernels are then drawn from `rng` in layer order (the
    same stream as before Keras) and set with set_weights; biases stay zero.
    """
    dims = (F.FEATURE_DIM,) + HIDDEN + (1,)
    inputs = keras.Input(shape=(F.FEATURE_DIM,), dtype="float32", name=model_lib.INPUT_NAME)
    h = inputs
    layers = []
    for i, units in enumerate(dims[1:]):
        last = i == len(dims) - 2
        layer = keras.layers.Dense(
            units,
            activation=None if last else "relu",
            kernel_initializer="zeros",
            bias_initializer="zeros",
            dtype="float32",
            name="logit" if last else f"hidden_{i}",
        )
        h = layer(h)
        layers.append(layer)
    score = keras.layers.Activation("sigmoid", dtype="float32", name="sigmoid")(h) * 100.0
    model = keras.Model(inputs=inputs, outputs={"logit": h, model_lib.OUTPUT_NAME: score}, name="trust_score")
    for layer, (a, b) in zip(layers, zip(dims, dims[1:])):
        layer.set_weights([glorot_uniform(rng, a, b), np.zeros(b, np.float32)])
    return model


def build_module(tf, keras_model):
    keep_masks = F.group_keep_masks()

    class TrustScore(tf.Module):
        """Export wrapper: the Keras model's weights plus two tf.function signatures.

        Only the weights are tracked; the Keras model itself is reached through
        the closure, so the SavedModel holds the graph and six variables and
        none of Keras' bookkeeping objects, its traced default signature or
        any optimizer state.
        """

        def __init__(self):
            super().__init__(name="trust_score")
            self.keras_weights = list(keras_model.weights)

        @property
        def model(self):
            return keras_model

        def score(self, x):
            return keras_model(x, training=False)[model_lib.OUTPUT_NAME]

        @tf.function(input_signature=[tf.TensorSpec([None, F.FEATURE_DIM], tf.float32, name="features")])
        def serve(self, features):
            return {model_lib.OUTPUT_NAME: self.score(features)}

        @tf.function(input_signature=[tf.TensorSpec([1, F.FEATURE_DIM], tf.float32, name="features")])
        def contributions(self, features):
            # Each variant is its own batch-1 forward pass; stacking them into
            # one batch of 5 would make the matmul CPU-dependent.
            raw = self.score(features)
            without = [
                self.score(tf.where(tf.constant(keep_masks[g : g + 1]), features, tf.zeros_like(features)))
                for g in range(len(F.CONTRIBUTION_GROUPS))
            ]
            return {model_lib.OUTPUT_NAME: raw, model_lib.GROUP_SCORES_NAME: tf.concat(without, axis=1)}

    return TrustScore()


def train(tf, module, x: np.ndarray, y: np.ndarray, rng: np.random.RandomState, epochs: int) -> np.float32:
    """Plain per-example SGD on sigmoid cross-entropy; returns the last epoch's mean loss.

    Not model.fit: it would batch (CPU-dependent matmuls) and attach optimizer
    state. Each step calls the Keras model on one row and updates its weights
    with v -= lr * grad.
    """
    variables = list(module.model.trainable_variables)
    xs = tf.constant(x)
    ys = tf.constant(y)
    lr = tf.constant(LEARNING_RATE, tf.float32)

    @tf.function
    def epoch(order):
        total = tf.constant(0.0, tf.float32)
        for i in tf.range(tf.shape(order)[0]):
            xi = tf.gather(xs, order[i : i + 1])
            yi = tf.gather(ys, order[i : i + 1])
            with tf.GradientTape() as tape:
                logits = module.model(xi, training=True)["logit"]
                loss = tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(labels=yi, logits=logits))
            for v, g in zip(variables, tape.gradient(loss, variables)):
                v.assign_sub(lr * g)
            total += loss
        return total / tf.cast(tf.shape(order)[0], tf.float32)

    mean_loss = np.float32(np.nan)
    for _ in range(epochs):
        order = tf.constant(rng.permutation(x.shape[0]).astype(np.int32))
        mean_loss = np.float32(epoch(order).numpy())
    return mean_loss


# --- export -------------------------------------------------------------------

def normalise_fingerprint(export_dir: str) -> None:
    """fingerprint.pb carries a fresh random uuid per save; blank it."""
    from tensorflow.core.protobuf import fingerprint_pb2  # pylint: disable=import-outside-toplevel

    path = os.path.join(export_dir, "fingerprint.pb")
    if not os.path.exists(path):
        return
    fp = fingerprint_pb2.FingerprintDef()
    with open(path, "rb") as f:
        fp.ParseFromString(f.read())
    fp.ClearField("uuid")
    with open(path, "wb") as f:
        f.write(fp.SerializeToString(deterministic=True))


def graph_op_types(export_dir: str) -> list[str]:
    from tensorflow.core.protobuf import saved_model_pb2  # pylint: disable=import-outside-toplevel

    sm = saved_model_pb2.SavedModel()
    with open(os.path.join(export_dir, "saved_model.pb"), "rb") as f:
        sm.ParseFromString(f.read())
    ops = set()
    for mg in sm.meta_graphs:
        ops.update(n.op for n in mg.graph_def.node)
        for fn in mg.graph_def.library.function:
            ops.update(n.op for n in fn.node_def)
    return sorted(ops)


def golden_inputs() -> list[tuple[str, np.ndarray]]:
    rng = np.random.RandomState(1001)

    def emb() -> np.ndarray:
        return _l2_normalise(rng.uniform(-1.0, 1.0, size=(1, F.FACE_EMBEDDING_DIM)))[0]

    def ocr(conf: float, valid: float) -> dict:
        return {name: (conf, valid) for name in F.OCR_FIELDS}

    def doc(q: float) -> dict:
        return dict(doc_quality=q, sharpness=q, brightness=q, contrast=q, noise_inverted=q)

    # 63 entries of +-1/8 and 256 of +-1/128 have norm exactly 1; 1/128 * 1e6
    # = 7812.5 exercises the chain hash's half-away-from-zero tie; the rest
    # are -0.0.
    ties = np.full(F.FACE_EMBEDDING_DIM, -0.0)
    ties[:63] = 0.125 * np.where(np.arange(63) % 2, -1.0, 1.0)
    ties[63:319] = 0.0078125 * np.where(np.arange(256) % 2, -1.0, 1.0)

    vectors = [
        ("high_quality_verification", F.assemble(
            embedding=emb(), **doc(0.92), ocr=ocr(0.95, 1.0),
            scopes=["id_document", "selfie", "face_video", "biometric"], face_confidence=0.97,
            block_height=123_456)),
        ("medium_quality_verification", F.assemble(
            embedding=emb(), **doc(0.7), ocr={"name": (0.8, 1.0), "date_of_birth": (0.7, 1.0),
                                              "document_number": (0.6, 1.0), "expiry_date": (0.55, 0.0),
                                              "nationality": (0.65, 1.0)},
            scopes=["id_document", "selfie"], face_confidence=0.75, block_height=2_500_000)),
        ("low_quality_document", F.assemble(
            embedding=emb(), **doc(0.3), ocr=ocr(0.35, 0.0), scopes=["id_document"],
            face_confidence=0.6, block_height=999_999)),
        ("missing_face_embedding", F.assemble(
            embedding=None, **doc(0.85), ocr=ocr(0.9, 1.0), scopes=["id_document", "email_proof", "sms_proof"],
            face_confidence=0.0, block_height=42)),
        ("all_zeros", np.zeros(F.FEATURE_DIM, np.float32)),
        ("edge_all_ones", F.assemble(
            embedding=np.full(F.FACE_EMBEDDING_DIM, 1.0 / math.sqrt(F.FACE_EMBEDDING_DIM)), **doc(1.0),
            ocr=ocr(1.0, 1.0), scopes=list(F.SCOPE_TYPES), scope_count=F.SCOPE_COUNT_DIVISOR,
            face_confidence=1.0, block_height=F.BLOCK_HEIGHT_MODULUS - 1)),
        ("edge_all_zeros_but_scopes", F.assemble(
            embedding=None, **doc(0.0), ocr=ocr(0.0, 0.0), scopes=list(F.SCOPE_TYPES),
            face_confidence=0.0, block_height=0)),
        ("reason_code_boundaries", F.assemble(
            embedding=emb(), **doc(0.6), ocr=ocr(0.5, 1.0), scopes=["id_document", "selfie"],
            face_confidence=0.5, block_height=500_000)),
        ("chain_rounding_ties", F.assemble(
            embedding=ties, **doc(0.0078125), ocr=ocr(0.5000005, 1.0), scopes=["selfie", "sso_metadata"],
            face_confidence=0.9999995, block_height=7_812)),
        ("no_scopes_good_face", F.assemble(
            embedding=emb(), **doc(0.8), ocr=ocr(0.85, 1.0), scopes=[], face_confidence=0.9,
            block_height=31_337)),
    ]
    return vectors


def write_json(path: str, obj) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, sort_keys=True, indent=2, ensure_ascii=True, allow_nan=False)
        f.write("\n")


def export(tf, module, output_dir: str, version: str, training_summary: dict) -> str:
    parent = os.path.dirname(os.path.abspath(output_dir))
    os.makedirs(parent, exist_ok=True)
    # Build next to the destination and swap in at the end, so a failed run
    # never leaves a half-written model where the committed one was.
    staging = tempfile.mkdtemp(prefix=".trust_score.", dir=parent)
    os.chmod(staging, 0o755)  # mkdtemp's 0700 would hide the model from the service user
    try:
        tf.saved_model.save(
            module,
            staging,
            signatures={
                model_lib.SERVING_SIGNATURE: module.serve,
                model_lib.CONTRIBUTIONS_SIGNATURE: module.contributions,
            },
        )
        normalise_fingerprint(staging)
        # assets/ is created empty; git cannot carry it, so do not ship it.
        assets = os.path.join(staging, "assets")
        if os.path.isdir(assets) and not os.listdir(assets):
            os.rmdir(assets)

        with model_lib.load_for_export(staging) as m:
            records = []
            for name, values in golden_inputs():
                raw = m.infer(values)
                raw_c, contrib = m.infer_with_contributions(values)
                if hashing.float32_hex(raw_c) != hashing.float32_hex(raw):
                    raise RuntimeError(f"{name}: contributions signature disagrees with serving_default")
                records.append(golden.vector_record(name, values, raw, contrib))
        write_json(os.path.join(staging, golden.GOLDEN_FILE), {"model_version": version, "vectors": records})

        model_hash = hashing.model_hash(staging)
        feature_spec = {"dtype": "float32", "shape": [None, F.FEATURE_DIM]}
        metadata = {
            "version": version,
            "pipeline_version": PIPELINE_VERSION,
            "tensorflow_version": tf.__version__,
            "model_hash": model_hash,
            "model_hash_scheme": hashing.MANIFEST_HEADER.decode().strip(),
            "export_timestamp": RELEASES[version].export_timestamp,
            "inputs": {model_lib.INPUT_NAME: feature_spec},
            "outputs": {model_lib.OUTPUT_NAME: {"dtype": "float32", "shape": [None, 1]}},
            "signatures": {
                model_lib.SERVING_SIGNATURE: {
                    "inputs": {model_lib.INPUT_NAME: feature_spec},
                    "outputs": {model_lib.OUTPUT_NAME: {"dtype": "float32", "shape": [None, 1]}},
                },
                model_lib.CONTRIBUTIONS_SIGNATURE: {
                    "inputs": {model_lib.INPUT_NAME: {"dtype": "float32", "shape": [1, F.FEATURE_DIM]}},
                    "outputs": {
                        model_lib.OUTPUT_NAME: {"dtype": "float32", "shape": [1, 1]},
                        model_lib.GROUP_SCORES_NAME: {
                            "dtype": "float32",
                            "shape": [1, len(F.CONTRIBUTION_GROUPS)],
                        },
                    },
                },
            },
            "contribution_groups": list(F.GROUP_NAMES),
            "graph_op_types": graph_op_types(staging),
            "determinism": determinism.settings(),
            "golden_vectors": {"file": golden.GOLDEN_FILE, "count": len(records)},
            "training": training_summary,
        }
        write_json(os.path.join(staging, hashing.METADATA_FILE), metadata)
        if os.path.exists(output_dir):
            shutil.rmtree(output_dir)
        os.rename(staging, output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return model_hash


def main(argv):
    del argv
    tf = determinism.import_tensorflow()
    rng = np.random.RandomState(determinism.SEED)
    x, y = synthetic_data(rng, TRAIN_EXAMPLES)
    keras = import_keras(tf)
    module = build_module(tf, build_keras_model(keras, rng))
    release = RELEASES[FLAGS.version]
    final_loss = train(tf, module, x, y, rng, release.epochs)
    summary = {
        "seed": determinism.SEED,
        "examples": TRAIN_EXAMPLES,
        "epochs": release.epochs,
        "batch_size": 1,
        "optimizer": f"sgd(lr={LEARNING_RATE})",
        "loss": "sigmoid_cross_entropy(target=trust/100)",
        "architecture": f"keras {keras.__version__} functional MLP: Dense 768-256-64-1 relu, sigmoid*100",
        "final_epoch_mean_loss_bits": hashing.float32_hex(final_loss),
        "final_epoch_mean_loss": float(final_loss),
    }
    if release.change:
        summary["change"] = release.change
    model_hash = export(tf, module, FLAGS.output_dir, FLAGS.version, summary)
    print(f"model_hash={model_hash} final_loss={float(final_loss):.6f}")


if __name__ == "__main__":
    app.run(main)
