//! Lineage, stored at registration (in the version's own transaction) and read back both
//! ways: a version's origins and ancestors, and the versions that came from a dataset, a
//! commit or a parent.

use cairn_core::Sha256Digest;
use cairn_core::lineage::{CodeRef, DataRef, EnvFile, Lineage, LineageInput, ParentRef};

use crate::db::MetadataStore;
use crate::db::sql::{Columns, Decode, DecodeError, decoded_row};
use crate::db::write::WriteTx;
use crate::{Error, Result};

/// How far up `Registry::lineage` follows parents.
pub(crate) const MAX_ANCESTRY: usize = 32;

/// Writes the lineage rows of a new version (its run id lives on the version row).
pub(crate) async fn insert(tx: &mut WriteTx, version_id: i64, l: &LineageInput) -> Result<()> {
    if let Some(code) = &l.code {
        tx.query(
            "INSERT INTO version_code (version_id, git_commit, git_branch, git_remote, git_dirty)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(version_id)
        .bind(&code.commit)
        .bind(&code.branch)
        .bind(&code.remote)
        .bind(i64::from(code.dirty))
        .execute()
        .await?;
    }
    for d in &l.data {
        tx.query(
            "INSERT INTO version_inputs (version_id, kind, path, digest, size, files)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(version_id)
        .bind(&d.kind)
        .bind(&d.path)
        .bind(&d.digest)
        .bind(d.size.map(|n| n as i64))
        .bind(d.files.map(|n| n as i64))
        .execute()
        .await?;
    }
    for p in &l.parents {
        tx.query(
            "INSERT INTO version_parents (version_id, parent_model, parent_version)
             VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(version_id)
        .bind(&p.model)
        .bind(p.version as i64)
        .execute()
        .await?;
    }
    for e in &l.environment {
        tx.query(
            "INSERT INTO version_environment (version_id, path, sha256, size) VALUES ($1, $2, $3, $4)",
        )
        .bind(version_id)
        .bind(&e.path)
        .bind(e.sha256.to_hex())
        .bind(e.size as i64)
        .execute()
        .await?;
    }
    Ok(())
}

struct InputRow {
    kind: String,
    path: String,
    digest: String,
    size: Option<i64>,
    files: Option<i64>,
}

/// `kind, path, digest, size, files` of `version_inputs`.
impl Decode for InputRow {
    fn decode(c: &mut Columns<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            kind: c.next()?,
            path: c.next()?,
            digest: c.next()?,
            size: c.next()?,
            files: c.next()?,
        })
    }
}
decoded_row!(InputRow);

impl MetadataStore {
    /// What was recorded for one version (by row id).
    async fn recorded_lineage(&self, version_id: i64, run_id: String) -> Result<LineageInput> {
        let code: Option<(String, Option<String>, Option<String>, i64)> = self.read(
            "SELECT git_commit, git_branch, git_remote, git_dirty FROM version_code WHERE version_id = $1",
        )
        .bind(version_id)
        .fetch_optional()
        .await?;
        let data: Vec<InputRow> = self
            .read(
                "SELECT kind, path, digest, size, files FROM version_inputs WHERE version_id = $1
             ORDER BY kind, path",
            )
            .bind(version_id)
            .fetch_all()
            .await?;
        let parents: Vec<(String, i64)> = self
            .read(
                "SELECT parent_model, parent_version FROM version_parents WHERE version_id = $1
             ORDER BY parent_model, parent_version",
            )
            .bind(version_id)
            .fetch_all()
            .await?;
        let environment: Vec<(String, String, i64)> = self.read(
            "SELECT path, sha256, size FROM version_environment WHERE version_id = $1 ORDER BY path",
        )
        .bind(version_id)
        .fetch_all()
        .await?;
        Ok(LineageInput {
            run_id: (!run_id.is_empty()).then_some(run_id),
            code: code.map(|(commit, branch, remote, dirty)| CodeRef {
                commit,
                branch,
                remote,
                dirty: dirty != 0,
            }),
            data: data
                .into_iter()
                .map(|i| DataRef {
                    kind: i.kind,
                    path: i.path,
                    digest: i.digest,
                    size: i.size.map(|n| n as u64),
                    files: i.files.map(|n| n as u64),
                })
                .collect(),
            parents: parents
                .into_iter()
                .map(|(model, version)| ParentRef {
                    model,
                    version: version as u64,
                })
                .collect(),
            environment: environment
                .into_iter()
                .map(|(path, sha, size)| {
                    Ok(EnvFile {
                        path,
                        sha256: sha.parse().map_err(|_| {
                            Error::Database(sqlx::Error::Decode("unreadable digest".into()))
                        })?,
                        size: size as u64,
                    })
                })
                .collect::<Result<_>>()?,
        })
    }

    /// One version's lineage without ancestors: `None` if the version does not exist.
    pub(crate) async fn lineage_node(&self, model: &str, version: u64) -> Result<Option<Lineage>> {
        let row: Option<(i64, String, String)> = self
            .read(
                "SELECT v.id, v.digest, v.run_id FROM versions v JOIN models m ON m.id = v.model_id
                 WHERE m.name = $1 AND v.number = $2",
            )
            .bind(model)
            .bind(version as i64)
            .fetch_optional()
            .await?;
        let Some((id, digest, run_id)) = row else {
            return Ok(None);
        };
        let children: Vec<(String, i64)> = self
            .read(
                "SELECT m.name, v.number FROM version_parents p
                 JOIN versions v ON v.id = p.version_id JOIN models m ON m.id = v.model_id
                 WHERE p.parent_model = $1 AND p.parent_version = $2 ORDER BY m.name, v.number",
            )
            .bind(model)
            .bind(version as i64)
            .fetch_all()
            .await?;
        Ok(Some(Lineage {
            model: model.to_owned(),
            version,
            digest: digest
                .parse()
                .map_err(|_| Error::Database(sqlx::Error::Decode("unreadable digest".into())))?,
            recorded: self.recorded_lineage(id, run_id).await?,
            ancestors: Vec::new(),
            children: children
                .into_iter()
                .map(|(model, version)| ParentRef {
                    model,
                    version: version as u64,
                })
                .collect(),
        }))
    }

    /// Versions (model, number) with `sql` over `version_inputs i`, `version_code c`…
    pub(crate) async fn versions_where(
        &self,
        sql: &'static str,
        value: &str,
    ) -> Result<Vec<ParentRef>> {
        let rows: Vec<(String, i64)> = self.read(sql).bind(value).fetch_all().await?;
        Ok(version_refs(rows))
    }
}

/// The blobs a lineage references (environment files).
pub(crate) fn blobs(l: &LineageInput) -> impl Iterator<Item = Sha256Digest> + '_ {
    l.environment.iter().map(|e| e.sha256)
}

/// (model name, number) rows as version references.
pub(crate) fn version_refs(rows: Vec<(String, i64)>) -> Vec<ParentRef> {
    rows.into_iter()
        .map(|(model, version)| ParentRef {
            model,
            version: version as u64,
        })
        .collect()
}
