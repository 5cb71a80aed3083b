//! Conventions a kubectl and gcloud user expects (issue 15): `--quiet` answers the prompts as
//! gcloud's does, `--silent` prints less, the cluster flags go before or after the subcommand,
//! and a kubeconfig without a current context gets an error that says what to do.

use std::path::{Path, PathBuf};

use crate::{scenario, World};

/// default-pool and pool-two, both serving, as after an interrupted migration's pool create.
fn two_pools() -> World {
    let mut s = scenario("basic");
    let mut p2 = s.pools[0].clone();
    p2.name = "pool-two".into();
    s.pools.push(p2);
    World::new(s)
}

/// The simulator's kubeconfig (one context, `GKE_CONTEXT`, the current one) with a second
/// context `elsewhere` (a server nobody listens on); `current` is the current context, if any.
fn kubeconfig_text(w: &World, current: Option<&str>) -> String {
    let original = std::fs::read_to_string(w.env_var("KUBECONFIG").unwrap()).unwrap();
    let current = current.map_or(String::new(), |c| format!("current-context: {c}\n"));
    let text = original
        .replace(&format!("current-context: {GKE_CONTEXT}\n"), &current)
        .replace(
            "clusters:\n",
            "clusters:\n- name: dead\n  cluster:\n    server: http://127.0.0.1:1\n",
        )
        .replace(
            "contexts:\n",
            &format!(
                "contexts:\n- name: elsewhere\n  context:\n    cluster: dead\n    user: {GKE_CONTEXT}\n"
            ),
        );
    assert!(
        text.contains("name: elsewhere") && text.contains("name: dead"),
        "{text}"
    );
    assert!(
        !text.contains(&format!("current-context: {GKE_CONTEXT}")),
        "{text}"
    );
    text
}

const GKE_CONTEXT: &str = "gke_demo-project_us-central1-a_demo";

fn write_kubeconfig(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn quiet_confirms_like_yes_and_silent_prints_no_progress() {
    let w = two_pools();
    let before = w.writes().len();
    // Without a terminal, a rollback asks for a confirmation it cannot get.
    let r = w.plugin(&["rollback", "pool-two"]);
    assert!(!r.ok(), "{r}");
    assert_eq!(w.writes().len(), before, "changed without confirmation");
    // Progress is printed without --silent.
    let r = w.plugin(&["rollback", "pool-two", "--dry-run"]);
    assert!(r.ok(), "{r}");
    assert!(r.stderr.contains("Resolving the cluster"), "{r}");

    // gcloud's --quiet, before the subcommand as gcloud users put it: confirmed.
    let r = w.plugin(&["--quiet", "--silent", "rollback", "pool-two"]);
    assert!(r.ok(), "--quiet confirms as --yes does:\n{r}");
    assert!(w.writes().len() > before, "--quiet changed nothing:\n{r}");
    let cordoned = w.kubectl(&[
        "get",
        "nodes",
        "-l",
        "cloud.google.com/gke-nodepool=pool-two",
        "-o",
        "jsonpath={.items[*].spec.unschedulable}",
    ]);
    let cordoned: Vec<&str> = cordoned.stdout.split_whitespace().collect();
    assert!(
        !cordoned.is_empty() && cordoned.iter().all(|c| *c == "true"),
        "pool-two was not drained ({cordoned:?}):\n{r}"
    );
    // --silent: no progress, no summary; only warnings and errors would show.
    assert!(!r.stderr.contains("Resolving the cluster"), "{r}");
    assert!(r.stdout.trim().is_empty(), "{r}");
}

#[test]
fn status_with_the_context_before_the_subcommand() {
    let w = World::basic();
    let dir = tempfile::tempdir().unwrap();
    // The current context points nowhere: only --context reaches the cluster.
    let kubeconfig = write_kubeconfig(dir.path(), &kubeconfig_text(&w, Some("elsewhere")));
    let kubeconfig = kubeconfig.to_str().unwrap();
    let before = w.plugin(&[
        "--kubeconfig",
        kubeconfig,
        "--context",
        GKE_CONTEXT,
        "status",
    ]);
    assert!(before.ok(), "{before}");
    assert!(
        before.stdout.contains("No migration in progress"),
        "{before}"
    );
    let after = w.plugin(&[
        "status",
        "--kubeconfig",
        kubeconfig,
        "--context",
        GKE_CONTEXT,
    ]);
    assert!(after.ok(), "{after}");
    assert_eq!(before.stdout, after.stdout);
    // Mixed: one before, one after.
    let mixed = w.plugin(&[
        "--context",
        GKE_CONTEXT,
        "status",
        "--kubeconfig",
        kubeconfig,
    ]);
    assert_eq!(mixed.stdout, after.stdout, "{mixed}");
}

#[test]
fn a_kubeconfig_without_current_context_is_named_with_what_to_do() {
    let w = two_pools();
    let before = w.writes().len();
    let text = kubeconfig_text(&w, None);
    for args in [&["status"][..], &["migrate", "pool-two", "--yes"]] {
        let r = w.plugin_with_kubeconfig(&text, args);
        assert_eq!(r.status, Some(2), "{args:?}: {r}");
        for part in [
            "has no current context",
            "kubeconfig",
            "--context",
            "kubectl config use-context",
        ] {
            assert!(r.stderr.contains(part), "{part:?} missing:\n{r}");
        }
        assert!(!r.stderr.contains("must exist in order to minify"), "{r}");
    }
    // The file named is the one given.
    let dir = tempfile::tempdir().unwrap();
    let path = write_kubeconfig(dir.path(), &text);
    let path = path.to_str().unwrap();
    let r = w.plugin(&["--kubeconfig", path, "status"]);
    assert_eq!(r.status, Some(2), "{r}");
    assert!(
        r.stderr
            .contains(&format!("the kubeconfig {path} has no current context")),
        "{r}"
    );
    // With --context, the same kubeconfig works.
    let r = w.plugin(&["--kubeconfig", path, "--context", GKE_CONTEXT, "status"]);
    assert!(r.ok(), "{r}");
    assert_eq!(w.writes().len(), before, "the cluster was changed");
}

/// A YAML document read back as JSON data.
fn yaml_value(text: &str) -> serde_json::Value {
    serde_saphyr::from_str(text).unwrap_or_else(|e| panic!("not YAML ({e}):\n{text}"))
}

/// The documents of a YAML stream (`---` before each).
fn yaml_documents(text: &str) -> Vec<serde_json::Value> {
    let mut documents: Vec<String> = Vec::new();
    for line in text.lines() {
        if line == "---" {
            documents.push(String::new());
        } else {
            let current = documents.last_mut().expect("the stream opens with ---");
            current.push_str(line);
            current.push('\n');
        }
    }
    documents.iter().map(|d| yaml_value(d)).collect()
}

#[test]
fn yaml_output_carries_the_json_outputs_data() {
    let w = two_pools();
    for args in [
        &["status"][..],
        &["plan", "migrate", "pool-three", "--from", "default-pool"],
    ] {
        let json = w.plugin(&[args, &["-o", "json"]].concat());
        let yaml = w.plugin(&[args, &["-o", "yaml"]].concat());
        assert_eq!(json.status, yaml.status, "{args:?}\n{json}\n{yaml}");
        let json: serde_json::Value = serde_json::from_str(&json.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}):\n{json}"));
        assert!(!yaml.stdout.trim_start().starts_with('{'), "{yaml}");
        assert_eq!(yaml_value(&yaml.stdout), json, "{args:?}\n{yaml}");
    }

    // The event stream: one document per event, the same events and fields as -o json.
    let args = ["rollback", "pool-two", "--dry-run"];
    let json = w.plugin(&[&args[..], &["-o", "json"]].concat());
    let yaml = w.plugin(&[&args[..], &["-o", "yaml"]].concat());
    assert!(json.ok() && yaml.ok(), "{json}\n{yaml}");
    let json: Vec<serde_json::Value> = json
        .stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let yaml = yaml_documents(&yaml.stdout);
    // Times (also the plan's restartedAt stamp) and the process's own resource use differ
    // between the two runs.
    let comparable = |mut events: Vec<serde_json::Value>| {
        for event in &mut events {
            let event = event.as_object_mut().expect("an event is a mapping");
            event.remove("ts");
            event.remove("resources");
            if let Some(serde_json::Value::String(text)) = event.get_mut("text") {
                *text = text.replace(|c: char| c.is_ascii_digit(), "0");
            }
        }
        events
    };
    assert!(yaml.len() >= 2, "{yaml:?}");
    assert_eq!(yaml.last().unwrap()["event"], "result");
    assert_eq!(comparable(yaml), comparable(json));
}
