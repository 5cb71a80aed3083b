//! `status`: what a person sees mid-migration, in text and JSON, and that it changes nothing.

use crate::{scenario, World};
use serde_json::Value;
use std::time::Duration;

fn two_pools() -> World {
    let mut s = scenario("basic");
    let mut p2 = s.pools[0].clone();
    p2.name = "pool-two".into();
    s.pools.push(p2);
    World::new(s)
}

fn pool_nodes(w: &World, pool: &str) -> Vec<String> {
    w.node_pools()
        .into_iter()
        .filter(|(_, p)| p == pool)
        .map(|(n, _)| n)
        .collect()
}

#[test]
fn mid_migration_status_names_the_state_and_the_command_to_continue() {
    let w = two_pools();
    let old = pool_nodes(&w, "default-pool");
    for n in &old {
        let r = w.kubectl(&["cordon", n]);
        assert!(r.ok(), "{r}");
    }
    let r = w.kubectl(&[
        "drain",
        &old[0],
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--timeout=120s",
    ]);
    assert!(r.ok(), "{r}");
    let writes = w.writes().len();

    let r = w.plugin(&["status"]);
    assert!(r.ok(), "{r}");
    let text = &r.stdout;
    assert!(text.contains("zonal"), "{text}");
    assert!(
        text.contains("1.31.1-gke.1146000"),
        "offers the newer control plane:\n{text}"
    );
    assert!(
        text.contains(
            "Migration in progress: default-pool -> pool-two: 3 of 3 nodes cordoned, 1 drained"
        ),
        "{text}"
    );
    assert!(
        text.contains("kubectl zdupgrade migrate pool-two --from default-pool"),
        "{text}"
    );
    assert!(
        text.contains("kubectl zdupgrade rollback pool-two --to default-pool"),
        "{text}"
    );

    let r = w.plugin(&["status", "-o", "json"]);
    assert!(r.ok(), "{r}");
    let j: Value = serde_json::from_str(&r.stdout).expect("status -o json is JSON");
    assert_eq!(j["location_type"], "zonal");
    assert_eq!(j["control_plane_version"], "1.30.5-gke.1014001");
    assert_eq!(
        j["available_upgrades"],
        serde_json::json!(["1.31.1-gke.1146000"])
    );
    let m = &j["in_progress"];
    assert_eq!(m["from"], "default-pool");
    assert_eq!(m["to"], "pool-two");
    assert_eq!(m["nodes_cordoned"], 3);
    assert_eq!(m["nodes_drained"], 1);
    assert_eq!(m["nodes_total"], 3);
    assert!(m["continue_command"]
        .as_str()
        .unwrap()
        .starts_with("kubectl zdupgrade migrate pool-two --from default-pool"));
    let pools = j["pools"].as_array().unwrap();
    let old_pool = pools.iter().find(|p| p["name"] == "default-pool").unwrap();
    assert_eq!(old_pool["cordoned"], 3);
    assert_eq!(old_pool["ready"], 3);
    let new_pool = pools.iter().find(|p| p["name"] == "pool-two").unwrap();
    assert_eq!(new_pool["cordoned"], 0);
    assert_eq!(w.writes().len(), writes, "status changed the cluster");
}

#[test]
fn a_quiet_cluster_has_nothing_in_progress() {
    let w = World::basic();
    let r = w.plugin(&["status", "-o", "json"]);
    assert!(r.ok(), "{r}");
    let j: Value = serde_json::from_str(&r.stdout).expect("JSON");
    assert!(j["in_progress"].is_null(), "{j}");
    assert_eq!(j["unhealthy_workloads"], serde_json::json!([]));
    assert_eq!(j["pools"][0]["nodes"], 3);
    let r = w.plugin(&["status"]);
    assert!(r.stdout.contains("No migration in progress"), "{r}");
    assert!(r.stdout.contains("all fully ready"), "{r}");
    assert!(w.writes().is_empty());
    // A cordoned node with nowhere for its pods to go is not a migration: say what to do.
    let node = pool_nodes(&w, "default-pool").remove(0);
    assert!(w.kubectl(&["cordon", &node]).ok());
    let r = w.plugin(&["status"]);
    assert!(r.ok(), "{r}");
    assert!(!r.stdout.contains("Migration in progress"), "{r}");
    assert!(
        r.stdout
            .contains("pool default-pool has 1 cordoned node(s)"),
        "{r}"
    );
    assert!(r.stdout.contains("kubectl uncordon"), "{r}");
}

#[test]
fn a_held_lock_is_shown_with_its_holder_times_and_whether_it_is_stale() {
    let w = World::basic();
    crate::create_lease(
        &w,
        "ann@far-away-host pid 4242 migrate pool-three",
        Duration::from_secs(20),
    );
    let writes = w.writes().len();
    let r = w.plugin(&["status"]);
    assert!(r.ok(), "{r}");
    assert!(!r.stdout.contains("No migration in progress"), "{r}");
    let line = r
        .stdout
        .lines()
        .find(|l| l.starts_with("Lock"))
        .unwrap_or_else(|| panic!("no lock line:\n{r}"));
    for part in [
        "ann@far-away-host pid 4242 migrate pool-three",
        ", acquired 20",
        "s ago), last renewed 20",
        "s ago)",
        "live",
        "kubectl zdupgrade migrate pool-three",
    ] {
        assert!(line.contains(part), "{part:?} missing from {line:?}");
    }
    let r = w.plugin(&["status", "-o", "json"]);
    let j: Value = serde_json::from_str(&r.stdout).expect("JSON");
    assert_eq!(
        j["lock"]["holder"],
        "ann@far-away-host pid 4242 migrate pool-three"
    );
    assert_eq!(j["lock"]["stale"], false, "{j}");
    assert!(
        j["lock"]["renewed"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{j}"
    );
    assert_eq!(w.writes().len(), writes, "status changed the cluster");

    // Not renewed for two hours: stale, and the next run takes it over.
    assert!(w
        .kubectl(&["delete", "lease", "-n", "kube-system", "kubectl-zdupgrade"])
        .ok());
    crate::create_lease(
        &w,
        "bob@far-away-host pid 7 rollback pool-two",
        Duration::from_secs(7200),
    );
    let r = w.plugin(&["status", "-o", "json"]);
    let j: Value = serde_json::from_str(&r.stdout).expect("JSON");
    assert_eq!(j["lock"]["stale"], true, "{j}");
    assert!(
        j["lock"]["stale_reason"]
            .as_str()
            .is_some_and(|s| s.contains("not renewed for 2h")),
        "{j}"
    );
    let r = w.plugin(&["status"]);
    assert!(r.stdout.contains("stale"), "{r}");
}
