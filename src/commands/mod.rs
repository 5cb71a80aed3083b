//! One module per subcommand: each turns its arguments into what the engine needs, runs it and
//! renders the result.

pub mod completion;
pub mod migrate;
pub mod plan_migrate;
pub mod rollback;
pub mod selector;
pub mod status;
pub mod upgrade_master;
pub mod upgrade_nodes;
