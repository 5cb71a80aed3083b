#!/usr/bin/env bash
# Demo: build, start the simulated GKE cluster, run `kubectl zdupgrade migrate pool-two --yes`
# through kubectl's plugin mechanism with the real kubectl and gcloud, print the report.
# Usage: tests/demo.sh [SCENARIO_FILE]   (default: tests/scenarios/basic.json)
# Needs cargo, kubectl, gcloud and python3 (which formats the report). Only the simulator is
# touched: KUBECONFIG, CLOUDSDK_CONFIG and HOME point into a temporary directory.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
scenario=${1:-$root/tests/scenarios/basic.json}
case $scenario in /*) ;; *) scenario=$PWD/$scenario ;; esac
cd "$root"
bin=${CARGO_TARGET_DIR:-$root/target}/debug

stage() { printf '\n==> %s\n' "$*"; }

for tool in cargo kubectl gcloud python3; do
  command -v "$tool" >/dev/null || { echo "tests/demo.sh: $tool is not on PATH" >&2; exit 1; }
done
[ -f "$scenario" ] || { echo "tests/demo.sh: no scenario file $scenario" >&2; exit 1; }

stage "Building kubectl-zdupgrade and the simulator (cargo build --workspace --bins; a first build takes several minutes, later ones seconds)"
cargo build --workspace --bins

dir=$(mktemp -d -t zdupgrade-demo.XXXXXX)
stage "Starting the simulated GKE cluster: scenario $scenario, in $dir"
"$bin/zdupgrade-sim" serve --scenario "$scenario" --dir "$dir" >/dev/null 2>"$dir/sim.log" &
sim=$!
trap 'kill $sim 2>/dev/null; wait $sim 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  [ -s "$dir/url" ] && break
  kill -0 "$sim" 2>/dev/null || break
  sleep 0.1
done
if [ ! -s "$dir/url" ]; then
  echo "tests/demo.sh: the simulator did not start; its log ($dir/sim.log):" >&2
  cat "$dir/sim.log" >&2
  exit 1
fi
time_scale=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1])).get("time_scale", 10))' "$scenario")
echo "serving $(cat "$dir/url"); its clock runs $time_scale simulated seconds per real second (time_scale in the scenario)"
# shellcheck disable=SC1091
source "$dir/env"   # KUBECONFIG, CLOUDSDK_CONFIG, HOME: only the simulator is touched
export PATH="$bin:$PATH"

stage "Nodes before the migration (kubectl get nodes)"
kubectl get nodes -L cloud.google.com/gke-nodepool

stage "Running the migration: kubectl zdupgrade migrate pool-two --yes (its times are real seconds)"
kubectl zdupgrade migrate pool-two --yes

stage "Nodes after the migration"
kubectl get nodes -L cloud.google.com/gke-nodepool

stage "The simulator's report: event log, availability per workload, pods lost, API requests"
echo "Times below are SIMULATED seconds since the simulator started ($time_scale per real second)."
echo
"$bin/zdupgrade-sim" report --dir "$dir" | python3 -c '
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
