//! One module per subcommand.

pub mod completion;
pub mod migrate;
pub mod rollback;
pub mod status;
pub mod upgrade_master;
pub mod upgrade_nodes;
