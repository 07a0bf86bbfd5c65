"""The deploy files work against what the sidecar and the image really are."""

import re
import shutil
import subprocess

import pytest
from prometheus_client import exposition

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
    assert "5 rules found" in r.stdout


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
        used = set(re.findall(r"veid_inference_\w+", f.read()))
    assert used, "no sidecar series in the alert rules"
    assert used <= series, f"alert rules use series the sidecar does not export: {sorted(used - series)}"


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


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
