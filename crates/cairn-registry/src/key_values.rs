//! Tags and params: the `(owner, key) → value` tables of every aggregate (models,
//! versions, experiments, runs, logged models). Their statements are written here once.

use std::collections::BTreeMap;

use crate::Result;
use crate::db::sql::{INSERT_CHUNK, SqlBuilder};
use crate::db::write::WriteTx;

/// One key-value table and the column naming its owner.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyValues {
    table: &'static str,
    owner: &'static str,
}

pub(crate) const MODEL_TAGS: KeyValues = KeyValues::new("model_tags", "model_id");
pub(crate) const VERSION_TAGS: KeyValues = KeyValues::new("version_tags", "version_id");
pub(crate) const VERSION_PARAMS: KeyValues = KeyValues::new("version_params", "version_id");
pub(crate) const EXPERIMENT_TAGS: KeyValues = KeyValues::new("experiment_tags", "experiment_id");
pub(crate) const RUN_TAGS: KeyValues = KeyValues::new("run_tags", "run_id");
pub(crate) const RUN_PARAMS: KeyValues = KeyValues::new("run_params", "run_id");
pub(crate) const LOGGED_MODEL_TAGS: KeyValues = KeyValues::new("logged_model_tags", "model_id");
pub(crate) const LOGGED_MODEL_PARAMS: KeyValues = KeyValues::new("logged_model_params", "model_id");

impl KeyValues {
    const fn new(table: &'static str, owner: &'static str) -> Self {
        Self { table, owner }
    }

    pub fn table(self) -> &'static str {
        self.table
    }

    pub fn owner(self) -> &'static str {
        self.owner
    }

    /// Adds a pair to a new owner: `$1` the owner, `$2` the key, `$3` the value.
    pub fn insert_sql(self) -> String {
        format!(
            "INSERT INTO {} ({}, key, value) VALUES ($1, $2, $3)",
            self.table, self.owner
        )
    }

    /// Sets a pair, replacing the key's value if the owner has it: `$1` the owner, `$2`
    /// the key, `$3` the value.
    pub fn upsert_sql(self) -> String {
        format!(
            "{} ON CONFLICT ({}, key) DO UPDATE SET value = excluded.value",
            self.insert_sql(),
            self.owner
        )
    }

    /// Adds every pair of `values` to the new owner `owner`, a thousand rows a statement.
    pub async fn insert_all(
        self,
        tx: &mut WriteTx,
        owner: i64,
        values: &BTreeMap<String, String>,
    ) -> Result<()> {
        let pairs: Vec<_> = values.iter().collect();
        for chunk in pairs.chunks(INSERT_CHUNK) {
            let mut q = SqlBuilder::new(
                tx.backend,
                format!("INSERT INTO {} ({}, key, value) ", self.table, self.owner),
            );
            q.push_values(chunk, |mut row, (k, v)| {
                row.push_bind(owner)
                    .push_bind(k.as_str())
                    .push_bind(v.as_str());
            });
            tx.sql(q).execute().await?;
        }
        Ok(())
    }
}
