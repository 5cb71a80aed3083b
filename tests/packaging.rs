//! Packaging checks: the checked-in completion scripts match what the binary generates; the
//! release script packs archives that its krew manifest names truthfully (URL, sha256,
//! contents) and refuses, or with --only-available leaves out, what it cannot build here; and
//! `.krew.yaml`, krew-release-bot's template, is the one the script generates.

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;

const COMPLETIONS: &[(&str, &str)] = &[
    ("bash", "kubectl-zdupgrade.bash"),
    ("zsh", "_kubectl-zdupgrade"),
    ("fish", "kubectl-zdupgrade.fish"),
];

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn completion_files_match_the_cli() {
    let dir = root().join("completions");
    for (shell, file) in COMPLETIONS {
        let output = Command::cargo_bin("kubectl-zdupgrade")
            .unwrap()
            .args(["completion", shell])
            .output()
            .unwrap();
        assert!(output.status.success(), "completion {shell} failed");
        let generated = String::from_utf8(output.stdout).unwrap();
        let checked_in = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        assert!(
            generated == checked_in,
            "completions/{file} is out of date with the CLI; regenerate it:\n  cargo run -p kubectl-zdupgrade -- completion {shell} > completions/{file}"
        );
    }
}

/// One `- selector:` entry of `spec.platforms`, read line by line. In krew-release-bot's
/// template, `uri` is the URL given to `addURIAndSha` and `sha256` is empty.
#[derive(Debug, Default)]
struct Platform {
    os: String,
    arch: String,
    uri: String,
    sha256: String,
    bin: String,
    files: Vec<String>,
}

fn value(line: &str, key: &str) -> Option<String> {
    let rest = line
        .trim()
        .trim_start_matches("- ")
        .strip_prefix(key)?
        .strip_prefix(':')?;
    Some(rest.trim().trim_matches('"').to_string())
}

/// Checks what krew needs outside `spec.platforms` and returns the platforms.
fn parse_manifest(text: &str) -> Vec<Platform> {
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        value(lines[0], "apiVersion").as_deref(),
        Some("krew.googlecontainertools.github.com/v1alpha2")
    );
    assert!(lines
        .iter()
        .any(|l| value(l, "kind").as_deref() == Some("Plugin")));
    assert!(lines
        .iter()
        .any(|l| l.starts_with("  name:") && value(l, "name").as_deref() == Some("zdupgrade")));
    for key in ["version", "homepage", "shortDescription", "description"] {
        assert!(
            lines.iter().any(|l| l.starts_with(&format!("  {key}:"))),
            "spec.{key} missing"
        );
    }

    let caveats_start = lines
        .iter()
        .position(|l| l.starts_with("  caveats:"))
        .expect("spec.caveats");
    let caveats: String = lines[caveats_start + 1..]
        .iter()
        .take_while(|l| l.starts_with("    ") || l.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        caveats.contains("gcloud") && caveats.contains("kubectl"),
        "caveats must name gcloud and kubectl"
    );
    assert!(
        caveats.contains("kubectl_complete-zdupgrade"),
        "caveats must say how to get `kubectl zdupgrade <TAB>`"
    );

    let mut platforms: Vec<Platform> = Vec::new();
    let start = lines
        .iter()
        .position(|l| l.starts_with("  platforms:"))
        .expect("spec.platforms");
    for line in &lines[start + 1..] {
        if line.trim_start().starts_with("- selector:") {
            platforms.push(Platform::default());
        }
        let Some(p) = platforms.last_mut() else {
            continue;
        };
        if let Some(v) = value(line, "os") {
            p.os = v;
        } else if let Some(v) = value(line, "arch") {
            p.arch = v;
        } else if let Some(v) = value(line, "uri") {
            p.uri = v;
        } else if let Some(v) = value(line, "sha256") {
            p.sha256 = v;
        } else if let Some(v) = value(line, "bin") {
            p.bin = v;
        } else if let Some(v) = value(line, "from") {
            p.files.push(v);
        } else if let Some(call) = line.trim().strip_prefix("{{addURIAndSha \"") {
            p.uri = call.split('"').next().unwrap_or("").to_string();
        }
    }
    for p in &platforms {
        let exe = if p.os == "windows" { ".exe" } else { "" };
        assert_eq!(p.bin, format!("kubectl-zdupgrade{exe}"), "{p:?}");
        for file in [
            format!("kubectl-zdupgrade{exe}"),
            format!("kubectl_complete-zdupgrade{exe}"),
            "LICENSE".to_string(),
        ] {
            assert!(p.files.contains(&file), "{file} not installed: {p:?}");
        }
        assert!(
            p.uri.starts_with("https://github.com/") && p.uri.contains("/releases/download/"),
            "{p:?}"
        );
    }
    platforms
}

/// This machine as a krew platform (`linux/amd64`), if it is one the release builds.
fn host_platform() -> Option<String> {
    let os = match std::env::consts::OS {
        "macos" => "darwin",
        os @ ("linux" | "windows") => os,
        _ => return None,
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        _ => return None,
    };
    Some(format!("{os}/{arch}"))
}

/// Runs `scripts/release.sh ARGS`.
fn release(args: &[&str]) -> Output {
    std::process::Command::new("bash")
        .arg(root().join("scripts/release.sh"))
        .args(args)
        .output()
        .expect("bash runs the release script")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The directory of the binaries this test run built (debug), for `--prebuilt`: the release
/// test packs them instead of building in release mode.
fn built_binaries() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_kubectl-zdupgrade"));
    bin.parent().unwrap().to_path_buf()
}

fn sha256_hex(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn run_tool(program: &str, args: &[&str]) -> String {
    let output = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        text(&output.stderr)
    );
    text(&output.stdout)
}

#[test]
fn release_archives_are_what_the_manifest_names() {
    let Some(host) = host_platform() else {
        println!("SKIPPED: this machine is not one of the release platforms");
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let prebuilt = built_binaries();
    let args = [
        "--owner",
        "test-owner",
        "--out",
        out.path().to_str().unwrap(),
        "--platform",
        &host,
        "--prebuilt",
        prebuilt.to_str().unwrap(),
    ];
    let r = release(&args);
    assert!(r.status.success(), "{}", text(&r.stderr));
    let manifest = std::fs::read_to_string(out.path().join("zdupgrade.yaml")).unwrap();
    for placeholder in ["@VERSION@", "@HOMEPAGE@", "@PLATFORMS@"] {
        assert!(!manifest.contains(placeholder), "{manifest}");
    }
    assert!(
        manifest.contains(&format!("  version: v{VERSION}\n")),
        "{manifest}"
    );
    let platforms = parse_manifest(&manifest);
    assert_eq!(platforms.len(), 1, "{manifest}");
    let p = &platforms[0];
    assert_eq!(format!("{}/{}", p.os, p.arch), host);

    let base =
        format!("https://github.com/test-owner/kubectl-zdupgrade/releases/download/v{VERSION}/");
    let archive = p
        .uri
        .strip_prefix(&base)
        .expect("the URL of the version's release");
    assert!(archive.contains(&format!("v{VERSION}")), "{archive}");
    let mut written: Vec<String> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    assert_eq!(
        written,
        [archive, "zdupgrade.yaml"],
        "only what the manifest names"
    );

    let bytes = std::fs::read(out.path().join(archive)).unwrap();
    assert_eq!(
        p.sha256,
        sha256_hex(&bytes),
        "the listed sha256 is the archive's"
    );
    assert!(p.sha256.chars().any(|c| c != '0'), "{p:?}");

    let archive_path = out.path().join(archive);
    let archive_path = archive_path.to_str().unwrap();
    let listing = run_tool("tar", &["-tzf", archive_path]);
    let entries: Vec<&str> = listing.lines().collect();
    for file in p
        .files
        .iter()
        .map(String::as_str)
        .chain(["LICENSE", "README.md"])
        .chain(readme_link_targets().iter().map(String::as_str))
    {
        assert!(entries.contains(&file), "{file} not in {entries:?}");
    }
    // What krew would put on PATH is the plugin, of the version the manifest says.
    let unpacked = tempfile::tempdir().unwrap();
    run_tool(
        "tar",
        &[
            "-xzf",
            archive_path,
            "-C",
            unpacked.path().to_str().unwrap(),
        ],
    );
    let version = run_tool(
        unpacked.path().join(&p.bin).to_str().unwrap(),
        &["--version"],
    );
    assert_eq!(version.trim(), format!("kubectl zdupgrade {VERSION}"));

    // krew-release-bot's template names the same archive at the same place.
    let bot = release(&["--krew-bot-template", "--owner", "test-owner"]);
    assert!(bot.status.success(), "{}", text(&bot.stderr));
    let bot = text(&bot.stdout).replace("{{ .TagName }}", &format!("v{VERSION}"));
    let named = parse_manifest(&bot)
        .into_iter()
        .find(|b| b.os == p.os && b.arch == p.arch)
        .expect("the bot's template has this platform");
    assert_eq!(named.uri, p.uri);
}

/// A release platform none of whose Rust targets is installed here (`rustup target list
/// --installed`), if any.
fn unbuildable_platform(host: &str) -> Option<&'static str> {
    let installed = std::process::Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .ok()?;
    let installed = text(&installed.stdout);
    let targets: &[(&str, &[&str])] = &[
        ("darwin/arm64", &["aarch64-apple-darwin"]),
        ("darwin/amd64", &["x86_64-apple-darwin"]),
        (
            "windows/amd64",
            &["x86_64-pc-windows-msvc", "x86_64-pc-windows-gnu"],
        ),
        (
            "linux/arm64",
            &["aarch64-unknown-linux-musl", "aarch64-unknown-linux-gnu"],
        ),
    ];
    targets
        .iter()
        .find(|(platform, triples)| {
            *platform != host && triples.iter().all(|t| !installed.lines().any(|l| l == *t))
        })
        .map(|(platform, _)| *platform)
}

#[test]
fn platforms_that_cannot_be_built_here_fail_or_are_left_out() {
    let Some(host) = host_platform() else {
        println!("SKIPPED: this machine is not one of the release platforms");
        return;
    };
    let Some(missing) = unbuildable_platform(&host) else {
        println!("SKIPPED: every release platform's Rust target is installed here");
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let prebuilt = built_binaries();
    let mut args = vec![
        "--out",
        out.path().to_str().unwrap(),
        "--platform",
        missing,
        "--platform",
        &host,
        "--prebuilt",
        prebuilt.to_str().unwrap(),
    ];
    let r = release(&args);
    let stderr = text(&r.stderr);
    assert!(!r.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot build {missing}")) && stderr.contains("--only-available"),
        "{stderr}"
    );
    assert!(
        !out.path().join("zdupgrade.yaml").exists(),
        "no manifest after a failure"
    );

    args.push("--only-available");
    let r = release(&args);
    let stderr = text(&r.stderr);
    assert!(r.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("skipping {missing}")), "{stderr}");
    let manifest = std::fs::read_to_string(out.path().join("zdupgrade.yaml")).unwrap();
    let listed: Vec<String> = parse_manifest(&manifest)
        .iter()
        .map(|p| format!("{}/{}", p.os, p.arch))
        .collect();
    assert_eq!(listed, [host], "{manifest}");
}

#[test]
fn the_krew_bot_template_is_generated_from_the_manifest_template() {
    let r = release(&["--krew-bot-template"]);
    assert!(r.status.success(), "{}", text(&r.stderr));
    let generated = text(&r.stdout);
    let checked_in = std::fs::read_to_string(root().join(".krew.yaml")).unwrap_or_default();
    assert!(
        generated == checked_in,
        ".krew.yaml is out of date; regenerate it:\n  scripts/release.sh --krew-bot-template > .krew.yaml"
    );
    assert!(
        checked_in.contains("  version: {{ .TagName }}\n"),
        "{checked_in}"
    );
    let platforms = parse_manifest(&checked_in);
    let mut seen: Vec<String> = platforms
        .iter()
        .map(|p| format!("{}/{}", p.os, p.arch))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            "darwin/amd64",
            "darwin/arm64",
            "linux/amd64",
            "linux/arm64",
            "windows/amd64"
        ]
    );
    for p in &platforms {
        let extension = if p.os == "windows" { "zip" } else { "tar.gz" };
        let archive = format!(
            "/releases/download/{{{{ .TagName }}}}/kubectl-zdupgrade_{{{{ .TagName }}}}_{}_{}.{extension}",
            p.os, p.arch
        );
        assert!(p.uri.ends_with(&archive), "{p:?}");
        assert!(p.sha256.is_empty(), "the bot computes the sha256: {p:?}");
    }
}

/// The files of the repository the README links to (relative links, anchors dropped): an
/// archive carries each, so the README it ships does not point at nothing.
fn readme_link_targets() -> Vec<String> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let mut targets: Vec<String> = readme
        .split("](")
        .skip(1)
        .filter_map(|rest| rest.split(')').next())
        .map(|link| link.split('#').next().unwrap_or("").to_string())
        .filter(|link| !link.is_empty() && !link.contains("://") && link.starts_with("docs/"))
        .collect();
    targets.sort();
    targets.dedup();
    assert!(
        !targets.is_empty(),
        "the README links to no file under docs/"
    );
    targets
}
