//! Faults of the APIs themselves: transient failures retried (and a real one not), the
//! Kubernetes API going away in the middle of a migration, and two runs at once (the lock).

use std::process::Child;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use zdupgrade_sim::scenario::{Faults, Window, WriteFault};

use crate::{assert_zero_downtime, events, lease, scenario, Run, World};

/// Waits for a spawned plugin, killing it after `limit`.
pub fn finish(child: Child, limit: Duration) -> Run {
    let start = Instant::now();
    let id = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(limit) {
        Ok(out) => out.expect("wait succeeds"),
        Err(_) => {
            let _ = std::process::Command::new("kill")
                .arg("-9")
                .arg(id.to_string())
                .status();
            panic!("the plugin did not finish within {limit:?}");
        }
    };
    Run {
        status: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: start.elapsed(),
    }
}

/// Polls `ready` every 100 ms until it holds; panics after `limit`.
pub fn wait_until(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn holder(lease: &Lease) -> String {
    lease
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.clone())
        .unwrap_or_default()
}

/// Every pod that is not a DaemonSet's runs on a node of `pool`.
fn assert_all_on(w: &World, pool: &str) {
    let misplaced: Vec<String> = crate::migrate::pods_by_pool(w)
        .into_iter()
        .filter(|(_, p, _)| p != pool)
        .map(|(name, _, _)| name)
        .collect();
    assert!(misplaced.is_empty(), "pods not on {pool}: {misplaced:?}");
}

fn assert_migrated(w: &World) {
    assert_eq!(w.pools(), ["pool-two"]);
    assert_all_on(w, "pool-two");
    assert_zero_downtime(&w.report());
    assert!(lease(w).is_none(), "the lock was not released");
}

#[test]
fn api_outage_mid_drain_is_waited_out() {
    // Evicted pods take 25 simulated seconds to go, so the outage starts while `kubectl drain`
    // waits for them: the drain itself fails and must be run again.
    let mut s = scenario("basic");
    s.timings.termination = 25.0;
    let w = World::with_dispatcher(s);
    let child = w.spawn_plugin(&["migrate", "pool-two", "--yes"]);
    wait_until("the first eviction", Duration::from_secs(180), || {
        !events(&w.report(), "eviction_accepted").is_empty()
    });
    let now = w.sim.with(|s| s.now());
    w.sim.set_faults(Faults {
        api_outages: vec![Window {
            from: now,
            until: Some(now + 30.0),
        }],
        ..Faults::default()
    });
    let r = finish(child, Duration::from_secs(300));
    assert!(r.ok(), "{r}");
    let report = w.report();
    assert_eq!(events(&report, "api_outage_start").len(), 1, "{r}");
    assert_eq!(events(&report, "api_outage_end").len(), 1, "{r}");
    std::fs::write(
        std::env::temp_dir().join("zdupgrade-api-outage-stderr.txt"),
        &r.stderr,
    )
    .ok();
    // The drain failed on the outage and was run again (how kubectl words the failure depends
    // on what it was doing when the API went away).
    assert!(
        r.stderr
            .lines()
            .any(|l| l.contains("kubectl drain ") && l.contains("retrying in 1 s (attempt 1)")),
        "the drain was not run again:\n{r}"
    );
    assert!(
        r.stderr.contains("kubectl drain gke-demo-default-pool-"),
        "{r}"
    );
    assert!(
        r.stderr
            .contains("the Kubernetes API is unavailable (ServiceUnavailable); retrying in "),
        "{r}"
    );
    assert_migrated(&w);
}

#[test]
fn transient_gke_failures_are_retried() {
    let mut s = scenario("basic");
    s.faults.gke_unavailable_requests = 2;
    let w = World::with_dispatcher(s);
    let r = w.plugin(&["migrate", "pool-two", "--dry-run"]);
    assert!(r.ok(), "{r}");
    assert!(
        r.stderr.contains(
            "gcloud container clusters describe ...: the GKE API is unavailable (503); retrying in 1 s (attempt 1)"
        ),
        "{r}"
    );
    assert!(r.stderr.contains("retrying in 2 s (attempt 2)"), "{r}");
    assert!(w.writes().is_empty(), "a dry run wrote: {:?}", w.writes());
}

/// A 404 from GKE is a real failure: one run of gcloud, no retry, an exit naming it.
#[test]
fn a_real_failure_is_not_retried() {
    let w = World::with_dispatcher(scenario("basic"));
    let r = w.plugin(&["migrate", "pool-two", "--cluster", "nosuch", "--yes", "-v"]);
    assert_eq!(r.status, Some(5), "{r}");
    assert!(r.stderr.contains("code=404"), "{r}");
    assert!(!r.stderr.contains("retrying"), "retried:\n{r}");
    let runs = r
        .stderr
        .matches("$ gcloud container clusters describe nosuch")
        .count();
    assert_eq!(runs, 1, "{r}");
    assert!(w.writes().is_empty());
}

#[test]
fn a_second_run_refuses_while_the_first_holds_the_lock() {
    let w = World::with_dispatcher(scenario("basic"));
    let started = Instant::now();
    let first = w.spawn_plugin(&["migrate", "pool-two", "--yes"]);
    let pid = first.id();
    wait_until("the lock", Duration::from_secs(120), || lease(&w).is_some());
    let held = lease(&w).unwrap();
    let identity = holder(&held);
    assert!(
        identity.contains(&format!(" pid {pid} migrate pool-two")),
        "{identity}"
    );
    let spec = held.spec.clone().unwrap();
    assert!(spec.acquire_time.is_some() && spec.renew_time.is_some());
    let annotations = held.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        annotations
            .get("kubectl-zdupgrade/command-line")
            .map(String::as_str),
        Some("kubectl zdupgrade migrate pool-two --yes")
    );

    let second = w.plugin(&["migrate", "pool-two", "--yes"]);
    assert_eq!(second.status, Some(3), "{second}");
    assert!(
        second.stderr.contains(&identity),
        "names the holder:\n{second}"
    );
    assert!(second.stderr.contains("--break-lock"), "{second}");
    assert!(second.stderr.contains("acquired 20"), "{second}");

    let r = finish(first, Duration::from_secs(300));
    let ran = started.elapsed();
    assert!(r.ok(), "{r}");
    assert_migrated(&w);
    // Renewed by a timer every 10 s for the whole run: not a kubectl call per node.
    let patches = w
        .writes()
        .iter()
        .filter(|x| x["method"] == "PATCH" && x["path"].as_str().unwrap_or("").contains("/leases/"))
        .count() as u64;
    assert!(
        (1..=1 + ran.as_secs() / 10).contains(&patches),
        "{patches} lease renewals in {ran:?}"
    );
}

/// Runs the plugin as the first process of a PID namespace of its own, as in a container: its
/// PID is 1, like every other container's first process.
fn spawn_in_pid_namespace(w: &World, args: &[&str]) -> Child {
    let plugin = w.bin_dir.join("kubectl-zdupgrade");
    let mut full = vec!["--pid", "--fork", plugin.to_str().expect("UTF-8 path")];
    full.extend_from_slice(args);
    let mut c = w.command("unshare", &full);
    c.env("USER", "ci");
    c.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    c.spawn().expect("unshare starts")
}

/// Issue 19.1: two runs in two containers (PID namespaces) with the same user and host name were
/// both `ci@HOST pid 1 migrate pool-two`: the second took the first's lock for its own and both
/// went on. Each run's identity now carries a random run id and its PID namespace.
#[test]
fn two_runs_in_separate_pid_namespaces_do_not_share_the_lock() {
    let w = World::with_dispatcher(scenario("basic"));
    let first = spawn_in_pid_namespace(&w, &["migrate", "pool-two", "--yes"]);
    wait_until("the lock", Duration::from_secs(120), || lease(&w).is_some());
    let identity = holder(&lease(&w).unwrap());
    assert!(
        identity.starts_with("ci@") && identity.contains(" pid 1 migrate pool-two (run "),
        "{identity}"
    );
    let second = finish(
        spawn_in_pid_namespace(&w, &["migrate", "pool-two", "--yes"]),
        Duration::from_secs(120),
    );
    assert_eq!(second.status, Some(3), "the second run went on:\n{second}");
    assert!(
        second.stderr.contains(&identity),
        "names the holder:\n{second}"
    );
    assert!(
        !second.stderr.contains("took over"),
        "a live lock in another namespace is not stale:\n{second}"
    );
    let r = finish(first, Duration::from_secs(300));
    assert!(r.ok(), "{r}");
    assert_migrated(&w);
}

#[test]
fn a_lock_left_by_a_killed_run_is_taken_over() {
    let w = World::with_dispatcher(scenario("basic"));
    let mut first = w.spawn_plugin(&["migrate", "pool-two", "--yes"]);
    wait_until("the first eviction", Duration::from_secs(180), || {
        !events(&w.report(), "eviction_accepted").is_empty()
    });
    first.kill().expect("SIGKILL");
    let _ = first.wait();
    let left = lease(&w).expect("a killed run leaves its lock");
    assert!(holder(&left).contains(&format!(" pid {} ", first.id())));

    let r = w.plugin(&["migrate", "pool-two", "--yes"]);
    assert!(r.ok(), "{r}");
    assert!(r.stderr.contains("took over the cluster's lock"), "{r}");
    assert!(r.stderr.contains("no longer runs on this host"), "{r}");
    assert_migrated(&w);
}

/// A live-looking lock from another machine: refused without a single write, taken over with
/// `--break-lock`.
#[test]
fn break_lock_takes_over_a_lock_from_another_host() {
    let w = World::with_dispatcher(scenario("basic"));
    crate::create_lease(
        &w,
        "ann@far-away-host pid 1 migrate pool-three",
        Duration::ZERO,
    );
    let writes_before = w.writes().len();

    let r = w.plugin(&["migrate", "pool-two", "--yes"]);
    assert_eq!(r.status, Some(3), "{r}");
    assert!(
        r.stderr
            .contains("ann@far-away-host pid 1 migrate pool-three"),
        "{r}"
    );
    assert_eq!(w.writes().len(), writes_before, "a refused run wrote");

    let r = w.plugin(&["migrate", "pool-two", "--yes", "--break-lock"]);
    assert!(r.ok(), "{r}");
    assert!(r.stderr.contains("took over the cluster's lock"), "{r}");
    assert!(r.stderr.contains("--break-lock"), "{r}");
    assert_migrated(&w);
}

/// Issue 19.2: one 503 on the lock's renewal, on a rolling restart's patch and on a strategy's
/// restore aborted the run; they are writes that are safe to repeat (a patch conditioned on the
/// Lease's resourceVersion, merge patches that leave the same object when applied twice), and
/// are now retried like reads (a Deployment's patch through the proxy is sent again by kubectl).
#[test]
fn one_unavailable_answer_to_each_write_that_is_safe_to_repeat_is_ridden_out() {
    let mut s = scenario("single-replica");
    let fail_once = |path: &str| WriteFault {
        method: "PATCH".into(),
        path_contains: path.into(),
        count: 1,
        status: None,
    };
    s.faults.unavailable_writes = vec![fail_once("/leases/"), fail_once("/deployments/")];
    let w = World::with_dispatcher(s);
    let r = w.plugin(&["migrate", "pool-two", "--yes"]);
    assert!(r.ok(), "{r}");
    let failed = |path: &str| {
        w.writes()
            .iter()
            .filter(|x| x["status"] == 503 && x["path"].as_str().unwrap_or("").contains(path))
            .count()
    };
    assert_eq!(failed("/leases/"), 1, "the renewal was not hit");
    assert_eq!(
        failed("/deployments/"),
        1,
        "no patch of a Deployment was hit"
    );
    // The refused patch (sent through the plugin's proxy) was sent again (by kubectl, which
    // retries) and applied.
    let writes = w.writes();
    let refused = writes
        .iter()
        .position(|x| {
            x["status"] == 503 && x["path"].as_str().unwrap_or("").contains("/deployments/")
        })
        .expect("the refused patch");
    assert!(
        writes[refused + 1..].iter().any(|x| x["method"] == "PATCH"
            && x["path"] == writes[refused]["path"]
            && x["status"].as_u64().is_some_and(|s| s < 300)),
        "the restart's patch was not sent again:\n{r}"
    );
    assert_eq!(w.pools(), ["pool-two"]);
    assert_all_on(&w, "pool-two");
    assert!(lease(&w).is_none(), "the lock was not released");
}

/// Issue 19.2: the Kubernetes API away for 20 s (200 simulated) while a health gate waits for
/// db (whose pods take 30 s to be ready), across at least one of the lock's renewals: the run
/// waits it out.
#[test]
fn an_api_outage_during_a_health_gate_is_waited_out() {
    let mut s = scenario("basic");
    let db = s.workloads.iter_mut().find(|w| w.name == "db").unwrap();
    db.readiness_delay = Some(300);
    let w = World::with_dispatcher(s);
    let child = w.spawn_plugin(&["migrate", "pool-two", "--yes"]);
    wait_until("a db pod's eviction", Duration::from_secs(180), || {
        events(&w.report(), "eviction_accepted")
            .iter()
            .any(|e| e["object"].as_str().unwrap_or("").contains("/db-"))
    });
    let now = w.sim.with(|s| s.now());
    w.sim.set_faults(Faults {
        api_outages: vec![Window {
            from: now + 20.0,
            until: Some(now + 220.0),
        }],
        ..Faults::default()
    });
    let r = finish(child, Duration::from_secs(400));
    assert!(r.ok(), "{r}");
    let report = w.report();
    assert_eq!(events(&report, "api_outage_end").len(), 1, "{r}");
    assert_migrated(&w);
}

/// A `kubectl` that hangs (a child `sleep` holding its output, as a wrapper script's real
/// kubectl would) on its second `get deployments,statefulsets,replicasets` call (the workloads
/// read again at the start of the migration, under the lock; the plan's read is the first);
/// `count` in the directory says how many there were.
fn hanging_kubectl() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let count = dir.path().join("count");
    let before = format!(
        "case \" $* \" in *\" get deployments,statefulsets,replicasets \"*) n=$(cat '{c}' 2>/dev/null || echo 0); n=$((n+1)); echo $n > '{c}'; if [ $n -eq 2 ]; then sleep 1000; fi;; esac",
        c = count.display()
    );
    let wrapper = crate::kubectl_wrapper(&before);
    std::fs::rename(wrapper.path().join("kubectl"), dir.path().join("kubectl"))
        .expect("move the wrapper");
    dir
}

/// Processes of this world (its KUBECONFIG in their environment) whose command line holds
/// `needle`.
fn running_with(w: &World, needle: &str) -> Vec<String> {
    let wanted = format!(
        "KUBECONFIG={}",
        w.env_var("KUBECONFIG").expect("KUBECONFIG")
    );
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let environ = std::fs::read(e.path().join("environ")).ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            let ours = environ.split(|b| *b == 0).any(|v| v == wanted.as_bytes());
            (ours && cmdline.contains(needle)).then_some(cmdline)
        })
        .collect()
}

/// Issue 19.3: a hung `kubectl get` held the run for minutes past every timeout. Each kubectl
/// call is now stopped 10 s after its `--request-timeout` (5 minutes without the flag), with
/// what it started, and run again when it is safe to.
#[test]
fn a_hung_kubectl_call_is_stopped_at_its_deadline_and_run_again() {
    let w = World::with_dispatcher(scenario("basic"));
    let dir = hanging_kubectl();
    let r = w.plugin_with_path(
        dir.path(),
        &["migrate", "pool-two", "--yes", "--request-timeout", "5s"],
    );
    assert!(r.ok(), "{r}");
    assert!(
        r.stderr
            .contains("kubectl get deployments,statefulsets,replicasets ...: no answer within 15.0s; retrying in"),
        "the hung call was not stopped and run again:\n{r}"
    );
    let hung = std::fs::read_to_string(dir.path().join("count")).unwrap_or_default();
    assert!(
        hung.trim().parse::<u32>().unwrap_or(0) > 2,
        "the call was not repeated: {hung}"
    );
    assert!(
        running_with(&w, "sleep 1000").is_empty(),
        "the hung child was left running"
    );
    assert_migrated(&w);
}

/// Issue 19.3: the first Ctrl-C said "stopping safely" and then waited on a hung kubectl. The
/// signal now stops every running command (and what it started), the cleanup releases the lock,
/// and the run ends with 130.
#[test]
fn ctrl_c_stops_a_hung_kubectl_call() {
    let w = World::with_dispatcher(scenario("basic"));
    let dir = hanging_kubectl();
    let plugin = w.bin_dir.join("kubectl-zdupgrade");
    let mut c = w.command(plugin.to_str().unwrap(), &["migrate", "pool-two", "--yes"]);
    c.env(
        "PATH",
        format!(
            "{}:{}:{}",
            dir.path().display(),
            w.bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        ),
    );
    c.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = c.spawn().expect("plugin starts");
    wait_until("the hung call", Duration::from_secs(180), || {
        !running_with(&w, "sleep 1000").is_empty()
    });
    let sent = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success());
    let r = finish(child, Duration::from_secs(60));
    assert_eq!(r.status, Some(130), "{r}");
    assert!(
        r.stderr
            .contains("get deployments,statefulsets,replicasets")
            && r.stderr.contains("stopped"),
        "{r}"
    );
    assert!(
        running_with(&w, "sleep 1000").is_empty(),
        "the hung child was left running"
    );
    assert!(lease(&w).is_none(), "the lock outlived the run:\n{r}");
}
