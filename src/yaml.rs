//! `-o yaml`: the documents and events that `-o json` prints, written as YAML.
//!
//! The data is what serde serialises for JSON (so both outputs always carry the same fields),
//! re-read into an order-keeping tree and written as block YAML. Writing YAML for JSON values
//! takes little: a string stays plain only when no YAML reader could take it for anything else
//! (a number, a boolean, null, a date, a flow or comment marker), and is double-quoted with
//! escapes otherwise. No YAML crate is needed at run time (serde_yaml is deprecated); the tests
//! read the output back with a YAML parser.

use std::fmt;
use std::io::Write;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Serialize;

/// A JSON value whose objects keep their keys' order (the fields' order in the structs).
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>),
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Node::Null, Node::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::String(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some((key, value)) = map.next_entry::<String, Node>()? {
            entries.push((key, value));
        }
        Ok(Node::Map(entries))
    }
}

/// `value` as one YAML document (without the `---` line), ending with a newline.
pub fn to_string<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<String> {
    let node: Node = serde_json::from_str(&serde_json::to_string(value)?)?;
    Ok(document(&node))
}

/// The YAML document of one line of JSON, keys in the order written.
pub fn from_json_text(json: &str) -> serde_json::Result<String> {
    let node: Node = serde_json::from_str(json)?;
    Ok(document(&node))
}

fn document(node: &Node) -> String {
    let mut out = String::new();
    if is_block(node) {
        block(node, 0, &mut out);
    } else {
        out.push_str(&inline(node));
        out.push('\n');
    }
    out
}

/// A non-empty mapping or sequence: written over several lines.
fn is_block(node: &Node) -> bool {
    match node {
        Node::Seq(items) => !items.is_empty(),
        Node::Map(entries) => !entries.is_empty(),
        _ => false,
    }
}

/// A value on the line of its key or dash.
fn inline(node: &Node) -> String {
    match node {
        Node::Null => "null".into(),
        Node::Bool(b) => b.to_string(),
        Node::Number(n) => number(n),
        Node::String(s) => scalar(s),
        Node::Seq(_) => "[]".into(),
        Node::Map(_) => "{}".into(),
    }
}

fn block(node: &Node, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match node {
        Node::Map(entries) => {
            for (key, value) in entries {
                out.push_str(&pad);
                out.push_str(&scalar(key));
                out.push(':');
                if is_block(value) {
                    out.push('\n');
                    block(value, indent + 2, out);
                } else {
                    out.push(' ');
                    out.push_str(&inline(value));
                    out.push('\n');
                }
            }
        }
        Node::Seq(items) => {
            for item in items {
                out.push_str(&pad);
                out.push_str("- ");
                if is_block(item) {
                    // The item's first line goes after the dash, the rest under it.
                    let mut nested = String::new();
                    block(item, indent + 2, &mut nested);
                    out.push_str(&nested[indent + 2..]);
                } else {
                    out.push_str(&inline(item));
                    out.push('\n');
                }
            }
        }
        other => {
            out.push_str(&pad);
            out.push_str(&inline(other));
            out.push('\n');
        }
    }
}

/// A JSON number as every YAML reader takes it: an exponent gets a decimal point and a sign
/// (`1e20` is a string to YAML 1.1 readers, `1.0e+20` a float to all).
fn number(n: &serde_json::Number) -> String {
    let text = n.to_string();
    match text.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => {
            let mantissa = if mantissa.contains('.') {
                mantissa.to_string()
            } else {
                format!("{mantissa}.0")
            };
            let exponent = if exponent.starts_with(['+', '-']) {
                exponent.to_string()
            } else {
                format!("+{exponent}")
            };
            format!("{mantissa}e{exponent}")
        }
        None => text,
    }
}

/// A string or key: plain when it starts with a letter or `/` and holds only letters, digits,
/// spaces and `._/-()` (not at its end a space), and is no YAML 1.1 or 1.2 boolean or null;
/// double-quoted otherwise.
fn scalar(text: &str) -> String {
    let plain = text.starts_with(|c: char| c.is_ascii_alphabetic() || c == '/')
        && !text.ends_with(' ')
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || " ._/-()".contains(c))
        && !matches!(
            text.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n" | "null"
        );
    if plain {
        text.to_string()
    } else {
        quoted(text)
    }
}

/// A YAML double-quoted scalar: `"` and `\` escaped, and every character YAML does not allow
/// as is (controls, line and paragraph separators, byte-order mark, non-characters) as `\uXXXX`
/// or its short escape.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control()
                || matches!(
                    c,
                    '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
                ) =>
            {
                out.push_str(&format!("\\u{:04X}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A writer that turns lines of JSON (the `-o json` event stream) into a YAML stream: each
/// line becomes a document opened by `---`, written (and flushed) as soon as its line ends.
pub struct YamlStream<W: Write> {
    out: W,
    line: Vec<u8>,
}

impl<W: Write> YamlStream<W> {
    pub fn new(out: W) -> Self {
        YamlStream {
            out,
            line: Vec::new(),
        }
    }

    fn write_document(&mut self, line: &[u8]) -> std::io::Result<()> {
        let text = String::from_utf8_lossy(line);
        if text.trim().is_empty() {
            return Ok(());
        }
        let yaml = from_json_text(&text)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        self.out.write_all(b"---\n")?;
        self.out.write_all(yaml.as_bytes())
    }
}

impl<W: Write> Write for YamlStream<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut rest = buf;
        while let Some(end) = rest.iter().position(|b| *b == b'\n') {
            self.line.extend_from_slice(&rest[..end]);
            let line = std::mem::take(&mut self.line);
            self.write_document(&line)?;
            rest = &rest[end + 1..];
        }
        self.line.extend_from_slice(rest);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// Read back with a YAML parser, the document equals the JSON value.
    fn round_trip(value: &Value) {
        let yaml = to_string(value).unwrap();
        let back: Value =
            serde_saphyr::from_str(&yaml).unwrap_or_else(|e| panic!("not YAML ({e}):\n{yaml}"));
        assert_eq!(&back, value, "{yaml}");
    }

    #[test]
    fn values_read_back_as_written() {
        round_trip(&json!({
            "name": "pool-two",
            "version": "1.30.5-gke.1014001",
            "minor": "1.30",
            "count": 3,
            "negative": -4,
            "ratio": 0.25,
            "huge": 1e20,
            "ok": true,
            "none": null,
            "empty_list": [],
            "empty_map": {},
            "words": ["yes", "No", "null", "~", "true", "off", "y", ""],
            "tricky": [
                "a: b", "# not a comment", "- dash", "key: ", " lead", "trail ", "x #y",
                "[flow]", "{flow}", "*alias", "&anchor", "!tag", "%directive", "@at", "`tick",
                "|", ">", "'single'", "\"double\"", "back\\slash", "tab\there",
                "two\nlines", "bell\u{7}", "nel\u{85}", "sep\u{2028}", "bom\u{feff}", "é ü 世界",
                "2025-01-31T12:00:00.123Z", "0x1F", "0o17", "1_000", ".5", "+1", "-1", "1e3",
                ".inf", "-.inf", ".nan", "<<", "=", "?", ":",
            ],
            "nested": [
                {"a": 1, "b": [1, [2, 3], {"c": "d"}]},
                [[], {}],
                [{"deep": {"deeper": ["x"]}}],
            ],
            "key with: colon": "v",
            "1.2": "numeric key",
            "true": "boolean key",
        }));
        for scalar in [json!("text"), json!(12), json!(null), json!([]), json!({})] {
            round_trip(&scalar);
        }
    }

    #[test]
    fn keys_keep_the_order_they_are_serialised_in() {
        #[derive(Serialize)]
        struct Doc {
            zulu: u8,
            alpha: Vec<&'static str>,
            mike: Option<u8>,
        }
        let yaml = to_string(&Doc {
            zulu: 1,
            alpha: vec!["pool-a", "1.30"],
            mike: None,
        })
        .unwrap();
        assert_eq!(
            yaml,
            "zulu: 1\nalpha:\n  - pool-a\n  - \"1.30\"\nmike: null\n"
        );
    }

    #[test]
    fn the_event_stream_is_one_document_per_line() {
        let mut stream = YamlStream::new(Vec::new());
        // Written in pieces, as a writer may be.
        stream
            .write_all(b"{\"ts\":\"2025-01-31T12:00:00.000Z\",\"event\":\"step_sta")
            .unwrap();
        stream
            .write_all(b"rted\",\"title\":\"Resolving: the cluster\"}\n{\"event\":\"result\",\"ok\":true}\n")
            .unwrap();
        let text = String::from_utf8(stream.out).unwrap();
        assert_eq!(
            text,
            "---\nts: \"2025-01-31T12:00:00.000Z\"\nevent: step_started\ntitle: \"Resolving: the cluster\"\n---\nevent: result\nok: true\n"
        );
    }
}
