//! `zdupgrade-sim serve` as a user runs it: the program started on its own, its `DIR/env`
//! sourced by a real bash, and kubectl and gcloud in that shell reaching the simulated cluster
//! with nothing else set.

use crate::support::scenario_path;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `serve` process of one test. It is stopped (only that process, by its handle) by
/// [`Serving::stop`], or when the test ends, also when it fails.
struct Serving(Option<Child>);

impl Serving {
    fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("serve is running")
    }

    /// Stops it and returns what it printed.
    fn stop(mut self) -> std::process::Output {
        let mut child = self.0.take().expect("serve is running");
        let _ = child.kill();
        child.wait_with_output().expect("collect serve's output")
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A command with none of the machine's kubectl or gcloud settings, and a HOME of its own that
/// holds no configuration: what it reaches, it reaches through the env file alone.
fn clean_command(program: &str, home: &Path) -> Command {
    let mut cmd = Command::new(program);
    for (k, _) in std::env::vars() {
        if k.starts_with("CLOUDSDK_") {
            cmd.env_remove(k);
        }
    }
    for var in ["KUBECONFIG", "RUSTUP_HOME", "CARGO_HOME"] {
        cmd.env_remove(var);
    }
    cmd.env("HOME", home);
    cmd.env("GOGC", "400").env("GOMAXPROCS", "1");
    cmd
}

#[test]
fn serve_writes_an_env_file_that_points_a_shell_at_the_simulator() {
    let base = tempfile::tempdir().expect("temp dir");
    // A space and a quote in the path: the env file must quote what it exports.
    let dir = base.path().join("it's the sim");
    let home = base.path().join("user-home");
    std::fs::create_dir_all(&home).unwrap();
    let serve = clean_command(env!("CARGO_BIN_EXE_zdupgrade-sim"), &home)
        .arg("serve")
        .arg("--scenario")
        .arg(scenario_path("basic"))
        .arg("--dir")
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start zdupgrade-sim serve");
    let mut serving = Serving(Some(serve));
    let started = Instant::now();
    while !dir.join("url").exists() {
        if let Ok(Some(status)) = serving.child().try_wait() {
            panic!("zdupgrade-sim serve exited early: {status}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "zdupgrade-sim serve wrote no DIR/url within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let env_file = dir.join("env");
    assert!(env_file.is_file(), "no env file at {}", env_file.display());

    let script = r#"set -eu
source "$1"
echo "HOME=$HOME"
echo "RUSTUP_HOME=$RUSTUP_HOME"
kubectl get nodes -o name
gcloud container clusters list --format='value(name,location)'
"#;
    let out = clean_command("bash", &home)
        .arg("-c")
        .arg(script)
        .arg("bash")
        .arg(&env_file)
        .output()
        .expect("run bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the sourced shell failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}\nenv file:\n{}",
        out.status,
        std::fs::read_to_string(&env_file).unwrap_or_default()
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[0],
        format!("HOME={}", dir.join("home").display()),
        "{stdout}"
    );
    // rustup keeps the directory it had before HOME moved.
    assert_eq!(
        lines[1],
        format!("RUSTUP_HOME={}", home.join(".rustup").display()),
        "{stdout}"
    );
    let nodes: Vec<&&str> = lines
        .iter()
        .filter(|l| l.starts_with("node/gke-demo-default-pool-"))
        .collect();
    assert_eq!(nodes.len(), 3, "kubectl get nodes: {stdout}");
    assert!(
        lines
            .iter()
            .any(|l| l.split_whitespace().eq(["demo", "us-central1-a"])),
        "gcloud container clusters list: {stdout}"
    );

    // What serve told the user: where the file is, and the line that sources it.
    let output = serving.stop();
    let told = String::from_utf8_lossy(&output.stderr);
    let quoted = format!(
        "'{}'",
        env_file.display().to_string().replace('\'', r"'\''")
    );
    assert!(
        told.contains(&format!("source {quoted}")),
        "serve's stderr names no `source` line for {quoted}:\n{told}"
    );
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        printed.contains("export KUBECONFIG=") && printed.contains("export CLOUDSDK_CONFIG="),
        "serve's stdout: {printed}"
    );
}
