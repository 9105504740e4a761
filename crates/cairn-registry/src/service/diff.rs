//! `Registry::diff`: two versions compared (`core::diff`), with the text of their small
//! changed environment files read from the blob store — each re-hashed as it is read,
//! so a diff never shows bytes that are not the recorded ones.

use std::collections::HashMap;

use cairn_core::diff::{Compared, TEXT_DIFF_MAX, VersionDiff, compare};
use cairn_core::lineage::LineageInput;
use cairn_core::{ModelVersionRef, Sha256Digest};
use futures::TryStreamExt;

use super::Registry;
use crate::store::FileList;
use crate::{Error, Result};

impl Registry {
    /// What differs from `a` to `b` (versions of one model or of two).
    pub async fn diff(&self, a: &ModelVersionRef, b: &ModelVersionRef) -> Result<VersionDiff> {
        let va = self
            .get_version(&a.model, &a.version, FileList::Included)
            .await?;
        let vb = self
            .get_version(&b.model, &b.version, FileList::Included)
            .await?;
        let la = self.recorded_lineage(&va.model, va.version).await?;
        let lb = self.recorded_lineage(&vb.model, vb.version).await?;
        // The texts of environment files changed between them, small enough to show.
        let mut texts = HashMap::new();
        for ea in &la.environment {
            let Some(eb) = lb.environment.iter().find(|e| e.path == ea.path) else {
                continue;
            };
            if ea.sha256 == eb.sha256 {
                continue;
            }
            for file in [ea, eb] {
                if file.size <= TEXT_DIFF_MAX
                    && let Some(text) = self.small_text(&file.sha256).await?
                {
                    texts.insert(file.sha256, text);
                }
            }
        }
        Ok(compare(
            Compared {
                version: &va,
                lineage: &la,
            },
            Compared {
                version: &vb,
                lineage: &lb,
            },
            &|digest| texts.get(digest).cloned(),
        ))
    }

    async fn recorded_lineage(&self, model: &str, version: u64) -> Result<LineageInput> {
        Ok(self
            .meta
            .lineage_node(model, version)
            .await?
            .map(|node| node.recorded)
            .unwrap_or_default())
    }

    /// A blob's content as text, if it is UTF-8 of at most [`TEXT_DIFF_MAX`] bytes and
    /// hashes to its digest.
    async fn small_text(&self, digest: &Sha256Digest) -> Result<Option<String>> {
        let read = match self.read_blob(digest).await {
            Ok(read) => read,
            Err(Error::BlobNotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        if read.size > TEXT_DIFF_MAX {
            return Ok(None);
        }
        let chunks: Vec<bytes::Bytes> = read.stream.try_collect().await?;
        let bytes = chunks.concat();
        if bytes.len() as u64 > TEXT_DIFF_MAX || Sha256Digest::of(&bytes) != *digest {
            return Err(Error::CorruptBlob(*digest));
        }
        Ok(String::from_utf8(bytes).ok())
    }
}
