"""Operator's client for a running sidecar; prints each response as JSON.

  python -m sidecar.client [--addr=localhost:50051] model-info
  python -m sidecar.client health
  python -m sidecar.client score --features-json=FILE | --vector=NAME [--return-contributions]
  python -m sidecar.client verify-determinism [--test-vector-id=high_quality_verification]
  python -m sidecar.client metrics
  python -m sidecar.client plan [--due-within=BLOCKS]

A sidecar serving mutual TLS needs --cacert (the CA of its certificate),
--cert and --key (a client certificate its --tls-client-ca-file signed).

`score` and `verify-determinism` take --block-height (the model of that
height, as the chain node would ask); `verify-determinism` also
--model-version. Exits 1 on an RPC error, a failed verification, an unhealthy
sidecar, or (plan) an entry due within --due-within blocks that is not
verified.
"""

import json
import sys

from absl import app
from absl import flags

from sidecar import duration
from sidecar import scorer as scorer_lib

flags.DEFINE_string("addr", "localhost:50051", "Sidecar gRPC address.")
flags.DEFINE_string("cacert", "", "Mutual TLS: PEM file of the CA that signed the sidecar's certificate.")
flags.DEFINE_string("cert", "", "Mutual TLS: PEM file of the client certificate.")
flags.DEFINE_string("key", "", "Mutual TLS: PEM file of the client certificate's key.")
duration.DEFINE_duration("timeout", "5s", "Deadline of the call.")
flags.DEFINE_string("features-json", None, "score: file holding a JSON list of 768 numbers.")
flags.DEFINE_string("vector", None, "score: name of a golden vector from the model directory's golden_vectors.json.")
flags.DEFINE_string(
    "model-path",
    scorer_lib.workspace_path(scorer_lib.DEFAULT_MODEL_PATH),
    "score --vector: model directory holding golden_vectors.json.",
)
flags.DEFINE_bool("return-contributions", False, "score: also return per-group feature contributions.")
flags.DEFINE_string("test-vector-id", scorer_lib.DEFAULT_VECTOR, "verify-determinism: golden vector to run.")
flags.DEFINE_integer("block-height", 0, "score, verify-determinism: the block height selecting the model (0: none).")
flags.DEFINE_string("model-version", "", "verify-determinism: check only this plan entry's model.")
flags.DEFINE_integer(
    "due-within", 100, "plan: fail if an entry activating within this many blocks of the highest height seen "
    "is not verified."
)
flags.register_validator("block-height", lambda v: v >= 0, "must be >= 0")

FLAGS = flags.FLAGS

COMMANDS = ("model-info", "health", "metrics", "score", "verify-determinism", "plan")


def _features() -> list[float]:
    source, vector = FLAGS["features-json"].value, FLAGS["vector"].value
    if bool(source) == bool(vector):
        raise app.UsageError("score needs exactly one of --features-json or --vector")
    if vector:
        from sidecar import golden  # pylint: disable=import-outside-toplevel

        for v in golden.load_vectors(FLAGS["model-path"].value):
            if v["name"] == vector:
                return v["features"]
        raise app.UsageError(f"no golden vector {vector!r} in {FLAGS['model-path'].value}")
    with open(scorer_lib.workspace_path(source), encoding="utf-8") as f:
        values = json.load(f)
    if not isinstance(values, list):
        raise app.UsageError(f"{source} must hold a JSON list of numbers")
    return values


def _channel(grpc):
    """A channel to --addr: mutual TLS with --cacert/--cert/--key, plaintext without."""
    tls = {name: FLAGS[name].value for name in ("cacert", "cert", "key")}
    if not any(tls.values()):
        return grpc.insecure_channel(FLAGS.addr)
    if not all(tls.values()):
        raise app.UsageError("mutual TLS needs all of --cacert, --cert and --key")
    pem = {}
    for name, path in tls.items():
        with open(scorer_lib.workspace_path(path), "rb") as f:
            pem[name] = f.read()
    return grpc.secure_channel(FLAGS.addr, grpc.ssl_channel_credentials(pem["cacert"], pem["key"], pem["cert"]))


def main(argv):
    if len(argv) != 2 or argv[1] not in COMMANDS:
        raise app.UsageError(f"give one command: {', '.join(COMMANDS)}")
    # Imported late so `--help` works without generated stubs on the path.
    import grpc  # pylint: disable=import-outside-toplevel
    from google.protobuf import json_format  # pylint: disable=import-outside-toplevel

    from inference.v1 import inference_pb2 as pb  # pylint: disable=import-outside-toplevel
    from inference.v1 import inference_pb2_grpc as pb_grpc  # pylint: disable=import-outside-toplevel

    command = argv[1]
    calls = {
        "model-info": lambda s: s.GetModelInfo(pb.GetModelInfoRequest(), timeout=FLAGS.timeout),
        "health": lambda s: s.HealthCheck(pb.HealthCheckRequest(), timeout=FLAGS.timeout),
        "metrics": lambda s: s.GetMetrics(pb.GetMetricsRequest(), timeout=FLAGS.timeout),
        "plan": lambda s: s.GetModelInfo(pb.GetModelInfoRequest(), timeout=FLAGS.timeout),
        "score": lambda s: s.ComputeScore(
            pb.ComputeScoreRequest(
                features=_features(),
                return_contributions=FLAGS["return-contributions"].value,
                metadata=pb.InferenceMetadata(block_height=FLAGS["block-height"].value),
            ),
            timeout=FLAGS.timeout,
        ),
        "verify-determinism": lambda s: s.VerifyDeterminism(
            pb.VerifyDeterminismRequest(
                test_vector_id=FLAGS["test-vector-id"].value,
                block_height=FLAGS["block-height"].value,
                model_version=FLAGS["model-version"].value,
            ),
            timeout=FLAGS.timeout,
        ),
    }
    with _channel(grpc) as channel:
        try:
            resp = calls[command](pb_grpc.InferenceServiceStub(channel))
        except grpc.RpcError as e:
            print(f"{command} failed: {e.code().name}: {e.details()}", file=sys.stderr)
            return 1
    if command == "plan":
        return _print_plan(pb, resp)
    print(json_format.MessageToJson(resp, preserving_proto_field_name=True, always_print_fields_with_no_presence=True))
    if command == "verify-determinism" and not resp.passed:
        print("verification FAILED", file=sys.stderr)
        return 1
    if command == "health" and resp.status != pb.HEALTH_STATUS_HEALTHY:
        print(f"sidecar is {pb.HealthStatus.Name(resp.status)}", file=sys.stderr)
        return 1
    return 0


def _print_plan(pb, info) -> int:
    """Prints the plan as JSON; 1 if an entry due soon is not verified."""
    ready = (pb.MODEL_STATE_VERIFIED, pb.MODEL_STATE_ACTIVE)
    highest, within = info.highest_block_height, FLAGS["due-within"].value
    entries, late = [], []
    for e in info.plan:
        state = pb.ModelState.Name(e.state).removeprefix("MODEL_STATE_").lower()
        entries.append({"version": e.version, "hash": e.hash, "activation_height": e.activation_height,
                        "state": state, "reason": e.reason})
        # Superseded entries (retired) only matter to a replay, which loads them.
        if e.state not in ready and e.state != pb.MODEL_STATE_RETIRED and e.activation_height - highest <= within:
            late.append(f"{e.version} activates at {e.activation_height} and is {state}"
                        + (f": {e.reason}" if e.reason else ""))
    print(json.dumps({"highest_block_height": highest, "plan_error": info.plan_error, "entries": entries}, indent=2))
    for line in late:
        print(f"NOT READY: {line} (highest height seen {highest}, --due-within={within})", file=sys.stderr)
    if info.plan_error:
        print(f"PLAN REFUSED (the previous plan is still in force): {info.plan_error}", file=sys.stderr)
    return 1 if late or info.plan_error else 0


if __name__ == "__main__":
    app.run(main)
