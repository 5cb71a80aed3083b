//! `zdupgrade-sim serve --scenario FILE --dir DIR` runs a simulated GKE cluster until
//! interrupted; `zdupgrade-sim report --dir DIR` prints its report.

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
    /// Start the simulator and print the environment that points kubectl and gcloud at it.
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
            std::fs::write(dir.join("url"), &h.url)?;
            for (k, v) in h.env() {
                println!("export {k}={v}");
            }
            eprintln!("zdupgrade-sim: serving {} (Ctrl-C to stop)", h.url);
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
