"""One sidecar with --enable-reflection and a --timeout no inference can meet.

--timeout=1us makes DEADLINE_EXCEEDED deterministic rather than a race: the
deadline is counted from the handler's entry and checked again before the
call is queued, and validating 768 features alone takes longer than 1 us.
The same process serves the reflection test, so only one extra TF process.
"""

import grpc
import pytest
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2
from grpc_reflection.v1alpha import reflection_pb2_grpc

from inference.v1 import inference_pb2 as pb
from inference.v1 import inference_pb2_grpc as pb_grpc
from ops import sidecar_process
from sidecar import golden


@pytest.fixture(scope="module")
def sidecar():
    with sidecar_process.serving("--enable-reflection", "--timeout=1us") as s:
        yield s


@pytest.fixture(scope="module")
def channel(sidecar):
    with sidecar.channel() as ch:
        yield ch


def list_services(channel) -> set[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    (resp,) = list(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
    return {s.name for s in resp.list_services_response.service}


def test_reflection_lists_services(channel):
    services = list_services(channel)
    assert {sidecar_process.SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name} <= services


def test_timeout_is_deadline_exceeded_and_counted(sidecar, channel):
    stub = pb_grpc.InferenceServiceStub(channel)
    features = golden.load_vectors(sidecar.model_path)[0]["features"]
    before, errors_before = stub.GetMetrics(pb.GetMetricsRequest()), sidecar.inference_errors()
    for contributions in (False, True):
        with pytest.raises(grpc.RpcError) as info:
            stub.ComputeScore(pb.ComputeScoreRequest(features=features, return_contributions=contributions))
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert "deadline" in info.value.details()
    after = stub.GetMetrics(pb.GetMetricsRequest())
    assert after.failed_inferences - before.failed_inferences == 2
    assert after.successful_inferences == before.successful_inferences == 0
    assert sidecar.inference_errors() - errors_before == 2
    sidecar.wait_for_log("ComputeScore rejected with DEADLINE_EXCEEDED")

    with pytest.raises(grpc.RpcError) as info:
        stub.VerifyDeterminism(pb.VerifyDeterminismRequest())
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED

    # Bad input is still reported as such, not as a timeout.
    with pytest.raises(grpc.RpcError) as info:
        stub.ComputeScore(pb.ComputeScoreRequest(features=[0.5] * 10))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    # Calls that do not infer are unaffected.
    assert stub.HealthCheck(pb.HealthCheckRequest()).status == pb.HEALTH_STATUS_HEALTHY
    assert stub.GetModelInfo(pb.GetModelInfoRequest()).input_dim == 768


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
