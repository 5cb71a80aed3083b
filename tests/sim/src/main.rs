//! `zdupgrade-sim serve --scenario FILE --dir DIR` runs a simulated GKE cluster until
//! interrupted, and writes `DIR/env`, the environment that points kubectl, gcloud and the plugin
//! at it, for a shell to `source`; `zdupgrade-sim report --dir DIR` prints its report.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use zdupgrade_sim::{Scenario, SimHandle, SimOptions};

#[derive(Parser)]
#[command(
    name = "zdupgrade-sim",
    about = "A simulated GKE cluster for kubectl and gcloud"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start the simulator, write DIR/env (the environment that points kubectl and gcloud at it,
    /// for `source`) and print the same `export` lines on stdout.
    Serve {
        #[arg(long)]
        scenario: PathBuf,
        #[arg(long)]
        dir: PathBuf,
    },
    /// Print the report of a running simulator (event log, availability, requests) as JSON.
    Report {
        #[arg(long)]
        dir: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Serve { scenario, dir } => {
            let s = Scenario::load(&scenario)?;
            let dir = std::path::absolute(&dir)?;
            let h = SimHandle::start(
                s,
                SimOptions {
                    dir: Some(dir.clone()),
                },
            )?;
            let env = h.env();
            let env_file = dir.join("env");
            std::fs::write(&env_file, env_file_text(&h.url, &env))?;
            // Written last: a script waiting for the simulator waits for this file.
            std::fs::write(dir.join("url"), &h.url)?;
            for (k, v) in &env {
                println!("export {k}={}", shell_quote(v));
            }
            let source = shell_quote(&env_file.display().to_string());
            eprintln!("zdupgrade-sim: serving {} (Ctrl-C to stop)", h.url);
            eprintln!("zdupgrade-sim: environment written to {source}; in another shell:");
            eprintln!("  source {source}");
            loop {
                std::thread::park();
            }
        }
        Cmd::Report { dir } => {
            let url = std::fs::read_to_string(dir.join("url"))?;
            let report = http_get(url.trim(), "/sim/report")?;
            println!("{report}");
            Ok(())
        }
    }
}

/// The text of `DIR/env`: comments saying what it is for, then one `export` per variable of
/// `env` (KUBECONFIG, CLOUDSDK_CONFIG, HOME, ...). HOME moves into the simulator's directory, so
/// rustup and cargo are first pinned to the directories they use under the user's own HOME.
fn env_file_text(url: &str, env: &[(String, String)]) -> String {
    let mut text = format!(
        "# The simulated GKE cluster served at {url} by `zdupgrade-sim serve`.\n\
         # `source` this file to point kubectl, gcloud and kubectl-zdupgrade at it, never at your\n\
         # own clusters. It moves HOME too (so that kubectl's caches stay out of yours): use a\n\
         # shell you can leave (`bash`, then `source` this file; `exit` to get your settings back).\n\
         # rustup and cargo keep the directories they had under your own HOME:\n\
         : \"${{RUSTUP_HOME:=$HOME/.rustup}}\" \"${{CARGO_HOME:=$HOME/.cargo}}\"\n\
         export RUSTUP_HOME CARGO_HOME\n"
    );
    for (k, v) in env {
        text.push_str(&format!("export {k}={}\n", shell_quote(v)));
    }
    text
}

/// `value` as one word for a POSIX shell: unchanged when it holds only safe characters,
/// else in single quotes (a `'` inside becomes `'\''`).
fn shell_quote(value: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "/._-+:=,@%".contains(c);
    if !value.is_empty() && value.chars().all(safe) {
        value.to_string()
    } else {
        format!("'{}'", value.replace('\'', "'\\''"))
    }
}

/// A minimal HTTP/1.1 GET, enough for the simulator's own endpoint.
fn http_get(base: &str, path: &str) -> anyhow::Result<String> {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr)?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    let (head, body) = buf.split_once("\r\n\r\n").unwrap_or(("", &buf));
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = String::new();
        let mut rest = body;
        while let Some((len, after)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            out.push_str(&after[..n]);
            rest = &after[n + 2..];
        }
        return Ok(out);
    }
    Ok(body.to_string())
}
