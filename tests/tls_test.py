"""Mutual TLS on a real sidecar: the handshake matrix from Python and from Go
(Debian's grpc-go, as the chain node), answers byte-identical to plaintext,
TLS versions through openssl s_client, start-up refusals, and rotation by
SIGHUP under load with no failed call.
"""

import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time

import grpc
import pytest

from inference.v1 import inference_pb2 as pb
from ops import committed_model
from ops import dev_certs
from ops import sidecar_process
from sidecar import golden

SERVING_LINE = "SERVING inference.v1"
METHOD = "/inference.v1.InferenceService/"
GO_CLIENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "go", "tls_client.go")


def read(path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


@pytest.fixture(scope="module")
def certs():
    d = sidecar_process.tmpdir("tls-certs-")
    c = dev_certs.make_dev_set(d)
    ca = (c["ca"], os.path.join(d, "ca.key"))
    other_ca = dev_certs.make_ca(d, "other-ca")
    c["other_client_cert"], c["other_client_key"] = dev_certs.make_leaf(d, "other-client", other_ca, "clientAuth")
    c["expired_cert"], c["expired_key"] = dev_certs.make_leaf(d, "expired", ca, "clientAuth", days=-1)
    c["server2_cert"], c["server2_key"] = dev_certs.make_leaf(d, "server2", ca, "serverAuth")
    c["dir"], c["ca_pair"] = d, ca
    return c


def credentials(certs, cert="client_cert", key="client_key"):
    return grpc.ssl_channel_credentials(
        read(certs["ca"]), read(certs[key]) if key else None, read(certs[cert]) if cert else None)


def live_dir(certs, cert: str, key: str) -> str:
    """The sidecar's Secret volume (tls.crt, tls.key, ca.crt), now holding `cert` and `key`."""
    return dev_certs.write_secret_volume(os.path.join(certs["dir"], "live"), {
        "tls.crt": certs[cert], "tls.key": certs[key], "ca.crt": certs["ca"]})


def tls_flags(live: str) -> list[str]:
    return [f"--tls-cert-file={live}/tls.crt", f"--tls-key-file={live}/tls.key", f"--tls-client-ca-file={live}/ca.crt"]


@pytest.fixture(scope="module")
def plain():
    # Plaintext on loopback, explicitly: the baseline the TLS answers must equal.
    with sidecar_process.serving("--require-mtls=false") as s:
        yield s


@pytest.fixture(scope="module")
def mtls(certs):
    live = live_dir(certs, "server_cert", "server_key")
    # Polling is off (1h): a rotation here happens only on SIGHUP.
    with sidecar_process.serving(*tls_flags(live), "--tls-poll-interval=1h", credentials=credentials(certs)) as s:
        s.live = live
        yield s


def requests() -> list[tuple[str, bytes]]:
    calls = [("GetModelInfo", pb.GetModelInfoRequest()),
             ("VerifyDeterminism", pb.VerifyDeterminismRequest())]
    for v in golden.load_vectors(committed_model.MODEL_SRC):
        calls.append(("ComputeScore", pb.ComputeScoreRequest(features=v["features"], return_contributions=True)))
    return [(METHOD + m, r.SerializeToString()) for m, r in calls]


def raw_call(channel, method: str, request: bytes) -> bytes:
    return channel.unary_unary(method)(request, timeout=10)


def comparable(method: str, response: bytes) -> bytes:
    """The response bytes as received, but for ComputeScore's compute_time_ms (a measurement, zeroed)."""
    if not method.endswith("/ComputeScore"):
        return response
    r = pb.ComputeScoreResponse.FromString(response)
    r.compute_time_ms = 0
    return r.SerializeToString(deterministic=True)


def test_every_rpc_is_byte_identical_to_plaintext(plain, mtls):
    with plain.channel() as p, mtls.channel() as t:
        for method, request in requests():
            assert comparable(method, raw_call(t, method, request)) == comparable(method, raw_call(p, method, request))
        # These two carry uptime and counters, so they differ between any two sidecars: they must answer.
        health = pb.HealthCheckResponse.FromString(raw_call(t, METHOD + "HealthCheck", b""))
        assert health.status == pb.HEALTH_STATUS_HEALTHY
        metrics = pb.GetMetricsResponse.FromString(raw_call(t, METHOD + "GetMetrics", b""))
        assert metrics.total_inferences >= 1


def test_plaintext_sidecar_warned_once(plain):
    assert plain.log().count("--require-mtls=false: serving plaintext gRPC on loopback 127.0.0.1") == 1
    assert "plaintext" in plain.log().split(SERVING_LINE)[1].splitlines()[0]


def refused_python(target: str, creds) -> grpc.StatusCode:
    channel = grpc.secure_channel(target, creds) if creds else grpc.insecure_channel(target)
    with channel:
        with pytest.raises(grpc.RpcError) as e:
            raw_call(channel, METHOD + "GetModelInfo", b"")
    return e.value.code()


@pytest.mark.parametrize("case", ["no client certificate", "another CA", "expired", "plaintext"])
def test_python_refused_and_others_still_served(certs, mtls, case):
    creds = {
        "no client certificate": lambda: credentials(certs, cert=None, key=None),
        "another CA": lambda: credentials(certs, "other_client_cert", "other_client_key"),
        "expired": lambda: credentials(certs, "expired_cert", "expired_key"),
        "plaintext": lambda: None,
    }[case]()
    with mtls.channel() as good:
        before = raw_call(good, METHOD + "GetModelInfo", b"")
        assert refused_python(mtls.target, creds) == grpc.StatusCode.UNAVAILABLE
        assert raw_call(good, METHOD + "GetModelInfo", b"") == before
    with mtls.channel() as fresh:
        assert raw_call(fresh, METHOD + "GetModelInfo", b"") == before


def raw_tls_context(certs, client_certificate: bool = True) -> ssl.SSLContext:
    """A bare TLS client as gRPC's would offer itself: the CA, ALPN h2, with or without the client certificate."""
    ctx = ssl.create_default_context(cafile=certs["ca"])
    if client_certificate:
        ctx.load_cert_chain(certs["client_cert"], certs["client_key"])
    ctx.set_alpn_protocols(["h2"])
    return ctx


def raw_tls(ctx: ssl.SSLContext, target: str) -> ssl.SSLSocket:
    """A handshake with the sidecar at `target`; the TCP socket is closed if it fails."""
    host, port = target.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=10)
    try:
        return ctx.wrap_socket(sock, server_hostname=host)
    except BaseException:
        sock.close()
        raise


def refused_handshakes(certs, target: str, count: int) -> int:
    """Raw TLS handshakes without a client certificate; returns how many the server refused."""
    ctx = raw_tls_context(certs, client_certificate=False)
    refused = 0
    for _ in range(count):
        try:
            with raw_tls(ctx, target) as tls:
                refused += tls.recv(1) == b""  # TLS 1.3: the refusal arrives after the client's Finished
        except (ssl.SSLError, ConnectionResetError):
            refused += 1
    return refused


def test_refused_handshakes_do_not_flood_the_log(certs, mtls):
    # At gRPC core's default log level each of these would add a line.
    lines = len(mtls.log().splitlines())
    assert refused_handshakes(certs, mtls.target, 300) == 300
    with mtls.channel() as ch:
        raw_call(ch, METHOD + "GetModelInfo", b"")
    time.sleep(0.5)  # what gRPC core might still write
    added = mtls.log().splitlines()[lines:]
    assert len(added) < 10, "\n".join(added[:20])


# -- Go (the chain node's side) ---------------------------------------------------------------


@pytest.fixture(scope="module")
def go_client():
    go = shutil.which("go")
    assert go, "go not found (apt-get install golang-go golang-google-grpc-dev; ./bazelw installs them)"
    d = sidecar_process.tmpdir("go-")
    out = os.path.join(d, "tls_client")
    env = dict(os.environ, GO111MODULE="off", GOPATH="/usr/share/gocode", GOCACHE=os.path.join(d, "cache"),
               HOME=d, CGO_ENABLED="0")
    t0 = time.monotonic()
    r = subprocess.run([go, "build", "-o", out, GO_CLIENT], env=env, capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    print(f"go build of the grpc-go client: {time.monotonic() - t0:.1f}s")
    return out


def go_calls(go_client, target: str, calls, *args: str) -> list[str]:
    stdin = "".join(f"{m} {r.hex()}\n" for m, r in calls)
    r = subprocess.run([go_client, f"-addr={target}", *args], input=stdin, capture_output=True, text=True,
                       timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


def go_tls(certs, cert="client_cert", key="client_key") -> list[str]:
    return [f"-cacert={certs['ca']}"] + ([f"-cert={certs[cert]}", f"-key={certs[key]}"] if cert else [])


def test_go_client_byte_identical(certs, plain, mtls, go_client):
    calls = requests()
    with plain.channel() as p:
        want = [comparable(m, raw_call(p, m, r)) for m, r in calls]
    got = go_calls(go_client, mtls.target, calls, *go_tls(certs))
    assert all(line.startswith("OK ") for line in got), got
    assert [comparable(m, bytes.fromhex(line[3:])) for (m, _), line in zip(calls, got)] == want


@pytest.mark.parametrize("case", ["no client certificate", "another CA", "expired", "plaintext"])
def test_go_refused_and_others_still_served(certs, mtls, go_client, case):
    args = {
        "no client certificate": go_tls(certs, cert=None),
        "another CA": go_tls(certs, "other_client_cert", "other_client_key"),
        "expired": go_tls(certs, "expired_cert", "expired_key"),
        "plaintext": [],
    }[case]
    (line,) = go_calls(go_client, mtls.target, [(METHOD + "GetModelInfo", b"")], *args)
    assert line.startswith("ERR Unavailable "), line
    (line,) = go_calls(go_client, mtls.target, [(METHOD + "GetModelInfo", b"")], *go_tls(certs))
    assert line.startswith("OK "), line


# -- TLS versions -------------------------------------------------------------------------------


@pytest.mark.parametrize("version,accepted", [("-tls1", False), ("-tls1_1", False), ("-tls1_2", True),
                                              ("-tls1_3", True)])
def test_tls_versions(certs, mtls, version, accepted):
    # SECLEVEL=0 lets openssl's client offer TLS 1.0/1.1 at all: the refusal must come from the sidecar.
    r = subprocess.run(
        [shutil.which("openssl"), "s_client", "-connect", mtls.target, version, "-cipher", "DEFAULT@SECLEVEL=0",
         "-alpn", "h2", "-CAfile", certs["ca"], "-cert", certs["client_cert"], "-key", certs["client_key"],
         "-verify_return_error", "-brief", "-msg"],
        input=b"", capture_output=True, timeout=30, check=False)
    # After the handshake s_client prints the server's HTTP/2 frames too.
    out = (r.stdout + r.stderr).decode(errors="replace")
    expected = {"-tls1": "TLSv1", "-tls1_1": "TLSv1.1", "-tls1_2": "TLSv1.2", "-tls1_3": "TLSv1.3"}[version]
    if accepted:
        assert r.returncode == 0 and f"Protocol version: {expected}\n" in out, out
    else:
        # The client did offer exactly that version (-msg traces its ClientHello), and the sidecar
        # hung up without a ServerHello: a client that cannot speak TLS 1.0 would fail here too.
        offered = {"-tls1": "TLS 1.0", "-tls1_1": "TLS 1.1"}[version]
        assert f">>> {offered}, Handshake [" in out and "ClientHello" in out, out
        assert r.returncode != 0 and "ServerHello" not in out and "CONNECTION ESTABLISHED" not in out, out
    with mtls.channel() as ch:
        raw_call(ch, METHOD + "GetModelInfo", b"")


# -- rotation -----------------------------------------------------------------------------------


def served_certificate(certs, target: str) -> bytes:
    """The DER certificate a new handshake gets."""
    with raw_tls(raw_tls_context(certs), target) as s:
        return s.getpeercert(binary_form=True)


def der(path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(read(path).decode())


def test_rotation_under_load(certs, mtls):
    """c=4 callers, each opening a new connection every few calls; SIGHUP rotates, then a broken rotation is
    refused (the old certificate stays, once in the log, on /metrics), then a good one. No call fails."""
    stop, failures, counts = threading.Event(), [], [0] * 4
    request = requests()[-1]

    def caller(k):
        while not stop.is_set():
            with mtls.channel() as ch:
                for _ in range(5):
                    try:
                        raw_call(ch, *request)
                        counts[k] += 1
                    except grpc.RpcError as e:
                        failures.append(f"{e.code()}: {e.details()}")

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    try:
        assert served_certificate(certs, mtls.target) == der(certs["server_cert"])

        def rotate_and_wait(cert, key, wanted_der, log_line):
            n = mtls.log().count(log_line)
            live_dir(certs, cert, key)
            mtls.proc.send_signal(signal.SIGHUP)
            sidecar_process.wait_until(lambda: mtls.log().count(log_line) > n, 30.0, mtls.log)
            assert served_certificate(certs, mtls.target) == wanted_der

        rotate_and_wait("server2_cert", "server2_key", der(certs["server2_cert"]), "TLS files reloaded")
        assert mtls.sample("veid_tls_material_stale") == 0

        garbage = os.path.join(certs["dir"], "garbage.crt")
        with open(garbage, "wb") as f:
            f.write(read(certs["server2_cert"]) + b"garbage")
        certs["garbage"] = garbage
        rotate_and_wait("garbage", "server2_key", der(certs["server2_cert"]), "TLS files refused")
        assert mtls.sample("veid_tls_material_stale") == 1
        assert mtls.sample("veid_tls_reloads_total", {"result": "error"}) == 1
        assert mtls.log().count("TLS files refused") == 1
        assert "trailing data after the PEM block" in mtls.log()

        rotate_and_wait("server_cert", "server_key", der(certs["server_cert"]), "TLS files reloaded")
        assert mtls.sample("veid_tls_material_stale") == 0
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not failures, failures[:5]
    assert min(counts) > 0, counts
    print(f"rotation under load: {sum(counts)} calls by 4 callers, {len(failures)} failed")


# -- start-up refusals --------------------------------------------------------------------------


def run(*args):
    return sidecar_process.run_to_exit(f"--metrics-addr=127.0.0.1:{sidecar_process.free_port()}", *args, timeout=60)


def start_up_cases(certs):
    good = {"cert": certs["server_cert"], "key": certs["server_key"], "ca": certs["ca"]}
    bad_pem = os.path.join(certs["dir"], "trailing.crt")
    with open(bad_pem, "wb") as f:
        f.write(read(certs["server_cert"]) + b"x")

    def files(**o):
        f = dict(good, **o)
        return [f"--tls-cert-file={f['cert']}", f"--tls-key-file={f['key']}", f"--tls-client-ca-file={f['ca']}"]

    port = sidecar_process.free_port()
    return {
        "exposed without TLS": ([f"--grpc-addr=:{port}"], "--grpc-addr listens on every interface, not loopback"),
        "exposed, mTLS demanded": ([f"--grpc-addr=:{port}", "--require-mtls"], "--require-mtls needs --tls-cert-file"),
        "partial": ([f"--tls-cert-file={good['cert']}"], "--tls-cert-file given without --tls-key-file"),
        "contradiction": (files() + ["--require-mtls=false"], "--require-mtls=false contradicts"),
        "relative": (files(cert="server.crt"), "--tls-cert-file='server.crt' is not an absolute path"),
        "directory": (files(ca=certs["dir"]), f"--tls-client-ca-file={certs['dir']} is a directory"),
        "trailing garbage": (files(cert=bad_pem), "trailing data after the PEM block"),
        "no serverAuth": (files(cert=certs["client_cert"], key=certs["client_key"]),
                          "extended key usage does not include serverAuth"),
        "client CA is no CA": (files(ca=certs["server_cert"]), "--tls-client-ca-file="),
        "key of another certificate": (files(key=certs["client_key"]), "--tls-key-file="),
    }


def test_start_up_refusals(certs):
    for name, (args, fragment) in start_up_cases(certs).items():
        r = run(*args)
        assert r.returncode == 1, (name, r.stdout)
        assert "refusing to start: " in r.stdout and fragment in r.stdout, (name, r.stdout)
        assert SERVING_LINE not in r.stdout, name


def test_client_tool(certs, mtls):
    tls_args = [f"--cacert={certs['ca']}", f"--cert={certs['client_cert']}", f"--key={certs['client_key']}"]
    client = sidecar_process.python_command("sidecar.client") + [f"--addr={mtls.target}"]
    ok = subprocess.run(client + tls_args + ["health"], env=sidecar_process.child_env(), capture_output=True,
                        text=True, timeout=60, check=False)
    assert ok.returncode == 0 and '"status": "HEALTH_STATUS_HEALTHY"' in ok.stdout, ok.stderr
    plain = subprocess.run(client + ["health"], env=sidecar_process.child_env(), capture_output=True, text=True,
                           timeout=60, check=False)
    assert plain.returncode == 1 and "health failed: UNAVAILABLE" in plain.stderr, plain.stderr
    partial = subprocess.run(client + tls_args[:1] + ["health"], env=sidecar_process.child_env(),
                             capture_output=True, text=True, timeout=60, check=False)
    assert partial.returncode != 0 and "mutual TLS needs all of --cacert, --cert and --key" in partial.stderr


if __name__ == "__main__":
    # -s: the Go build time and the rotation count belong in the test log.
    raise SystemExit(pytest.main([__file__, "-q", "-s", "-p", "no:cacheprovider"]))
