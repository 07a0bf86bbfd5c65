"""Every RPC of one real sidecar process, shared by all tests in this module.

Expectations come from the model directory's golden_vectors.json and
export_metadata.json and from the model helper's scoring/hashing code, never
from the server itself. Tests run in file order against the same process;
test_health_before_first_inference must stay the first to call ComputeScore.
"""

import concurrent.futures
import datetime
import json
import math
import os
import re
import subprocess
import threading

import grpc
import numpy as np
import pytest
from google.protobuf import json_format
from grpc_health.v1 import health_pb2
from grpc_health.v1 import health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2
from grpc_reflection.v1alpha import reflection_pb2_grpc

from inference.v1 import inference_pb2 as pb
from inference.v1 import inference_pb2_grpc as pb_grpc
from ops import sidecar_process
from sidecar import determinism
from sidecar import features as F
from sidecar import golden
from sidecar import hashing
from sidecar import scoring
from tests import contract_client

FAMILIES = {
    "veid_inference",  # exposed as veid_inference_total
    "veid_inference_latency_seconds",
    "veid_inference_model_info",
    "veid_inference_model_activation_height",
    "veid_inference_highest_block_height",
    "veid_inference_upgrade_alert_blocks",
    "veid_inference_upgrade_plan_refused",
    "veid_inference_model_rejections",  # no samples until a plan entry is rejected
    "veid_inference_sidecar_healthy",
    "veid_inference_score_distribution",
    "veid_tls_reloads",  # exposed as veid_tls_reloads_total; no samples until the TLS files are re-read
    "veid_tls_material_stale",
}


@pytest.fixture(scope="module")
def sidecar():
    # Every rejection in full: test_bad_input_is_invalid_argument reads each one's log line.
    with sidecar_process.serving("--reject-log-interval=0") as s:
        yield s


@pytest.fixture(scope="module")
def channel(sidecar):
    with sidecar.channel() as ch:
        yield ch


@pytest.fixture(scope="module")
def stub(channel):
    return pb_grpc.InferenceServiceStub(channel)


@pytest.fixture(scope="module")
def vectors(sidecar):
    return golden.load_vectors(sidecar.model_path)


@pytest.fixture(scope="module")
def metadata(sidecar):
    with open(os.path.join(sidecar.model_path, hashing.METADATA_FILE), encoding="utf-8") as f:
        return json.load(f)


def by_name(vectors, name):
    return next(v for v in vectors if v["name"] == name)


def stable_bytes(resp: pb.ComputeScoreResponse) -> bytes:
    """The response as bytes, minus the one field allowed to vary."""
    c = pb.ComputeScoreResponse()
    c.CopyFrom(resp)
    c.ClearField("compute_time_ms")
    return c.SerializeToString(deterministic=True)


def rpc_error(fn, *args, **kwargs) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        fn(*args, **kwargs)
    return info.value


def sample(families, family, sample_name, **labels) -> float:
    for s in families[family].samples:
        if s.name == sample_name and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    raise AssertionError(f"no sample {sample_name}{labels} in {family}")


def assert_matches_vector(resp, want, metadata):
    name = want["name"]
    assert resp.output_hash == want["output_hash"], name
    assert resp.exact_output_hash == want["exact_output_hash"], name
    assert resp.input_hash == want["input_hash"], name
    assert hashing.float32_hex(resp.raw_score) == want["raw_score_bits"], name
    assert resp.score == want["score"], name
    assert hashing.float32_hex(resp.confidence) == want["confidence_bits"], name
    assert list(resp.reason_codes) == want["reason_codes"], name
    assert resp.model_version == metadata["version"] and resp.model_hash == metadata["model_hash"], name
    # And the model helper's scoring of the returned raw score agrees field by field.
    r = scoring.evaluate(F.validate(want["features"]), np.float32(resp.raw_score))
    assert (r.output_hash, r.exact_output_hash, r.input_hash) == (
        resp.output_hash, resp.exact_output_hash, resp.input_hash), name
    assert (r.score, hashing.float32_hex(r.confidence), list(r.reason_codes)) == (
        resp.score, hashing.float32_hex(resp.confidence), list(resp.reason_codes)), name


# -- HealthCheck / health / HTTP ---------------------------------------------


def test_health_before_first_inference(stub, metadata):
    h = stub.HealthCheck(pb.HealthCheckRequest())
    assert h.status == pb.HEALTH_STATUS_HEALTHY
    assert h.model_loaded
    assert (h.model_version, h.model_hash) == (metadata["version"], metadata["model_hash"])
    assert h.uptime_seconds >= 0
    assert h.last_inference_timestamp == ""
    assert h.error_message == ""


def test_health_after_inference_has_rfc3339_timestamp(stub, vectors):
    before = datetime.datetime.now(datetime.timezone.utc)
    stub.ComputeScore(pb.ComputeScoreRequest(features=vectors[0]["features"]))
    h = stub.HealthCheck(pb.HealthCheckRequest())
    ts = h.last_inference_timestamp
    assert ts.endswith("Z"), ts
    when = datetime.datetime.fromisoformat(ts.replace("Z", "+00:00"))
    assert when.utcoffset() == datetime.timedelta(0)
    assert before - datetime.timedelta(seconds=1) <= when <= datetime.datetime.now(datetime.timezone.utc)


def test_startup_heap_is_frozen_before_serving(sidecar):
    # Otherwise a full collection would walk TensorFlow's objects mid-request.
    log = sidecar.log()
    m = re.search(r"froze (\d+) start-up objects for the garbage collector", log)
    assert m and int(m.group(1)) > 100_000, log
    assert log.index(m.group(0)) < log.index("SERVING inference.v1")


def test_grpc_health_serving(channel):
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", sidecar_process.SERVICE_NAME):
        assert health.Check(health_pb2.HealthCheckRequest(service=service)).status == (
            health_pb2.HealthCheckResponse.SERVING)
    err = rpc_error(health.Check, health_pb2.HealthCheckRequest(service="no.such.Service"))
    assert err.code() == grpc.StatusCode.NOT_FOUND


def test_http_health_and_unknown_paths(sidecar):
    assert sidecar_process.http_get(sidecar.metrics_url + "/health")[::2] == (200, b"OK\n")
    assert sidecar_process.http_get(sidecar.metrics_url + "/nope")[0] == 404
    assert sidecar_process.http_get(sidecar.metrics_url + "/")[0] == 404


def test_reflection_is_off_by_default(channel):
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    with pytest.raises(grpc.RpcError) as info:
        list(responses)
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED


# -- GetModelInfo ---------------------------------------------------------------


def test_model_info(stub, sidecar, metadata):
    info = stub.GetModelInfo(pb.GetModelInfoRequest())
    assert info.version == metadata["version"] == "v1.0.0"
    # The hash the server reports is the one of the files it serves.
    assert info.hash == metadata["model_hash"] == hashing.model_hash(sidecar.model_path)
    assert (info.input_dim, info.output_dim) == (F.FEATURE_DIM, 1)
    assert info.tensorflow_version == metadata["tensorflow_version"]
    assert info.export_timestamp == metadata["export_timestamp"]
    assert info.pipeline_version == metadata["pipeline_version"]
    s = determinism.settings()
    d = info.determinism_config
    assert d.force_cpu is True
    assert d.random_seed == s["seed"] == 42
    assert (d.inter_op_parallelism, d.intra_op_parallelism) == (s["inter_op_threads"], s["intra_op_threads"])
    assert d.deterministic_ops is s["op_determinism"] is True


# -- ComputeScore ---------------------------------------------------------------


def test_every_golden_vector(stub, vectors, metadata):
    assert len(vectors) >= 8
    for want in vectors:
        resp = stub.ComputeScore(pb.ComputeScoreRequest(features=want["features"]))
        assert_matches_vector(resp, want, metadata)
        assert resp.compute_time_ms >= 0
        assert not resp.feature_contributions, "contributions were not asked for"


def test_contributions_match_golden_bits_and_repeat(stub, vectors, metadata):
    for want in vectors:
        req = pb.ComputeScoreRequest(features=want["features"], return_contributions=True)
        first = stub.ComputeScore(req)
        assert_matches_vector(first, want, metadata)
        assert set(first.feature_contributions) == set(F.GROUP_NAMES)
        got = {g: hashing.float32_hex(v) for g, v in first.feature_contributions.items()}
        assert got == want["contribution_bits"], want["name"]
        for _ in range(3):
            assert stable_bytes(stub.ComputeScore(req)) == stable_bytes(first), want["name"]


def test_metadata_does_not_change_the_result(stub, vectors):
    want = vectors[0]
    plain = stub.ComputeScore(pb.ComputeScoreRequest(features=want["features"]))
    tagged = stub.ComputeScore(pb.ComputeScoreRequest(
        features=want["features"],
        metadata=pb.InferenceMetadata(account_address="veid1abc", block_height=123456, request_id="r-1",
                                      validator_address="veidvaloper1xyz"),
    ))
    assert stable_bytes(tagged) == stable_bytes(plain)


BAD_INPUTS = [
    ("empty", [], "expected 768 features, got 0"),
    ("767", [0.5] * 767, "expected 768 features, got 767"),
    ("769", [0.5] * 769, "expected 768 features, got 769"),
    ("100000", [0.5] * 100000, "expected 768 features, got 100000"),
    ("nan", [0.5] * 17 + [math.nan] + [0.5] * 750, "feature 17 is NaN"),
    ("+inf", [math.inf] + [0.5] * 767, "feature 0 is +Inf"),
    ("-inf", [0.5] * 767 + [-math.inf], "feature 767 is -Inf"),
]


@pytest.mark.parametrize("label, values, message", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_is_invalid_argument(stub, sidecar, label, values, message):
    request_id = f"bad-{label}"
    for contributions in (False, True):
        err = rpc_error(stub.ComputeScore, pb.ComputeScoreRequest(
            features=values, return_contributions=contributions,
            metadata=pb.InferenceMetadata(request_id=request_id)))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert err.details() == message
    sidecar.wait_for_log(f"ComputeScore rejected with INVALID_ARGUMENT request_id='{request_id}'")
    assert message in sidecar.log()


def test_bad_input_does_not_change_later_results(stub, vectors):
    def all_golden():
        return [stable_bytes(stub.ComputeScore(pb.ComputeScoreRequest(features=v["features"], return_contributions=c)))
                for v in vectors for c in (False, True)]

    before = all_golden()
    for _, values, _ in BAD_INPUTS:
        rpc_error(stub.ComputeScore, pb.ComputeScoreRequest(features=values))
        if values:  # an empty custom_input is the empty request: the default vector
            rpc_error(stub.VerifyDeterminism, pb.VerifyDeterminismRequest(custom_input=values))
    rpc_error(stub.VerifyDeterminism, pb.VerifyDeterminismRequest(test_vector_id="no_such_vector"))
    assert all_golden() == before


def test_concurrent_identical_requests_give_identical_bytes(stub, vectors):
    req = pb.ComputeScoreRequest(features=by_name(vectors, "high_quality_verification")["features"],
                                 return_contributions=True)
    baseline = stable_bytes(stub.ComputeScore(req))
    barrier = threading.Barrier(16)

    def worker(n):
        barrier.wait()
        return [stable_bytes(stub.ComputeScore(req)) for _ in range(n)]

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        results = [b for chunk in pool.map(worker, [13] * 8 + [12] * 8) for b in chunk]
    assert len(results) == 200
    assert set(results) == {baseline}


# -- VerifyDeterminism ----------------------------------------------------------


def test_verify_default_vector(stub, vectors):
    want = by_name(vectors, "high_quality_verification")
    v = stub.VerifyDeterminism(pb.VerifyDeterminismRequest())
    assert v.passed
    assert v.test_vector_id == "high_quality_verification"
    assert v.actual_output_hash == v.expected_output_hash == want["output_hash"]
    assert list(v.differences) == []


def test_verify_every_vector(stub, vectors):
    for want in vectors:
        v = stub.VerifyDeterminism(pb.VerifyDeterminismRequest(test_vector_id=want["name"]))
        assert v.passed and v.test_vector_id == want["name"], v
        assert v.actual_output_hash == v.expected_output_hash == want["output_hash"]


def test_verify_unknown_vector(stub):
    err = rpc_error(stub.VerifyDeterminism, pb.VerifyDeterminismRequest(test_vector_id="no_such_vector"))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert "no_such_vector" in err.details() and "high_quality_verification" in err.details()


def test_verify_custom_input_with_expectation(stub, vectors):
    want = by_name(vectors, "medium_quality_verification")
    ok = stub.VerifyDeterminism(pb.VerifyDeterminismRequest(
        custom_input=want["features"], expected_output_hash=want["output_hash"]))
    assert ok.passed and list(ok.differences) == []
    assert ok.actual_output_hash == ok.expected_output_hash == want["output_hash"]

    other = by_name(vectors, "low_quality_document")["output_hash"]
    bad = stub.VerifyDeterminism(pb.VerifyDeterminismRequest(
        custom_input=want["features"], expected_output_hash=other))
    assert not bad.passed
    assert bad.actual_output_hash == want["output_hash"] and bad.expected_output_hash == other
    assert any(other in d and want["output_hash"] in d for d in bad.differences), bad.differences

    exact = stub.VerifyDeterminism(pb.VerifyDeterminismRequest(
        custom_input=want["features"], expected_output_hash=want["exact_output_hash"]))
    assert not exact.passed
    assert any("exact_output_hash" in d for d in exact.differences)


def test_verify_custom_input_without_expectation_runs_twice(stub, vectors):
    want = by_name(vectors, "edge_all_ones")
    v = stub.VerifyDeterminism(pb.VerifyDeterminismRequest(custom_input=want["features"]))
    assert v.passed
    assert v.actual_output_hash == want["output_hash"] and v.expected_output_hash == ""
    assert any("no expected_output_hash" in d for d in v.differences)


@pytest.mark.parametrize(
    "request_kwargs, code, fragment",
    [
        ({"custom_input": [0.5] * 767}, grpc.StatusCode.INVALID_ARGUMENT, "custom_input: expected 768 features, got 767"),
        ({"custom_input": [math.nan] * 768}, grpc.StatusCode.INVALID_ARGUMENT, "custom_input: feature 0 is NaN"),
        ({"custom_input": [0.5] * 768, "test_vector_id": "all_zeros"}, grpc.StatusCode.INVALID_ARGUMENT, "not both"),
        ({"expected_output_hash": "ab" * 32}, grpc.StatusCode.INVALID_ARGUMENT, "needs custom_input"),
    ],
    ids=["short", "nan", "both", "hash-without-input"],
)
def test_verify_bad_requests(stub, request_kwargs, code, fragment):
    err = rpc_error(stub.VerifyDeterminism, pb.VerifyDeterminismRequest(**request_kwargs))
    assert err.code() == code and fragment in err.details(), err.details()


# -- GetMetrics and /metrics ------------------------------------------------------


def test_metrics_move_with_successes_and_errors(stub, sidecar, vectors, metadata):
    m0, p0 = stub.GetMetrics(pb.GetMetricsRequest()), sidecar.metrics()
    for v in vectors[:3]:
        stub.ComputeScore(pb.ComputeScoreRequest(features=v["features"]))
    for values in ([], [math.nan] * 768):
        rpc_error(stub.ComputeScore, pb.ComputeScoreRequest(features=values))
    # Not inferences: must not move the counters.
    stub.GetModelInfo(pb.GetModelInfoRequest())
    stub.HealthCheck(pb.HealthCheckRequest())
    m1, p1 = stub.GetMetrics(pb.GetMetricsRequest()), sidecar.metrics()

    assert m1.successful_inferences - m0.successful_inferences == 3
    assert m1.failed_inferences - m0.failed_inferences == 2
    assert m1.total_inferences - m0.total_inferences == 5
    assert m1.total_inferences == m1.successful_inferences + m1.failed_inferences

    ok = lambda p: sample(p, "veid_inference", "veid_inference_total", status="success")  # noqa: E731
    err = lambda p: sample(p, "veid_inference", "veid_inference_total", status="error")  # noqa: E731
    assert (ok(p1) - ok(p0), err(p1) - err(p0)) == (3, 2)
    assert (ok(p1), err(p1)) == (m1.successful_inferences, m1.failed_inferences)

    assert set(p1) == FAMILIES
    assert p1["veid_inference"].type == "counter"
    assert p1["veid_inference_latency_seconds"].type == "histogram"
    assert p1["veid_inference_score_distribution"].type == "histogram"
    assert p1["veid_inference_model_info"].type == "gauge"
    # Without --upgrade-plan: a one-entry plan, active from height 0.
    assert sample(p1, "veid_inference_model_info", "veid_inference_model_info",
                  version=metadata["version"], hash=metadata["model_hash"], activation_height="0", state="active") == 1
    assert sample(p1, "veid_inference_sidecar_healthy", "veid_inference_sidecar_healthy") == 1

    # GetMetrics' histogram is the Prometheus one: same buckets, same counts.
    prom_buckets = {s.labels["le"]: s.value for s in p1["veid_inference_latency_seconds"].samples
                    if s.name.endswith("_bucket")}
    assert dict(m1.latency_histogram) == prom_buckets
    assert float(min((k for k in prom_buckets if k != "+Inf"), key=float)) < 0.001, "needs sub-ms buckets"
    assert max(float(k) for k in prom_buckets if k != "+Inf") == 2.0
    counts = [m1.latency_histogram[k] for k in sorted(m1.latency_histogram, key=float)]
    assert counts == sorted(counts) and counts[-1] == m1.successful_inferences
    assert sample(p1, "veid_inference_latency_seconds", "veid_inference_latency_seconds_count") == counts[-1]
    scores = {s.labels["le"]: s.value for s in p1["veid_inference_score_distribution"].samples
              if s.name.endswith("_bucket")}
    assert scores["100.0"] == scores["+Inf"] == m1.successful_inferences
    assert (sample(p1, "veid_inference_score_distribution", "veid_inference_score_distribution_sum")
            - sample(p0, "veid_inference_score_distribution", "veid_inference_score_distribution_sum")
            == sum(v["score"] for v in vectors[:3]))

    assert 0 < m1.average_latency_ms and 0 < m1.p99_latency_ms < 2000
    assert (m1.model_version, m1.model_hash) == (metadata["version"], metadata["model_hash"])
    assert m1.uptime_seconds >= 0
    assert m1.memory_usage_mb > 100, "TensorFlow alone is hundreds of MB of RSS"


# -- the operator client ----------------------------------------------------------


def run_client(target: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        sidecar_process.python_command("sidecar.client") + [f"--addr={target}", *args],
        env=sidecar_process.child_env(), capture_output=True, text=True, timeout=60,
    )


def test_client_commands(sidecar, vectors, metadata, tmp_path):
    r = run_client(sidecar.target, "model-info")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert (info["version"], info["hash"], info["input_dim"]) == (metadata["version"], metadata["model_hash"], 768)

    r = run_client(sidecar.target, "health")
    assert r.returncode == 0 and json.loads(r.stdout)["status"] == "HEALTH_STATUS_HEALTHY", r.stderr

    want = by_name(vectors, "missing_face_embedding")
    r = run_client(sidecar.target, "score", "--vector=missing_face_embedding", f"--model-path={sidecar.model_path}",
                   "--return-contributions")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["output_hash"], out["exact_output_hash"], out["score"]) == (
        want["output_hash"], want["exact_output_hash"], want["score"])
    assert set(out["feature_contributions"]) == set(F.GROUP_NAMES)

    features = tmp_path / "features.json"
    features.write_text(json.dumps(want["features"]))
    r = run_client(sidecar.target, "score", f"--features-json={features}")
    assert r.returncode == 0 and json.loads(r.stdout)["output_hash"] == want["output_hash"], r.stderr

    r = run_client(sidecar.target, "verify-determinism", "--test-vector-id=all_zeros")
    assert r.returncode == 0 and json.loads(r.stdout)["passed"] is True, r.stderr

    r = run_client(sidecar.target, "metrics")
    assert r.returncode == 0 and int(json.loads(r.stdout)["total_inferences"]) > 0, r.stderr


def test_client_failures_exit_non_zero(sidecar, tmp_path):
    r = run_client(sidecar.target, "verify-determinism", "--test-vector-id=no_such_vector")
    assert r.returncode != 0 and "NOT_FOUND" in r.stderr and "no_such_vector" in r.stderr

    short = tmp_path / "short.json"
    short.write_text(json.dumps([0.5] * 767))
    r = run_client(sidecar.target, "score", f"--features-json={short}")
    assert r.returncode != 0 and "INVALID_ARGUMENT: expected 768 features, got 767" in r.stderr

    r = run_client(sidecar.target, "bogus-command")
    assert r.returncode != 0

    r = run_client(f"127.0.0.1:{sidecar_process.free_port()}", "--timeout=2s", "health")  # nothing listens
    assert r.returncode != 0 and "UNAVAILABLE" in r.stderr


# -- the independently written contract --------------------------------------------


@pytest.fixture(scope="module")
def contract():
    return contract_client.Contract(sidecar_process.tmpdir("contract-"))


def decode_both(contract, raw: bytes, name: str) -> tuple[dict, dict]:
    ours = getattr(pb, name).FromString(raw)
    theirs = contract.message(name).FromString(raw)
    assert contract_client.unknown_field_numbers(theirs) == [], f"{name}: fields the contract does not know"
    opts = dict(preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
    return json_format.MessageToDict(ours, **opts), json_format.MessageToDict(theirs, **opts)


def test_contract_compute_score(contract, channel, vectors, metadata):
    Req = contract.message("ComputeScoreRequest")
    for want in vectors:
        req = Req(features=want["features"], return_contributions=True)
        req.metadata.request_id = "contract"
        raw, resp = contract.call(channel, "ComputeScore", req)
        assert_matches_vector(resp, want, metadata)
        got = {g: hashing.float32_hex(v) for g, v in resp.feature_contributions.items()}
        assert got == want["contribution_bits"]
        ours, theirs = decode_both(contract, raw, "ComputeScoreResponse")
        assert ours == theirs


def test_contract_other_rpcs(contract, channel, stub, vectors, metadata):
    stub.ComputeScore(pb.ComputeScoreRequest(features=vectors[0]["features"]))
    rpc_error(stub.ComputeScore, pb.ComputeScoreRequest(features=[1.0]))
    info_raw, info = contract.call(channel, "GetModelInfo", contract.message("GetModelInfoRequest")())
    assert (info.version, info.hash, info.input_dim, info.output_dim) == (
        metadata["version"], metadata["model_hash"], 768, 1)
    assert (info.tensorflow_version, info.export_timestamp, info.pipeline_version) == (
        metadata["tensorflow_version"], metadata["export_timestamp"], metadata["pipeline_version"])
    d = info.determinism_config
    assert (d.force_cpu, d.random_seed, d.inter_op_parallelism, d.intra_op_parallelism, d.deterministic_ops) == (
        True, 42, 1, 1, True)

    health_raw, health = contract.call(channel, "HealthCheck", contract.message("HealthCheckRequest")())
    assert health.status == contract.pool.FindEnumTypeByName("inference.v1.HealthStatus").values_by_name[
        "HEALTH_STATUS_HEALTHY"].number
    assert health.model_loaded and (health.model_version, health.model_hash) == (
        metadata["version"], metadata["model_hash"])
    assert health.last_inference_timestamp.endswith("Z")

    metrics_raw, metrics = contract.call(channel, "GetMetrics", contract.message("GetMetricsRequest")())
    assert metrics.total_inferences == metrics.successful_inferences + metrics.failed_inferences > 0
    assert metrics.failed_inferences > 0 and metrics.memory_usage_mb > 100
    assert (metrics.model_version, metrics.model_hash) == (metadata["version"], metadata["model_hash"])
    assert metrics.latency_histogram["+Inf"] == metrics.successful_inferences

    want = by_name(vectors, "low_quality_document")
    verify_raw, verify = contract.call(channel, "VerifyDeterminism", contract.message("VerifyDeterminismRequest")(
        custom_input=want["features"], expected_output_hash=want["output_hash"]))
    assert verify.passed and verify.actual_output_hash == verify.expected_output_hash == want["output_hash"]
    named_raw, named = contract.call(channel, "VerifyDeterminism", contract.message("VerifyDeterminismRequest")(
        test_vector_id="all_zeros"))
    assert named.passed and named.test_vector_id == "all_zeros"

    for raw, name in [(info_raw, "GetModelInfoResponse"), (health_raw, "HealthCheckResponse"),
                      (metrics_raw, "GetMetricsResponse"), (verify_raw, "VerifyDeterminismResponse"),
                      (named_raw, "VerifyDeterminismResponse")]:
        ours, theirs = decode_both(contract, raw, name)
        assert ours == theirs, name


def test_contract_matches_real_stub_descriptors(contract):
    # Independent check of numbers and types, message by message, so a change
    # to either file is reported with the field that moved.
    for name, real in pb.DESCRIPTOR.message_types_by_name.items():
        copy = contract.pool.FindMessageTypeByName(real.full_name)
        want = {(f.name, f.number, f.type, f.is_repeated) for f in copy.fields}
        assert {(f.name, f.number, f.type, f.is_repeated) for f in real.fields} == want, name
    real_methods = {(m.name, m.input_type.full_name, m.output_type.full_name)
                    for m in pb.DESCRIPTOR.services_by_name["InferenceService"].methods}
    assert real_methods == {(m.name, m.input_type.full_name, m.output_type.full_name) for m in contract.service.methods}


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
