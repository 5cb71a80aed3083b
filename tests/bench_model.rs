//! Unit tests of the migration benchmark's arithmetic (lower bound, median, table), which
//! lives under benches/ where a `harness = false` target cannot run tests.

// The benchmark uses the rest of the module.
#![allow(dead_code)]

#[path = "../benches/migration/model.rs"]
mod model;

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
    let s = pod("db", Replacement::AfterExit, u32::MAX);
    assert_eq!(batch_seconds([&s]), 9.0);
    assert_eq!(batch_seconds([&s, &s]), 18.0);
    let bare = pod("bare", Replacement::Never, 1);
    assert_eq!(batch_seconds([&bare]), 3.0);
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
    assert_eq!(b.drains_s, 6.0 + 9.0 + 6.0);
    assert_eq!(b.total_s, 25.0 + 21.0 + 20.0);
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
    assert_eq!(b.drains_s, 12.0 + 6.0);
    assert_eq!(b.batch_source, "plugin batches");
}

#[test]
fn at_most_n_groups_the_slowest_nodes_together() {
    let b = lower_bound(&timings(), 2.0, &cluster(), &Batching::AtMost(2));
    assert_eq!(b.batches, 2);
    // Costs 9, 6, 6: batches {9, 6} and {6}.
    assert_eq!(b.drains_s, 15.0);
    assert_eq!(b.pool_delete_s, 40.0);
    assert_eq!(b.pool_up_s, 50.0);
    let all = lower_bound(&timings(), 1.0, &cluster(), &Batching::AtMost(16));
    assert_eq!((all.batches, all.drains_s), (1, 9.0));
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
        "| 3 | p1 | 20.0 | 6.6 | 13.4 | 3.03 | 1.00 | 40 | 3 | 100/50/2/4/7/0/12 | 9 | 20.0 | 2.00 | 61 | 3 (12.2) | 20.0 | 0.50 | 4.0 (0.20/s) | 0.0 (max 0.0) | 1.5 / 0 |"
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
