//! Versions: registration (numbering, manifest rows, lineage, audit), reads by number,
//! alias or `latest`, listings and searches, MLflow stages, deletion.

use std::collections::HashMap;

use cairn_core::access::{Actor, Need, Scope, authorize};
use cairn_core::auth::Role;
use cairn_core::model::AliasAction;
use cairn_core::search::{Comparison, OrderBy};
use cairn_core::{FileEntry, ModelName, Sha256Digest, Version, VersionRef};
use serde_json::json;

use super::aliases::{is_protected, record_move};
use super::rows::{
    DetailRow, NamedVersionRow, VERSION_COLUMNS, VersionDetailRow, VersionDetails, VersionExtras,
    VersionInsert, VersionRow, version_from_row,
};
use super::{lock_existing_model, parse_digest, touch_model, version_in};
use crate::audit::{Action, Change};
use crate::db::sql::{INSERT_CHUNK, SqlBuilder};
use crate::db::{MetadataStore, now_ms};
use crate::gc::claim_blobs;
use crate::key_values::{VERSION_PARAMS, VERSION_TAGS};
use crate::search_sql::{push_order_and_page, push_version_condition};
use crate::{Error, Result, idempotency, lineage};

/// Whether a version read lists the version's files (its manifest): one read more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileList {
    Included,
    Omitted,
}

/// The most versions whose details are read by their ids (a page); more are read by
/// their model.
const PAGE_DETAILS: usize = 1000;

impl MetadataStore {
    // ---- versions ----

    /// Inserts a version, creating its model if needed, and returns its number. The
    /// number comes from the model's `next_version` counter, bumped in the same
    /// transaction: gap-free under concurrent writers and never reused after deletes.
    /// Answers its number and its creation time (ms).
    pub(crate) async fn insert_version(&self, v: VersionInsert<'_>) -> Result<(u64, i64)> {
        self.with_retries(|| self.insert_version_once(&v)).await
    }

    pub(super) async fn insert_version_once(&self, v: &VersionInsert<'_>) -> Result<(u64, i64)> {
        let mut tx = self.write_tx().await?;
        let mut digests: Vec<Sha256Digest> = v
            .new
            .files
            .files()
            .iter()
            .map(|f| f.sha256)
            .chain(lineage::blobs(&v.new.lineage))
            .collect();
        digests.sort_unstable();
        digests.dedup();
        claim_blobs(&mut tx, &digests, None).await?;
        let now = now_ms();
        // Creates the model with its counter past version 1, or bumps the counter of
        // the existing one (locking its row until the transaction ends): one statement,
        // which also tells a missing model where one must exist.
        let (model_id, number): (i64, i64) = match v.create_model {
            true => {
                tx.query(
                    "INSERT INTO models (name, created_by, created_at, updated_at, next_version)
                     VALUES ($1, $2, $3, $3, 2)
                     ON CONFLICT (name) DO UPDATE
                        SET next_version = models.next_version + 1, updated_at = excluded.updated_at
                     RETURNING id, next_version - 1",
                )
                .bind(v.model.as_str())
                .bind(&v.actor.name)
                .bind(now)
                .fetch_one()
                .await?
            }
            false => tx
                .query(
                    "UPDATE models SET next_version = next_version + 1, updated_at = $2
                     WHERE name = $1 RETURNING id, next_version - 1",
                )
                .bind(v.model.as_str())
                .bind(now)
                .fetch_optional()
                .await?
                .ok_or_else(|| Error::ModelNotFound(v.model.to_string()))?,
        };
        let files = v.new.files.files();
        let version_id: i64 = tx.query(
            "INSERT INTO versions (model_id, number, digest, description, file_count, size, created_by, created_at,
                                   updated_at, source, run_id, run_link, logged_model_id, external)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9, $10, $11, $12, $13) RETURNING id",
        )
        .bind(model_id)
        .bind(number)
        .bind(v.digest.map(|d| d.to_hex()).unwrap_or_default())
        .bind(&v.new.description)
        .bind(files.len() as i64)
        .bind(v.new.files.total_size() as i64)
        .bind(&v.actor.name)
        .bind(now)
        .bind(&v.origin.source)
        .bind(&v.origin.run_id)
        .bind(&v.origin.run_link)
        .bind(&v.origin.logged_model_id)
        .bind(i64::from(v.digest.is_none()))
        .scalar_one()
        .await?;

        for chunk in files.chunks(INSERT_CHUNK) {
            let mut q = SqlBuilder::new(
                tx.backend,
                "INSERT INTO version_files (version_id, path, size, sha256) ",
            );
            q.push_values(chunk, |mut row, f| {
                row.push_bind(version_id)
                    .push_bind(f.path.as_str())
                    .push_bind(f.size as i64)
                    .push_bind(f.sha256.to_hex());
            });
            tx.sql(q).execute().await?;
        }
        lineage::insert(&mut tx, version_id, &v.new.lineage).await?;
        VERSION_TAGS
            .insert_all(&mut tx, version_id, &v.new.tags)
            .await?;
        VERSION_PARAMS
            .insert_all(&mut tx, version_id, &v.new.params)
            .await?;
        for (k, value) in &v.new.metrics {
            tx.query(
                "INSERT INTO version_metrics (version_id, model_id, key, value) VALUES ($1, $2, $3, $4)",
            )
            .bind(version_id)
            .bind(model_id)
            .bind(k)
                .bind(value)
                .execute()
                .await?;
        }
        Change::new(
            v.actor,
            Action::VersionCreate,
            v.model.as_str(),
            format!("{}@{number}", v.model),
        )
        .after(json!({
            "digest": v.digest.map(|d| d.to_hex()),
            "external": v.digest.is_none(),
            "files": files.len(),
            "size": v.new.files.total_size(),
            "source": v.origin.source,
            "run_id": v.origin.run_id,
            "description": v.new.description,
            "tags": v.new.tags,
        }))
        .append(&mut tx)
        .await?;
        let outcome = (number as u64, now);
        idempotency::complete(v.claim, &mut tx, &outcome).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// The version `reference` names with its tags, params, metrics and aliases, in one
    /// query (a read's cost is mostly its round trips to the database); a second query
    /// only on a miss, to tell a missing model from a missing version.
    pub(super) async fn resolve_version(
        &self,
        model: &ModelName,
        reference: &VersionRef,
    ) -> Result<(VersionRow, VersionDetails)> {
        const COLUMNS: &str = VERSION_COLUMNS;
        let target = match reference {
            VersionRef::Number(_) => format!(
                "SELECT {COLUMNS} FROM versions v JOIN models m ON m.id = v.model_id
                 WHERE m.name = $1 AND v.number = $2"
            ),
            VersionRef::Latest => format!(
                "SELECT {COLUMNS} FROM versions v JOIN models m ON m.id = v.model_id
                 WHERE m.name = $1 ORDER BY v.number DESC LIMIT 1"
            ),
            VersionRef::Alias(_) => format!(
                "SELECT {COLUMNS} FROM aliases a JOIN versions v ON v.id = a.version_id
                 JOIN models m ON m.id = a.model_id WHERE m.name = $1 AND a.alias = $2"
            ),
        };
        // The version row once per detail row (once if it has none).
        let sql = format!(
            "WITH target AS ({target})
             SELECT t.*, d.kind AS detail_kind, d.key AS detail_key, d.text AS detail_text,
                    d.number AS detail_number
             FROM target t LEFT JOIN (
               SELECT version_id, 't' AS kind, key, value AS text, CAST(NULL AS DOUBLE PRECISION) AS number
                 FROM version_tags WHERE version_id IN (SELECT id FROM target)
               UNION ALL SELECT version_id, 'p', key, value, NULL
                 FROM version_params WHERE version_id IN (SELECT id FROM target)
               UNION ALL SELECT version_id, 'm', key, NULL, value
                 FROM version_metrics WHERE version_id IN (SELECT id FROM target)
               UNION ALL SELECT version_id, 'a', alias, NULL, NULL
                 FROM aliases WHERE version_id IN (SELECT id FROM target)
             ) d ON d.version_id = t.id"
        );
        let mut query = SqlBuilder::numbered(self.backend(), &sql);
        query.bind(model.as_str());
        match reference {
            VersionRef::Number(n) => query.bind(*n as i64),
            VersionRef::Latest => &mut query,
            VersionRef::Alias(alias) => query.bind(alias.as_str()),
        };
        let rows: Vec<VersionDetailRow> = self.read_rows(query).await?;
        let mut details = VersionDetails::default();
        let mut version = None;
        for row in rows {
            if let (Some(kind), Some(key)) = (row.detail_kind, row.detail_key) {
                details.add(&kind, key, row.detail_text, row.detail_number)?;
            }
            version.get_or_insert(row.version);
        }
        details.aliases.sort();
        if let Some(version) = version {
            return Ok((version, details));
        }
        self.model_row(model).await?;
        Err(match reference {
            VersionRef::Alias(alias) => Error::AliasNotFound {
                model: model.to_string(),
                alias: alias.to_string(),
            },
            _ => Error::VersionNotFound {
                model: model.to_string(),
                reference: reference.to_string(),
            },
        })
    }

    /// A version without its manifest, and its MLflow-only state.
    pub async fn get_version_with_origin(
        &self,
        model: &ModelName,
        reference: &VersionRef,
    ) -> Result<(Version, VersionExtras)> {
        let (row, details) = self.resolve_version(model, reference).await?;
        let extras = row.extras();
        Ok((version_from_row(model.to_string(), row, details)?, extras))
    }

    /// A version, with its manifest when `files` is `Included` (`files` is `None`
    /// otherwise).
    pub async fn get_version(
        &self,
        model: &ModelName,
        reference: &VersionRef,
        files: FileList,
    ) -> Result<Version> {
        let (row, details) = self.resolve_version(model, reference).await?;
        let version_id = row.id;
        let mut version = version_from_row(model.to_string(), row, details)?;
        if files == FileList::Omitted {
            return Ok(version);
        }
        let files: Vec<(String, i64, String)> = self
            .read(
                "SELECT path, size, sha256 FROM version_files WHERE version_id = $1 ORDER BY path",
            )
            .bind(version_id)
            .fetch_all()
            .await?;
        version.files = Some(
            files
                .into_iter()
                .map(|(path, size, sha)| {
                    Ok(FileEntry {
                        path,
                        size: size as u64,
                        sha256: parse_digest(&sha)?,
                    })
                })
                .collect::<Result<_>>()?,
        );
        Ok(version)
    }

    /// The versions registered from each of the logged models `ids` (model name and
    /// number), oldest first. The reference is the version row's own `logged_model_id`,
    /// written in the version's transaction: nothing to keep in step elsewhere.
    pub async fn versions_from_logged_models(
        &self,
        ids: &[&str],
    ) -> Result<HashMap<String, Vec<(String, u64)>>> {
        let mut out: HashMap<String, Vec<(String, u64)>> = HashMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        let mut q = SqlBuilder::new(
            self.backend(),
            "SELECT v.logged_model_id, m.name, v.number FROM versions v
             JOIN models m ON m.id = v.model_id WHERE v.logged_model_id IN (",
        );
        let mut list = q.separated(", ");
        for id in ids {
            list.push_bind(*id);
        }
        list.push_unseparated(") ORDER BY v.id");
        let rows: Vec<(String, String, i64)> = self.read_rows(q).await?;
        for (id, model, number) in rows {
            out.entry(id).or_default().push((model, number as u64));
        }
        Ok(out)
    }

    pub async fn list_versions(&self, model: &ModelName) -> Result<Vec<Version>> {
        Ok(self
            .list_versions_with_origin(model)
            .await?
            .into_iter()
            .map(|(v, _)| v)
            .collect())
    }

    /// Every version of a model (without manifests) with its MLflow-only state.
    pub async fn list_versions_with_origin(
        &self,
        model: &ModelName,
    ) -> Result<Vec<(Version, VersionExtras)>> {
        let model_id = self.model_row(model).await?.id;
        let rows = self
            .read(&format!(
                "SELECT {VERSION_COLUMNS} FROM versions v WHERE v.model_id = $1 ORDER BY v.number"
            ))
            .bind(model_id)
            .fetch_all::<VersionRow>()
            .await?;
        let extras: Vec<VersionExtras> = rows.iter().map(VersionRow::extras).collect();
        let versions = self.versions_from_rows(model, model_id, rows).await?;
        Ok(versions.into_iter().zip(extras).collect())
    }

    /// Up to `limit` versions of a model numbered after `after`, oldest first, without
    /// manifests: one page of a listing (keyset paging: a page is as fast at version
    /// 100,000 as at version 1).
    pub async fn versions_after(
        &self,
        model: &ModelName,
        after: u64,
        limit: u32,
    ) -> Result<Vec<Version>> {
        let model_id = self.model_row(model).await?.id;
        let rows = self
            .read(&format!(
                "SELECT {VERSION_COLUMNS} FROM versions v WHERE v.model_id = $1 AND v.number > $2
                 ORDER BY v.number LIMIT $3"
            ))
            .bind(model_id)
            .bind(i64::try_from(after).unwrap_or(i64::MAX))
            .bind(i64::from(limit))
            .fetch_all::<VersionRow>()
            .await?;
        self.versions_from_rows(model, model_id, rows).await
    }

    /// Versions matching MLflow-style comparisons (`name`, `run_id`, `source_path`,
    /// `version_number`, `tags.KEY`), in `order` (then name ascending, number
    /// descending), from `offset`, at most `limit`: filtered, sorted and paged in SQL.
    pub async fn search_versions(
        &self,
        filter: &[Comparison],
        order: &[OrderBy],
        offset: usize,
        limit: usize,
    ) -> Result<Vec<(Version, VersionExtras)>> {
        let mut q = SqlBuilder::new(
            self.backend(),
            format!(
                "SELECT m.name, {VERSION_COLUMNS} FROM versions v JOIN models m ON m.id = v.model_id WHERE 1 = 1"
            ),
        );
        for c in filter {
            q.push(" AND ");
            push_version_condition(&mut q, self.backend(), c)?;
        }
        push_order_and_page(
            &mut q,
            order,
            |key| match key {
                "name" => Some("m.name"),
                "version_number" => Some("v.number"),
                "creation_timestamp" => Some("v.created_at"),
                "last_updated_timestamp" => Some("v.updated_at"),
                _ => None,
            },
            "m.name ASC, v.number DESC",
            offset,
            limit,
        )?;
        let rows: Vec<NamedVersionRow> = self.read_sql(q).fetch_all().await?;
        let ids: Vec<i64> = rows.iter().map(|r| r.version.id).collect();
        let mut details = self.version_details(&ids).await?;
        rows.into_iter()
            .map(|r| {
                let extras = r.version.extras();
                let model = r.name;
                let d = details.remove(&r.version.id).unwrap_or_default();
                Ok((version_from_row(model, r.version, d)?, extras))
            })
            .collect()
    }

    /// For each named model, its newest version in each MLflow stage, oldest first: what
    /// a registered model's `latest_versions` shows. Two queries for the whole page.
    pub async fn latest_versions_per_stage(
        &self,
        models: &[&str],
    ) -> Result<HashMap<String, Vec<(Version, VersionExtras)>>> {
        let mut out: HashMap<String, Vec<(Version, VersionExtras)>> = HashMap::new();
        if models.is_empty() {
            return Ok(out);
        }
        // Ids first: with a plain list of ids the planner reads the newest number per
        // (model, stage) from the indexes (a join with the names may scan every version).
        let mut q = SqlBuilder::new(self.backend(), "SELECT id FROM models WHERE name IN (");
        let mut list = q.separated(", ");
        for name in models {
            list.push_bind(*name);
        }
        list.push_unseparated(")");
        let ids: Vec<i64> = self.read_sql(q).scalar_all().await?;
        if ids.is_empty() {
            return Ok(out);
        }
        let mut q = SqlBuilder::new(
            self.backend(),
            format!(
                "SELECT m.name, {VERSION_COLUMNS} FROM
               (SELECT s.model_id, MAX(s.number) AS number FROM versions s WHERE s.model_id IN ("
            ),
        );
        let mut list = q.separated(", ");
        for id in ids {
            list.push_bind(id);
        }
        list.push_unseparated(
            ") GROUP BY s.model_id, s.stage) newest
             JOIN versions v ON v.model_id = newest.model_id AND v.number = newest.number
             JOIN models m ON m.id = v.model_id ORDER BY m.name, v.number",
        );
        let rows: Vec<NamedVersionRow> = self.read_sql(q).fetch_all().await?;
        let ids: Vec<i64> = rows.iter().map(|r| r.version.id).collect();
        let mut details = self.version_details(&ids).await?;
        for r in rows {
            let extras = r.version.extras();
            let d = details.remove(&r.version.id).unwrap_or_default();
            let version = version_from_row(r.name.clone(), r.version, d)?;
            out.entry(r.name).or_default().push((version, extras));
        }
        Ok(out)
    }

    /// Tags, params, metrics and aliases of many versions: one query per chunk of ids.
    pub(super) async fn version_details(
        &self,
        ids: &[i64],
    ) -> Result<HashMap<i64, VersionDetails>> {
        /// Ids per query: well under both engines' bound-parameter limits.
        const IDS_PER_QUERY: usize = 5000;
        let mut out: HashMap<i64, VersionDetails> = HashMap::new();
        for chunk in ids.chunks(IDS_PER_QUERY) {
            // One list of bound ids, used by all four branches.
            let mut q = SqlBuilder::new(self.backend(), "WITH ids (id) AS (");
            q.push_values(chunk, |mut row, id| {
                row.push_bind(*id);
            });
            q.push(
                // Typed NULLs: PostgreSQL settles each column's type from the first branch.
                ") SELECT version_id, 't', key, value, CAST(NULL AS DOUBLE PRECISION) FROM version_tags WHERE version_id IN (SELECT id FROM ids)
                 UNION ALL SELECT version_id, 'p', key, value, NULL FROM version_params WHERE version_id IN (SELECT id FROM ids)
                 UNION ALL SELECT version_id, 'm', key, NULL, value FROM version_metrics WHERE version_id IN (SELECT id FROM ids)
                 UNION ALL SELECT version_id, 'a', alias, NULL, NULL FROM aliases WHERE version_id IN (SELECT id FROM ids)",
            );
            let rows: Vec<DetailRow> = self.read_sql(q).fetch_all().await?;
            for (id, kind, key, text, number) in rows {
                out.entry(id).or_default().add(&kind, key, text, number)?;
            }
        }
        for d in out.values_mut() {
            d.aliases.sort();
        }
        Ok(out)
    }

    /// Completes version rows of one model with aliases, metrics, params and tags. A
    /// page (at most [`PAGE_DETAILS`] rows) reads the details of its own versions only,
    /// so its cost does not grow with the model; a longer list reads the model's.
    pub(super) async fn versions_from_rows(
        &self,
        model: &ModelName,
        model_id: i64,
        rows: Vec<VersionRow>,
    ) -> Result<Vec<Version>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let query = |select: &str, order: &str| {
            let mut q = SqlBuilder::new(self.backend(), select);
            if rows.len() <= PAGE_DETAILS {
                q.push(" WHERE t.version_id IN (");
                for (i, r) in rows.iter().enumerate() {
                    if i > 0 {
                        q.push(", ");
                    }
                    q.push_bind(r.id);
                }
                q.push(")");
            } else {
                q.push(" JOIN versions v ON v.id = t.version_id WHERE v.model_id = ")
                    .push_bind(model_id);
            }
            q.push(order);
            q
        };
        let key_values = |table: &str| {
            query(
                &format!("SELECT t.version_id, t.key, t.value FROM {table} t"),
                "",
            )
        };
        let tags: Vec<(i64, String, String)> = self
            .read_sql(key_values("version_tags"))
            .fetch_all()
            .await?;
        let params: Vec<(i64, String, String)> = self
            .read_sql(key_values("version_params"))
            .fetch_all()
            .await?;
        let metrics: Vec<(i64, String, f64)> = self
            .read_sql(key_values("version_metrics"))
            .fetch_all()
            .await?;
        let aliases: Vec<(i64, String)> = self
            .read_sql(query(
                "SELECT t.version_id, t.alias FROM aliases t",
                " ORDER BY t.alias",
            ))
            .fetch_all()
            .await?;

        let mut details: HashMap<i64, VersionDetails> = HashMap::new();
        for (id, k, v) in tags {
            details.entry(id).or_default().tags.insert(k, v);
        }
        for (id, k, v) in params {
            details.entry(id).or_default().params.insert(k, v);
        }
        for (id, k, v) in metrics {
            details.entry(id).or_default().metrics.insert(k, v);
        }
        for (id, a) in aliases {
            details.entry(id).or_default().aliases.push(a);
        }
        rows.into_iter()
            .map(|r| {
                let d = details.remove(&r.id).unwrap_or_default();
                version_from_row(model.to_string(), r, d)
            })
            .collect()
    }

    /// Deletes a version; aliases pointing at it are removed and the removal is recorded
    /// in their history.
    pub async fn delete_version(
        &self,
        model: &ModelName,
        number: u64,
        actor: &Actor,
    ) -> Result<()> {
        self.with_retries(|| self.delete_version_once(model, number, actor))
            .await
    }

    pub(super) async fn delete_version_once(
        &self,
        model: &ModelName,
        number: u64,
        actor: &Actor,
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let model_id = lock_existing_model(&mut tx, model).await?;
        let (version_id, digest): (i64, String) = tx
            .query("SELECT id, digest FROM versions WHERE model_id = $1 AND number = $2")
            .bind(model_id)
            .bind(number as i64)
            .fetch_optional()
            .await?
            .ok_or_else(|| Error::VersionNotFound {
                model: model.to_string(),
                reference: number.to_string(),
            })?;
        let now = now_ms();
        let aliases: Vec<String> = tx
            .query("SELECT alias FROM aliases WHERE version_id = $1 ORDER BY alias")
            .bind(version_id)
            .scalar_all()
            .await?;
        let removed_aliases = aliases.clone();
        for alias in aliases {
            tx.query("DELETE FROM aliases WHERE model_id = $1 AND alias = $2")
                .bind(model_id)
                .bind(&alias)
                .execute()
                .await?;
            record_move(
                &mut tx,
                model_id,
                &alias,
                Some(number as i64),
                None,
                AliasAction::VersionDeleted,
                actor,
                now,
                None,
            )
            .await?;
        }
        tx.query("DELETE FROM versions WHERE id = $1")
            .bind(version_id)
            .execute()
            .await?;
        touch_model(&mut tx, model_id, now).await?;
        Change::new(
            actor,
            Action::VersionDelete,
            model.as_str(),
            format!("{model}@{number}"),
        )
        .before(json!({ "digest": digest, "aliases": removed_aliases }))
        .append(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Moves a version to an MLflow stage; with `archive_others`, versions in that stage
    /// move to Archived.
    pub async fn set_stage(
        &self,
        model: &ModelName,
        number: u64,
        stage: &str,
        archive_others: bool,
        actor: &Actor,
    ) -> Result<()> {
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        // Serializes stage changes of one model, so "archive the others" sees them all.
        let model_id = lock_existing_model(&mut tx, model).await?;
        let version_id = version_in(&mut tx, model, model_id, number).await?;
        let old: String = tx
            .query("SELECT stage FROM versions WHERE id = $1")
            .bind(version_id)
            .scalar_one()
            .await?;
        // A stage is the legacy form of an alias: moving a version into or out of stage
        // `Production` is a move of alias `production`, and obeys its protection.
        for touched in [old.as_str(), stage] {
            let alias = touched.to_ascii_lowercase();
            if old != stage && is_protected(&mut tx, model_id, &alias).await? {
                authorize(actor, Need::new(Role::Admin, Scope::Model(model.as_str())))?;
            }
        }
        let mut archived: Vec<i64> = Vec::new();
        if archive_others && matches!(stage, "Staging" | "Production") {
            archived = tx
                .query(
                    "UPDATE versions SET stage = 'Archived', updated_at = $3
                 WHERE model_id = $1 AND stage = $2 AND id != $4 RETURNING number",
                )
                .bind(model_id)
                .bind(stage)
                .bind(now)
                .bind(version_id)
                .scalar_all()
                .await?;
            archived.sort_unstable();
        }
        tx.query("UPDATE versions SET stage = $2, updated_at = $3 WHERE id = $1")
            .bind(version_id)
            .bind(stage)
            .bind(now)
            .execute()
            .await?;
        touch_model(&mut tx, model_id, now).await?;
        Change::new(
            actor,
            Action::VersionStage,
            model.as_str(),
            format!("{model}@{number}"),
        )
        .before(json!({ "stage": old }))
        .after(json!({ "stage": stage, "archived": archived }))
        .append(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
