//! Operator commands that run against the database and exit: the only way, besides the
//! `auth.admins` setting, to make someone an administrator. Never an API call, so no
//! compromised account can grant itself more.

use crate::auth::now_ms;
use chat_domain::Role;
use chat_store::{Directory, NewAuditEntry, StoreError};

#[derive(Debug, Clone, clap::Subcommand)]
pub enum AdminCommand {
    /// Give a registered user the admin role, then exit.
    GrantAdmin { username: String },
    /// Take the admin role away, then exit.
    RevokeAdmin { username: String },
}

#[derive(Debug, thiserror::Error)]
pub enum AdminCommandError {
    #[error("no registered user named {0:?}")]
    NoSuchUser(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AdminCommand {
    /// Applies the command and writes it to the audit log (actor `cli`). Returns what to
    /// tell the operator.
    pub async fn run(&self, directory: &dyn Directory) -> Result<String, AdminCommandError> {
        let (username, role, action) = match self {
            Self::GrantAdmin { username } => (username, Role::Admin, "grant_admin"),
            Self::RevokeAdmin { username } => (username, Role::User, "revoke_admin"),
        };
        if !directory.set_role(username, role).await? {
            return Err(AdminCommandError::NoSuchUser(username.clone()));
        }
        let entry = NewAuditEntry {
            actor_id: "cli",
            actor_name: "command line",
            action,
            target: username,
            detail: "",
        };
        directory.audit(&entry, now_ms()).await?;
        Ok(format!("{username} is now {}", role.as_str()))
    }
}
