//! Adapters for the external tools: a command value type and typed kubectl/gcloud wrappers.

pub mod apiproxy;
pub mod command;
pub mod gcloud;
pub mod kubectl;

use std::path::PathBuf;

use crate::errors::Error;

/// Finds `kubectl` or `gcloud` on PATH, or explains how to install it.
pub fn find_tool(tool: &'static str) -> Result<PathBuf, Error> {
    which::which(tool).map_err(|_| Error::ToolMissing {
        tool,
        hint: install_hint(tool),
    })
}

fn install_hint(tool: &str) -> &'static str {
    match tool {
        "gcloud" => "install the Google Cloud CLI (https://cloud.google.com/sdk/docs/install) and make sure `gcloud` is on PATH",
        "kubectl" => "install it with `gcloud components install kubectl` or your OS package manager (e.g. `apt-get install kubectl`)",
        _ => "install it and make sure it is on PATH",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_tools_say_how_to_install_them() {
        let err = find_tool("gcloud-that-does-not-exist").unwrap_err();
        assert_eq!(err.exit_code(), crate::errors::code::TOOL_MISSING);
        assert!(install_hint("gcloud").contains("Google Cloud CLI"));
        assert!(install_hint("kubectl").contains("gcloud components install kubectl"));
    }
}
