"""The gate's pass, for a deployment's audit trail: a SLSA Verification
Summary Attestation (VSA v1) about the image digest, naming the policy (by
sha256), the attestations that voted (by sha256 of their envelopes) and the
validators, signed by the operator's own P-256 key into a DSSE envelope
(image/signing.py).
"""

import hashlib

from image import provenance
from image import signing


def statement(verifier_id, verdict, policy_uri, policy_bytes, attestations, now):
    """The VSA statement for a passing gate.Verdict. attestations: [(source, envelope bytes)]."""
    if not verdict.ok:
        raise ValueError("a verification summary is only written for a pass")
    voted = {source for seen in verdict.votes.values() for source, _ in seen}
    return {
        "_type": provenance.STATEMENT_TYPE,
        "subject": [{"name": provenance.IMAGE_NAME, "digest": {"sha256": verdict.digest.split(":", 1)[1]}}],
        "predicateType": provenance.VSA_TYPE,
        "predicate": {
            "verifier": {"id": verifier_id},
            "timeVerified": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "resourceUri": f"{provenance.IMAGE_NAME}@{verdict.digest}",
            "policy": {"uri": policy_uri, "digest": {"sha256": hashlib.sha256(policy_bytes).hexdigest()}},
            "inputAttestations": [{"uri": source, "digest": {"sha256": hashlib.sha256(data).hexdigest()}}
                                  for source, data in attestations if source in voted],
            "verificationResult": "PASSED",
            # SLSA lets a verifier name its own levels: what this gate checked.
            "verifiedLevels": [f"VEID_REBUILT_{len(verdict.votes)}_OF_{verdict.threshold}"],
            "dependencyLevels": {},
            "slsaVersion": "1.0",
            "validators": sorted(verdict.votes),
            "commit": verdict.commit,
        },
    }


def write(key_path, verifier_id, verdict, policy_uri, policy_path, attestations, now):
    """The signed VSA envelope (bytes)."""
    with open(policy_path, "rb") as f:
        policy_bytes = f.read()
    st = statement(verifier_id, verdict, policy_uri, policy_bytes, attestations, now)
    return signing.sign(signing.load_signer(key_path), st)
