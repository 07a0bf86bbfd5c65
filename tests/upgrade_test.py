"""Model upgrades at a block height, on real sidecars serving the committed models.

The sidecar is started as an operator would start it: in (a copy of) the
models directory's parent, with `--upgrade-plan=models/plan.example.json`,
which switches from v1.0.0 to v1.1.0 at height H. Plans are then rewritten
on disk and announced with SIGHUP (the plan is also polled every 200 ms
here, 10 s by default), exactly as an operator or a ConfigMap update would.
Every answer is compared byte for byte with the golden vectors of the model
the plan names for its height.
"""

import concurrent.futures
import json
import os
import re
import signal
import subprocess
import threading
import time

import grpc
import pytest

from inference.v1 import inference_pb2 as pb
from inference.v1 import inference_pb2_grpc as pb_grpc
from ops import committed_model
from ops import sidecar_process
from sidecar import golden
from sidecar import hashing

EXAMPLE = "plan.example.json"
MODEL_DIRS = {"v1.0.0": "trust_score", "v1.1.0": "trust_score_v1_1"}
THREADS, PER_THREAD = 16, 2000
TIMEOUT = 60
# Old heights replayed after retirement, consecutive (from 1 to H-1, then again);
# the closing note measured 10^4.
REPLAY = int(os.environ.get("VEID_UPGRADE_REPLAY_HEIGHTS", "2000"))


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def write_json(path, obj):
    # Write-then-rename, as a careful operator (or Kubernetes) would, so a
    # poll never reads half a file.
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1)
    os.replace(tmp, path)


@pytest.fixture(scope="module")
def workdir():
    d = sidecar_process.tmpdir("upgrade-")
    committed_model.copy_models(d)
    return d


@pytest.fixture(scope="module")
def example(workdir):
    return read_json(os.path.join(workdir, "models", EXAMPLE))


@pytest.fixture(scope="module")
def height(example):
    (_, second) = example["entries"]
    return second["activation_height"]


@pytest.fixture(scope="module")
def vectors(workdir):
    """version -> golden vectors of that model, in file order."""
    return {v: golden.load_vectors(os.path.join(workdir, "models", d)) for v, d in MODEL_DIRS.items()}


@pytest.fixture(scope="module")
def hashes(example):
    return {e["version"]: e["expected_hash"] for e in example["entries"]}


def _flags(workdir, plan_name):
    return {"upgrade_plan": os.path.join("models", plan_name), "cwd": workdir}


def start(workdir, plan_name, *args):
    return sidecar_process.start("--plan-poll-interval=200ms", *args, **_flags(workdir, plan_name))


@pytest.fixture(scope="module")
def sidecar(workdir):
    # --model-idle-time=1s: a model idle for 1 s (and 100 requests) may retire, so the
    # retirement test need not wait the default 30 s.
    with sidecar_process.serving("--plan-poll-interval=200ms", "--model-idle-time=1s",
                                 **_flags(workdir, EXAMPLE)) as s:
        yield s


@pytest.fixture(scope="module")
def stub(sidecar):
    with sidecar.channel() as ch:
        yield pb_grpc.InferenceServiceStub(ch)


def score(stub, features, block_height, contributions=True):
    return stub.ComputeScore(pb.ComputeScoreRequest(
        features=features, return_contributions=contributions,
        metadata=pb.InferenceMetadata(block_height=block_height, request_id="upgrade-test")), timeout=TIMEOUT)


def expect_golden(resp, vector, version, hashes):
    assert (resp.model_version, resp.model_hash) == (version, hashes[version]), vector["name"]
    assert (resp.output_hash, resp.exact_output_hash, resp.input_hash, resp.score) == (
        vector["output_hash"], vector["exact_output_hash"], vector["input_hash"], vector["score"]), vector["name"]
    assert list(resp.reason_codes) == vector["reason_codes"]
    if resp.feature_contributions:
        assert {g: hashing.float32_hex(v) for g, v in resp.feature_contributions.items()} == vector["contribution_bits"]


def canonical(resp) -> bytes:
    resp.compute_time_ms = 0
    return resp.SerializeToString(deterministic=True)


def plan_states(stub):
    info = stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=TIMEOUT)
    return info, {e.version: (pb.ModelState.Name(e.state), e.reason) for e in info.plan}


def wait_for(predicate, what, sidecar, timeout=120.0):
    return sidecar_process.wait_until(predicate, timeout,
                                      lambda: f"timed out waiting for {what}:\n{sidecar.log()[-6000:]}", poll_s=0.1)


def test_heights_around_the_activation_use_old_new_new(stub, vectors, height, hashes):
    for block_height, version in ((height - 1, "v1.0.0"), (height, "v1.1.0"), (height + 1, "v1.1.0")):
        for v in vectors[version]:
            expect_golden(score(stub, v["features"], block_height), v, version, hashes)
    # The two models really answer differently, so the above could have failed.
    assert {v["output_hash"] for v in vectors["v1.0.0"]}.isdisjoint(v["output_hash"] for v in vectors["v1.1.0"])


def test_a_request_without_height_needs_one(stub, height):
    with pytest.raises(grpc.RpcError) as e:
        score(stub, [0.0] * 768, 0)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "no block height" in e.value.details() and f"v1.1.0 from {height}" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        score(stub, [0.0] * 768, -5)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "negative" in e.value.details()


def test_model_info_metrics_and_client_show_the_plan(sidecar, stub, height, hashes):
    score(stub, [0.0] * 768, height + 1)
    info, states = plan_states(stub)
    assert states == {"v1.0.0": ("MODEL_STATE_VERIFIED", ""), "v1.1.0": ("MODEL_STATE_ACTIVE", "")}
    assert (info.version, info.hash, info.highest_block_height) == ("v1.1.0", hashes["v1.1.0"], height + 1)
    assert [(e.activation_height, e.hash) for e in info.plan] == [(0, hashes["v1.0.0"]), (height, hashes["v1.1.0"])]
    assert info.tensorflow_version == "2.21.0" and info.plan_error == ""
    family = sidecar.metrics()["veid_inference_model_info"]
    assert {(s.labels["version"], s.labels["activation_height"], s.labels["state"]) for s in family.samples} == {
        ("v1.0.0", "0", "verified"), ("v1.1.0", str(height), "active")}
    assert sidecar.sample("veid_inference_highest_block_height") == height + 1
    assert sidecar.sample("veid_inference_model_activation_height",
                          {"version": "v1.1.0", "hash": hashes["v1.1.0"], "state": "active"}) == height
    r = run_client(sidecar, "plan")
    assert r.returncode == 0, r.stderr
    assert [e["state"] for e in json.loads(r.stdout)["entries"]] == ["verified", "active"]
    r = run_client(sidecar, f"--block-height={height - 1}", "--vector=high_quality_verification",
                   "--model-path=models/trust_score", "score")
    assert r.returncode == 0 and json.loads(r.stdout)["model_version"] == "v1.0.0", r.stderr


def run_client(sidecar, *args):
    """The operator's client, from the directory the sidecar runs in."""
    return subprocess.run(sidecar_process.python_command("sidecar.client") + [f"--addr={sidecar.target}", *args],
                          env=sidecar_process.child_env(), capture_output=True, text=True, timeout=120,
                          cwd=os.readlink(f"/proc/{sidecar.proc.pid}/cwd"))


def test_verify_determinism_checks_every_loaded_model(stub, vectors, height):
    # The seed's call: the vector on every loaded model that has it.
    r = stub.VerifyDeterminism(pb.VerifyDeterminismRequest(test_vector_id="high_quality_verification"), timeout=TIMEOUT)
    assert r.passed, list(r.differences)
    want = {ver: next(v for v in vs if v["name"] == "high_quality_verification") for ver, vs in vectors.items()}
    assert r.actual_output_hash == want["v1.1.0"]["output_hash"]  # the model of the highest height seen
    for pick, version in ((dict(block_height=height - 1), "v1.0.0"), (dict(model_version="v1.1.0"), "v1.1.0")):
        r = stub.VerifyDeterminism(pb.VerifyDeterminismRequest(test_vector_id="high_quality_verification", **pick),
                                   timeout=TIMEOUT)
        assert r.passed and r.actual_output_hash == want[version]["output_hash"], (pick, list(r.differences))
    with pytest.raises(grpc.RpcError) as e:
        stub.VerifyDeterminism(pb.VerifyDeterminismRequest(model_version="v7"), timeout=TIMEOUT)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND and "v7" in e.value.details()


def test_concurrent_requests_across_the_activation_while_the_plan_reloads(sidecar, stub, workdir, example, vectors,
                                                                          height, hashes):
    plan_path = os.path.join(workdir, "models", EXAMPLE)
    # A second plan that adds a far-future entry which fails its checks (its
    # directory holds v1.1.0, not v9.9.9): every swap is a real reload with
    # staging and a rejection, and must not disturb heights near H.
    churn = dict(example, entries=example["entries"] + [
        {"version": "v9.9.9", "path": "trust_score_v1_1", "expected_hash": hashes["v1.1.0"],
         "activation_height": 10**12}])
    features = [v["features"] for v in vectors["v1.0.0"]]
    heights = [height - 3, height - 2, height - 1, height, height + 1, height + 2]
    seen: dict[tuple[int, int], set[bytes]] = {}
    lock = threading.Lock()
    done = threading.Event()

    def worker(seed):
        with sidecar.channel() as ch:
            s = pb_grpc.InferenceServiceStub(ch)
            out = {}
            for i in range(PER_THREAD):
                # Every (height, input, contributions) combination comes up.
                h, k = heights[(seed + i) % len(heights)], (seed * 3 + i // len(heights)) % len(features)
                contributions = (i // (len(heights) * len(features))) % 2 == 0
                resp = score(s, features[k], h, contributions=contributions)
                version = "v1.0.0" if h < height else "v1.1.0"
                assert resp.model_version == version and resp.model_hash == hashes[version], (h, resp.model_version)
                assert resp.output_hash == vectors[version][k]["output_hash"], (h, k)
                out.setdefault((h, k, contributions), set()).add(canonical(resp))
        with lock:
            for key, values in out.items():
                seen.setdefault(key, set()).update(values)

    reloads = 0

    def reloader():
        nonlocal reloads
        while not done.is_set():
            write_json(plan_path, churn if reloads % 2 == 0 else example)
            sidecar.proc.send_signal(signal.SIGHUP)
            reloads += 1
            time.sleep(0.25)
        write_json(plan_path, example)

    with concurrent.futures.ThreadPoolExecutor(THREADS + 1) as pool:
        churner = pool.submit(reloader)
        try:
            for f in [pool.submit(worker, n) for n in range(THREADS)]:
                f.result()
        finally:
            done.set()
            churner.result()
    assert reloads >= 4, reloads
    assert all(len(v) == 1 for v in seen.values()), "identical (height, input) gave different bytes"
    assert len(seen) == len(heights) * len(features) * 2
    sidecar.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "v9.9.9" not in plan_states(stub)[1], "the churn entry to leave the plan", sidecar)
    assert sidecar.proc.poll() is None


def _bad_golden_model(models_dir: str, version: str) -> str:
    """v1.1.0 relabelled `version` whose golden vectors expect a wrong output:
    hash and metadata agree, so only the self-check can catch it."""
    name = "trust_score_bad_golden"
    path = committed_model.relabel(models_dir, "trust_score_v1_1", name, version)
    doc = read_json(os.path.join(path, golden.GOLDEN_FILE))
    doc["vectors"][0]["output_hash"] = "0" * 64
    write_json(os.path.join(path, golden.GOLDEN_FILE), doc)
    meta = read_json(os.path.join(path, hashing.METADATA_FILE))
    meta["model_hash"] = hashing.model_hash(path)
    write_json(os.path.join(path, hashing.METADATA_FILE), meta)
    return name, meta["model_hash"]


def test_failing_entries_are_rejected_while_serving_continues(sidecar, stub, workdir, example, vectors, height,
                                                              hashes):
    models = os.path.join(workdir, "models")
    plan_path = os.path.join(models, EXAMPLE)
    probes = [(height - 1, "v1.0.0"), (height + 1, "v1.1.0")]
    before = [canonical(score(stub, vectors[ver][0]["features"], h)) for h, ver in probes]
    bad_dir, bad_hash = _bad_golden_model(models, "v1.2.0-bad-golden")
    far = 10**9
    cases = [
        ("v1.2.0-wrong-hash", {"path": "trust_score_v1_1", "expected_hash": "0" * 64}, "hash_mismatch",
         "model hash mismatch"),
        ("v1.2.0-missing", {"path": "no_such_model", "expected_hash": hashes["v1.1.0"]}, "missing_files", "missing"),
        ("v1.2.0-bad-golden", {"path": bad_dir, "expected_hash": bad_hash}, "self_check", "golden vector self-check"),
    ]
    for version, fields, reason, text in cases:
        entry = {"version": version, "activation_height": far, **fields}
        write_json(plan_path, dict(example, entries=example["entries"] + [entry]))
        sidecar.proc.send_signal(signal.SIGHUP)
        state, why = wait_for(lambda v=version: plan_states(stub)[1].get(v) if plan_states(stub)[1].get(
            v, ("",))[0] == "MODEL_STATE_REJECTED" else None, f"{version} rejected", sidecar)
        assert text in why, why
        assert sidecar.sample("veid_inference_model_rejections_total", {"version": version, "reason": reason}) >= 1
        assert len(re.findall(rf"model {re.escape(version)} .*rejected", sidecar.log())) >= 1
        # Due in 10^9 blocks: not a concern for --due-within=100, but it is for a wider window.
        assert run_client(sidecar, "plan").returncode == 0
        r = run_client(sidecar, f"--due-within={far}", "plan")
        assert r.returncode == 1 and f"NOT READY: {version}" in r.stderr, r.stderr
        assert [canonical(score(stub, vectors[ver][0]["features"], h)) for h, ver in probes] == before
    # One log line per rejection, not one per poll. (A poll that adopted the
    # file just before its SIGHUP makes the signal a re-sent plan, which
    # retries rejected entries once more: count from here.)
    rejections = len(re.findall(r"model v1\.2\.0-bad-golden .*rejected", sidecar.log()))
    time.sleep(1.0)  # five polls
    assert len(re.findall(r"model v1\.2\.0-bad-golden .*rejected", sidecar.log())) == rejections
    write_json(plan_path, example)
    sidecar.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: len(plan_states(stub)[1]) == 2, "the example plan back in force", sidecar)

    # Rewriting history: heights up to H+1 were served by v1.1.0.
    moved = [dict(e) for e in example["entries"]]
    moved[1]["activation_height"] = height + 100
    write_json(plan_path, dict(example, entries=moved))
    sidecar.proc.send_signal(signal.SIGHUP)
    info = wait_for(lambda: plan_states(stub)[0] if plan_states(stub)[0].plan_error else None,
                    "the history rewrite to be refused", sidecar)
    assert "heights already served" in info.plan_error
    assert [e.activation_height for e in info.plan] == [0, height]  # the previous plan stays in force
    assert sidecar.sample("veid_inference_model_rejections_total", {"version": "v1.1.0", "reason": "history_rewrite"}) == 1
    assert sidecar.sample("veid_inference_upgrade_plan_refused") == 1
    time.sleep(0.5)  # a few polls of the same refused file, while the highest height moves
    score(stub, vectors["v1.1.0"][0]["features"], height + 2)
    time.sleep(0.5)
    assert sidecar.log().count("upgrade plan refused") == 1
    assert sidecar.sample("veid_inference_model_rejections_total", {"version": "v1.1.0", "reason": "history_rewrite"}) == 1
    r = run_client(sidecar, "plan")
    assert r.returncode == 1 and "PLAN REFUSED" in r.stderr
    assert [canonical(score(stub, vectors[ver][0]["features"], h)) for h, ver in probes] == before

    # No signal this time: the poll notices the file changed.
    write_json(plan_path, example)
    wait_for(lambda: plan_states(stub)[0].plan_error == "" and len(plan_states(stub)[1]) == 2, "plan restored", sidecar)
    assert sidecar.sample("veid_inference_upgrade_plan_refused") == 0


def test_heights_from_callers_cannot_poison_the_plan(sidecar, stub, workdir, example, vectors, height, hashes):
    top = 2**63 - 1
    before = plan_states(stub)[0].highest_block_height
    # Invalid (3 features) ahead of the chain, within --max-blocks-ahead and at
    # the highest possible height: refused, and the height is not recorded.
    for block_height, code in ((before + 9000, grpc.StatusCode.INVALID_ARGUMENT), (top, grpc.StatusCode.OUT_OF_RANGE)):
        with pytest.raises(grpc.RpcError) as e:
            score(stub, [0.5] * 3, block_height)
        assert e.value.code() == code, e.value
    # Valid, but absurdly far ahead: OUT_OF_RANGE naming the bound.
    with pytest.raises(grpc.RpcError) as e:
        score(stub, vectors["v1.1.0"][0]["features"], top)
    assert e.value.code() == grpc.StatusCode.OUT_OF_RANGE and "--max-blocks-ahead" in e.value.details(), e.value
    assert plan_states(stub)[0].highest_block_height == before
    # So a new entry just ahead of the chain is still adopted (and staged: the
    # relabelled copy of v1.1.0 verifies).
    committed_model.relabel(os.path.join(workdir, "models"), "trust_score_v1_1", "trust_score_poison", "v1.2.0-next")
    entry = {"version": "v1.2.0-next", "path": "trust_score_poison", "expected_hash": hashes["v1.1.0"],
             "activation_height": before + 500}
    plan_path = os.path.join(workdir, "models", EXAMPLE)
    write_json(plan_path, dict(example, entries=example["entries"] + [entry]))
    sidecar.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: plan_states(stub)[1].get("v1.2.0-next", ("",))[0] == "MODEL_STATE_VERIFIED",
             "the new entry adopted and verified", sidecar)
    assert plan_states(stub)[0].plan_error == "" and sidecar.sample("veid_inference_upgrade_plan_refused") == 0
    write_json(plan_path, example)
    sidecar.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: len(plan_states(stub)[1]) == 2, "the example plan back in force", sidecar)


def test_replay_after_retirement_settles(sidecar, stub, vectors, height, hashes):
    # Last on the shared sidecar: from here on the tip is past v1.0.0's retirement.
    retire_at = height + 1000  # --retire-after-blocks' default
    tip = vectors["v1.1.0"][0]["features"]
    for i in range(101):  # v1.0.0 idle by requests (100) and, below, by time (1 s)
        score(stub, tip, retire_at + i, contributions=False)
    wait_for(lambda: plan_states(stub)[1]["v1.0.0"][0] == "MODEL_STATE_RETIRED", "v1.0.0 to retire", sidecar)
    assert "retiring model v1.0.0" in sidecar.log()
    stagings = sidecar.log().count("staging model v1.0.0")
    # Consecutive old heights, as a validator syncing from genesis asks them. The
    # first call loads v1.0.0 again and may outlast its 2 s deadline on a busy
    # machine (UNAVAILABLE, "retry"); after the first answer, nothing may fail.
    old = vectors["v1.0.0"]
    answered, unavailable, t0 = 0, [], time.monotonic()
    for i in range(REPLAY):
        block_height = 1 + i % (height - 1)  # v1.0.0's heights, 1 to H-1 (and again from 1)
        v = old[block_height % len(old)]
        try:
            resp = score(stub, v["features"], block_height, contributions=False)
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.UNAVAILABLE and "v1.0.0" in e.details(), e
            assert not answered, f"UNAVAILABLE at height {block_height} after the first answer: {e.details()}"
            unavailable.append(block_height)
            assert len(unavailable) < 30, sidecar.log()[-4000:]
            time.sleep(0.2)
            continue
        answered += 1
        assert (resp.model_version, resp.model_hash, resp.output_hash) == (
            "v1.0.0", hashes["v1.0.0"], v["output_hash"]), block_height
    elapsed = time.monotonic() - t0
    loads = sidecar.log().count("staging model v1.0.0") - stagings
    print(f"replay of {REPLAY} old heights: {elapsed:.1f}s, {answered} answered, {len(unavailable)} UNAVAILABLE "
          f"before the first answer, {loads} load(s) of v1.0.0")
    assert loads == 1, sidecar.log()[-4000:]
    assert plan_states(stub)[1]["v1.0.0"][0] == "MODEL_STATE_VERIFIED"


def test_a_height_whose_model_is_not_verified_is_unavailable(sidecar, stub, workdir, example, vectors, height,
                                                            hashes):
    # After the retirement test: requesting the new entry's height makes it
    # history, so this runs last on the shared sidecar.
    due = height + 2000
    entry = {"version": "v1.2.0-absent", "path": "no_such_model", "expected_hash": hashes["v1.1.0"],
             "activation_height": due}
    write_json(os.path.join(workdir, "models", EXAMPLE), dict(example, entries=example["entries"] + [entry]))
    sidecar.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: plan_states(stub)[1].get("v1.2.0-absent", ("",))[0] == "MODEL_STATE_REJECTED",
             "v1.2.0-absent rejected", sidecar)
    v = vectors["v1.1.0"][0]
    expect_golden(score(stub, v["features"], due - 1), v, "v1.1.0", hashes)
    for _ in range(2):  # never v1.1.0's answer in its place, however often asked
        with pytest.raises(grpc.RpcError) as e:
            score(stub, v["features"], due)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE and "v1.2.0-absent" in e.value.details()


def test_restart_after_activation_and_sigkill_during_staging(workdir, example, vectors, height, hashes):
    models = os.path.join(workdir, "models")
    plan_path = os.path.join(models, "plan.restart.json")
    write_json(plan_path, dict(example, entries=example["entries"][:1]))
    first = start(workdir, "plan.restart.json")
    try:
        with first.channel() as ch:
            score(pb_grpc.InferenceServiceStub(ch), vectors["v1.0.0"][0]["features"], height - 1)
        write_json(plan_path, example)
        first.proc.send_signal(signal.SIGHUP)
        first.wait_for_log("staging model v1.1.0", timeout=60)
    finally:
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait()
    # What persists across a restart is the plan file and the model files,
    # nothing else: no half-staged model, and no record of the heights served
    # (highest_block_height starts at -1 again). The answers do not depend on
    # it: the next start selects exactly as the sidecar that saw the
    # activation did. --start-height says where the chain is: its model is
    # loaded and checked first.
    again = start(workdir, "plan.restart.json", f"--start-height={height + 1}")
    try:
        with again.channel() as ch:
            s = pb_grpc.InferenceServiceStub(ch)
            info, states = plan_states(s)
            assert info.highest_block_height == -1 and states["v1.1.0"][0] == "MODEL_STATE_ACTIVE", states
            log = again.log()
            assert log.index("staging model v1.1.0") < log.index("SERVING"), log
            for block_height, version in ((height + 1, "v1.1.0"), (height - 1, "v1.0.0"), (height, "v1.1.0")):
                for v in vectors[version]:
                    expect_golden(score(s, v["features"], block_height), v, version, hashes)
            assert plan_states(s)[0].highest_block_height == height + 1
    finally:
        assert again.terminate() == 0, again.log()


def _caught_signals(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        return int(next(line for line in f if line.startswith("SigCgt:")).split()[1], 16)


def test_start_up_ignores_broken_future_entries_and_survives_sighup(workdir, example, height, hashes):
    models = os.path.join(workdir, "models")
    future = {"version": "v2.0.0-not-copied", "path": "not_copied_yet", "expected_hash": hashes["v1.1.0"],
              "activation_height": 10**9}
    write_json(os.path.join(models, "plan.future.json"), dict(example, entries=example["entries"] + [future]))
    s = sidecar_process.Sidecar("--plan-poll-interval=200ms", f"--start-height={height + 1}",
                                **_flags(workdir, "plan.future.json"))
    try:
        # SIGHUP throughout start-up, as an operator or a config reloader would
        # send it: deferred, never fatal. The first once the sidecar has
        # installed its handler, or has begun start-up without one.
        while not (_caught_signals(s.proc.pid) & (1 << (signal.SIGHUP - 1)) or "veid-sidecar starting" in s.log()):
            assert s.proc.poll() is None, s.log()
            time.sleep(0.02)
        hups = 0
        while True:
            assert s.proc.poll() is None, f"SIGHUP during start-up ended the sidecar:\n{s.log()}"
            s.proc.send_signal(signal.SIGHUP)
            hups += 1
            if "SERVING inference.v1" in s.log():
                break
            assert hups < 600, s.log()
            time.sleep(0.1)
        s.wait_serving()
        assert _caught_signals(s.proc.pid) & (1 << (signal.SIGHUP - 1))
        s.wait_for_log("received SIGHUP during start-up: re-reading the upgrade plan now")
        with s.channel() as ch:
            stub = pb_grpc.InferenceServiceStub(ch)
            state, why = wait_for(lambda: plan_states(stub)[1]["v2.0.0-not-copied"] if plan_states(stub)[1][
                "v2.0.0-not-copied"][0] == "MODEL_STATE_REJECTED" else None, "the future entry rejected", s)
            assert "not_copied_yet" in why and "missing" in why, why
            assert plan_states(stub)[1]["v1.1.0"][0] == "MODEL_STATE_ACTIVE"
    finally:
        assert s.terminate() == 0, s.log()
    # The entry serving the start height broken: refuse to start, naming it.
    broken = dict(example["entries"][1], path="not_copied_yet")
    write_json(os.path.join(models, "plan.broken.json"), dict(example, entries=[example["entries"][0], broken]))
    r = sidecar_process.run_to_exit(f"--start-height={height + 1}",
                                    f"--upgrade-plan={os.path.join(models, 'plan.broken.json')}")
    assert r.returncode == 1 and "refusing to start" in r.stdout and "not_copied_yet" in r.stdout, r.stdout


def test_replay_from_genesis_with_three_models_and_room_for_two(workdir, example, vectors, hashes):
    models = os.path.join(workdir, "models")
    # The third model is v1.0.0's files relabelled v1.2.0-replay.
    committed_model.relabel(models, "trust_score", "trust_score_relabelled", "v1.2.0-replay")
    h1, h2 = 20, 40
    plan = {"entries": [
        dict(example["entries"][0]),
        {"version": "v1.1.0", "path": "trust_score_v1_1", "expected_hash": hashes["v1.1.0"], "activation_height": h1},
        {"version": "v1.2.0-replay", "path": "trust_score_relabelled", "expected_hash": hashes["v1.0.0"],
         "activation_height": h2},
    ]}
    write_json(os.path.join(models, "plan.replay.json"), plan)
    by_version = {"v1.0.0": vectors["v1.0.0"], "v1.1.0": vectors["v1.1.0"], "v1.2.0-replay": vectors["v1.0.0"]}
    s = start(workdir, "plan.replay.json", "--max-loaded-models=2", "--retire-after-blocks=5", f"--timeout={TIMEOUT}s")
    try:
        with s.channel() as ch:
            stub = pb_grpc.InferenceServiceStub(ch)
            for block_height in range(1, h2 + 11):
                version = "v1.0.0" if block_height < h1 else "v1.1.0" if block_height < h2 else "v1.2.0-replay"
                v = by_version[version][0]
                resp = score(stub, v["features"], block_height)
                assert resp.model_version == version, (block_height, resp.model_version)
                assert resp.output_hash == v["output_hash"], block_height
                _, states = plan_states(stub)
                loaded = [ver for ver, (st, _) in states.items() if st in ("MODEL_STATE_VERIFIED", "MODEL_STATE_ACTIVE")]
                assert len(loaded) <= 2, (block_height, states)
                assert states[version][0] == "MODEL_STATE_ACTIVE", (block_height, states)
    finally:
        assert s.terminate() == 0, s.log()


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
