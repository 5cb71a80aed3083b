use super::*;

/// The words after the program name of a typed line: a line ending in a space has an empty
/// last word (a new word under the cursor).
fn words(line: &str) -> Vec<String> {
    let mut words: Vec<String> = line.split_whitespace().map(String::from).collect();
    if line.is_empty() || line.ends_with(' ') {
        words.push(String::new());
    }
    words
}

fn offered(line: &str) -> Vec<String> {
    match answer(&words(line)) {
        Answer::Words(candidates) => candidates.into_iter().map(|c| c.value).collect(),
        other => panic!("{line:?}: expected words, got {other:?}"),
    }
}

fn live(line: &str) -> (Source, Selection, String, String) {
    match answer(&words(line)) {
        Answer::Live {
            source,
            selection,
            prefix,
            lead,
        } => (source, selection, prefix, lead),
        other => panic!("{line:?}: expected live values, got {other:?}"),
    }
}

#[test]
fn subcommands_at_the_top_and_under_plan() {
    assert_eq!(
        offered(""),
        [
            "migrate",
            "rollback",
            "upgrade-nodes",
            "upgrade-master",
            "status",
            "plan",
            "completion",
            "help"
        ]
    );
    assert_eq!(offered("upg"), ["upgrade-nodes", "upgrade-master"]);
    assert_eq!(offered("plan "), ["migrate", "help"]);
    assert_eq!(offered("-q plan m"), ["migrate"]);
}

#[test]
fn flags_of_the_subcommand_including_the_global_ones() {
    assert_eq!(offered("migrate --stra"), ["--strategy"]);
    assert_eq!(offered("migrate pool-b --dry"), ["--dry-run"]);
    assert_eq!(offered("status --reg"), ["--region"]);
    let flags = offered("rollback pool-b -");
    for flag in [
        "--to",
        "--delete-new-pool",
        "--output",
        "-o",
        "--quiet",
        "-q",
    ] {
        assert!(flags.contains(&flag.to_string()), "{flag} in {flags:?}");
    }
    assert!(!flags.contains(&"--from".to_string()), "{flags:?}");
    // A flag already given is not offered again.
    assert!(offered("migrate p --yes --y").is_empty());
    assert_eq!(offered("migrate p -y --y"), Vec::<String>::new());
}

#[test]
fn a_new_word_after_the_positional_offers_the_flags() {
    let flags = offered("migrate pool-b ");
    assert!(flags.contains(&"--from".to_string()), "{flags:?}");
    assert!(flags.contains(&"--keep-old-pool".to_string()), "{flags:?}");
    // A value that takes free text offers nothing (no file names either).
    assert!(offered("migrate pool-b --num-nodes ").is_empty());
    assert!(offered("migrate pool-b --node-timeout 1").is_empty());
}

#[test]
fn fixed_values_with_their_help() {
    assert_eq!(offered("migrate p --strategy "), ["surge", "evict"]);
    assert_eq!(offered("rollback p --strategy e"), ["evict"]);
    assert_eq!(offered("migrate p --strategy=s"), ["--strategy=surge"]);
    assert_eq!(offered("-o "), ["text", "json", "yaml"]);
    assert_eq!(offered("status -o j"), ["json"]);
    assert_eq!(offered("status -oj"), ["-ojson"]);
    assert_eq!(
        offered("status --output="),
        ["--output=text", "--output=json", "--output=yaml"]
    );
    assert_eq!(
        offered("completion "),
        ["bash", "elvish", "fish", "powershell", "zsh"]
    );
    let Answer::Words(strategies) = answer(&words("migrate p --strategy ")) else {
        panic!()
    };
    assert!(
        strategies[0]
            .help
            .as_deref()
            .is_some_and(|h| h.contains("Rolling restart")),
        "{strategies:?}"
    );
}

#[test]
fn flags_that_took_their_value_are_passed_over() {
    // `-o json` and `--context=x` consume their value: `migrate` is still the subcommand.
    assert_eq!(offered("-o json mig"), ["migrate"]);
    assert_eq!(offered("-ojson mig"), ["migrate"]);
    assert_eq!(
        live("migrate --context=x --from ").0,
        Source::Pools,
        "the word after --from is its value"
    );
    // After `--` every word is a positional value.
    assert_eq!(live("migrate -- ").0, Source::Pools);
    assert!(offered("migrate -- p ").is_empty());
}

#[test]
fn pool_names_for_every_pool_argument() {
    for line in [
        "migrate ",
        "migrate p --from ",
        "plan migrate ",
        "plan migrate p --from ",
        "rollback ",
        "rollback p --to ",
        "upgrade-nodes ",
    ] {
        let (source, selection, prefix, lead) = live(line);
        assert_eq!(source, Source::Pools, "{line}");
        assert_eq!(selection, Selection::default(), "{line}");
        assert_eq!((prefix.as_str(), lead.as_str()), ("", ""), "{line}");
    }
    let (_, _, prefix, lead) = live("migrate p --from=def");
    assert_eq!((prefix.as_str(), lead.as_str()), ("def", "--from="));
    let (_, _, prefix, _) = live("rollback po");
    assert_eq!(prefix, "po");
}

#[test]
fn live_values_follow_the_cluster_named_earlier_on_the_line() {
    let (_, selection, _, _) = live("migrate --context ctx-a --kubeconfig=/tmp/k p --from ");
    assert_eq!(
        selection,
        Selection {
            context: Some("ctx-a".into()),
            kubeconfig: Some("/tmp/k".into()),
            ..Selection::default()
        }
    );
    // Before the subcommand too, as the parser accepts them there (and in any mix).
    for line in [
        "--context ctx-a --kubeconfig=/tmp/k migrate p --from ",
        "--context=ctx-a migrate --kubeconfig /tmp/k p --from ",
        "--kubeconfig /tmp/k plan --context ctx-a migrate p --from ",
    ] {
        let (source, selection, _, _) = live(line);
        assert_eq!(source, Source::Pools, "{line}");
        assert_eq!(selection.context.as_deref(), Some("ctx-a"), "{line}");
        assert_eq!(selection.kubeconfig.as_deref(), Some("/tmp/k"), "{line}");
    }
    let (_, selection, _, _) = live("--project proj --region r upgrade-master --version ");
    assert_eq!(selection.project.as_deref(), Some("proj"));
    assert_eq!(selection.location.as_deref(), Some("r"));
    // A flag given before the subcommand is not offered again after it; the rest are.
    assert!(offered("--context c status --cont").is_empty());
    assert_eq!(offered("--context c status --kube"), ["--kubeconfig"]);
    // They complete before the subcommand as after it.
    assert_eq!(live("--context ").0, Source::Contexts);
    assert_eq!(answer(&words("--kubeconfig ")), Answer::Files);
    assert_eq!(offered("--cont"), ["--context"]);
    // The `--zone`/`--region` aliases of --location count, as the parser reads them.
    let (source, selection, _, _) =
        live("upgrade-nodes p --project proj --zone europe-west1-b --version ");
    assert_eq!(source, Source::NodeVersions);
    assert_eq!(selection.project.as_deref(), Some("proj"));
    assert_eq!(selection.location.as_deref(), Some("europe-west1-b"));
}

#[test]
fn versions_contexts_and_files() {
    assert_eq!(live("upgrade-master --version ").0, Source::MasterVersions);
    assert_eq!(
        live("upgrade-nodes p --version 1.3").0,
        Source::NodeVersions
    );
    assert_eq!(live("migrate p --node-version ").0, Source::NodeVersions);
    assert_eq!(live("status --context ").0, Source::Contexts);
    assert_eq!(live("migrate --from-selector ").0, Source::NodeLabels);
    assert_eq!(
        live("rollback --from-selector g=o --to-selector=").0,
        Source::NodeLabels
    );
    assert_eq!(live("migrate p --context=gke").0, Source::Contexts);
    assert_eq!(answer(&words("status --kubeconfig ")), Answer::Files);
    assert_eq!(answer(&words("status --kubeconfig=")), Answer::Files);
}

#[test]
fn the_reply_is_what_kubectl_reads() {
    let reply = reply(&words("migrate p --strategy "));
    let mut out = Vec::new();
    write_reply(&reply, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("surge\tRolling restart"), "{text}");
    assert!(lines[1].starts_with("evict\t"), "{text}");
    assert_eq!(lines[2], ":36", "no file names, keep the order");
    let files = super::reply(&words("status --kubeconfig "));
    assert_eq!(
        files,
        Reply {
            candidates: Vec::new(),
            directive: directive::DEFAULT
        },
        "file names are left to the shell"
    );
    let mut out = Vec::new();
    write_reply(&files, &mut out).unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), ":0\n");
}

#[test]
fn a_reply_line_holds_one_candidate() {
    let reply = Reply {
        candidates: vec![Candidate::new("a\tb", Some("two\nlines".into()))],
        directive: 4,
    };
    let mut out = Vec::new();
    write_reply(&reply, &mut out).unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), "a b\ttwo\n:4\n");
}
