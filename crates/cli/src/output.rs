//! How listings print: one `-o table|json|yaml` flag and one table layout for every
//! command, so `app list`, `appset list`, `cluster list`, `account list` and `rollout list`
//! look alike and a script can rely on `-o json` everywhere.
//!
//! Tables are left-aligned columns two spaces apart, trailing blanks trimmed; JSON is
//! pretty-printed; YAML is one document. What goes into a row is each command's business.

use clap::ValueEnum;
use serde::Serialize;

/// The `-o` flag of the listing and `get` commands.
#[derive(Clone, Copy, Debug, ValueEnum, Default, PartialEq)]
pub enum Output {
    #[default]
    Table,
    Json,
    Yaml,
}

/// Prints `rows` (the first is the header) as aligned columns.
pub fn print_table(rows: &[Vec<String>]) {
    let cols = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map_or(0, String::len))
                .max()
                .unwrap_or(0)
        })
        .collect();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, cell)| format!("{cell:w$}", w = widths.get(i).copied().unwrap_or(0)))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
}

/// Prints `v` as `-o json` or `-o yaml` ask; tables are printed by the caller.
pub fn emit<T: Serialize>(v: &T, output: Output) -> anyhow::Result<()> {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(v)?),
        Output::Yaml => print!("{}", serde_saphyr::to_string(v)?),
        Output::Table => anyhow::bail!("internal error: a table is printed by its command"),
    }
    Ok(())
}
