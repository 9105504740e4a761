//! `cairn policy set|show|delete`: promotion policies, the rules a version must meet
//! before an alias may point at it; `cairn approve NAME@N --for ALIAS`: one approval.
//! Every way of moving an alias obeys them; `cairn rollback` (back to where the alias
//! was) is the escape hatch that skips them.

use std::process::ExitCode;

use anyhow::{Result, bail};
use cairn_core::policy::{MetricRule, NotWorse, Policy, TagRule};
use cairn_core::{AliasName, ModelName, ModelVersionRef, VersionRef};

use crate::client::RegistryClient;
use crate::output::print_json;

#[derive(clap::Subcommand)]
pub enum PolicyCommand {
    /// Set (or replace) the policy of an alias, for a model or a pattern (`*`: every model).
    Set {
        /// A model name, or a pattern of `*` and `?`.
        models: String,
        alias: AliasName,
        /// A tag the version must carry: KEY=VALUE (repeatable).
        #[arg(long = "require-tag", value_name = "KEY=VALUE")]
        require_tags: Vec<TagRule>,
        /// A metric bound: 'auc>=0.9' (>, >=, <, <=, ==; repeatable).
        #[arg(long = "require-metric", value_name = "RULE")]
        require_metrics: Vec<MetricRule>,
        /// A metric that must be at least as good as the current version's: auc, or
        /// rmse:lower when lower is better (repeatable).
        #[arg(long = "not-worse", value_name = "METRIC")]
        not_worse: Vec<NotWorse>,
        /// Approvals needed, from distinct people other than the version's author.
        #[arg(long, default_value_t = 0)]
        approvals: u32,
        /// A glob some file of the version must match (repeatable).
        #[arg(long = "require-files", value_name = "PATTERN")]
        require_files: Vec<String>,
    },
    /// The policies (of one model, with NAME).
    Show {
        model: Option<ModelName>,
        #[arg(long)]
        json: bool,
    },
    /// Delete the policy of an alias.
    Delete { models: String, alias: AliasName },
}

#[derive(clap::Args)]
pub struct ApproveArgs {
    /// NAME@N.
    reference: ModelVersionRef,
    /// The alias the version is approved for.
    #[arg(long = "for", value_name = "ALIAS")]
    alias: AliasName,
    #[arg(long)]
    reason: Option<String>,
}

pub async fn run(registry: &dyn RegistryClient, cmd: PolicyCommand) -> Result<ExitCode> {
    match cmd {
        PolicyCommand::Set {
            models,
            alias,
            require_tags,
            require_metrics,
            not_worse,
            approvals,
            require_files,
        } => {
            let policy = Policy {
                require_tags,
                require_metrics,
                not_worse,
                approvals,
                require_files,
            };
            registry.set_policy(&models, &alias, &policy).await?;
            eprintln!("policy of {models}@{alias} set: {}", describe(&policy));
        }
        PolicyCommand::Show { model, json } => {
            let mut policies = registry.policies().await?;
            if let Some(model) = &model {
                policies.retain(|p| p.governs(model.as_str()));
            }
            if json {
                print_json(&policies)?;
            } else {
                for p in &policies {
                    println!(
                        "{}@{}  {}  (set by {})",
                        p.models,
                        p.alias,
                        describe(&p.policy),
                        p.set_by
                    );
                }
            }
        }
        PolicyCommand::Delete { models, alias } => {
            registry.delete_policy(&models, &alias).await?;
            eprintln!("policy of {models}@{alias} deleted");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn approve(registry: &dyn RegistryClient, args: ApproveArgs) -> Result<ExitCode> {
    let VersionRef::Number(number) = args.reference.version else {
        bail!("approve names a version number: NAME@N");
    };
    let model = &args.reference.model;
    if registry
        .approve(model, number, &args.alias, args.reason.as_deref())
        .await?
    {
        eprintln!("approved {model}@{number} for {}", args.alias);
    } else {
        eprintln!(
            "{model}@{number} was approved for {} by you already",
            args.alias
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A policy's rules on one line.
pub fn describe(policy: &Policy) -> String {
    let mut rules: Vec<String> = Vec::new();
    rules.extend(
        policy
            .require_tags
            .iter()
            .map(|t| format!("tag {}={}", t.key, t.value)),
    );
    rules.extend(policy.require_metrics.iter().map(|m| format!("metric {m}")));
    rules.extend(policy.not_worse.iter().map(|n| {
        format!(
            "{} not worse{}",
            n.key,
            if n.lower_is_better {
                " (lower is better)"
            } else {
                ""
            }
        )
    }));
    if policy.approvals > 0 {
        rules.push(format!("{} approval(s)", policy.approvals));
    }
    rules.extend(
        policy
            .require_files
            .iter()
            .map(|f| format!("a file matching {f}")),
    );
    if rules.is_empty() {
        "no rules".into()
    } else {
        rules.join(", ")
    }
}
