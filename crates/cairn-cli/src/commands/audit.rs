//! `cairn audit log|verify|head`: the tamper-evident log of every registry change;
//! `cairn audit denied`: the security log of refused writes, kept apart from it.
//!
//! `verify` recomputes the hash chain and exits 1 naming the first entry that does not
//! verify; `head` prints the newest entry as `SEQ:HASH`, which `verify --head` later
//! checks, proving nothing up to it changed.

use std::process::ExitCode;

use anyhow::{Result, bail};
use cairn_core::AuditHead;

use crate::client::RegistryClient;
use crate::output::print_json;

#[derive(clap::Subcommand)]
pub enum AuditCommand {
    /// Every change, oldest first: when, who, what, target, before → after.
    Log {
        /// Only changes to this model.
        #[arg(long)]
        model: Option<String>,
        /// Only changes at or after this time (RFC 3339, e.g. 2026-01-31T00:00:00Z).
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Recompute the hash chain; exit 1 naming the first entry that does not verify.
    Verify {
        /// A head exported earlier (SEQ:HASH, from `cairn audit head`): the entry at SEQ
        /// must still have HASH.
        #[arg(long, value_parser = parse_head)]
        head: Option<AuditHead>,
        #[arg(long)]
        json: bool,
    },
    /// Print the newest entry as SEQ:HASH, to keep outside the registry.
    Head {
        #[arg(long)]
        json: bool,
    },
    /// Refused writes (401, 403), newest last: when, who, request, why. Kept apart from
    /// the audit log, at a bounded rate.
    Denied {
        /// How many of the newest.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
}

fn parse_head(s: &str) -> Result<AuditHead, String> {
    let bad = || format!("expected SEQ:HASH (as `cairn audit head` prints), got {s:?}");
    let (seq, hash) = s.split_once(':').ok_or_else(bad)?;
    let seq = seq.parse().map_err(|_| bad())?;
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    Ok(AuditHead {
        seq,
        hash: hash.to_ascii_lowercase(),
    })
}

pub async fn run(registry: &dyn RegistryClient, cmd: AuditCommand) -> Result<ExitCode> {
    match cmd {
        AuditCommand::Log { model, since, json } => {
            let entries = registry
                .audit_log(model.as_deref(), since.as_deref())
                .await?;
            if json {
                print_json(&entries)?;
                return Ok(ExitCode::SUCCESS);
            }
            for e in &entries {
                let show = |v: &Option<serde_json::Value>| {
                    v.as_ref().map_or_else(|| "-".to_owned(), |v| v.to_string())
                };
                let at =
                    e.at.format(&time::format_description::well_known::Rfc3339)
                        .unwrap_or_default();
                println!(
                    "{:>6}  {at}  {}  {}  {}  {} -> {}",
                    e.seq,
                    actor(e),
                    e.action,
                    e.target,
                    show(&e.before),
                    show(&e.after)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Verify { head, json } => {
            let report = registry.verify_audit(head.as_ref()).await?;
            if json {
                print_json(&report)?;
            }
            match &report.broken {
                None => {
                    eprintln!(
                        "ok: {} audit entries verified; head {}:{}",
                        report.entries, report.head.seq, report.head.hash
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Some(b) => bail!("audit log broken at entry {}: {}", b.seq, b.reason),
            }
        }
        AuditCommand::Denied { limit, json } => {
            let denials = registry.denials(limit).await?;
            if json {
                print_json(&denials)?;
                return Ok(ExitCode::SUCCESS);
            }
            for d in &denials {
                let at =
                    d.at.format(&time::format_description::well_known::Rfc3339)
                        .unwrap_or_default();
                let who = match (&d.user, &d.token) {
                    (Some(user), Some(token)) => format!("{user} (token {token})"),
                    (Some(user), None) => user.clone(),
                    (None, _) => "anonymous".to_owned(),
                };
                println!(
                    "{at}  {}  {who}  {} {}  {}",
                    d.status, d.method, d.path, d.reason
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Head { json } => {
            let head = registry.audit_head().await?;
            if json {
                print_json(&head)?;
            } else {
                println!("{}:{}", head.seq, head.hash);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Who made a change: the user, and the token it came with.
fn actor(e: &cairn_core::AuditEntry) -> String {
    match &e.token {
        Some(token) => format!("{} (token {token})", e.actor),
        None => e.actor.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_head;

    #[test]
    fn heads() {
        let hash = "ab".repeat(32);
        assert_eq!(parse_head(&format!("12:{hash}")).unwrap().seq, 12);
        assert!(parse_head("12").is_err());
        assert!(parse_head(&format!("x:{hash}")).is_err());
        assert!(parse_head("12:abc").is_err());
    }
}
