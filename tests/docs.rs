//! The documentation's links hold: every relative link in `README.md`, `docs/*.md`,
//! `benches/README.md` and `tests/sim/README.md` points to a file or directory of the repository,
//! and every `#anchor` (`#anchor` in the same file, or `FILE.md#anchor`) names a heading of that
//! file, as GitHub makes anchors of headings. A section moved from one file to another must take
//! the links to it along; this test says which ones it left behind.
//!
//! Markdown is read only as far as links need: fenced code blocks and inline code are not
//! links, headings are the ATX ones (`## Title`), outside fenced code.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

/// The Markdown files whose links are checked, relative to the repository's root.
fn documentation_files(root: &Path) -> Vec<PathBuf> {
    let mut files = vec![
        PathBuf::from("README.md"),
        PathBuf::from("benches/README.md"),
        PathBuf::from("tests/sim/README.md"),
    ];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "md"))
                .map(|p| p.strip_prefix(root).unwrap().to_path_buf())
                .collect()
        })
        .unwrap_or_default();
    docs.sort();
    files.extend(docs);
    files
}

/// One link found in a Markdown file: its 1-based line and its target as written.
#[derive(Debug, PartialEq)]
struct Link {
    line: usize,
    target: String,
}

/// The lines of `markdown` that are not inside a fenced code block, with their 1-based numbers.
fn prose_lines(markdown: &str) -> Vec<(usize, &str)> {
    let mut fence: Option<(char, usize)> = None;
    let mut lines = Vec::new();
    for (index, line) in markdown.lines().enumerate() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        let marker = trimmed.chars().next().filter(|c| *c == '`' || *c == '~');
        let run = marker.map_or(0, |m| trimmed.chars().take_while(|c| *c == m).count());
        match (fence, marker) {
            (None, Some(m)) if run >= 3 && indent <= 3 => fence = Some((m, run)),
            (Some((m, n)), Some(c)) if c == m && run >= n && trimmed[run..].trim().is_empty() => {
                fence = None
            }
            (None, _) => lines.push((index + 1, line)),
            (Some(_), _) => {}
        }
    }
    lines
}

/// `line` with its inline code spans (`` `...` ``, any number of backticks) replaced by what
/// `code` makes of their content.
fn map_code_spans(line: &str, code: impl Fn(&str) -> String) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(start) = rest.find('`') {
        out.push_str(&rest[..start]);
        let ticks = rest[start..].chars().take_while(|c| *c == '`').count();
        let after = &rest[start + ticks..];
        // The span ends at the next run of exactly as many backticks.
        let mut from = 0;
        let end = loop {
            let Some(found) = after[from..].find('`') else {
                break None;
            };
            let at = from + found;
            let run = after[at..].chars().take_while(|c| *c == '`').count();
            if run == ticks {
                break Some(at);
            }
            from = at + run;
        };
        match end {
            Some(at) => {
                out.push_str(&code(&after[..at]));
                rest = &after[at + ticks..];
            }
            None => {
                // No closing run: the backticks are literal.
                out.push_str(&rest[start..start + ticks]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Every link target in `markdown`: inline links and images (`[text](target "title")`,
/// `[text](<target>)`) and reference definitions (`[label]: target`), outside code.
fn links(markdown: &str) -> Vec<Link> {
    let mut found = Vec::new();
    for (line_number, line) in prose_lines(markdown) {
        let text = map_code_spans(line, |code| " ".repeat(code.len() + 2));
        let trimmed = text.trim_start();
        if trimmed.starts_with('[') && text.len() - trimmed.len() <= 3 {
            if let Some(close) = trimmed.find("]:") {
                if let Some(target) = trimmed[close + 2..].split_whitespace().next() {
                    found.push(Link {
                        line: line_number,
                        target: target.trim_matches(['<', '>']).to_string(),
                    });
                    continue;
                }
            }
        }
        let mut rest = text.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let target = if let Some(inside) = after.strip_prefix('<') {
                inside.split('>').next().unwrap_or_default().to_string()
            } else {
                // Up to whitespace (a title follows) or the `)` that closes the link, counting
                // balanced parentheses inside the target.
                let mut depth = 0usize;
                let mut end = after.len();
                for (i, c) in after.char_indices() {
                    match c {
                        '(' => depth += 1,
                        ')' if depth == 0 => {
                            end = i;
                            break;
                        }
                        ')' => depth -= 1,
                        c if c.is_whitespace() => {
                            end = i;
                            break;
                        }
                        _ => {}
                    }
                }
                after[..end].to_string()
            };
            found.push(Link {
                line: line_number,
                target,
            });
            rest = after;
        }
    }
    found
}

/// GitHub's anchor for a heading's text: the text as rendered (inline code and emphasis
/// markers dropped, a link replaced by its text), lowercased, every character that is not a
/// letter, a digit, a space, `-` or `_` dropped, and each space turned into `-`.
fn slug(heading: &str) -> String {
    let rendered = map_code_spans(heading, str::to_string);
    let mut text = String::new();
    let mut rest = rendered.as_str();
    // `[text](target)` renders as `text`.
    while let Some(open) = rest.find('[') {
        let Some(close) = rest[open..].find("](").map(|c| open + c) else {
            break;
        };
        let Some(end) = rest[close..].find(')').map(|e| close + e) else {
            break;
        };
        text.push_str(&rest[..open]);
        text.push_str(&rest[open + 1..close]);
        rest = &rest[end + 1..];
    }
    text.push_str(rest);
    text.trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of `markdown`'s ATX headings; a repeated heading gets `-1`, `-2`, ... as on
/// GitHub.
fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut anchors = BTreeSet::new();
    for (_, line) in prose_lines(markdown) {
        let trimmed = line.trim_start();
        if line.len() - trimmed.len() > 3 {
            continue;
        }
        let level = trimmed.chars().take_while(|c| *c == '#').count();
        if !(1..=6).contains(&level) {
            continue;
        }
        let text = &trimmed[level..];
        if !(text.is_empty() || text.starts_with(' ') || text.starts_with('\t')) {
            continue;
        }
        // A closing sequence of `#`s (after a space) is not part of the heading.
        let text = text.trim();
        let text = match text.trim_end_matches('#') {
            stripped if stripped.is_empty() || stripped.ends_with(' ') => stripped.trim_end(),
            _ => text,
        };
        let base = slug(text);
        let mut anchor = base.clone();
        let mut n = 0;
        while anchors.contains(&anchor) {
            n += 1;
            anchor = format!("{base}-{n}");
        }
        anchors.insert(anchor);
    }
    anchors
}

/// `%20`-style escapes decoded (targets may escape spaces and other characters).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A target with a scheme (`https:`, `mailto:`, ...) leaves the repository: not checked here.
fn is_external(target: &str) -> bool {
    match target.split_once(':') {
        Some((scheme, _)) => {
            !scheme.is_empty()
                && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        }
        None => false,
    }
}

/// `path` with `.` and `..` resolved without touching the file system; `None` if it climbs
/// above its start.
fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::Normal(p) => out.push(p),
            Component::RootDir | Component::Prefix(_) => {}
        }
    }
    Some(out)
}

/// What is wrong with the links of `file` (relative to `root`), one message each.
fn broken_links(root: &Path, file: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(root.join(file))
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
    let here = file.parent().unwrap_or(Path::new(""));
    let mut problems = Vec::new();
    for link in links(&text) {
        let at = format!("{}:{}: link `{}`", file.display(), link.line, link.target);
        if link.target.is_empty() {
            problems.push(format!("{at}: empty target"));
            continue;
        }
        if is_external(&link.target) {
            continue;
        }
        let (path, anchor) = match link.target.split_once('#') {
            Some((path, anchor)) => (percent_decode(path), Some(percent_decode(anchor))),
            None => (percent_decode(&link.target), None),
        };
        let path = path.split('?').next().unwrap_or_default().to_string();
        let target_file = if path.is_empty() {
            Some(file.to_path_buf())
        } else if let Some(from_root) = path.strip_prefix('/') {
            normalize(Path::new(from_root))
        } else {
            normalize(&here.join(&path))
        };
        let Some(target_file) = target_file else {
            problems.push(format!("{at}: points outside the repository"));
            continue;
        };
        let on_disk = root.join(&target_file);
        if !on_disk.exists() {
            problems.push(format!("{at}: {} does not exist", target_file.display()));
            continue;
        }
        let Some(anchor) = anchor else { continue };
        if on_disk.is_dir() || on_disk.extension().is_none_or(|e| e != "md") {
            problems.push(format!(
                "{at}: an anchor into {}, which is not a Markdown file",
                target_file.display()
            ));
            continue;
        }
        let headings = anchors(&std::fs::read_to_string(&on_disk).unwrap());
        if !headings.contains(&anchor) {
            problems.push(format!(
                "{at}: {} has no heading with the anchor `#{anchor}` (its anchors: {})",
                target_file.display(),
                headings.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    problems
}

#[test]
fn every_relative_link_and_anchor_in_the_documentation_resolves() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = documentation_files(root);
    assert!(
        files.iter().any(|f| f.starts_with("docs")),
        "no docs/*.md found under {}",
        root.display()
    );
    let mut problems = Vec::new();
    let mut checked = 0;
    for file in &files {
        assert!(root.join(file).is_file(), "{} is missing", file.display());
        checked += links(&std::fs::read_to_string(root.join(file)).unwrap()).len();
        problems.extend(broken_links(root, file));
    }
    assert!(
        checked > 0,
        "no links found at all: the link reader is broken"
    );
    assert!(
        problems.is_empty(),
        "{} broken link(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn slugs_follow_githubs_rule() {
    assert_eq!(slug("Exit codes"), "exit-codes");
    assert_eq!(
        slug("`plan migrate`: what would break, before anything changes"),
        "plan-migrate-what-would-break-before-anything-changes"
    );
    assert_eq!(
        slug("`--strategy`: move before evicting"),
        "--strategy-move-before-evicting"
    );
    assert_eq!(
        slug("`-o json`: an event stream for CI"),
        "-o-json-an-event-stream-for-ci"
    );
    assert_eq!(
        slug("Why **not** [kubectl drain](x.md)?"),
        "why-not-kubectl-drain"
    );
    assert_eq!(slug("snake_case & 2 more"), "snake_case--2-more");
    let repeated = anchors("# Notes\n## Notes\n```\n# not a heading\n```\n### Notes ###\n");
    assert_eq!(
        repeated.into_iter().collect::<Vec<_>>(),
        ["notes", "notes-1", "notes-2"]
    );
}

#[test]
fn links_are_read_outside_code_only() {
    let text = "See [a](docs/a.md) and `[b](b.md)` and ![c](img/c.png \"title\").\n\
                ```sh\n[d](d.md)\n```\n\
                [e]: e.md#top\n\
                [f](<with space.md>) [g](https://example.com/x) [h](#here)\n";
    let targets: Vec<String> = links(text).into_iter().map(|l| l.target).collect();
    assert_eq!(
        targets,
        [
            "docs/a.md",
            "img/c.png",
            "e.md#top",
            "with space.md",
            "https://example.com/x",
            "#here"
        ]
    );
}

#[test]
fn broken_links_and_anchors_are_reported() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("docs")).unwrap();
    std::fs::write(
        root.path().join("docs/guide.md"),
        "# Guide\n\n## `migrate`: the steps\n\nBack to [the top](../README.md#project).\n",
    )
    .unwrap();
    std::fs::write(
        root.path().join("README.md"),
        "# Project\n\n## Install\n\n\
         [ok](docs/guide.md) [ok](docs/guide.md#migrate-the-steps) [ok](#install) [ok](docs/)\n\
         [missing file](docs/nope.md)\n\
         [missing anchor](docs/guide.md#migrate)\n\
         [missing local anchor](#usage)\n\
         [outside](../elsewhere.md)\n\
         [external](https://example.com/#anything)\n",
    )
    .unwrap();
    assert_eq!(
        broken_links(root.path(), Path::new("docs/guide.md")),
        Vec::<String>::new()
    );
    let problems = broken_links(root.path(), Path::new("README.md"));
    assert_eq!(problems.len(), 4, "{problems:#?}");
    assert!(problems[0].contains("README.md:6: link `docs/nope.md`: docs/nope.md does not exist"));
    assert!(problems[1].contains("no heading with the anchor `#migrate`"));
    assert!(problems[2].contains("README.md:8: link `#usage`"));
    assert!(problems[3].contains("points outside the repository"));
}

/// The event names docs/events.md lists: the first column of its tables (`` `name` ``).
fn documented_events(markdown: &str) -> Vec<String> {
    markdown
        .lines()
        .filter_map(|line| line.strip_prefix("| `")?.split_once('`'))
        .map(|(name, _)| name.to_string())
        .collect()
}

#[test]
fn events_md_lists_exactly_the_events_the_stream_carries() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("docs/events.md")).unwrap();
    let documented = documented_events(&text);
    let unique: BTreeSet<&str> = documented.iter().map(String::as_str).collect();
    assert_eq!(
        unique.len(),
        documented.len(),
        "an event listed twice: {documented:?}"
    );
    let emitted: BTreeSet<&str> = kubectl_zdupgrade::Event::ALL
        .iter()
        .map(|e| e.name())
        .collect();
    let missing: Vec<&&str> = emitted.difference(&unique).collect();
    let stale: Vec<&&str> = unique.difference(&emitted).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "docs/events.md misses {missing:?} and lists events the code has not: {stale:?}"
    );
}

#[test]
fn the_event_check_reads_the_table_rows() {
    let rows = "| event | who |\n|---|---|\n| `a_b` | x |\n| `c` | y |\ntext `d`\n";
    assert_eq!(documented_events(rows), vec!["a_b", "c"]);
}
