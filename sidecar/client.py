"""Operator's client for a running sidecar; prints each response as JSON.

  python -m sidecar.client [--addr=localhost:50051] model-info
  python -m sidecar.client health
  python -m sidecar.client score --features-json=FILE | --vector=NAME [--return-contributions]
  python -m sidecar.client verify-determinism [--test-vector-id=high_quality_verification]
  python -m sidecar.client metrics

Exits 1 on an RPC error, a failed verification or an unhealthy sidecar.
"""

import json
import sys

from absl import app
from absl import flags

from sidecar import duration
from sidecar import scorer as scorer_lib

flags.DEFINE_string("addr", "localhost:50051", "Sidecar gRPC address.")
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

FLAGS = flags.FLAGS

COMMANDS = ("model-info", "health", "metrics", "score", "verify-determinism")


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
        "score": lambda s: s.ComputeScore(
            pb.ComputeScoreRequest(features=_features(), return_contributions=FLAGS["return-contributions"].value),
            timeout=FLAGS.timeout,
        ),
        "verify-determinism": lambda s: s.VerifyDeterminism(
            pb.VerifyDeterminismRequest(test_vector_id=FLAGS["test-vector-id"].value), timeout=FLAGS.timeout
        ),
    }
    with grpc.insecure_channel(FLAGS.addr) as channel:
        try:
            resp = calls[command](pb_grpc.InferenceServiceStub(channel))
        except grpc.RpcError as e:
            print(f"{command} failed: {e.code().name}: {e.details()}", file=sys.stderr)
            return 1
    print(json_format.MessageToJson(resp, preserving_proto_field_name=True, always_print_fields_with_no_presence=True))
    if command == "verify-determinism" and not resp.passed:
        print("verification FAILED", file=sys.stderr)
        return 1
    if command == "health" and resp.status != pb.HEALTH_STATUS_HEALTHY:
        print(f"sidecar is {pb.HealthStatus.Name(resp.status)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    app.run(main)
