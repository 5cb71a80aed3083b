//! Unit tests of the migration benchmark's arithmetic (lower bound, median, table), which
//! lives under benches/ where a `harness = false` target cannot run tests.

// The benchmark uses the rest of the module.
#![allow(dead_code)]

#[path = "../benches/migration/model.rs"]
mod model;

use k8s_openapi::api::apps::v1::{DeploymentStrategy, RollingUpdateDeployment};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use model::*;
use zdupgrade_sim::scenario::Timings;

fn timings() -> Timings {
    Timings {
        node_boot: 20.0,
        node_ready: 5.0,
        pod_start: 4.0,
        pod_ready: 2.0,
        termination: 3.0,
        pool_create: 25.0,
        pool_delete: 20.0,
        ..Timings::default()
    }
}

fn pod(workload: &str, replacement: Replacement, allowance: u32) -> MovingPod {
    let t = timings();
    MovingPod {
        workload: workload.into(),
        replacement,
        termination: t.termination,
        start_ready: start_ready_seconds(&t, 0.0),
        allowance,
        rollout: None,
    }
}

/// A pod of Deployment `name` (R replicas, `surge` new pods per round, 6 s to Ready).
fn deployment_pod(name: &str, replicas: u32, surge: u32, allowance: u32) -> MovingPod {
    MovingPod {
        rollout: Some(Rollout {
            deployment: format!("default/{name}"),
            replicas,
            surge,
            start_ready: start_ready_seconds(&timings(), 0.0),
        }),
        ..pod(&format!("{name}-rs"), Replacement::AtEviction, allowance)
    }
}

fn rolling(
    max_surge: Option<IntOrString>,
    max_unavailable: Option<IntOrString>,
) -> DeploymentStrategy {
    DeploymentStrategy {
        type_: Some("RollingUpdate".into()),
        rolling_update: Some(RollingUpdateDeployment {
            max_surge,
            max_unavailable,
        }),
    }
}

fn node(name: &str, pods: Vec<MovingPod>) -> NodeLoad {
    NodeLoad {
        name: name.into(),
        pods,
    }
}

#[test]
fn pool_up_waits_for_the_operation_and_for_ready_nodes() {
    let mut t = timings();
    assert_eq!(pool_up_seconds(&t, 1.0), 25.0);
    t.node_ready = 30.0;
    assert_eq!(pool_up_seconds(&t, 1.0), 50.0);
    // A slow operation outlasts the nodes.
    assert_eq!(pool_up_seconds(&t, 3.0), 75.0);
}

#[test]
fn readiness_delay_replaces_pod_ready_when_longer() {
    let t = timings();
    assert_eq!(start_ready_seconds(&t, 0.0), 6.0);
    assert_eq!(start_ready_seconds(&t, 8.0), 12.0);
}

#[test]
fn deployment_pods_go_in_rounds_of_the_pdb_allowance() {
    let one = pod("web", Replacement::AtEviction, 1);
    // One pod: the replacement (6 s) outlasts termination (3 s).
    assert_eq!(batch_seconds([&one]), 6.0);
    // Three pods, one at a time: two full rounds, then the last.
    assert_eq!(batch_seconds([&one, &one, &one]), 18.0);
    let two = pod("web", Replacement::AtEviction, 2);
    assert_eq!(batch_seconds([&two, &two, &two]), 12.0);
    let free = pod("web", Replacement::AtEviction, u32::MAX);
    assert_eq!(batch_seconds([&free, &free, &free]), 6.0);
    // An allowance of 0 (blocked PDB) counts as one at a time, not forever.
    let blocked = pod("web", Replacement::AtEviction, 0);
    assert_eq!(batch_seconds([&blocked, &blocked]), 12.0);
}

#[test]
fn termination_counts_when_longer_than_start_up() {
    let mut p = pod("web", Replacement::AtEviction, 1);
    p.termination = 10.0;
    assert_eq!(batch_seconds([&p]), 10.0);
    assert_eq!(batch_seconds([&p, &p]), 16.0);
}

#[test]
fn statefulset_pods_wait_for_the_old_pod_one_at_a_time() {
    // One at a time (PDB allowance 1): each replacement waits for its old pod to end.
    let s = pod("db", Replacement::AfterExit, 1);
    assert_eq!(batch_seconds([&s]), 9.0);
    assert_eq!(batch_seconds([&s, &s]), 18.0);
    // All at once: the old pods end together, the replacements still start one by one.
    let wide = pod("db", Replacement::AfterExit, u32::MAX);
    assert_eq!(batch_seconds([&wide]), 9.0);
    assert_eq!(batch_seconds([&wide, &wide]), 15.0);
    let bare = pod("bare", Replacement::Never, 1);
    assert_eq!(batch_seconds([&bare]), 3.0);
}

#[test]
fn parallel_statefulset_pods_restart_a_budget_at_a_time() {
    // podManagementPolicy: Parallel: each replacement starts once its own old pod is gone, so
    // a round of `allowance` pods takes termination + start-up (3 + 6 here).
    let one = pod("db", Replacement::AfterExitParallel, 1);
    assert_eq!(batch_seconds([&one, &one]), 18.0);
    let two = pod("db", Replacement::AfterExitParallel, 2);
    assert_eq!(batch_seconds([&two, &two, &two]), 18.0);
    let wide = pod("db", Replacement::AfterExitParallel, u32::MAX);
    assert_eq!(batch_seconds([&wide, &wide, &wide]), 9.0);
    // Never slower than the ordered policy.
    let ordered = pod("db", Replacement::AfterExit, u32::MAX);
    assert!(batch_seconds([&wide, &wide, &wide]) < batch_seconds([&ordered, &ordered, &ordered]));
}

#[test]
fn a_batch_takes_as_long_as_its_slowest_workload() {
    let web = pod("web", Replacement::AtEviction, 1);
    let db = pod("db", Replacement::AfterExit, 1);
    assert_eq!(batch_seconds([&web, &db]), 9.0);
    assert_eq!(batch_seconds([&web, &web, &db]), 12.0);
    assert_eq!(batch_seconds(std::iter::empty::<&MovingPod>()), 0.0);
}

fn cluster() -> Vec<NodeLoad> {
    vec![
        node("a", vec![pod("web", Replacement::AtEviction, 1)]),
        node(
            "b",
            vec![
                pod("web", Replacement::AtEviction, 1),
                pod("db", Replacement::AfterExit, 1),
            ],
        ),
        node("c", vec![pod("api", Replacement::AtEviction, 5)]),
        node("empty", vec![]),
    ]
}

#[test]
fn sequential_bound_sums_the_nodes_with_pods() {
    let b = lower_bound(&timings(), 1.0, &cluster(), &Batching::Sequential);
    assert_eq!(b.batches, 3);
    assert_eq!(b.evict_drains_s, 6.0 + 9.0 + 6.0);
    assert_eq!(b.total_s, 25.0 + 21.0 + 20.0);
    // No Deployment: the surge model has nothing to restart and evicts the same pods.
    assert_eq!((b.rollout_s, b.surge_s), (0.0, b.evict_s));
    assert_eq!(b.model, Model::Evict);
    assert_eq!(b.batch_source, "sequential");
}

#[test]
fn announced_batches_count_pdb_rounds_across_nodes() {
    let batches = vec![
        vec!["a".into(), "b".into()],
        vec!["c".into(), "empty".into()],
    ];
    let b = lower_bound(&timings(), 1.0, &cluster(), &Batching::Announced(batches));
    assert_eq!(b.batches, 2);
    // Two web pods with allowance 1 in the first batch: 12 s, longer than db's 9 s.
    assert_eq!(b.evict_drains_s, 12.0 + 6.0);
    assert_eq!(b.batch_source, "plugin batches");
}

#[test]
fn at_most_n_groups_the_slowest_nodes_together() {
    let b = lower_bound(&timings(), 2.0, &cluster(), &Batching::AtMost(2));
    assert_eq!(b.batches, 2);
    // Costs 9, 6, 6: batches {9, 6} and {6}.
    assert_eq!(b.evict_drains_s, 15.0);
    assert_eq!(b.pool_delete_s, 40.0);
    assert_eq!(b.pool_up_s, 50.0);
    let all = lower_bound(&timings(), 1.0, &cluster(), &Batching::AtMost(16));
    assert_eq!((all.batches, all.evict_drains_s), (1, 9.0));
}

#[test]
fn surge_rounds_use_max_surge_rounded_up() {
    let pct = |p: &str| Some(IntOrString::String(p.into()));
    let quarter = rolling(pct("25%"), pct("25%"));
    assert_eq!(surge_per_round(Some(&quarter), 10), 3);
    // The API's default strategy is RollingUpdate 25%/25%.
    assert_eq!(surge_per_round(None, 10), 3);
    assert_eq!(
        surge_per_round(Some(&rolling(Some(IntOrString::Int(4)), None)), 10),
        4
    );
    // A surge of 0 rolls out one new pod at a time, as does Recreate.
    let none = rolling(Some(IntOrString::Int(0)), pct("25%"));
    assert_eq!(surge_per_round(Some(&none), 10), 1);
    let recreate = DeploymentStrategy {
        type_: Some("Recreate".into()),
        rolling_update: None,
    };
    assert_eq!(surge_per_round(Some(&recreate), 10), 1);
}

#[test]
fn a_rollout_takes_a_start_up_per_round_of_surge() {
    // R = 10, s = 3: rounds of 3, 3, 3, 1 new pods, each 6 s to Ready.
    assert_eq!(rollout_seconds([&deployment_pod("web", 10, 3, 1)]), 24.0);
    assert_eq!(rollout_seconds([&deployment_pod("web", 10, 1, 1)]), 60.0);
    assert_eq!(rollout_seconds([&deployment_pod("web", 9, 3, 1)]), 18.0);
    // Deployments restart together: the longest rollout counts, with its own start-up.
    let mut slow = deployment_pod("api", 4, 1, 1);
    slow.rollout.as_mut().unwrap().start_ready = 12.0;
    let web = deployment_pod("web", 10, 3, 1);
    assert_eq!(rollout_seconds([&web, &slow, &web]), 48.0);
    assert_eq!(
        rollout_seconds([&pod("db", Replacement::AfterExit, 1)]),
        0.0
    );
}

#[test]
fn surge_drains_leave_deployment_pods_to_the_rollout() {
    let web = deployment_pod("web", 3, 1, 1);
    let db = pod("db", Replacement::AfterExit, 1);
    let nodes = vec![
        node("a", vec![web.clone(), web.clone(), db]),
        node("b", vec![web]),
    ];
    let b = lower_bound(&timings(), 1.0, &nodes, &Batching::Sequential);
    // Evicted: web's two pods on a go one at a time (12 s), longer than db (9 s); b 6 s.
    assert_eq!(b.evict_drains_s, 18.0);
    // Surge: only db is drained; b holds nothing left to move.
    assert_eq!(b.surge_drains_s, 9.0);
    assert_eq!(b.rollout_s, 18.0);
    assert_eq!(b.batches, 2);
    assert_eq!(b.evict_s, 25.0 + 18.0 + 20.0);
    assert_eq!(b.surge_s, 25.0 + 18.0 + 9.0 + 20.0);
}

#[test]
fn the_bound_is_the_faster_model() {
    let one_by_one = vec![node("a", vec![deployment_pod("web", 40, 1, 40)])];
    let b = lower_bound(&timings(), 1.0, &one_by_one, &Batching::Sequential);
    // Evicting the one pod takes 6 s; restarting 40 replicas one at a time, 240 s.
    assert_eq!((b.evict_s, b.surge_s), (51.0, 285.0));
    assert_eq!((b.total_s, b.model), (51.0, Model::Evict));
    let pdb_bound = vec![node("a", vec![deployment_pod("web", 4, 4, 1); 4])];
    let b = lower_bound(&timings(), 1.0, &pdb_bound, &Batching::Sequential);
    // Four pods evicted one at a time: 24 s; all four replaced in one round: 6 s.
    assert_eq!((b.evict_s, b.surge_s), (69.0, 51.0));
    assert_eq!((b.total_s, b.model), (51.0, Model::Surge));
}

/// Deployments (web, api), a StatefulSet (db), a ReplicaSet without a Deployment (cache)
/// and a pod without a controller (naked).
fn mixed_cluster() -> Vec<NodeLoad> {
    let web = || deployment_pod("web", 6, 2, 1);
    let api = || deployment_pod("api", 2, 1, 1);
    let cache = || pod("cache", Replacement::AtEviction, 1);
    vec![
        node(
            "a",
            vec![web(), web(), pod("db", Replacement::AfterExit, 1)],
        ),
        node("b", vec![web(), web(), cache(), cache()]),
        node("c", vec![web(), web(), pod("naked", Replacement::Never, 1)]),
        node("d", vec![api(), api()]),
    ]
}

#[test]
fn mixed_cluster_bounds_in_each_batching() {
    let t = timings();
    let nodes = mixed_cluster();
    let seq = lower_bound(&t, 1.0, &nodes, &Batching::Sequential);
    // Evict: every node has a workload with 2 pods and allowance 1: 12 s each.
    assert_eq!(seq.evict_drains_s, 48.0);
    // Surge: web in 3 rounds (18 s) outlasts api's 2; then db 9 s, cache 12 s, naked 3 s.
    assert_eq!((seq.rollout_s, seq.surge_drains_s), (18.0, 24.0));
    assert_eq!((seq.evict_s, seq.surge_s), (93.0, 87.0));
    assert_eq!((seq.total_s, seq.model), (87.0, Model::Surge));

    let groups = vec![vec!["a".into(), "b".into()], vec!["c".into(), "d".into()]];
    let ann = lower_bound(&t, 1.0, &nodes, &Batching::Announced(groups));
    // Evict: 4 web pods in the first batch (24 s), then 12 s; surge: cache 12 s, naked 3 s.
    assert_eq!((ann.evict_drains_s, ann.surge_drains_s), (36.0, 15.0));
    assert_eq!((ann.total_s, ann.model), (78.0, Model::Surge));

    let two = lower_bound(&t, 1.0, &nodes, &Batching::AtMost(2));
    // Evict: four 12 s nodes, two batches; surge: costs 12, 9, 3 grouped as {12, 9}, {3}.
    assert_eq!((two.evict_drains_s, two.surge_drains_s), (24.0, 15.0));
    assert_eq!((two.evict_s, two.surge_s), (69.0, 78.0));
    assert_eq!(
        (two.total_s, two.model, two.batches),
        (69.0, Model::Evict, 2)
    );
}

#[test]
fn median_is_the_middle_run() {
    assert_eq!(median_index(&[]), None);
    assert_eq!(median_index(&[5.0]), Some(0));
    assert_eq!(median_index(&[9.0, 1.0, 5.0]), Some(2));
    assert_eq!(median_index(&[4.0, 1.0, 3.0, 2.0]), Some(3));
}

fn measures() -> Measures {
    Measures {
        exit_code: Some(0),
        wall_s: 20.0,
        time_scale: 10.0,
        bound: Some(lower_bound(
            &timings(),
            1.0,
            &cluster(),
            &Batching::Sequential,
        )),
        kubectl_invocations: 40,
        gcloud_invocations: 3,
        kube_requests: 400,
        verbs: Verbs {
            get: 100,
            list: 50,
            watch: 2,
            create: 4,
            update: 1,
            patch: 6,
            delete: 0,
            eviction: 12,
        },
        gke_requests: 9,
        peak_requests_per_s: 61,
        full_pod_lists: 3,
        full_pod_list_min_gap_sim_s: Some(12.25),
        plugin_max_rss_kib: Some(20480),
        plugin_cpu_s: Some(0.5),
        plugin_resources_source: Some("/proc".into()),
        sim_cpu_s: 4.0,
        downtime_sim_s: 0.0,
        downtime_max_sim_s: 0.0,
        below_pdb_sim_s: 1.5,
        below_pdb_max_sim_s: 1.5,
        pods_lost: 0,
    }
}

#[test]
fn table_rows_line_up_with_the_header() {
    let rows = vec![
        Row {
            size: "3".into(),
            variant: "p1".into(),
            outcome: Ok(measures()),
            p1_wall_s: Some(20.0),
        },
        Row {
            size: "3".into(),
            variant: "p4".into(),
            outcome: Err("not supported by this build".into()),
            p1_wall_s: Some(20.0),
        },
    ];
    let table = markdown_table(&rows);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4);
    for l in &lines {
        assert_eq!(l.matches('|').count(), HEADER.len() + 1, "{l}");
    }
    assert_eq!(
        lines[2],
        "| 3 | p1 | 20.0 | 6.6 (evict) | 13.4 | 3.03 | 1.00 | 40 | 3 | 100/50/2/4/7/0/12 | 9 | 20.0 | 2.00 | 61 | 3 (12.2) | 20.0 | 0.50 | 4.0 (0.20/s) | 0.0 (max 0.0) | 1.5 / 0 |"
    );
    assert!(lines[3].starts_with("| 3 | p4 | not supported by this build | - |"));
}

#[test]
fn a_failed_run_shows_its_exit_code() {
    let mut m = measures();
    m.exit_code = Some(3);
    m.bound = None;
    let row = Row {
        size: "30".into(),
        variant: "manual".into(),
        outcome: Ok(m),
        p1_wall_s: None,
    };
    let table = markdown_table(&[row]);
    let cells: Vec<&str> = table.lines().nth(2).unwrap().split(" | ").collect();
    assert_eq!(cells[2], "20.0 (exit 3)");
    assert_eq!(cells[3..7], ["-", "-", "-", "-"]);
}
