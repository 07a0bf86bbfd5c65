"""Are two images output-identical? Both run in a real engine, same requests, bytes compared.

    bazel run //image:equivalence -- OLD NEW [--layout DIR ...] [--random N]

OLD and NEW are OCI layouts (a directory, optionally DIR@sha256:…) or image
digests (sha256:…) found in a --layout directory or in the layout this
workspace builds (//image). Each is loaded into a private rootful Podman store
(image/podman.py), checked to have that digest, and run with its own
entrypoint (host network, gRPC and metrics moved to free loopback ports,
read-only root). Both receive the same ComputeScore requests, whose full
responses (score, raw score, confidence, hashes, model version and hash,
reason codes, contributions; compute_time_ms zeroed) or error status must be
equal byte for byte:

* every golden vector of every model in either image's upgrade plan (read
  from inside the image), with and without contributions, and the
  extreme-value set of tests/extreme_values.py, at no height and at the
  heights around each activation (h-1, h, h+1);
* --random (default 10 000) seeded uniform [0, 1) float32 vectors, with
  contributions, at the highest of those heights.

One verdict line: "output-identical — validators may roll it independently",
exit 0; or "outputs differ — a consensus change: coordinate it at a block
height" naming the first differing request, exit 1. Exit 2: the comparison
could not run (the message says why).
"""

import argparse
import concurrent.futures
import dataclasses
import hashlib
import json
import os
import sys
import tempfile
import time

import grpc
import numpy as np

from image import assemble
from image import podman
from inference.v1 import inference_pb2 as pb
from inference.v1 import inference_pb2_grpc as pb_grpc
from sidecar import features as F
from tests import extreme_values

IDENTICAL = "output-identical — validators may roll it independently"
DIFFERENT = "outputs differ — a consensus change: coordinate it at a block height"
# The layout this workspace builds, beside this file in the runfiles.
BUILT_LAYOUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "image")
START_TIMEOUT_S = 300
CALL_TIMEOUT_S = 60
IN_FLIGHT = 4
# Printed inside the image by its own interpreter: the plan its entrypoint
# names and every plan model's golden vectors.
_READ_PLAN = """
import json, os, sys
plan_path = sys.argv[1]
plan = json.load(open(plan_path))
golden = {}
for e in plan["entries"]:
    p = os.path.join(os.path.dirname(plan_path), e["path"], "golden_vectors.json")
    golden[e["version"]] = json.load(open(p))["vectors"] if os.path.exists(p) else []
print(json.dumps({"plan": plan, "golden": golden}))
"""


class EquivalenceError(Exception):
    """The comparison could not run; the message names the image and the step."""


@dataclasses.dataclass(frozen=True)
class Request:
    label: str
    height: int
    contributions: bool
    features: tuple

    def proto(self):
        return pb.ComputeScoreRequest(features=self.features, return_contributions=self.contributions,
                                      metadata=pb.InferenceMetadata(block_height=self.height))

    def describe(self, index):
        height = f"height {self.height}" if self.height else "no height"
        return f"request #{index} {self.label} ({height}, contributions={str(self.contributions).lower()})"


# --- which requests: pure ------------------------------------------------------

def heights(plans):
    """No height (0), then every height next to an activation, ascending."""
    around = {h + d for plan in plans for e in plan["entries"] for d in (-1, 0, 1)
              for h in [int(e["activation_height"])]}
    return [0] + sorted(h for h in around if h >= 1)


def extreme_vectors():
    """tests/extreme_values.py as a fixed set: each extreme everywhere, then each
    slot at each of its just-outside values (the rest zero)."""
    out = [(f"extreme all={x!r}", extreme_values.uniform(x)) for x in extreme_values.EXTREMES]
    for r in F.SLOT_RANGES:
        for x in extreme_values.OUTSIDE[r.name]:
            v = np.zeros(F.FEATURE_DIM, np.float32)
            v[r.indices] = np.float32(x)
            out.append((f"extreme {r.name}={x!r}", v))
    return out


def random_vectors(n, seed):
    rng = np.random.default_rng(seed)
    return [(f"random {k} (seed {seed})", rng.random(F.FEATURE_DIM, dtype=np.float32)) for k in range(n)]


def plan_requests(images, n_random, seed):
    """[[Request]] in phases, sent phase by phase (a phase's requests may run
    concurrently). `images` are the {"plan", "golden"} each image reported."""
    fixed, seen = [], set()
    for info in images:
        for entry in info["plan"]["entries"]:
            for v in info["golden"].get(entry["version"], []):
                values = np.asarray(v["features"], np.float32)
                if values.tobytes() not in seen:
                    seen.add(values.tobytes())
                    fixed.append((f"golden {entry['version']}/{v.get('name', '?')}", values, (False, True)))
    fixed += [(label, values, (True,)) for label, values in extreme_vectors()]
    hs = heights([info["plan"] for info in images])
    phases = [[Request(label, h, c, tuple(float(x) for x in values)) for label, values, cs in fixed for c in cs]
              for h in hs]
    phases.append([Request(label, hs[-1], True, tuple(float(x) for x in values))
                   for label, values in random_vectors(n_random, seed)])
    return phases


def outcome(call):
    """What a validator's node would see: the response bytes, or the status."""
    try:
        resp = call()
    except grpc.RpcError as e:
        return f"status {e.code().name}: {e.details()}".encode()
    resp.compute_time_ms = 0
    return resp.SerializeToString(deterministic=True)


def summary(data):
    if data.startswith(b"status "):
        return data.decode("utf-8", "replace")
    resp = pb.ComputeScoreResponse.FromString(data)
    return (f"score {resp.score} raw {resp.raw_score!r} output_hash {resp.output_hash[:16]}… "
            f"model {resp.model_version} {resp.model_hash[:12]}…")


def first_difference(old, new):
    """The index of the first request whose outcomes differ, or None."""
    for i, (a, b) in enumerate(zip(old, new)):
        if a != b:
            return i
    return None if len(old) == len(new) else min(len(old), len(new))


# --- which images: resolving arguments -----------------------------------------

def manifest_digests(layout):
    """The image manifests a layout's index lists (not its referrers)."""
    return [d["digest"] for d in assemble.read_index(layout)["manifests"] if "artifactType" not in d]


def resolve(arg, layouts):
    """(layout directory, manifest digest) for an argument."""
    if arg.startswith("sha256:"):
        found = [d for d in layouts if os.path.isfile(os.path.join(d, "index.json")) and arg in manifest_digests(d)]
        if not found:
            raise EquivalenceError(f"{arg}: no layout lists it (searched {layouts}); pass --layout DIR")
        return found[0], arg
    path, _, digest = arg.partition("@")
    if not os.path.isfile(os.path.join(path, "index.json")):
        raise EquivalenceError(f"{arg}: not an OCI layout (no index.json) nor a sha256: digest")
    digests = manifest_digests(path)
    if digest:
        if digest not in digests:
            raise EquivalenceError(f"{arg}: the layout's index does not list {digest}")
        return path, digest
    if len(digests) != 1:
        raise EquivalenceError(f"{arg}: the layout lists {len(digests)} images; name one as {path}@sha256:…")
    return path, digests[0]


# --- running them: I/O -----------------------------------------------------------

class Running:
    """One image loaded into the engine and running with its own entrypoint."""

    def __init__(self, engine, name, layout, digest):
        self.engine, self.name, self.digest = engine, name, digest
        # A view of the layout whose index names only this image, so skopeo
        # loads it by a tag of ours whatever the original tags it.
        view = tempfile.mkdtemp(prefix=f"layout-{name}-", dir=engine.dir)
        os.symlink(os.path.abspath(os.path.join(layout, "blobs")), os.path.join(view, "blobs"))
        with open(os.path.join(layout, "oci-layout"), "rb") as src, open(os.path.join(view, "oci-layout"), "wb") as dst:
            dst.write(src.read())
        desc = [d for d in assemble.read_index(layout)["manifests"] if d["digest"] == digest][0]
        desc = dict(desc, annotations={assemble.REF_NAME: name})
        assemble.write_index(view, {"schemaVersion": 2, "mediaType": assemble.INDEX_MEDIA_TYPE, "manifests": [desc]})
        ref = f"localhost/veid-equivalence-{name}:latest"
        engine.skopeo("copy", "--quiet", f"oci:{view}:{name}", f"containers-storage:{ref}")
        loaded = engine.image_digest(ref)
        if loaded != digest:
            raise EquivalenceError(f"{name}: the engine loaded {loaded}, not {digest}")
        entrypoint = json.loads(engine.podman("image", "inspect", "--format", "{{json .Config.Entrypoint}}", ref).stdout)
        plans = [a.split("=", 1)[1] for a in entrypoint or [] if a.startswith("--upgrade-plan=")]
        if len(plans) != 1:
            raise EquivalenceError(f"{name}: the entrypoint {entrypoint} names no single --upgrade-plan")
        self.plan_path = plans[0]
        self.port = podman.free_port()
        # Addressed by its ID from here on: a name is reused by the next comparison in the same store.
        self.id = engine.podman("run", "--detach", "--network=host", "--read-only", "--tmpfs=/tmp", ref,
                                f"--grpc-addr=127.0.0.1:{self.port}",
                                f"--metrics-addr=127.0.0.1:{podman.free_port()}").stdout.strip()
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        self.stub = pb_grpc.InferenceServiceStub(self.channel)

    def wait_serving(self):
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                return self.stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=5)
            except grpc.RpcError:
                pass
            state = json.loads(self.engine.podman("container", "inspect", self.id).stdout)[0]["State"]
            # Not `Running`: under load podman may still say "created" of a
            # container whose process has long started.
            if state.get("Status") in ("exited", "stopped") or time.monotonic() > deadline:
                logs = self.engine.podman("logs", self.id, check=False)
                raise EquivalenceError(f"{self.name} ({self.digest}) did not serve (status {state.get('Status')}, "
                                       f"exit code {state.get('ExitCode')}, OOM-killed {state.get('OOMKilled')}, "
                                       f"error {state.get('Error')!r}):\n"
                                       f"{(logs.stdout + logs.stderr)[-4000:]}")
            time.sleep(1)

    def read_plan(self):
        proc = self.engine.podman("exec", self.id, "/usr/bin/python3.11", "-S", "-c", _READ_PLAN, self.plan_path)
        return json.loads(proc.stdout)

    def submit(self, request, pool):
        return pool.submit(outcome, lambda: self.stub.ComputeScore(request.proto(), timeout=CALL_TIMEOUT_S))

    def close(self):
        self.channel.close()
        self.engine.podman("rm", "--force", "--time=0", self.id, check=False)


def compare(old_arg, new_arg, layouts, n_random, seed, out=sys.stdout, engine=None):
    """Prints the run and one verdict line; returns 0 identical, 1 different.
    Without `engine`, a private one is made and removed."""
    resolved = {"old": resolve(old_arg, layouts), "new": resolve(new_arg, layouts)}
    reason = podman.unavailable_reason()
    if reason:
        raise EquivalenceError(f"no engine: {reason}")
    own = engine is None
    if own:
        # Not under TEST_TMPDIR: conmon's socket paths must stay under 108 bytes.
        engine = podman.Engine("/tmp")
    images = {}
    try:
        for name, (layout, digest) in resolved.items():
            started = time.monotonic()
            images[name] = Running(engine, name, layout, digest)
            out.write(f"equivalence: {name} = {digest} ({layout}), loaded and started in "
                      f"{time.monotonic() - started:.0f} s\n")
        infos = {}
        started = time.monotonic()
        for name, image in images.items():
            model = image.wait_serving()
            infos[name] = image.read_plan()
            out.write(f"equivalence: {name} serving after {time.monotonic() - started:.0f} s\n")
            out.write(f"equivalence: {name} serves {model.version} {model.hash[:12]}… "
                      f"plan {[(e['version'], e['activation_height']) for e in infos[name]['plan']['entries']]}\n")
        phases = plan_requests(list(infos.values()), n_random, seed)
        requests = [r for phase in phases for r in phase]
        got = {"old": [], "new": []}
        started = time.monotonic()
        pools = {name: concurrent.futures.ThreadPoolExecutor(IN_FLIGHT) for name in images}
        try:
            # Both images at once, a phase at a time (a phase's heights are settled before the next's).
            for phase in phases:
                calls = {name: [image.submit(r, pools[name]) for r in phase] for name, image in images.items()}
                for name, futures in calls.items():
                    got[name] += [f.result() for f in futures]
        finally:
            for pool in pools.values():
                pool.shutdown()
        took = time.monotonic() - started
        streams = {name: hashlib.sha256(b"".join(hashlib.sha256(o).digest() for o in got[name])).hexdigest()
                   for name in got}
        out.write(f"equivalence: {len(requests)} requests ({len(phases[-1])} random, seed {seed}; heights "
                  f"{sorted({r.height for r in requests})}) in {took:.1f} s; response stream sha256 "
                  f"old {streams['old'][:16]}… new {streams['new'][:16]}…\n")
        i = first_difference(got["old"], got["new"])
        if i is None:
            out.write(f"equivalence: {IDENTICAL}\n")
            return 0
        out.write(f"equivalence: {DIFFERENT}; first differing: {requests[i].describe(i)}: "
                  f"old {summary(got['old'][i])} | new {summary(got['new'][i])}\n")
        return 1
    finally:
        for image in images.values():
            image.close()
        if own:
            engine.close()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    ap.add_argument("old", help="OCI layout dir[@sha256:…] or sha256:… digest")
    ap.add_argument("new", help="OCI layout dir[@sha256:…] or sha256:… digest")
    ap.add_argument("--layout", action="append", default=[], help="a layout to find digests in (repeatable)")
    ap.add_argument("--random", type=int, default=10_000, help="seeded random vectors (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=23, help="their seed (default: %(default)s)")
    args = ap.parse_args(argv)
    # `bazel run` starts in the runfiles; relative arguments are the caller's.
    cwd = os.environ.get("BUILD_WORKING_DIRECTORY", "")
    absolute = lambda p: p if p.startswith("sha256:") else os.path.join(cwd, p)  # noqa: E731
    layouts = [os.path.join(cwd, d) for d in args.layout] + [BUILT_LAYOUT]
    try:
        return compare(absolute(args.old), absolute(args.new), layouts, args.random, args.seed)
    except (EquivalenceError, AssertionError, OSError) as e:
        print(f"equivalence: cannot compare: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
