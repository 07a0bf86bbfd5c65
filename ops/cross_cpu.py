"""Cross-CPU determinism check: the sidecar's scores on other CPUs, emulated.

Validators run on whatever x86-64 CPUs they own, and TensorFlow's CPU kernels
(oneDNN's sgemm, picked by CPUID) compute batches > 1 differently per
instruction set and per vendor. This module runs the sidecar's own inference
path (sidecar.scorer.Scorer: start-up checks, then validate -> one batch-1
model call under the model's lock -> scoring.evaluate) natively and under QEMU
user-mode emulation of other CPUs (`qemu-x86_64 -cpu Haswell`, ...), over
every golden vector and RANDOM_VECTORS random feature vectors, and compares
exact hashes of every output bit. Each CPU model is one emulated process
(an emulated `import tensorflow` alone takes ~15 s), all run in parallel.

Every worker also reports a sensitivity probe, the same model's
serving_default signature on a 64-row batch: that one is expected to differ
between ISAs/vendors, which shows the emulation really changes TensorFlow's
kernels (an "identical" verdict would otherwise prove nothing).

    bazel run //ops:cross_cpu                       # table for operators
    bazel run //ops:cross_cpu -- --cpus=Haswell,EPYC --sidecar
    bazel run //ops:cross_cpu -- --native_only      # just this machine vs the reference

The committed reference (ops/cross_cpu_reference.json) records the digest of
all outputs for the committed model; a native run on an operator's machine is
compared with it, so the check says whether *this* CPU agrees with the network.
"""

import argparse
import concurrent.futures
import ctypes
import dataclasses
import hashlib
import json
import mmap
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np

# Imported lazily where TF is involved: the driver itself never imports TF.
from ops import committed_model
from sidecar import determinism
from sidecar import features as F
from sidecar import hashing
from sidecar import scorer as scorer_lib  # TensorFlow only once a scorer loads

QEMU = "qemu-x86_64"
RANDOM_VECTORS = 200
RANDOM_SEED = 20261127
PROBE_BATCH = 64
REFERENCE_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cross_cpu_reference.json")
# Enough for an emulated TF import (~15 s) plus 200 vectors on a loaded 2-core CI machine.
WORKER_TIMEOUT_S = 600.0


@dataclasses.dataclass(frozen=True)
class CpuModel:
    qemu_cpu: str  # the -cpu argument
    vendor: str  # the CPUID vendor string the guest must see
    isa: str  # for humans
    # CPUID feature bits the guest must (True) or must not (False) report,
    # so a QEMU that silently ignored -cpu cannot pass for another CPU.
    features: tuple[tuple[str, bool], ...]


# The default set: Intel AVX2+FMA, Intel AVX only, and an AMD-vendor AVX2 CPU
# (same features as Haswell, only the vendor differs, so a vendor dependence
# shows up on its own). QEMU 7.2's TCG implements no AVX-512, so AVX-512
# kernels cannot be emulated here (see README "## Hardware").
CPU_MODELS = {
    "Haswell": CpuModel("Haswell", "GenuineIntel", "AVX2+FMA", (("avx", True), ("avx2", True), ("fma", True))),
    "SandyBridge": CpuModel("SandyBridge", "GenuineIntel", "AVX", (("avx", True), ("avx2", False), ("fma", False))),
    "Haswell-AMD": CpuModel(
        "Haswell,vendor=AuthenticAMD", "AuthenticAMD", "AVX2+FMA", (("avx", True), ("avx2", True), ("fma", True))
    ),
}
# Also known to work (bazel run //ops:cross_cpu -- --cpus=...): "EPYC"
# (AMD Zen 1), "max" (everything TCG implements, AMD vendor), Broadwell,
# Skylake-Client, IvyBridge.
DEFAULT_CPUS = ("Haswell", "SandyBridge", "Haswell-AMD")


def cpu_model(name: str) -> CpuModel:
    """A CpuModel by table name, or an ad-hoc one for any other qemu -cpu string."""
    return CPU_MODELS.get(name) or CpuModel(name, "", "?", ())


# --------------------------------------------------------------------------
# CPUID, read by executing the instruction (QEMU emulates /proc/cpuinfo not at
# all for x86: a guest reading it sees the host's).

# void cpuid(uint32 leaf, uint32 subleaf, uint32 out[4]), System V x86-64.
_CPUID_CODE = bytes.fromhex(
    "53"  # push rbx
    "4989d0"  # mov r8, rdx
    "89f8"  # mov eax, edi
    "89f1"  # mov ecx, esi
    "0fa2"  # cpuid
    "418900"  # mov [r8], eax
    "41895804"  # mov [r8+4], ebx
    "41894808"  # mov [r8+8], ecx
    "4189500c"  # mov [r8+12], edx
    "5b"  # pop rbx
    "c3"  # ret
)


def cpuid_info() -> dict[str, Any]:
    """Vendor string and the feature bits that steer oneDNN's kernel choice."""
    buf = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    buf.write(_CPUID_CODE)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    fn = ctypes.CFUNCTYPE(None, ctypes.c_uint32, ctypes.c_uint32, ctypes.POINTER(ctypes.c_uint32))(addr)

    def cpuid(leaf: int, sub: int = 0) -> tuple[int, int, int, int]:
        out = (ctypes.c_uint32 * 4)()
        fn(leaf, sub, out)
        return tuple(out)

    max_leaf, ebx, ecx, edx = cpuid(0)
    vendor = b"".join(r.to_bytes(4, "little") for r in (ebx, edx, ecx)).decode("ascii", "replace")
    _, _, ecx1, _ = cpuid(1)
    ebx7 = cpuid(7)[1] if max_leaf >= 7 else 0
    info = {
        "vendor": vendor,
        "features": {
            "sse4_1": bool(ecx1 >> 19 & 1),
            "avx": bool(ecx1 >> 28 & 1),
            "fma": bool(ecx1 >> 12 & 1),
            "avx2": bool(ebx7 >> 5 & 1),
            "avx512f": bool(ebx7 >> 16 & 1),
        },
    }
    return info  # buf stays mapped: fn points into it, and it is one page


def isa_label(info: dict[str, Any]) -> str:
    f = info["features"]
    for name in ("avx512f", "avx2", "avx", "sse4_1"):
        if f.get(name):
            return name.upper().replace("_", ".") + ("+FMA" if name == "avx2" and f.get("fma") else "")
    return "pre-SSE4.1"


# --------------------------------------------------------------------------
# Inputs: generated natively by the driver and handed to every worker as raw
# float32 bytes, so no worker's NumPy SIMD dispatch can change them.

def random_vectors(n: int = RANDOM_VECTORS, seed: int = RANDOM_SEED) -> np.ndarray:
    """n plausible-but-varied feature vectors (float32 [n, 768]) from a fixed seed."""
    rng = np.random.RandomState(seed)
    x = np.zeros((n, F.FEATURE_DIM), dtype=np.float32)
    has_face = rng.random_sample(n) < 0.85
    emb = rng.uniform(-1.0, 1.0, size=(n, F.FACE_EMBEDDING_DIM)).astype(np.float32)
    emb /= np.float32(np.sqrt(F.FACE_EMBEDDING_DIM / 3.0))  # roughly unit length; exactness is irrelevant here
    x[:, F.FACE_EMBEDDING] = emb * has_face[:, None]
    x[:, F.FACE_CONFIDENCE] = np.where(has_face, rng.random_sample(n), 0.0)
    x[:, F.DOC_QUALITY_BLOCK] = rng.random_sample((n, 5))
    x[:, list(F.OCR_CONFIDENCE_INDICES)] = rng.random_sample((n, len(F.OCR_FIELDS)))
    x[:, list(F.OCR_VALIDATED_INDICES)] = rng.random_sample((n, len(F.OCR_FIELDS))) < 0.7
    scopes = rng.random_sample((n, len(F.SCOPE_TYPES))) < 0.4
    x[:, F.SCOPE_ONE_HOT] = scopes
    x[:, F.SCOPE_COUNT] = np.minimum(scopes.sum(axis=1) / F.SCOPE_COUNT_DIVISOR, 1.0)
    x[:, F.BLOCK_HEIGHT] = rng.randint(0, F.BLOCK_HEIGHT_MODULUS, n) / F.BLOCK_HEIGHT_MODULUS
    # A tenth are out-of-distribution (uniform [-4, 4] everywhere): the model
    # must agree on inputs no honest client would send, too.
    wild = rng.random_sample(n) < 0.1
    x[wild] = rng.uniform(-4.0, 4.0, size=(int(wild.sum()), F.FEATURE_DIM))
    return x


# --------------------------------------------------------------------------
# Worker: runs inside the (possibly emulated) process.

def _record(result, contributions) -> dict[str, Any]:
    rec = {
        "exact_output_hash": result.exact_output_hash,
        "output_hash": result.output_hash,
        "input_hash": result.input_hash,
        "raw_score_bits": hashing.float32_hex(result.raw_score),
        "score": result.score,
        "confidence_bits": hashing.float32_hex(result.confidence),
        "reason_codes": list(result.reason_codes),
    }
    if contributions is not None:
        rec["contribution_bits"] = {k: hashing.float32_hex(v) for k, v in sorted(contributions.items())}
    return rec


def digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def worker(model_path: str, inputs_path: str) -> dict[str, Any]:
    """Loads the scorer (all start-up checks) and scores every vector two ways."""
    t0 = time.monotonic()
    cpu = cpuid_info()
    scorer = scorer_lib.Scorer.load(model_path)
    t_loaded = time.monotonic()
    try:
        vectors = {name: np.asarray(scorer.vector(name)["features"], dtype=np.float32) for name in scorer.vector_names()}
        rand = np.fromfile(inputs_path, dtype="<f4").reshape(-1, F.FEATURE_DIM)
        vectors.update({f"random_{i:03d}": row for i, row in enumerate(rand)})
        records = {}
        for name, values in vectors.items():
            plain = scorer.score(values).result
            with_contrib = scorer.score(values, contributions=True)
            records[name] = {"plain": _record(plain, None), "contributions": _record(with_contrib.result, with_contrib.contributions)}
        # Sensitivity probe: the same serving signature on one 64-row batch vs
        # 64 batch-1 calls. Loaded separately (the scorer never batches).
        tf = determinism.import_tensorflow()
        serving = tf.saved_model.load(model_path).signatures["serving_default"]
        batch = rand[:PROBE_BATCH]
        batched = serving(features=tf.constant(batch))["trust_score"].numpy()
        rows = np.concatenate([serving(features=tf.constant(r[None, :]))["trust_score"].numpy() for r in batch])
    finally:
        scorer.close()
    return {
        "cpu": cpu,
        "tensorflow": tf.__version__,
        "model_hash": scorer.model_hash,
        "records": records,
        "digest": digest(records),
        "probe": {"batch_64": hashing.exact_hash(batched), "batch_1_x64": hashing.exact_hash(rows)},
        "seconds": {
            "load": round(t_loaded - t0, 1),
            "score": round(time.monotonic() - t_loaded, 1),
            # CPU time of the whole process (under QEMU: emulation included),
            # a better measure than wall time on a shared machine.
            "cpu": round(time.process_time(), 1),
        },
    }


# --------------------------------------------------------------------------
# Driver: finds the real interpreter, starts workers natively and under QEMU.

# Printed by the interpreter as the kernel actually started it: the ELF that
# runs (python itself, or ld.so when a wrapper starts python through its own
# dynamic loader), the full command line, and the environment a wrapper script
# may have added.
_SELF_PROBE = (
    "import json, os\n"
    "argv = open('/proc/self/cmdline', 'rb').read().split(b'\\0')[:-1]\n"
    "print(json.dumps({'exe': os.readlink('/proc/self/exe'), 'argv': [a.decode() for a in argv],"
    " 'env': dict(os.environ)}))\n"
)


def python_flags() -> list[str]:
    # Under Bazel the toolchain runs python -S -P -B; children must see no more.
    return (
        (["-S"] if sys.flags.no_site else [])
        + (["-P"] if getattr(sys.flags, "safe_path", False) else [])
        + (["-B"] if sys.flags.dont_write_bytecode else [])
    )


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    # The sidecar sets the determinism variables itself and refuses
    # contradicting ones; ISA caps would defeat the point of emulating a CPU.
    env = {
        k: v for k, v in os.environ.items()
        if k not in determinism.ENVIRONMENT and k not in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")
    }
    env["PYTHONPATH"] = os.pathsep.join([os.getcwd()] + [p for p in sys.path if p])
    env.update(extra or {})
    return env


def _is_elf(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


@dataclasses.dataclass(frozen=True)
class Interpreter:
    """How to start this Python under QEMU: ELF, argv prefix, wrapper's env."""

    elf: str
    argv: tuple[str, ...]  # argv[0] plus interpreter arguments, before -c/-m
    env_delta: tuple[tuple[str, str], ...]

    def native(self, args: list[str]) -> list[str]:
        return [sys.executable, *python_flags(), *args]

    def emulated(self, qemu_cpu: str, args: list[str]) -> list[str]:
        return [QEMU, "-cpu", qemu_cpu, "-0", self.argv[0], self.elf, *self.argv[1:], *args]

    def env(self, base: dict[str, str]) -> dict[str, str]:
        return {**base, **dict(self.env_delta)}


def find_interpreter() -> Interpreter:
    """Asks sys.executable (maybe a wrapper script) which ELF really runs Python."""
    base = child_env()
    cmd = [sys.executable, *python_flags(), "-c", _SELF_PROBE]
    r = subprocess.run(cmd, env=base, capture_output=True, text=True, timeout=60, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"cannot start {cmd[:-1]}: {r.stderr[-2000:]}")
    info = json.loads(r.stdout.strip().splitlines()[-1])
    argv = info["argv"]
    if argv[-2:] != ["-c", _SELF_PROBE]:
        raise RuntimeError(f"{sys.executable} did not pass its arguments through last: {argv[:-1]}")
    elf = info["exe"]
    if not _is_elf(elf):
        raise RuntimeError(f"{sys.executable} runs {elf}, which is not an ELF executable")
    delta = tuple(sorted((k, v) for k, v in info["env"].items() if base.get(k) != v))
    return Interpreter(elf, tuple(argv[:-2]), delta)


@dataclasses.dataclass
class RunResult:
    label: str
    cpu: CpuModel | None  # None: native
    result: dict[str, Any] | None
    error: str | None
    wall_s: float


def run_worker(interp: Interpreter, label: str, cpu: CpuModel | None, model_path: str, inputs_path: str, workdir: str) -> RunResult:
    out_path = os.path.join(workdir, f"worker-{label}.json")
    log_path = os.path.join(workdir, f"worker-{label}.log")
    args = ["-m", "ops.cross_cpu", "--worker", f"--model_path={model_path}", f"--inputs={inputs_path}", f"--output={out_path}"]
    cmd = interp.native(args) if cpu is None else interp.emulated(cpu.qemu_cpu, args)
    env = child_env() if cpu is None else interp.env(child_env())
    t0 = time.monotonic()
    with open(log_path, "wb") as log:
        try:
            proc = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=WORKER_TIMEOUT_S, check=False)
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
    wall = time.monotonic() - t0
    if rc != 0:
        with open(log_path, encoding="utf-8", errors="replace") as f:
            tail = "".join(line for line in f if "TCG doesn't support" not in line)[-3000:]
        return RunResult(label, cpu, None, f"exit {rc} after {wall:.0f}s: {' '.join(cmd[:6])} ...\n{tail}", wall)
    with open(out_path, encoding="utf-8") as f:
        return RunResult(label, cpu, json.load(f), None, wall)


# --------------------------------------------------------------------------
# The whole sidecar: one native, one under QEMU, same requests, same bytes.

# Generous: an emulated contributions call is ~50 ms, but CI shares 2 cores
# between all emulated processes. The timeout never changes a response's bytes.
SIDECAR_CALL_TIMEOUT = "120s"
# Each emulated gRPC call costs ~0.1-0.3 s of a loaded CI core; the 200 random
# vectors already went through the same Scorer under every CPU model, so the
# whole-sidecar comparison takes the golden vectors plus this many of them.
SIDECAR_RANDOM_VECTORS = 40


def start_sidecar(interp: Interpreter, cpu: CpuModel | None, model_path: str):
    """An ops.sidecar_process.Sidecar, natively or under `qemu-x86_64 -cpu`."""
    from ops import sidecar_process  # pylint: disable=import-outside-toplevel

    def launch(python_args: list[str]) -> tuple[list[str], dict[str, str]]:
        if cpu is None:
            return interp.native(python_args), child_env()
        return interp.emulated(cpu.qemu_cpu, python_args), interp.env(child_env())

    return sidecar_process.Sidecar(f"--timeout={SIDECAR_CALL_TIMEOUT}", model_path=model_path, launch=launch)


def sidecar_requests(model_path: str, rand: np.ndarray) -> list[tuple[str, Any]]:
    """(name, ComputeScoreRequest): every golden vector and every random one,
    each with and without contributions."""
    from inference.v1 import inference_pb2 as pb  # pylint: disable=import-outside-toplevel
    from sidecar import golden  # pylint: disable=import-outside-toplevel

    named = [(v["name"], v["features"]) for v in golden.load_vectors(model_path)]
    named += [(f"random_{i:03d}", row.tolist()) for i, row in enumerate(rand)]
    out = []
    for name, values in named:
        for contrib in (False, True):
            meta = pb.InferenceMetadata(request_id=f"{name}/{int(contrib)}", block_height=12345)
            out.append((f"{name}{' +contributions' if contrib else ''}",
                        pb.ComputeScoreRequest(features=values, metadata=meta, return_contributions=contrib)))
    return out


def sidecar_responses(sidecar, requests: list[tuple[str, Any]]) -> dict[str, bytes]:
    """Serialized (deterministic) ComputeScore responses minus compute_time_ms."""
    from inference.v1 import inference_pb2_grpc as pb_grpc  # pylint: disable=import-outside-toplevel

    out = {}
    with sidecar.channel() as ch:
        stub = pb_grpc.InferenceServiceStub(ch)
        for name, req in requests:
            resp = stub.ComputeScore(req, timeout=300)
            resp.ClearField("compute_time_ms")
            out[name] = resp.SerializeToString(deterministic=True)
    return out


@dataclasses.dataclass
class SidecarComparison:
    cpu: str
    responses: int
    differences: list[str]
    error: str | None
    wall_s: float
    serving_after_s: float | None  # emulated sidecar: start -> SERVING


def compare_sidecars(interp: Interpreter, cpu: CpuModel, model_path: str, rand: np.ndarray) -> SidecarComparison:
    """Starts a native and an emulated sidecar together; compares every response byte for byte."""
    t0 = time.monotonic()
    requests = sidecar_requests(model_path, rand)
    native = start_sidecar(interp, None, model_path)
    emulated = start_sidecar(interp, cpu, model_path)
    serving_after = None
    try:
        native.wait_serving()
        want = sidecar_responses(native, requests)
        native.terminate()
        emulated.wait_serving(timeout=WORKER_TIMEOUT_S)
        serving_after = time.monotonic() - t0
        got = sidecar_responses(emulated, requests)
        if emulated.terminate() != 0:
            raise AssertionError(f"emulated sidecar did not exit 0 on SIGTERM:\n{emulated.log()[-3000:]}")
    except Exception as e:  # pylint: disable=broad-except
        return SidecarComparison(cpu.qemu_cpu, 0, [], f"{type(e).__name__}: {e}"[-4000:], time.monotonic() - t0, serving_after)
    finally:
        native.kill()
        emulated.kill()
    diffs = [f"{name}: native {want[name].hex()} vs {cpu.qemu_cpu} {got.get(name, b'').hex()}"
             for name in want if got.get(name) != want[name]]
    return SidecarComparison(cpu.qemu_cpu, len(want), diffs, None, time.monotonic() - t0, serving_after)


# --------------------------------------------------------------------------
# Training under emulation (slow: see models/README.md; //tests:cross_cpu_training_test).

TRAIN_SCRIPT = os.path.join("models", "train.py")
TRAIN_TIMEOUT_S = 3600.0


@dataclasses.dataclass
class TrainingRun:
    cpu: str
    out_dir: str
    model_hash: str | None
    error: str | None
    wall_s: float


def train(interp: Interpreter, cpu: CpuModel | None, out_dir: str) -> TrainingRun:
    """Runs models/train.py natively or under QEMU; returns the export's model hash."""
    label = "native" if cpu is None else cpu.qemu_cpu
    args = [TRAIN_SCRIPT, f"--output_dir={out_dir}"]
    cmd = interp.native(args) if cpu is None else interp.emulated(cpu.qemu_cpu, args)
    env = child_env() if cpu is None else interp.env(child_env())
    t0 = time.monotonic()
    try:
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=TRAIN_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return TrainingRun(label, out_dir, None, f"timeout after {TRAIN_TIMEOUT_S}s", time.monotonic() - t0)
    wall = time.monotonic() - t0
    if r.returncode != 0:
        tail = "".join(line + "\n" for line in r.stderr.splitlines() if "TCG doesn't support" not in line)[-3000:]
        return TrainingRun(label, out_dir, None, f"exit {r.returncode}:\n{tail}", wall)
    return TrainingRun(label, out_dir, hashing.model_hash(out_dir), None, wall)


def qemu_available() -> bool:
    return shutil.which(QEMU) is not None


def run_all(cpus: list[str], model_path: str, workdir: str, n_random: int = RANDOM_VECTORS) -> list[RunResult]:
    """Native first in the list, then one emulated worker per CPU; all in parallel."""
    inputs_path = os.path.join(workdir, "inputs.f32")
    random_vectors(n_random).astype("<f4").tofile(inputs_path)
    interp = find_interpreter()
    jobs = [("native", None)] + [(name, cpu_model(name)) for name in cpus]
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = [pool.submit(run_worker, interp, label, cpu, model_path, inputs_path, workdir) for label, cpu in jobs]
        return [f.result() for f in futures]


def cpu_problems(run: RunResult) -> list[str]:
    """Whether the guest really saw the CPU we asked QEMU for."""
    if run.cpu is None or run.result is None:
        return []
    seen = run.result["cpu"]
    problems = []
    if run.cpu.vendor and seen["vendor"] != run.cpu.vendor:
        problems.append(f"{run.label}: guest CPUID vendor {seen['vendor']}, expected {run.cpu.vendor}")
    for feat, want in run.cpu.features:
        if seen["features"].get(feat) != want:
            problems.append(f"{run.label}: guest CPUID {feat}={seen['features'].get(feat)}, expected {want}")
    return problems


def differences(ref: dict[str, Any], other: dict[str, Any], limit: int = 5) -> list[str]:
    """Names and fields of the first `limit` vectors whose records differ."""
    out = []
    for name, want in ref["records"].items():
        got = other["records"].get(name)
        if got != want:
            fields = sorted(
                f"{kind}.{k}" for kind in want for k in want[kind] if (got or {}).get(kind, {}).get(k) != want[kind][k]
            )
            out.append(f"{name}: {', '.join(fields)}")
            if len(out) >= limit:
                out.append("...")
                break
    if set(other["records"]) != set(ref["records"]):
        out.append(f"vector sets differ: {sorted(set(ref['records']) ^ set(other['records']))[:5]}")
    return out


def load_reference() -> dict[str, Any] | None:
    try:
        with open(REFERENCE_FILE, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def reference_of(native: dict[str, Any]) -> dict[str, Any]:
    return {
        "comment": "Written by `bazel run //ops:cross_cpu -- --write_reference`; digest of ops/cross_cpu.py's records.",
        "model_hash": native["model_hash"],
        "tensorflow": native["tensorflow"],
        "random_seed": RANDOM_SEED,
        "random_vectors": sum(1 for k in native["records"] if k.startswith("random_")),
        "vectors": len(native["records"]),
        "digest": native["digest"],
    }


def format_table(runs: list[RunResult], reference: dict[str, Any] | None) -> str:
    native = runs[0].result
    lines = [f"{'cpu':<28} {'vendor':<13} {'isa':<9} {'scores (all vectors)':<26} {'batch-64 probe':<18} {'wall':>5} {'cpu':>5}"]
    for run in runs:
        if run.result is None:
            lines.append(f"{run.label:<28} {'':<13} {'':<9} {'FAILED: see below':<26} {'':<18} {run.wall_s:4.0f}s")
            continue
        r = run.result
        if run.cpu is None:
            if reference is None or reference["model_hash"] != r["model_hash"]:
                verdict = "no reference for model"
            else:
                verdict = "= reference" if reference["digest"] == r["digest"] else "DIFFERS from reference"
            probe = "(native)"
        else:
            verdict = "identical to native" if native and r["digest"] == native["digest"] else "DIFFERS from native"
            probe = "same as native" if native and r["probe"] == native["probe"] else (
                "differs (expected)" if native and r["probe"]["batch_1_x64"] == native["probe"]["batch_1_x64"] else "batch-1 DIFFERS"
            )
        label = run.label + ("" if run.cpu is None else f" [{run.cpu.qemu_cpu}]" if run.cpu.qemu_cpu != run.label else "")
        lines.append(
            f"{label:<28} {r['cpu']['vendor']:<13} {isa_label(r['cpu']):<9} {verdict:<26} {probe:<18} {run.wall_s:4.0f}s"
            f" {r['seconds']['cpu']:4.0f}s"
        )
    n = len(native["records"]) if native else 0
    lines.append(f"{n} vectors x (serving_default + contributions); exact bits of raw score, contributions, hashes.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cpus", default=",".join(DEFAULT_CPUS), help="QEMU CPU models (names from `qemu-x86_64 -cpu help`)")
    p.add_argument("--native_only", action="store_true", help="only this machine, compared with the committed reference")
    p.add_argument("--model_path", default=None, help="model directory (default: the committed model)")
    p.add_argument("--random_vectors", type=int, default=RANDOM_VECTORS)
    p.add_argument("--sidecar", action="store_true", help="also compare a whole sidecar under the first CPU with a native one")
    p.add_argument("--write_reference", action="store_true", help="rewrite ops/cross_cpu_reference.json (in the workspace)")
    # Worker mode (internal).
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--inputs", help=argparse.SUPPRESS)
    p.add_argument("--output", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker:
        result = worker(args.model_path, args.inputs)
        with open(args.output, "w", encoding="utf-8") as f:
            json.dump(result, f)
        return 0

    cpus = [] if args.native_only else [c for c in args.cpus.split(",") if c]
    if cpus and not qemu_available():
        print(f"{QEMU} not found: install qemu-user (Debian/Ubuntu) or run with --native_only", file=sys.stderr)
        return 2
    workdir = tempfile.mkdtemp(prefix="cross-cpu-", dir=os.environ.get("TEST_TMPDIR"))
    src = scorer_lib.workspace_path(args.model_path) if args.model_path else committed_model.MODEL_SRC
    model_path = committed_model.copy_model(workdir, src)
    t0 = time.monotonic()
    runs = run_all(cpus, model_path, workdir, args.random_vectors)
    reference = load_reference()
    print(format_table(runs, reference))
    print(f"wall time {time.monotonic() - t0:.0f}s; logs in {workdir}")
    ok = True
    for run in runs:
        if run.error:
            print(f"\n{run.label} failed:\n{run.error}")
            ok = False
    for problem in sum((cpu_problems(r) for r in runs), []):
        print(problem)
        ok = False
    native = runs[0].result
    if native:
        for run in runs[1:]:
            if run.result and run.result["digest"] != native["digest"]:
                ok = False
                print(f"\n{run.label} differs from native:\n  " + "\n  ".join(differences(native, run.result)))
        if args.write_reference:
            path = scorer_lib.workspace_path(os.path.join("ops", "cross_cpu_reference.json"))
            with open(path, "w", encoding="utf-8") as f:
                json.dump(reference_of(native), f, indent=2, sort_keys=True)
                f.write("\n")
            print(f"wrote {path}")
        elif reference and reference["model_hash"] == native["model_hash"] and reference["digest"] != native["digest"]:
            ok = False
            print("\nTHIS MACHINE DIFFERS from the reference: do not join the active set with it; report the CPU model.")
    if args.sidecar and cpus:
        rand = random_vectors(args.random_vectors)[:SIDECAR_RANDOM_VECTORS]
        cmp = compare_sidecars(find_interpreter(), cpu_model(cpus[0]), model_path, rand)
        if cmp.error:
            print(f"\nwhole sidecar under {cmp.cpu}: FAILED: {cmp.error}")
        else:
            verdict = "byte-identical" if not cmp.differences else f"{len(cmp.differences)} DIFFER"
            print(f"\nwhole sidecar under {cmp.cpu}: {cmp.responses} ComputeScore responses {verdict} "
                  f"(SERVING after {cmp.serving_after_s:.0f}s, {cmp.wall_s:.0f}s in all)")
        for d in cmp.differences[:10]:
            print("  " + d)
        ok = ok and not cmp.error and not cmp.differences
    print("\nOK: identical" if ok else "\nFAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
