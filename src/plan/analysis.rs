//! Every family of findings run on one [`PlanInput`], in one sorted list.

use super::finding::Finding;
use super::findings::budgets::{blocking_pdbs, single_replicas};
use super::findings::capacity::capacity;
use super::findings::cluster::{autoscaler, drift, version_skew, zonal_control_plane};
use super::findings::scheduling::unsatisfiable_scheduling;
use super::findings::volumes::{
    emptydir_pods, hostpath_pods, local_volumes, standalone_pods, zonal_volumes,
};
use super::input::PlanInput;

/// All findings, sorted blockers first. None is accepted yet (see [`Accepted::apply`]).
pub fn analyze(input: &PlanInput) -> Vec<Finding> {
    let mut findings = Vec::new();
    findings.extend(standalone_pods(input));
    findings.extend(emptydir_pods(input));
    findings.extend(hostpath_pods(input));
    findings.extend(local_volumes(input));
    findings.extend(blocking_pdbs(input));
    findings.extend(single_replicas(input));
    findings.extend(capacity(input));
    findings.extend(unsatisfiable_scheduling(input));
    findings.extend(zonal_volumes(input));
    findings.extend(version_skew(input));
    findings.extend(zonal_control_plane(input));
    findings.extend(autoscaler(input));
    findings.extend(drift(input));
    for f in &mut findings {
        // Keep the first object (the subject) first, sort the rest.
        if f.objects.len() > 2 {
            f.objects[1..].sort();
        }
    }
    findings
        .sort_by(|a, b| (a.severity, a.code, &a.objects).cmp(&(b.severity, b.code, &b.objects)));
    findings
}
