//! One module per subcommand.

pub mod completion;
pub mod evacuate;
pub mod migrate;
pub mod plan;
pub mod rollback;
pub mod status;
pub mod surge;
pub mod upgrade;
pub mod upgrade_master;
pub mod upgrade_nodes;
