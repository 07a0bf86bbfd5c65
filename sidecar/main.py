"""veid-sidecar: serves inference.v1 next to a validator's chain node.

Start-up runs every check (determinism environment, model hash, versions,
golden vectors) before any port is bound, so a sidecar that would disagree
with the network never serves anything. SIGTERM/SIGINT flip health to
NOT_SERVING, finish in-flight calls within --grace-period and exit 0.
"""

import gc
import os
import re
import signal
import sys
import threading
import time

_HUP_DURING_START_UP = threading.Event()


def _defer_hup(signum, frame):  # pylint: disable=unused-argument
    # SIGHUP's default action ends the process: a reloader or an operator
    # following the runbook during the seconds of start-up would take the
    # sidecar down. The plan is re-read once start-up is done instead.
    _HUP_DURING_START_UP.set()


if __name__ == "__main__":
    # Before the imports below (numpy, gRPC, ...): seconds on a busy machine.
    signal.signal(signal.SIGHUP, _defer_hup)
    # gRPC core reads its log level once, when it is imported, and at its
    # default it logs one line per refused TLS handshake: anyone who reaches
    # the port could grow the log by ~800 lines/s per client. Errors still
    # show; an operator chasing a handshake sets GRPC_VERBOSITY=INFO.
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

# pylint: disable=wrong-import-position
from absl import app
from absl import flags
from absl import logging

from sidecar import determinism
from sidecar import duration
from sidecar import http_server
from sidecar import plan as plan_lib
from sidecar import registry as registry_lib
from sidecar import reject_log
from sidecar import scorer as scorer_lib
from sidecar import tls as tls_lib


flags.DEFINE_string(
    "grpc-addr", "127.0.0.1:50051",
    "host:port for gRPC; an empty host listens on every interface. A non-loopback address needs the TLS files "
    "(--tls-cert-file etc.) or --require-mtls=false.",
)
flags.DEFINE_string("metrics-addr", ":9090", "host:port for /metrics and /health; an empty host listens on every interface.")
flags.DEFINE_string(
    "model-path",
    scorer_lib.workspace_path(scorer_lib.DEFAULT_MODEL_PATH),
    "Model directory (a real directory, not symlinks). Default: $BUILD_WORKSPACE_DIRECTORY/models/trust_score "
    "under `bazel run`, otherwise models/trust_score relative to the working directory.",
)
flags.DEFINE_string("model-version", "v1.0.0", "Model version the sidecar must load; start-up fails on any other.")
flags.DEFINE_string(
    "expected-hash", "", "Pin the model hash (64 hex digits). Empty: only check against export_metadata.json."
)
flags.DEFINE_string(
    "upgrade-plan", "",
    "Upgrade plan (JSON) naming the model for each block height; replaces --model-path, --model-version and "
    "--expected-hash. Re-read on SIGHUP and when it changes.",
)
duration.DEFINE_duration("plan-poll-interval", "10s", "How often the upgrade plan file is checked for changes.")
flags.DEFINE_integer(
    "retire-after-blocks", registry_lib.DEFAULT_RETIRE_AFTER_BLOCKS,
    "Unload a model once its successor has been active for this many blocks (a replay loads it again).",
)
flags.DEFINE_integer("max-loaded-models", registry_lib.DEFAULT_MAX_LOADED, "Upper bound on models loaded at once.")
flags.DEFINE_integer(
    "start-height", -1,
    "Block height the chain node is at (or will ask for first). Its model is loaded and self-checked before serving, "
    "and the sidecar refuses to start if it fails; other entries that fail are only rejected. It also anchors "
    "--max-blocks-ahead before the first request. -1: unknown; the newest entry that verifies is loaded first.",
)
flags.DEFINE_integer(
    "max-blocks-ahead", registry_lib.DEFAULT_MAX_BLOCKS_AHEAD,
    "A ComputeScore more than this many blocks above the highest height served (or --start-height) gets "
    "OUT_OF_RANGE, so one request cannot move the heights a plan change may no longer rewrite.",
)
duration.DEFINE_duration(
    "model-idle-time", f"{registry_lib.DEFAULT_IDLE_S:g}s",
    f"A model that served a request this recently (or within the last {registry_lib.DEFAULT_IDLE_REQUESTS} "
    "requests) is in use: it is neither retired nor unloaded for staging.",
)
flags.DEFINE_integer(
    "upgrade-alert-blocks", 100,
    "Published on /metrics: how many blocks before its activation a plan entry must be verified.",
)
flags.DEFINE_bool("force-cpu", True, "Run on CPU only. Must be true: GPU results are not reproducible across validators.")
flags.DEFINE_integer(
    "random-seed", determinism.SEED, f"Random seed; part of the determinism contract, so only {determinism.SEED} is accepted."
)
flags.DEFINE_enum("log-level", "info", ["debug", "info", "warn", "error"], "Log verbosity.")
flags.DEFINE_bool("enable-reflection", False, "Serve gRPC server reflection (for grpcurl and friends).")
duration.DEFINE_duration("timeout", "2s", "Bound on queueing + compute of one ComputeScore/VerifyDeterminism call.")
duration.DEFINE_duration("grace-period", "10s", "On SIGTERM/SIGINT, how long in-flight calls may take to finish.")
flags.DEFINE_integer("grpc-workers", 32, "Threads accepting gRPC calls (inference itself runs on one thread).")
flags.DEFINE_integer(
    "max-concurrent-rpcs", 1024, "Calls accepted at once before RESOURCE_EXHAUSTED; 0 means unlimited."
)
duration.DEFINE_duration(
    "testing-inject-latency", "0s", "TESTING ONLY: sleep this long (within --timeout) in every ComputeScore call."
)

FLAGS = flags.FLAGS
# Defined next to the code they configure; listed in --help with the rest.
flags.adopt_module_key_flags(http_server)
flags.adopt_module_key_flags(reject_log)
flags.adopt_module_key_flags(tls_lib)

_ADDRESS = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]*):(?P<port>\d{1,5})$")
_LOG_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}


def parse_address(text: str) -> tuple[str, int]:
    """'host:port', '[v6]:port' or ':port' -> (host without brackets, port)."""
    m = _ADDRESS.match(text)
    if not m or int(m.group("port")) > 65535:
        raise ValueError(f"{text!r} is not host:port (e.g. :50051, 127.0.0.1:50051, [::1]:50051)")
    return m.group("host").strip("[]"), int(m.group("port"))


def _valid_address(text: str) -> bool:
    try:
        parse_address(text)
    except ValueError:
        return False
    return True


flags.register_validator("grpc-addr", _valid_address, "must be host:port, e.g. :50051 or 127.0.0.1:50051")
flags.register_validator("metrics-addr", _valid_address, "must be host:port, e.g. :9090 or 127.0.0.1:9090")
flags.register_validator(
    "random-seed",
    lambda v: v == determinism.SEED,
    f"contradicts the determinism contract: the seed is part of consensus and must be {determinism.SEED}",
)
flags.register_validator(
    "force-cpu", lambda v: v, "false is not supported: only CPU inference is bit-identical across validators"
)
flags.register_validator(
    "expected-hash", lambda v: v == "" or scorer_lib.is_model_hash(v), "must be empty or 64 lowercase hex digits"
)
flags.register_validator("model-version", bool, "must not be empty")
flags.register_validator("timeout", lambda v: v > 0, "must be positive")
flags.register_validator("grpc-workers", lambda v: 1 <= v <= 1024, "must be between 1 and 1024")
flags.register_validator("max-concurrent-rpcs", lambda v: v >= 0, "must be >= 0")
flags.register_validator("plan-poll-interval", lambda v: v > 0, "must be positive")
flags.register_validator("retire-after-blocks", lambda v: v >= 0, "must be >= 0")
flags.register_validator("max-loaded-models", lambda v: 1 <= v <= 16, "must be between 1 and 16")
flags.register_validator("upgrade-alert-blocks", lambda v: v >= 0, "must be >= 0")
flags.register_validator("start-height", lambda v: -1 <= v <= plan_lib.MAX_HEIGHT, "must be -1 (unknown) or a height")
flags.register_validator("max-blocks-ahead", lambda v: v >= 0, "must be >= 0")
flags.register_validator("model-idle-time", lambda v: v >= 0, "must be >= 0")


def _grpc_address(text: str) -> str:
    host, port = parse_address(text)
    if not host:
        host = "[::]"
    elif ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}"


def _freeze_startup_heap() -> None:
    # TensorFlow's import leaves ~320,000 objects that live as long as the
    # process. Once enough new objects have survived, Python's full collection
    # walks all of them (0.26 s here, holding the GIL, so every call in flight
    # stalls). Frozen objects are never walked again.
    t0 = time.monotonic()
    gc.collect()
    gc.freeze()
    logging.info("froze %d start-up objects for the garbage collector (%.3fs)", gc.get_freeze_count(),
                 time.monotonic() - t0)


def _plan() -> plan_lib.Plan:
    """The upgrade plan file, or the one-model plan of --model-path."""
    path = FLAGS["upgrade-plan"].value
    if not path:
        return plan_lib.single(
            FLAGS["model-path"].value, FLAGS["model-version"].value, FLAGS["expected-hash"].value or None
        )
    clash = [f"--{n}" for n in ("model-path", "model-version", "expected-hash") if FLAGS[n].present]
    if clash:
        raise plan_lib.PlanError(f"--upgrade-plan names the models and their hashes; drop {', '.join(clash)}")
    return plan_lib.load(scorer_lib.workspace_path(path))


def _stop_during_start_up(signum, frame):  # pylint: disable=unused-argument
    # As a container's PID 1 the sidecar gets no default action for SIGTERM:
    # without this, an engine stopping it during the seconds of start-up
    # would wait out its grace period and kill it.
    logging.info("received %s during start-up: exiting before serving", signal.Signals(signum).name)
    raise SystemExit(0)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    logging.set_verbosity(_LOG_LEVELS[FLAGS["log-level"].value])
    started = time.monotonic()
    signal.signal(signal.SIGTERM, _stop_during_start_up)
    signal.signal(signal.SIGINT, _stop_during_start_up)
    # Imported here, not at the top, only to keep `--help` and flag errors fast;
    # none of these imports TensorFlow.
    from sidecar import metrics as metrics_lib  # pylint: disable=import-outside-toplevel
    from sidecar import server as server_lib  # pylint: disable=import-outside-toplevel

    metrics = metrics_lib.Metrics()
    try:
        tls = tls_lib.from_flags(parse_address(FLAGS["grpc-addr"].value)[0], metrics)
    except tls_lib.TLSError as e:
        logging.error("refusing to start: %s", e)
        return 1
    try:
        plan = _plan()
        logging.info("veid-sidecar starting: %s", plan.describe_heights())
        registry = registry_lib.Registry(
            plan,
            max_loaded=FLAGS["max-loaded-models"].value,
            retire_after_blocks=FLAGS["retire-after-blocks"].value,
            poll_s=FLAGS["plan-poll-interval"].value,
            observer=metrics,
            start_height=FLAGS["start-height"].value,
            max_blocks_ahead=FLAGS["max-blocks-ahead"].value,
            idle_s=FLAGS["model-idle-time"].value,
        )
        registry.start()
    except (plan_lib.PlanError, scorer_lib.ScorerError) as e:
        logging.error("refusing to start: %s", e)
        return 1
    for st in registry.statuses():
        logging.info("plan entry %s from height %d: %s%s", st.entry.version, st.entry.activation_height,
                     st.state.value, f" ({st.reason})" if st.reason else "")
    logging.info("self-check passed: %s", ", ".join(f"{s.model_version} hash {s.model_hash}"
                                                    for s in registry.loaded_scorers()))
    _freeze_startup_heap()
    metrics.watch_plan(registry.statuses, lambda: registry.highest_height, FLAGS["upgrade-alert-blocks"].value,
                       lambda: bool(registry.plan_error))

    try:
        grpc_server, lifecycle, grpc_port = server_lib.build(
            registry,
            metrics,
            address=_grpc_address(FLAGS["grpc-addr"].value),
            timeout_s=FLAGS["timeout"].value,
            started=started,
            workers=FLAGS["grpc-workers"].value,
            max_concurrent_rpcs=FLAGS["max-concurrent-rpcs"].value,
            enable_reflection=FLAGS["enable-reflection"].value,
            inject_latency_s=FLAGS["testing-inject-latency"].value,
            credentials=tls and tls.server_credentials(),
        )
        host, port = parse_address(FLAGS["metrics-addr"].value)
        http = http_server.MetricsServer(
            host, port, metrics, lambda: lifecycle.serving,
            max_connections=FLAGS["metrics-max-connections"].value,
            read_timeout_s=FLAGS["metrics-read-timeout"].value,
        )
    except (server_lib.BindError, OSError) as e:
        logging.error("refusing to start: %s", e)
        registry.close()
        return 1

    stop = threading.Event()

    def on_signal(signum, frame):  # pylint: disable=unused-argument
        if stop.is_set():
            logging.warning("second %s: cancelling in-flight calls now", signal.Signals(signum).name)
            grpc_server.stop(0)
            return
        logging.info("received %s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    def on_sighup(signum, frame):  # pylint: disable=unused-argument
        registry.request_reload()
        if tls:
            tls.request_reload()

    signal.signal(signal.SIGHUP, on_sighup)
    if _HUP_DURING_START_UP.is_set():
        logging.info("received SIGHUP during start-up: re-reading the upgrade plan now")
        on_sighup(signal.SIGHUP, None)

    if FLAGS["testing-inject-latency"].value:
        logging.warning("--testing-inject-latency=%s: every ComputeScore is slowed down; never use this in production",
                        duration.format_seconds(FLAGS["testing-inject-latency"].value))
    http.start()
    if tls:
        tls.start()
    lifecycle.set_serving()
    grpc_server.start()
    logging.info(
        "SERVING inference.v1 on %s (port %d, %s), metrics on %s (port %d), reflection %s",
        FLAGS["grpc-addr"].value, grpc_port, f"mutual TLS, certificate {tls.fingerprint}" if tls else "plaintext",
        FLAGS["metrics-addr"].value, http.port,
        "on" if FLAGS["enable-reflection"].value else "off",
    )

    while not stop.wait(1.0):
        pass
    grace = FLAGS["grace-period"].value
    lifecycle.begin_shutdown("shutting down")
    stopped = grpc_server.stop(grace)
    logging.info("health NOT_SERVING; refusing new calls, finishing in-flight calls (grace %s)",
                 duration.format_seconds(grace))
    while not stopped.wait(0.5):
        pass
    http.stop()
    registry.close()
    if tls:
        tls.close()
    logging.info("stopped")
    return 0


if __name__ == "__main__":
    # The image has one entrypoint: `IMAGE stage …` stages a model release instead of serving
    # (imported only then, so the sidecar's flags stay its own).
    if "stage" in sys.argv[1:]:
        from sidecar import stage  # pylint: disable=import-outside-toplevel

        if stage.wants_stage(sys.argv):
            stage.run_from_entrypoint(sys.argv)
    app.run(main)
