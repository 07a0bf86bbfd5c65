"""Mutual TLS on the gRPC port: the flags, the listen policy, the files' checks and rotation.

The flags are upstream's (VirtEngine's sidecar), so an operator can swap one
binary for the other. The files are checked at start-up and fail closed, each
refusal naming its flag; the authoritative parsing and verification is
gRPC core's TLS stack on every handshake, these checks only turn an operator's
mistake into a clear message instead of failed handshakes.

gRPC's Python API cannot pin the TLS version: core accepts TLS 1.2 and 1.3
(1.3 whenever the client offers it) and refuses anything older.
"""

import base64
import binascii
import hashlib
import ipaddress
import os
import re
import ssl
import tempfile
import threading
from typing import NamedTuple

from absl import flags
from absl import logging

from sidecar import duration

flags.DEFINE_bool(
    "require-mtls", True,
    "Serve gRPC only over mutual TLS (client certificates signed by --tls-client-ca-file). Without the TLS files, "
    "plaintext is allowed on a loopback --grpc-addr only; --require-mtls=false allows it on any address.",
)
flags.DEFINE_string("tls-cert-file", "", "Absolute path of the server certificate (one PEM; serverAuth usage).")
flags.DEFINE_string("tls-key-file", "", "Absolute path of the server certificate's private key (one PEM).")
flags.DEFINE_string(
    "tls-client-ca-file", "", "Absolute path of the CA certificate (one PEM) that signs the chain node's client certificate."
)
duration.DEFINE_duration(
    "tls-poll-interval", "10s", "How often the TLS files are checked for changes (they are also re-read on SIGHUP)."
)
flags.register_validator("tls-poll-interval", lambda v: v > 0, "must be positive")

FLAGS = flags.FLAGS
FILE_FLAGS = ("tls-cert-file", "tls-key-file", "tls-client-ca-file")

_PEM = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n([A-Za-z0-9+/=\r\n]+?)-----END \1-----\r?\n?")
_KEY_LABELS = (b"PRIVATE KEY", b"RSA PRIVATE KEY", b"EC PRIVATE KEY")
# Contents of the DER object identifiers checked below.
_OID_EXT_KEY_USAGE = bytes.fromhex("551d25")  # 2.5.29.37
_OID_BASIC_CONSTRAINTS = bytes.fromhex("551d13")  # 2.5.29.19
_OID_SERVER_AUTH = bytes.fromhex("2b06010505070301")  # 1.3.6.1.5.5.7.3.1

class TLSError(ValueError):
    """A TLS flag or file the sidecar refuses; the message names the flag."""


# -- the listen policy -------------------------------------------------------------


def is_loopback(host: str) -> bool:
    """True for localhost and 127.0.0.0/8 / ::1; an empty host means every interface."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Mode(NamedTuple):
    mtls: bool
    warning: str  # logged once at start-up; empty when there is nothing to warn about


def listen_mode(host: str, require_mtls: bool, require_mtls_given: bool, files: dict[str, str]) -> Mode:
    """How to serve gRPC on `host`, from --require-mtls (its value, and whether it was given) and the file flags."""
    given = [f"--{name}" for name in FILE_FLAGS if files.get(name)]
    missing = [f"--{name}" for name in FILE_FLAGS if not files.get(name)]
    if given and missing:
        raise TLSError(f"{', '.join(given)} given without {', '.join(missing)}: mutual TLS needs all three")
    if given and not require_mtls:
        raise TLSError(f"--require-mtls=false contradicts {', '.join(given)}: drop one")
    if given:
        return Mode(True, "")
    if not require_mtls:
        where = "loopback " if is_loopback(host) else ""
        return Mode(False, f"--require-mtls=false: serving plaintext gRPC on {where}{host or 'every interface'}; "
                           "anyone who reaches the port can call it")
    if require_mtls_given:
        raise TLSError(f"--require-mtls needs {', '.join(missing)}")
    if is_loopback(host):
        return Mode(False, "")
    raise TLSError(
        f"--grpc-addr listens on {host or 'every interface'}, not loopback: give --tls-cert-file, --tls-key-file "
        "and --tls-client-ca-file, or --require-mtls=false to serve plaintext there"
    )


# -- checking the files ------------------------------------------------------------------


def _der_children(der: bytes, start: int, end: int):
    """(tag, value start, value end) of each DER element in der[start:end]."""
    i = start
    while i < end:
        if i + 2 > end:
            raise ValueError("truncated DER")
        tag, length = der[i], der[i + 1]
        i += 2
        if length & 0x80:
            n = length & 0x7F
            if not 1 <= n <= 4 or i + n > end:
                raise ValueError("bad DER length")
            length = int.from_bytes(der[i:i + n], "big")
            i += n
        if i + length > end:
            raise ValueError("DER element overruns its parent")
        yield tag, i, i + length
        i += length


def _one(der: bytes, start: int, end: int, tag: int) -> tuple[int, int]:
    children = list(_der_children(der, start, end))
    if len(children) != 1 or children[0][0] != tag:
        raise ValueError(f"expected one DER element with tag {tag:#x}")
    return children[0][1], children[0][2]


def extensions(der: bytes) -> dict[bytes, bytes]:
    """X.509 extensions of a DER certificate: {OID contents: extnValue contents}."""
    s, e = _one(der, 0, len(der), 0x30)  # Certificate
    tbs = next(_der_children(der, s, e))
    if tbs[0] != 0x30:
        raise ValueError("no tbsCertificate")
    found = {}
    for tag, s, e in _der_children(der, tbs[1], tbs[2]):
        if tag != 0xA3:  # [3] extensions
            continue
        for ext_tag, es, ee in _der_children(der, *_one(der, s, e, 0x30)):
            parts = list(_der_children(der, es, ee))
            if ext_tag != 0x30 or len(parts) not in (2, 3) or parts[0][0] != 0x06 or parts[-1][0] != 0x04:
                raise ValueError("malformed extension")
            found[der[parts[0][1]:parts[0][2]]] = der[parts[-1][1]:parts[-1][2]]
    return found


def has_server_auth(ext: dict[bytes, bytes]) -> bool:
    """The extended key usage lists serverAuth (a certificate without the extension is refused too)."""
    eku = ext.get(_OID_EXT_KEY_USAGE)
    if eku is None:
        return False
    return any(tag == 0x06 and eku[s:e] == _OID_SERVER_AUTH for tag, s, e in _der_children(eku, *_one(eku, 0, len(eku), 0x30)))


def is_ca(ext: dict[bytes, bytes]) -> bool:
    """basicConstraints says cA: TRUE."""
    bc = ext.get(_OID_BASIC_CONSTRAINTS)
    if bc is None:
        return False
    fields = list(_der_children(bc, *_one(bc, 0, len(bc), 0x30)))
    return bool(fields) and fields[0][0] == 0x01 and bc[fields[0][1]:fields[0][2]] != b"\x00"


def _read(flag: str, path: str) -> bytes:
    if not os.path.isabs(path):
        raise TLSError(f"--{flag}={path!r} is not an absolute path")
    if os.path.isdir(path):
        raise TLSError(f"--{flag}={path} is a directory, not a PEM file")
    try:
        with open(path, "rb") as f:
            return f.read(1 << 20)
    except OSError as e:
        raise TLSError(f"--{flag}={path}: cannot read: {e.strerror}") from None


def one_pem(flag: str, path: str, data: bytes, labels: tuple[bytes, ...]) -> bytes:
    """The DER of the file's single PEM block, whose label must be one of `labels`."""
    blocks, at = [], 0
    for m in _PEM.finditer(data):
        if data[at:m.start()].strip():
            break
        blocks.append(m)
        at = m.end()
    if data[at:].strip():
        what = "trailing data after the PEM block" if blocks else "no PEM block"
        raise TLSError(f"--{flag}={path}: {what} (byte {at + len(data[at:]) - len(data[at:].lstrip())})")
    if len(blocks) != 1:
        raise TLSError(f"--{flag}={path}: holds {len(blocks)} PEM blocks; exactly one is accepted")
    label, body = blocks[0].group(1), blocks[0].group(2)
    if label not in labels:
        raise TLSError(f"--{flag}={path}: a {label.decode()} block, not {' or '.join(l.decode() for l in labels)}")
    try:
        return base64.b64decode(re.sub(rb"\s", b"", body), validate=True)
    except binascii.Error:
        raise TLSError(f"--{flag}={path}: the PEM block is not valid base64") from None


def _certificate_extensions(flag: str, path: str, der: bytes) -> dict[bytes, bytes]:
    try:
        # OpenSSL's own parser: refuses anything that is not an X.509 certificate.
        ssl.create_default_context(cadata=der)
        return extensions(der)
    except (ssl.SSLError, ValueError) as e:
        raise TLSError(f"--{flag}={path}: not a well-formed X.509 certificate ({e})") from None


class Material(NamedTuple):
    """PEM bytes as gRPC takes them, checked together."""
    cert: bytes
    key: bytes
    client_ca: bytes

    def fingerprint(self) -> str:
        return hashlib.sha256(b"\0".join(self)).hexdigest()[:16]


def load(paths: dict[str, str]) -> Material:
    """Reads and checks the three files named by `paths` ({flag name: path}); TLSError names the flag."""
    return check(paths, Material(*(_read(flag, paths[flag]) for flag in FILE_FLAGS)))


def check(paths: dict[str, str], m: Material) -> Material:
    """`m` (the files' contents) if the sidecar can serve it; TLSError naming the flag otherwise."""
    cert_path, key_path, ca_path = (paths[f] for f in FILE_FLAGS)
    cert_der = one_pem("tls-cert-file", cert_path, m.cert, (b"CERTIFICATE",))
    if not has_server_auth(_certificate_extensions("tls-cert-file", cert_path, cert_der)):
        raise TLSError(f"--tls-cert-file={cert_path}: the certificate's extended key usage does not include "
                       "serverAuth (1.3.6.1.5.5.7.3.1)")
    one_pem("tls-key-file", key_path, m.key, _KEY_LABELS)
    ca_der = one_pem("tls-client-ca-file", ca_path, m.client_ca, (b"CERTIFICATE",))
    if not is_ca(_certificate_extensions("tls-client-ca-file", ca_path, ca_der)):
        raise TLSError(f"--tls-client-ca-file={ca_path}: not a CA certificate (basicConstraints cA is not TRUE)")
    _check_key_matches(cert_path, key_path, m.cert, m.key)
    return m


def _check_key_matches(cert_path: str, key_path: str, cert: bytes, key: bytes) -> None:
    # ssl loads a key pair only from files: the bytes just read go to a private
    # directory, so what is checked is exactly what gRPC gets.
    with tempfile.TemporaryDirectory(prefix="sidecar-tls-") as d:
        c, k = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
        for path, data in ((c, cert), (k, key)):
            with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
                f.write(data)
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(c, k)
        except ssl.SSLError as e:
            raise TLSError(f"--tls-key-file={key_path}: not the private key of --tls-cert-file={cert_path} "
                           f"(or unreadable: {e.reason or e})") from None


# -- serving and rotation ------------------------------------------------------------


class Rotation:
    """Serves the current material to gRPC core, which asks on every new handshake.

    A change of the files (seen by polling) or SIGHUP re-reads them; material
    that passes load() is used from the next handshake on, connections already
    open keep theirs. Material that fails keeps the old one in force: logged
    once per distinct content, and counted on /metrics (observer).
    """

    def __init__(self, paths: dict[str, str], observer, poll_s: float):
        self._paths = dict(paths)
        self._observer = observer
        self._poll_s = poll_s
        self._lock = threading.Lock()
        self._current = load(self._paths)
        self._pending = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="tls-watch", daemon=True)

    @property
    def fingerprint(self) -> str:
        return self._current.fingerprint()

    def server_credentials(self):
        import grpc  # pylint: disable=import-outside-toplevel

        return grpc.dynamic_ssl_server_credentials(
            self._configuration(self._current), self._fetch, require_client_authentication=True
        )

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()

    def request_reload(self) -> None:
        """Safe in a signal handler: the watcher thread does the work."""
        self._wake.set()

    @staticmethod
    def _configuration(m: Material):
        import grpc  # pylint: disable=import-outside-toplevel

        return grpc.ssl_server_certificate_configuration([(m.key, m.cert)], root_certificates=m.client_ca)

    def _fetch(self):
        # Called by gRPC core before each handshake: None keeps the current material.
        with self._lock:
            pending, self._pending = self._pending, None
        return pending

    def _watch(self) -> None:
        seen = self._current
        while not self._stop.is_set():
            forced = self._wake.wait(self._poll_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                # Read once and check what was read: a Kubernetes Secret update
                # swaps a symlink, and a read in between must not stick.
                contents = Material(*(_read(f, self._paths[f]) for f in FILE_FLAGS))
            except TLSError as e:
                contents = str(e)
            if contents != seen or forced:
                self._reload(contents)
                seen = contents

    def _reload(self, contents: Material | str) -> None:
        try:
            if isinstance(contents, str):
                raise TLSError(contents)
            material = check(self._paths, contents)
        except TLSError as e:
            logging.error("TLS files refused, still serving certificate %s: %s", self.fingerprint, e)
            self._observer.record_tls_reload(ok=False)
            return
        if material != self._current:
            with self._lock:
                self._current = material
                self._pending = self._configuration(material)
            logging.info("TLS files reloaded: certificate %s from the next handshake on", material.fingerprint())
        self._observer.record_tls_reload(ok=True)


def from_flags(host: str, observer) -> Rotation | None:
    """The Rotation serving the flags' files, or None for plaintext; TLSError if the sidecar must not start."""
    mode = listen_mode(host, FLAGS["require-mtls"].value, FLAGS["require-mtls"].present,
                       {name: FLAGS[name].value for name in FILE_FLAGS})
    if mode.warning:
        logging.warning("%s", mode.warning)
    if not mode.mtls:
        return None
    return Rotation({name: FLAGS[name].value for name in FILE_FLAGS}, observer, FLAGS["tls-poll-interval"].value)
