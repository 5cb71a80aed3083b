//! Bad input and unsafe situations: each refused with a clear error before any change (the
//! simulator records no write at all).

use crate::{scenario, World};
use zdupgrade_sim::scenario::{Workload, WorkloadKind};

fn assert_no_write(w: &World) {
    let writes = w.writes();
    assert!(writes.is_empty(), "the cluster was changed: {writes:#?}");
}

fn with_workload(f: impl FnOnce(&mut Workload)) -> World {
    let mut s = scenario("basic");
    let mut extra = s.workloads[0].clone();
    extra.pdb = None;
    f(&mut extra);
    s.workloads.push(extra);
    World::new(s)
}

#[test]
fn standalone_pod_without_force() {
    let w = with_workload(|x| {
        x.kind = WorkloadKind::Pod;
        x.name = "debug-shell".into();
        x.replicas = 1;
    });
    let r = w.plugin(&["migrate", "pool-two", "--yes"]);
    assert!(!r.ok(), "{r}");
    assert!(r.stderr.contains("debug-shell"), "{r}");
    assert!(r.stderr.contains("--force"), "{r}");
    assert_no_write(&w);
}

#[test]
fn emptydir_pod_without_delete_emptydir_data() {
    let w = with_workload(|x| {
        x.name = "cache".into();
        x.empty_dir = true;
    });
    let r = w.plugin(&["migrate", "pool-two", "--yes"]);
    assert!(!r.ok(), "{r}");
    assert!(r.stderr.contains("cache-"), "{r}");
    assert!(r.stderr.contains("--delete-emptydir-data"), "{r}");
    assert_no_write(&w);
}

#[test]
fn kube_context_of_another_cluster() {
    let mut s = scenario("basic");
    s.faults.endpoint_override = Some("34.118.0.10".into());
    s.faults.foreign_ca = true;
    let w = World::new(s);
    let r = w.plugin(&["migrate", "pool-two", "--yes"]);
    assert!(!r.ok(), "{r}");
    assert!(
        r.stderr.contains("34.118.0.10"),
        "names the cluster's endpoint:\n{r}"
    );
    assert!(
        r.stderr.contains("127.0.0.1"),
        "names the context's server:\n{r}"
    );
    assert_no_write(&w);
}

#[test]
fn unknown_from_pool() {
    let w = World::basic();
    let r = w.plugin(&["migrate", "pool-two", "--from", "nosuch-pool", "--yes"]);
    assert!(!r.ok(), "{r}");
    assert!(r.stderr.contains("nosuch-pool"), "{r}");
    assert!(
        r.stderr.contains("default-pool"),
        "lists the existing pools:\n{r}"
    );
    assert_no_write(&w);
}

#[test]
fn bad_pool_names_and_same_pool() {
    let w = World::basic();
    for args in [
        vec!["migrate", "Pool_Two", "--yes"],
        vec!["migrate", "default-pool", "--yes"],
        vec!["migrate", "pool-two", "--node-version", "banana", "--yes"],
        vec!["migrate", "pool-two", "--drain-timeout", "-5s", "--yes"],
    ] {
        let r = w.plugin(&args);
        assert!(!r.ok(), "{args:?}: {r}");
        assert!(!r.stderr.trim().is_empty(), "{args:?}: no message");
    }
    assert_no_write(&w);
}

#[test]
fn dry_run_prints_the_plan_and_changes_nothing() {
    let w = World::basic();
    let r = w.plugin(&["migrate", "pool-two", "--dry-run"]);
    assert!(r.ok(), "{r}");
    let out = format!("{}{}", r.stdout, r.stderr);
    assert!(
        out.contains("gcloud container node-pools create pool-two"),
        "{out}"
    );
    assert!(out.contains("kubectl cordon"), "{out}");
    assert!(out.contains("kubectl drain"), "{out}");
    assert!(
        out.contains("gcloud container node-pools delete default-pool"),
        "{out}"
    );
    assert_no_write(&w);
}

#[test]
fn deleting_the_old_pool_needs_yes_without_a_terminal() {
    let w = World::basic();
    let r = w.plugin(&["migrate", "pool-two", "--dry-run"]);
    assert!(r.ok(), "{r}");
    // Without --yes and without a terminal, nothing destructive may happen.
    let r = w.plugin(&["migrate", "pool-two"]);
    assert!(!r.ok(), "{r}");
    assert!(r.stderr.contains("--yes"), "{r}");
    assert!(w.pools().contains(&"default-pool".to_string()));
    assert!(
        crate::events(&w.report(), "eviction_accepted").is_empty(),
        "drained without --yes"
    );
    assert_no_write(&w);
}

#[test]
fn a_missing_gcloud_is_named_with_how_to_install_it() {
    let w = World::basic();
    // A PATH with kubectl but no gcloud.
    let dir = tempfile::tempdir().expect("temp dir");
    let kubectl = which_on_path("kubectl");
    std::os::unix::fs::symlink(&kubectl, dir.path().join("kubectl")).expect("symlink");
    let bin = std::path::PathBuf::from(env!("CARGO_BIN_EXE_kubectl-zdupgrade"));
    let out = std::process::Command::new(&bin)
        .args(["migrate", "pool-two", "--yes"])
        .env_clear()
        .envs(w.sim.env())
        .env("PATH", dir.path())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("plugin runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{stderr}");
    assert!(stderr.contains("gcloud"), "{stderr}");
    assert!(stderr.contains("Google Cloud CLI"), "{stderr}");
    assert_no_write(&w);
}

fn which_on_path(tool: &str) -> std::path::PathBuf {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|d| std::path::Path::new(d).join(tool))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{tool} is not on PATH"))
}
