#!/usr/bin/env bash
# Demo: build, start the simulated GKE cluster, run `kubectl zdupgrade migrate pool-two --yes`
# through kubectl's plugin mechanism with the real kubectl and gcloud, print the report.
# Usage: tests/demo.sh [SCENARIO_FILE]   (default: tests/scenarios/basic.json)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
scenario=${1:-$root/tests/scenarios/basic.json}
cd "$root"
cargo build --quiet --workspace --bins
dir=$(mktemp -d -t zdupgrade-demo.XXXXXX)
"$root/target/debug/zdupgrade-sim" serve --scenario "$scenario" --dir "$dir" >"$dir/env" 2>"$dir/sim.log" &
sim=$!
trap 'kill $sim 2>/dev/null; wait $sim 2>/dev/null || true' EXIT
for _ in $(seq 50); do [ -s "$dir/url" ] && break; sleep 0.1; done
# shellcheck disable=SC1091
source "$dir/env"   # KUBECONFIG, CLOUDSDK_CONFIG, HOME: only the simulator is touched
export PATH="$root/target/debug:$PATH"
echo "== nodes before"; kubectl get nodes -L cloud.google.com/gke-nodepool
echo "== kubectl zdupgrade migrate pool-two --yes"
kubectl zdupgrade migrate pool-two --yes
echo "== nodes after"; kubectl get nodes -L cloud.google.com/gke-nodepool
echo "== simulator report (availability per workload, pods lost, requests)"
"$root/target/debug/zdupgrade-sim" report --dir "$dir" | python3 -c '
import json, sys
r = json.load(sys.stdin)
for e in r["events"]:
    print("%8.1fs  %-22s %s %s" % (e["t"], e["type"], e["object"], e.get("detail", "")))
print()
for w in r["workloads"]:
    print("%-12s %s/%-10s replicas=%s min_ready=%s downtime=%ss below_pdb=%ss" % (w["kind"], w["namespace"], w["name"], w["replicas"], w["min_ready"], w["downtime_seconds"], w["seconds_below_pdb"]))
print("pods lost:", len(r["pods_lost"]))
print("requests:", json.dumps(r["requests"]))
'
