//! Completion, end to end: `kubectl_complete-zdupgrade` answering kubectl's plugin completion
//! protocol with live values from the simulated cluster, real `kubectl __complete` calling it,
//! and the shipped bash, zsh and fish scripts sourced in the real shells.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{kubectl_wrapper, run, scenario, Run, World};

const COMPLETER: &str = "kubectl_complete-zdupgrade";

/// Gives each kubectl and gcloud call of a completion two minutes instead of seconds: these
/// tests check what is completed, not how fast, on a machine that may be busy.
fn patient(c: &mut std::process::Command) -> &mut std::process::Command {
    c.env(kubectl_zdupgrade::COMPLETION_TIMEOUT_VARIABLE, "120")
}

/// The basic cluster with a second pool, so that a pool list is more than one name.
fn two_pools() -> World {
    let mut s = scenario("basic");
    let mut second = s.pools[0].clone();
    second.name = "pool-two".into();
    second.nodes_per_zone = 1;
    s.pools.push(second);
    World::with_dispatcher(s)
}

/// The pools that have nodes, as the simulator holds them.
fn pools_with_nodes(w: &World) -> Vec<String> {
    let pools: BTreeSet<String> = w.node_pools().into_values().collect();
    pools.into_iter().collect()
}

pub(crate) fn complete(w: &World, words: &[&str]) -> Run {
    let mut c = w.command(COMPLETER, words);
    patient(&mut c);
    run(c, Duration::from_secs(300))
}

/// The candidates of a protocol reply (values only) and its directive; the reply must be well
/// formed: exit 0, nothing on stderr, a last line `:N`.
pub(crate) fn reply(r: &Run) -> (Vec<String>, u8) {
    assert!(r.ok() && r.stderr.is_empty(), "{r}");
    let mut lines: Vec<&str> = r.stdout.lines().collect();
    let directive = lines
        .pop()
        .and_then(|last| last.strip_prefix(':'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no directive line:\n{r}"));
    let values = lines
        .iter()
        .map(|line| line.split('\t').next().unwrap_or("").to_string())
        .collect();
    (values, directive)
}

/// `upgrade-nodes`/`upgrade-master` versions as gcloud lists them for the simulated cluster.
fn server_versions(w: &World, key: &str) -> Vec<String> {
    let r = w.gcloud(&[
        "container",
        "get-server-config",
        "--project=demo-project",
        "--location=us-central1-a",
        "--format=json",
    ]);
    assert!(r.ok(), "{r}");
    let config: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let versions: Vec<String> = config[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert!(!versions.is_empty(), "{config}");
    versions
}

#[test]
fn the_completer_lists_pools_for_every_pool_argument() {
    let w = two_pools();
    let pools = pools_with_nodes(&w);
    assert_eq!(pools.len(), 2, "{pools:?}");
    for words in [
        &["migrate", ""][..],
        &["migrate", "pool-three", "--from", ""],
        &["plan", "migrate", "pool-three", "--from", ""],
        &["rollback", ""],
        &["rollback", "pool-two", "--to", ""],
        &["upgrade-nodes", ""],
    ] {
        let (values, directive) = reply(&complete(&w, words));
        assert_eq!(values, pools, "{words:?}");
        assert_eq!(directive, 36, "no file names, order kept: {words:?}");
    }
    // Matched against what is typed, after `=` too.
    let (values, _) = reply(&complete(&w, &["migrate", "x", "--from=pool-"]));
    assert_eq!(values, ["--from=pool-two"]);
}

#[test]
fn kubectl_itself_calls_the_completer_for_kubectl_zdupgrade() {
    let w = two_pools();
    // kubectl's own completion entry point, as its shell scripts call it for
    // `kubectl zdupgrade migrate <TAB>`: it finds kubectl_complete-zdupgrade on PATH.
    let kubectl = |words: &[&str]| {
        let mut c = w.command("kubectl", words);
        patient(&mut c);
        run(c, Duration::from_secs(300))
    };
    let r = kubectl(&["__complete", "zdupgrade", "migrate", ""]);
    let (values, directive) = reply(&Run {
        stderr: String::new(),
        ..r
    });
    assert_eq!(values, pools_with_nodes(&w));
    assert_eq!(directive, 36);
    let r = kubectl(&["__complete", "zdupgrade", "migrate", "p", "--strat"]);
    assert!(r.stdout.starts_with("--strategy\t"), "{r}");
}

/// A kubeconfig with two contexts: `sim-local` (the simulated cluster) and `unreachable` (a
/// server nobody listens on), the current one.
fn two_context_kubeconfig(w: &World, dir: &Path) -> PathBuf {
    let original = std::fs::read_to_string(w.env_var("KUBECONFIG").unwrap()).unwrap();
    let server = original
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: "))
        .expect("the simulator's server")
        .to_string();
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n\
         - name: sim\n  cluster:\n    server: {server}\n\
         - name: dead\n  cluster:\n    server: http://127.0.0.1:1\n\
         contexts:\n\
         - name: sim-local\n  context:\n    cluster: sim\n    user: u\n\
         - name: unreachable\n  context:\n    cluster: dead\n    user: u\n\
         current-context: unreachable\n\
         users:\n- name: u\n  user:\n    token: simulated\n"
    );
    let path = dir.join("kubeconfig");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn live_values_follow_the_context_and_kubeconfig_on_the_line() {
    let w = two_pools();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = two_context_kubeconfig(&w, dir.path());
    let kubeconfig = kubeconfig.to_str().unwrap();

    let on_line = [
        "migrate",
        "--kubeconfig",
        kubeconfig,
        "--context",
        "sim-local",
        "",
    ];
    let (values, _) = reply(&complete(&w, &on_line));
    assert_eq!(values, pools_with_nodes(&w));

    // The same flags before the subcommand, as kubectl's own flags go.
    let before = [
        "--kubeconfig",
        kubeconfig,
        "--context",
        "sim-local",
        "migrate",
        "",
    ];
    let (values, _) = reply(&complete(&w, &before));
    assert_eq!(values, pools_with_nodes(&w));

    // Without --context, the kubeconfig's current context is unreachable: silently nothing.
    let r = complete(&w, &["migrate", "--kubeconfig", kubeconfig, ""]);
    assert_eq!(r.stdout, ":36\n", "{r}");
    assert!(r.ok() && r.stderr.is_empty(), "{r}");

    let (contexts, directive) = reply(&complete(
        &w,
        &["status", "--kubeconfig", kubeconfig, "--context", ""],
    ));
    let listed = w.kubectl(&[
        "--kubeconfig",
        kubeconfig,
        "config",
        "get-contexts",
        "-o",
        "name",
    ]);
    assert_eq!(
        contexts,
        listed.stdout.lines().collect::<Vec<_>>(),
        "{listed}"
    );
    assert_eq!(contexts.len(), 2);
    assert_eq!(directive, 36);
    let (contexts, _) = reply(&complete(&w, &["status", "--context", ""]));
    assert_eq!(contexts, ["gke_demo-project_us-central1-a_demo"]);
}

#[test]
fn versions_come_from_gke_for_the_cluster_on_the_line() {
    let w = World::with_dispatcher(scenario("basic"));
    let node_versions = server_versions(&w, "validNodeVersions");
    let master_versions = server_versions(&w, "validMasterVersions");

    // Project and location from the current context's name (gke_PROJECT_LOCATION_CLUSTER).
    let (values, directive) = reply(&complete(&w, &["upgrade-nodes", "p", "--version", ""]));
    assert_eq!(values, node_versions);
    assert_eq!(directive, 36);
    let (values, _) = reply(&complete(&w, &["migrate", "p", "--node-version", ""]));
    assert_eq!(values, node_versions);
    let (values, _) = reply(&complete(&w, &["upgrade-master", "--version", ""]));
    assert_eq!(values, master_versions);

    // A context whose name says nothing: only the flags can tell where the cluster is.
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = two_context_kubeconfig(&w, dir.path());
    let kubeconfig = kubeconfig.to_str().unwrap();
    let anonymous = ["--kubeconfig", kubeconfig, "--context", "sim-local"];
    let mut words = vec!["upgrade-master"];
    words.extend(anonymous);
    words.extend(["--version", ""]);
    assert_eq!(reply(&complete(&w, &words)).0, Vec::<String>::new());
    let mut words = vec!["upgrade-master"];
    words.extend(anonymous);
    words.extend(["--project", "demo-project", "--zone", "us-central1-a"]);
    words.extend(["--version", "1.3"]);
    let (values, _) = reply(&complete(&w, &words));
    let expected: Vec<&String> = master_versions
        .iter()
        .filter(|v| v.starts_with("1.3"))
        .collect();
    assert_eq!(values.iter().collect::<Vec<_>>(), expected);
}

/// gcloud costs a second or more a call: the versions are asked once, then reused for
/// completion for ten minutes (per project, location and gcloud configuration).
#[test]
fn versions_are_asked_of_gke_once_and_reused_for_a_while() {
    let w = World::with_dispatcher(scenario("basic"));
    let real = which::which("gcloud").expect("gcloud on PATH");
    let dir = tempfile::tempdir().unwrap();
    let calls = dir.path().join("calls");
    let script = dir.path().join("gcloud");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\nexec '{}' \"$@\"\n",
            calls.display(),
            real.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let complete_versions = || {
        let mut c = w.command(COMPLETER, &["upgrade-master", "--version", ""]);
        patient(&mut c);
        let path = format!(
            "{}:{}:{}",
            dir.path().display(),
            w.bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        c.env("PATH", path);
        reply(&run(c, Duration::from_secs(300))).0
    };
    let asked = || {
        std::fs::read_to_string(&calls)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("get-server-config"))
            .count()
    };
    let master_versions = server_versions(&w, "validMasterVersions");
    assert_eq!(complete_versions(), master_versions);
    assert_eq!(asked(), 1);
    assert_eq!(complete_versions(), master_versions);
    assert_eq!(asked(), 1, "the second TAB asked gcloud again");
    // Older than ten minutes: asked again.
    let home = w.env_var("HOME").expect("HOME of the world");
    let cached = std::path::Path::new(&home).join(".cache/kubectl-zdupgrade");
    for entry in std::fs::read_dir(&cached).unwrap() {
        let touched = std::process::Command::new("touch")
            .args(["-d", "11 minutes ago"])
            .arg(entry.unwrap().path())
            .status()
            .unwrap();
        assert!(touched.success());
    }
    assert_eq!(complete_versions(), master_versions);
    assert_eq!(asked(), 2);
}

#[test]
fn a_hung_kubectl_is_killed_whole_and_the_answer_is_empty() {
    let w = World::with_dispatcher(scenario("basic"));
    let pid_file = tempfile::NamedTempFile::new().unwrap();
    // kubectl that never answers, with a child of its own (as Google's kubectl dispatcher has).
    let wrapper = kubectl_wrapper(&format!(
        "sleep 600 & echo $! > '{}'; wait; exit 0",
        pid_file.path().display()
    ));
    let mut c = w.command(COMPLETER, &["migrate", ""]);
    // Given 1 s, the call is stopped then, whatever the default limit.
    c.env(kubectl_zdupgrade::COMPLETION_TIMEOUT_VARIABLE, "1");
    let path = format!(
        "{}:{}:{}",
        wrapper.path().display(),
        w.bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    c.env("PATH", path);
    let r = run(c, Duration::from_secs(120));
    assert_eq!(r.stdout, ":36\n", "{r}");
    assert!(r.ok() && r.stderr.is_empty(), "{r}");
    // The group was sent SIGKILL; the child may take a moment to finish dying on a busy
    // machine, but it must not go on sleeping.
    let pid = std::fs::read_to_string(pid_file.path()).unwrap();
    let state = || {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).ok()?;
        stat.rsplit_once(") ")?.1.chars().next()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while let Some(alive) = state().filter(|s| *s != 'Z') {
        assert!(
            std::time::Instant::now() < deadline,
            "the wrapper's child {pid} outlived the completer (state {alive})"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A shell that sources a shipped script and completes typed lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shell {
    Bash,
    Zsh,
    Fish,
}

impl Shell {
    fn program(self) -> &'static str {
        match self {
            Shell::Bash => "bash",
            Shell::Zsh => "zsh",
            Shell::Fish => "fish",
        }
    }

    /// The shipped script, as checked in.
    fn script(self) -> PathBuf {
        let file = match self {
            Shell::Bash => "kubectl-zdupgrade.bash",
            Shell::Zsh => "_kubectl-zdupgrade",
            Shell::Fish => "kubectl-zdupgrade.fish",
        };
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("completions")
            .join(file)
    }

    /// Options for a shell that reads no startup file of the machine's.
    fn options(self) -> &'static [&'static str] {
        match self {
            Shell::Bash => &["--norc", "--noprofile"],
            Shell::Zsh => &["-f"],
            Shell::Fish => &["--no-config"],
        }
    }

    /// A program for the shell that sources the script, then for each line prints `>>> LINE`
    /// and the values it completes to, one a line. A request for the shell's own file-name
    /// completion prints `# files`.
    fn driver(self, lines: &[&str]) -> String {
        let script = self.script();
        let mut text = match self {
            // Readline calls the function registered by `complete -F` with COMP_LINE,
            // COMP_POINT, COMP_WORDS (split at blanks and COMP_WORDBREAKS such as `=`) and
            // COMP_CWORD set, and the word under the cursor and the one before as $2 and $3.
            Shell::Bash => format!(
                r#"source '{}'
function=$(complete -p kubectl-zdupgrade | sed -n 's/.*-F \([^ ]*\) .*/\1/p')
compopt() {{ [[ $* == *"-o default"* ]] && echo '# files'; return 0; }}
complete_line() {{
    printf '>>> %s\n' "$1"
    COMP_LINE=$1
    COMP_POINT=${{#1}}
    read -r -a COMP_WORDS <<< "${{1//=/ = }}"
    [[ $1 == *[[:blank:]=] ]] && COMP_WORDS+=("")
    COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
    COMPREPLY=()
    "$function" kubectl-zdupgrade "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
    (( ${{#COMPREPLY[@]}} )) && printf '%s\n' "${{COMPREPLY[@]}}"
    return 0
}}
"#,
                script.display()
            ),
            // Outside a completion widget `compadd` cannot run, so `_describe` and `_files`
            // (what the script calls with its candidates) print what they were given.
            Shell::Zsh => format!(
                r#"autoload -Uz compinit && compinit -u -D
source '{}'
function=$_comps[kubectl-zdupgrade]
_describe() {{
    local -a ignored
    zparseopts -D -E -a ignored V J t: 1 2 x o O
    local candidate
    for candidate in "${{(@P)2}}"; do print -r -- "${{candidate%%:*}}"; done
}}
_files() {{ print -r -- '# files'; }}
complete_line() {{
    print -r -- ">>> $1"
    words=("${{(@z)1}}")
    [[ $1 == *' ' ]] && words+=('')
    CURRENT=${{#words}}
    PREFIX=$words[-1]
    $function
    return 0
}}
"#,
                script.display()
            ),
            // fish completes a line given to `complete -C` as it would at the prompt.
            Shell::Fish => format!(
                r#"source '{}'
function complete_line
    echo ">>> $argv[1]"
    complete -C "$argv[1]" | string replace -r '\t.*' ''
    return 0
end
"#,
                script.display()
            ),
        };
        for line in lines {
            text.push_str(&format!("complete_line '{line}'\n"));
        }
        text
    }
}

/// Completes each of `lines` in `shell` with the shipped script; `None` (after saying why)
/// when the shell is not installed. Runs in a directory holding one file, `kubeconfig-a`.
fn shell_completions(w: &World, shell: Shell, lines: &[&str]) -> Option<Vec<Vec<String>>> {
    if which::which(shell.program()).is_err() {
        println!(
            "SKIPPED: {} is not installed (.ci/run installs it on CI with apt-get)",
            shell.program()
        );
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("kubeconfig-a"), "").unwrap();
    let driver = dir.path().join("driver");
    std::fs::write(&driver, shell.driver(lines)).unwrap();
    let mut args: Vec<&str> = shell.options().to_vec();
    args.push(driver.to_str().unwrap());
    let mut c = w.command(shell.program(), &args);
    patient(&mut c).current_dir(dir.path());
    let r = run(c, Duration::from_secs(600));
    assert!(r.ok(), "{r}");
    let mut blocks: Vec<Vec<String>> = Vec::new();
    for line in r.stdout.lines() {
        if line.starts_with(">>> ") {
            blocks.push(Vec::new());
        } else if let Some(block) = blocks.last_mut() {
            block.push(line.to_string());
        }
    }
    assert_eq!(blocks.len(), lines.len(), "{r}");
    Some(blocks)
}

/// Sources the shipped script of `shell` and checks what subcommands, flags, fixed values,
/// live values and file names complete to.
fn shipped_script_completes(shell: Shell) {
    let w = two_pools();
    let pools = pools_with_nodes(&w);
    // Bash replaces only what follows the `=` of `--from=po`; zsh and fish the whole word.
    let after_equals = |flag: &str, value: &str| match shell {
        Shell::Bash => value.to_string(),
        Shell::Zsh | Shell::Fish => format!("{flag}={value}"),
    };
    let files = || match shell {
        Shell::Bash | Shell::Zsh => vec!["# files".to_string()],
        Shell::Fish => vec!["kubeconfig-a".to_string()],
    };
    let cases: Vec<(&str, Vec<String>)> = vec![
        (
            "kubectl-zdupgrade upg",
            strings(&["upgrade-nodes", "upgrade-master"]),
        ),
        ("kubectl-zdupgrade plan ", strings(&["migrate", "help"])),
        ("kubectl-zdupgrade migrate --stra", strings(&["--strategy"])),
        (
            "kubectl-zdupgrade rollback p --delete-",
            strings(&["--delete-new-pool", "--delete-emptydir-data"]),
        ),
        (
            "kubectl-zdupgrade migrate p --strategy ",
            strings(&["surge", "evict"]),
        ),
        (
            "kubectl-zdupgrade migrate p --strategy=e",
            vec![after_equals("--strategy", "evict")],
        ),
        (
            "kubectl-zdupgrade status -o ",
            strings(&["text", "json", "yaml"]),
        ),
        ("kubectl-zdupgrade migrate ", pools.clone()),
        ("kubectl-zdupgrade rollback pool-two --to ", pools.clone()),
        (
            "kubectl-zdupgrade migrate p --from=pool-",
            vec![after_equals("--from", "pool-two")],
        ),
        ("kubectl-zdupgrade status --kubeconfig kube", files()),
        ("kubectl-zdupgrade migrate p --num-nodes ", Vec::new()),
    ];
    let lines: Vec<&str> = cases.iter().map(|(line, _)| *line).collect();
    let Some(got) = shell_completions(&w, shell, &lines) else {
        return;
    };
    for ((line, expected), got) in cases.iter().zip(&got) {
        // The order is the program's; which candidates, not how a shell sorts them, is checked.
        let mut got = got.clone();
        let mut expected = expected.clone();
        got.sort();
        expected.sort();
        assert_eq!(got, expected, "{shell:?}: {line:?}");
    }
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| v.to_string()).collect()
}

#[test]
fn the_bash_script_completes_in_bash() {
    shipped_script_completes(Shell::Bash);
}

#[test]
fn the_zsh_script_completes_in_zsh() {
    shipped_script_completes(Shell::Zsh);
}

#[test]
fn the_fish_script_completes_in_fish() {
    shipped_script_completes(Shell::Fish);
}
