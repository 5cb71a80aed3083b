//! Completion of a partial command line, answered by the program itself.
//!
//! Two callers ask the same question, "what can the word under the cursor be?":
//! kubectl 1.26+ runs `kubectl_complete-zdupgrade WORDS...` for `kubectl zdupgrade <TAB>`, and
//! the shell scripts printed by `kubectl-zdupgrade completion SHELL` run
//! `kubectl-zdupgrade __complete WORDS...`. WORDS are the arguments after the program name,
//! the last one being the word under the cursor (empty when a new word starts). The answer is
//! what kubectl expects of a plugin's completer (cobra's `__complete` output): one candidate a
//! line, `value<TAB>description`, then a last line `:N` with N a cobra ShellCompDirective.
//!
//! Subcommands, flags and fixed values are read from the clap definition in [`crate::cli`], so
//! completion cannot drift from what the parser accepts. Node-pool names, versions and kube
//! contexts are read live from the cluster ([`live`]), quickly and silently.

pub mod live;

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use clap::builder::ArgAction;
use clap::{Arg, CommandFactory};

use crate::cli::Cli;

/// One value offered for the word under the cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub value: String,
    /// Shown beside the value by shells that can (zsh, fish).
    pub help: Option<String>,
}

impl Candidate {
    pub fn new(value: impl Into<String>, help: Option<String>) -> Self {
        Candidate {
            value: value.into(),
            help,
        }
    }
}

/// Values that are not fixed by the CLI definition: read from the cluster when asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Node-pool names, from the nodes' `cloud.google.com/gke-nodepool` label (kubectl).
    Pools,
    /// Versions GKE offers for nodes at the cluster's location (gcloud).
    NodeVersions,
    /// Versions GKE offers for the control plane at the cluster's location (gcloud).
    MasterVersions,
    /// The kubeconfig's contexts (kubectl).
    Contexts,
    /// The nodes' labels as `key=value` selectors (kubectl), for `--from-selector` and
    /// `--to-selector`.
    NodeLabels,
}

/// The cluster-selection flags typed earlier on the line: live values are read from the
/// cluster they name, as the command itself would.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    pub context: Option<String>,
    pub kubeconfig: Option<String>,
    pub project: Option<String>,
    pub location: Option<String>,
}

impl Selection {
    /// Records `value` for the flag with id `id` if it selects the cluster.
    fn record(&mut self, id: &str, value: &str) {
        let slot = match id {
            "context" => &mut self.context,
            "kubeconfig" => &mut self.kubeconfig,
            "project" => &mut self.project,
            "location" => &mut self.location,
            _ => return,
        };
        *slot = Some(value.to_string());
    }
}

/// What the word under the cursor is completed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// These candidates, already matched against the word.
    Words(Vec<Candidate>),
    /// A file name: left to the shell, which completes paths best.
    Files,
    /// Values read from the cluster that start with `prefix`, each written after `lead` (the
    /// `--from=` of a `--from=po` word).
    Live {
        source: Source,
        selection: Selection,
        prefix: String,
        lead: String,
    },
}

/// cobra's ShellCompDirective bits, as kubectl passes them on to the shell.
pub mod directive {
    /// Let the shell do what it does by default (complete file names when no candidate).
    pub const DEFAULT: u8 = 0;
    /// Never fall back to file names.
    pub const NO_FILE_COMP: u8 = 4;
    /// Keep the candidates' order (definition order, versions newest first).
    pub const KEEP_ORDER: u8 = 32;
}

/// The candidates and directive sent back to the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub candidates: Vec<Candidate>,
    pub directive: u8,
}

/// Completes the last of `words` (the arguments after the program name).
pub fn answer(words: &[String]) -> Answer {
    let mut command = Cli::command();
    command.build();
    let (current, before) = match words.split_last() {
        Some((current, before)) => (current.as_str(), before),
        None => ("", &[][..]),
    };
    let mut walk = Walk::new(&command);
    for word in before {
        walk.step(word);
    }
    walk.complete(current)
}

/// [`answer`], with live values read from the cluster: what the caller prints.
pub fn reply(words: &[String]) -> Reply {
    let candidates = match answer(words) {
        Answer::Files => {
            return Reply {
                candidates: Vec::new(),
                directive: directive::DEFAULT,
            }
        }
        Answer::Words(candidates) => candidates,
        Answer::Live {
            source,
            selection,
            prefix,
            lead,
        } => live::values(source, &selection)
            .into_iter()
            .filter(|c| c.value.starts_with(&prefix))
            .map(|c| Candidate::new(format!("{lead}{}", c.value), c.help))
            .collect(),
    };
    Reply {
        candidates,
        directive: directive::NO_FILE_COMP | directive::KEEP_ORDER,
    }
}

/// Writes `reply` in the protocol kubectl expects of a plugin's completer.
pub fn write_reply(reply: &Reply, out: &mut dyn Write) -> std::io::Result<()> {
    for candidate in &reply.candidates {
        let value = one_line(&candidate.value);
        match candidate.help.as_deref().map(one_line) {
            Some(help) if !help.is_empty() => writeln!(out, "{value}\t{help}")?,
            _ => writeln!(out, "{value}")?,
        }
    }
    writeln!(out, ":{}", reply.directive)
}

/// The first line of `text`, tabs turned into spaces: one field of one protocol line.
fn one_line(text: &str) -> String {
    text.lines().next().unwrap_or("").replace('\t', " ")
}

/// Answers a completion request (`words` after the program name) on stdout and always
/// succeeds: a completer that fails or complains would print into the user's command line.
pub fn main(words: impl Iterator<Item = OsString>) -> ExitCode {
    let words: Vec<String> = words.map(|w| w.to_string_lossy().into_owned()).collect();
    std::panic::set_hook(Box::new(|_| {}));
    let reply = std::panic::catch_unwind(|| reply(&words)).unwrap_or(Reply {
        candidates: Vec::new(),
        directive: directive::NO_FILE_COMP,
    });
    let _ = write_reply(&reply, &mut std::io::stdout().lock());
    ExitCode::SUCCESS
}

/// Where an argument's values come from when they are not fixed (possible values), told by
/// its value name in the CLI definition: every `*POOL`, `VERSION` and `CONTEXT` argument,
/// present or future, is completed the same way.
fn source_of(command: &clap::Command, arg: &Arg) -> Option<Source> {
    let name = arg.get_value_names()?.first()?.as_str();
    match name {
        "POOL" => Some(Source::Pools),
        _ if name.ends_with("_POOL") => Some(Source::Pools),
        "VERSION" if command.get_name() == "upgrade-master" => Some(Source::MasterVersions),
        "VERSION" => Some(Source::NodeVersions),
        "CONTEXT" => Some(Source::Contexts),
        "SELECTOR" => Some(Source::NodeLabels),
        _ => None,
    }
}

/// Whether the argument's value is a file name (its value name is `FILE`).
fn is_file(arg: &Arg) -> bool {
    arg.get_value_names()
        .and_then(|names| names.first())
        .is_some_and(|name| name.as_str() == "FILE")
}

fn takes_value(arg: &Arg) -> bool {
    arg.get_action().takes_values()
}

/// May be given more than once (and so is offered again).
fn repeatable(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::Append | ArgAction::Count)
}

/// The words before the cursor, read as the parser would read them: which subcommand they
/// reach, how many positional values it got, whether a flag waits for its value, which flags
/// were given and which cluster they select.
struct Walk<'c> {
    command: &'c clap::Command,
    positionals: usize,
    /// A flag given without its value: the next word is that value.
    pending: Option<&'c Arg>,
    /// After `--`: every word is a positional value.
    escaped: bool,
    used: Vec<&'c clap::Id>,
    selection: Selection,
}

impl<'c> Walk<'c> {
    fn new(command: &'c clap::Command) -> Self {
        Walk {
            command,
            positionals: 0,
            pending: None,
            escaped: false,
            used: Vec::new(),
            selection: Selection::default(),
        }
    }

    fn long(&self, name: &str) -> Option<&'c Arg> {
        self.command.get_arguments().find(|arg| {
            arg.get_long_and_visible_aliases()
                .is_some_and(|longs| longs.contains(&name))
                || arg.get_all_aliases().is_some_and(|a| a.contains(&name))
        })
    }

    fn short(&self, c: char) -> Option<&'c Arg> {
        self.command.get_arguments().find(|arg| {
            arg.get_short_and_visible_aliases()
                .is_some_and(|shorts| shorts.contains(&c))
        })
    }

    /// A short flag with its value in the same word (`-ojson`, `-o=json`): the flag, the text
    /// before the value and the value.
    fn attached_short<'w>(&self, word: &'w str) -> Option<(&'c Arg, &'w str, &'w str)> {
        let shorts = word.strip_prefix('-')?;
        for (i, c) in shorts.char_indices() {
            let arg = self.short(c)?;
            if takes_value(arg) {
                let split = 1 + i + c.len_utf8();
                let split = split + usize::from(word[split..].starts_with('='));
                return Some((arg, &word[..split], &word[split..]));
            }
        }
        None
    }

    fn given(&mut self, arg: &'c Arg, value: Option<&str>) {
        self.used.push(arg.get_id());
        if !takes_value(arg) {
            return;
        }
        match value {
            Some(value) => self.selection.record(arg.get_id().as_str(), value),
            None => self.pending = Some(arg),
        }
    }

    fn step(&mut self, word: &str) {
        if let Some(arg) = self.pending.take() {
            self.selection.record(arg.get_id().as_str(), word);
        } else if self.escaped || word == "-" {
            self.positionals += 1;
        } else if word == "--" {
            self.escaped = true;
        } else if let Some(long) = word.strip_prefix("--") {
            let (name, value) = match long.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (long, None),
            };
            if let Some(arg) = self.long(name) {
                self.given(arg, value);
            }
        } else if let Some(shorts) = word.strip_prefix('-') {
            match self.attached_short(word) {
                Some((arg, _, value)) => self.given(arg, Some(value).filter(|v| !v.is_empty())),
                None => {
                    let flags: Vec<&'c Arg> =
                        shorts.chars().filter_map(|c| self.short(c)).collect();
                    self.used.extend(flags.iter().map(|arg| arg.get_id()));
                }
            }
        } else if let Some(sub) = self
            .command
            .has_subcommands()
            .then(|| self.command.find_subcommand(word))
            .flatten()
        {
            self.command = sub;
            self.positionals = 0;
        } else {
            self.positionals += 1;
        }
    }

    fn complete(&self, word: &str) -> Answer {
        if let Some(arg) = self.pending {
            return self.values(arg, word, "");
        }
        if !self.escaped && word.starts_with('-') {
            if let Some((name, value)) = word.strip_prefix("--").and_then(|l| l.split_once('=')) {
                return match self.long(name).filter(|arg| takes_value(arg)) {
                    Some(arg) => self.values(arg, value, &word[..word.len() - value.len()]),
                    None => Answer::Words(Vec::new()),
                };
            }
            if let Some((arg, lead, value)) = self.attached_short(word) {
                if !value.is_empty() || lead.ends_with('=') {
                    return self.values(arg, value, lead);
                }
            }
            return Answer::Words(self.flags(word));
        }
        if self.command.has_subcommands() && !self.escaped {
            return Answer::Words(self.subcommands(word));
        }
        let positional = self
            .command
            .get_positionals()
            .filter(|arg| !arg.is_hide_set())
            .nth(self.positionals);
        match positional {
            Some(arg) => self.values(arg, word, ""),
            // Nothing left to name: the flags, for a word not started yet.
            None if word.is_empty() && !self.escaped => Answer::Words(self.flags(word)),
            None => Answer::Words(Vec::new()),
        }
    }

    /// The values `arg` can take that start with `prefix`, each written after `lead`.
    fn values(&self, arg: &Arg, prefix: &str, lead: &str) -> Answer {
        if let Some(source) = source_of(self.command, arg) {
            return Answer::Live {
                source,
                selection: self.selection.clone(),
                prefix: prefix.to_string(),
                lead: lead.to_string(),
            };
        }
        if is_file(arg) {
            return Answer::Files;
        }
        let candidates = arg
            .get_possible_values()
            .iter()
            .filter(|value| !value.is_hide_set())
            .flat_map(|value| {
                let help = value.get_help().map(ToString::to_string);
                value
                    .get_name_and_aliases()
                    .map(move |name| Candidate::new(format!("{lead}{name}"), help.clone()))
                    .collect::<Vec<_>>()
            })
            .filter(|c| c.value[lead.len()..].starts_with(prefix))
            .collect();
        Answer::Words(candidates)
    }

    /// The current command's flags (long names, visible aliases, short names) that start with
    /// `prefix`, except those already given once that cannot be given again.
    fn flags(&self, prefix: &str) -> Vec<Candidate> {
        let mut flags = Vec::new();
        for arg in self.command.get_arguments() {
            if arg.is_positional()
                || arg.is_hide_set()
                || (!repeatable(arg) && self.used.contains(&arg.get_id()))
            {
                continue;
            }
            let help = arg.get_help().map(ToString::to_string);
            let longs = arg.get_long_and_visible_aliases().unwrap_or_default();
            let shorts = arg.get_short_and_visible_aliases().unwrap_or_default();
            let names = longs
                .iter()
                .map(|long| format!("--{long}"))
                .chain(shorts.iter().map(|short| format!("-{short}")));
            flags.extend(names.map(|name| Candidate::new(name, help.clone())));
        }
        flags.retain(|c| c.value.starts_with(prefix));
        flags
    }

    fn subcommands(&self, prefix: &str) -> Vec<Candidate> {
        self.command
            .get_subcommands()
            .filter(|sub| !sub.is_hide_set())
            .flat_map(|sub| {
                let help = sub.get_about().map(ToString::to_string);
                std::iter::once(sub.get_name())
                    .chain(sub.get_visible_aliases())
                    .map(move |name| Candidate::new(name, help.clone()))
                    .collect::<Vec<_>>()
            })
            .filter(|c| c.value.starts_with(prefix))
            .collect()
    }
}

#[cfg(test)]
mod tests;
