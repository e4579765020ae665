//! `mooring bench policy` (in progress).

pub fn run(_objects: usize) -> anyhow::Result<()> {
    anyhow::bail!("the policy benchmark is not built yet")
}
