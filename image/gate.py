"""The k-of-n deploy gate: do enough distinct trusted validators vouch for this
image digest at this release's commit?

`decide` is pure: a policy (image/policy.py), the attestations as
(source name, envelope bytes), the digest and commit asked about, and the
time; it returns a Verdict whose lines say who vouched, what was refused
and why. image/verify.py reads the files or the registry and prints it.

An attestation counts for validator V when a signature in its DSSE envelope
verifies under one of V's keys valid now, its payload is an in-toto SLSA
provenance statement (image/provenance.py) whose builder.id is V, whose
commit is the release's and whose image subject is the digest. Each
validator votes once, however many envelopes or signatures it has. Refused,
and named: malformed envelopes, unknown keys, expired keys, signatures that
do not verify (a tampered payload), other payload types, statements that
are not provenance or do not name the image, statements for another commit,
builder ids that are not the signer's. A trusted validator's valid
statement for this commit naming another digest is a CONFLICT: two builds of
one commit differ, and the gate fails whatever the count.
"""

import dataclasses
import json

from securesystemslib import exceptions as sslib_exceptions
from securesystemslib.dsse import Envelope

from image import provenance


@dataclasses.dataclass
class Verdict:
    digest: str
    commit: str
    threshold: int
    # validator -> [(source, build type)], in the order seen
    votes: dict = dataclasses.field(default_factory=dict)
    refused: list = dataclasses.field(default_factory=list)  # (source, reason)
    conflicts: list = dataclasses.field(default_factory=list)  # (validator, their digest, source)

    @property
    def ok(self):
        return not self.conflicts and len(self.votes) >= self.threshold

    def lines(self):
        out = []
        for validator, seen in sorted(self.votes.items()):
            builds = ", ".join(sorted({b for _, b in seen}))
            extra = f"; {len(seen)} attestations, counted once" if len(seen) > 1 else ""
            out.append(f"vouched: {validator} ({builds}; {seen[0][0]}{extra})")
        for source, reason in self.refused:
            out.append(f"refused: {source}: {reason}")
        for validator, theirs, source in self.conflicts:
            out.append(f"CONFLICT: {validator} attests {theirs} for commit {self.commit}, "
                       f"not {self.digest} ({source}): two builds of one commit differ")
        what = f"{self.digest} at commit {self.commit}"
        if self.conflicts:
            out.append(f"FAIL: reproducibility break for {what}: "
                       f"{', '.join(sorted({c[0] for c in self.conflicts}))} built another digest")
        elif self.ok:
            out.append(f"PASS: {len(self.votes)} of threshold {self.threshold} distinct trusted validators "
                       f"vouch for {what}: {', '.join(sorted(self.votes))}")
        else:
            out.append(f"FAIL: {len(self.votes)} of threshold {self.threshold} distinct trusted validators "
                       f"vouch for {what}")
        return out


def _signers(policy, envelope, now):
    """(validators whose valid key verifies a signature, reasons for the others)."""
    signers, reasons = [], []
    pae = envelope.pae()
    for sig in envelope.signatures.values():
        trusted = policy.keys.get(sig.keyid)
        if trusted is None:
            reasons.append(f"unknown key {sig.keyid[:16]}…")
            continue
        why = trusted.invalid_at(now)
        if why:
            reasons.append(f"{why} key of {trusted.validator} (valid {trusted.window()})")
            continue
        try:
            trusted.key.verify_signature(sig, pae)
        except sslib_exceptions.UnverifiedSignatureError:
            reasons.append(f"bad signature by {trusted.validator}'s key: the payload or signature was altered")
            continue
        if trusted.validator not in signers:
            signers.append(trusted.validator)
    return signers, reasons


def _envelope(data):
    doc = json.loads(data)
    if not isinstance(doc, dict) or not isinstance(doc.get("signatures"), list):
        raise ValueError("expected {payload, payloadType, signatures: [...]}")
    return Envelope.from_dict(doc)


def decide(policy, attestations, digest, commit, now):
    """The Verdict on `digest` at `commit`. attestations: [(source, envelope bytes)]."""
    provenance.check_digest(digest, "digest")
    provenance.check_commit(commit, "commit")
    verdict = Verdict(digest, commit, policy.threshold)
    for source, data in attestations:
        try:
            envelope = _envelope(data)
        except (ValueError, KeyError, TypeError, sslib_exceptions.FormatError) as e:
            verdict.refused.append((source, f"not a DSSE envelope ({type(e).__name__}: {e})"))
            continue
        if not envelope.signatures:
            verdict.refused.append((source, "no signatures"))
            continue
        signers, reasons = _signers(policy, envelope, now)
        if not signers:
            verdict.refused.append((source, "; ".join(reasons)))
            continue
        if envelope.payload_type != provenance.PAYLOAD_TYPE:
            verdict.refused.append((source, f"wrong payload type {envelope.payload_type!r} "
                                            f"(expected {provenance.PAYLOAD_TYPE})"))
            continue
        try:
            theirs, their_commit, builder_id, build_type = provenance.read(envelope.payload)
        except provenance.StatementError as e:
            verdict.refused.append((source, str(e)))
            continue
        if their_commit != commit:
            verdict.refused.append((source, f"statement for commit {their_commit}, not this release's {commit}"))
            continue
        if builder_id not in signers:
            verdict.refused.append((source, f"builder.id {builder_id!r} did not sign it "
                                            f"(signed by {', '.join(signers)})"))
            continue
        if theirs != digest:
            verdict.conflicts.append((builder_id, theirs, source))
            continue
        verdict.votes.setdefault(builder_id, []).append((source, build_type))
    return verdict
