//! How the migration tells the user what it is doing.
//!
//! The steps talk to the [`Reporter`] trait; only [`Printer`] knows about indicatif. Bars and
//! spinners are drawn only when stderr is a terminal and `--verbose` is off (so they never
//! interleave with command logs); otherwise every event is a plain timestamped line. Finished steps
//! always leave a permanent line. `NO_COLOR` turns colour off. With `-o json`, [`JsonLines`] keeps
//! that human output on stderr and writes one JSON object per event on stdout, for CI.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{json, Map, Value};

/// Events the migration steps report. `Sync`: parallel drains report from several threads.
pub trait Reporter: Sync {
    /// A phase starts.
    fn step(&self, title: &str);
    /// Something finished: a permanent line.
    fn done(&self, message: &str);
    fn info(&self, message: &str);
    /// Detail a run does not need (shown with `--verbose`): long explanations, full commands.
    fn detail(&self, _message: &str) {}
    fn warn(&self, message: &str);
    /// A kubectl/gcloud command starts (shown with `--verbose`).
    fn command_started(&self, command_line: &str);
    /// A kubectl/gcloud command ended (shown with `--verbose`).
    fn command_finished(&self, command_line: &str, code: Option<i32>);
    /// One line of a streamed command's output (shown with `--verbose`).
    fn command_output(&self, line: &str);
    /// The closing summary (stdout, so it can be kept; not shown with `--silent`).
    fn summary(&self, text: &str);
    /// A counter towards `total` ("nodes ready 2/3").
    fn progress(&self, label: &str, total: u64) -> Box<dyn Progress + '_>;
    /// An operation of unknown length, shown with its elapsed time.
    fn spinner(&self, label: &str) -> Box<dyn Progress + '_>;
    /// A machine-readable event (`node_cordoned`, `node_drained`, `pod_evicted`,
    /// `operation_progress`, ...) with its fields, for `-o json`. Human reporters ignore it.
    fn event(&self, _event: Event, _fields: serde_json::Value) {}
    /// A `--dry-run` plan: the command's whole output (stdout, shown even with `--silent`).
    fn plan(&self, text: &str) {
        print!("{text}");
    }
}

/// Defines [`Event`] with each variant's name in the stream.
macro_rules! events {
    ($($variant:ident => $name:literal,)*) => {
        /// Every event of the `-o json` stream; docs/events.md describes each (a test checks
        /// that it lists exactly these).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Event {
            $($variant,)*
        }

        impl Event {
            /// Every event, in name order.
            pub const ALL: &'static [Event] = &[$(Event::$variant,)*];

            /// Its name: the `event` field of its line.
            pub fn name(self) -> &'static str {
                match self {
                    $(Event::$variant => $name,)*
                }
            }
        }
    };
}

events! {
    BatchDrained => "batch_drained",
    BatchStarted => "batch_started",
    DeploymentMoved => "deployment_moved",
    DeploymentRestarted => "deployment_restarted",
    EvictionBlocked => "eviction_blocked",
    EvictionDisabled => "eviction_disabled",
    Finding => "finding",
    Interrupted => "interrupted",
    LockAcquired => "lock_acquired",
    LockReleased => "lock_released",
    LockTakenOver => "lock_taken_over",
    NodeAppeared => "node_appeared",
    NodeCordoned => "node_cordoned",
    NodeDrained => "node_drained",
    NodeUncordoned => "node_uncordoned",
    NodeUpgraded => "node_upgraded",
    OperationFinished => "operation_finished",
    OperationProgress => "operation_progress",
    OperationResult => "operation_result",
    OperationStarted => "operation_started",
    Plan => "plan",
    PodDeleted => "pod_deleted",
    PodEvicted => "pod_evicted",
    PoolCreated => "pool_created",
    PoolDeleted => "pool_deleted",
    Progress => "progress",
    ProgressFinished => "progress_finished",
    RestartUndone => "restart_undone",
    Result => "result",
    Retry => "retry",
    StepFinished => "step_finished",
    StepStarted => "step_started",
    StrategyRestored => "strategy_restored",
    Summary => "summary",
    SurgeRaised => "surge_raised",
    SurgeRestored => "surge_restored",
    Warning => "warning",
    WorkloadsHealthy => "workloads_healthy",
}

/// "1 pod", "3 pods": `n` and the noun that agrees with it.
pub fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A running progress indicator.
pub trait Progress {
    fn update(&self, position: u64, message: &str);
    /// Ends the indicator and leaves `message` as a permanent line.
    fn finish(&self, message: &str);
    /// Ends the indicator without a line (on failure; the error says what happened).
    fn abandon(&self);
}

/// Reports nothing; for tests and for code paths that must stay quiet.
pub struct Silent;

struct SilentProgress;

impl Progress for SilentProgress {
    fn update(&self, _: u64, _: &str) {}
    fn finish(&self, _: &str) {}
    fn abandon(&self) {}
}

impl Reporter for Silent {
    fn step(&self, _: &str) {}
    fn done(&self, _: &str) {}
    fn info(&self, _: &str) {}
    fn warn(&self, _: &str) {}
    fn command_started(&self, _: &str) {}
    fn command_finished(&self, _: &str, _: Option<i32>) {}
    fn command_output(&self, _: &str) {}
    fn summary(&self, _: &str) {}
    fn progress(&self, _: &str, _: u64) -> Box<dyn Progress + '_> {
        Box::new(SilentProgress)
    }
    fn spinner(&self, _: &str) -> Box<dyn Progress + '_> {
        Box::new(SilentProgress)
    }
    fn plan(&self, _: &str) {}
}

/// The terminal reporter: bars on a terminal, plain lines elsewhere.
pub struct Printer {
    bars: Option<MultiProgress>,
    verbose: bool,
    quiet: bool,
    color: bool,
    /// Print the summary and plans on stderr (stdout carries JSON).
    stderr_only: bool,
}

impl Printer {
    pub fn new(quiet: bool, verbose: bool) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let bars = (terminal && !verbose && !quiet)
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Printer {
            bars,
            verbose,
            quiet,
            color: terminal && !no_color,
            stderr_only: false,
        }
    }

    /// Leaves stdout to another writer: the summary and plans go to stderr too.
    pub fn stderr_only(mut self) -> Self {
        self.stderr_only = true;
        self
    }

    /// Prints a block of text on stdout (stderr with [`Printer::stderr_only`]), above the bars.
    fn block(&self, text: &str) {
        let print = || {
            if self.stderr_only {
                eprint!("{text}");
            } else {
                print!("{text}");
            }
        };
        match &self.bars {
            Some(multi) => multi.suspend(print),
            None => print(),
        }
    }

    fn paint(&self, ansi: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{ansi}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    fn line(&self, text: &str) {
        let line = match &self.bars {
            Some(_) => text.to_string(),
            None => format!("[{}] {text}", clock()),
        };
        match &self.bars {
            Some(multi) => multi.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }
}

/// The UTC time of day, `HH:MM:SSZ`, for plain log lines.
fn clock() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        % 86_400;
    format!("{:02}:{:02}:{:02}Z", secs / 3600, secs / 60 % 60, secs % 60)
}

/// `1m05s`, `42s`, `1h02m`: short human durations for progress and summaries.
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s / 60 % 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}.{}s", s, d.subsec_millis() / 100)
    }
}

impl Reporter for Printer {
    fn step(&self, title: &str) {
        if !self.quiet {
            self.line(&self.paint("1", &format!("==> {title}")));
        }
    }
    fn done(&self, message: &str) {
        if !self.quiet {
            self.line(&format!("{} {message}", self.paint("32", "✓")));
        }
    }
    fn info(&self, message: &str) {
        if !self.quiet {
            self.line(&format!("    {message}"));
        }
    }
    fn detail(&self, message: &str) {
        if self.verbose {
            self.line(&format!("    {message}"));
        }
    }
    fn warn(&self, message: &str) {
        self.line(&format!("{} {message}", self.paint("33", "warning:")));
    }
    fn command_started(&self, command_line: &str) {
        if self.verbose {
            self.line(&self.paint("2", &format!("$ {command_line}")));
        }
    }
    fn command_finished(&self, command_line: &str, code: Option<i32>) {
        if self.verbose {
            let how = code.map_or("killed by a signal".to_string(), |c| format!("exit {c}"));
            self.line(&self.paint("2", &format!("  {how}: {command_line}")));
        }
    }
    fn command_output(&self, line: &str) {
        if self.verbose {
            self.line(&format!("  | {line}"));
        }
    }
    fn summary(&self, text: &str) {
        if !self.quiet {
            self.block(text);
        }
    }
    fn plan(&self, text: &str) {
        self.block(text);
    }
    fn progress(&self, label: &str, total: u64) -> Box<dyn Progress + '_> {
        if self.quiet {
            return Box::new(SilentProgress);
        }
        match &self.bars {
            Some(multi) => {
                let bar = multi.add(ProgressBar::new(total));
                bar.set_style(
                    ProgressStyle::with_template(
                        "    {prefix} [{bar:30}] {pos}/{len} {elapsed:>4} {wide_msg}",
                    )
                    .expect("valid template")
                    .progress_chars("=> "),
                );
                bar.set_prefix(label.to_string());
                bar.enable_steady_tick(Duration::from_millis(250));
                Box::new(BarProgress {
                    bar,
                    multi: multi.clone(),
                    color: self.color,
                })
            }
            None => Box::new(PlainProgress {
                label: label.to_string(),
                total: Some(total),
                started: Instant::now(),
                last: Mutex::new(None),
                printer: self,
            }),
        }
    }
    fn spinner(&self, label: &str) -> Box<dyn Progress + '_> {
        if self.quiet {
            return Box::new(SilentProgress);
        }
        match &self.bars {
            Some(multi) => {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("    {spinner} {prefix} ({elapsed}) {wide_msg}")
                        .expect("valid template"),
                );
                bar.set_prefix(label.to_string());
                bar.enable_steady_tick(Duration::from_millis(120));
                Box::new(BarProgress {
                    bar,
                    multi: multi.clone(),
                    color: self.color,
                })
            }
            None => {
                self.info(&format!("{label} ..."));
                Box::new(PlainProgress {
                    label: label.to_string(),
                    total: None,
                    started: Instant::now(),
                    last: Mutex::new(None),
                    printer: self,
                })
            }
        }
    }
}

struct BarProgress {
    bar: ProgressBar,
    /// To print the final line above the other bars still running (parallel drains).
    multi: MultiProgress,
    color: bool,
}

impl Progress for BarProgress {
    fn update(&self, position: u64, message: &str) {
        self.bar.set_position(position);
        self.bar.set_message(message.to_string());
    }
    fn finish(&self, message: &str) {
        let took = human_duration(self.bar.elapsed());
        self.bar.finish_and_clear();
        let check = if self.color {
            "\x1b[32m✓\x1b[0m"
        } else {
            "✓"
        };
        self.multi
            .suspend(|| eprintln!("{check} {message} ({took})"));
    }
    fn abandon(&self) {
        self.bar.finish_and_clear();
    }
}

/// Plain-line progress: prints a line only when the position or the message changes.
struct PlainProgress<'a> {
    label: String,
    total: Option<u64>,
    started: Instant,
    last: Mutex<Option<(u64, String)>>,
    printer: &'a Printer,
}

impl Progress for PlainProgress<'_> {
    fn update(&self, position: u64, message: &str) {
        let mut last = self.last.lock().expect("not poisoned");
        let now = (position, message.to_string());
        if last.as_ref() == Some(&now) {
            return;
        }
        *last = Some(now);
        let count = match self.total {
            Some(total) => format!(" {position}/{total}"),
            None => String::new(),
        };
        let sep = if message.is_empty() { "" } else { ": " };
        self.printer
            .info(&format!("{}{count}{sep}{message}", self.label));
    }
    fn finish(&self, message: &str) {
        self.printer.done(&format!(
            "{message} ({})",
            human_duration(self.started.elapsed())
        ));
    }
    fn abandon(&self) {}
}

/// `-o json`: human output from the wrapped reporter (a [`Printer::stderr_only`], so on stderr),
/// plus one JSON object per line on `out` (stdout) for each step, warning, finished progress,
/// [`Reporter::event`] and the final result: `{"ts": RFC 3339 UTC, "event": NAME, ...fields}`.
/// Each line is flushed at once so a pipeline can follow the run live.
pub struct JsonLines<W: Write + Send> {
    human: Box<dyn Reporter>,
    out: Mutex<W>,
}

impl<W: Write + Send> JsonLines<W> {
    pub fn new(human: Box<dyn Reporter>, out: W) -> Self {
        JsonLines {
            human,
            out: Mutex::new(out),
        }
    }

    /// Writes one event line. Write errors (a closed pipe) are ignored: the run goes on, and the
    /// exit code still tells the outcome.
    fn emit(&self, event: Event, fields: Value) {
        let line = event_line(&rfc3339_now(), event.name(), fields);
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

#[cfg(test)]
impl<W: Write + Send> JsonLines<W> {
    /// Takes the writer back.
    pub fn into_inner(self) -> W {
        self.out.into_inner().unwrap_or_else(|e| e.into_inner())
    }
}

/// `{"ts": TS, "event": NAME, ...fields}`, in that order (a non-object `fields` becomes
/// `"value"`).
fn event_line(ts: &str, name: &str, fields: Value) -> String {
    let mut line = format!("{{\"ts\":{},\"event\":{}", json!(ts), json!(name));
    let fields = match fields {
        Value::Object(map) => map,
        Value::Null => Map::new(),
        other => Map::from_iter([("value".to_string(), other)]),
    };
    for (key, value) in fields.iter().filter(|(k, _)| *k != "ts" && *k != "event") {
        let _ = write!(line, ",{}:{value}", json!(key));
    }
    line.push('}');
    line
}

/// The current time, RFC 3339 in UTC with milliseconds: `2025-01-31T12:00:00.123Z`.
pub fn rfc3339_now() -> String {
    format!("{:.3}", jiff::Timestamp::now())
}

/// Emits the closing `result` event of a run: ok, or the error chain and its exit code, and
/// the plugin's own resource use.
pub fn report_result(reporter: &dyn Reporter, result: &anyhow::Result<()>) {
    let mut fields = match result {
        Ok(()) => json!({"ok": true, "error": null, "exit_code": 0}),
        Err(err) => json!({
            "ok": false,
            "error": format!("{err:#}"),
            "exit_code": crate::errors::exit_code(err),
        }),
    };
    fields["resources"] = match own_resources() {
        Some(r) => json!({"max_rss_kib": r.max_rss_kib, "cpu_seconds": r.cpu_seconds}),
        None => Value::Null,
    };
    reporter.event(Event::Result, fields);
}

/// What this process itself has used so far (not kubectl and gcloud, its children).
#[derive(Debug, Clone, Copy)]
pub struct Resources {
    /// Peak resident memory.
    pub max_rss_kib: u64,
    /// User plus system CPU time.
    pub cpu_seconds: f64,
}

impl Resources {
    /// "peak memory 21.3 MiB, CPU 1.4s".
    pub fn text(&self) -> String {
        format!(
            "peak memory {:.1} MiB, CPU {:.1}s",
            self.max_rss_kib as f64 / 1024.0,
            self.cpu_seconds
        )
    }
}

/// `getrusage(RUSAGE_SELF)`, with the peak memory of [`own_peak_rss_kib`] where there is one;
/// `None` where it does not exist (Windows) or fails.
#[cfg(unix)]
pub fn own_resources() -> Option<Resources> {
    // SAFETY: getrusage only writes the struct it is given, which is zeroed and ours.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return None;
        }
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    // Linux reports ru_maxrss in KiB, macOS in bytes.
    let divisor = if cfg!(target_os = "macos") { 1024 } else { 1 };
    Some(Resources {
        max_rss_kib: own_peak_rss_kib().unwrap_or(usage.ru_maxrss.max(0) as u64 / divisor),
        cpu_seconds: ((seconds(usage.ru_utime) + seconds(usage.ru_stime)) * 1000.0).round()
            / 1000.0,
    })
}

#[cfg(not(unix))]
pub fn own_resources() -> Option<Resources> {
    None
}

/// The peak resident memory of this program alone (Linux: `VmHWM` in /proc/self/status).
/// `ru_maxrss` also counts what the process ran before its last exec, and kubectl execs its
/// plugins: run as `kubectl zdupgrade`, it reports kubectl's own peak when that is higher.
#[cfg(unix)]
fn own_peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()
}

impl<W: Write + Send> Reporter for JsonLines<W> {
    fn step(&self, title: &str) {
        self.human.step(title);
        self.emit(Event::StepStarted, json!({ "title": title }));
    }
    fn done(&self, message: &str) {
        self.human.done(message);
        self.emit(Event::StepFinished, json!({ "message": message }));
    }
    fn info(&self, message: &str) {
        self.human.info(message);
    }
    fn detail(&self, message: &str) {
        self.human.detail(message);
    }
    fn warn(&self, message: &str) {
        self.human.warn(message);
        self.emit(Event::Warning, json!({ "message": message }));
    }
    fn command_started(&self, command_line: &str) {
        self.human.command_started(command_line);
    }
    fn command_finished(&self, command_line: &str, code: Option<i32>) {
        self.human.command_finished(command_line, code);
    }
    fn command_output(&self, line: &str) {
        self.human.command_output(line);
    }
    fn summary(&self, text: &str) {
        self.human.summary(text);
        self.emit(Event::Summary, json!({ "text": text.trim() }));
    }
    fn progress(&self, label: &str, total: u64) -> Box<dyn Progress + '_> {
        Box::new(JsonProgress {
            inner: self.human.progress(label, total),
            lines: self,
            label: label.to_string(),
            total: Some(total),
            started: Instant::now(),
            last: Mutex::new(None),
        })
    }
    fn spinner(&self, label: &str) -> Box<dyn Progress + '_> {
        Box::new(JsonProgress {
            inner: self.human.spinner(label),
            lines: self,
            label: label.to_string(),
            total: None,
            started: Instant::now(),
            last: Mutex::new(None),
        })
    }
    fn event(&self, event: Event, fields: Value) {
        self.human.event(event, fields.clone());
        self.emit(event, fields);
    }
    fn plan(&self, text: &str) {
        self.human.plan(text);
        self.emit(Event::Plan, json!({ "text": text }));
    }
}

/// A progress indicator that also emits `progress` (when the position or message changes) and
/// `progress_finished` events.
struct JsonProgress<'a, W: Write + Send> {
    inner: Box<dyn Progress + 'a>,
    lines: &'a JsonLines<W>,
    label: String,
    total: Option<u64>,
    started: Instant,
    last: Mutex<Option<(u64, String)>>,
}

impl<W: Write + Send> Progress for JsonProgress<'_, W> {
    fn update(&self, position: u64, message: &str) {
        self.inner.update(position, message);
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let now = (position, message.to_string());
        if last.as_ref() != Some(&now) {
            *last = Some(now);
            self.lines.emit(
                Event::Progress,
                json!({"label": self.label, "position": position, "total": self.total, "message": message}),
            );
        }
    }
    fn finish(&self, message: &str) {
        self.inner.finish(message);
        self.lines.emit(
            Event::ProgressFinished,
            json!({
                "label": self.label,
                "message": message,
                "seconds": (self.started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
            }),
        );
    }
    fn abandon(&self) {
        self.inner.abandon();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations() {
        assert_eq!(human_duration(Duration::from_millis(4200)), "4.2s");
        assert_eq!(human_duration(Duration::from_secs(65)), "1m05s");
        assert_eq!(human_duration(Duration::from_secs(3720)), "1h02m");
    }

    #[test]
    fn clock_is_time_of_day() {
        let c = clock();
        assert_eq!(c.len(), 9);
        assert!(c.ends_with('Z'));
    }

    fn lines_of(reporter: JsonLines<Vec<u8>>) -> Vec<Value> {
        String::from_utf8(reporter.into_inner())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
            .collect()
    }

    #[test]
    fn json_lines_one_object_per_event() {
        let r = JsonLines::new(Box::new(Silent), Vec::new());
        r.step("Cordoning pool default-pool");
        r.info("not an event");
        r.event(
            Event::NodeCordoned,
            json!({"node": "n1", "pool": "default-pool"}),
        );
        let bar = r.progress("n1 pods evicted", 2);
        bar.update(1, "pod a evicted");
        bar.update(1, "pod a evicted");
        bar.finish("node n1 drained");
        drop(bar);
        r.warn("careful");
        r.done("all done");
        report_result(
            &r,
            &Err(anyhow::Error::new(crate::errors::Error::Refused("no".into())).context("step x")),
        );
        let lines = lines_of(r);
        let names: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            [
                "step_started",
                "node_cordoned",
                "progress",
                "progress_finished",
                "warning",
                "step_finished",
                "result"
            ]
        );
        assert_eq!(lines[0]["title"], "Cordoning pool default-pool");
        assert_eq!(lines[1]["node"], "n1");
        assert_eq!(lines[2]["position"], 1);
        assert_eq!(lines[2]["total"], 2);
        assert_eq!(lines[3]["message"], "node n1 drained");
        assert_eq!(lines[6]["ok"], false);
        assert_eq!(lines[6]["error"], "step x: no");
        assert_eq!(lines[6]["exit_code"], 3);
        for line in &lines {
            let ts = line["ts"].as_str().unwrap();
            let parsed: jiff::Timestamp = ts.parse().unwrap();
            assert!(ts.ends_with('Z') && ts.len() == 24, "{ts}");
            assert!((jiff::Timestamp::now() - parsed).get_seconds() < 60);
        }
    }

    #[test]
    fn event_lines_start_with_time_and_name() {
        assert_eq!(
            event_line(
                "T",
                "node_cordoned",
                json!({"node": "n\"1", "event": "x", "a": [1]})
            ),
            r#"{"ts":"T","event":"node_cordoned","a":[1],"node":"n\"1"}"#
        );
        assert_eq!(
            event_line("T", "x", json!(3)),
            r#"{"ts":"T","event":"x","value":3}"#
        );
        assert_eq!(
            event_line("T", "x", Value::Null),
            r#"{"ts":"T","event":"x"}"#
        );
    }

    /// The peak is this program's and follows its own allocations.
    #[cfg(target_os = "linux")]
    #[test]
    fn own_peak_memory_follows_allocations() {
        let before = own_peak_rss_kib().expect("VmHWM on Linux");
        let touched = std::hint::black_box(vec![1u8; 64 << 20]);
        let after = own_peak_rss_kib().unwrap();
        assert!(after >= before + 60 * 1024, "{before} -> {after} KiB");
        drop(touched);
    }

    #[test]
    fn json_result_on_success() {
        let r = JsonLines::new(Box::new(Silent), Vec::new());
        report_result(&r, &Ok(()));
        let lines = lines_of(r);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["event"], "result");
        assert_eq!(lines[0]["ok"], true);
        assert_eq!(lines[0]["error"], Value::Null);
        // This test process has used some memory and CPU.
        let resources = &lines[0]["resources"];
        assert!(
            resources["max_rss_kib"].as_u64().unwrap() > 1000,
            "{resources}"
        );
        assert!(
            resources["cpu_seconds"].as_f64().unwrap() > 0.0,
            "{resources}"
        );
    }
}
