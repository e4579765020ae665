//! `mooring check` (in progress).

use std::process::ExitCode;

#[derive(clap::Args)]
pub struct CheckArgs {}

pub async fn run(_args: CheckArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("mooring check is not built yet")
}
