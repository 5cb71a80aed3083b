//! zdupgrade-sim: a simulated GKE cluster.
