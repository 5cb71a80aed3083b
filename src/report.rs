//! How the migration tells the user what it is doing.
//!
//! The steps talk to the [`Reporter`] trait; only [`Printer`] knows about indicatif. Bars and
//! spinners are drawn only when stderr is a terminal and `--verbose` is off (so they never
//! interleave with command logs); otherwise every event is a plain timestamped line. Finished steps
//! always leave a permanent line. `NO_COLOR` turns colour off.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Events the migration steps report.
pub trait Reporter {
    /// A phase starts.
    fn step(&self, title: &str);
    /// Something finished: a permanent line.
    fn done(&self, message: &str);
    fn info(&self, message: &str);
    fn warn(&self, message: &str);
    /// A kubectl/gcloud command starts (shown with `--verbose`).
    fn command_started(&self, command_line: &str);
    /// A kubectl/gcloud command ended (shown with `--verbose`).
    fn command_finished(&self, command_line: &str, code: Option<i32>);
    /// One line of a streamed command's output (shown with `--verbose`).
    fn command_output(&self, line: &str);
    /// The closing summary (stdout, so it can be kept; not shown with `--quiet`).
    fn summary(&self, text: &str);
    /// A counter towards `total` ("nodes ready 2/3").
    fn progress(&self, label: &str, total: u64) -> Box<dyn Progress + '_>;
    /// An operation of unknown length, shown with its elapsed time.
    fn spinner(&self, label: &str) -> Box<dyn Progress + '_>;
    /// A machine-readable event (`node_cordoned`, `node_drained`, `pod_evicted`,
    /// `operation_progress`, ...) with its fields, for `-o json`. Human reporters ignore it.
    fn event(&self, _name: &str, _fields: serde_json::Value) {}
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
}

/// The terminal reporter: bars on a terminal, plain lines elsewhere.
pub struct Printer {
    bars: Option<MultiProgress>,
    verbose: bool,
    quiet: bool,
    color: bool,
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
            match &self.bars {
                Some(multi) => multi.suspend(|| print!("{text}")),
                None => print!("{text}"),
            }
        }
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
        eprintln!("{check} {message} ({took})");
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
}
