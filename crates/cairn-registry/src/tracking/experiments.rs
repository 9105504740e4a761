//! Experiments: create, read, search (filters matched in memory), rename, delete and
//! restore, tags.

use std::collections::{BTreeMap, HashMap};

use cairn_core::search::{Comparison, OrderBy};
use cairn_core::source::artifact_uri;
use cairn_core::tracking::{DatasetSummary, Experiment, Lifecycle};

use super::matching::experiment_matches;
use super::rows::{EXPERIMENT_COLUMNS, ExperimentRow};
use super::{TAG_VALUE_MAX, Tracking, ViewType, check_key, invalid, truncate};
use crate::db::now_ms;
use crate::db::sql::SqlBuilder;
use crate::key_values::EXPERIMENT_TAGS;
use crate::{Error, Missing, Refusal, Result};

impl Tracking {
    // ---- experiments ----

    pub async fn create_experiment(
        &self,
        name: &str,
        artifact_location: Option<&str>,
        tags: &BTreeMap<String, String>,
    ) -> Result<i64> {
        if name.is_empty() || name.len() > 500 {
            return Err(invalid("experiment names are 1-500 characters long"));
        }
        for key in tags.keys() {
            check_key(key)?;
        }
        let mut tx = self.meta.write_tx().await?;
        // Created once: a lost commit's outcome is learned from this mark (`db::outcome`).
        tx.mark_commit().await?;
        let now = now_ms();
        let id: Option<i64> = tx
            .query(
                "INSERT INTO experiments (name, artifact_location, creation_time, last_update_time)
             VALUES ($1, '', $2, $2) ON CONFLICT (name) DO NOTHING RETURNING id",
            )
            .bind(name)
            .bind(now)
            .scalar_optional()
            .await?;
        let id =
            id.ok_or_else(|| Error::AlreadyExists(format!("Experiment '{name}' already exists.")))?;
        let location = artifact_location
            .filter(|l| !l.is_empty())
            .map_or_else(|| artifact_uri(&id.to_string()), str::to_owned);
        tx.query("UPDATE experiments SET artifact_location = $2 WHERE id = $1")
            .bind(id)
            .bind(&location)
            .execute()
            .await?;
        for (k, v) in tags {
            tx.query(&EXPERIMENT_TAGS.insert_sql())
                .bind(id)
                .bind(k)
                .bind(truncate(v, TAG_VALUE_MAX))
                .execute()
                .await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    pub(super) async fn experiment_from_row(&self, r: ExperimentRow) -> Result<Experiment> {
        Ok(self.experiments_from_rows(vec![r]).await?.remove(0))
    }

    /// Experiment rows with their tags, read in one query for all of them.
    pub(super) async fn experiments_from_rows(
        &self,
        rows: Vec<ExperimentRow>,
    ) -> Result<Vec<Experiment>> {
        let mut q = SqlBuilder::new(
            self.meta.backend(),
            "SELECT experiment_id, key, value FROM experiment_tags WHERE experiment_id IN (",
        );
        let mut sep = q.separated(", ");
        for r in &rows {
            sep.push_bind(r.id);
        }
        q.push(")");
        let tags: Vec<(i64, String, String)> = if rows.is_empty() {
            Vec::new()
        } else {
            self.meta.read_sql(q).fetch_all().await?
        };
        let mut tags_by: HashMap<i64, BTreeMap<String, String>> = HashMap::new();
        for (id, k, v) in tags {
            tags_by.entry(id).or_default().insert(k, v);
        }
        Ok(rows
            .into_iter()
            .map(|r| Experiment {
                tags: tags_by.remove(&r.id).unwrap_or_default(),
                id: r.id,
                name: r.name,
                artifact_location: r.artifact_location,
                lifecycle: Lifecycle::parse(&r.lifecycle_stage).unwrap_or(Lifecycle::Active),
                creation_time: r.creation_time,
                last_update_time: r.last_update_time,
            })
            .collect())
    }

    pub async fn get_experiment(&self, id: i64) -> Result<Experiment> {
        let row: ExperimentRow = self
            .meta
            .read(&format!(
                "SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE id = $1"
            ))
            .bind(id)
            .fetch_optional()
            .await?
            .ok_or_else(|| Error::NotFound(Missing::Experiment(id)))?;
        self.experiment_from_row(row).await
    }

    pub async fn get_experiment_by_name(&self, name: &str) -> Result<Experiment> {
        let row: ExperimentRow = self
            .meta
            .read(&format!(
                "SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE name = $1"
            ))
            .bind(name)
            .fetch_optional()
            .await?
            .ok_or_else(|| Error::NotFound(Missing::ExperimentNamed(name.to_owned())))?;
        self.experiment_from_row(row).await
    }

    /// Experiments matching `filter` (name and tags), newest first unless ordered.
    pub async fn search_experiments(
        &self,
        view: ViewType,
        filter: &[Comparison],
        order_by: &[OrderBy],
    ) -> Result<Vec<Experiment>> {
        let rows: Vec<ExperimentRow> = self
            .meta
            .read(&format!(
                "SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE {} ORDER BY creation_time DESC, id ASC",
                view.sql("lifecycle_stage")
            ))
            .fetch_all()
            .await?;
        let mut out = Vec::new();
        for e in self.experiments_from_rows(rows).await? {
            if filter
                .iter()
                .map(|c| experiment_matches(&e, c))
                .collect::<Result<Vec<_>>>()?
                .into_iter()
                .all(|m| m)
            {
                out.push(e);
            }
        }
        for o in order_by.iter().rev() {
            let key = o.key.as_str();
            let cmp = |a: &Experiment, b: &Experiment| match key {
                "name" => a.name.cmp(&b.name),
                "experiment_id" => a.id.cmp(&b.id),
                "creation_time" => a.creation_time.cmp(&b.creation_time),
                "last_update_time" => a.last_update_time.cmp(&b.last_update_time),
                _ => std::cmp::Ordering::Equal,
            };
            if !["name", "experiment_id", "creation_time", "last_update_time"].contains(&key) {
                return Err(invalid(format!("Invalid order_by entity: {key}")));
            }
            out.sort_by(|a, b| if o.ascending { cmp(a, b) } else { cmp(b, a) });
        }
        Ok(out)
    }

    pub async fn rename_experiment(&self, id: i64, new_name: &str) -> Result<()> {
        if new_name.is_empty() || new_name.len() > 500 {
            return Err(invalid("experiment names are 1-500 characters long"));
        }
        self.get_experiment(id).await?;
        let result = self
            .meta
            .write("UPDATE experiments SET name = $2, last_update_time = $3 WHERE id = $1")
            .bind(id)
            .bind(new_name)
            .bind(now_ms())
            .execute()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.is_unique_violation() => Err(Error::AlreadyExists(format!(
                "Experiment '{new_name}' already exists."
            ))),
            Err(e) => Err(e),
        }
    }

    pub async fn set_experiment_lifecycle(&self, id: i64, lifecycle: Lifecycle) -> Result<()> {
        self.get_experiment(id).await?;
        if id == 0 && lifecycle == Lifecycle::Deleted {
            return Err(invalid("Cannot delete the default experiment '0'."));
        }
        let mut tx = self.meta.write_tx().await?;
        let now = now_ms();
        tx.query(
            "UPDATE experiments SET lifecycle_stage = $2, last_update_time = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(lifecycle.as_str())
        .bind(now)
        .execute()
        .await?;
        tx.query("UPDATE runs SET lifecycle_stage = $2 WHERE experiment_id = $1")
            .bind(id)
            .bind(lifecycle.as_str())
            .execute()
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn set_experiment_tag(&self, id: i64, key: &str, value: &str) -> Result<()> {
        check_key(key)?;
        let exp = self.get_experiment(id).await?;
        if exp.lifecycle == Lifecycle::Deleted {
            return Err(Error::Refused(Refusal::ExperimentDeleted {
                id,
                for_run: false,
            }));
        }
        self.meta
            .write(&EXPERIMENT_TAGS.upsert_sql())
            .bind(id)
            .bind(key)
            .bind(truncate(value, TAG_VALUE_MAX))
            .execute()
            .await?;
        Ok(())
    }

    pub async fn delete_experiment_tag(&self, id: i64, key: &str) -> Result<()> {
        self.get_experiment(id).await?;
        self.meta
            .write("DELETE FROM experiment_tags WHERE experiment_id = $1 AND key = $2")
            .bind(id)
            .bind(key)
            .execute()
            .await?;
        Ok(())
    }
}

impl Tracking {
    /// The distinct datasets the runs of `experiment_ids` used, with their context (at
    /// most 1,000, as MLflow answers).
    pub async fn dataset_summaries(&self, experiment_ids: &[i64]) -> Result<Vec<DatasetSummary>> {
        if experiment_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = SqlBuilder::new(
            self.meta.backend(),
            "SELECT DISTINCT r.experiment_id, i.name, i.digest, i.context
             FROM run_inputs i JOIN runs r ON r.id = i.run_id WHERE r.experiment_id IN (",
        );
        let mut list = q.separated(", ");
        for id in experiment_ids {
            list.push_bind(*id);
        }
        list.push_unseparated(") ORDER BY r.experiment_id, i.name, i.digest");
        q.push_limit(1000, 0);
        let rows: Vec<(i64, String, String, Option<String>)> =
            self.meta.read_sql(q).fetch_all().await?;
        Ok(rows
            .into_iter()
            .map(|(experiment_id, name, digest, context)| DatasetSummary {
                experiment_id,
                name,
                digest,
                context,
            })
            .collect())
    }
}
