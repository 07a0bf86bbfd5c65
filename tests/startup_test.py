"""Start-up refusals: each exits non-zero, names what is wrong and serves nothing.

Most fail before TensorFlow is imported, so they cost a fraction of a second
each; the golden self-check failure and the damaged-but-consistent model
directories need TensorFlow.
"""

import glob
import json
import os
import shutil
import subprocess
import time

import pytest

from ops import committed_model
from ops import sidecar_process
from sidecar import hashing
from tests import model_fixture


# What the sidecar logs once it listens.
SERVING_LINE = "SERVING inference.v1"


@pytest.fixture
def model_copy():
    return committed_model.copy_model(sidecar_process.tmpdir("startup-"))


def recorded_hash(model_path: str) -> str:
    with open(os.path.join(model_path, hashing.METADATA_FILE), encoding="utf-8") as f:
        return json.load(f)["model_hash"]


def run(*args, env=None, model_path=None):
    ports = [f"--grpc-addr=127.0.0.1:{sidecar_process.free_port()}",
             f"--metrics-addr=127.0.0.1:{sidecar_process.free_port()}"]
    model = [f"--model-path={model_path}"] if model_path else []
    return sidecar_process.run_to_exit(*ports, *model, *args, env=env)


def assert_refused(r: subprocess.CompletedProcess, *fragments: str) -> None:
    assert r.returncode != 0, r.stdout
    for fragment in fragments:
        assert fragment in r.stdout, f"{fragment!r} not in:\n{r.stdout}"
    assert SERVING_LINE not in r.stdout


# -- the model -----------------------------------------------------------------


def test_sigterm_during_start_up_exits_at_once(model_copy):
    s = sidecar_process.Sidecar(model_path=model_copy)
    try:
        s.wait_for_log("start-up 1/6", timeout=120)
        assert s.terminate(timeout=60) == 0, s.log()
        assert "during start-up: exiting before serving" in s.log()
        assert SERVING_LINE not in s.log()
    finally:
        s.kill()


def test_tampered_model(model_copy):
    recorded = recorded_hash(model_copy)
    (data,) = glob.glob(os.path.join(model_copy, "variables", "variables.data-*"))
    model_fixture.flip_byte(data, offset=len(open(data, "rb").read()) // 2)
    actual = hashing.model_hash(model_copy)
    assert actual != recorded
    assert_refused(run(model_path=model_copy), "model hash mismatch", actual, recorded)


def test_wrong_expected_hash(model_copy):
    wrong = "ab" * 32
    assert_refused(run(f"--expected-hash={wrong}", model_path=model_copy),
                   "model hash mismatch", recorded_hash(model_copy), wrong)


def test_wrong_model_version(model_copy):
    assert_refused(run("--model-version=v9.9.9", model_path=model_copy), "model version mismatch", "v9.9.9", "v1.0.0")


def test_missing_model(model_copy):
    missing = os.path.join(model_copy, "nope")
    assert_refused(run(model_path=missing), missing)


def test_metadata_with_other_determinism_settings(model_copy):
    path = os.path.join(model_copy, hashing.METADATA_FILE)
    with open(path, encoding="utf-8") as f:
        meta = json.load(f)
    meta["determinism"]["seed"] = 7
    with open(path, "w", encoding="utf-8") as f:
        json.dump(meta, f)
    assert_refused(run(model_path=model_copy), "determinism settings", "'seed': 7")


def rehash(model_path: str) -> None:
    """Re-records the model hash in export_metadata.json, so the edited directory is consistent."""
    meta_path = os.path.join(model_path, hashing.METADATA_FILE)
    with open(meta_path, encoding="utf-8") as f:
        meta = json.load(f)
    meta["model_hash"] = hashing.model_hash(model_path)
    with open(meta_path, "w", encoding="utf-8") as f:
        json.dump(meta, f)


def test_failed_golden_self_check_is_fatal_and_nothing_listens(model_copy):
    # A consistent but wrong model directory: one expected hash changed and the
    # model hash recomputed, so only the self-check can catch it.
    golden_path = os.path.join(model_copy, "golden_vectors.json")
    with open(golden_path, encoding="utf-8") as f:
        doc = json.load(f)
    name = doc["vectors"][0]["name"]
    doc["vectors"][0]["output_hash"] = "0" * 64
    with open(golden_path, "w", encoding="utf-8") as f:
        json.dump(doc, f)
    rehash(model_copy)

    s = sidecar_process.Sidecar(model_path=model_copy)
    try:
        # Watch both ports for the whole life of the process, not just after it died.
        while s.proc.poll() is None:
            assert sidecar_process.port_is_closed(s.grpc_port), s.log()
            assert sidecar_process.port_is_closed(s.metrics_port), s.log()
            time.sleep(0.05)
        out = s.log()
        assert s.proc.returncode != 0, out
        assert "golden vector self-check failed" in out and f"{name}: output_hash" in out, out
        assert "start-up 4/6: loaded model" in out, "must fail at the self-check, not before"
        assert SERVING_LINE not in out
    finally:
        s.kill()


# -- model directory faults ---------------------------------------------------------
# Each fault twice where it matters: as found (the manifest hash catches it
# before TensorFlow sees a byte) and "consistent" (export_metadata.json
# re-hashed, as a careless operator or an attacker would), so that the loader's
# own errors are exercised too.


def _remove_variables(model_path):
    shutil.rmtree(os.path.join(model_path, "variables"))


def _truncate_variables(model_path):
    (data,) = glob.glob(os.path.join(model_path, "variables", "variables.data-*"))
    os.truncate(data, os.path.getsize(data) // 2)


@pytest.mark.parametrize("fault", [_remove_variables, _truncate_variables], ids=["missing_variables", "truncated"])
def test_damaged_variables_are_caught_by_the_hash(model_copy, fault):
    recorded = recorded_hash(model_copy)
    fault(model_copy)
    assert_refused(run(model_path=model_copy), "model hash mismatch", recorded)


@pytest.mark.parametrize("fault, message", [(_remove_variables, "cannot load SavedModel"),
                                            (_truncate_variables, "cannot load SavedModel")],
                         ids=["missing_variables", "truncated"])
def test_damaged_variables_with_consistent_metadata_fail_to_load(model_copy, fault, message):
    fault(model_copy)
    rehash(model_copy)
    assert_refused(run(model_path=model_copy), message)


def test_metadata_may_not_choose_the_golden_file(model_copy):
    # export_metadata.json is outside the hash: it may not point the self-check elsewhere.
    meta_path = os.path.join(model_copy, hashing.METADATA_FILE)
    with open(meta_path, encoding="utf-8") as f:
        meta = json.load(f)
    meta["golden_vectors"]["file"] = "../elsewhere.json"
    with open(meta_path, "w", encoding="utf-8") as f:
        json.dump(meta, f)
    assert_refused(run(model_path=model_copy), "'../elsewhere.json'", "only 'golden_vectors.json'")


def test_empty_golden_set_is_refused(model_copy):
    with open(os.path.join(model_copy, "golden_vectors.json"), "w", encoding="utf-8") as f:
        json.dump({"vectors": []}, f)
    rehash(model_copy)
    assert_refused(run(model_path=model_copy), "golden_vectors.json has no vectors")


def test_symlinked_model_root_is_refused(model_copy):
    link = model_copy.rstrip("/") + "-current"
    os.symlink(model_copy, link)
    assert_refused(run(model_path=link), "is a symlink; name the directory itself")


def test_extra_file(model_copy):
    with open(os.path.join(model_copy, "variables", "README"), "w", encoding="utf-8") as f:
        f.write("not part of the model\n")
    assert_refused(run(model_path=model_copy), "model hash mismatch", recorded_hash(model_copy))


def test_symlink_pointing_outside(model_copy):
    outside = os.path.join(os.path.dirname(model_copy), "outside.bin")
    with open(outside, "wb") as f:
        f.write(b"\0" * 16)
    os.symlink(outside, os.path.join(model_copy, "assets.bin"))
    assert_refused(run(model_path=model_copy), "refusing symlink in model directory: assets.bin")


def test_unreadable_file_chmod_000(model_copy):
    path = os.path.join(model_copy, "variables", "variables.index")
    os.chmod(path, 0)
    try:
        try:
            with open(path, "rb"):
                readable = True
        except PermissionError:
            readable = False
        # Root (CI) reads mode-000 files through CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH:
        # the sidecar then runs without them, as a validator's non-root user would.
        prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"] if readable else []
        r = sidecar_process.run_to_exit(f"--grpc-addr=127.0.0.1:{sidecar_process.free_port()}",
                                        f"--metrics-addr=127.0.0.1:{sidecar_process.free_port()}",
                                        f"--model-path={model_copy}", prefix=prefix)
        assert_refused(r, "cannot open variables/variables.index", "Permission denied")
    finally:
        os.chmod(path, 0o644)


def test_unreadable_file_special(model_copy):
    # Unreadable even for root: a FIFO in place of the file (opening it for
    # reading would block forever); the hash refuses it without opening it.
    path = os.path.join(model_copy, "variables", "variables.index")
    os.remove(path)
    os.mkfifo(path)
    assert_refused(run(model_path=model_copy), "refusing special file in model directory: variables/variables.index")


# -- the environment ----------------------------------------------------------------


@pytest.mark.parametrize("name, value", [("TF_ENABLE_ONEDNN_OPTS", "1"), ("CUDA_VISIBLE_DEVICES", "0"),
                                         ("TF_DETERMINISTIC_OPS", "0")])
def test_contradicting_environment(model_copy, name, value):
    assert_refused(run(model_path=model_copy, env={name: value}), f"{name}={value!r}")


# -- flags ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "arg, flag",
    [
        ("--random-seed=7", "--random-seed=7"),
        ("--force-cpu=false", "--force-cpu"),
        ("--noforce-cpu", "--force-cpu"),
        ("--timeout=abc", "--timeout=abc"),
        ("--timeout=0s", "--timeout"),
        ("--grace-period=-1s", "--grace-period=-1s"),
        ("--log-level=loud", "--log-level=loud"),
        ("--grpc-addr=nonsense", "--grpc-addr=nonsense"),
        ("--metrics-addr=:99999", "--metrics-addr=:99999"),
        ("--expected-hash=xyz", "--expected-hash=xyz"),
        ("--grpc-workers=0", "--grpc-workers=0"),
        ("--frobnicate=1", "frobnicate"),
    ],
)
def test_bad_flags(arg, flag):
    r = sidecar_process.run_to_exit(arg, timeout=60)
    assert_refused(r, flag)


def test_random_seed_message_explains_the_contract():
    r = sidecar_process.run_to_exit("--random-seed=7", timeout=60)
    assert_refused(r, "determinism", "42")


def test_positional_arguments_are_refused():
    assert_refused(sidecar_process.run_to_exit("extra", timeout=60), "unexpected arguments: extra")


def test_help_lists_every_flag():
    from absl import flags  # pylint: disable=import-outside-toplevel

    from sidecar import main  # pylint: disable=import-outside-toplevel

    defined = {f.name for f in flags.FLAGS.get_flags_for_module(main)}
    required = {"grpc-addr", "metrics-addr", "model-path", "model-version", "expected-hash", "force-cpu",
                "random-seed", "log-level", "enable-reflection", "timeout", "grace-period"}
    assert required <= defined
    r = sidecar_process.run_to_exit("--help", timeout=60)  # absl exits 1 after --help
    for name in defined:
        assert f"--{name}:" in r.stdout or f"--[no]{name}:" in r.stdout, f"--{name} missing from --help"
    assert "BUILD_WORKSPACE_DIRECTORY" in r.stdout, "--model-path default must be documented"


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
