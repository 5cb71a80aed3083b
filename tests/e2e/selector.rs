//! The selector mode (`--from-selector`, `--to-selector`) on a cluster that is not GKE: the
//! simulator's `node-groups` scenario, whose nodes carry no GKE pool label (group `old` runs
//! the workloads, group `new` is empty). Every run has a `gcloud` first on PATH that records
//! its calls and fails: the mode must never need it.

use crate::completion::{complete, reply};
use crate::interrupt::{assert_lock_released, interrupt_at, Spawned};
use crate::migrate::{assert_cordoned_before, assert_one_node_at_a_time, event_t, workload_pods};
use crate::{assert_zero_downtime, events, lease, scenario, script_dir, Run, World};
use k8s_openapi::api::core::v1::Node;
use std::time::Duration;

const SELECTORS: [&str; 4] = ["--from-selector", "group=old", "--to-selector", "group=new"];

/// The non-GKE world; with `new_nodes` nodes in group `new` at start (the test may add more).
fn world(new_nodes: u32) -> World {
    let mut s = scenario("node-groups");
    s.node_groups[1].count = new_nodes;
    World::new(s)
}

/// A `gcloud` that records its arguments in `called` beside it and fails.
fn gcloud_trap() -> tempfile::TempDir {
    script_dir("gcloud", |dir| {
        let log = dir.join("called");
        format!("#!/bin/sh\necho \"$@\" >> '{}'\nexit 1\n", log.display())
    })
}

/// `command`, the selectors, then `extra`.
fn with_selectors<'a>(command: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
    let mut args: Vec<&str> = command.to_vec();
    args.extend_from_slice(&SELECTORS);
    args.extend_from_slice(extra);
    args
}

/// Runs the plugin with the selectors, `extra` and the gcloud trap; asserts gcloud was not run.
fn run(w: &World, command: &[&str], extra: &[&str]) -> Run {
    let trap = gcloud_trap();
    let r = w.plugin_with_path(trap.path(), &with_selectors(command, extra));
    let called = std::fs::read_to_string(trap.path().join("called")).unwrap_or_default();
    assert_eq!(called, "", "gcloud was run:\n{r}");
    r
}

/// The nodes of a group (label `group`), sorted.
fn group(w: &World, name: &str) -> Vec<String> {
    w.sim.with(|s| {
        let mut nodes: Vec<String> = s
            .objs
            .list::<Node>()
            .filter(|n| {
                n.metadata.labels.as_ref().and_then(|l| l.get("group")) == Some(&name.to_string())
            })
            .filter_map(|n| n.metadata.name.clone())
            .collect();
        nodes.sort();
        nodes
    })
}

fn cordoned(w: &World, node: &str) -> bool {
    w.sim.with(|s| {
        s.objs
            .get::<Node>("", node)
            .and_then(|n| n.spec.as_ref()?.unschedulable)
            .unwrap_or(false)
    })
}

/// The pods not owned by a DaemonSet on `nodes`, and whether every such pod anywhere is Ready.
fn workload_pods_on(w: &World, nodes: &[String]) -> (Vec<String>, bool) {
    let pods = workload_pods(w);
    let all_ready = pods.iter().all(|(_, _, ready)| *ready);
    let on = pods
        .into_iter()
        .filter(|(_, node, _)| nodes.contains(node))
        .map(|(pod, _, _)| pod)
        .collect();
    (on, all_ready)
}

/// The end state of a migration: the old nodes cordoned and empty, the workloads all Ready on
/// the new nodes, no downtime, no PDB violation, no pod lost, and every old node cordoned before
/// the first eviction, drained one at a time behind the health gate.
fn assert_migrated(w: &World, old: &[String]) {
    for node in old {
        assert!(cordoned(w, node), "{node} is not cordoned");
    }
    let (left, all_ready) = workload_pods_on(w, old);
    assert_eq!(left, Vec::<String>::new(), "pods left on the old nodes");
    assert!(all_ready, "a workload pod is not Ready");
    let (moved, _) = workload_pods_on(w, &group(w, "new"));
    assert_eq!(moved.len(), 7, "{moved:?}");
    let report = w.report();
    assert_zero_downtime(&report);
    let evictions = events(&report, "eviction_accepted");
    assert_cordoned_before(
        &report,
        old,
        event_t(evictions.first().expect("an eviction")),
    );
    let drained = assert_one_node_at_a_time(&report, &evictions);
    assert!(drained.iter().all(|n| old.contains(n)), "{drained:?}");
    assert!(lease(w).is_none(), "the lock outlived the run");
}

#[test]
fn a_selector_migration_empties_the_old_nodes_with_zero_downtime_and_no_gcloud() {
    let w = world(3);
    let old = group(&w, "old");
    assert_eq!(old.len(), 3);
    let r = run(&w, &["migrate"], &["--yes"]);
    assert!(r.ok(), "{r}");
    assert_migrated(&w, &old);
    // The old nodes stay (cordoned): the plugin deletes no node and says how.
    assert_eq!(group(&w, "old"), old);
    assert!(events(&w.report(), "node_deleted").is_empty());
    let out = format!("{}{}", r.stdout, r.stderr);
    assert!(
        out.contains("context gke_demo-project_us-central1-a_demo (server http://127.0.0.1:"),
        "the run names the context and server:\n{r}"
    );
    assert!(
        out.contains("eksctl delete nodegroup --cluster CLUSTER --name ng-old"),
        "the provider's removal command:\n{r}"
    );
    let gcloud = &w.report()["requests"]["gcloud"];
    assert!(
        gcloud.as_object().is_none_or(|m| m.is_empty()),
        "GKE API requests: {gcloud}"
    );
    // `status` then says it is finished (not under way) and how to remove the old nodes.
    let r = run(&w, &["status"], &[]);
    assert!(r.ok(), "{r}");
    assert!(
        r.stdout.contains(
            "Migration finished: the 3 nodes of selector group=old are cordoned and empty"
        ) && r
            .stdout
            .contains("eksctl delete nodegroup --cluster CLUSTER --name ng-old")
            && !r.stdout.contains("Migration in progress"),
        "{r}"
    );
    let r = run(&w, &["status"], &["-o", "json"]);
    let status: serde_json::Value = serde_json::from_str(&r.stdout).expect("a JSON status");
    assert!(status["in_progress"].is_null(), "{status}");
}

#[test]
fn a_selector_migration_waits_for_new_nodes_that_appear_during_the_run() {
    let w = world(0);
    let old = group(&w, "old");
    let args = with_selectors(&["migrate"], &["--yes", "--node-timeout", "10m"]);
    let mut plugin = Spawned::new(&w, &args);
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !plugin.exited(),
        "the plugin did not wait for the new nodes"
    );
    assert_eq!(
        w.writes(),
        Vec::<serde_json::Value>::new(),
        "a write before the new nodes"
    );
    let added = w
        .sim
        .with(|s| zdupgrade_sim::gke::add_group_nodes(s, "new", 3));
    let ended = plugin.wait(Duration::from_secs(300));
    assert_eq!(ended.status.code(), Some(0), "{ended}");
    assert!(
        ended
            .stderr
            .contains("Waiting for the nodes of selector group=new"),
        "{ended}"
    );
    assert_migrated(&w, &old);
    let report = w.report();
    let ready: Vec<f64> = events(&report, "node_ready")
        .into_iter()
        .filter(|e| added.iter().any(|n| e["object"] == n.as_str()))
        .map(event_t)
        .collect();
    assert_eq!(ready.len(), 3, "the added nodes turned Ready");
    let first_cordon = event_t(events(&report, "node_cordoned")[0]);
    assert!(
        ready.iter().all(|t| *t <= first_cordon),
        "cordoned before the new nodes were Ready"
    );
}

#[test]
fn bad_selectors_and_missing_new_nodes_are_refused_without_a_write() {
    let w = world(0);
    let refused = |args: &[&str], status: i32, words: &[&str]| {
        let trap = gcloud_trap();
        let r = w.plugin_with_path(trap.path(), args);
        assert_eq!(r.status, Some(status), "{r}");
        for word in words {
            assert!(r.stderr.contains(word), "{word:?} missing:\n{r}");
        }
        assert!(!trap.path().join("called").exists(), "gcloud was run:\n{r}");
    };
    let migrate = |from: &'static str, to: &'static str| {
        vec![
            "migrate",
            "--from-selector",
            from,
            "--to-selector",
            to,
            "--yes",
        ]
    };
    refused(
        &migrate("group=old", "group in (new"),
        2,
        &[
            "--to-selector \"group in (new\" is not a valid label selector",
            "nothing was changed",
        ],
    );
    refused(
        &migrate("group=gone", "group=new"),
        3,
        &[
            "--from-selector group=gone matches no node",
            "nothing was changed",
        ],
    );
    refused(
        &migrate("group=old", "eks.amazonaws.com/nodegroup"),
        3,
        &[
            "--to-selector eks.amazonaws.com/nodegroup matches 3 nodes that --from-selector group=old matches too",
            "nothing was changed",
        ],
    );
    let mut timeout = migrate("group=old", "group=new");
    timeout.extend(["--node-timeout", "2s"]);
    refused(
        &timeout,
        4,
        &[
            "wait for the nodes of selector group=new",
            "--to-selector group=new matched no node after",
            "(--node-timeout)",
            "nothing was cordoned",
        ],
    );
    assert_eq!(w.writes(), Vec::<serde_json::Value>::new());
    assert!(lease(&w).is_none());
}

#[test]
fn dry_run_plan_and_a_run_without_a_terminal_change_nothing() {
    let w = world(3);
    let r = run(&w, &["migrate"], &["--dry-run"]);
    assert!(r.ok(), "{r}");
    let out = format!("{}{}", r.stdout, r.stderr);
    assert!(
        out.contains("Plan (dry run, nothing changed): migrate the nodes of selector group=old -> selector group=new in context gke_demo-project_us-central1-a_demo (server http://127.0.0.1:"),
        "{r}"
    );
    for node in group(&w, "old") {
        assert!(
            out.contains(&format!("kubectl cordon {node}")),
            "{node}:\n{r}"
        );
    }

    let r = run(&w, &["plan", "migrate"], &["-o", "json"]);
    assert!(r.ok(), "{r}");
    let plan: serde_json::Value = serde_json::from_str(&r.stdout).expect("a JSON plan");
    assert_eq!(plan["by_selector"], true, "{plan}");
    assert_eq!(
        (plan["from"].as_str(), plan["to"].as_str()),
        (Some("group=old"), Some("group=new"))
    );
    assert_eq!(plan["batches"].as_array().map(Vec::len), Some(3), "{plan}");
    // Capacity is judged against the new nodes' own allocatable, and named by their selector.
    let capacity = &plan["findings"][0];
    assert_eq!(capacity["code"], "new-pool-capacity", "{plan}");
    assert_eq!(capacity["objects"][0]["kind"], "NodeSelector", "{plan}");
    assert!(
        capacity["message"].as_str().is_some_and(|m| m.starts_with(
            "selector group=new (3 node(s) of e2-standard-4, 3920m CPU, 13621Mi memory per node, from the allocatable of selector group=new's nodes)"
        )),
        "{plan}"
    );

    // The wrong-cluster guard: without --yes and without a terminal, it names the cluster and
    // refuses.
    let r = run(&w, &["migrate"], &[]);
    assert_eq!(r.status, Some(3), "{r}");
    assert!(
        r.stderr.contains(
            "migrating in context gke_demo-project_us-central1-a_demo (server http://127.0.0.1:"
        ) && r.stderr.contains("pass --yes"),
        "{r}"
    );
    assert_eq!(w.writes(), Vec::<serde_json::Value>::new());
}

#[test]
fn an_interrupted_selector_migration_releases_the_lock_and_a_rerun_finishes() {
    let w = world(3);
    let old = group(&w, "old");
    let args = with_selectors(&["migrate"], &["--yes"]);
    let ended = interrupt_at(&w, &args, "eviction_accepted", "TERM");
    assert!(
        ended
            .stderr
            .contains("cluster state: 3 of 3 nodes of selector group=old cordoned"),
        "{ended}"
    );
    assert!(
        ended.stderr.contains(
            "re-run `kubectl zdupgrade migrate --from-selector group=old --to-selector group=new --yes` to resume"
        ) && ended.stderr.contains("kubectl zdupgrade rollback --from-selector group=old --to-selector group=new"),
        "{ended}"
    );
    assert_lock_released(&w, &ended);

    // `status` with the same selectors shows where it stopped, changing nothing.
    let writes = w.writes().len();
    let r = run(&w, &["status"], &[]);
    assert!(r.ok(), "{r}");
    assert!(
        r.stdout.contains("Context gke_demo-project_us-central1-a_demo (server http://127.0.0.1:")
            && r.stdout.contains("Migration in progress: group=old -> group=new: 3 of 3 nodes cordoned")
            && r.stdout.contains("continue:  kubectl zdupgrade migrate --from-selector group=old --to-selector group=new")
            && r.stdout.contains("roll back: kubectl zdupgrade rollback --from-selector group=old --to-selector group=new"),
        "{r}"
    );
    let r = run(&w, &["status"], &["-o", "json"]);
    let status: serde_json::Value = serde_json::from_str(&r.stdout).expect("a JSON status");
    assert_eq!(status["pools"][0]["name"], "group=old", "{status}");
    assert_eq!(status["pools"][0]["cordoned"], 3, "{status}");
    assert_eq!(status["selectors"]["to_selector"], "group=new", "{status}");
    assert_eq!(w.writes().len(), writes, "status wrote");

    let r = run(&w, &["migrate"], &["--yes"]);
    assert!(r.ok(), "{r}");
    assert!(
        r.stderr.contains("(0 now, 3 already)"),
        "the re-run found them cordoned:\n{r}"
    );
    assert_migrated(&w, &old);
}

#[test]
fn a_selector_rollback_moves_the_workloads_back() {
    let w = world(3);
    let (old, new) = (group(&w, "old"), group(&w, "new"));
    let r = run(&w, &["migrate"], &["--yes"]);
    assert!(r.ok(), "{r}");
    let writes = w.writes().len();
    let r = run(&w, &["rollback"], &["--dry-run"]);
    assert!(r.ok(), "{r}");
    assert_eq!(w.writes().len(), writes, "the dry run wrote:\n{r}");
    assert!(
        format!("{}{}", r.stdout, r.stderr).contains("Plan (dry run, nothing changed): roll back the nodes of selector group=new -> selector group=old"),
        "{r}"
    );
    let r = run(&w, &["rollback"], &["--yes"]);
    assert!(r.ok(), "{r}");
    for node in &old {
        assert!(!cordoned(&w, node), "{node} is still cordoned");
    }
    for node in &new {
        assert!(cordoned(&w, node), "{node} is not cordoned");
    }
    let (left, all_ready) = workload_pods_on(&w, &new);
    assert_eq!(left, Vec::<String>::new(), "pods left on the new nodes");
    assert!(all_ready, "a workload pod is not Ready");
    assert_zero_downtime(&w.report());
    assert!(lease(&w).is_none());
    // Forward again: the new nodes the rollback cordoned take the pods once more.
    let r = run(&w, &["migrate"], &["--yes"]);
    assert!(r.ok(), "{r}");
    let (moved, _) = workload_pods_on(&w, &new);
    assert_eq!(moved.len(), 7, "{moved:?}");
}

#[test]
fn the_selector_flags_complete_with_the_nodes_labels() {
    let w = world(3);
    let (flags, _) = reply(&complete(&w, &["migrate", "--"]));
    for flag in ["--from-selector", "--to-selector"] {
        assert!(
            flags.iter().any(|f| f == flag),
            "{flag} not offered: {flags:?}"
        );
    }
    let (values, _) = reply(&complete(&w, &["migrate", "--from-selector", "group="]));
    assert_eq!(values, ["group=new", "group=old"]);
    let (values, _) = reply(&complete(
        &w,
        &["status", "--from-selector=group=old", "--to-selector=eks"],
    ));
    assert_eq!(
        values,
        [
            "--to-selector=eks.amazonaws.com/nodegroup=ng-new",
            "--to-selector=eks.amazonaws.com/nodegroup=ng-old"
        ]
    );
}

/// Runs `kubectl zdupgrade ARGS` on a terminal (`script` gives it one) that answers `answer`.
fn on_a_terminal(w: &World, args: &[&str], answer: &str) -> Run {
    let line = std::iter::once("kubectl zdupgrade")
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    let mut c = w.command("script", &["-qec", &line, "/dev/null"]);
    c.stdin(std::process::Stdio::piped());
    c.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let started = std::time::Instant::now();
    let mut child = c.spawn().expect("script starts");
    use std::io::Write as _;
    let mut stdin = child.stdin.take().expect("stdin piped");
    stdin.write_all(answer.as_bytes()).expect("answer written");
    let out = crate::wait_with_limit(child, Duration::from_secs(240));
    drop(stdin);
    Run {
        status: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: started.elapsed(),
    }
}

#[test]
fn on_a_terminal_it_names_the_cluster_and_asks_once() {
    let w = world(3);
    let args = with_selectors(&["migrate"], &[]);
    let question = "In context gke_demo-project_us-central1-a_demo (server http://127.0.0.1:";
    let r = on_a_terminal(&w, &args, "n\n");
    assert_eq!(r.status, Some(3), "{r}");
    assert_eq!(r.stdout.matches(question).count(), 1, "{r}");
    assert!(
        r.stdout.contains("cordon and drain the 3 node(s) of selector group=old onto the 3 node(s) of selector group=new? [y/N]")
            && r.stdout.contains("not confirmed: nothing was changed"),
        "{r}"
    );
    assert_eq!(w.writes(), Vec::<serde_json::Value>::new());

    let r = on_a_terminal(&w, &args, "y\n");
    assert_eq!(r.status, Some(0), "{r}");
    assert_eq!(
        r.stdout.matches("[y/N]").count(),
        1,
        "asked more than once:\n{r}"
    );
    assert_migrated(&w, &group(&w, "old"));
}
