//! Findings about pod data and volumes: pods no controller recreates, emptyDir and hostPath
//! data left behind, node-local volumes, and zonal volumes in zones the new pool has no node in.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::PersistentVolume;

use super::{by_workload, pod_list, subject_and_pods};
use crate::model::pod::{Pod, Volume};
use crate::model::workloads::{controller_of, has_empty_dir, pod_node};
use crate::plan::{codes, flags, Finding, ObjectRef, PlanInput, Severity, ZONE_KEYS};

fn volume_names(pod: &Pod, pick: impl Fn(&Volume) -> bool) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .into_iter()
        .flatten()
        .filter(|v| pick(v))
        .map(|v| v.name.clone())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Pods with no controller: a drain deletes them and nothing recreates them.
pub(crate) fn standalone_pods(input: &PlanInput) -> Vec<Finding> {
    input
        .evictable_on_old()
        .into_iter()
        .filter(|p| controller_of(p).is_none())
        .map(|pod| {
            let object = ObjectRef::pod(pod);
            Finding::new(Severity::Blocker, codes::STANDALONE_POD, vec![object.clone()])
                .message(format!(
                    "{object} on node {} has no controller: a drain deletes it and nothing recreates it (kubectl drain refuses it without --force)",
                    pod_node(pod).unwrap_or("?")
                ))
                .remedy(format!(
                    "run it under a Deployment or StatefulSet, or delete it yourself; pass {} to accept losing it",
                    flags::FORCE
                ))
                .override_flag(flags::FORCE)
        })
        .collect()
}

/// Pods with emptyDir volumes: the data is lost with the node.
pub(crate) fn emptydir_pods(input: &PlanInput) -> Vec<Finding> {
    let pods = input
        .evictable_on_old()
        .into_iter()
        .filter(|p| has_empty_dir(p))
        .collect();
    by_workload(input, pods)
        .into_iter()
        .map(|(subject, pods)| {
            let volumes = volume_names(pods[0], |v| v.empty_dir.is_some());
            Finding::new(
                Severity::Blocker,
                codes::EMPTYDIR_DATA,
                subject_and_pods(&subject, &pods),
            )
            .message(format!(
                "{subject}: {} pod(s) use emptyDir volumes ({volumes}) whose data is lost when drained (kubectl drain refuses them without --delete-emptydir-data): {}",
                pods.len(),
                pod_list(&pods)
            ))
            .remedy(format!(
                "move data that must survive to a PersistentVolumeClaim; pass {} if it is scratch data",
                flags::DELETE_EMPTYDIR_DATA
            ))
            .override_flag(flags::DELETE_EMPTYDIR_DATA)
        })
        .collect()
}

/// Pods with hostPath volumes: what they wrote on the old node stays there.
pub(crate) fn hostpath_pods(input: &PlanInput) -> Vec<Finding> {
    let pods = input
        .evictable_on_old()
        .into_iter()
        .filter(|p| {
            p.spec
                .as_ref()
                .and_then(|s| s.volumes.as_ref())
                .is_some_and(|v| v.iter().any(|v| v.host_path.is_some()))
        })
        .collect();
    by_workload(input, pods)
        .into_iter()
        .map(|(subject, pods)| {
            let volumes = volume_names(pods[0], |v| v.host_path.is_some());
            Finding::new(
                Severity::Warning,
                codes::HOSTPATH_VOLUME,
                subject_and_pods(&subject, &pods),
            )
            .message(format!(
                "{subject}: {} pod(s) mount hostPath volumes ({volumes}): on the new nodes they see a fresh directory; what they wrote stays on the old nodes and is gone with the old pool",
                pods.len()
            ))
            .remedy("copy anything that must survive off the old nodes before the old pool is deleted (or use --keep-old-pool)")
        })
        .collect()
}

fn is_local_pv(pv: &PersistentVolume) -> bool {
    pv.spec
        .as_ref()
        .is_some_and(|s| s.local.is_some() || s.host_path.is_some())
}

/// Pods whose claims are bound to node-local volumes: they cannot follow to another node.
pub(crate) fn local_volumes(input: &PlanInput) -> Vec<Finding> {
    let pods = input
        .evictable_on_old()
        .into_iter()
        .filter(|p| input.bound_volumes(p).iter().any(|(_, pv)| is_local_pv(pv)))
        .collect();
    by_workload(input, pods)
        .into_iter()
        .map(|(subject, pods)| {
            let mut objects = subject_and_pods(&subject, &pods);
            for pod in &pods {
                for (_, pv) in input.bound_volumes(pod) {
                    if is_local_pv(pv) {
                        objects.push(ObjectRef::new(
                            "PersistentVolume",
                            None,
                            pv.metadata.name.as_deref().unwrap_or("?"),
                        ));
                    }
                }
            }
            Finding::new(Severity::Blocker, codes::LOCAL_VOLUME, objects)
                .message(format!(
                    "{subject}: {} pod(s) use local PersistentVolumes bound to their node: once drained they stay Pending (the volume is on an old node) and the data is deleted with the old pool",
                    pods.len()
                ))
                .remedy(format!(
                    "back the data up and recreate the claims on the new pool (or use network storage); pass {} to accept it",
                    flags::ALLOW_LOCAL_VOLUMES
                ))
                .override_flag(flags::ALLOW_LOCAL_VOLUMES)
        })
        .collect()
}

/// The zones a volume is pinned to (required node affinity on a zone key, else its zone labels;
/// GKE writes a regional disk's zones as `a__b`). `None` when it is not zonal.
pub fn pv_zones(pv: &PersistentVolume) -> Option<BTreeSet<String>> {
    let mut zones = BTreeSet::new();
    let terms = pv
        .spec
        .as_ref()
        .and_then(|s| s.node_affinity.as_ref())
        .and_then(|a| a.required.as_ref())
        .map(|r| r.node_selector_terms.as_slice())
        .unwrap_or(&[]);
    for term in terms {
        for r in term.match_expressions.iter().flatten() {
            if ZONE_KEYS.contains(&r.key.as_str()) && r.operator == "In" {
                zones.extend(r.values.iter().flatten().cloned());
            }
        }
    }
    if zones.is_empty() {
        for key in ZONE_KEYS {
            if let Some(v) = pv.metadata.labels.as_ref().and_then(|l| l.get(key)) {
                zones.extend(v.split("__").map(str::to_string));
            }
        }
    }
    (!zones.is_empty()).then_some(zones)
}

/// Pods whose persistent volumes are in zones the new pool has no node in.
pub(crate) fn zonal_volumes(input: &PlanInput) -> Vec<Finding> {
    let covered: BTreeSet<&str> = input.new_pool.zones.iter().map(String::as_str).collect();
    let mut stuck: BTreeMap<ObjectRef, Vec<(&Pod, String, String)>> = BTreeMap::new();
    for pod in input.moving() {
        for (claim, pv) in input.bound_volumes(pod) {
            if is_local_pv(pv) {
                continue;
            }
            let Some(zones) = pv_zones(pv) else {
                continue;
            };
            if !zones.iter().any(|z| covered.contains(z.as_str())) {
                let zones = zones.into_iter().collect::<Vec<_>>().join(",");
                stuck
                    .entry(input.workload_label(pod))
                    .or_default()
                    .push((pod, claim, zones));
            }
        }
    }
    let new = input.new_pool;
    stuck
        .into_iter()
        .map(|(subject, entries)| {
            let pods: Vec<&Pod> = entries.iter().map(|(p, _, _)| *p).collect();
            let mut objects = subject_and_pods(&subject, &pods);
            objects.extend(entries.iter().map(|(p, claim, _)| {
                ObjectRef::new(
                    "PersistentVolumeClaim",
                    Some(p.metadata.namespace.as_deref().unwrap_or("default")),
                    claim,
                )
            }));
            let detail = entries
                .iter()
                .map(|(p, claim, zones)| {
                    format!(
                        "{} (claim {claim} in {zones})",
                        p.metadata.name.as_deref().unwrap_or("?")
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            Finding::new(
                Severity::Blocker,
                codes::ZONAL_VOLUME_NOT_COVERED,
                objects,
            )
            .message(format!(
                "{subject}: {} has nodes only in {} but {detail}: zonal disks cannot follow to another zone, so once drained these pods stay Pending",
                new.describe(),
                if new.zones.is_empty() {
                    "no known zone".to_string()
                } else {
                    new.zones.join(", ")
                }
            ))
            .remedy(format!(
                "give {} nodes in those zones{}, or move the data; pass {} to go on anyway",
                new.describe(),
                if new.by_selector {
                    ""
                } else {
                    " (--node-locations when you create it; migrate reuses it)"
                },
                flags::ALLOW_UNSCHEDULABLE
            ))
            .override_flag(flags::ALLOW_UNSCHEDULABLE)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::tests::{from, names, pod, World, ZONE};
    use serde_json::{json, Value};

    #[test]
    fn standalone_pods_on_the_old_pool_are_blockers_accepted_by_force() {
        let w = World::new()
            .pod(pod("debug", "old-1", None, json!({})))
            .pod(pod("elsewhere", "other-node", None, json!({})))
            .pod(pod(
                "agent-x",
                "old-1",
                Some(("DaemonSet", "agent")),
                json!({}),
            ))
            .deployment("web", 1, json!({}));
        let mut done = pod("job-done", "old-2", None, json!({}));
        done["status"]["phase"] = "Succeeded".into();
        let w = w.pod(done);
        let found = w.with_code(codes::STANDALONE_POD);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].severity, Severity::Blocker);
        assert_eq!(names(&found[0], "Pod"), ["debug"]);
        assert_eq!(found[0].override_flag, Some("--force"));
        assert!(found[0].refuses());
        assert!(found[0].message.contains("old-1"), "{}", found[0].message);

        let accepted = w.args(&["--force"]).with_code(codes::STANDALONE_POD);
        assert!(accepted[0].accepted && !accepted[0].refuses());
    }

    #[test]
    fn emptydir_pods_are_blockers_grouped_by_workload() {
        let scratch = json!({"volumes": [{"name": "scratch", "emptyDir": {}}]});
        let w = World::new().deployment("cache", 2, scratch).deployment(
            "web",
            2,
            json!({"volumes": [{"name": "cfg", "configMap": {"name": "x"}}]}),
        );
        let found = w.with_code(codes::EMPTYDIR_DATA);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].severity, Severity::Blocker);
        assert_eq!(names(&found[0], "Deployment"), ["cache"]);
        assert_eq!(names(&found[0], "Pod"), ["cache-rs-0", "cache-rs-1"]);
        assert_eq!(found[0].override_flag, Some("--delete-emptydir-data"));
        assert!(found[0].message.contains("scratch"));
        assert!(
            w.args(&["--delete-emptydir-data"])
                .with_code(codes::EMPTYDIR_DATA)[0]
                .accepted
        );
        assert!(
            !w.args(&["--force"]).with_code(codes::EMPTYDIR_DATA)[0].accepted,
            "another flag does not accept it"
        );
    }

    #[test]
    fn hostpath_is_a_warning() {
        let w = World::new().deployment(
            "logs",
            1,
            json!({"volumes": [{"name": "host", "hostPath": {"path": "/var/log"}}]}),
        );
        let found = w.with_code(codes::HOSTPATH_VOLUME);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].severity, Severity::Warning);
        assert_eq!(found[0].override_flag, None);
        assert!(World::new()
            .deployment("web", 1, json!({}))
            .with_code(codes::HOSTPATH_VOLUME)
            .is_empty());
    }

    fn claim_spec(claim: &str) -> Value {
        json!({"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]})
    }

    fn bind(w: &mut World, claim: &str, pv: Value) {
        let name = pv["metadata"]["name"].as_str().unwrap().to_string();
        w.pvcs.push(from(json!({
            "metadata": {"name": claim, "namespace": "default"},
            "spec": {"volumeName": name}
        })));
        w.pvs.push(from(pv));
    }

    fn zonal_pv(name: &str, zone: &str) -> Value {
        json!({"metadata": {"name": name}, "spec": {"csi": {"driver": "pd.csi.storage.gke.io", "volumeHandle": "h"},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "topology.gke.io/zone", "operator": "In", "values": [zone]}]}]}}}})
    }

    #[test]
    fn local_volumes_are_blockers() {
        let mut w = World::new()
            .deployment("db", 1, claim_spec("data-db"))
            .deployment("pd", 1, claim_spec("data-pd"));
        bind(
            &mut w,
            "data-db",
            json!({"metadata": {"name": "local-pv"}, "spec": {"local": {"path": "/mnt/disks/ssd0"},
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "In", "values": ["old-1"]}]}]}}}}),
        );
        bind(&mut w, "data-pd", zonal_pv("pd-pv", ZONE));
        let found = w.with_code(codes::LOCAL_VOLUME);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].severity, Severity::Blocker);
        assert_eq!(names(&found[0], "Deployment"), ["db"]);
        assert_eq!(names(&found[0], "PersistentVolume"), ["local-pv"]);
        assert_eq!(found[0].override_flag, Some("--allow-local-volumes"));
        assert!(
            w.args(&["--allow-local-volumes"])
                .with_code(codes::LOCAL_VOLUME)[0]
                .accepted
        );
        assert!(
            w.with_code(codes::ZONAL_VOLUME_NOT_COVERED).is_empty(),
            "local volumes are not also zonal findings"
        );
    }

    #[test]
    fn zonal_volumes_outside_the_new_pools_zones() {
        let mut w = World::new()
            .deployment("db", 1, claim_spec("data-db"))
            .deployment("ok", 1, claim_spec("data-ok"))
            .deployment("legacy", 1, claim_spec("data-legacy"))
            .deployment("regional", 1, claim_spec("data-regional"));
        bind(&mut w, "data-db", zonal_pv("pv-db", "us-central1-b"));
        bind(&mut w, "data-ok", zonal_pv("pv-ok", ZONE));
        bind(
            &mut w,
            "data-legacy",
            json!({"metadata": {"name": "pv-legacy",
            "labels": {"failure-domain.beta.kubernetes.io/zone": "us-central1-c"}}, "spec": {}}),
        );
        bind(
            &mut w,
            "data-regional",
            json!({"metadata": {"name": "pv-regional",
            "labels": {"topology.kubernetes.io/zone": "us-central1-b__us-central1-a"}}, "spec": {}}),
        );
        let found = w.with_code(codes::ZONAL_VOLUME_NOT_COVERED);
        let mut stuck: Vec<String> = found.iter().flat_map(|f| names(f, "Deployment")).collect();
        stuck.sort();
        assert_eq!(stuck, ["db", "legacy"], "{found:#?}");
        let db = found
            .iter()
            .find(|f| names(f, "Deployment") == ["db"])
            .unwrap();
        assert_eq!(db.severity, Severity::Blocker);
        assert_eq!(db.override_flag, Some("--allow-unschedulable"));
        assert_eq!(names(db, "PersistentVolumeClaim"), ["data-db"]);
        assert!(
            db.message.contains("us-central1-b") && db.message.contains(ZONE),
            "{}",
            db.message
        );

        // A new pool that also covers zone b only leaves the legacy volume.
        w.cluster.node_pools[0].locations = vec![ZONE.into(), "us-central1-b".into()];
        let stuck: Vec<String> = w
            .with_code(codes::ZONAL_VOLUME_NOT_COVERED)
            .iter()
            .flat_map(|f| names(f, "Deployment"))
            .collect();
        assert_eq!(stuck, ["legacy"]);
    }
}
