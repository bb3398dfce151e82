#!/usr/bin/env bash
# Static checks of everything deployment-related that needs no cluster or Docker
# engine: Kubernetes schemas, the Dockerfile lint, nginx's config, the alert rules.
# Needs: the tools venv (TOOLS_VENV, made by .ci/run), nginx, promtool.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS=${TOOLS_VENV:-$HOME/.cache/divine-heroes/venv-tools}/bin
SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT
echo "== kubernetes-validate (strict)"
"$TOOLS/kubernetes-validate" --strict --quiet k8s/*.yaml k8s/monitoring/*.yaml
# The Prometheus Operator kinds have no bundled schema: check their shape here.
"$TOOLS/python" - <<'PY'
import json, sys, yaml
docs = {d["kind"]: d for d in yaml.safe_load_all(open("k8s/monitoring/10-monitoring.yaml"))}
sm = docs["ServiceMonitor"]["spec"]
assert sm["endpoints"][0]["port"] == "http" and sm["endpoints"][0]["path"] == "/metrics/prometheus", sm
for f in ["02-api", "03-battle", "04-gacha"]:
    svc = [d for d in yaml.safe_load_all(open(f"k8s/{f}-deployment.yaml")) if d["kind"] == "Service"][0]
    labels = svc["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in sm["selector"]["matchLabels"].items()), (f, labels)
    assert labels["app.kubernetes.io/name"] in sm["selector"]["matchExpressions"][0]["values"], f
    assert any(p["name"] == "http" for p in svc["spec"]["ports"]), f
rules = docs["PrometheusRule"]["spec"]
assert rules["groups"] and all("alert" in r for r in rules["groups"][0]["rules"])
dashboard = json.loads(docs["ConfigMap"]["data"]["divine-heroes.json"])
assert dashboard == json.load(open("k8s/monitoring/grafana-dashboard.json")), "the plain dashboard file differs from the ConfigMap's"
# `kubectl apply -f k8s/` must work without the Prometheus Operator: no operator kind at the top level.
import glob
for f in glob.glob("k8s/*.yaml"):
    kinds = {d["kind"] for d in yaml.safe_load_all(open(f)) if d}
    assert not kinds & {"ServiceMonitor", "PrometheusRule", "PodMonitor"}, (f, kinds)
yaml.safe_dump(rules, open("tests/prometheus/rules.generated.yml", "w"))
print("ServiceMonitor matches the role Services; rules and dashboard parse")
PY
echo "== promtool"
promtool check rules tests/prometheus/rules.generated.yml
promtool test rules tests/prometheus/alerts.test.yml
echo "== hadolint (errors fail)"
"$TOOLS/hadolint" --failure-threshold error Dockerfile
echo "== nginx -t"
sed -e "s#server api:8001#server 127.0.0.1:18001#" -e "s#server battle:8002#server 127.0.0.1:18002#" \
    -e "s#server gacha:8003#server 127.0.0.1:18003#" -e "s#listen 80;#listen 127.0.0.1:18080;#" \
    -e "s#pid /tmp/nginx.pid;#pid $SCRATCH/nginx.pid;#" config/nginx.conf >"$SCRATCH/nginx.conf"
nginx -t -q -c "$SCRATCH/nginx.conf" -p "$SCRATCH"
echo "deployment checks passed"
