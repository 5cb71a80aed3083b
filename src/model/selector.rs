//! Label selectors as kubectl's `-l` takes them (`group=old`, `tier!=db,env in (a,b),!spot`), and
//! [`NodeSet`]: the nodes a move empties or fills, named by a GKE node pool or by a selector.
//!
//! The selector is parsed here, before any call, so that a typo is refused with nothing changed,
//! and so that the plan can tell which of the nodes read are in which set. kubectl gets the
//! same text (`kubectl get nodes -l SELECTOR`) and so selects the same nodes.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::Node;

use super::node::POOL_LABEL;

/// One requirement of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    Absent(String),
}

impl Requirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::Absent(k) => !labels.contains_key(k),
        }
    }

    /// Whether only nodes with this label (an equality or a set) can match: a selector made of
    /// negations alone matches nearly everything, which a move must not take for a node group.
    fn selects(&self) -> bool {
        matches!(
            self,
            Requirement::Equals(..) | Requirement::In(..) | Requirement::Exists(_)
        )
    }
}

/// A parsed label selector; shown as the text it was parsed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelSelector {
    text: String,
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// Parses kubectl's selector syntax: requirements separated by commas, each `key=value`,
    /// `key==value`, `key!=value`, `key in (v1,v2)`, `key notin (v1,v2)`, `key` or `!key`.
    pub fn parse(text: &str) -> Result<LabelSelector, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("the selector is empty".into());
        }
        let requirements = split_requirements(text)?
            .iter()
            .map(|r| parse_requirement(r.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(LabelSelector {
            text: text.to_string(),
            requirements,
        })
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Whether the selector requires some label to be present (not only negations).
    pub fn selects_by_label(&self) -> bool {
        self.requirements.iter().any(Requirement::selects)
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Splits on the commas that are not inside a `( )` value list.
fn split_requirements(text: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        if !(0..=1).contains(&depth) {
            return Err(format!("unbalanced parentheses in {text:?}"));
        }
    }
    if depth != 0 {
        return Err(format!("unbalanced parentheses in {text:?}"));
    }
    parts.push(&text[start..]);
    Ok(parts)
}

fn parse_requirement(text: &str) -> Result<Requirement, String> {
    if text.is_empty() {
        return Err("an empty requirement (two commas in a row, or a trailing comma)".into());
    }
    if let Some(key) = text.strip_prefix('!') {
        return Ok(Requirement::Absent(key_of(key.trim())?));
    }
    for (op, make) in [
        (
            "!=",
            Requirement::NotEquals as fn(String, String) -> Requirement,
        ),
        ("==", Requirement::Equals),
        ("=", Requirement::Equals),
    ] {
        if let Some((key, value)) = text.split_once(op) {
            return Ok(make(key_of(key.trim())?, value_of(value.trim())?));
        }
    }
    let words: Vec<&str> = text.splitn(2, char::is_whitespace).collect();
    if let [key, rest] = words.as_slice() {
        let rest = rest.trim_start();
        for (op, make) in [
            (
                "notin",
                Requirement::NotIn as fn(String, Vec<String>) -> Requirement,
            ),
            ("in", Requirement::In),
        ] {
            if let Some(list) = rest.strip_prefix(op) {
                return Ok(make(key_of(key)?, value_list(list.trim())?));
            }
        }
        return Err(format!(
            "{text:?}: expected `key=value`, `key!=value`, `key in (...)`, `key notin (...)`, `key` or `!key`"
        ));
    }
    Ok(Requirement::Exists(key_of(text)?))
}

fn value_list(text: &str) -> Result<Vec<String>, String> {
    let inner = text
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .ok_or_else(|| format!("{text:?}: a value list is written `(v1,v2)`"))?;
    inner.split(',').map(|v| value_of(v.trim())).collect()
}

/// A label key: an optional DNS prefix and `/`, then a name of letters, digits, `-`, `_`, `.`.
fn key_of(text: &str) -> Result<String, String> {
    let name = text.rsplit_once('/').map_or(text, |(_, name)| name);
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/');
    if name.is_empty() || !text.chars().all(allowed) || text.len() > 316 {
        return Err(format!("{text:?} is not a valid label key"));
    }
    Ok(text.to_string())
}

/// A label value: empty, or letters, digits, `-`, `_`, `.`, at most 63.
fn value_of(text: &str) -> Result<String, String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if text.len() > 63 || !text.chars().all(allowed) {
        return Err(format!("{text:?} is not a valid label value"));
    }
    Ok(text.to_string())
}

/// The nodes a move empties or fills: a GKE node pool, or the nodes a label selector matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeSet {
    Pool(String),
    Selector(LabelSelector),
}

impl NodeSet {
    pub fn pool(name: &str) -> NodeSet {
        NodeSet::Pool(name.to_string())
    }

    /// The pool's name or the selector's text (the `pool` of the JSON events).
    pub fn name(&self) -> &str {
        match self {
            NodeSet::Pool(name) => name,
            NodeSet::Selector(selector) => selector.as_str(),
        }
    }

    /// What kubectl's `-l` takes to list these nodes.
    pub fn label_selector(&self) -> String {
        match self {
            NodeSet::Pool(name) => format!("{POOL_LABEL}={name}"),
            NodeSet::Selector(selector) => selector.to_string(),
        }
    }

    pub fn contains(&self, node: &Node) -> bool {
        let labels = node.metadata.labels.clone().unwrap_or_default();
        match self {
            NodeSet::Pool(name) => labels.get(POOL_LABEL) == Some(name),
            NodeSet::Selector(selector) => selector.matches(&labels),
        }
    }
}

/// `pool NAME` or `selector TEXT`: how messages name the set.
impl fmt::Display for NodeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeSet::Pool(name) => write!(f, "pool {name}"),
            NodeSet::Selector(selector) => write!(f, "selector {selector}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_requirement_matches_as_kubectl_does() {
        let old: BTreeMap<String, String> = serde_json::from_value(serde_json::json!(
            {"group": "old", "eks.amazonaws.com/nodegroup": "ng-1"}
        ))
        .unwrap();
        let new = BTreeMap::from([("group".to_string(), "new".to_string())]);
        let cases = [
            ("group=old", true, false),
            ("group==old", true, false),
            ("group!=old", false, true),
            ("group in (old, older)", true, false),
            ("group notin (old)", false, true),
            ("eks.amazonaws.com/nodegroup", true, false),
            ("!eks.amazonaws.com/nodegroup", false, true),
            ("group=old,eks.amazonaws.com/nodegroup=ng-1", true, false),
            (
                "group in (old,new),!eks.amazonaws.com/nodegroup",
                false,
                true,
            ),
            ("missing notin (x)", true, true),
        ];
        for (text, on_old, on_new) in cases {
            let s = LabelSelector::parse(text).unwrap();
            assert_eq!(
                (s.matches(&old), s.matches(&new)),
                (on_old, on_new),
                "{text}"
            );
        }
    }

    #[test]
    fn syntax_errors_are_refused_with_the_offending_part() {
        for bad in [
            "",
            "group=old,",
            "group in old",
            "group in (old",
            "gr oup=x",
            "group=o ld",
            "a=b)",
            "=old",
        ] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad:?} parsed");
        }
        let e = LabelSelector::parse("group=old,tier=a b").unwrap_err();
        assert!(e.contains("\"a b\""), "{e}");
    }

    #[test]
    fn only_negations_select_no_group() {
        assert!(LabelSelector::parse("group=old")
            .unwrap()
            .selects_by_label());
        assert!(LabelSelector::parse("group").unwrap().selects_by_label());
        assert!(!LabelSelector::parse("group!=new")
            .unwrap()
            .selects_by_label());
        assert!(!LabelSelector::parse("!group").unwrap().selects_by_label());
    }

    #[test]
    fn a_node_set_names_itself_and_what_kubectl_selects() {
        let pool = NodeSet::pool("default-pool");
        assert_eq!(pool.to_string(), "pool default-pool");
        assert_eq!(pool.name(), "default-pool");
        assert_eq!(
            pool.label_selector(),
            "cloud.google.com/gke-nodepool=default-pool"
        );
        let set = NodeSet::Selector(LabelSelector::parse(" group=old ").unwrap());
        assert_eq!(set.to_string(), "selector group=old");
        assert_eq!(set.label_selector(), "group=old");
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n", "labels": {"group": "old"}}
        }))
        .unwrap();
        assert!(set.contains(&node) && !pool.contains(&node));
    }
}
