//! Command-line definition (clap derive). Parsing only validates syntax; it never starts a process.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::engine::evacuate::DrainSettings;
use crate::engine::target::ClusterFlags;
pub use crate::plan::MoveStrategy;
use crate::plan::{flags, Accepted, CloneFlags};
use crate::tools::kubectl::DrainOptions;

#[derive(Debug, Parser)]
#[command(
    name = "kubectl zdupgrade",
    bin_name = "kubectl zdupgrade",
    version,
    about = "Zero-downtime GKE upgrades: migrate workloads to a new node pool, node by node, gated on workload health"
)]
pub struct Cli {
    /// Answer yes to every confirmation prompt, as `--yes` does (gcloud's `--quiet`); needed
    /// when stdin is not a terminal. Commands that never ask ignore it.
    #[arg(long, short = 'q', global = true, help_heading = "Global options")]
    pub quiet: bool,

    /// Print only warnings and errors: no progress, no summary.
    #[arg(
        long,
        global = true,
        conflicts_with = "verbose",
        help_heading = "Global options"
    )]
    pub silent: bool,

    /// Print every kubectl/gcloud command line and its exit status (no progress bars).
    #[arg(long, short = 'v', global = true, help_heading = "Global options")]
    pub verbose: bool,

    /// `json`: one JSON object per line on stdout for each event (step started/finished, node
    /// cordoned/drained, pod evicted, operation progress) and a final result; human output
    /// stays on stderr (`status`, `plan migrate`: one JSON document). `yaml`: the same data as
    /// YAML, one `---` document per event.
    #[arg(
        long,
        short = 'o',
        global = true,
        value_enum,
        default_value_t = Output::Text,
        help_heading = "Global options"
    )]
    pub output: Output,

    /// Also accepted before the subcommand, as kubectl's own flags are
    /// (`kubectl zdupgrade --context X status`); each subcommand reads them from its own
    /// [`ClusterArgs`], where clap copies the values given here.
    #[command(flatten)]
    pub cluster: ClusterArgs,

    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per process: the size difference between variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Move every workload from a node pool to a new one (created as a clone), then delete the old pool; or, on any cluster, from the nodes of one label selector to another's.
    #[command(after_help = examples::MIGRATE)]
    Migrate(MigrateArgs),
    /// Undo a migration: uncordon the old pool, drain the new one node by node, optionally delete it.
    #[command(after_help = examples::ROLLBACK)]
    Rollback(RollbackArgs),
    /// Upgrade a pool in place (GKE surge upgrade) with extra capacity added first and restored after.
    #[command(after_help = examples::UPGRADE_NODES)]
    UpgradeNodes(UpgradeNodesArgs),
    /// Upgrade the control plane (first, before the nodes).
    #[command(after_help = examples::UPGRADE_MASTER)]
    UpgradeMaster(UpgradeMasterArgs),
    /// Versions, pools, unhealthy workloads and any migration in progress, with the command to continue.
    #[command(after_help = examples::STATUS)]
    Status(StatusArgs),
    /// Read-only preflight: what a command would trip over, found before anything changes.
    #[command(subcommand, after_help = examples::PLAN)]
    Plan(PlanCommand),
    /// Print a shell completion script.
    #[command(after_help = examples::COMPLETION)]
    Completion(CompletionArgs),
}

/// `kubectl zdupgrade plan ...`
#[derive(Debug, Subcommand)]
pub enum PlanCommand {
    /// What `migrate NEW_POOL` (same flags) would trip over: blockers, warnings and notes, each
    /// with the objects involved, what to do and the flag that accepts a blocker. Exit status 3
    /// while a blocker is not accepted by its flag.
    #[command(after_help = examples::PLAN_MIGRATE)]
    Migrate(MigrateArgs),
}

/// The "Examples:" section at the end of each subcommand's help. Each line that is not a
/// `#` comment is a command line that parses (a unit test checks it), up to a `>` or `|`.
mod examples {
    pub const MIGRATE: &str = "\
Examples:
  # What a migration would trip over, then every command it would run (changes nothing)
  kubectl zdupgrade plan migrate pool-b
  kubectl zdupgrade migrate pool-b --dry-run

  # Move everything from default-pool to a new pool-b on a newer version, then delete default-pool
  kubectl zdupgrade migrate pool-b --from default-pool --node-version 1.31.1-gke.1146000

  # In a pipeline (no terminal to confirm on): --yes, or --quiet as with gcloud; events as JSON
  kubectl zdupgrade migrate pool-b --yes -o json > migration-events.jsonl

  # Keep the old pool, cordoned, ready for a rollback; drain two nodes at a time
  kubectl zdupgrade migrate pool-b --keep-old-pool --max-parallel 2

  # Another cluster: the kube context goes before or after the subcommand, as with kubectl
  kubectl zdupgrade --context gke_acme_europe-west1_prod migrate pool-b

  # Not GKE (EKS, AKS, kops, kubeadm): new nodes labelled group=new brought up by you; no gcloud
  kubectl zdupgrade migrate --from-selector group=old --to-selector group=new --yes";

    pub const ROLLBACK: &str = "\
Examples:
  # What a rollback would run (changes nothing)
  kubectl zdupgrade rollback pool-b --dry-run

  # Move the workloads back from pool-b to default-pool
  kubectl zdupgrade rollback pool-b --to default-pool

  # Without a prompt, and delete pool-b once it is drained
  kubectl zdupgrade rollback pool-b --delete-new-pool --quiet

  # Undo a migration between node groups (the migration's own selectors)
  kubectl zdupgrade rollback --from-selector group=old --to-selector group=new";

    pub const UPGRADE_NODES: &str = "\
Examples:
  # What the upgrade would run (changes nothing)
  kubectl zdupgrade upgrade-nodes default-pool --dry-run

  # Upgrade default-pool to a given version with two extra nodes per zone meanwhile
  kubectl zdupgrade upgrade-nodes default-pool --version 1.31.1-gke.1146000 --surge 2 --yes";

    pub const UPGRADE_MASTER: &str = "\
Examples:
  # The version it would upgrade to and what it would run (changes nothing)
  kubectl zdupgrade upgrade-master --dry-run

  # Upgrade the control plane to a given version, without a prompt
  kubectl zdupgrade upgrade-master --version 1.31.1-gke.1146000 --yes

  # A zonal cluster: accept that its Kubernetes API is down during the upgrade
  kubectl zdupgrade upgrade-master --accept-api-downtime";

    pub const STATUS: &str = "\
Examples:
  # Versions, pools, unhealthy workloads and any migration in progress
  kubectl zdupgrade status

  # The same as a document, for scripts
  kubectl zdupgrade status -o json
  kubectl zdupgrade status -o yaml

  # Another cluster, named before the subcommand as with kubectl
  kubectl zdupgrade --context gke_acme_europe-west1_prod status

  # A migration between node groups, on any cluster (kubectl only)
  kubectl zdupgrade status --from-selector group=old --to-selector group=new";

    pub const PLAN: &str = "\
Examples:
  # What `migrate pool-b` would trip over, before anything changes
  kubectl zdupgrade plan migrate pool-b";

    pub const PLAN_MIGRATE: &str = "\
Examples:
  # What a migration from default-pool to a new pool-b would trip over
  kubectl zdupgrade plan migrate pool-b --from default-pool

  # With the new pool's machine type, as a document for scripts (exit status 3 on a blocker)
  kubectl zdupgrade plan migrate pool-b --machine-type e2-standard-8 -o json

  # Accept the local PersistentVolumes blocker, as migrate would with the same flag
  kubectl zdupgrade plan migrate pool-b --allow-local-volumes

  # Not GKE: the same checks against the nodes of another label selector
  kubectl zdupgrade plan migrate --from-selector group=old --to-selector group=new";

    pub const COMPLETION: &str = "\
Examples:
  # bash: for every new shell
  kubectl-zdupgrade completion bash > ~/.local/share/bash-completion/completions/kubectl-zdupgrade

  # zsh: into a directory of $fpath
  kubectl-zdupgrade completion zsh > ~/.zfunc/_kubectl-zdupgrade

  # fish
  kubectl-zdupgrade completion fish > ~/.config/fish/completions/kubectl-zdupgrade.fish";
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
    /// The same data as `json`: one YAML document (`status`, `plan migrate`), or a YAML
    /// stream of one `---` document per event.
    Yaml,
}

/// Which cluster to act on. Unset values come from the kube context's name
/// (`gke_PROJECT_LOCATION_CLUSTER`), then from gcloud's properties. Every flag is global: it may
/// stand before or after the subcommand.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Cluster selection")]
pub struct ClusterArgs {
    /// Google Cloud project of the cluster.
    #[arg(long, global = true, value_name = "PROJECT")]
    pub project: Option<String>,

    /// Zone or region of the cluster.
    #[arg(long, global = true, visible_aliases = ["zone", "region"], value_name = "LOCATION")]
    pub location: Option<String>,

    /// GKE cluster name.
    #[arg(long, global = true, value_name = "CLUSTER")]
    pub cluster: Option<String>,

    /// Kube context to use (passed to every kubectl call).
    #[arg(long, global = true, value_name = "CONTEXT", value_parser = non_empty)]
    pub context: Option<String>,

    /// Kubeconfig file to use (passed to every kubectl call).
    #[arg(long, global = true, value_name = "FILE", value_parser = non_empty)]
    pub kubeconfig: Option<String>,

    /// Limit for each request to the Kubernetes API (passed to every kubectl call); a kubectl
    /// call still running 10 s after it is stopped and, when safe, run again (without this
    /// flag: after 5 minutes).
    #[arg(
        long,
        global = true,
        value_name = "DURATION",
        value_parser = parse_duration,
        allow_hyphen_values = true
    )]
    pub request_timeout: Option<Duration>,
}

impl ClusterArgs {
    /// The flags as the engine takes them.
    pub fn flags(&self) -> ClusterFlags {
        ClusterFlags {
            project: self.project.clone(),
            location: self.location.clone(),
            cluster: self.cluster.clone(),
            context: self.context.clone(),
            kubeconfig: self.kubeconfig.clone(),
            request_timeout: self.request_timeout,
        }
    }
}

/// A value that must not be empty: `--kubeconfig ""` would otherwise be passed on as nothing,
/// and kubectl would use `$KUBECONFIG` instead (another cluster, maybe).
fn non_empty(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        Err("must not be empty (leave the flag out to use the default)".into())
    } else {
        Ok(text.to_string())
    }
}

/// The selector mode, for clusters other than GKE (or without gcloud): the old and the new
/// nodes named by label selectors instead of node pools. No pool is created or deleted, and
/// gcloud is not run.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Clusters other than GKE")]
pub struct SelectorArgs {
    /// Label selector of the nodes to move away from, as kubectl's -l takes it (`group=old`);
    /// with --to-selector, instead of node pools.
    #[arg(long, value_name = "SELECTOR", requires = "to_selector")]
    pub from_selector: Option<String>,

    /// Label selector of the nodes to move to (`group=new`); they must exist (or appear within
    /// --node-timeout) and match none of --from-selector's nodes.
    #[arg(long, value_name = "SELECTOR", requires = "from_selector")]
    pub to_selector: Option<String>,
}

impl SelectorArgs {
    /// The two selectors' texts, when the selector mode is asked for.
    pub fn given(&self) -> Option<(&str, &str)> {
        Some((self.from_selector.as_deref()?, self.to_selector.as_deref()?))
    }
}

#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    /// Name of the node pool to move workloads to (created as a clone of the old pool if missing).
    #[arg(
        value_name = "NEW_POOL",
        required_unless_present = "to_selector",
        conflicts_with_all = ["from_selector", "to_selector"],
        default_value = "",
        hide_default_value = true
    )]
    pub new_pool: String,

    /// The node pool to move away from (default: the only other pool).
    #[arg(long, value_name = "OLD_POOL", conflicts_with = "from_selector")]
    pub from: Option<String>,

    /// Confirm draining and deleting the old pool without being asked (needed when stdin is not a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,

    /// Only read the cluster and print the plan: every command that would run.
    #[arg(long)]
    pub dry_run: bool,

    /// Take over the cluster's lock (Lease kube-system/kubectl-zdupgrade) even if another run
    /// seems to hold it: only when that run is gone (a stale lock is taken over without it).
    #[arg(long)]
    pub break_lock: bool,

    /// Stop after draining: keep the old pool (cordoned), ready for a rollback.
    #[arg(long, conflicts_with = "from_selector")]
    pub keep_old_pool: bool,

    /// How long to wait for the new pool's nodes (--to-selector: for a Ready node to match) to
    /// be Ready.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "15m",
        value_parser = parse_duration,
        allow_hyphen_values = true
    )]
    pub node_timeout: Duration,

    /// Go on even if the old pool has settings the clone cannot reproduce.
    #[arg(long, conflicts_with = "from_selector")]
    pub allow_config_drift: bool,

    /// Go on even if pods use local PersistentVolumes (they cannot follow to the new pool).
    #[arg(long)]
    pub allow_local_volumes: bool,

    /// Go on even if the new pool looks too small for the pods that must move.
    #[arg(long)]
    pub allow_insufficient_capacity: bool,

    /// Go on even if some pods could not be scheduled on the new pool (labels, taints or zonal
    /// volumes it does not match).
    #[arg(long)]
    pub allow_unschedulable: bool,

    /// Machine type of the new pool (default: the old pool's).
    #[arg(long, value_name = "TYPE", conflicts_with = "from_selector")]
    pub machine_type: Option<String>,

    /// Nodes per zone in the new pool (default: the most the old pool has in any zone).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000), conflicts_with = "from_selector")]
    pub num_nodes: Option<u32>,

    /// Kubernetes version of the new pool (default: the control plane's).
    #[arg(long, value_name = "VERSION", conflicts_with = "from_selector")]
    pub node_version: Option<String>,

    /// Image type of the new pool (default: the old pool's).
    #[arg(long, value_name = "TYPE", conflicts_with = "from_selector")]
    pub image_type: Option<String>,

    /// Boot disk size in GB of the new pool (default: the old pool's).
    #[arg(long, value_name = "GB", value_parser = clap::value_parser!(u32).range(10..=65536), conflicts_with = "from_selector")]
    pub disk_size: Option<u32>,

    /// Boot disk type of the new pool (default: the old pool's).
    #[arg(long, value_name = "TYPE", conflicts_with = "from_selector")]
    pub disk_type: Option<String>,

    #[command(flatten)]
    pub drain: DrainArgs,

    #[command(flatten)]
    pub selectors: SelectorArgs,

    #[command(flatten)]
    pub cluster: ClusterArgs,
}

impl MigrateArgs {
    /// The blockers these flags accept.
    pub fn accepted(&self) -> Accepted {
        Accepted::given([
            (self.drain.force, flags::FORCE),
            (self.drain.delete_emptydir_data, flags::DELETE_EMPTYDIR_DATA),
            (self.allow_local_volumes, flags::ALLOW_LOCAL_VOLUMES),
            (
                self.allow_insufficient_capacity,
                flags::ALLOW_INSUFFICIENT_CAPACITY,
            ),
            (self.allow_unschedulable, flags::ALLOW_UNSCHEDULABLE),
            (self.allow_config_drift, flags::ALLOW_CONFIG_DRIFT),
            (
                self.drain.disable_eviction_after.is_some(),
                flags::DISABLE_EVICTION_AFTER,
            ),
        ])
    }

    /// What these flags change in the clone of the old pool.
    pub fn clone_flags(&self) -> CloneFlags<'_> {
        CloneFlags {
            num_nodes: self.num_nodes,
            machine_type: self.machine_type.as_deref(),
            node_version: self.node_version.as_deref(),
            image_type: self.image_type.as_deref(),
            disk_size: self.disk_size,
            disk_type: self.disk_type.as_deref(),
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct CompletionArgs {
    /// The shell to generate completions for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// The longest timeout accepted: anything longer is almost certainly a typo.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// Parses durations like `90s`, `10m`, `1h30m` (units h, m, s; at least one; no bare numbers).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration; use e.g. 90s, 10m or 1h".into());
    }
    if text.starts_with('-') {
        return Err(format!("{text:?}: a duration cannot be negative"));
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => {
                return Err(format!(
                    "{text:?}: unknown unit {c:?}; use h, m or s (e.g. 10m)"
                ))
            }
        };
        if digits.is_empty() {
            return Err(format!("{text:?}: expected a number before {c:?}"));
        }
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("{text:?}: number too large"))?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("{text:?}: too long"))?;
        digits.clear();
    }
    if !digits.is_empty() {
        return Err(format!(
            "{text:?}: missing unit after {digits}; use e.g. {digits}s or {digits}m"
        ));
    }
    let duration = Duration::from_secs(total);
    if duration.is_zero() {
        return Err(format!("{text:?}: must be longer than zero"));
    }
    if duration > MAX_DURATION {
        return Err(format!("{text:?}: longer than 24h"));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86400)));
        for bad in [
            "",
            "0s",
            "0m",
            "-5m",
            "10",
            "m",
            "5x",
            "25h",
            "1h1s1",
            "99999999999999999999h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn location_aliases_and_usage_name() {
        let cli = Cli::try_parse_from([
            "kubectl-zdupgrade",
            "migrate",
            "p2",
            "--zone",
            "europe-west1-b",
        ])
        .unwrap();
        let Command::Migrate(args) = cli.command else {
            panic!()
        };
        assert_eq!(args.cluster.location.as_deref(), Some("europe-west1-b"));
        assert_eq!(args.drain.drain_timeout, Duration::from_secs(600));
        let cli = Cli::try_parse_from(["x", "migrate", "p2", "--region", "us-central1"]).unwrap();
        let Command::Migrate(args) = cli.command else {
            panic!()
        };
        assert_eq!(args.cluster.location.as_deref(), Some("us-central1"));
        let help = Cli::command().render_usage().to_string();
        assert!(help.contains("kubectl zdupgrade"), "{help}");
        assert!(Cli::try_parse_from(["x", "migrate", "p2", "--node-timeout", "0s"]).is_err());
    }
}

#[cfg(test)]
mod position_tests {
    use super::*;

    fn parse(words: &[&str]) -> Cli {
        let argv = std::iter::once("kubectl-zdupgrade").chain(words.iter().copied());
        Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{words:?}: {e}"))
    }

    /// The cluster-selection flags of the parsed subcommand.
    fn cluster_of(cli: &Cli) -> &ClusterArgs {
        match &cli.command {
            Command::Migrate(a) | Command::Plan(PlanCommand::Migrate(a)) => &a.cluster,
            Command::Rollback(a) => &a.cluster,
            Command::UpgradeNodes(a) => &a.cluster,
            Command::UpgradeMaster(a) => &a.cluster,
            Command::Status(a) => &a.cluster,
            Command::Completion(_) => panic!("completion selects no cluster"),
        }
    }

    /// Every subcommand, nested ones too, with its path of names (`["plan", "migrate"]`).
    fn subcommands(
        command: &clap::Command,
        path: Vec<String>,
        out: &mut Vec<(Vec<String>, clap::Command)>,
    ) {
        for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
            let mut sub_path = path.clone();
            sub_path.push(sub.get_name().to_string());
            out.push((sub_path.clone(), sub.clone()));
            subcommands(sub, sub_path, out);
        }
    }

    #[test]
    fn every_subcommand_has_examples_that_parse() {
        use clap::CommandFactory;
        let mut all = Vec::new();
        subcommands(&Cli::command(), Vec::new(), &mut all);
        let names: Vec<String> = all.iter().map(|(path, _)| path.join(" ")).collect();
        for expected in ["migrate", "plan", "plan migrate", "completion", "status"] {
            assert!(names.contains(&expected.to_string()), "{names:?}");
        }
        for (path, command) in &all {
            let help = command
                .get_after_help()
                .map(ToString::to_string)
                .unwrap_or_default();
            assert!(
                help.starts_with("Examples:\n"),
                "{path:?} has no Examples section:\n{help}"
            );
            let mut count = 0;
            for line in help.lines().skip(1).map(str::trim) {
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let command_line = line.split(['>', '|']).next().unwrap_or_default();
                let words: Vec<&str> = command_line.split_whitespace().collect();
                let args = match words.as_slice() {
                    ["kubectl", "zdupgrade", args @ ..] | ["kubectl-zdupgrade", args @ ..] => args,
                    _ => panic!("{path:?}: {line:?} is not a kubectl zdupgrade command line"),
                };
                let argv = std::iter::once("kubectl-zdupgrade").chain(args.iter().copied());
                if let Err(err) = Cli::try_parse_from(argv) {
                    panic!("{path:?}: example {line:?} does not parse: {err}");
                }
                // Each subcommand's examples show that subcommand.
                assert!(
                    args.windows(path.len()).any(|w| w == path.as_slice()),
                    "{path:?}: {line:?}"
                );
                count += 1;
            }
            assert!(count > 0, "{path:?} has no example command line");
        }
    }

    #[test]
    fn quiet_answers_yes_and_silent_prints_less() {
        for words in [
            &["-q", "migrate", "p2"][..],
            &["migrate", "p2", "--quiet"],
            &["rollback", "p2", "-q"],
            &["--quiet", "upgrade-master"],
        ] {
            let cli = parse(words);
            assert!(cli.quiet && !cli.silent, "{words:?}");
        }
        // --quiet no longer means less output: it goes with --verbose; --silent does not.
        assert!(parse(&["migrate", "p2", "-q", "-v"]).verbose);
        assert!(parse(&["--silent", "status"]).silent);
        assert!(parse(&["status", "--silent"]).silent);
        let err = Cli::try_parse_from(["x", "status", "--silent", "--verbose"]).unwrap_err();
        assert!(err.to_string().contains("cannot be used with"), "{err}");
        // --silent has no short form (kubectl's -s is --server).
        assert!(Cli::try_parse_from(["x", "status", "-s"]).is_err());
    }

    #[test]
    fn cluster_flags_before_or_after_the_subcommand() {
        let flags = [
            "--context=ctx",
            "--kubeconfig=/tmp/kc",
            "--project=acme",
            "--zone=europe-west1-b",
            "--cluster=prod",
            "--request-timeout=30s",
        ];
        let subcommands: [&[&str]; 6] = [
            &["status"],
            &["migrate", "p2"],
            &["plan", "migrate", "p2"],
            &["rollback", "p2"],
            &["upgrade-nodes", "p1"],
            &["upgrade-master"],
        ];
        for sub in subcommands {
            let before: Vec<&str> = flags.iter().chain(sub).copied().collect();
            let after: Vec<&str> = sub.iter().chain(&flags).copied().collect();
            for words in [before, after] {
                let cli = parse(&words);
                let cluster = cluster_of(&cli);
                assert_eq!(cluster.context.as_deref(), Some("ctx"), "{words:?}");
                assert_eq!(cluster.kubeconfig.as_deref(), Some("/tmp/kc"), "{words:?}");
                assert_eq!(cluster.project.as_deref(), Some("acme"), "{words:?}");
                assert_eq!(cluster.location.as_deref(), Some("europe-west1-b"));
                assert_eq!(cluster.cluster.as_deref(), Some("prod"), "{words:?}");
                assert_eq!(cluster.request_timeout, Some(Duration::from_secs(30)));
            }
        }
        // Split across both sides, and between `plan` and `migrate`.
        let cli = parse(&["--context", "c1", "plan", "--region", "r", "migrate", "p2"]);
        let cluster = cluster_of(&cli);
        assert_eq!(cluster.context.as_deref(), Some("c1"));
        assert_eq!(cluster.location.as_deref(), Some("r"));
        // The values are checked wherever they stand.
        assert!(Cli::try_parse_from(["x", "--kubeconfig=", "status"]).is_err());
        assert!(Cli::try_parse_from(["x", "--request-timeout=0s", "status"]).is_err());
    }
}

/// How old nodes are drained: the flags `migrate` and `rollback` share (most are passed on to
/// `kubectl drain`).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Draining")]
pub struct DrainArgs {
    /// Also drain pods without a controller (they are lost), as `kubectl drain --force`.
    #[arg(long)]
    pub force: bool,

    /// Also drain pods with emptyDir volumes (their data is lost), as `kubectl drain --delete-emptydir-data`.
    #[arg(long)]
    pub delete_emptydir_data: bool,

    /// Seconds each pod gets to terminate (default: the pod's own), as `kubectl drain --grace-period`.
    #[arg(long, value_name = "SECS")]
    pub grace_period: Option<u32>,

    /// How long one node's drain may take (kubectl drain --timeout).
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "10m",
        value_parser = parse_duration,
        allow_hyphen_values = true
    )]
    pub drain_timeout: Duration,

    /// How long the displaced workloads may take to be fully ready again after a node's drain.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "10m",
        value_parser = parse_duration,
        allow_hyphen_values = true
    )]
    pub settle_timeout: Duration,

    /// After a node's drain has been blocked this long (e.g. by a PodDisruptionBudget that never
    /// allows an eviction), delete its remaining pods instead of evicting them, as
    /// `kubectl drain --disable-eviction`: this BYPASSES the PodDisruptionBudgets (each bypassed
    /// pod and budget is named in a warning). Off by default; must be shorter than --drain-timeout.
    #[arg(
        long,
        value_name = "DURATION",
        value_parser = parse_duration,
        allow_hyphen_values = true
    )]
    pub disable_eviction_after: Option<Duration>,

    /// Drain up to N nodes at once (preferring nodes of one zone), never more pods of one
    /// workload at a time than its PodDisruptionBudget (or, without one, its rollout strategy)
    /// allows; workload health is gated before and after each batch.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_parallel: u32,

    /// How Deployments leave a node: `surge` first moves each Deployment with pods on the node by
    /// a rolling restart (new pods start on the other pool before old ones stop; a strategy that
    /// could lower the ready count is set to maxUnavailable 0 meanwhile and restored after), then
    /// evicts what is left; `evict` only evicts, as `kubectl drain` does. A Deployment annotated
    /// kubectl-zdupgrade/move=evict is always evicted.
    #[arg(long, value_enum, value_name = "STRATEGY", default_value_t = MoveStrategy::Surge)]
    pub strategy: MoveStrategy,
}

impl DrainArgs {
    /// The drain settings these flags ask for (`migrate` and `rollback` share them).
    pub fn settings(&self) -> DrainSettings {
        DrainSettings {
            options: DrainOptions {
                force: self.force,
                delete_emptydir_data: self.delete_emptydir_data,
                grace_period: self.grace_period,
                timeout: self.drain_timeout,
            },
            settle_timeout: self.settle_timeout,
            disable_eviction_after: self.disable_eviction_after,
            max_parallel: self.max_parallel as usize,
            strategy: self.strategy,
        }
    }
}

/// `--strategy`'s values, with the help each shows (the enum itself is the plan's:
/// [`MoveStrategy`]).
impl clap::ValueEnum for MoveStrategy {
    fn value_variants<'a>() -> &'a [Self] {
        &[MoveStrategy::Surge, MoveStrategy::Evict]
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        use clap::builder::PossibleValue;
        Some(match self {
            MoveStrategy::Surge => PossibleValue::new("surge")
                .help("Rolling restart onto the other pool before the drain: no downtime"),
            MoveStrategy::Evict => PossibleValue::new("evict").help(
                "Evict and let the controller recreate the pod: down for a start-up if nothing else serves",
            ),
        })
    }
}

#[derive(Debug, Clone, Args)]
pub struct RollbackArgs {
    /// The pool a migration moved workloads to, to drain back.
    #[arg(
        value_name = "NEW_POOL",
        required_unless_present = "to_selector",
        conflicts_with_all = ["from_selector", "to_selector"],
        default_value = "",
        hide_default_value = true
    )]
    pub new_pool: String,

    /// The pool to move workloads back to (default: the only other pool).
    #[arg(long, value_name = "OLD_POOL", conflicts_with = "from_selector")]
    pub to: Option<String>,

    /// Confirm without being asked (required when stdin is not a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,

    /// Read only: print the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Take over the cluster's lock (Lease kube-system/kubectl-zdupgrade) even if another run
    /// seems to hold it: only when that run is gone (a stale lock is taken over without it).
    #[arg(long)]
    pub break_lock: bool,

    /// Delete NEW_POOL once it is drained.
    #[arg(long, conflicts_with = "from_selector")]
    pub delete_new_pool: bool,

    #[command(flatten)]
    pub drain: DrainArgs,

    /// The selectors of the migration to undo (the same as migrate's): the --from-selector
    /// nodes are uncordoned, the --to-selector nodes cordoned and drained.
    #[command(flatten)]
    pub selectors: SelectorArgs,

    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Debug, Clone, Args)]
pub struct UpgradeNodesArgs {
    /// The node pool to upgrade in place.
    #[arg(value_name = "POOL")]
    pub pool: String,

    /// Target version (default: the control plane's).
    #[arg(long, value_name = "VERSION")]
    pub version: Option<String>,

    /// Extra nodes per zone during the upgrade (GKE max surge); the original setting is restored after.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub surge: u32,

    /// Confirm without being asked (required when stdin is not a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,

    /// Read only: print the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// How long the whole upgrade may take.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "3h",
        value_parser = parse_duration,
        allow_hyphen_values = true
    )]
    pub timeout: Duration,

    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Debug, Clone, Args)]
pub struct UpgradeMasterArgs {
    /// Target version (default: the newest that get-server-config offers).
    #[arg(long, value_name = "VERSION")]
    pub version: Option<String>,

    /// Accept that a zonal cluster's Kubernetes API is down for minutes during the upgrade.
    #[arg(long)]
    pub accept_api_downtime: bool,

    /// Confirm without being asked (required when stdin is not a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,

    /// Read only: print the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// How long the upgrade may take.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "1h",
        value_parser = parse_duration,
        allow_hyphen_values = true
    )]
    pub timeout: Duration,

    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// A selector-mode migration's two node groups: their nodes, cordoned and drained, and
    /// the command that continues it; kubectl only, no gcloud.
    #[command(flatten)]
    pub selectors: SelectorArgs,

    #[command(flatten)]
    pub cluster: ClusterArgs,
}
