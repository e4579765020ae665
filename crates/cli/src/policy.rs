//! `mooring policy test|verify|test-rego` (in progress).

use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum PolicyCommand {}

pub async fn run(command: PolicyCommand) -> anyhow::Result<ExitCode> {
    match command {}
}
