"""sidecar.tls without a sidecar: the listen policy (every case) and each refusal of the files."""

import base64
import concurrent.futures
import os
import socket
import ssl
import time

import grpc
import pytest
from grpc_health.v1 import health
from grpc_health.v1 import health_pb2
from grpc_health.v1 import health_pb2_grpc

from ops import dev_certs
from sidecar import metrics as metrics_lib
from sidecar import tls

ALL = {"tls-cert-file": "/c", "tls-key-file": "/k", "tls-client-ca-file": "/ca"}
LOOPBACK = ("127.0.0.1", "127.3.2.1", "localhost", "::1")
EXPOSED = ("", "0.0.0.0", "::", "10.1.2.3", "fd00::1", "sidecar.internal", "localhost.example")


@pytest.mark.parametrize("host", LOOPBACK + EXPOSED)
@pytest.mark.parametrize("require_mtls,given", [(True, False), (True, True), (False, True)])
@pytest.mark.parametrize("files", ["none", "all", "cert-only", "no-ca"])
def test_listen_mode(host, require_mtls, given, files):
    chosen = {"none": {}, "all": ALL, "cert-only": {"tls-cert-file": "/c"},
              "no-ca": {"tls-cert-file": "/c", "tls-key-file": "/k"}}[files]
    try:
        mode = tls.listen_mode(host, require_mtls, given, chosen)
    except tls.TLSError as e:
        mode = str(e)
    if files in ("cert-only", "no-ca"):
        assert "--tls-client-ca-file" in mode and "mutual TLS needs all three" in mode
    elif files == "all" and not require_mtls:
        assert mode == "--require-mtls=false contradicts --tls-cert-file, --tls-key-file, --tls-client-ca-file: drop one"
    elif files == "all":
        assert mode == tls.Mode(True, "")
    elif not require_mtls:
        assert not mode.mtls and mode.warning.startswith("--require-mtls=false: serving plaintext gRPC on ")
    elif given:
        assert mode == "--require-mtls needs --tls-cert-file, --tls-key-file, --tls-client-ca-file"
    elif host in LOOPBACK:
        assert mode == tls.Mode(False, "")
    else:
        assert isinstance(mode, str) and mode.startswith("--grpc-addr listens on ") and "--require-mtls=false" in mode


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("certs"))
    paths = dev_certs.make_dev_set(d)
    paths["dir"] = d
    return paths


def flags_for(certs, **override):
    paths = {"tls-cert-file": certs["server_cert"], "tls-key-file": certs["server_key"],
             "tls-client-ca-file": certs["ca"]}
    paths.update({k.replace("_", "-"): v for k, v in override.items()})
    return paths


def refused(paths) -> str:
    with pytest.raises(tls.TLSError) as e:
        tls.load(paths)
    return str(e.value)


def write(certs, name, data: bytes) -> str:
    path = os.path.join(certs["dir"], name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def read(path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def test_the_development_set_loads(certs):
    m = tls.load(flags_for(certs))
    assert m.cert == read(certs["server_cert"]) and m.client_ca == read(certs["ca"])


@pytest.mark.parametrize("flag", tls.FILE_FLAGS)
def test_relative_path(certs, flag):
    assert refused(flags_for(certs, **{flag: "certs/x.pem"})) == f"--{flag}='certs/x.pem' is not an absolute path"


@pytest.mark.parametrize("flag", tls.FILE_FLAGS)
def test_directory(certs, flag):
    assert refused(flags_for(certs, **{flag: certs["dir"]})) == f"--{flag}={certs['dir']} is a directory, not a PEM file"


@pytest.mark.parametrize("flag", tls.FILE_FLAGS)
def test_missing_file(certs, flag):
    msg = refused(flags_for(certs, **{flag: "/nonexistent/x.pem"}))
    assert msg.startswith(f"--{flag}=/nonexistent/x.pem: cannot read: ")


@pytest.mark.parametrize("flag,source", [("tls-cert-file", "server_cert"), ("tls-key-file", "server_key"),
                                         ("tls-client-ca-file", "ca")])
def test_trailing_garbage(certs, flag, source):
    path = write(certs, f"trailing-{flag}", read(certs[source]) + b"junk\n")
    assert "trailing data after the PEM block" in refused(flags_for(certs, **{flag: path}))
    # Whitespace around the block is no garbage.
    path = write(certs, f"spaced-{flag}", b"\n" + read(certs[source]) + b"\n\n")
    tls.load(flags_for(certs, **{flag: path}))


@pytest.mark.parametrize("flag,source", [("tls-cert-file", "server_cert"), ("tls-client-ca-file", "ca")])
def test_two_blocks(certs, flag, source):
    path = write(certs, f"two-{flag}", read(certs[source]) + read(certs["ca"]))
    assert refused(flags_for(certs, **{flag: path})).endswith("holds 2 PEM blocks; exactly one is accepted")


@pytest.mark.parametrize("flag", tls.FILE_FLAGS)
def test_not_pem(certs, flag):
    path = write(certs, "empty", b"")
    assert refused(flags_for(certs, **{flag: path})).endswith("holds 0 PEM blocks; exactly one is accepted")
    path = write(certs, "der", b"\x30\x82\x01\x00garbage")
    assert "no PEM block" in refused(flags_for(certs, **{flag: path}))


def test_wrong_labels(certs):
    assert "a PRIVATE KEY block, not CERTIFICATE" in refused(flags_for(certs, tls_cert_file=certs["server_key"]))
    msg = refused(flags_for(certs, tls_key_file=certs["server_cert"]))
    assert msg.startswith("--tls-key-file=") and "a CERTIFICATE block, not PRIVATE KEY" in msg
    encrypted = write(certs, "enc.key", read(certs["server_key"]).replace(b"PRIVATE KEY", b"ENCRYPTED PRIVATE KEY"))
    assert "a ENCRYPTED PRIVATE KEY block, not PRIVATE KEY" in refused(flags_for(certs, tls_key_file=encrypted))


def test_bad_base64_and_bad_der(certs):
    pem = read(certs["server_cert"])
    lines = pem.split(b"\n")
    bad64 = write(certs, "bad64.crt", b"\n".join([lines[0], b"!!!!" + lines[1][4:]] + lines[2:]))
    assert "no PEM block" in refused(flags_for(certs, tls_cert_file=bad64))
    # Five data characters: one more than a multiple of four can never be base64.
    bad64 = write(certs, "pad.crt", b"-----BEGIN CERTIFICATE-----\nAAAAA\n-----END CERTIFICATE-----\n")
    assert "not valid base64" in refused(flags_for(certs, tls_cert_file=bad64))
    # Valid base64 of a truncated certificate.
    der = tls.one_pem("tls-cert-file", "-", pem, (b"CERTIFICATE",))
    body = base64.encodebytes(der[:-40])
    cut = write(certs, "cut.crt", b"-----BEGIN CERTIFICATE-----\n" + body + b"-----END CERTIFICATE-----\n")
    assert "not a well-formed X.509 certificate" in refused(flags_for(certs, tls_cert_file=cut))
    assert "not a well-formed X.509 certificate" in refused(flags_for(certs, tls_client_ca_file=cut))


@pytest.mark.parametrize("usage", ["clientAuth", None])
def test_server_certificate_without_server_auth(certs, usage):
    cert, key = dev_certs.make_leaf(certs["dir"], f"usage-{usage}", (certs["ca"], certs["dir"] + "/ca.key"), usage)
    msg = refused(flags_for(certs, tls_cert_file=cert, tls_key_file=key))
    assert msg == f"--tls-cert-file={cert}: the certificate's extended key usage does not include serverAuth (1.3.6.1.5.5.7.3.1)"
    both, key = dev_certs.make_leaf(certs["dir"], "both", (certs["ca"], certs["dir"] + "/ca.key"),
                                    "clientAuth,serverAuth")
    tls.load(flags_for(certs, tls_cert_file=both, tls_key_file=key))


def test_client_ca_that_is_no_ca(certs):
    msg = refused(flags_for(certs, tls_client_ca_file=certs["server_cert"]))
    assert msg == f"--tls-client-ca-file={certs['server_cert']}: not a CA certificate (basicConstraints cA is not TRUE)"
    not_ca, _ = dev_certs.make_ca(certs["dir"], "selfsigned", is_ca=False)
    assert "not a CA certificate" in refused(flags_for(certs, tls_client_ca_file=not_ca))


def test_key_of_another_certificate(certs):
    msg = refused(flags_for(certs, tls_key_file=certs["client_key"]))
    assert msg.startswith(f"--tls-key-file={certs['client_key']}: not the private key of --tls-cert-file=")


def test_unreadable_file(certs):
    if os.geteuid() == 0:
        # root reads anything: an unreadable file is one whose directory is gone.
        path = os.path.join(certs["dir"], "gone", "x.pem")
    else:
        path = write(certs, "noread.pem", read(certs["ca"]))
        os.chmod(path, 0)
    assert refused(flags_for(certs, tls_client_ca_file=path)).startswith(f"--tls-client-ca-file={path}: cannot read")


def test_extensions_parser_on_every_truncation(certs):
    # The DER walker bounds-checks: any prefix of a certificate is a ValueError, never an IndexError.
    der = tls.one_pem("tls-cert-file", "-", read(certs["server_cert"]), (b"CERTIFICATE",))
    assert tls.has_server_auth(tls.extensions(der))
    for n in range(len(der)):
        with pytest.raises(ValueError):
            tls.extensions(der[:n])


# -- rotation by file change, on a real gRPC server (the health service; no model needed) ------


def served_certificate(certs, port: int) -> bytes:
    ctx = ssl.create_default_context(cafile=certs["ca"])
    ctx.load_cert_chain(certs["client_cert"], certs["client_key"])
    ctx.set_alpn_protocols(["h2"])
    with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname="localhost") as s:
        return s.getpeercert(binary_form=True)


def wait_for(predicate, timeout=20.0):
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.05)


def test_rotation_on_file_change(certs):
    d = certs["dir"]
    server2 = dev_certs.make_leaf(d, "server2", (certs["ca"], d + "/ca.key"), "serverAuth")
    volume = os.path.join(d, "volume")
    secret = lambda cert, key: dev_certs.write_secret_volume(volume, {"c.pem": cert, "k.pem": key, "ca.pem": certs["ca"]})
    secret(certs["server_cert"], certs["server_key"])
    observer = metrics_lib.Metrics()
    rotation = tls.Rotation({"tls-cert-file": volume + "/c.pem", "tls-key-file": volume + "/k.pem",
                             "tls-client-ca-file": volume + "/ca.pem"}, observer, poll_s=0.05)
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(4))
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    port = server.add_secure_port("127.0.0.1:0", rotation.server_credentials())
    server.start()
    rotation.start()
    creds = grpc.ssl_channel_credentials(read(certs["ca"]), read(certs["client_key"]), read(certs["client_cert"]))
    stale = lambda: observer.registry.get_sample_value("veid_tls_material_stale")
    try:
        with grpc.secure_channel(f"localhost:{port}", creds) as old:
            check = lambda ch: health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
            check(old)
            assert served_certificate(certs, port) == der(certs["server_cert"])

            secret(server2[0], server2[1])
            wait_for(lambda: served_certificate(certs, port) == der(server2[0]))
            assert stale() == 0
            check(old)  # the connection opened before the rotation keeps working

            # The new certificate with the old key: refused, the previous pair stays.
            secret(certs["server_cert"], server2[1])
            wait_for(lambda: stale() == 1)
            assert served_certificate(certs, port) == der(server2[0])
            assert observer.registry.get_sample_value("veid_tls_reloads_total", {"result": "error"}) == 1
            time.sleep(0.3)  # several polls of the same refused files: counted once
            assert observer.registry.get_sample_value("veid_tls_reloads_total", {"result": "error"}) == 1

            secret(certs["server_cert"], certs["server_key"])
            wait_for(lambda: served_certificate(certs, port) == der(certs["server_cert"]))
            assert stale() == 0
            check(old)
    finally:
        rotation.close()
        server.stop(0)


def der(path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(read(path).decode())


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
