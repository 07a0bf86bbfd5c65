"""stage: fetch an approved model release, verify it and add it to the upgrade plan.

  python -m sidecar.stage --plan=models/plan.json --version=v1.1.0 --model-hash=H --height=5000 \\
      --artifact=oci://HOST/REPO@sha256:…            (or https://…/model.tar?checksum=sha256:…, or a file)
  python -m sidecar.stage --plan=models/plan.json --upgrade-info=proposal.json   (Cosmos x/upgrade style)
  podman run --rm -v ./models:/models IMAGE stage --version=… …                  (the image's entrypoint)

Governance approves a version, its model hash and an activation height; every
validator runs this. In order, and refusing at the first failure with nothing
left behind in the models directory:

1. lock the models directory (one `stage` at a time; a second one is refused)
   and remove what an interrupted run left (`.stage-*`);
2. if the version's directory exists: its model hash equal to the approved
   one means there is nothing to fetch; a different one is refused, naming both;
3. download into `.stage-*` in the models directory (same filesystem, so the
   final rename is atomic), checking the artifact's digest and size cap;
4. unpack safely (sidecar/artifact.py), check the model hash against the
   approved one and run the model's golden vectors (sidecar/scorer.py, the
   same checks the sidecar runs before serving it);
5. rename the directory into place, then write the plan entry through a
   temp file and a rename, so a reader sees the old plan or the new one and
   the running sidecar adopts it on its next poll or SIGHUP.
"""

import dataclasses
import fcntl
import hashlib
import http.client
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

from absl import app
from absl import flags

from sidecar import artifact
from sidecar import hashing
from sidecar import oci_registry
from sidecar import plan as plan_lib
from sidecar import scorer as scorer_lib

flags.DEFINE_string("plan", "", "The upgrade plan file the sidecar serves (--upgrade-plan); the entry is added to it.")
flags.DEFINE_string("models-dir", "", "Where model directories live. Default: the plan file's directory.")
flags.DEFINE_string("version", "", "The approved model version (a Cosmos upgrade's name).")
flags.DEFINE_string("model-hash", "", "The approved model hash (model_hash; sha256:, either case).")
flags.DEFINE_string("height", "", "The approved activation height.")
flags.DEFINE_string(
    "artifact", "",
    "oci://HOST/REPO@sha256:…, https://…/model.tar?checksum=sha256:…, or a local .tar file (?checksum=… optional).",
)
flags.DEFINE_string(
    "upgrade-info", "",
    'Instead of the four flags above: a Cosmos x/upgrade plan {"name", "height", "info"} or a JSON array of '
    "them, literally or in a file; info is JSON (or a URL to JSON with ?checksum=) naming model_artifact and model_hash.",
)
flags.DEFINE_string(
    "path", "", "Directory name in the models directory. Default: where the plan already puts the version, "
    "else trust_score_<version>.")
flags.DEFINE_bool("plain-http", False, "oci:// registries over http:// instead of https:// (a loopback registry).")
flags.DEFINE_integer("max-bytes", 1 << 30, "Size cap of the download and of the unpacked model.")
FLAGS = flags.FLAGS

_INFO_KEYS = {"model_artifact", "model_hash"}
_UPGRADE_KEYS = {"name", "height", "info"}
_TMP_PREFIX = ".stage-"
_CHUNK = 1 << 20
_TIMEOUT_S = 60


class StageError(Exception):
    """Staging refused; the message names the field, file or hash."""


@dataclasses.dataclass(frozen=True, slots=True)
class Release:
    """What governance approved."""

    version: str
    model_hash: str
    height: int
    artifact: str


@dataclasses.dataclass(frozen=True, slots=True)
class Source:
    kind: str  # "oci", "url" or "file"
    location: str  # registry base URL and repository ("oci"), the URL without its checksum, or the path
    digest: str | None  # "sha256:<hex>": the manifest (oci) or the tar's checksum
    repository: str = ""


# --- governance input (pure) ------------------------------------------------

def parse_height(value: object, field: str) -> int:
    """A height as a JSON number or a decimal string (Cosmos writes int64 as strings)."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise StageError(f"{field}: {value!r} is not a block height (a non-negative integer, or one as a string)")


def parse_version(value: object, field: str) -> str:
    if not isinstance(value, str) or not value or value != value.strip() or "/" in value or value in (".", ".."):
        raise StageError(f"{field}: {value!r} is not a version (a non-empty name without '/' or spaces)")
    return value


def parse_hash(value: object, field: str) -> str:
    try:
        return hashing.normalize_sha256(value, field)
    except ValueError as e:
        raise StageError(str(e)) from None


def parse_source(text: str, plain_http: bool = False) -> Source:
    """oci://HOST/REPO@sha256:…, http(s)://…?checksum=sha256:… (required) or a path [?checksum=…]."""
    if text.startswith("oci://"):
        name, at, digest = text[len("oci://"):].partition("@")
        host, _, repository = name.partition("/")
        if not at or not host or not repository:
            raise StageError(f"artifact: {text!r} must be oci://HOST/REPOSITORY@sha256:<digest> (a digest, not a tag)")
        base = f"{'http' if plain_http else 'https'}://{host}"
        return Source("oci", base, "sha256:" + parse_hash(digest, "artifact digest"), repository)
    location, _, query = text.partition("?")
    params = urllib.parse.parse_qs(query, keep_blank_values=True) if query else {}
    unknown = set(params) - {"checksum"}
    if unknown or len(params.get("checksum", [None])) != 1:
        raise StageError(f"artifact: {text!r}: the only query parameter understood is one checksum=sha256:<hex>")
    checksum = params.get("checksum", [None])[0]
    digest = "sha256:" + parse_hash(checksum, "artifact checksum") if checksum is not None else None
    scheme = urllib.parse.urlparse(location).scheme
    if scheme in ("http", "https"):
        if digest is None:
            raise StageError(f"artifact: {text!r} has no ?checksum=sha256:<hex>: a download must name its digest")
        return Source("url", location, digest)
    if scheme == "file":
        location = urllib.parse.urlparse(location).path
    elif scheme:
        raise StageError(f"artifact: {text!r}: unsupported scheme {scheme!r} (oci://, https://, http:// or a file)")
    return Source("file", location, digest)


def releases(doc: object, fetch_info) -> list[Release]:
    """Releases from a Cosmos x/upgrade plan, a JSON array of them, or `{"plan": …}` as queried from a chain.

    `fetch_info(url)` returns the bytes of an info URL (checked against its checksum).
    """
    if isinstance(doc, dict) and set(doc) == {"plan"}:
        doc = doc["plan"]
    items = doc if isinstance(doc, list) else [doc]
    if not items:
        raise StageError("upgrade-info: an empty array")
    out = []
    for i, item in enumerate(items):
        where = f"upgrade-info[{i}]" if isinstance(doc, list) else "upgrade-info"
        if not isinstance(item, dict) or not _UPGRADE_KEYS <= set(item):
            raise StageError(f"{where}: an x/upgrade plan is an object with {sorted(_UPGRADE_KEYS)}")
        info = item["info"]
        if isinstance(info, str) and info.strip().startswith(("http://", "https://")):
            info = fetch_info(info.strip())
        try:
            info = json.loads(info) if isinstance(info, (str, bytes)) else info
        except ValueError as e:
            raise StageError(f"{where}.info is not JSON: {e}") from None
        if not isinstance(info, dict) or set(info) != _INFO_KEYS:
            got = sorted(info) if isinstance(info, dict) else type(info).__name__
            raise StageError(f"{where}.info must have exactly the keys {sorted(_INFO_KEYS)}, got {got}")
        if not isinstance(info["model_artifact"], str):
            raise StageError(f"{where}.info.model_artifact must be a string")
        out.append(Release(parse_version(item["name"], f"{where}.name"),
                           parse_hash(info["model_hash"], f"{where}.info.model_hash"),
                           parse_height(item["height"], f"{where}.height"), info["model_artifact"]))
    return out


# --- decisions (pure) -------------------------------------------------------

def install_decision(existing_hash: str | None, wanted: str, path: str) -> bool:
    """True to install; False when `path` already holds the approved model; refuses a different one."""
    if existing_hash is None:
        return True
    if existing_hash == wanted:
        return False
    raise StageError(f"{path} already exists with model hash {existing_hash}, not the approved {wanted}: "
                     "a version directory is never overwritten (move it away if it is not in use)")


def plan_with(doc: dict, entry: dict) -> dict | None:
    """The plan document with `entry` added (in height order), or None when it is already there.

    An entry of the same version with other values, or another version at the
    same height, is refused naming both.
    """
    entries = doc.get("entries") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise StageError('the plan has no "entries" list')
    for old in entries:
        if not isinstance(old, dict):
            continue
        if old.get("version") == entry["version"]:
            if all(old.get(k) == entry[k] for k in ("expected_hash", "activation_height")):
                return None
            raise StageError(
                f"the plan already has {entry['version']} with hash {old.get('expected_hash')} at height "
                f"{old.get('activation_height')}; governance approved hash {entry['expected_hash']} at height "
                f"{entry['activation_height']}: edit the plan yourself if the proposal changed")
        if old.get("activation_height") == entry["activation_height"]:
            raise StageError(f"the plan already activates {old.get('version')} at height {entry['activation_height']}")
    new = dict(doc)
    new["entries"] = sorted(entries + [entry], key=lambda e: e.get("activation_height", -1) if isinstance(e, dict) else -1)
    return new


# --- I/O ----------------------------------------------------------------------

def _copy(src, dst, max_bytes: int, what: str, expected_size: int | None = None) -> str:
    """Streams src to dst under the size cap; returns "sha256:<hex>"."""
    h, n = hashlib.sha256(), 0
    try:
        while chunk := src.read(_CHUNK):
            n += len(chunk)
            if n > max_bytes:
                raise StageError(f"{what} is over the size cap of {max_bytes} bytes (--max-bytes)")
            h.update(chunk)
            dst.write(chunk)
    except (OSError, http.client.HTTPException) as e:
        raise StageError(f"{what}: the download failed after {n} bytes: {e!r}") from None
    if expected_size is not None and n != expected_size:
        # http.client returns a body cut short by a closed connection as if it were whole.
        raise StageError(f"{what}: the download was cut short: {n} of {expected_size} bytes arrived")
    return "sha256:" + h.hexdigest()


def _open_url(url: str, what: str):
    try:
        return urllib.request.urlopen(url, timeout=_TIMEOUT_S)
    except urllib.error.HTTPError as e:
        raise StageError(f"{what}: {url} answered {e.code} {e.reason}") from None
    except (OSError, http.client.HTTPException) as e:
        raise StageError(f"{what}: cannot fetch {url}: {getattr(e, 'reason', None) or e}") from None


def fetch_info(url_with_checksum: str, max_bytes: int = 1 << 20) -> bytes:
    """An info JSON named by URL, checked against its ?checksum=."""
    src = parse_source(url_with_checksum)
    if src.kind != "url":
        raise StageError(f"upgrade-info: info URL {url_with_checksum!r} must be http(s)://…?checksum=sha256:<hex>")
    with _open_url(src.location, "info") as resp, tempfile.TemporaryFile() as f:
        got = _copy(resp, f, max_bytes, f"info {src.location}")
        if got != src.digest:
            raise StageError(f"info {src.location} has digest {got}, but its checksum says {src.digest}")
        f.seek(0)
        return f.read()


def download(release: Release, src: Source, dst_path: str, max_bytes: int) -> None:
    """Writes the artifact's tar to dst_path, checked against its digest."""
    with open(dst_path, "wb") as dst:
        if src.kind == "oci":
            registry = oci_registry.Registry(src.location, src.repository, oci_registry.auth_from_environment())
            try:
                got = registry.manifest(src.digest)
                if got is None:
                    raise StageError(f"{release.artifact}: the registry has no such manifest")
                layer = artifact.model_layer(got[0], src.digest, release.version, release.model_hash, max_bytes)
                with registry.open("GET", registry.url(f"blobs/{layer['digest']}")) as resp:
                    digest = _copy(resp, dst, max_bytes, f"layer {layer['digest']}", layer["size"])
            except (oci_registry.RegistryError, artifact.ArtifactError) as e:
                raise StageError(f"{release.artifact}: {e}") from None
            want = layer["digest"]
        elif src.kind == "url":
            with _open_url(src.location, "artifact") as resp:
                length = resp.headers.get("Content-Length")
                digest = _copy(resp, dst, max_bytes, src.location, int(length) if length and length.isdigit() else None)
            want = src.digest
        else:
            try:
                with open(src.location, "rb") as f:
                    digest = _copy(f, dst, max_bytes, src.location)
            except OSError as e:
                raise StageError(f"artifact: cannot read {src.location}: {e.strerror or e}") from None
            want = src.digest or digest
    if digest != want:
        raise StageError(f"{release.artifact}: the artifact has digest {digest}, not {want}: refusing it")


def write_plan(path: str, doc: dict) -> None:
    """Replaces the plan file atomically: a temp file in its directory, fsync, rename, fsync the directory."""
    data = (json.dumps(doc, indent=2) + "\n").encode()
    directory = os.path.dirname(os.path.abspath(path))
    plan_lib.parse(data, directory, path)  # never write a plan the sidecar would refuse
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".plan-", suffix=".json")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), os.stat(path).st_mode & 0o777)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def verify_model(model_dir: str, release: Release) -> None:
    """The sidecar's own start-up checks: model hash (before TensorFlow), version, golden vectors."""
    try:
        scorer = scorer_lib.Scorer.load(model_dir, expected_hash=release.model_hash, expected_version=release.version)
    except scorer_lib.ScorerError as e:
        raise StageError(f"{release.version}: {e}") from None
    scorer.close()


def _lock(models_dir: str) -> int:
    fd = os.open(models_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StageError(f"another stage is running in {models_dir}: wait for it and run this again") from None
    return fd


def stage(release: Release, plan_path: str, models_dir: str, dir_name: str | None, max_bytes: int,
          plain_http: bool = False, log=print) -> str:
    """Stages one release into models_dir/dir_name; returns what it did.

    Without dir_name: where the plan already puts this version, else trust_score_<version>.
    """
    release = dataclasses.replace(release, model_hash=parse_hash(release.model_hash, "model hash"))
    src = parse_source(release.artifact, plain_http)
    if not os.path.isfile(plan_path):
        raise StageError(f"plan: no plan file at {plan_path} (the one the sidecar serves with --upgrade-plan)")
    plan_dir = os.path.dirname(os.path.abspath(plan_path))
    lock = _lock(models_dir)
    try:
        for name in os.listdir(models_dir):
            if name.startswith(_TMP_PREFIX):
                log(f"removing {name}, left by an interrupted stage")
                shutil.rmtree(os.path.join(models_dir, name))
        with open(plan_path, "rb") as f:
            doc = json.loads(f.read())
        planned = [e.path for e in plan_lib.parse(json.dumps(doc).encode(), plan_dir, plan_path).entries
                   if e.version == release.version and os.path.dirname(e.path) == os.path.abspath(models_dir)]
        if dir_name is None:
            dir_name = os.path.basename(planned[0]) if planned else f"trust_score_{release.version}"
        target = os.path.join(models_dir, dir_name)
        existing = None
        if os.path.lexists(target):
            try:
                existing = hashing.model_hash(target)
            except (hashing.ModelHashError, OSError) as e:
                raise StageError(f"{target} exists and is not a model directory ({e}): "
                                 "a version directory is never overwritten") from None
        install = install_decision(existing, release.model_hash, target)
        entry = {"version": release.version, "path": os.path.relpath(target, plan_dir),
                 "expected_hash": release.model_hash, "activation_height": release.height}
        new_doc = plan_with(doc, entry)
        did = []
        if install:
            t0 = time.monotonic()
            tmp = tempfile.mkdtemp(prefix=_TMP_PREFIX, dir=models_dir)
            try:
                tar_path = os.path.join(tmp, "artifact.tar")
                download(release, src, tar_path, max_bytes)
                unpacked = os.path.join(tmp, dir_name)
                try:
                    artifact.unpack(tar_path, unpacked, max_bytes)
                except artifact.ArtifactError as e:
                    raise StageError(f"{release.artifact}: {e}") from None
                os.unlink(tar_path)
                verify_model(unpacked, release)
                os.rename(unpacked, target)
            finally:
                shutil.rmtree(tmp)
            did.append(f"installed {target} ({time.monotonic() - t0:.2f}s: fetched, unpacked, hash and golden "
                       "vectors verified)")
        else:
            did.append(f"{target} already holds model hash {release.model_hash}")
        if new_doc is None:
            did.append(f"the plan already has {release.version} at height {release.height}")
        else:
            write_plan(plan_path, new_doc)
            did.append(f"added {release.version} at height {release.height} to {plan_path}")
        return "; ".join(did)
    except (OSError, ValueError) as e:  # an unreadable plan or models directory, a plan the sidecar refuses
        raise StageError(str(e)) from None
    finally:
        os.close(lock)


def _release_from_flags() -> list[Release]:
    given = [n for n in ("version", "model-hash", "height", "artifact") if FLAGS[n].value]
    if FLAGS["upgrade-info"].value:
        if given:
            raise StageError(f"--upgrade-info replaces --{', --'.join(given)}: give one or the other")
        text = FLAGS["upgrade-info"].value
        if not text.lstrip().startswith(("{", "[")):
            try:
                with open(text, "rb") as f:
                    text = f.read()
            except OSError as e:
                raise StageError(f"--upgrade-info: cannot read {text}: {e.strerror or e}") from None
        try:
            doc = json.loads(text)
        except ValueError as e:
            raise StageError(f"--upgrade-info is not JSON: {e}") from None
        return releases(doc, fetch_info)
    missing = [n for n in ("version", "model-hash", "height", "artifact") if not FLAGS[n].value]
    if missing:
        raise StageError(f"missing --{', --'.join(missing)} (or give --upgrade-info)")
    return [Release(parse_version(FLAGS.version, "--version"), parse_hash(FLAGS["model-hash"].value, "--model-hash"),
                    parse_height(FLAGS.height, "--height"), FLAGS.artifact)]


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        print(f"stage: unexpected arguments {argv[1:]}", file=sys.stderr)
        return 2
    here = os.environ.get("BUILD_WORKING_DIRECTORY", "")
    try:
        if not FLAGS.plan:
            raise StageError("--plan is required: the upgrade plan the sidecar serves")
        plan_path = os.path.join(here, FLAGS.plan)
        models_dir = os.path.join(here, FLAGS["models-dir"].value) if FLAGS["models-dir"].value \
            else os.path.dirname(os.path.abspath(plan_path))
        todo = _release_from_flags()
        if FLAGS.path and len(todo) != 1:
            raise StageError("--path names one directory: stage one release at a time with it")
        name = FLAGS.path or None
        if name is not None and ("/" in name or name in (".", "..") or name.startswith(_TMP_PREFIX)):
            raise StageError(f"--path: {name!r} must be a plain directory name")
        for release in todo:
            print(f"stage {release.version}: " + stage(release, plan_path, models_dir, name, FLAGS["max-bytes"].value,
                                                       FLAGS["plain-http"].value,
                                                       log=lambda m: print(m, file=sys.stderr)))
    except StageError as e:
        print(f"stage: refused: {e}", file=sys.stderr)
        return 1
    return 0


def run_from_entrypoint(argv: list[str]) -> None:
    """`IMAGE stage …`: the entrypoint's serving flags come first; its --upgrade-plan is stage's default --plan."""
    i = argv.index("stage")
    serving, rest = argv[1:i], argv[i + 1:]
    plan = [a.split("=", 1)[1] for a in serving if a.startswith("--upgrade-plan=")]
    if plan and not any(a.startswith("--plan=") or a == "--plan" for a in rest):
        rest = [f"--plan={plan[-1]}"] + rest
    app.run(lambda args: sys.exit(main(args)), argv=[argv[0]] + rest)


def wants_stage(argv: list[str]) -> bool:
    """True when the first argument that is not a --flag=value is `stage`."""
    for a in argv[1:]:
        if not (a.startswith("--") and "=" in a):
            return a == "stage"
    return False


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)))
