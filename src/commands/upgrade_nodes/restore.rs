//! Putting the pool's upgrade settings back once the upgrade is over (or stopped).

use serde_json::json;

use super::settings::{load_state, Surge};
use super::state::Upgrade;
use crate::engine::upgrade::{rerun_command, step_error};
use crate::report::Event;
use crate::tools::command::Command;

impl Upgrade<'_> {
    /// Puts back the settings recorded before the upgrade, then forgets the record. Prints the
    /// exact command when it cannot.
    pub(super) fn restore_surge(&mut self) -> anyhow::Result<()> {
        let Some(saved) = self.saved.clone().or_else(|| {
            load_state(self.state_path.as_ref()).filter(|st| st.pool == self.pool.name)
        }) else {
            return Ok(());
        };
        let pool = self.pool_name().to_string();
        if saved.raised {
            let command = self.restore_command(saved.original);
            self.reporter.step(&format!(
                "Restoring pool {pool}'s upgrade settings ({})",
                saved.original
            ));
            self.reporter.info(&command.to_string());
            let spinner = self
                .reporter
                .spinner(&format!("gcloud: updating pool {pool}"));
            if let Err(e) = self.session.gcloud.run(&command) {
                spinner.abandon();
                return Err(step_error(
                    "restore the pool's upgrade settings",
                    e,
                    &format!(
                        "the upgrade is over but pool {pool} still upgrades with maxSurge {}, maxUnavailable 0 instead of {}",
                        self.args.surge, saved.original
                    ),
                    &format!("restore them with `{command}` (or re-run `{}`)", rerun_command()),
                ));
            }
            spinner.finish(&format!("pool {pool}: {} restored", saved.original));
            self.reporter.event(
                Event::SurgeRestored,
                json!({"pool": pool, "to": saved.original}),
            );
        }
        if let Some(path) = &self.state_path {
            let _ = std::fs::remove_file(path);
        }
        self.saved = None;
        Ok(())
    }

    pub(super) fn restore_command(&self, original: Surge) -> Command {
        self.session.gcloud.update_upgrade_settings_command(
            &self.session.cluster.name,
            self.pool_name(),
            original.max_surge,
            original.max_unavailable,
        )
    }
}
