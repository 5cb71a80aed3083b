//! `--strategy surge` (the default): each node's Deployments are moved by a rolling restart
//! before its drain, so single-replica Deployments never go down, and every Deployment's spec
//! ends as it was (apart from the restart annotation), even after a failure or a SIGKILL.
//! `--strategy evict` is measured against it on the same scenario (`single-replica.json`: every
//! pod needs 4 s to start and 8 s more to be Ready, in simulated seconds).

use crate::migrate::{pods_by_pool, pool_nodes};
use crate::{scenario, Run, World};
use k8s_openapi::api::apps::v1::Deployment;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const ORIGINAL_STRATEGY: &str = "kubectl-zdupgrade/original-strategy";
const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";
/// The scenario's readinessDelay and the simulator's default pod start, simulated seconds.
const READINESS_DELAY: f64 = 8.0;
const POD_START: f64 = 4.0;
/// Single-replica Deployments the scenario's default strategy moves by a rolling restart.
const SURGED: [&str; 6] = [
    "recreate",
    "recreate-pdb",
    "rolling",
    "rolling-pdb",
    "surge0",
    "wide",
];
/// Those whose strategy could lower their ready count: replaced during the rollout.
const STRATEGY_CHANGED: [&str; 4] = ["recreate", "recreate-pdb", "surge0", "wide"];

fn single_replica() -> World {
    World::new(scenario("single-replica"))
}

/// Every stdout line of a `-o json` run, parsed.
fn json_lines(r: &Run) -> Vec<Value> {
    r.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Sorted `name` fields of the `event` lines.
fn names_of(lines: &[Value], event: &str) -> Vec<String> {
    let mut names: Vec<String> = lines
        .iter()
        .filter(|l| l["event"] == event)
        .map(|l| l["name"].as_str().unwrap_or("").to_string())
        .collect();
    names.sort();
    names
}

fn sorted(names: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// Downtime (simulated seconds with no Ready pod) of a Deployment, from the simulator's report.
fn downtime(report: &Value, name: &str) -> f64 {
    report["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["kind"] == "Deployment" && w["name"] == name)
        .and_then(|w| w["downtime_seconds"].as_f64())
        .unwrap_or_else(|| panic!("no Deployment {name} in the report"))
}

/// `kubectl get deploy -A -o json`, per name: the spec without the restart annotation (and an
/// annotation map left empty by removing it), and the metadata annotations less the
/// controller's revision.
fn specs(w: &World) -> BTreeMap<String, (Value, Value)> {
    let r = w.kubectl(&["get", "deploy", "-A", "-o", "json"]);
    assert!(r.ok(), "{r}");
    let list: Value = serde_json::from_str(&r.stdout).unwrap();
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let mut spec = d["spec"].clone();
            let meta = &mut spec["template"]["metadata"];
            if let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
                a.remove(RESTARTED_AT);
                if a.is_empty() {
                    meta.as_object_mut().unwrap().remove("annotations");
                }
            }
            let mut annotations = d["metadata"]["annotations"].clone();
            if let Some(a) = annotations.as_object_mut() {
                a.remove("deployment.kubernetes.io/revision");
            }
            let name = d["metadata"]["name"].as_str().unwrap().to_string();
            (name, (spec, annotations))
        })
        .collect()
}

/// Names of the Deployments whose pod template carries the restart annotation.
fn restarted(w: &World) -> BTreeSet<String> {
    deployments(w)
        .into_iter()
        .filter(|d| {
            d.spec
                .as_ref()
                .and_then(|s| s.template.metadata.as_ref())
                .and_then(|m| m.annotations.as_ref())
                .is_some_and(|a| a.contains_key(RESTARTED_AT))
        })
        .filter_map(|d| d.metadata.name)
        .collect()
}

fn deployments(w: &World) -> Vec<Deployment> {
    w.sim
        .with(|s| s.objs.list::<Deployment>().cloned().collect())
}

/// Names of the Deployments carrying the saved-strategy annotation.
fn patched(w: &World) -> Vec<String> {
    deployments(w)
        .into_iter()
        .filter(|d| {
            d.metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(ORIGINAL_STRATEGY))
        })
        .filter_map(|d| d.metadata.name)
        .collect()
}

/// A Deployment pod's name is DEPLOYMENT-HASH-SUFFIX.
fn deployment_of_pod(pod: &str) -> &str {
    pod.rsplitn(3, '-').last().unwrap_or(pod)
}

fn assert_all_on_new_pool(w: &World) {
    assert_eq!(w.pools(), vec!["pool-two".to_string()]);
    for (name, pool, ready) in pods_by_pool(w) {
        assert_eq!(pool, "pool-two", "{name} runs on {pool}");
        assert!(ready, "{name} is not Ready");
    }
}

fn assert_no_pod_lost(report: &Value) {
    assert_eq!(
        report["pods_lost"].as_array().map(Vec::len),
        Some(0),
        "{}",
        report["pods_lost"]
    );
}

#[test]
fn surge_moves_single_replica_deployments_without_downtime_and_restores_their_specs() {
    let w = single_replica();
    let before = specs(&w);
    let r = w.plugin(&["migrate", "pool-two", "--yes", "-o", "json"]);
    assert!(r.ok(), "{r}");
    assert_all_on_new_pool(&w);
    let report = w.report();
    assert_no_pod_lost(&report);
    for name in SURGED {
        assert_eq!(downtime(&report, name), 0.0, "downtime of {name}\n{r}");
    }
    let lines = json_lines(&r);
    assert_eq!(names_of(&lines, "deployment_restarted"), sorted(&SURGED));
    assert_eq!(names_of(&lines, "deployment_moved"), sorted(&SURGED));
    assert_eq!(
        names_of(&lines, "strategy_restored"),
        sorted(&STRATEGY_CHANGED)
    );
    for l in lines
        .iter()
        .filter(|l| l["event"] == "deployment_restarted")
    {
        let name = l["name"].as_str().unwrap();
        assert_eq!(
            l["strategy_changed"],
            json!(STRATEGY_CHANGED.contains(&name)),
            "{l}"
        );
    }
    // Specs are as before, apart from the restart annotation; our annotation is gone.
    assert_eq!(specs(&w), before);
    assert!(patched(&w).is_empty());
    // The opted-out Deployment was evicted, not restarted, and was down for a start-up.
    assert!(!restarted(&w).contains("opted-out"));
    let evicted: Vec<&Value> = lines
        .iter()
        .filter(|l| l["event"] == "pod_evicted")
        .collect();
    let evicted_from: BTreeSet<&str> = evicted
        .iter()
        .map(|l| deployment_of_pod(l["pod"].as_str().unwrap_or("")))
        .collect();
    assert!(evicted_from.contains("opted-out"), "{evicted:?}");
    for name in SURGED {
        assert!(
            !evicted_from.contains(name),
            "{name} was evicted: {evicted:?}"
        );
    }
    assert!(downtime(&report, "opted-out") >= READINESS_DELAY);
}

#[test]
fn evict_leaves_single_replica_deployments_down_for_a_start_up() {
    let w = single_replica();
    // rolling-pdb's PDB (minAvailable 1 of 1) never allows an eviction: deleted after 20 s.
    let r = w.plugin(&[
        "migrate",
        "pool-two",
        "--yes",
        "--strategy",
        "evict",
        "--disable-eviction-after",
        "20s",
    ]);
    assert!(r.ok(), "{r}");
    assert_all_on_new_pool(&w);
    let report = w.report();
    assert_no_pod_lost(&report);
    assert!(restarted(&w).is_empty(), "{:?}", restarted(&w));
    // Down from the eviction until the replacement is Ready: at least its start and readiness
    // delay, at most that plus the old pod's termination (3 s) and some scheduling slack.
    let start_up = POD_START + READINESS_DELAY;
    for name in [
        "rolling",
        "rolling-pdb",
        "recreate",
        "recreate-pdb",
        "surge0",
        "opted-out",
    ] {
        let down = downtime(&report, name);
        eprintln!("--strategy evict: {name} down {down} simulated s");
        assert!(
            (start_up..=start_up + 15.0).contains(&down),
            "{name} was down {down} s, expected about {start_up} s"
        );
    }
}

#[test]
fn a_rollout_that_cannot_finish_fails_naming_it_and_puts_strategies_back() {
    let mut s = scenario("single-replica");
    // Its new pods may only run on the old pool, which is cordoned by then.
    s.workloads.push(
        serde_json::from_value(json!({
            "kind": "Deployment", "name": "pinned", "strategy": {"type": "Recreate"},
            "nodeSelector": {"cloud.google.com/gke-nodepool": "default-pool"}
        }))
        .unwrap(),
    );
    let w = World::new(s);
    let before = specs(&w);
    let r = w.plugin(&[
        "migrate",
        "pool-two",
        "--yes",
        "--allow-unschedulable",
        "--settle-timeout",
        "15s",
    ]);
    assert!(!r.ok(), "{r}");
    assert!(
        r.stderr
            .contains("Deployment default/pinned: ready 1/1, updated 1/1, available 1/1, 2 pods")
            && r.stderr.contains("Pending"),
        "{r}"
    );
    assert!(
        r.stderr
            .contains("original strategies of the restarted Deployments were put back"),
        "{r}"
    );
    assert!(
        r.stderr
            .contains("the restart of Deployment default/pinned was undone"),
        "{r}"
    );
    assert!(patched(&w).is_empty(), "{:?}", patched(&w));
    // pinned's template is back as it was (restart undone), its strategy too: the Deployment
    // returns to its old pod, which kept serving the whole time.
    let after = specs(&w);
    assert_eq!(after["pinned"], before["pinned"]);
    assert!(!restarted(&w).contains("pinned"), "{:?}", restarted(&w));
    for (name, (spec, annotations)) in &before {
        assert_eq!(after[name].0["strategy"], spec["strategy"], "{name}");
        assert_eq!(&after[name].1, annotations, "{name}");
    }
    std::thread::sleep(std::time::Duration::from_secs(2));
    let report = w.report();
    let pinned = report["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|wl| wl["name"] == "pinned")
        .unwrap();
    assert_eq!(pinned["downtime_seconds"].as_f64(), Some(0.0), "{pinned}");
    assert_eq!(pinned["ready"].as_i64(), Some(1), "{pinned}");
}

#[test]
fn a_run_killed_while_a_strategy_is_replaced_is_put_right_by_the_next() {
    let w = single_replica();
    let before = specs(&w);
    let mut child = w.spawn_plugin(&["migrate", "pool-two", "--yes"]);
    // Read its output so that it never blocks on a full pipe.
    for out in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        std::thread::spawn(move || std::io::copy(&mut { out }, &mut std::io::sink()));
    }
    let deadline = Instant::now() + Duration::from_secs(180);
    while patched(&w).is_empty() {
        assert!(Instant::now() < deadline, "no strategy was replaced");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    assert!(!patched(&w).is_empty());
    let r = w.plugin(&["migrate", "pool-two", "--yes"]);
    assert!(r.ok(), "{r}");
    assert!(r.stderr.contains("an earlier run replaced"), "{r}");
    assert_all_on_new_pool(&w);
    assert!(patched(&w).is_empty());
    assert_eq!(specs(&w), before);
    let report = w.report();
    assert_no_pod_lost(&report);
    for name in SURGED {
        assert_eq!(downtime(&report, name), 0.0, "downtime of {name}");
    }
}

#[test]
fn sigint_mid_rollout_puts_the_strategies_back_and_releases_the_lock() {
    let w = single_replica();
    let child = w.spawn_plugin(&["migrate", "pool-two", "--yes"]);
    interrupted_once_a_strategy_is_replaced(&w, child);
}

/// The API server applies a restart's patch, but its kubectl has not exited yet when Ctrl-C
/// stops it (here held 60 s after the patch; on a busy machine, the moment between the two):
/// the run must put that strategy back too, though it saw the call fail.
#[test]
fn sigint_while_an_applied_restart_patch_is_still_running_puts_its_strategy_back() {
    let w = single_replica();
    let real = which::which("kubectl").expect("kubectl on PATH");
    let wrapper = crate::kubectl_wrapper(&format!(
        "case \" $* \" in *\" patch deployment \"*restartedAt*) '{}' \"$@\"; s=$?; sleep 60; exit $s;; esac",
        real.display()
    ));
    let child = w.spawn_plugin_with_path(wrapper.path(), &["migrate", "pool-two", "--yes"]);
    interrupted_once_a_strategy_is_replaced(&w, child);
}

/// Sends SIGINT to the migration `child` as soon as a Deployment's strategy is replaced, then
/// checks that the run stops (130) with no strategy replaced and no lock left, and that a
/// re-run completes with every Deployment's spec as before.
fn interrupted_once_a_strategy_is_replaced(w: &World, mut child: std::process::Child) {
    let before = specs(w);
    let mut stderr = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    let mut stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let deadline = Instant::now() + Duration::from_secs(180);
    while patched(w).is_empty() {
        assert!(Instant::now() < deadline, "no strategy was replaced");
        std::thread::sleep(Duration::from_millis(10));
    }
    let sent = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the plugin did not stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = stderr.join().unwrap();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(
        patched(w).is_empty(),
        "a replaced strategy outlived the interrupted run: {:?}\n{stderr}",
        patched(w)
    );
    assert!(
        crate::lease(w).is_none(),
        "the lock outlived the run:\n{stderr}"
    );
    let r = w.plugin(&["migrate", "pool-two", "--yes"]);
    assert!(r.ok(), "{r}");
    assert_all_on_new_pool(w);
    assert_eq!(specs(w), before);
    assert_no_pod_lost(&w.report());
}

/// Issue 18.1: a rollout counts as complete while its old pods still terminate. With only
/// Deployments moved by a rolling restart on the old nodes, no drain is needed and the check
/// before the pool's deletion finds the old pods still terminating (20 s here): it must wait
/// for them, not refuse, and the pool must not be deleted before they are gone.
#[test]
fn pods_still_terminating_after_their_rollouts_are_waited_for_before_the_pool_goes() {
    let mut s = scenario("single-replica");
    s.workloads
        .retain(|w| SURGED.contains(&w.name.as_str()) || w.name == "node-agent");
    for w in s.workloads.iter_mut().filter(|w| w.name != "node-agent") {
        w.termination_grace_period = Some(200);
    }
    s.timings.termination = 200.0;
    let w = World::new(s);
    let r = w.plugin(&["migrate", "pool-two", "--yes"]);
    assert!(r.ok(), "{r}");
    assert!(
        r.stderr
            .contains("to finish terminating on pool default-pool"),
        "the old pods were not terminating at the check (nothing this test can see):\n{r}"
    );
    assert_eq!(w.pools(), vec!["pool-two".to_string()]);
    let report = w.report();
    // A pod still terminating when its node's VM goes counts as lost: none was.
    assert_no_pod_lost(&report);
    for name in SURGED {
        assert_eq!(downtime(&report, name), 0.0, "downtime of {name}");
    }
}

#[test]
fn rollback_moves_deployments_back_without_downtime() {
    let w = single_replica();
    let before = specs(&w);
    let r = w.plugin(&["migrate", "pool-two", "--keep-old-pool", "--yes"]);
    assert!(r.ok(), "{r}");
    let r = w.plugin(&[
        "rollback",
        "pool-two",
        "--delete-new-pool",
        "--yes",
        "-o",
        "json",
    ]);
    assert!(r.ok(), "{r}");
    assert_eq!(w.pools(), vec!["default-pool".to_string()]);
    let old = pool_nodes(&w, "default-pool");
    for (name, pool, ready) in pods_by_pool(&w) {
        assert_eq!(pool, "default-pool", "{name} runs on {pool} ({old:?})");
        assert!(ready, "{name} is not Ready");
    }
    let lines = json_lines(&r);
    assert_eq!(names_of(&lines, "deployment_moved"), sorted(&SURGED));
    let report = w.report();
    assert_no_pod_lost(&report);
    for name in SURGED {
        assert_eq!(downtime(&report, name), 0.0, "downtime of {name}");
    }
    assert_eq!(specs(&w), before);
}

#[test]
fn dry_run_lists_restarts_and_strategy_patches_and_changes_nothing() {
    let w = single_replica();
    let r = w.plugin(&["migrate", "pool-two", "--dry-run"]);
    assert!(r.ok(), "{r}");
    for name in SURGED {
        assert!(
            r.stdout.contains(&format!(
                "kubectl patch deployment {name} -n default --type=merge"
            )),
            "{name} not in the plan\n{r}"
        );
    }
    let restores = r
        .stdout
        .matches("after its rollout: kubectl patch deployment")
        .count();
    assert_eq!(restores, STRATEGY_CHANGED.len(), "{r}");
    assert!(
        r.stdout
            .contains("Deployment default/opted-out left to eviction: opted out"),
        "{r}"
    );
    assert!(w.writes().is_empty(), "{:?}", w.writes());
}
