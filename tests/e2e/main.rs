//! End-to-end tests: the plugin, run through kubectl's plugin mechanism with the real
//! `kubectl` and `gcloud`, against the simulated GKE cluster. Each test starts its own
//! simulator and asserts what the cluster shows afterwards.

mod bad_input;
mod completion;
mod conventions;
mod evictions;
mod faults;
mod faults_api;
mod guard;
mod interrupt;
mod memory;
mod migrate;
mod output;
mod parallel;
mod plan;
mod pool_ops;
mod refusals;
mod rollback;
mod selector;
mod status;
mod surge;
mod upgrade;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use zdupgrade_sim::{Scenario, SimHandle, SimOptions};

pub fn scenario(name: &str) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scenarios")
        .join(format!("{name}.json"));
    Scenario::load(&path).expect("scenario loads")
}

pub struct World {
    pub sim: SimHandle,
    pub bin_dir: PathBuf,
    /// A directory holding `kubectl`, a link to the client Google's kubectl would pick for the
    /// simulated server, first on the plugin's PATH (see [`World::new`]); `None` where
    /// Google's own `kubectl` (which picks the client) is run.
    client_dir: Option<tempfile::TempDir>,
}

pub struct Run {
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    pub fn ok(&self) -> bool {
        self.status == Some(0)
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?} after {:.1}s\n--- stdout\n{}\n--- stderr\n{}",
            self.status,
            self.elapsed.as_secs_f64(),
            self.stdout,
            self.stderr
        )
    }
}

impl World {
    /// The simulated cluster of `s`, with the plugin and its tools running the kubectl client
    /// that Google's `kubectl` would pick for the server's version (`kubectl.1.30` beside it,
    /// say) directly. Google's `kubectl` picks it by asking the server's version first on every
    /// call, which doubles the CPU a call costs; the suite is made of thousands of calls on two
    /// cores. The tests whose behaviour could depend on that choice (API outages, a server
    /// whose version changes, kubectl's completion of plugins) use [`World::with_dispatcher`];
    /// `ZDUPGRADE_TEST_KUBECTL=dispatcher` makes every test use Google's `kubectl`.
    pub fn new(s: Scenario) -> World {
        let client_dir = if std::env::var("ZDUPGRADE_TEST_KUBECTL").as_deref() == Ok("dispatcher") {
            None
        } else {
            client_for(&s.master_version)
        };
        World::start(s, client_dir)
    }

    /// The simulated cluster of `s`, with the plugin and its tools running Google's `kubectl`,
    /// which picks a client by the server's version on every call.
    pub fn with_dispatcher(s: Scenario) -> World {
        World::start(s, None)
    }

    fn start(s: Scenario, client_dir: Option<tempfile::TempDir>) -> World {
        let sim = SimHandle::start(s, SimOptions::default()).expect("simulator starts");
        let bin = PathBuf::from(env!("CARGO_BIN_EXE_kubectl-zdupgrade"));
        World {
            sim,
            bin_dir: bin.parent().expect("bin dir").to_path_buf(),
            client_dir,
        }
    }

    /// The directories before the machine's PATH: the client's, then the plugin's.
    fn path_with(&self, first: Option<&Path>) -> String {
        let mut dirs: Vec<PathBuf> = first.into_iter().map(Path::to_path_buf).collect();
        dirs.extend(self.client_dir.as_ref().map(|d| d.path().to_path_buf()));
        dirs.push(self.bin_dir.clone());
        let mut path = std::env::join_paths(dirs)
            .expect("paths join")
            .into_string()
            .expect("PATH is UTF-8");
        if let Ok(rest) = std::env::var("PATH") {
            path = format!("{path}:{rest}");
        }
        path
    }

    pub fn basic() -> World {
        World::new(scenario("basic"))
    }

    fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut c = Command::new(program);
        c.args(args);
        c.env_clear();
        c.env("PATH", self.path_with(None));
        for (k, v) in self.sim.env() {
            c.env(k, v);
        }
        c.env("NO_COLOR", "1");
        // kubectl (Go) collects garbage less often: a short call costs about a fifth less CPU,
        // which the suite, made of thousands of them on two cores, is bound by.
        c.env("GOGC", "400");
        c.env("GOMAXPROCS", "1");
        c.stdin(Stdio::null());
        c
    }

    /// `dir` first on `c`'s PATH, before the plugin's own directory.
    fn put_first_on_path(&self, c: &mut Command, dir: &std::path::Path) {
        c.env("PATH", self.path_with(Some(dir)));
    }

    /// Runs `kubectl zdupgrade ARGS` (the plugin, found on PATH by kubectl).
    pub fn plugin(&self, args: &[&str]) -> Run {
        let mut full = vec!["zdupgrade"];
        full.extend_from_slice(args);
        run(self.command("kubectl", &full), Duration::from_secs(240))
    }

    /// Runs the plugin with `dir` first on PATH (a wrapper `kubectl`, say).
    pub fn plugin_with_path(&self, dir: &std::path::Path, args: &[&str]) -> Run {
        let mut full = vec!["zdupgrade"];
        full.extend_from_slice(args);
        let mut c = self.command("kubectl", &full);
        self.put_first_on_path(&mut c, dir);
        run(c, Duration::from_secs(240))
    }

    /// Runs the plugin with `env` added to its environment (and its tools').
    pub fn plugin_with_env(&self, env: &[(&str, &str)], args: &[&str]) -> Run {
        let mut full = vec!["zdupgrade"];
        full.extend_from_slice(args);
        let mut c = self.command("kubectl", &full);
        c.envs(env.iter().copied());
        run(c, Duration::from_secs(240))
    }

    /// Runs the plugin with `kubeconfig` (the text of a kubeconfig file) as its `KUBECONFIG`
    /// instead of the simulator's own.
    pub fn plugin_with_kubeconfig(&self, kubeconfig: &str, args: &[&str]) -> Run {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("kubeconfig");
        std::fs::write(&path, kubeconfig).expect("write the kubeconfig");
        let mut full = vec!["zdupgrade"];
        full.extend_from_slice(args);
        let mut c = self.command("kubectl", &full);
        c.env("KUBECONFIG", &path);
        run(c, Duration::from_secs(240))
    }

    /// The value of `name` in the environment the plugin and its tools get.
    pub fn env_var(&self, name: &str) -> Option<String> {
        self.sim
            .env()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    pub fn spawn_plugin(&self, args: &[&str]) -> std::process::Child {
        let mut c = self.command(
            self.bin_dir.join("kubectl-zdupgrade").to_str().unwrap(),
            args,
        );
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        c.spawn().expect("plugin starts")
    }

    /// [`World::spawn_plugin`] with `dir` first on PATH (a wrapper `kubectl`, say).
    pub fn spawn_plugin_with_path(
        &self,
        dir: &std::path::Path,
        args: &[&str],
    ) -> std::process::Child {
        let mut c = self.command(
            self.bin_dir.join("kubectl-zdupgrade").to_str().unwrap(),
            args,
        );
        self.put_first_on_path(&mut c, dir);
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        c.spawn().expect("plugin starts")
    }

    pub fn kubectl(&self, args: &[&str]) -> Run {
        run(self.command("kubectl", args), Duration::from_secs(60))
    }

    pub fn gcloud(&self, args: &[&str]) -> Run {
        run(self.command("gcloud", args), Duration::from_secs(120))
    }

    pub fn report(&self) -> Value {
        self.sim.report()
    }

    pub fn pools(&self) -> Vec<String> {
        self.sim.with(|s| {
            s.gke
                .pools
                .iter()
                .filter_map(|p| p["name"].as_str().map(String::from))
                .collect()
        })
    }

    /// Node name -> pool name.
    pub fn node_pools(&self) -> std::collections::BTreeMap<String, String> {
        self.sim.with(|s| {
            s.objs
                .list::<k8s_openapi::api::core::v1::Node>()
                .map(|n| {
                    (
                        n.metadata.name.clone().unwrap_or_default(),
                        n.metadata
                            .labels
                            .as_ref()
                            .and_then(|l| l.get("cloud.google.com/gke-nodepool").cloned())
                            .unwrap_or_default(),
                    )
                })
                .collect()
        })
    }

    /// Writes the simulator recorded (API writes by any client).
    pub fn writes(&self) -> Vec<Value> {
        self.report()["writes"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

/// A directory with `kubectl` linked to the client Google's `kubectl` runs for a server of
/// `server_version` (`kubectl.1.30` beside it for 1.30.5-gke.1014001), or `None` where there is
/// no such client (another build of kubectl on PATH, or a version it has no client for).
fn client_for(server_version: &str) -> Option<tempfile::TempDir> {
    let minor: Vec<&str> = server_version.splitn(3, '.').take(2).collect();
    let dispatcher = std::fs::canonicalize(which::which("kubectl").ok()?).ok()?;
    let client = dispatcher
        .parent()?
        .join(format!("kubectl.{}", minor.join(".")));
    if !client.is_file() {
        return None;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    std::os::unix::fs::symlink(&client, dir.path().join("kubectl")).expect("link the client");
    Some(dir)
}

fn run(mut c: Command, limit: Duration) -> Run {
    let start = Instant::now();
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = c.spawn().expect("command starts");
    let out = wait_with_limit(child, limit);
    Run {
        status: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: start.elapsed(),
    }
}

fn wait_with_limit(child: std::process::Child, limit: Duration) -> Output {
    let id = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.expect("wait succeeds"),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(id.to_string()).status();
            panic!("command did not finish within {limit:?}");
        }
    }
}

/// The cluster's lock, the Lease `kube-system/kubectl-zdupgrade`, if any.
pub fn lease(w: &World) -> Option<k8s_openapi::api::coordination::v1::Lease> {
    w.sim.with(|s| {
        s.objs
            .list::<k8s_openapi::api::coordination::v1::Lease>()
            .find(|l| {
                l.metadata.name.as_deref() == Some("kubectl-zdupgrade")
                    && l.metadata.namespace.as_deref() == Some("kube-system")
            })
            .cloned()
    })
}

/// Creates the lock's Lease as another run would have left it: `holder`, acquired and last
/// renewed `renewed_ago` before now.
pub fn create_lease(w: &World, holder: &str, renewed_ago: Duration) {
    let at = (jiff::Timestamp::now() - jiff::SignedDuration::try_from(renewed_ago).unwrap())
        .strftime("%Y-%m-%dT%H:%M:%S.000000Z")
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lease.json");
    std::fs::write(
        &file,
        serde_json::json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "kubectl-zdupgrade", "namespace": "kube-system",
                         "annotations": {"kubectl-zdupgrade/command-line": format!("kubectl zdupgrade {}", holder.split(" pid ").nth(1).and_then(|r| r.split_once(' ')).map_or("", |(_, c)| c))}},
            "spec": {"holderIdentity": holder, "acquireTime": at, "renewTime": at}
        })
        .to_string(),
    )
    .unwrap();
    let created = w.kubectl(&["create", "-f", file.to_str().unwrap(), "--validate=false"]);
    assert!(created.ok(), "{created}");
}

/// The plugin and every process it started: a hard kill of the whole job, as when a CI runner
/// or the OOM killer takes it down. Each process is stopped before its children are looked
/// for, so that none starts, exits unreaped or reaps another while the tree is collected: every
/// number in it still names the process found (none can be reused by another test's process).
pub fn kill_tree(pid: u32) {
    let stop = |p: u32| {
        let _ = Command::new("kill")
            .args(["-STOP", &p.to_string()])
            .status();
    };
    stop(pid);
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        if i > 0 {
            // A child that already exited is a zombie of its stopped parent: still there.
            stop(parent);
        }
        for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            let ppid = stat
                .rsplit_once(") ")
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            let child = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok());
            if let (Some(ppid), Some(child)) = (ppid, child) {
                if ppid == parent && !tree.contains(&child) {
                    tree.push(child);
                }
            }
        }
        i += 1;
    }
    let mut kill = Command::new("kill");
    kill.arg("-KILL");
    for p in &tree {
        kill.arg(p.to_string());
    }
    let _ = kill.status();
}

/// A directory holding a `kubectl` shell script: `before` (shell lines, which may exit), then
/// the real kubectl run as the script's child with the same arguments. Put first on the
/// plugin's PATH with [`World::plugin_with_path`].
pub fn kubectl_wrapper(before: &str) -> tempfile::TempDir {
    let real = which::which("kubectl").expect("kubectl on PATH");
    let text = format!("#!/bin/sh\n{before}\n'{}' \"$@\"\n", real.display());
    script_dir("kubectl", |_| text)
}

/// A temporary directory holding an executable script `program`, whose text `script` makes
/// from the directory's path.
pub fn script_dir(program: &str, script: impl FnOnce(&Path) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(program);
    std::fs::write(&path, script(dir.path())).expect("write the script");
    let mode = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    std::fs::set_permissions(&path, mode).expect("make the script executable");
    dir
}

/// Events of one type from a report.
pub fn events<'a>(report: &'a Value, kind: &str) -> Vec<&'a Value> {
    report["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["type"] == kind)
        .collect()
}

/// `node=NAME` from an event's detail.
pub fn detail_node(e: &Value) -> String {
    e["detail"]
        .as_str()
        .unwrap_or("")
        .split_whitespace()
        .find_map(|w| w.strip_prefix("node="))
        .unwrap_or("")
        .to_string()
}

/// Asserts zero downtime and no PDB violation for every workload with 2+ replicas, and no pod
/// lost.
pub fn assert_zero_downtime(report: &Value) {
    for w in report["workloads"].as_array().expect("workloads") {
        if w["replicas"].as_i64().unwrap_or(0) >= 2 {
            assert_eq!(
                w["downtime_seconds"].as_f64(),
                Some(0.0),
                "downtime for {}",
                w
            );
            assert_eq!(
                w["seconds_below_pdb"].as_f64(),
                Some(0.0),
                "below PDB for {}",
                w
            );
        }
    }
    assert_eq!(
        report["pods_lost"].as_array().map(Vec::len),
        Some(0),
        "pods lost: {}",
        report["pods_lost"]
    );
}
