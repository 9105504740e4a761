//! Promotion policies (`alias_policies`) and approvals (`version_approvals`): their
//! rows, written with their audit entries, and read back.

use cairn_core::access::Actor;
use cairn_core::auth::ModelPattern;
use cairn_core::policy::{Policy, PolicyRecord, VersionFacts};
use cairn_core::{AliasName, ModelName};
use serde_json::json;

use super::version_in;
use crate::Result;
use crate::audit::{Action, Change};
use crate::db::write::WriteTx;
use crate::db::{MetadataStore, corrupt_row, now_ms, time_of};

/// Sets (or replaces) the policy of `alias` for the models `models` names; recorded.
/// Answers the policy as stored.
pub(crate) async fn write_policy(
    tx: &mut WriteTx,
    models: &str,
    alias: &AliasName,
    policy: &Policy,
    actor: &Actor,
) -> Result<PolicyRecord> {
    let set_at = now_ms();
    let rules = serde_json::to_string(policy).expect("a policy encodes");
    let before: Option<String> = tx
        .query("SELECT rules FROM alias_policies WHERE models = $1 AND alias = $2")
        .bind(models)
        .bind(alias.as_str())
        .scalar_optional()
        .await?;
    tx.query(
        "INSERT INTO alias_policies (models, alias, rules, set_by, set_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (models, alias) DO UPDATE SET rules = $3, set_by = $4, set_at = $5",
    )
    .bind(models)
    .bind(alias.as_str())
    .bind(&rules)
    .bind(&actor.name)
    .bind(set_at)
    .execute()
    .await?;
    let decode = |text: &str| serde_json::from_str::<serde_json::Value>(text).ok();
    Change::new(
        actor,
        Action::PolicySet,
        model_of(models),
        format!("{models}@{alias}"),
    )
    .before(
        before
            .as_deref()
            .and_then(decode)
            .unwrap_or(serde_json::Value::Null),
    )
    .after(decode(&rules).unwrap_or(serde_json::Value::Null))
    .append(tx)
    .await?;
    Ok(PolicyRecord {
        models: models.to_owned(),
        alias: alias.to_string(),
        policy: policy.clone(),
        set_by: actor.name.clone(),
        set_at: time_of(set_at),
    })
}

/// Deletes the policy; `false` when there was none.
pub(crate) async fn delete_policy(
    tx: &mut WriteTx,
    models: &str,
    alias: &AliasName,
    actor: &Actor,
) -> Result<bool> {
    let before: Option<String> = tx
        .query("DELETE FROM alias_policies WHERE models = $1 AND alias = $2 RETURNING rules")
        .bind(models)
        .bind(alias.as_str())
        .scalar_optional()
        .await?;
    let Some(before) = before else {
        return Ok(false);
    };
    Change::new(
        actor,
        Action::PolicyDelete,
        model_of(models),
        format!("{models}@{alias}"),
    )
    .before(serde_json::from_str::<serde_json::Value>(&before).unwrap_or(serde_json::Value::Null))
    .append(tx)
    .await?;
    Ok(true)
}

/// Records `actor`'s approval of version `number` of the (locked) model for `alias`;
/// `false` when the actor had approved it already.
pub(crate) async fn write_approval(
    tx: &mut WriteTx,
    model: &ModelName,
    model_id: i64,
    number: u64,
    alias: &AliasName,
    actor: &Actor,
    reason: Option<&str>,
) -> Result<bool> {
    let version_id = version_in(tx, model, model_id, number).await?;
    let added = tx
        .query(
            "INSERT INTO version_approvals (version_id, alias, actor, reason, at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (version_id, alias, actor) DO NOTHING",
        )
        .bind(version_id)
        .bind(alias.as_str())
        .bind(&actor.name)
        .bind(reason)
        .bind(now_ms())
        .execute()
        .await?;
    if added == 0 {
        return Ok(false);
    }
    Change::new(
        actor,
        Action::VersionApprove,
        model.as_str(),
        format!("{model}@{number}"),
    )
    .after(json!({ "alias": alias.as_str(), "reason": reason }))
    .append(tx)
    .await?;
    Ok(true)
}

/// What the policies governing an alias are evaluated on, read in one (locking)
/// transaction: nothing it holds can change until that transaction ends.
pub(crate) struct Evidence {
    pub policies: Vec<Policy>,
    pub candidate: VersionFacts,
    pub current: Option<VersionFacts>,
    pub approvers: Vec<String>,
}

/// The evidence for moving `alias` of the (locked) model to version `number` from
/// `current`; `None` when no policy governs the alias.
pub(crate) async fn evidence_in(
    tx: &mut WriteTx,
    model: &ModelName,
    model_id: i64,
    alias: &AliasName,
    number: u64,
    current: Option<u64>,
) -> Result<Option<Evidence>> {
    let rows: Vec<(String, String)> = tx
        .query("SELECT models, rules FROM alias_policies WHERE alias = $1 ORDER BY models")
        .bind(alias.as_str())
        .fetch_all()
        .await?;
    let mut policies = Vec::new();
    for (models, rules) in rows {
        if ModelPattern::new(&models).is_ok_and(|m| m.matches(model.as_str())) {
            policies.push(serde_json::from_str(&rules).map_err(|_| corrupt_row("policy rules"))?);
        }
    }
    if policies.is_empty() {
        return Ok(None);
    }
    let candidate_id = version_in(tx, model, model_id, number).await?;
    let candidate = facts_in(tx, model, number, candidate_id).await?;
    let current = match current.filter(|c| *c != number) {
        Some(n) => {
            let id = version_in(tx, model, model_id, n).await?;
            Some(facts_in(tx, model, n, id).await?)
        }
        None => None,
    };
    let approvers: Vec<String> = tx
        .query("SELECT actor FROM version_approvals WHERE version_id = $1 AND alias = $2 ORDER BY actor")
        .bind(candidate_id)
        .bind(alias.as_str())
        .scalar_all()
        .await?;
    Ok(Some(Evidence {
        policies,
        candidate,
        current,
        approvers,
    }))
}

async fn facts_in(
    tx: &mut WriteTx,
    model: &ModelName,
    number: u64,
    version_id: i64,
) -> Result<VersionFacts> {
    let created_by: String = tx
        .query("SELECT created_by FROM versions WHERE id = $1")
        .bind(version_id)
        .scalar_one()
        .await?;
    let tags: Vec<(String, String)> = tx
        .query("SELECT key, value FROM version_tags WHERE version_id = $1")
        .bind(version_id)
        .fetch_all()
        .await?;
    let metrics: Vec<(String, f64)> = tx
        .query("SELECT key, value FROM version_metrics WHERE version_id = $1")
        .bind(version_id)
        .fetch_all()
        .await?;
    let files: Vec<String> = tx
        .query("SELECT path FROM version_files WHERE version_id = $1 ORDER BY path")
        .bind(version_id)
        .scalar_all()
        .await?;
    Ok(VersionFacts {
        model: model.to_string(),
        version: number,
        created_by,
        tags: tags.into_iter().collect(),
        metrics: metrics.into_iter().collect(),
        files,
    })
}

/// The model an audit entry of a policy names: the model itself for a policy of one
/// model, none (registry-wide) for a pattern.
fn model_of(models: &str) -> &str {
    if ModelPattern::is_pattern(models) {
        ""
    } else {
        models
    }
}

impl MetadataStore {
    /// Every policy, by models and alias.
    pub async fn policies(&self) -> Result<Vec<PolicyRecord>> {
        let rows: Vec<(String, String, String, String, i64)> = self
            .read("SELECT models, alias, rules, set_by, set_at FROM alias_policies ORDER BY models, alias")
            .fetch_all()
            .await?;
        rows.into_iter()
            .map(|(models, alias, rules, set_by, set_at)| {
                Ok(PolicyRecord {
                    models,
                    alias,
                    policy: serde_json::from_str(&rules)
                        .map_err(|_| corrupt_row("policy rules"))?,
                    set_by,
                    set_at: time_of(set_at),
                })
            })
            .collect()
    }
}
