//! Interruptions: SIGTERM/SIGINT stop a migration safely (exit 130, where it stopped, how to
//! resume, no child left behind), and SIGKILL at pseudo-random points never costs a pod or
//! downtime: a re-run always ends in the same state.

use crate::migrate::{pods_by_pool, pool_nodes};
use crate::{assert_zero_downtime, detail_node, events, kill_tree, lease, World};
use serde_json::Value;
use std::io::Read;
use std::process::{Child, Command};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A spawned plugin whose stdout and stderr are read in the background (no pipe fills up).
pub(crate) struct Spawned {
    child: Child,
    stdout: JoinHandle<String>,
    stderr: JoinHandle<String>,
}

pub(crate) struct Ended {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}\n--- stdout\n{}\n--- stderr\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

fn read_all(mut from: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = from.read_to_string(&mut text);
        text
    })
}

impl Spawned {
    pub fn new(w: &World, args: &[&str]) -> Spawned {
        let mut child = w.spawn_plugin(args);
        let stdout = read_all(child.stdout.take().expect("stdout piped"));
        let stderr = read_all(child.stderr.take().expect("stderr piped"));
        Spawned {
            child,
            stdout,
            stderr,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    pub fn wait(mut self, limit: Duration) -> Ended {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the plugin did not exit within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Ended {
            status,
            stdout: self.stdout.join().expect("stdout reader"),
            stderr: self.stderr.join().expect("stderr reader"),
        }
    }
}

pub(crate) fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .expect("kill runs")
        .success();
    assert!(ok, "kill -{sig} {pid} failed");
}

/// Waits (up to 120 s) until the simulator has recorded an event of `kind`; returns it.
pub(crate) fn wait_for_event(w: &World, plugin: &mut Spawned, kind: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(e) = events(&w.report(), kind).first() {
            return (*e).clone();
        }
        assert!(Instant::now() < deadline, "no {kind} within 120 s");
        assert!(!plugin.exited(), "the plugin exited before {kind}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// The command lines of running processes (other than zombies) started for this world's
/// simulator (its `HOME` in their environment: other tests run at the same time) that contain
/// every word.
fn processes_with(w: &World, words: &[&str]) -> Vec<String> {
    let home = w
        .sim
        .env()
        .into_iter()
        .find(|(k, _)| k == "HOME")
        .map(|(k, v)| format!("{k}={v}"))
        .expect("the simulator sets HOME");
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let path = entry.path();
        if !path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
        let state = stat.rsplit_once(") ").map(|(_, rest)| rest.chars().next());
        if state == Some(Some('Z')) {
            continue;
        }
        let environ = std::fs::read(path.join("environ")).unwrap_or_default();
        if !environ.split(|b| *b == 0).any(|var| var == home.as_bytes()) {
            continue;
        }
        let cmdline = std::fs::read(path.join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if words.iter().all(|w| cmdline.contains(w)) {
            found.push(cmdline);
        }
    }
    found
}

/// The JSON events the plugin printed (`-o json`) of one kind.
fn json_events(stdout: &str, kind: &str) -> Vec<Value> {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["event"] == kind)
        .collect()
}

/// The end state every migration must reach, however often it was interrupted.
fn assert_migrated(w: &World) {
    assert_eq!(w.pools(), vec!["pool-two".to_string()]);
    let report = w.report();
    assert_eq!(
        events(&report, "pool_create_requested").len(),
        1,
        "pool-two created more than once"
    );
    for (name, pool, ready) in pods_by_pool(w) {
        assert_eq!(pool, "pool-two", "{name} is not on pool-two");
        assert!(ready, "{name} is not Ready");
    }
    assert_zero_downtime(&report);
}

#[test]
fn sigterm_mid_drain_stops_safely_and_a_rerun_completes() {
    let w = World::basic();
    let old = pool_nodes(&w, "default-pool");
    let mut plugin = Spawned::new(&w, &["migrate", "pool-two", "--yes", "-o", "json"]);
    let eviction = wait_for_event(&w, &mut plugin, "eviction_accepted");
    let node = detail_node(&eviction);
    assert!(old.contains(&node), "evicted from {node}, not an old node");
    signal(plugin.pid(), "TERM");
    let ended = plugin.wait(Duration::from_secs(60));

    assert_eq!(ended.status.code(), Some(130), "{ended}");
    assert!(
        ended
            .stderr
            .contains(&format!("interrupted during step drain node {node}")),
        "stderr should name the step and node:\n{ended}"
    );
    assert!(
        ended
            .stderr
            .contains("cluster state: 3 of 3 old nodes cordoned"),
        "{ended}"
    );
    assert!(
        ended.stderr.contains("pool pool-two exists"),
        "the state should say pool-two exists:\n{ended}"
    );
    assert!(
        ended
            .stderr
            .contains("re-run `kubectl zdupgrade migrate pool-two --yes -o json` to resume"),
        "stderr should print the resume command:\n{ended}"
    );
    assert!(
        ended.stderr.contains("kubectl zdupgrade rollback pool-two"),
        "stderr should print the rollback command:\n{ended}"
    );
    let interrupted = json_events(&ended.stdout, "interrupted");
    assert_eq!(interrupted.len(), 1, "{ended}");
    assert!(
        interrupted[0]["step"]
            .as_str()
            .is_some_and(|s| s.contains(&node)),
        "{}",
        interrupted[0]
    );
    assert_eq!(interrupted[0]["exit_code"], 130);
    let result = json_events(&ended.stdout, "result");
    assert_eq!(
        result.last().map(|r| r["exit_code"].clone()),
        Some(130.into())
    );
    assert_lock_released(&w, &ended);
    assert_eq!(
        json_events(&ended.stdout, "lock_released").len(),
        1,
        "{ended}"
    );

    // The kubectl drain was stopped with the plugin, not left to go on evicting, and so was
    // the `kubectl proxy` of the plugin's own evictions.
    assert_eq!(processes_with(&w, &["drain", &node]), Vec::<String>::new());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(processes_with(&w, &["drain", &node]), Vec::<String>::new());
    assert_eq!(
        processes_with(&w, &["proxy", "--unix-socket"]),
        Vec::<String>::new()
    );
    let before_rerun = w.report();
    assert_eq!(
        before_rerun["pods_lost"].as_array().map(Vec::len),
        Some(0),
        "{}",
        before_rerun["pods_lost"]
    );
    assert!(w.pools().contains(&"default-pool".to_string()));

    let r = w.plugin(&["migrate", "pool-two", "--yes"]);
    assert!(r.ok(), "{r}");
    assert_migrated(&w);
}

/// Runs the plugin with `args`, sends it `sig` once the simulator has recorded an event of
/// `kind`, and returns how it ended: exit status 130, as an interruption must.
pub(crate) fn interrupt_at(w: &World, args: &[&str], kind: &str, sig: &str) -> Ended {
    let mut plugin = Spawned::new(w, args);
    wait_for_event(w, &mut plugin, kind);
    signal(plugin.pid(), sig);
    let ended = plugin.wait(Duration::from_secs(60));
    assert_eq!(ended.status.code(), Some(130), "{ended}");
    ended
}

#[test]
fn sigint_during_pool_create_reports_the_gke_operation_and_a_rerun_reuses_it() {
    let w = World::basic();
    let args = ["migrate", "pool-two", "--yes"];
    let ended = interrupt_at(&w, &args, "pool_create_requested", "INT");

    assert!(
        ended
            .stderr
            .contains("interrupted during step create pool pool-two"),
        "{ended}"
    );
    assert!(
        ended
            .stderr
            .contains("the creation of pool pool-two continues at GKE"),
        "the message should say the creation goes on at GKE:\n{ended}"
    );
    assert!(
        ended.stderr.contains("a re-run waits for pool pool-two"),
        "{ended}"
    );
    assert!(
        ended
            .stderr
            .contains("re-run `kubectl zdupgrade migrate pool-two --yes` to resume"),
        "{ended}"
    );
    assert!(
        events(&w.report(), "node_cordoned").is_empty(),
        "nothing may be cordoned"
    );
    assert_eq!(
        processes_with(&w, &["node-pools", "create", "pool-two"]),
        Vec::<String>::new(),
        "gcloud left running"
    );
    assert_lock_released(&w, &ended);

    let r = w.plugin(&["migrate", "pool-two", "--yes"]);
    assert!(r.ok(), "{r}");
    assert!(
        r.stderr.contains("reus") || r.stderr.contains("still being created"),
        "the re-run should reuse pool-two:\n{r}"
    );
    assert_migrated(&w);
}

/// The README's promise: the first signal's cleanup still deletes the run's Lease.
pub(crate) fn assert_lock_released(w: &World, ended: &Ended) {
    assert!(
        !ended.stderr.contains("could not release"),
        "the lock was not released:\n{ended}"
    );
    assert!(
        lease(w).is_none(),
        "the Lease outlived the interrupted run:\n{ended}"
    );
}

/// Issue 18.2: killed while the new pool's nodes boot (registered, not Ready: Kubernetes taints
/// them `node.kubernetes.io/not-ready`), a re-run must take that taint for what it is, wait
/// for the nodes and resume, not refuse with unsatisfiable-scheduling.
#[test]
fn a_rerun_while_the_new_nodes_boot_waits_for_them_and_resumes() {
    let mut s = crate::scenario("basic");
    // 30 s from registered to Ready: the re-run's preflight surely sees them booting.
    s.timings.node_ready = 300.0;
    let w = World::new(s);
    let mut plugin = Spawned::new(&w, &["migrate", "pool-two", "--yes"]);
    let registered = wait_for_event(&w, &mut plugin, "node_registered");
    kill_tree(plugin.pid());
    let _ = plugin.wait(Duration::from_secs(30));
    let node = registered["object"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let taints = w.kubectl(&["get", "node", &node, "-o", "jsonpath={.spec.taints}"]);
    assert!(
        taints.stdout.contains("node.kubernetes.io/not-ready"),
        "a booting node carries the not-ready taint: {taints}"
    );
    let r = w.plugin(&["migrate", "pool-two", "--yes"]);
    assert!(r.ok(), "{r}");
    assert!(!r.stderr.contains("unsatisfiable-scheduling"), "{r}");
    assert_migrated(&w);
}

/// xorshift64*: a deterministic pseudo-random sequence per seed.
struct Prng(u64);

impl Prng {
    fn new(seed: u64) -> Prng {
        Prng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// Uniform enough in `low..=high`.
    fn between(&mut self, low: u64, high: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let r = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        low + (r >> 33) % (high - low + 1)
    }
}

/// Kills a migration with SIGKILL after a pseudo-random number of simulator events (once or
/// twice: the re-run may be killed too), then re-runs until it completes, and checks the end
/// state and the guarantees.
fn killed_at_random_points(seed: u64) {
    let mut rng = Prng::new(seed);
    let kills = rng.between(1, 2);
    let w = World::basic();
    let mut killed_after = Vec::new();
    for _ in 0..kills {
        let start = w.report()["events"].as_array().map_or(0, Vec::len) as u64;
        let target = start + rng.between(1, 28);
        let mut plugin = Spawned::new(&w, &["migrate", "pool-two", "--yes"]);
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut finished = false;
        loop {
            let seen = w.report()["events"].as_array().map_or(0, Vec::len) as u64;
            if seen >= target {
                break;
            }
            if plugin.exited() {
                finished = true;
                break;
            }
            assert!(
                Instant::now() < deadline,
                "seed {seed}: stuck before event {target}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        if finished {
            let ended = plugin.wait(Duration::from_secs(10));
            assert!(ended.status.code() == Some(0), "seed {seed}: {ended}");
            break;
        }
        kill_tree(plugin.pid());
        let ended = plugin.wait(Duration::from_secs(10));
        assert_eq!(
            ended.status.code(),
            None,
            "seed {seed}: not killed: {ended}"
        );
        let report = w.report();
        let last = report["events"]
            .as_array()
            .and_then(|e| e.last())
            .map(|e| e["type"].as_str().unwrap_or("").to_string());
        killed_after.push(last.unwrap_or_default());
        assert_eq!(
            report["pods_lost"].as_array().map(Vec::len),
            Some(0),
            "seed {seed}: pods lost after the kill"
        );
    }
    eprintln!("seed {seed}: killed after events {killed_after:?}");
    let mut reruns = 0;
    while w.pools() != vec!["pool-two".to_string()] || reruns == 0 {
        reruns += 1;
        assert!(reruns <= 2, "seed {seed}: did not complete after re-runs");
        let r = w.plugin(&["migrate", "pool-two", "--yes"]);
        assert!(
            r.ok(),
            "seed {seed} (killed after {killed_after:?}): the re-run failed: {r}"
        );
    }
    assert_migrated(&w);
}

#[test]
fn killed_at_random_points_seed_1() {
    killed_at_random_points(1);
}

#[test]
fn killed_at_random_points_seed_2() {
    killed_at_random_points(2);
}

#[test]
fn killed_at_random_points_seed_3() {
    killed_at_random_points(3);
}

#[test]
fn killed_at_random_points_seed_4() {
    killed_at_random_points(4);
}
