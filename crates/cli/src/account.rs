//! `mooring account …` and `mooring proj can-i`: accounts, API tokens and RBAC questions,
//! against the management cluster (argument parsing and glue; the logic is in
//! `mooring_server::{rbac, auth, store}`, the same code the REST API runs).
//!
//! Like `argocd admin …`, these commands act with the caller's kubeconfig rights on the
//! settings objects (`mooring-cm`, `mooring-rbac-cm`, `mooring-secret`), not through the
//! API. Tokens are printed once and stored only as SHA-256 hashes.

use crate::app::Common;
use crate::output::{emit, Output};
use anyhow::Context as _;
use clap::Subcommand;
use mooring_server::store::Store;
use serde_json::json;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum AccountCommand {
    /// Generate an API token (printed once). ACCOUNT may be a local account or a project
    /// role `proj:PROJECT:ROLE`.
    GenerateToken {
        /// Account (default admin).
        #[arg(long, short = 'a', default_value = "admin")]
        account: String,
        /// Lifetime such as 90d, 24h, 30m; 0 = never expires.
        #[arg(long, short = 'e', default_value = "0")]
        expires_in: String,
    },
    /// Revoke a token by id.
    DeleteToken {
        id: String,
        #[arg(long, short = 'a', default_value = "admin")]
        account: String,
    },
    /// List local accounts and their tokens.
    List {
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
    },
}

#[derive(Subcommand, Debug)]
pub enum ProjCommand {
    /// May ACCOUNT do ACTION on RESOURCE OBJECT? Prints yes/no; exit 0 yes, 1 no.
    /// Example: `mooring proj can-i alice sync applications ml-platform/inference-east`.
    #[command(name = "can-i")]
    CanI {
        /// A local account (its groups apply), `proj:PROJECT:ROLE`, or a role/group name.
        account: String,
        /// get, create, update, delete, sync, override, action/…
        action: String,
        /// applications, applicationsets, projects, clusters, repositories, accounts, …
        resource: String,
        /// PROJECT/APP for applications; the name otherwise.
        object: String,
    },
    /// Project roles (`argocd proj role …`).
    Role {
        #[command(subcommand)]
        command: RoleCommand,
    },
}

#[derive(Subcommand, Debug)]
pub enum RoleCommand {
    /// Generate a token bound to `proj:PROJECT:ROLE` (printed once).
    CreateToken {
        project: String,
        role: String,
        /// Lifetime such as 90d, 24h, 30m; 0 = never expires.
        #[arg(long, short = 'e', default_value = "0")]
        expires_in: String,
    },
    /// Revoke a project role token by id.
    DeleteToken {
        project: String,
        role: String,
        id: String,
    },
}

async fn store(common: &Common) -> anyhow::Result<Store> {
    // Accounts, tokens and RBAC live in the control-plane namespace only.
    let m = crate::connect::connect(&common.management).await?;
    Ok(Store::new(m.client.clone(), m.namespace()))
}

pub async fn run_proj(cmd: ProjCommand, common: Common) -> anyhow::Result<ExitCode> {
    match cmd {
        ProjCommand::CanI {
            account,
            action,
            resource,
            object,
        } => {
            if !mooring_server::rbac::RESOURCES.contains(&resource.as_str()) {
                eprintln!(
                    "warning: {resource:?} is not a resource Argo CD's RBAC knows ({})",
                    mooring_server::rbac::RESOURCES.join(", ")
                );
            }
            let st = store(&common).await?;
            let subject = st.subject(&account).await?;
            let yes = st.can_i(&subject, &action, &resource, &object).await?;
            println!("{}", if yes { "yes" } else { "no" });
            Ok(if yes {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        ProjCommand::Role {
            command:
                RoleCommand::CreateToken {
                    project,
                    role,
                    expires_in,
                },
        } => {
            let st = store(&common).await?;
            generate(&st, &format!("proj:{project}:{role}"), &expires_in).await
        }
        ProjCommand::Role {
            command: RoleCommand::DeleteToken { project, role, id },
        } => {
            let st = store(&common).await?;
            revoke(&st, &format!("proj:{project}:{role}"), &id).await
        }
    }
}

/// Issue a token for an account or `proj:P:R` after checking it may hold one.
async fn generate(st: &Store, account: &str, expires_in: &str) -> anyhow::Result<ExitCode> {
    let exp = mooring_server::auth::parse_duration(expires_in)?;
    if let Some((project, role)) = account
        .strip_prefix("proj:")
        .and_then(|r| r.split_once(':'))
    {
        let p = st.project(project).await?.with_context(|| {
            format!(
                "project {project:?} not found in namespace {}",
                st.namespace
            )
        })?;
        if p.role(role).is_none() {
            anyhow::bail!("project {project:?} has no role {role:?}");
        }
    } else {
        let accounts = st.accounts().await?;
        mooring_server::auth::account_for(&accounts, account)?;
    }
    let (token, rec) = st.issue(account, exp).await?;
    eprintln!(
        "token {} for {account}{} (shown once; stored only as a hash)",
        rec.id,
        rec.expires_at
            .and_then(|e| mooring_core::time::from_unix(e).ok())
            .map(|t| format!(", expires {}", mooring_core::time::format(t)))
            .unwrap_or_default(),
    );
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}

async fn revoke(st: &Store, account: &str, id: &str) -> anyhow::Result<ExitCode> {
    if st.revoke(account, id).await? {
        println!("token {id} of {account} revoked");
        Ok(ExitCode::SUCCESS)
    } else {
        anyhow::bail!("{account} has no token {id}")
    }
}

pub async fn run(cmd: AccountCommand, common: Common) -> anyhow::Result<ExitCode> {
    let st = store(&common).await?;
    match cmd {
        AccountCommand::GenerateToken {
            account,
            expires_in,
        } => generate(&st, &account, &expires_in).await,
        AccountCommand::DeleteToken { id, account } => revoke(&st, &account, &id).await,
        AccountCommand::List { output } => {
            let accounts = st.accounts().await?;
            let tokens = st.tokens().await?;
            let now = mooring_core::time::now().as_second();
            let rows: Vec<serde_json::Value> = accounts
                .iter()
                .map(|a| {
                    let t: Vec<_> = tokens
                        .tokens
                        .iter()
                        .filter(|t| t.subject == a.name)
                        .map(|t| {
                            json!({"id": t.id, "issuedAt": t.issued_at, "expiresAt": t.expires_at,
                                        "expired": t.expires_at.is_some_and(|e| e <= now)})
                        })
                        .collect();
                    json!({"name": a.name, "enabled": a.enabled, "capabilities": a.capabilities,
                           "groups": a.groups, "tokens": t})
                })
                .collect();
            match output {
                Output::Json | Output::Yaml => emit(&rows, output)?,
                Output::Table => {
                    println!(
                        "{:16} {:8} {:16} {:24} TOKENS",
                        "NAME", "ENABLED", "CAPABILITIES", "GROUPS"
                    );
                    for a in &accounts {
                        let n = tokens
                            .tokens
                            .iter()
                            .filter(|t| t.subject == a.name && t.expires_at.is_none_or(|e| e > now))
                            .count();
                        println!(
                            "{:16} {:8} {:16} {:24} {n}",
                            a.name,
                            a.enabled,
                            a.capabilities.join(","),
                            a.groups.join(",")
                        );
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
