//! A node's evictions sent by the plugin itself ([`evict_node`]); `kubectl drain` only takes over
//! what they leave.
//!
//! `kubectl drain` holds a node's evictions and its per-pod polls (one per pod per second) to
//! kubectl's client-side limit of 5 requests per second ([`crate::tools::apiproxy`]): with 30
//! pods on a node, the drain's own pace, not the cluster's, decides how long it takes. So each
//! node's pods are evicted here first, through `kubectl proxy`, a few requests at a time
//! ([`EVICTIONS_AT_ONCE`]), and their deletion is followed by a watch of the node's pods:
//! - the API server's eviction decides, as for `kubectl drain`: a refusal (429, a
//!   PodDisruptionBudget allowing no disruption now) is tried again when a watch shows a budget
//!   covering the pod allowing one, and at least every [`RETRY_BLOCKED`] (kubectl's own pace);
//!   nothing is ever deleted here;
//! - each eviction names the pod's uid, so a StatefulSet's replacement (same name, new uid) is
//!   never evicted by mistake;
//! - only pods `kubectl drain` would evict with the same options are touched (not DaemonSet or
//!   mirror pods; a node with a pod it would refuse is left to it whole, to refuse as before);
//! - finished pods are removed too, as `kubectl drain` removes them;
//! - the evictions start from the node's list made for its batch (made again if that one came
//!   from kubectl, which gives no resourceVersion), and the watch of the node's pods starts at
//!   that list's resourceVersion: a pod gone since is seen gone, and a pod that reaches the
//!   node since (bound to it by name) is evicted or removed in turn; a node is done when the
//!   watch has shown every pod to evict or wait for gone, what a list made then would show
//!   and what `kubectl drain` would find (a new list only where the watch cannot tell, see
//!   [`LISTS`]);
//! - anything unexpected (an error, a watch that cannot start, the time of the attempt up)
//!   ends it: `kubectl drain` then runs as it always did and decides, with its messages and
//!   timeouts.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::errors::Error;
use crate::model::pod::Pod;
use crate::model::workloads::{
    classify, controller_of, has_empty_dir, pdbs_for_pod, pod_namespace_and_name as names, PodClass,
};
use crate::tools::apiproxy::{ApiClient, Response};
use crate::tools::kubectl::DrainOptions;

/// Evictions of one node in flight at once.
pub const EVICTIONS_AT_ONCE: usize = 4;
/// A refused eviction is tried again at least this often (kubectl drain's interval), and at
/// once when a budget covering the pod allows a disruption.
pub const RETRY_BLOCKED: Duration = Duration::from_secs(5);
/// `KUBECTL_ZDUPGRADE_RETRY_BLOCKED=SECONDS` replaces [`RETRY_BLOCKED`], for tests: spaced far
/// apart, only the budgets' watch can have a refused eviction tried again in time.
pub const RETRY_BLOCKED_ENV: &str = "KUBECTL_ZDUPGRADE_RETRY_BLOCKED";

fn retry_blocked() -> Duration {
    std::env::var(RETRY_BLOCKED_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(RETRY_BLOCKED, Duration::from_secs)
}
/// How long a watch may last; the API server's own limit is usually shorter.
const WATCH_SECONDS: u64 = 300;
/// How often the loop looks at a Ctrl-C while nothing happens.
const TICK: Duration = Duration::from_millis(200);

/// What the evictions of a node report, as they happen.
#[derive(Debug, PartialEq)]
pub(super) enum Progress<'a> {
    /// The API server accepted the pod's eviction.
    Evicting { namespace: &'a str, name: &'a str },
    /// The pod is gone from the node (deleted).
    Gone { namespace: &'a str, name: &'a str },
    /// The pod's eviction was refused for now (429); `reason` is the API server's message.
    Blocked {
        namespace: &'a str,
        name: &'a str,
        reason: &'a str,
    },
}

/// How the evictions of a node ended.
#[derive(Debug, PartialEq)]
pub(super) enum Outcome {
    /// Every pod `kubectl drain` would evict is gone from the node.
    Emptied,
    /// Stopped before, for this reason: `kubectl drain` takes over what is left.
    HandOver(String),
}

/// What the watches saw.
enum Seen {
    /// The pod of this uid was deleted.
    PodGone(String),
    /// A pod of the node as it is now: new to it, or changed.
    PodOnNode(Box<Pod>),
    /// This budget allows a disruption now.
    BudgetAllows(Box<PodDisruptionBudget>),
    /// The pods' watch ended (the server closes watches after a while).
    PodsWatchEnded,
    /// The budgets' watch ended.
    BudgetsWatchEnded,
}

/// A watch read on a thread of its own; ended when dropped.
struct Watch {
    stopper: Option<UnixStream>,
    started: Instant,
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(stream) = &self.stopper {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

impl Watch {
    /// Starts watching `path`, sending what `seen` makes of each event and `ended` at its end.
    fn start(
        api: &ApiClient,
        path: &str,
        tx: Sender<Seen>,
        seen: fn(&Value) -> Option<Seen>,
        ended: fn() -> Seen,
    ) -> Option<Watch> {
        let lasting = Duration::from_secs(WATCH_SECONDS + 30);
        let events = api.watch(path, lasting).ok()?.ok()?;
        let stopper = events.stopper();
        std::thread::spawn(move || {
            for event in events {
                if event["type"] == "ERROR" {
                    break;
                }
                if let Some(s) = seen(&event) {
                    if tx.send(s).is_err() {
                        return;
                    }
                }
            }
            let _ = tx.send(ended());
        });
        Some(Watch {
            stopper,
            started: Instant::now(),
        })
    }
}

fn pod_event(event: &Value) -> Option<Seen> {
    match event["type"].as_str()? {
        "DELETED" => event["object"]["metadata"]["uid"]
            .as_str()
            .map(|uid| Seen::PodGone(uid.to_string())),
        "ADDED" | "MODIFIED" => Pod::deserialize(&event["object"])
            .ok()
            .map(|pod| Seen::PodOnNode(Box::new(pod))),
        _ => None,
    }
}

fn budget_allows(event: &Value) -> Option<Seen> {
    if event["type"] != "ADDED" && event["type"] != "MODIFIED" {
        return None;
    }
    let pdb: PodDisruptionBudget = serde_json::from_value(event["object"].clone()).ok()?;
    (crate::model::workloads::disruptions_allowed(&pdb) > 0)
        .then(|| Seen::BudgetAllows(Box::new(pdb)))
}

/// `/api/v1/pods` of `node`, as a list or (with `watch_from`, a resourceVersion) a watch.
pub(super) fn pods_path(node: &str, watch_from: Option<&str>) -> String {
    let base = format!("/api/v1/pods?fieldSelector=spec.nodeName%3D{node}");
    match watch_from {
        Some(rv) => format!(
            "{base}&watch=1&allowWatchBookmarks=false&resourceVersion={rv}&timeoutSeconds={WATCH_SECONDS}"
        ),
        None => base,
    }
}

/// The node's pods and the list's resourceVersion (to watch from).
fn list_pods(api: &ApiClient, node: &str) -> Result<(Vec<Pod>, String), String> {
    api.list(&pods_path(node, None))
        .map_err(|e| format!("the pods of node {node} could not be listed: {e}"))
}

/// The Eviction of `pod` (this uid only), with `kubectl drain`'s `--grace-period` if given.
fn eviction(pod: &Pod, grace_period: Option<u32>) -> Value {
    let mut delete_options = json!({"preconditions": {"uid": pod.metadata.uid}});
    if let Some(seconds) = grace_period {
        delete_options["gracePeriodSeconds"] = json!(seconds);
    }
    json!({
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": pod.metadata.name, "namespace": pod.metadata.namespace},
        "deleteOptions": delete_options,
    })
}

fn evict(api: &ApiClient, pod: &Pod, grace_period: Option<u32>) -> std::io::Result<Response> {
    let (namespace, name) = names(pod);
    api.request(
        "POST",
        &format!("/api/v1/namespaces/{namespace}/pods/{name}/eviction"),
        Some(&eviction(pod, grace_period)),
    )
}

/// Why `kubectl drain` with `options` would refuse to drain a node holding `pod`, if it would.
fn drain_refusal(pod: &Pod, options: &DrainOptions) -> Option<&'static str> {
    if !options.force && controller_of(pod).is_none() {
        return Some("has no controller (kubectl drain needs --force)");
    }
    if !options.delete_emptydir_data && has_empty_dir(pod) {
        return Some("has emptyDir data (kubectl drain needs --delete-emptydir-data)");
    }
    None
}

/// The pod `uid` is gone from the node: no longer waited for nor tried again, and reported.
fn forget(
    uid: &str,
    pods: &mut RoundPods,
    blocked: &mut BTreeMap<String, Instant>,
    report: &mut dyn FnMut(Progress<'_>),
) {
    blocked.remove(uid);
    if let Some(pod) = pods.remove(uid) {
        let (namespace, name) = names(&pod);
        report(Progress::Gone { namespace, name });
    }
}

/// Rounds of a node before `kubectl drain` takes over. A round starts from a list of the node
/// and watches its pods from that list on: it evicts what the list shows and every pod the
/// watch shows reaching the node (a cordoned node still takes pods bound to it by name), and
/// ends when the watch has shown each of them gone, which is what a list made then would show.
/// Another round, from a new list, only when the round cannot tell: its list was made earlier
/// (by the batch, ahead of the drain) and showed nothing to evict, or the last pods ended
/// without the watch saying so (an eviction found the pod gone already). After this many,
/// `kubectl drain` decides.
const LISTS: usize = 3;

/// A node's pods as listed, with the list's resourceVersion when the API gave one.
pub(super) type NodePods = (Vec<Pod>, Option<String>);

/// A list of a node's pods and its resourceVersion, the point the round's watch starts from.
#[derive(Clone)]
pub(super) struct Listing {
    pub pods: Vec<Pod>,
    pub rv: String,
}

/// Evicts the pods `kubectl drain` would evict from `node` (cordoned), until none is left, or
/// `until`; see the module's documentation. `listed`: the node's pods as the batch listed them
/// a moment ago, the first round's start instead of a list of its own. An error only when
/// interrupted (Ctrl-C).
pub(super) fn evict_node(
    api: &ApiClient,
    node: &str,
    options: &DrainOptions,
    until: Instant,
    listed: Option<Listing>,
    report: &mut dyn FnMut(Progress<'_>),
) -> Result<Outcome, Error> {
    let mut listed = listed.filter(|l| !l.rv.is_empty());
    for _ in 0..LISTS {
        let (listing, fresh) = match listed.take() {
            Some(listing) => (listing, false),
            None => match list_pods(api, node) {
                Ok((pods, rv)) => (Listing { pods, rv }, true),
                Err(why) => return Ok(Outcome::HandOver(why)),
            },
        };
        match evict_listed(api, node, options, until, listing, fresh, report)? {
            Round::Emptied => return Ok(Outcome::Emptied),
            Round::ListAgain => continue,
            Round::HandOver(why) => return Ok(Outcome::HandOver(why)),
        }
    }
    Ok(Outcome::HandOver(format!(
        "pods kept arriving on node {node} ({LISTS} lists)"
    )))
}

/// How one round of a node's evictions ended.
enum Round {
    /// Nothing left to evict or to wait for, as a list made now would show.
    Emptied,
    /// Every pod waited for is gone, but only a new list can tell that no other came.
    ListAgain,
    /// Stopped for this reason.
    HandOver(String),
}

/// The pods of a round.
#[derive(Default)]
struct RoundPods {
    /// Pods `kubectl drain` would evict or remove, by uid, until they are gone.
    waiting: BTreeMap<String, Pod>,
    /// Of those, the ones to evict (not terminating yet, or refused and due again).
    to_evict: BTreeSet<String>,
    /// Pods seen gone: a late event of theirs does not bring them back.
    gone: BTreeSet<String>,
}

impl RoundPods {
    /// The pod `uid` is gone: no longer waited for, and never taken in again.
    fn remove(&mut self, uid: &str) -> Option<Pod> {
        self.gone.insert(uid.to_string());
        self.waiting.remove(uid)
    }

    /// Takes `pod` (of the node, from a list or the watch) into the round if `kubectl drain`
    /// would evict it (unless it is terminating already) or remove it (finished); pods known
    /// already or gone, and those kubectl drain leaves alone (DaemonSet, mirror pods), are
    /// passed over. Why kubectl drain would refuse the node, if this pod makes it refuse.
    fn admit(&mut self, pod: Pod, options: &DrainOptions) -> Result<(), String> {
        let class = classify(&pod);
        if class != PodClass::Evictable && class != PodClass::Finished {
            return Ok(());
        }
        let (namespace, name) = names(&pod);
        let Some(uid) = pod.metadata.uid.clone() else {
            return Err(format!("pod {namespace}/{name} has no uid"));
        };
        if self.waiting.contains_key(&uid) || self.gone.contains(&uid) {
            return Ok(());
        }
        // kubectl drain removes a finished pod whatever its owner and volumes.
        if class == PodClass::Evictable {
            if let Some(why) = drain_refusal(&pod, options) {
                return Err(format!("pod {namespace}/{name} {why}"));
            }
        }
        if pod.metadata.deletion_timestamp.is_none() {
            self.to_evict.insert(uid.clone());
        }
        self.waiting.insert(uid, pod);
        Ok(())
    }
}

/// Evicts the pods of a node's list that `kubectl drain` would evict, finished pods too, and
/// those the watch from the list's resourceVersion shows arriving, and waits for them and for
/// those already terminating to go. `fresh`: the list was made just now.
fn evict_listed(
    api: &ApiClient,
    node: &str,
    options: &DrainOptions,
    until: Instant,
    listing: Listing,
    fresh: bool,
    report: &mut dyn FnMut(Progress<'_>),
) -> Result<Round, Error> {
    let mut pods = RoundPods::default();
    for pod in listing.pods {
        if let Err(why) = pods.admit(pod, options) {
            return Ok(Round::HandOver(why));
        }
    }
    if pods.waiting.is_empty() {
        return Ok(if fresh {
            Round::Emptied
        } else {
            Round::ListAgain
        });
    }
    let (tx, rx) = channel();
    let watch_pods = |rv: &str| {
        Watch::start(
            api,
            &pods_path(node, Some(rv)),
            tx.clone(),
            pod_event,
            || Seen::PodsWatchEnded,
        )
    };
    let Some(mut pods_watch) = watch_pods(&listing.rv) else {
        return Ok(Round::HandOver(format!(
            "the pods of node {node} could not be watched"
        )));
    };
    let mut budgets_watch: Option<Watch> = None;
    let retry = retry_blocked();
    // Refused pods, with when they were last tried.
    let mut blocked: BTreeMap<String, Instant> = BTreeMap::new();
    // Whether the watch (or a list) has shown the node as it is since the last pod went.
    let mut seen_to_date = true;
    loop {
        if crate::interrupt::interrupted() {
            return Err(Error::Interrupted(format!(
                "the drain of node {node} stopped: node {node} stays cordoned and partly drained; \
                 the pods already evicted from it are recreated by their controllers"
            )));
        }
        if !pods.to_evict.is_empty() {
            let batch: Vec<(&String, &Pod)> = pods
                .waiting
                .iter()
                .filter(|(uid, _)| pods.to_evict.contains(*uid))
                .collect();
            let answers = crate::engine::parallel::map(&batch, EVICTIONS_AT_ONCE, |(_, pod)| {
                evict(api, pod, options.grace_period)
            });
            let mut gone = Vec::new();
            for ((uid, pod), answer) in batch.iter().zip(answers) {
                let (namespace, name) = names(pod);
                match answer {
                    Ok(r) if r.status < 300 => {
                        blocked.remove(*uid);
                        report(Progress::Evicting { namespace, name });
                    }
                    // Gone already, or a new pod holds its name: nothing left to evict.
                    Ok(r) if r.status == 404 || r.status == 409 => gone.push((*uid).clone()),
                    Ok(r) if r.status == 429 => {
                        blocked.insert((*uid).clone(), Instant::now());
                        report(Progress::Blocked {
                            namespace,
                            name,
                            reason: &r.message(),
                        });
                    }
                    Ok(r) => {
                        return Ok(Round::HandOver(format!(
                            "the eviction of pod {namespace}/{name} was refused ({}): {}",
                            r.status,
                            r.message()
                        )))
                    }
                    Err(e) => {
                        return Ok(Round::HandOver(format!(
                            "the eviction of pod {namespace}/{name} failed: {e}"
                        )))
                    }
                }
            }
            for uid in gone {
                blocked.remove(&uid);
                pods.remove(&uid);
                seen_to_date = false;
            }
            pods.to_evict.clear();
            if !blocked.is_empty() && budgets_watch.is_none() {
                budgets_watch = Watch::start(
                    api,
                    &format!(
                        "/apis/policy/v1/poddisruptionbudgets?watch=1&timeoutSeconds={WATCH_SECONDS}"
                    ),
                    tx.clone(),
                    budget_allows,
                    || Seen::BudgetsWatchEnded,
                );
            }
        }
        if pods.waiting.is_empty() {
            return Ok(if seen_to_date {
                Round::Emptied
            } else {
                Round::ListAgain
            });
        }
        let now = Instant::now();
        if now >= until {
            return Ok(Round::HandOver("the attempt's time is up".into()));
        }
        let retry_at = blocked.values().min().map(|t| *t + retry);
        let wake = retry_at
            .map_or(now + TICK, |r| r.min(now + TICK))
            .min(until);
        match rx.recv_timeout(wake.saturating_duration_since(now)) {
            Ok(Seen::PodGone(uid)) => {
                forget(&uid, &mut pods, &mut blocked, report);
                seen_to_date = true;
            }
            Ok(Seen::PodOnNode(pod)) => {
                if let Err(why) = pods.admit(*pod, options) {
                    return Ok(Round::HandOver(why));
                }
            }
            Ok(Seen::BudgetAllows(pdb)) => {
                for uid in blocked.keys() {
                    let covered = pods.waiting.get(uid).is_some_and(|pod| {
                        !pdbs_for_pod(pod, std::slice::from_ref(&pdb)).is_empty()
                    });
                    if covered {
                        pods.to_evict.insert(uid.clone());
                    }
                }
            }
            Ok(Seen::PodsWatchEnded) => {
                // A watch that ends at once is not retried at once: at most one list a second.
                if pods_watch.started.elapsed() < Duration::from_secs(1) {
                    std::thread::sleep(Duration::from_secs(1));
                }
                let (listed, rv) = match list_pods(api, node) {
                    Ok(listed) => listed,
                    Err(why) => return Ok(Round::HandOver(why)),
                };
                let present: BTreeSet<String> = listed
                    .iter()
                    .filter_map(|p| p.metadata.uid.clone())
                    .collect();
                let left: Vec<String> = pods
                    .waiting
                    .keys()
                    .filter(|uid| !present.contains(*uid))
                    .cloned()
                    .collect();
                for uid in left {
                    forget(&uid, &mut pods, &mut blocked, report);
                }
                for pod in listed {
                    if let Err(why) = pods.admit(pod, options) {
                        return Ok(Round::HandOver(why));
                    }
                }
                seen_to_date = true;
                pods_watch = match watch_pods(&rv) {
                    Some(watch) => watch,
                    None => {
                        return Ok(Round::HandOver(format!(
                            "the pods of node {node} could not be watched"
                        )))
                    }
                };
            }
            Ok(Seen::BudgetsWatchEnded) => budgets_watch = None,
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                let now = Instant::now();
                pods.to_evict.extend(
                    blocked
                        .iter()
                        .filter(|(_, tried)| **tried + retry <= now)
                        .map(|(uid, _)| uid.clone()),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::evacuate::tests::pods;

    fn find<'a>(pods: &'a [Pod], name: &str) -> &'a Pod {
        pods.iter()
            .find(|p| p.metadata.name.as_deref() == Some(name))
            .unwrap()
    }

    fn options(force: bool, delete_emptydir_data: bool) -> DrainOptions {
        DrainOptions {
            force,
            delete_emptydir_data,
            grace_period: None,
            timeout: Duration::from_secs(60),
        }
    }

    #[test]
    fn an_eviction_names_the_pod_and_its_uid() {
        let mut pod = find(&pods(), "db-0").clone();
        pod.metadata.uid = Some("u-1".into());
        assert_eq!(
            eviction(&pod, Some(30)),
            json!({
                "apiVersion": "policy/v1",
                "kind": "Eviction",
                "metadata": {"name": "db-0", "namespace": "payments"},
                "deleteOptions": {"preconditions": {"uid": "u-1"}, "gracePeriodSeconds": 30},
            })
        );
    }

    #[test]
    fn pods_kubectl_drain_would_refuse_are_left_to_it() {
        let pods = pods();
        let cache = find(&pods, "cache-6b8f7d9c4-abcde");
        assert!(drain_refusal(cache, &options(false, false)).is_some());
        assert_eq!(drain_refusal(cache, &options(false, true)), None);
        let web = find(&pods, "web-7d4b9c6f5-x2x9z");
        assert_eq!(drain_refusal(web, &options(false, false)), None);
        let mut bare = web.clone();
        bare.metadata.owner_references = None;
        assert!(
            drain_refusal(&bare, &options(false, true)).is_some_and(|why| why.contains("--force"))
        );
        assert_eq!(drain_refusal(&bare, &options(true, true)), None);
    }

    #[test]
    fn watch_events() {
        assert!(matches!(
            pod_event(&json!({"type": "DELETED", "object": {"metadata": {"uid": "u"}}})),
            Some(Seen::PodGone(uid)) if uid == "u"
        ));
        for kind in ["ADDED", "MODIFIED"] {
            let event = json!({"type": kind, "object": {"metadata": {"uid": "u", "name": "p"},
                "spec": {"nodeName": "n-1", "containers": []}}});
            assert!(matches!(
                pod_event(&event),
                Some(Seen::PodOnNode(pod)) if pod.metadata.uid.as_deref() == Some("u")
            ));
        }
        assert!(pod_event(&json!({"type": "BOOKMARK", "object": {"metadata": {}}})).is_none());
        let pdb = |allowed: i32| {
            json!({"type": "MODIFIED", "object": {"metadata": {"name": "b", "namespace": "n"},
                "status": {"disruptionsAllowed": allowed, "currentHealthy": 2, "desiredHealthy": 1, "expectedPods": 2}}})
        };
        assert!(matches!(
            budget_allows(&pdb(1)),
            Some(Seen::BudgetAllows(_))
        ));
        assert!(budget_allows(&pdb(0)).is_none());
    }

    #[test]
    fn paths() {
        assert_eq!(
            pods_path("n-1", None),
            "/api/v1/pods?fieldSelector=spec.nodeName%3Dn-1"
        );
        assert!(pods_path("n-1", Some("42"))
            .contains("&watch=1&allowWatchBookmarks=false&resourceVersion=42"));
    }
}
