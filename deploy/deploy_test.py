"""The deploy files work against what the sidecar and the image really are."""

import json
import os
import re
import shutil
import subprocess
import time

import grpc
import pytest
import yaml
from prometheus_client import exposition
from prometheus_client.parser import text_string_to_metric_families

from inference.v1 import inference_pb2 as pb
from inference.v1 import inference_pb2_grpc as pb_grpc
from ops import committed_model
from ops import sidecar_process

from sidecar import metrics as metrics_lib
from sidecar import plan as plan_lib
from sidecar import registry as registry_lib

_ALERTS = "deploy/prometheus/alerts.yml"
_PINNED = ["deploy/docker-compose.yml", "deploy/k8s/validator-pod.yaml"]
_IMAGE_REF = re.compile(r"veid-sidecar@(sha256:[0-9a-f]{64})")


def promtool(*args):
    tool = shutil.which("promtool", path="/usr/bin:/bin:/usr/local/bin")
    assert tool, "promtool is missing: apt-get install prometheus (./bazelw installs it)"
    return subprocess.run([tool, *args], capture_output=True, text=True, cwd="deploy/prometheus")


def test_alert_rules_are_valid():
    r = promtool("check", "rules", "alerts.yml")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "7 rules found" in r.stdout


def test_scrape_config_is_valid_and_names_the_alerts_job():
    r = promtool("check", "config", "prometheus.yml")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS: 1 rule files found" in r.stdout, r.stdout
    with open("deploy/prometheus/prometheus.yml") as f:
        jobs = re.findall(r"job_name: (\S+)", f.read())
    with open(_ALERTS) as f:
        selected = set(re.findall(r'job="([^"]+)"', f.read()))
    assert jobs == ["inference-sidecar"] and selected == set(jobs), (jobs, selected)


def test_alert_rules_fire_on_the_series_they_watch():
    r = promtool("test", "rules", "alerts_test.yml")
    assert r.returncode == 0, r.stdout + r.stderr


def test_alerts_use_only_exported_series():
    metrics = metrics_lib.Metrics()
    plan = plan_lib.single("models/trust_score", "v1.0.0", "0" * 64)
    metrics.watch_plan(lambda: [registry_lib.EntryStatus(plan.entries[0], registry_lib.State.ACTIVE, "", "0" * 64)],
                       lambda: 1, 100)
    exported = exposition.generate_latest(metrics.registry).decode()
    series = {line.split("{")[0].split(" ")[0] for line in exported.splitlines() if not line.startswith("#")}
    with open(_ALERTS) as f:
        used = set(re.findall(r"veid_\w+", f.read()))
    assert used, "no sidecar series in the alert rules"
    assert used <= series, f"alert rules use series the sidecar does not export: {sorted(used - series)}"


def alert_exprs():
    with open(_ALERTS, encoding="utf-8") as f:
        return {r["alert"]: r["expr"] for g in yaml.safe_load(f)["groups"] for r in g["rules"]}


def input_series(text: str, instance: str) -> list[dict]:
    """promtool input series from a real /metrics page: each sample with its
    labels as scraped (plus job and instance, as Prometheus adds them);
    counters grow by their scraped value every minute, gauges stay."""
    series = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            labels = dict(sample.labels, job="sidecar", instance=instance)
            selector = sample.name + "{" + ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(labels.items())) + "}"
            grows = family.type in ("counter", "histogram")
            series.append({"series": selector, "values": f"0+{sample.value!r}x30" if grows else f"{sample.value!r}x30"})
    return series


@pytest.fixture(scope="module")
def live_upgrade_sidecar():
    """A sidecar on the example plan whose v1.1.0 entry expects a hash its files do not have (rejected)."""
    work = sidecar_process.tmpdir("deploy-")
    models = committed_model.copy_models(work)
    with open(os.path.join(models, "plan.example.json"), encoding="utf-8") as f:
        plan = json.load(f)
    plan["entries"][1]["expected_hash"] = "f" * 64
    with open(os.path.join(models, "plan.alerts.json"), "w", encoding="utf-8") as f:
        json.dump(plan, f)
    with sidecar_process.serving(upgrade_plan=os.path.join("models", "plan.alerts.json"), cwd=work) as s:
        deadline = time.monotonic() + 120
        version = re.escape(plan["entries"][1]["version"])
        rejected = re.compile(rf'^veid_inference_model_rejections_total\{{[^}}]*version="{version}"', re.M)
        while not rejected.search(sidecar_process.http_get(s.metrics_url + "/metrics")[2].decode()):
            assert time.monotonic() < deadline, s.log()[-4000:]
            time.sleep(0.2)
        yield s, plan


def test_alerts_select_the_label_values_a_running_sidecar_exports(live_upgrade_sidecar, tmp_path):
    sidecar, plan = live_upgrade_sidecar
    (_, upgrade) = plan["entries"]
    height = upgrade["activation_height"] - 10  # within --upgrade-alert-blocks (100) of the rejected entry
    with sidecar.channel() as ch:
        stub = pb_grpc.InferenceServiceStub(ch)
        meta = pb.InferenceMetadata(block_height=height)
        stub.ComputeScore(pb.ComputeScoreRequest(features=[0.0] * 768, metadata=meta), timeout=30)
        with pytest.raises(grpc.RpcError) as bad:
            stub.ComputeScore(pb.ComputeScoreRequest(features=[0.0] * 3, metadata=meta), timeout=30)
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    page = sidecar_process.http_get(sidecar.metrics_url + "/metrics")[2].decode()
    exprs = alert_exprs()
    # Each alert's own expression over the series this sidecar exports: the
    # error ratio (1 of 2 calls), the rejected entry due in 10 blocks named by
    # the plan's version and hash; the healthy sidecar and its fast calls quiet.
    tests = [
        ("VeidInferenceErrorRateHigh", [{"labels": '{instance="live"}', "value": 0.5}]),
        ("VeidUpgradeModelNotVerified", [{"labels": "{" + ", ".join([
            f'hash="{upgrade["expected_hash"]}"', 'instance="live"', 'job="sidecar"', 'state="rejected"',
            f'version="{upgrade["version"]}"']) + "}", "value": 10}]),
        ("VeidSidecarUnhealthy", []),
        ("VeidInferenceLatencyP99High", []),
        ("VeidUpgradePlanRefused", []),
        ("VeidTLSMaterialStale", []),
        # `up` is Prometheus' own series: //deploy:prometheus_test sees this one fire.
        ("InferenceSidecarDown", []),
    ]
    assert sorted(name for name, _ in tests) == sorted(exprs)
    spec = {"rule_files": [os.path.abspath(_ALERTS)], "evaluation_interval": "1m", "tests": [{
        "interval": "1m",
        "input_series": input_series(page, "live"),
        "promql_expr_test": [{"expr": exprs[name], "eval_time": "10m", "exp_samples": want} for name, want in tests],
    }]}
    path = tmp_path / "live_test.yml"
    path.write_text(json.dumps(spec, indent=1))  # JSON is YAML
    r = promtool("test", "rules", str(path))
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("path", _PINNED)
def test_deploy_files_pin_the_committed_image_digest(path):
    with open("image/DIGEST") as f:
        digest = f.read().strip()
    with open(path) as f:
        refs = _IMAGE_REF.findall(f.read())
    assert refs and set(refs) == {digest}, f"{path} pins {refs}, image/DIGEST is {digest}"


def test_network_policy_restricts_exactly_the_sidecar_ports():
    with open("deploy/k8s/validator-pod.yaml") as f:
        pod_ports = {int(p) for p in re.findall(r"containerPort: (\d+)", f.read())}
    with open("deploy/k8s/network-policy.yaml") as f:
        rules = f.read().split("    - from:")[1:]
    # The last rule (no "from") opens ranges; the ones before name one sidecar port each.
    restricted = {int(p) for rule in rules for p in re.findall(r"\bport: (\d+)", rule.split("    - ports:")[0])}
    assert restricted == pod_ports
    open_rule = rules[-1].split("    - ports:")[1]
    tcp = re.findall(r"protocol: TCP\s+port: (\d+)\s+endPort: (\d+)", open_rule)
    opened = {p for lo, hi in tcp for p in range(int(lo), int(hi) + 1)}
    assert opened == set(range(1, 65536)) - pod_ports


@pytest.mark.parametrize("path", _PINNED)
def test_deploy_files_serve_mutual_tls_from_mounted_files(path):
    """The sidecar gets all three TLS files, each under a read-only mount, and never --require-mtls=false."""
    with open(path) as f:
        text = f.read()
    assert "--require-mtls=false" not in text
    files = dict(re.findall(r"--(tls-cert-file|tls-key-file|tls-client-ca-file)=(/\S+)", text))
    assert sorted(files) == ["tls-cert-file", "tls-client-ca-file", "tls-key-file"], files
    if path.endswith(".yml"):  # compose: "- ./dir:/mount:ro"
        mounts = re.findall(r"^\s+- \./[^:\s]+:(/[^:\s]+):ro$", text, re.M)
    else:  # Kubernetes: mountPath followed by readOnly: true
        mounts = re.findall(r"mountPath: (/\S+)\n\s+readOnly: true", text)
    for flag, file in files.items():
        assert os.path.dirname(file) in mounts, f"{path}: --{flag}={file} is not in a read-only mount {mounts}"


def test_pod_probes_need_no_client_certificate():
    with open("deploy/k8s/validator-pod.yaml") as f:
        probes = re.findall(r"(readinessProbe|livenessProbe):\n\s+(\w+):", f.read())
    assert sorted(probes) == [("livenessProbe", "httpGet"), ("readinessProbe", "httpGet")]


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
