"""Model distribution end to end: publish once, every validator stages by digest.

Real things on 127.0.0.1: Debian's docker-registry, an HTTPS server (a
self-signed loopback certificate, trusted through SSL_CERT_FILE), a sidecar
serving the plan that `stage` writes, and tars built with the attacks in them.
The release is the committed v1.1.0; a validator's models directory starts
with v1.0.0 and the image's plan (v1.0.0 for every height). Every refusal
must leave the models directory exactly as it was, and a reader polling the
plan file throughout never sees anything but a valid plan.
"""

import hashlib
import http.server
import io
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tarfile
import threading
import time

import pytest

from image import engine_fixtures
from image import podman
from inference.v1 import inference_pb2 as pb
from inference.v1 import inference_pb2_grpc as pb_grpc
from ops import committed_model
from ops import sidecar_process
from sidecar import golden
from sidecar import hashing
from sidecar import oci_registry
from sidecar import plan as plan_lib
from sidecar import stage

VERSION, HEIGHT = "v1.1.0", 5000
RELEASE_DIR = "trust_score_v1_1"
CAP = 64 << 20
# The committed v1.1.0's artifact (README): the packing is part of what every machine must reproduce.
V1_1_ARTIFACT = "sha256:35de8ecd88ab89d479266ecb13a1dff5a3f6fe024de42bf4b6decdae49137f44"


@pytest.fixture(scope="module")
def work():
    return sidecar_process.tmpdir("distribution-")


@pytest.fixture(scope="module")
def release(work):
    """A dereferenced copy of the committed v1.1.0 (runfiles are symlinks)."""
    path = os.path.join(work, "release", RELEASE_DIR)
    shutil.copytree(os.path.join(committed_model.MODEL_SRC, "..", RELEASE_DIR), path)
    return path


@pytest.fixture(scope="module")
def model_hash(release):
    return hashing.model_hash(release)


def validator(parent) -> str:
    """A validator's models directory before the upgrade: v1.0.0 and a plan serving it at every height."""
    models = os.path.join(parent, "models")
    os.makedirs(models)
    committed_model.copy_model(models)
    shutil.copyfile(os.path.join(os.path.dirname(committed_model.MODEL_SRC), "plan.json"), os.path.join(models, "plan.json"))
    return models


def snapshot(models):
    out = {}
    for root, dirs, files in os.walk(models):
        for name in dirs + files:
            path = os.path.join(root, name)
            rel = os.path.relpath(path, models)
            out[rel] = hashlib.sha256(open(path, "rb").read()).hexdigest() if os.path.isfile(path) else "dir"
    return out


@pytest.fixture(scope="module")
def registry(work):
    engine_fixtures.require(podman.registry_missing(), "the model distribution tests")
    r = podman.Registry(work)
    yield r
    r.close()


def run_publish(*args):
    return subprocess.run(sidecar_process.python_command("models.publish") + list(args),
                          env=sidecar_process.child_env(), capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def published(registry, release, work):
    """The release manager's one command: pushed to the registry and written as a .tar."""
    tar_path = os.path.join(work, "model-v1.1.0.tar")
    r = run_publish(release, f"--registry={registry.host}/veid/models", "--plain-http", f"--tar={tar_path}")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    return info, tar_path


def test_publish_twice_gives_the_same_digest(registry, release, published, work, model_hash):
    info, tar_path = published
    # Another machine: another copy, other mtimes and modes, the files written in another order.
    other = os.path.join(work, "elsewhere", RELEASE_DIR)
    shutil.copytree(release, other)
    for root, _, files in os.walk(other):
        for name in reversed(files):
            os.chmod(os.path.join(root, name), 0o600)
            os.utime(os.path.join(root, name), (1, 1))
    r = run_publish(other, f"--registry={registry.host}/veid/again", "--plain-http", f"--tar={tar_path}.again")
    assert r.returncode == 0, r.stderr
    again = json.loads(r.stdout)
    digest = info["model_artifact"].split("@")[1]
    assert digest == V1_1_ARTIFACT
    assert again["model_artifact"] == f"oci://{registry.host}/veid/again@{digest}"
    assert info["model_hash"] == again["model_hash"] == model_hash
    assert open(tar_path, "rb").read() == open(tar_path + ".again", "rb").read()
    sha = hashlib.sha256(open(tar_path, "rb").read()).hexdigest()
    assert open(tar_path + ".sha256").read() == f"{sha}  {os.path.basename(tar_path)}\n"
    # The tag names the same manifest, and the manifest says what it is.
    client = oci_registry.Registry(f"http://{registry.host}", "veid/models")
    manifest, _ = client.manifest(VERSION)
    assert oci_registry.digest_of(manifest) == digest
    doc = json.loads(manifest)
    assert doc["artifactType"] == "application/vnd.veid.model.v1"
    assert doc["annotations"] == {"org.opencontainers.image.version": VERSION, "dev.veid.model.hash": model_hash}
    print(f"\nv1.1.0 artifact digest, two builds: {digest}")


def test_publish_refuses_a_model_that_does_not_match_its_metadata(release, work):
    broken = os.path.join(work, "broken", RELEASE_DIR)
    shutil.copytree(release, broken)
    with open(os.path.join(broken, "saved_model.pb"), "ab") as f:
        f.write(b"\0")
    r = run_publish(broken, f"--tar={work}/broken.tar")
    assert r.returncode == 1 and "not a released model" in r.stderr and not os.path.exists(f"{work}/broken.tar")


# --- HTTP(S) sources ------------------------------------------------------------

class _Server(http.server.ThreadingHTTPServer):
    """path -> (status, body, bytes actually sent before closing or None for all)."""

    daemon_threads = True

    def __init__(self):
        self.routes = {}
        super().__init__(("127.0.0.1", 0), self._Handler)

    class _Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            status, body, cut = self.server.routes.get(self.path.split("?")[0], (404, b"no such file\n", None))
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            self.wfile.write(body if cut is None else body[:cut])
            self.wfile.flush()
            if cut is not None:
                self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True

        def log_message(self, *args):
            pass


@pytest.fixture(scope="module")
def https(work):
    cert, key = os.path.join(work, "cert.pem"), os.path.join(work, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    server = _Server()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    old = os.environ.get("SSL_CERT_FILE")
    os.environ["SSL_CERT_FILE"] = cert
    server.base = f"https://127.0.0.1:{server.server_address[1]}"
    yield server
    server.shutdown()
    server.server_close()
    if old is None:
        del os.environ["SSL_CERT_FILE"]
    else:
        os.environ["SSL_CERT_FILE"] = old


# --- refusals -------------------------------------------------------------------

def _stage(models, artifact, h, **kwargs):
    rel = stage.Release(VERSION, h, HEIGHT, artifact)
    return stage.stage(rel, os.path.join(models, "plan.json"), models, "trust_score_v1.1.0", CAP,
                       plain_http=True, log=lambda m: None, **kwargs)


def _tar_with(release, extra):
    """The release's tar with `extra` (TarInfo, bytes or None) members appended."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for rel in sorted(os.listdir(release)):
            if os.path.isfile(os.path.join(release, rel)):
                tar.add(os.path.join(release, rel), rel)
        for info, data in extra:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def _member(name, kind=tarfile.REGTYPE, data=b"", linkname=""):
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname = kind, len(data), linkname
    return info, data if kind == tarfile.REGTYPE else None


def _sparse_tar(work):
    src = os.path.join(work, "sparse-src")
    os.makedirs(src, exist_ok=True)
    with open(os.path.join(src, "variables.data"), "wb") as f:
        f.truncate(10 << 30)  # a hole: nothing is written, and nothing must be
    out = os.path.join(work, "sparse.tar")
    subprocess.run(["tar", "--sparse", "--format=gnu", "-cf", out, "-C", src, "variables.data"], check=True)
    return open(out, "rb").read()


@pytest.fixture(scope="module")
def attacks(release, work, published):
    """name -> tar bytes."""
    _, tar_path = published
    good = open(tar_path, "rb").read()
    flipped = bytearray(good)
    flipped[len(flipped) // 2] ^= 1
    return {
        "flipped_byte": bytes(flipped),
        "dotdot": _tar_with(release, [_member("../escaped", data=b"x")]),
        "symlink": _tar_with(release, [_member("variables/link", tarfile.SYMTYPE, linkname="/etc/passwd")]),
        "hard_link": _tar_with(release, [_member("copy.pb", tarfile.LNKTYPE, linkname="saved_model.pb")]),
        "sparse_10g": _sparse_tar(work),
    }


@pytest.mark.parametrize("name,fragment", [
    ("flipped_byte", "refusing it"),
    ("dotdot", "'..'"),
    ("symlink", "symlink"),
    ("hard_link", "hard link"),
    ("sparse_10g", "10737418240 bytes would take the model over the size cap"),
])
def test_attacks_from_a_file_and_over_https_are_refused_leaving_nothing(work, attacks, https, model_hash, name,
                                                                        fragment):
    models = validator(os.path.join(work, f"attack-{name}"))
    before = snapshot(models)
    data = attacks[name]
    path = os.path.join(work, f"{name}.tar")
    with open(path, "wb") as f:
        f.write(data)
    # The flipped tar is checked against the good tar's checksum; the others carry their own.
    checksum = hashlib.sha256(data if name != "flipped_byte" else _good_tar(work)).hexdigest()
    https.routes[f"/{name}.tar"] = (200, data, None)
    for artifact in (f"{path}?checksum=sha256:{checksum}", f"{https.base}/{name}.tar?checksum=sha256:{checksum}"):
        with pytest.raises(stage.StageError, match=fragment):
            _stage(models, artifact, model_hash)
        assert snapshot(models) == before


def _good_tar(work):
    return open(os.path.join(work, "model-v1.1.0.tar"), "rb").read()


def test_a_wrong_model_hash_is_refused_and_a_foreign_hash_form_is_explained(work, published, model_hash, release):
    _, tar_path = published
    models = validator(os.path.join(work, "wrong-hash"))
    before = snapshot(models)
    with pytest.raises(stage.StageError, match=f"hashes to {model_hash} but expected {'0' * 64}$"):
        _stage(models, tar_path, "0" * 64)
    graph_only = hashlib.sha256(open(os.path.join(release, "saved_model.pb"), "rb").read()).hexdigest()
    with pytest.raises(stage.StageError, match=f"{graph_only} is the sha256 of saved_model.pb alone .* model_hash"):
        _stage(models, tar_path, graph_only)
    assert snapshot(models) == before


def test_the_sidecar_explains_a_graph_only_expected_hash(work):
    """What a new user tries first: --expected-hash=$(sha256sum …/saved_model.pb | cut -d' ' -f1)."""
    model = committed_model.copy_model(os.path.join(work, "flag"))
    graph_only = hashlib.sha256(open(os.path.join(model, "saved_model.pb"), "rb").read()).hexdigest()
    r = sidecar_process.run_to_exit(f"--model-path={model}", f"--expected-hash={graph_only}", timeout=120)
    assert r.returncode != 0 and "model hash mismatch" in r.stdout, r.stdout
    assert f"{graph_only} is the sha256 of saved_model.pb alone (the graph, without the weights)" in r.stdout, r.stdout
    assert "not its model_hash" in r.stdout


def test_truncated_download_404_500_and_untrusted_tls_leave_nothing(work, https, registry, published, model_hash):
    info, _ = published
    good = _good_tar(work)
    checksum = hashlib.sha256(good).hexdigest()
    https.routes["/cut.tar"] = (200, good, len(good) // 3)
    https.routes["/v2/veid/models/manifests/" + info["model_artifact"].split("@")[1]] = (500, b"boom", None)
    models = validator(os.path.join(work, "network"))
    before = snapshot(models)
    host = https.base.split("://")[1]
    digest = info["model_artifact"].split("@")[1]
    cases = [
        (f"{https.base}/cut.tar?checksum=sha256:{checksum}", "the download was cut short: [0-9]+ of [0-9]+ bytes arrived"),
        (f"{https.base}/missing.tar?checksum=sha256:{checksum}", "answered 404"),
        (f"oci://{registry.host}/veid/models@sha256:{'0' * 64}", "the registry has no such manifest"),
        (f"oci://{registry.host}/veid/nothing-here@{digest}", "the registry has no such manifest"),
    ]
    for artifact, fragment in cases:
        with pytest.raises(stage.StageError, match=fragment):
            _stage(models, artifact, model_hash)
        assert snapshot(models) == before, artifact
    # A registry answering 500 (the HTTPS server, spoken to as a registry over TLS).
    rel = stage.Release(VERSION, model_hash, HEIGHT, f"oci://{host}/veid/models@{digest}")
    with pytest.raises(stage.StageError, match="500"):
        stage.stage(rel, os.path.join(models, "plan.json"), models, "trust_score_v1.1.0", CAP, log=lambda m: None)
    # A certificate nobody trusts.
    os.environ["SSL_CERT_FILE"], trusted = "/dev/null", os.environ["SSL_CERT_FILE"]
    try:
        with pytest.raises(stage.StageError, match="CERTIFICATE_VERIFY_FAILED"):
            _stage(models, f"{https.base}/cut.tar?checksum=sha256:{checksum}", model_hash)
    finally:
        os.environ["SSL_CERT_FILE"] = trusted
    assert snapshot(models) == before


def test_a_registry_that_serves_other_bytes_is_refused(work, registry, published, model_hash):
    info, _ = published
    # Flip a byte of the layer in the registry's own storage.
    layer = json.loads(oci_registry.Registry(f"http://{registry.host}", "veid/models").manifest(VERSION)[0])["layers"][0]
    hexdigest = layer["digest"].split(":")[1]
    blob = os.path.join(registry.dir, "data", "docker", "registry", "v2", "blobs", "sha256", hexdigest[:2], hexdigest,
                        "data")
    original = open(blob, "rb").read()
    tampered = bytearray(original)
    tampered[1000] ^= 1
    models = validator(os.path.join(work, "tampered"))
    before = snapshot(models)
    try:
        with open(blob, "wb") as f:
            f.write(tampered)
        with pytest.raises(stage.StageError, match=f"has digest sha256:[0-9a-f]{{64}}, not {layer['digest']}"):
            _stage(models, info["model_artifact"], model_hash)
    finally:
        with open(blob, "wb") as f:
            f.write(original)
    assert snapshot(models) == before


def _bad_golden_release(release, work):
    """v1.1.0 whose golden vectors expect a wrong output; hash and metadata agree, so only the golden run catches it."""
    path = os.path.join(work, "bad-golden", RELEASE_DIR)
    shutil.copytree(release, path)
    gpath = os.path.join(path, golden.GOLDEN_FILE)
    doc = json.load(open(gpath))
    doc["vectors"][0]["output_hash"] = "0" * 64
    json.dump(doc, open(gpath, "w"))
    mpath = os.path.join(path, hashing.METADATA_FILE)
    meta = json.load(open(mpath))
    meta["model_hash"] = hashing.model_hash(path)
    json.dump(meta, open(mpath, "w"))
    return path, meta["model_hash"]


# --- staging that succeeds ----------------------------------------------------------

class PlanReader:
    """Reads the plan file as fast as it can while staging runs; every read must be a valid plan."""

    def __init__(self, models):
        self.path, self.reads, self.bad, self.stop = os.path.join(models, "plan.json"), 0, [], threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            data = open(self.path, "rb").read()
            try:
                plan_lib.parse(data, os.path.dirname(self.path))
            except plan_lib.PlanError as e:
                self.bad.append(str(e))
            self.reads += 1

    def close(self):
        self.stop.set()
        self.thread.join()
        assert not self.bad, self.bad[:3]
        assert self.reads > 10


def test_golden_mismatch_is_refused(work, release, registry):
    bad, bad_hash = _bad_golden_release(release, work)
    r = run_publish(bad, f"--registry={registry.host}/veid/bad", "--plain-http")
    assert r.returncode == 0, r.stderr
    models = validator(os.path.join(work, "bad-golden-validator"))
    before = snapshot(models)
    with pytest.raises(stage.StageError, match="golden vector self-check failed"):
        _stage(models, json.loads(r.stdout)["model_artifact"], bad_hash)
    assert snapshot(models) == before


def plan_entries(models):
    return [(e.version, os.path.basename(e.path), e.expected_hash, e.activation_height)
            for e in plan_lib.load(os.path.join(models, "plan.json")).entries]


def test_stage_from_the_registry_https_and_a_file(work, registry, https, published, model_hash, release):
    info, tar_path = published
    good = _good_tar(work)
    https.routes["/model.tar"] = (200, good, None)
    sources = {
        "registry": info["model_artifact"],
        "https": f"{https.base}/model.tar?checksum=sha256:{hashlib.sha256(good).hexdigest().upper()}",
        "file": tar_path,
    }
    expected_v1 = plan_entries(validator(os.path.join(work, "expected")))[0]
    for name, artifact in sources.items():
        models = validator(os.path.join(work, f"ok-{name}"))
        reader = PlanReader(models)
        t0 = time.monotonic()
        did = _stage(models, artifact, "sha256:" + model_hash.upper())
        elapsed = time.monotonic() - t0
        reader.close()
        assert "installed" in did and "added v1.1.0 at height 5000" in did, did
        print(f"\nstaged from {name} in {elapsed:.2f}s ({reader.reads} plan reads, all valid)")
        assert hashing.model_hash(os.path.join(models, "trust_score_v1.1.0")) == model_hash
        assert plan_entries(models) == [expected_v1, (VERSION, "trust_score_v1.1.0", model_hash, HEIGHT)]
        assert not [n for n in os.listdir(models) if n.startswith(".")]
        # Again: nothing to fetch, nothing to write.
        before = snapshot(models)
        assert "already holds" in _stage(models, "/nonexistent.tar", model_hash)
        assert snapshot(models) == before
    # A different directory under the same name is never overwritten; both hashes are named.
    with pytest.raises(stage.StageError, match=f"already exists with model hash {model_hash}, not the approved {'1' * 64}"):
        _stage(models, tar_path, "1" * 64)


def test_two_stage_commands_at_once_and_the_running_sidecar_adopts_the_entry(work, published, model_hash):
    """The operator's path: a sidecar serving the image's plan; two `stage` commands of the same version at
    once (one with the flags, one with the Cosmos x/upgrade plan copied from the proposal), a reader polling
    the plan throughout; SIGHUP; v1.1.0 verified and serving from the height."""
    info, _ = published
    parent = os.path.join(work, "live")
    models = validator(parent)
    with sidecar_process.serving(upgrade_plan=os.path.join("models", "plan.json"), cwd=parent) as sidecar:
        upgrade = {"name": VERSION, "height": str(HEIGHT), "info": json.dumps(info)}
        commands = [[f"--upgrade-info={json.dumps(upgrade)}"],
                    [f"--version={VERSION}", f"--model-hash={model_hash}", f"--height={HEIGHT}",
                     f"--artifact={info['model_artifact']}"]]
        reader = PlanReader(models)
        t0 = time.monotonic()
        procs = [subprocess.Popen(sidecar_process.python_command("sidecar.stage") + [
            "--plan=models/plan.json", "--plain-http", *args], env=sidecar_process.child_env(), cwd=parent,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for args in commands]
        results = [(p.wait(300), *p.communicate()) for p in procs]
        took = time.monotonic() - t0
        reader.close()
        installed = [r for r in results if r[0] == 0 and "installed" in r[1]]
        assert len(installed) == 1, results
        (rc, out, err), = [r for r in results if r not in installed]
        assert (rc == 1 and "another stage is running in" in err) or (rc == 0 and "already holds" in out), results
        assert plan_entries(models)[1] == (VERSION, "trust_score_v1.1.0", model_hash, HEIGHT)
        assert not [n for n in os.listdir(models) if n.startswith(".")]
        print(f"\nstage (the command, TensorFlow import included) from the registry: {took:.2f}s")
        sidecar.proc.send_signal(signal.SIGHUP)
        with sidecar.channel() as ch:
            stub = pb_grpc.InferenceServiceStub(ch)
            end = time.monotonic() + 120
            while True:
                states = {e.version: pb.ModelState.Name(e.state) for e in
                          stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=60).plan}
                if states.get(VERSION) == "MODEL_STATE_VERIFIED":
                    break
                assert time.monotonic() < end, f"{states}\n{sidecar.log()[-4000:]}"
                time.sleep(0.2)
            vector = golden.load_vectors(os.path.join(models, "trust_score_v1.1.0"))[0]
            resp = stub.ComputeScore(pb.ComputeScoreRequest(
                features=vector["features"], metadata=pb.InferenceMetadata(block_height=HEIGHT)), timeout=60)
            assert (resp.model_version, resp.model_hash, resp.output_hash) == (VERSION, model_hash,
                                                                               vector["output_hash"])
            before = stub.ComputeScore(pb.ComputeScoreRequest(
                features=vector["features"], metadata=pb.InferenceMetadata(block_height=HEIGHT - 1)), timeout=60)
            assert before.model_version == "v1.0.0"


def test_the_image_entrypoint_runs_stage_with_its_plan(work, published, model_hash):
    """The image's entrypoint is `sidecar.main --grpc-addr=… --upgrade-plan=/models/plan.json`; `IMAGE stage …`
    appends to it. stage runs instead of the sidecar, and the entrypoint's plan is its --plan."""
    info, _ = published
    plan = os.path.join(work, "no-such-dir", "plan.json")
    r = sidecar_process.run_to_exit("--grpc-addr=:50051", "--metrics-addr=:9090", f"--upgrade-plan={plan}", "stage",
                                    f"--version={VERSION}", f"--model-hash=SHA256:{model_hash.upper()}",
                                    f"--height={HEIGHT}", f"--artifact={info['model_artifact']}", "--plain-http",
                                    timeout=120)
    assert r.returncode == 1 and f"stage: refused: plan: no plan file at {plan}" in r.stdout, r.stdout
    r = sidecar_process.run_to_exit(f"--upgrade-plan={plan}", "stage", f"--version={VERSION}", "--height=x",
                                    timeout=120)
    assert r.returncode == 1 and "stage: refused: missing --model-hash, --artifact" in r.stdout, r.stdout


def test_a_version_the_plan_already_has_is_found_where_the_plan_puts_it(work, published, model_hash):
    """The committed models directory already stages v1.1.0 as trust_score_v1_1 (plan.example.json):
    nothing is fetched, nothing written, and no second copy appears under another name."""
    models = committed_model.copy_models(os.path.join(work, "committed"))
    before = snapshot(models)
    rel = stage.Release(VERSION, model_hash, HEIGHT, "/nonexistent.tar")
    did = stage.stage(rel, os.path.join(models, "plan.example.json"), models, None, CAP, log=lambda m: None)
    assert f"{models}/trust_score_v1_1 already holds" in did and "the plan already has v1.1.0" in did, did
    assert snapshot(models) == before


def test_an_interrupted_stage_does_not_block_the_retry(work, published, model_hash):
    """SIGKILL mid-run leaves a .stage-* directory; the next run removes it and stages."""
    info, _ = published
    parent = os.path.join(work, "interrupted")
    models = validator(parent)
    leftover = os.path.join(models, ".stage-killed")
    os.makedirs(os.path.join(leftover, "trust_score_v1.1.0"))
    with open(os.path.join(leftover, "artifact.tar"), "wb") as f:
        f.write(_good_tar(work)[:4096])
    assert "installed" in _stage(models, info["model_artifact"], model_hash)
    assert not os.path.exists(leftover)


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q", "-s", "-p", "no:cacheprovider"]))
