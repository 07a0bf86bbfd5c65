"""attestations/policy.json: who may vouch for a release, and how many must.

  {
    "threshold": 3,
    "validators": [
      {"id": "val-a",
       "keys": [{"public_key": "-----BEGIN PUBLIC KEY-----\\n…",   # ECDSA P-256, PEM
                 "valid_from": "2026-12-01T00:00:00Z",
                 "valid_until": "2027-12-01T00:00:00Z"}]}
    ]
  }

A validator may list several keys (rotation); each counts only inside its
window. The file is reviewed like code: a malformed one stops the gate,
naming the field, rather than trusting less or more than it says. One key
under two ids would let one signature vote twice, so it is refused.
"""

import dataclasses
import datetime
import json

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from securesystemslib.signer import SSlibKey


class PolicyError(ValueError):
    pass


@dataclasses.dataclass(frozen=True)
class TrustedKey:
    validator: str
    key: SSlibKey
    valid_from: datetime.datetime
    valid_until: datetime.datetime

    def invalid_at(self, when):
        """None inside the key's window, else why not ("expired", "not yet valid")."""
        if when >= self.valid_until:
            return "expired"
        if when < self.valid_from:
            return "not yet valid"
        return None

    def window(self):
        return f"{self.valid_from.isoformat()} .. {self.valid_until.isoformat()}"


@dataclasses.dataclass(frozen=True)
class Policy:
    threshold: int
    validators: tuple  # ids, in the file's order
    keys: dict  # keyid -> TrustedKey


def parse_time(value, what):
    try:
        t = datetime.datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise PolicyError(f"{what}: {value!r} is not an RFC 3339 time") from None
    if t.tzinfo is None:
        raise PolicyError(f"{what}: {value!r} has no time zone (write …Z)")
    return t


def public_key(pem, what):
    """The securesystemslib key of a PEM ECDSA P-256 public key (its keyid is securesystemslib's default)."""
    try:
        key = load_pem_public_key(pem.encode() if isinstance(pem, str) else b"")
    except ValueError as e:
        raise PolicyError(f"{what}: not a PEM public key ({e})") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise PolicyError(f"{what}: not an ECDSA P-256 key")
    return SSlibKey.from_crypto(key)


def parse(doc):
    if not isinstance(doc, dict):
        raise PolicyError("policy: expected a JSON object")
    threshold = doc.get("threshold")
    if not isinstance(threshold, int) or isinstance(threshold, bool) or threshold < 1:
        raise PolicyError(f"policy.threshold: {threshold!r} is not a positive integer")
    validators = doc.get("validators")
    if not isinstance(validators, list):
        raise PolicyError("policy.validators: expected a list")
    ids, keys = [], {}
    for i, v in enumerate(validators):
        vid = v.get("id") if isinstance(v, dict) else None
        if not isinstance(vid, str) or not vid:
            raise PolicyError(f"policy.validators[{i}].id: expected a non-empty string")
        if vid in ids:
            raise PolicyError(f"policy.validators[{i}]: {vid} is listed twice")
        ids.append(vid)
        if not isinstance(v.get("keys"), list) or not v["keys"]:
            raise PolicyError(f"policy.validators[{i}].keys ({vid}): expected a non-empty list")
        for j, k in enumerate(v["keys"]):
            what = f"policy.validators[{i}].keys[{j}] ({vid})"
            if not isinstance(k, dict):
                raise PolicyError(f"{what}: expected an object")
            key = public_key(k.get("public_key"), what + ".public_key")
            if key.keyid in keys:
                raise PolicyError(f"{what}: the same key is already {keys[key.keyid].validator}'s")
            start = parse_time(k.get("valid_from"), what + ".valid_from")
            end = parse_time(k.get("valid_until"), what + ".valid_until")
            if end <= start:
                raise PolicyError(f"{what}: valid_until is not after valid_from")
            keys[key.keyid] = TrustedKey(vid, key, start, end)
    return Policy(threshold, tuple(ids), keys)


def load(path):
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise PolicyError(f"{path}: {e}") from None
    try:
        return parse(doc)
    except PolicyError as e:
        raise PolicyError(f"{path}: {e}") from None
