# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_kubectl_zdupgrade_global_optspecs
    string join \n q/quiet v/verbose o/output= h/help V/version
end

function __fish_kubectl_zdupgrade_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_kubectl_zdupgrade_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_kubectl_zdupgrade_using_subcommand
    set -l cmd (__fish_kubectl_zdupgrade_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_needs_command" -s o -l output -d '`json`: one JSON object per line on stdout for each event (step started/finished, node cordoned/drained, pod evicted, operation progress) and a final result; human output stays on stderr' -r -f -a "text\t''
json\t''"
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_needs_command" -s q -l quiet -d 'Print only warnings and errors'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_needs_command" -s v -l verbose -d 'Print every kubectl/gcloud command line and its exit status (no progress bars)'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_needs_command" -s h -l help -d 'Print help'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_needs_command" -s V -l version -d 'Print version'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_needs_command" -f -a "migrate" -d 'Move every workload from a node pool to a new one (created as a clone), then delete the old pool'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_needs_command" -f -a "rollback" -d 'Undo a migration: uncordon the old pool, drain the new one node by node, optionally delete it'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_needs_command" -f -a "upgrade-nodes" -d 'Upgrade a pool in place (GKE surge upgrade) with extra capacity added first and restored after'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_needs_command" -f -a "upgrade-master" -d 'Upgrade the control plane (first, before the nodes)'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_needs_command" -f -a "status" -d 'Versions, pools, unhealthy workloads and any migration in progress, with the command to continue'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_needs_command" -f -a "plan" -d 'Read-only preflight: what a command would trip over, found before anything changes'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_needs_command" -f -a "completion" -d 'Print a shell completion script'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand migrate" -l from -d 'The node pool to move away from (default: the only other pool)' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand migrate" -l node-timeout -d 'How long to wait for the new pool\'s nodes to be Ready' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand migrate" -l machine-type -d 'Machine type of the new pool (default: the old pool\'s)' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand migrate" -l num-nodes -d 'Nodes per zone in the new pool (default: the most the old pool has in any zone)' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand migrate" -l node-version -d 'Kubernetes version of the new pool (default: the control plane\'s)' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand migrate" -l image-type -d 'Image type of the new pool (default: the old pool\'s)' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand migrate" -l disk-size -d 'Boot disk size in GB of the new pool (default: the old pool\'s)' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand migrate" -l disk-type -d 'Boot disk type of the new pool (default: the old pool\'s)' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand migrate" -l grace-period -d 'Seconds each pod gets to terminate (default: the pod\'s own), as `kubectl drain --grace-period`' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand migrate" -l drain-timeout -d 'How long one node\'s drain may take (kubectl drain --timeout)' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand migrate" -l settle-timeout -d 'How long the displaced workloads may take to be fully ready again after a node\'s drain' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand migrate" -l disable-eviction-after -d 'After a node\'s drain has been blocked this long (e.g. by a PodDisruptionBudget that never allows an eviction), delete its remaining pods instead of evicting them, as `kubectl drain --disable-eviction`: this BYPASSES the PodDisruptionBudgets (each bypassed pod and budget is named in a warning). Off by default; must be shorter than --drain-timeout' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand migrate" -l max-parallel -d 'Drain up to N nodes at once (preferring nodes of one zone), never more pods of one workload at a time than its PodDisruptionBudget (or, without one, its rollout strategy) allows; workload health is gated before and after each batch' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand migrate" -l strategy -d 'How Deployments leave a node: `surge` first moves each Deployment with pods on the node by a rolling restart (new pods start on the other pool before old ones stop; a strategy that could lower the ready count is set to maxUnavailable 0 meanwhile and restored after), then evicts what is left; `evict` only evicts, as `kubectl drain` does. A Deployment annotated kubectl-zdupgrade/move=evict is always evicted' -r -f -a "surge\t'Rolling restart onto the other pool before the drain: no downtime'
evict\t'Evict and let the controller recreate the pod: down for a start-up if nothing else serves'"
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand migrate" -l project -d 'Google Cloud project of the cluster' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand migrate" -l location -l zone -l region -d 'Zone or region of the cluster' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand migrate" -l cluster -d 'GKE cluster name' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand migrate" -l context -d 'Kube context to use (passed to every kubectl call)' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand migrate" -l kubeconfig -d 'Kubeconfig file to use (passed to every kubectl call)' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand migrate" -l request-timeout -d 'Limit for each request to the Kubernetes API (passed to every kubectl call); a kubectl call still running 10 s after it is stopped and, when safe, run again (without this flag: after 5 minutes)' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand migrate" -s o -l output -d '`json`: one JSON object per line on stdout for each event (step started/finished, node cordoned/drained, pod evicted, operation progress) and a final result; human output stays on stderr' -r -f -a "text\t''
json\t''"
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand migrate" -s y -l yes -d 'Confirm draining and deleting the old pool without being asked (needed when stdin is not a terminal)'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand migrate" -l dry-run -d 'Only read the cluster and print the plan: every command that would run'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand migrate" -l break-lock -d 'Take over the cluster\'s lock (Lease kube-system/kubectl-zdupgrade) even if another run seems to hold it: only when that run is gone (a stale lock is taken over without it)'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand migrate" -l keep-old-pool -d 'Stop after draining: keep the old pool (cordoned), ready for a rollback'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand migrate" -l allow-config-drift -d 'Go on even if the old pool has settings the clone cannot reproduce'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand migrate" -l allow-local-volumes -d 'Go on even if pods use local PersistentVolumes (they cannot follow to the new pool)'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand migrate" -l allow-insufficient-capacity -d 'Go on even if the new pool looks too small for the pods that must move'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand migrate" -l allow-unschedulable -d 'Go on even if some pods could not be scheduled on the new pool (labels, taints or zonal volumes it does not match)'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand migrate" -l force -d 'Also drain pods without a controller (they are lost), as `kubectl drain --force`'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand migrate" -l delete-emptydir-data -d 'Also drain pods with emptyDir volumes (their data is lost), as `kubectl drain --delete-emptydir-data`'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand migrate" -s q -l quiet -d 'Print only warnings and errors'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand migrate" -s v -l verbose -d 'Print every kubectl/gcloud command line and its exit status (no progress bars)'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand migrate" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand rollback" -l to -d 'The pool to move workloads back to (default: the only other pool)' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand rollback" -l grace-period -d 'Seconds each pod gets to terminate (default: the pod\'s own), as `kubectl drain --grace-period`' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand rollback" -l drain-timeout -d 'How long one node\'s drain may take (kubectl drain --timeout)' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand rollback" -l settle-timeout -d 'How long the displaced workloads may take to be fully ready again after a node\'s drain' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand rollback" -l disable-eviction-after -d 'After a node\'s drain has been blocked this long (e.g. by a PodDisruptionBudget that never allows an eviction), delete its remaining pods instead of evicting them, as `kubectl drain --disable-eviction`: this BYPASSES the PodDisruptionBudgets (each bypassed pod and budget is named in a warning). Off by default; must be shorter than --drain-timeout' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand rollback" -l max-parallel -d 'Drain up to N nodes at once (preferring nodes of one zone), never more pods of one workload at a time than its PodDisruptionBudget (or, without one, its rollout strategy) allows; workload health is gated before and after each batch' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand rollback" -l strategy -d 'How Deployments leave a node: `surge` first moves each Deployment with pods on the node by a rolling restart (new pods start on the other pool before old ones stop; a strategy that could lower the ready count is set to maxUnavailable 0 meanwhile and restored after), then evicts what is left; `evict` only evicts, as `kubectl drain` does. A Deployment annotated kubectl-zdupgrade/move=evict is always evicted' -r -f -a "surge\t'Rolling restart onto the other pool before the drain: no downtime'
evict\t'Evict and let the controller recreate the pod: down for a start-up if nothing else serves'"
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand rollback" -l project -d 'Google Cloud project of the cluster' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand rollback" -l location -l zone -l region -d 'Zone or region of the cluster' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand rollback" -l cluster -d 'GKE cluster name' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand rollback" -l context -d 'Kube context to use (passed to every kubectl call)' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand rollback" -l kubeconfig -d 'Kubeconfig file to use (passed to every kubectl call)' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand rollback" -l request-timeout -d 'Limit for each request to the Kubernetes API (passed to every kubectl call); a kubectl call still running 10 s after it is stopped and, when safe, run again (without this flag: after 5 minutes)' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand rollback" -s o -l output -d '`json`: one JSON object per line on stdout for each event (step started/finished, node cordoned/drained, pod evicted, operation progress) and a final result; human output stays on stderr' -r -f -a "text\t''
json\t''"
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand rollback" -s y -l yes -d 'Confirm without being asked (required when stdin is not a terminal)'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand rollback" -l dry-run -d 'Read only: print the plan and change nothing'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand rollback" -l break-lock -d 'Take over the cluster\'s lock (Lease kube-system/kubectl-zdupgrade) even if another run seems to hold it: only when that run is gone (a stale lock is taken over without it)'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand rollback" -l delete-new-pool -d 'Delete NEW_POOL once it is drained'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand rollback" -l force -d 'Also drain pods without a controller (they are lost), as `kubectl drain --force`'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand rollback" -l delete-emptydir-data -d 'Also drain pods with emptyDir volumes (their data is lost), as `kubectl drain --delete-emptydir-data`'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand rollback" -s q -l quiet -d 'Print only warnings and errors'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand rollback" -s v -l verbose -d 'Print every kubectl/gcloud command line and its exit status (no progress bars)'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand rollback" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand upgrade-nodes" -l version -d 'Target version (default: the control plane\'s)' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand upgrade-nodes" -l surge -d 'Extra nodes per zone during the upgrade (GKE max surge); the original setting is restored after' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand upgrade-nodes" -l timeout -d 'How long the whole upgrade may take' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand upgrade-nodes" -l project -d 'Google Cloud project of the cluster' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand upgrade-nodes" -l location -l zone -l region -d 'Zone or region of the cluster' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand upgrade-nodes" -l cluster -d 'GKE cluster name' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand upgrade-nodes" -l context -d 'Kube context to use (passed to every kubectl call)' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand upgrade-nodes" -l kubeconfig -d 'Kubeconfig file to use (passed to every kubectl call)' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand upgrade-nodes" -l request-timeout -d 'Limit for each request to the Kubernetes API (passed to every kubectl call); a kubectl call still running 10 s after it is stopped and, when safe, run again (without this flag: after 5 minutes)' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand upgrade-nodes" -s o -l output -d '`json`: one JSON object per line on stdout for each event (step started/finished, node cordoned/drained, pod evicted, operation progress) and a final result; human output stays on stderr' -r -f -a "text\t''
json\t''"
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand upgrade-nodes" -s y -l yes -d 'Confirm without being asked (required when stdin is not a terminal)'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand upgrade-nodes" -l dry-run -d 'Read only: print the plan and change nothing'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand upgrade-nodes" -s q -l quiet -d 'Print only warnings and errors'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand upgrade-nodes" -s v -l verbose -d 'Print every kubectl/gcloud command line and its exit status (no progress bars)'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand upgrade-nodes" -s h -l help -d 'Print help'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand upgrade-master" -l version -d 'Target version (default: the newest that get-server-config offers)' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand upgrade-master" -l timeout -d 'How long the upgrade may take' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand upgrade-master" -l project -d 'Google Cloud project of the cluster' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand upgrade-master" -l location -l zone -l region -d 'Zone or region of the cluster' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand upgrade-master" -l cluster -d 'GKE cluster name' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand upgrade-master" -l context -d 'Kube context to use (passed to every kubectl call)' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand upgrade-master" -l kubeconfig -d 'Kubeconfig file to use (passed to every kubectl call)' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand upgrade-master" -l request-timeout -d 'Limit for each request to the Kubernetes API (passed to every kubectl call); a kubectl call still running 10 s after it is stopped and, when safe, run again (without this flag: after 5 minutes)' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand upgrade-master" -s o -l output -d '`json`: one JSON object per line on stdout for each event (step started/finished, node cordoned/drained, pod evicted, operation progress) and a final result; human output stays on stderr' -r -f -a "text\t''
json\t''"
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand upgrade-master" -l accept-api-downtime -d 'Accept that a zonal cluster\'s Kubernetes API is down for minutes during the upgrade'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand upgrade-master" -s y -l yes -d 'Confirm without being asked (required when stdin is not a terminal)'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand upgrade-master" -l dry-run -d 'Read only: print the plan and change nothing'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand upgrade-master" -s q -l quiet -d 'Print only warnings and errors'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand upgrade-master" -s v -l verbose -d 'Print every kubectl/gcloud command line and its exit status (no progress bars)'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand upgrade-master" -s h -l help -d 'Print help'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand status" -l project -d 'Google Cloud project of the cluster' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand status" -l location -l zone -l region -d 'Zone or region of the cluster' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand status" -l cluster -d 'GKE cluster name' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand status" -l context -d 'Kube context to use (passed to every kubectl call)' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand status" -l kubeconfig -d 'Kubeconfig file to use (passed to every kubectl call)' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand status" -l request-timeout -d 'Limit for each request to the Kubernetes API (passed to every kubectl call); a kubectl call still running 10 s after it is stopped and, when safe, run again (without this flag: after 5 minutes)' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand status" -s o -l output -d '`json`: one JSON object per line on stdout for each event (step started/finished, node cordoned/drained, pod evicted, operation progress) and a final result; human output stays on stderr' -r -f -a "text\t''
json\t''"
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand status" -s q -l quiet -d 'Print only warnings and errors'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand status" -s v -l verbose -d 'Print every kubectl/gcloud command line and its exit status (no progress bars)'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand status" -s h -l help -d 'Print help'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand plan; and not __fish_seen_subcommand_from migrate help" -s o -l output -d '`json`: one JSON object per line on stdout for each event (step started/finished, node cordoned/drained, pod evicted, operation progress) and a final result; human output stays on stderr' -r -f -a "text\t''
json\t''"
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand plan; and not __fish_seen_subcommand_from migrate help" -s q -l quiet -d 'Print only warnings and errors'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand plan; and not __fish_seen_subcommand_from migrate help" -s v -l verbose -d 'Print every kubectl/gcloud command line and its exit status (no progress bars)'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand plan; and not __fish_seen_subcommand_from migrate help" -s h -l help -d 'Print help'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand plan; and not __fish_seen_subcommand_from migrate help" -f -a "migrate" -d 'What `migrate NEW_POOL` (same flags) would trip over: blockers, warnings and notes, each with the objects involved, what to do and the flag that accepts a blocker. Exit status 3 while a blocker is not accepted by its flag'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand plan; and not __fish_seen_subcommand_from migrate help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand plan; and __fish_seen_subcommand_from migrate" -l from -d 'The node pool to move away from (default: the only other pool)' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand plan; and __fish_seen_subcommand_from migrate" -l node-timeout -d 'How long to wait for the new pool\'s nodes to be Ready' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand plan; and __fish_seen_subcommand_from migrate" -l machine-type -d 'Machine type of the new pool (default: the old pool\'s)' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand plan; and __fish_seen_subcommand_from migrate" -l num-nodes -d 'Nodes per zone in the new pool (default: the most the old pool has in any zone)' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand plan; and __fish_seen_subcommand_from migrate" -l node-version -d 'Kubernetes version of the new pool (default: the control plane\'s)' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand plan; and __fish_seen_subcommand_from migrate" -l image-type -d 'Image type of the new pool (default: the old pool\'s)' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand plan; and __fish_seen_subcommand_from migrate" -l disk-size -d 'Boot disk size in GB of the new pool (default: the old pool\'s)' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand plan; and __fish_seen_subcommand_from migrate" -l disk-type -d 'Boot disk type of the new pool (default: the old pool\'s)' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand plan; and __fish_seen_subcommand_from migrate" -l grace-period -d 'Seconds each pod gets to terminate (default: the pod\'s own), as `kubectl drain --grace-period`' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand plan; and __fish_seen_subcommand_from migrate" -l drain-timeout -d 'How long one node\'s drain may take (kubectl drain --timeout)' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand plan; and __fish_seen_subcommand_from migrate" -l settle-timeout -d 'How long the displaced workloads may take to be fully ready again after a node\'s drain' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand plan; and __fish_seen_subcommand_from migrate" -l disable-eviction-after -d 'After a node\'s drain has been blocked this long (e.g. by a PodDisruptionBudget that never allows an eviction), delete its remaining pods instead of evicting them, as `kubectl drain --disable-eviction`: this BYPASSES the PodDisruptionBudgets (each bypassed pod and budget is named in a warning). Off by default; must be shorter than --drain-timeout' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand plan; and __fish_seen_subcommand_from migrate" -l max-parallel -d 'Drain up to N nodes at once (preferring nodes of one zone), never more pods of one workload at a time than its PodDisruptionBudget (or, without one, its rollout strategy) allows; workload health is gated before and after each batch' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand plan; and __fish_seen_subcommand_from migrate" -l strategy -d 'How Deployments leave a node: `surge` first moves each Deployment with pods on the node by a rolling restart (new pods start on the other pool before old ones stop; a strategy that could lower the ready count is set to maxUnavailable 0 meanwhile and restored after), then evicts what is left; `evict` only evicts, as `kubectl drain` does. A Deployment annotated kubectl-zdupgrade/move=evict is always evicted' -r -f -a "surge\t'Rolling restart onto the other pool before the drain: no downtime'
evict\t'Evict and let the controller recreate the pod: down for a start-up if nothing else serves'"
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand plan; and __fish_seen_subcommand_from migrate" -l project -d 'Google Cloud project of the cluster' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand plan; and __fish_seen_subcommand_from migrate" -l location -l zone -l region -d 'Zone or region of the cluster' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand plan; and __fish_seen_subcommand_from migrate" -l cluster -d 'GKE cluster name' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand plan; and __fish_seen_subcommand_from migrate" -l context -d 'Kube context to use (passed to every kubectl call)' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand plan; and __fish_seen_subcommand_from migrate" -l kubeconfig -d 'Kubeconfig file to use (passed to every kubectl call)' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand plan; and __fish_seen_subcommand_from migrate" -l request-timeout -d 'Limit for each request to the Kubernetes API (passed to every kubectl call); a kubectl call still running 10 s after it is stopped and, when safe, run again (without this flag: after 5 minutes)' -r
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand plan; and __fish_seen_subcommand_from migrate" -s o -l output -d '`json`: one JSON object per line on stdout for each event (step started/finished, node cordoned/drained, pod evicted, operation progress) and a final result; human output stays on stderr' -r -f -a "text\t''
json\t''"
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand plan; and __fish_seen_subcommand_from migrate" -s y -l yes -d 'Confirm draining and deleting the old pool without being asked (needed when stdin is not a terminal)'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand plan; and __fish_seen_subcommand_from migrate" -l dry-run -d 'Only read the cluster and print the plan: every command that would run'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand plan; and __fish_seen_subcommand_from migrate" -l break-lock -d 'Take over the cluster\'s lock (Lease kube-system/kubectl-zdupgrade) even if another run seems to hold it: only when that run is gone (a stale lock is taken over without it)'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand plan; and __fish_seen_subcommand_from migrate" -l keep-old-pool -d 'Stop after draining: keep the old pool (cordoned), ready for a rollback'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand plan; and __fish_seen_subcommand_from migrate" -l allow-config-drift -d 'Go on even if the old pool has settings the clone cannot reproduce'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand plan; and __fish_seen_subcommand_from migrate" -l allow-local-volumes -d 'Go on even if pods use local PersistentVolumes (they cannot follow to the new pool)'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand plan; and __fish_seen_subcommand_from migrate" -l allow-insufficient-capacity -d 'Go on even if the new pool looks too small for the pods that must move'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand plan; and __fish_seen_subcommand_from migrate" -l allow-unschedulable -d 'Go on even if some pods could not be scheduled on the new pool (labels, taints or zonal volumes it does not match)'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand plan; and __fish_seen_subcommand_from migrate" -l force -d 'Also drain pods without a controller (they are lost), as `kubectl drain --force`'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand plan; and __fish_seen_subcommand_from migrate" -l delete-emptydir-data -d 'Also drain pods with emptyDir volumes (their data is lost), as `kubectl drain --delete-emptydir-data`'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand plan; and __fish_seen_subcommand_from migrate" -s q -l quiet -d 'Print only warnings and errors'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand plan; and __fish_seen_subcommand_from migrate" -s v -l verbose -d 'Print every kubectl/gcloud command line and its exit status (no progress bars)'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand plan; and __fish_seen_subcommand_from migrate" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand plan; and __fish_seen_subcommand_from help" -f -a "migrate" -d 'What `migrate NEW_POOL` (same flags) would trip over: blockers, warnings and notes, each with the objects involved, what to do and the flag that accepts a blocker. Exit status 3 while a blocker is not accepted by its flag'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand plan; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand completion" -s o -l output -d '`json`: one JSON object per line on stdout for each event (step started/finished, node cordoned/drained, pod evicted, operation progress) and a final result; human output stays on stderr' -r -f -a "text\t''
json\t''"
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand completion" -s q -l quiet -d 'Print only warnings and errors'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand completion" -s v -l verbose -d 'Print every kubectl/gcloud command line and its exit status (no progress bars)'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand completion" -s h -l help -d 'Print help'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand help; and not __fish_seen_subcommand_from migrate rollback upgrade-nodes upgrade-master status plan completion help" -f -a "migrate" -d 'Move every workload from a node pool to a new one (created as a clone), then delete the old pool'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand help; and not __fish_seen_subcommand_from migrate rollback upgrade-nodes upgrade-master status plan completion help" -f -a "rollback" -d 'Undo a migration: uncordon the old pool, drain the new one node by node, optionally delete it'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand help; and not __fish_seen_subcommand_from migrate rollback upgrade-nodes upgrade-master status plan completion help" -f -a "upgrade-nodes" -d 'Upgrade a pool in place (GKE surge upgrade) with extra capacity added first and restored after'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand help; and not __fish_seen_subcommand_from migrate rollback upgrade-nodes upgrade-master status plan completion help" -f -a "upgrade-master" -d 'Upgrade the control plane (first, before the nodes)'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand help; and not __fish_seen_subcommand_from migrate rollback upgrade-nodes upgrade-master status plan completion help" -f -a "status" -d 'Versions, pools, unhealthy workloads and any migration in progress, with the command to continue'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand help; and not __fish_seen_subcommand_from migrate rollback upgrade-nodes upgrade-master status plan completion help" -f -a "plan" -d 'Read-only preflight: what a command would trip over, found before anything changes'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand help; and not __fish_seen_subcommand_from migrate rollback upgrade-nodes upgrade-master status plan completion help" -f -a "completion" -d 'Print a shell completion script'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand help; and not __fish_seen_subcommand_from migrate rollback upgrade-nodes upgrade-master status plan completion help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kubectl-zdupgrade -n "__fish_kubectl_zdupgrade_using_subcommand help; and __fish_seen_subcommand_from plan" -f -a "migrate" -d 'What `migrate NEW_POOL` (same flags) would trip over: blockers, warnings and notes, each with the objects involved, what to do and the flag that accepts a blocker. Exit status 3 while a blocker is not accepted by its flag'
