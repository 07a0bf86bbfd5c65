"""The attestation keys and signatures of validators and operators: ECDSA
P-256 (what cosign and hardware tokens use), PEM PKCS#8 private keys, DSSE
envelopes. Every key operation and signature is securesystemslib's
(CryptoSigner, Envelope) over pyca/cryptography; none is computed here.
"""

import datetime
import json
import os

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.dsse import Envelope
from securesystemslib.signer import CryptoSigner

from image import provenance

_STAMP = "%Y-%m-%dT%H:%M:%SZ"


class SigningError(Exception):
    pass


def generate_key(path, now):
    """Writes a new P-256 private key to `path` (0600) and its public key to
    `path`.pub; returns the policy entry for it, valid for a year from `now`."""
    signer = CryptoSigner.generate_ecdsa()
    os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(signer.private_bytes)
    pem = signer.public_key.keyval["public"]
    with open(path + ".pub", "w", encoding="ascii") as f:
        f.write(pem)
    return {"public_key": pem, "valid_from": now.strftime(_STAMP),
            "valid_until": (now + datetime.timedelta(days=365)).strftime(_STAMP)}


def load_signer(path):
    """The CryptoSigner of the P-256 private key in `path` (unencrypted PEM PKCS#8)."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        private = load_pem_private_key(data, password=None)
    except (TypeError, ValueError) as e:
        raise SigningError(f"{path}: not an unencrypted PEM private key ({e})") from None
    if not isinstance(private, ec.EllipticCurvePrivateKey) or not isinstance(private.curve, ec.SECP256R1):
        raise SigningError(f"{path}: not an ECDSA P-256 private key")
    return CryptoSigner(private)


def sign(signer, statement, payload_type=provenance.PAYLOAD_TYPE):
    """The DSSE envelope (JSON bytes) of `statement` signed by `signer`."""
    envelope = Envelope(provenance.encode(statement), payload_type, {})
    envelope.sign(signer)
    return json.dumps(envelope.to_dict(), indent=1, sort_keys=True).encode() + b"\n"
