"""inference.v1.InferenceService: a thin mapping from scorer results to protobufs.

All scoring, hashing and validation happens in sidecar.scorer (shared with
embedded use); this module only turns its results and exceptions into
responses and gRPC statuses, feeds the metrics, and owns the health state.
"""

import concurrent.futures
import datetime
import time

import grpc
import numpy as np
from absl import logging
from grpc_health.v1 import health
from grpc_health.v1 import health_pb2
from grpc_health.v1 import health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from inference.v1 import inference_pb2 as pb
from inference.v1 import inference_pb2_grpc as pb_grpc
from sidecar import determinism
from sidecar import features as F
from sidecar import metrics as metrics_lib
from sidecar import registry as registry_lib
from sidecar import reject_log
from sidecar import scorer as scorer_lib

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["InferenceService"].full_name
HEALTH_SERVICE_NAMES = ("", SERVICE_NAME)
OUTPUT_DIM = 1


def rfc3339(ts: float | None) -> str:
    if ts is None:
        return ""
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )


class Lifecycle:
    """Serving state as seen by gRPC health, HealthCheck, /health and the healthy gauge."""

    def __init__(self, health_servicer: health.HealthServicer, metrics: metrics_lib.Metrics):
        self._health = health_servicer
        self._metrics = metrics
        self._serving = False
        self.reason = "starting"
        for name in HEALTH_SERVICE_NAMES:
            health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        metrics.set_healthy(False)

    @property
    def serving(self) -> bool:
        return self._serving

    def set_serving(self) -> None:
        for name in HEALTH_SERVICE_NAMES:
            self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self._metrics.set_healthy(True)
        self.reason = ""
        self._serving = True

    def begin_shutdown(self, reason: str) -> None:
        self._serving = False
        self.reason = reason
        # Also makes later set() calls no-ops, so nothing can flip it back.
        self._health.enter_graceful_shutdown()
        self._metrics.set_healthy(False)


_STATES = {
    registry_lib.State.PENDING: pb.MODEL_STATE_PENDING,
    registry_lib.State.VERIFIED: pb.MODEL_STATE_VERIFIED,
    registry_lib.State.ACTIVE: pb.MODEL_STATE_ACTIVE,
    registry_lib.State.RETIRED: pb.MODEL_STATE_RETIRED,
    registry_lib.State.REJECTED: pb.MODEL_STATE_REJECTED,
}


def _determinism_config() -> pb.DeterminismConfig:
    s = determinism.settings()
    return pb.DeterminismConfig(
        force_cpu=determinism.ENVIRONMENT["CUDA_VISIBLE_DEVICES"] == "-1",
        random_seed=s["seed"],
        inter_op_parallelism=s["inter_op_threads"],
        intra_op_parallelism=s["intra_op_threads"],
        deterministic_ops=s["op_determinism"],
    )


def _block_height(metadata: pb.InferenceMetadata) -> int | None:
    # proto3 cannot tell 0 from unset, and a chain's heights start at 1, so 0
    # means "no height": serving it as height 0 could pick the wrong model.
    return metadata.block_height or None


def _version_and_hash(entry, scorer) -> tuple[str, str]:
    """What to report for the current model: the loaded one's own facts, else the plan's."""
    if scorer is not None:
        return scorer.model_version, scorer.model_hash
    return entry.version, entry.expected_hash or ""


class InferenceServicer(pb_grpc.InferenceServiceServicer):
    def __init__(
        self,
        registry: registry_lib.Registry,
        metrics: metrics_lib.Metrics,
        lifecycle: Lifecycle,
        *,
        timeout_s: float,
        started: float,
        inject_latency_s: float = 0.0,
    ):
        self._registry = registry
        self._metrics = metrics
        self._lifecycle = lifecycle
        self._timeout = timeout_s
        self._started = started
        self._inject = inject_latency_s
        self._determinism = _determinism_config()

    def _deadline(self, start: float, context: grpc.ServicerContext) -> float:
        deadline = start + self._timeout
        remaining = context.time_remaining()
        if remaining is not None and start + remaining < deadline:
            deadline = start + remaining
        return deadline

    @staticmethod
    def _reject(context, rpc: str, code: grpc.StatusCode, message: str, request_id: str = ""):
        rid = f" request_id={request_id!r}" if request_id else ""
        line = f"{rpc} rejected with {code.name}{rid} from {context.peer()}: {message}"
        if reject_log.REJECTS.admit(f"{rpc} {code.name}", line):
            logging.warning("%s", line)
        context.abort(code, message)

    def ComputeScore(self, request, context):  # pylint: disable=invalid-name
        start = time.monotonic()
        deadline = self._deadline(start, context)
        rid = request.metadata.request_id
        try:
            if self._inject:
                time.sleep(max(0.0, min(self._inject, deadline - time.monotonic())))
            # One C-level conversion of the repeated field; validate() copies it once more.
            s = self._registry.score(
                np.asarray(request.features, dtype=np.float32), request.return_contributions, deadline,
                _block_height(request.metadata),
            )
        except (F.FeatureError, registry_lib.InvalidHeight) as e:
            self._metrics.record_failure()
            self._reject(context, "ComputeScore", grpc.StatusCode.INVALID_ARGUMENT, str(e), rid)
        except registry_lib.NeedsHeight as e:
            self._metrics.record_failure()
            self._reject(context, "ComputeScore", grpc.StatusCode.FAILED_PRECONDITION, str(e), rid)
        except registry_lib.HeightOutOfRange as e:
            self._metrics.record_failure()
            self._reject(context, "ComputeScore", grpc.StatusCode.OUT_OF_RANGE, str(e), rid)
        except registry_lib.Unavailable as e:
            self._metrics.record_failure()
            self._reject(context, "ComputeScore", grpc.StatusCode.UNAVAILABLE, str(e), rid)
        except scorer_lib.DeadlineExceeded as e:
            self._metrics.record_failure()
            self._reject(context, "ComputeScore", grpc.StatusCode.DEADLINE_EXCEEDED, str(e), rid)
        except Exception as e:  # pylint: disable=broad-except
            self._metrics.record_failure()
            if reject_log.REJECTS.admit("ComputeScore INTERNAL", f"ComputeScore failed: {e!r}"):
                logging.exception("ComputeScore failed")
            context.abort(grpc.StatusCode.INTERNAL, f"inference failed: {e}")
        r = s.result
        resp = pb.ComputeScoreResponse(
            score=r.score,
            raw_score=r.raw_score,
            confidence=r.confidence,
            input_hash=r.input_hash,
            output_hash=r.output_hash,
            model_version=s.model_version,
            model_hash=s.model_hash,
            reason_codes=r.reason_codes,
            exact_output_hash=r.exact_output_hash,
        )
        if s.contributions is not None:
            for name, value in s.contributions.items():
                resp.feature_contributions[name] = value
        elapsed = time.monotonic() - start
        resp.compute_time_ms = int(elapsed * 1e3)
        self._metrics.record_success(elapsed, r.score)
        return resp

    def GetModelInfo(self, request, context):  # pylint: disable=invalid-name
        reg = self._registry
        entry, scorer = reg.current()
        facts = scorer.facts if scorer is not None else None
        resp = pb.GetModelInfoResponse(
            version=entry.version,
            hash=facts.model_hash if facts else entry.expected_hash or "",
            input_dim=F.FEATURE_DIM,
            output_dim=OUTPUT_DIM,
            determinism_config=self._determinism,
            highest_block_height=reg.highest_height,
            plan_error=reg.plan_error,
        )
        if facts:
            resp.tensorflow_version = facts.tensorflow_version
            resp.export_timestamp = facts.export_timestamp
            resp.pipeline_version = facts.pipeline_version
        for st in reg.statuses():
            resp.plan.add(
                version=st.entry.version,
                hash=st.model_hash,
                activation_height=st.entry.activation_height,
                state=_STATES[st.state],
                reason=st.reason,
            )
        return resp

    def HealthCheck(self, request, context):  # pylint: disable=invalid-name
        serving = self._lifecycle.serving
        current = self._registry.current()
        version, model_hash = _version_and_hash(*current)
        return pb.HealthCheckResponse(
            status=pb.HEALTH_STATUS_HEALTHY if serving else pb.HEALTH_STATUS_UNHEALTHY,
            model_loaded=current[1] is not None,
            model_version=version,
            model_hash=model_hash,
            uptime_seconds=int(time.monotonic() - self._started),
            last_inference_timestamp=rfc3339(self._metrics.last_success),
            error_message="" if serving else self._lifecycle.reason,
        )
    def GetMetrics(self, request, context):  # pylint: disable=invalid-name
        snap = self._metrics.snapshot()
        version, model_hash = _version_and_hash(*self._registry.current())
        return pb.GetMetricsResponse(
            total_inferences=snap["total"],
            successful_inferences=snap["successful"],
            failed_inferences=snap["failed"],
            average_latency_ms=snap["average_latency_ms"],
            p99_latency_ms=snap["p99_latency_ms"],
            model_version=version,
            model_hash=model_hash,
            uptime_seconds=int(time.monotonic() - self._started),
            memory_usage_mb=metrics_lib.rss_mb(),
            latency_histogram=snap["latency_histogram"],
        )

    def VerifyDeterminism(self, request, context):  # pylint: disable=invalid-name
        start = time.monotonic()
        deadline = self._deadline(start, context)
        rpc = "VerifyDeterminism"
        pick = {"version": request.model_version or None, "block_height": request.block_height or None}
        try:
            if request.custom_input:
                if request.test_vector_id:
                    self._reject(context, rpc, grpc.StatusCode.INVALID_ARGUMENT,
                                 "set either test_vector_id or custom_input, not both")
                v = self._registry.verify_custom(
                    np.asarray(request.custom_input, dtype=np.float32), request.expected_output_hash, deadline, **pick
                )
            else:
                if request.expected_output_hash:
                    self._reject(context, rpc, grpc.StatusCode.INVALID_ARGUMENT,
                                 "expected_output_hash needs custom_input; a test vector carries its own expectation")
                v = self._registry.verify_vector(request.test_vector_id or scorer_lib.DEFAULT_VECTOR, deadline, **pick)
        except F.FeatureError as e:
            self._reject(context, rpc, grpc.StatusCode.INVALID_ARGUMENT, f"custom_input: {e}")
        except registry_lib.InvalidHeight as e:
            self._reject(context, rpc, grpc.StatusCode.INVALID_ARGUMENT, str(e))
        except (scorer_lib.UnknownVector, registry_lib.UnknownVersion) as e:
            self._reject(context, rpc, grpc.StatusCode.NOT_FOUND, str(e))
        except registry_lib.Unavailable as e:
            self._reject(context, rpc, grpc.StatusCode.UNAVAILABLE, str(e))
        except scorer_lib.DeadlineExceeded as e:
            self._reject(context, rpc, grpc.StatusCode.DEADLINE_EXCEEDED, str(e))
        if not v.passed:
            logging.error("VerifyDeterminism FAILED for %s: %s", v.test_vector_id or "custom input", "; ".join(v.differences))
        return pb.VerifyDeterminismResponse(
            passed=v.passed,
            actual_output_hash=v.actual_output_hash,
            expected_output_hash=v.expected_output_hash,
            differences=v.differences,
            test_vector_id=v.test_vector_id,
        )

class BindError(RuntimeError):
    """The gRPC address could not be bound."""


def build(
    registry: registry_lib.Registry,
    metrics: metrics_lib.Metrics,
    *,
    address: str,
    timeout_s: float,
    started: float,
    workers: int = 32,
    max_concurrent_rpcs: int | None = None,
    enable_reflection: bool = False,
    inject_latency_s: float = 0.0,
    credentials: grpc.ServerCredentials | None = None,
) -> tuple[grpc.Server, Lifecycle, int]:
    """Builds and binds (but does not start) the server; returns it, its lifecycle and the bound port.

    With `credentials` (sidecar.tls) the port serves only TLS; without, plaintext."""
    server = grpc.server(
        concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="grpc"),
        maximum_concurrent_rpcs=max_concurrent_rpcs or None,
        # gRPC enables SO_REUSEPORT by default: a second sidecar would then
        # silently share the port instead of failing to start.
        options=[("grpc.so_reuseport", 0)],
    )
    reject_log.install_grpc_filter()
    health_servicer = health.HealthServicer()
    lifecycle = Lifecycle(health_servicer, metrics)
    pb_grpc.add_InferenceServiceServicer_to_server(
        InferenceServicer(
            registry, metrics, lifecycle, timeout_s=timeout_s, started=started, inject_latency_s=inject_latency_s
        ),
        server,
    )
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if enable_reflection:
        reflection.enable_server_reflection(
            (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME), server
        )
    try:
        port = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
    except RuntimeError as e:
        raise BindError(f"cannot listen on {address}: {e}") from None
    if not port:
        raise BindError(f"cannot listen on {address}")
    return server, lifecycle, port
