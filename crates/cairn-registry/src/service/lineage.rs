//! Lineage as the service answers it: a version's ancestors and descendants, versions by
//! data, commit or parent, and the check that a registration's parents exist.

use std::collections::{BTreeSet, VecDeque};

use cairn_core::lineage::{Lineage, ParentRef};
use cairn_core::{ModelName, VersionRef};

use crate::db::MetadataStore;
use crate::lineage::{MAX_ANCESTRY, version_refs};
use crate::store::FileList;
use crate::{Error, Registry, Result};

impl Registry {
    /// A version's lineage, with its ancestors' (up to a depth of 32) and its direct
    /// descendants.
    pub async fn lineage(&self, model: &ModelName, reference: &VersionRef) -> Result<Lineage> {
        let version = self
            .meta
            .get_version(model, reference, FileList::Omitted)
            .await?
            .version;
        let meta = &self.meta;
        let mut root = meta
            .lineage_node(model.as_str(), version)
            .await?
            .ok_or_else(|| Error::VersionNotFound {
                model: model.to_string(),
                reference: version.to_string(),
            })?;
        // Breadth-first up the parents; each node is completed in place.
        fn fill<'a>(
            meta: &'a MetadataStore,
            node: &'a mut Lineage,
            depth: usize,
        ) -> futures::future::BoxFuture<'a, Result<()>> {
            Box::pin(async move {
                if depth >= MAX_ANCESTRY {
                    return Ok(());
                }
                for p in node.recorded.parents.clone() {
                    if let Some(mut parent) = meta.lineage_node(&p.model, p.version).await? {
                        fill(meta, &mut parent, depth + 1).await?;
                        node.ancestors.push(parent);
                    }
                }
                Ok(())
            })
        }
        fill(meta, &mut root, 0).await?;
        Ok(root)
    }

    /// Versions trained on an input: `sha256:<hex>`, `md5:<hex>` (DVC), or a bare hex
    /// digest of either kind.
    pub async fn versions_with_input(&self, digest: &str) -> Result<Vec<ParentRef>> {
        let digest = digest.trim();
        let candidates: Vec<String> = if digest.contains(':') {
            vec![digest.to_owned()]
        } else {
            vec![
                format!("sha256:{digest}"),
                format!("md5:{digest}"),
                digest.to_owned(),
            ]
        };
        let mut found = BTreeSet::new();
        for d in candidates {
            found.extend(
                self.meta
                    .versions_where(
                        "SELECT DISTINCT m.name, v.number FROM version_inputs i
                         JOIN versions v ON v.id = i.version_id JOIN models m ON m.id = v.model_id
                         WHERE i.digest = $1",
                        &d,
                    )
                    .await?,
            );
        }
        Ok(found.into_iter().collect())
    }

    /// Versions built from a commit (a full id or a prefix of at least 4 hex digits).
    pub async fn versions_with_commit(&self, commit: &str) -> Result<Vec<ParentRef>> {
        let commit = commit.trim().to_ascii_lowercase();
        if commit.len() < 4 || !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::InvalidArgument(format!(
                "a commit is at least 4 hex digits, got {commit:?}"
            )));
        }
        // A range on the indexed column finds every commit with this prefix.
        let rows: Vec<(String, i64)> = self
            .meta
            .read(
                "SELECT m.name, v.number FROM version_code c
             JOIN versions v ON v.id = c.version_id JOIN models m ON m.id = v.model_id
             WHERE c.git_commit >= $1 AND c.git_commit < $2 ORDER BY m.name, v.number",
            )
            .bind(&commit)
            .bind(format!("{commit}g"))
            .fetch_all()
            .await?;
        Ok(version_refs(rows))
    }

    /// Every version derived from `parent`, directly or through others.
    pub async fn descendants(&self, parent: &ParentRef) -> Result<Vec<ParentRef>> {
        let mut found = BTreeSet::new();
        let mut queue = VecDeque::from([parent.clone()]);
        while let Some(p) = queue.pop_front() {
            let rows: Vec<(String, i64)> = self
                .meta
                .read(
                    "SELECT m.name, v.number FROM version_parents p
                 JOIN versions v ON v.id = p.version_id JOIN models m ON m.id = v.model_id
                 WHERE p.parent_model = $1 AND p.parent_version = $2",
                )
                .bind(&p.model)
                .bind(p.version as i64)
                .fetch_all()
                .await?;
            for (model, version) in rows {
                let child = ParentRef {
                    model,
                    version: version as u64,
                };
                if found.insert(child.clone()) {
                    queue.push_back(child);
                }
            }
        }
        Ok(found.into_iter().collect())
    }

    /// Parents must exist when a version names them.
    pub(crate) async fn check_parents(&self, parents: &[ParentRef]) -> Result<()> {
        for p in parents {
            let model = ModelName::new(&p.model)?;
            self.meta
                .get_version(&model, &VersionRef::Number(p.version), FileList::Omitted)
                .await?;
        }
        Ok(())
    }
}
