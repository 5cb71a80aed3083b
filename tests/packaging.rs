//! Packaging checks: the checked-in completion scripts match what the binary generates, and the
//! krew manifest has the structure krew expects.

use std::path::Path;

use assert_cmd::Command;

const COMPLETIONS: &[(&str, &str)] = &[
    ("bash", "kubectl-zdupgrade.bash"),
    ("zsh", "_kubectl-zdupgrade"),
    ("fish", "kubectl-zdupgrade.fish"),
];

#[test]
fn completion_files_match_the_cli() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("completions");
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

/// One `- selector:` entry of `spec.platforms`, read line by line.
#[derive(Debug, Default)]
struct Platform {
    os: String,
    arch: String,
    uri: String,
    sha256: String,
    bin: String,
}

fn value(line: &str, key: &str) -> Option<String> {
    let rest = line
        .trim()
        .trim_start_matches("- ")
        .strip_prefix(key)?
        .strip_prefix(':')?;
    Some(rest.trim().trim_matches('"').to_string())
}

#[test]
fn krew_manifest_structure() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("plugin-manifest/zdupgrade.yaml");
    let text = std::fs::read_to_string(path).unwrap();
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
        }
    }
    let mut seen: Vec<(String, String)> = platforms
        .iter()
        .map(|p| (p.os.clone(), p.arch.clone()))
        .collect();
    seen.sort();
    let expected: Vec<(String, String)> = [
        ("darwin", "amd64"),
        ("darwin", "arm64"),
        ("linux", "amd64"),
        ("linux", "arm64"),
        ("windows", "amd64"),
    ]
    .iter()
    .map(|(o, a)| (o.to_string(), a.to_string()))
    .collect();
    assert_eq!(seen, expected);
    for p in &platforms {
        assert!(
            p.uri.starts_with("https://github.com/") && p.uri.contains("/releases/download/"),
            "{p:?}"
        );
        assert!(
            p.sha256.len() == 64 && p.sha256.chars().all(|c| c.is_ascii_hexdigit()),
            "{p:?}"
        );
        let bin = if p.os == "windows" {
            "kubectl-zdupgrade.exe"
        } else {
            "kubectl-zdupgrade"
        };
        assert_eq!(p.bin, bin, "{p:?}");
    }
}
