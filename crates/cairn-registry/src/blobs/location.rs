//! Where blobs live: a local directory or a bucket, and the object store for a bucket.

use std::path::PathBuf;
use std::sync::Arc;

use object_store::ObjectStore;

use crate::Error;

/// Where blobs live: a local directory or an object-store bucket (with a key prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobLocation {
    Local(PathBuf),
    /// `s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix`.
    Remote(url::Url),
}

impl BlobLocation {
    /// A path or `file://PATH` is local; `s3://`, `gs://` and `az://` (also `abfs://`)
    /// are object stores configured from the standard environment of each cloud.
    pub fn parse(s: &str) -> Result<Self, Error> {
        if let Some(path) = s.strip_prefix("file://") {
            return Ok(Self::Local(PathBuf::from(path)));
        }
        if !s.contains("://") {
            return Ok(Self::Local(PathBuf::from(s)));
        }
        let url = url::Url::parse(s)
            .map_err(|e| Error::InvalidArgument(format!("invalid artifact store {s:?}: {e}")))?;
        match url.scheme() {
            "s3" | "s3a" | "gs" | "az" | "azure" | "abfs" | "abfss" => Ok(Self::Remote(url)),
            other => Err(Error::InvalidArgument(format!(
                "unsupported artifact store scheme {other:?}: use a path, s3://, gs:// or az://"
            ))),
        }
    }
}

impl std::fmt::Display for BlobLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local(path) => write!(f, "{}", path.display()),
            Self::Remote(url) => write!(f, "{url}"),
        }
    }
}

/// An object store for `url`, configured from the environment the cloud's own tools
/// read (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`…, `GOOGLE_*`, `AZURE_*`),
/// with keys under the URL's path.
pub(super) fn remote_store(url: &url::Url) -> Result<Arc<dyn ObjectStore>, Error> {
    use object_store::aws::AmazonS3Builder;
    use object_store::azure::MicrosoftAzureBuilder;
    use object_store::gcp::GoogleCloudStorageBuilder;
    use object_store::prefix::PrefixStore;

    let store: Arc<dyn ObjectStore> = match url.scheme() {
        "s3" | "s3a" => {
            let mut builder = AmazonS3Builder::from_env().with_url(url.as_str());
            // S3-compatible servers on plain HTTP (MinIO, Ceph, test servers).
            if let Ok(endpoint) =
                std::env::var("AWS_ENDPOINT_URL").or_else(|_| std::env::var("AWS_ENDPOINT"))
            {
                builder = builder.with_endpoint(&endpoint);
                if endpoint.starts_with("http://") {
                    builder = builder.with_allow_http(true);
                }
            }
            Arc::new(builder.build()?)
        }
        "gs" => Arc::new(
            GoogleCloudStorageBuilder::from_env()
                .with_url(url.as_str())
                .build()?,
        ),
        _ => Arc::new(
            MicrosoftAzureBuilder::from_env()
                .with_url(url.as_str())
                .build()?,
        ),
    };
    let prefix = url.path().trim_matches('/');
    Ok(if prefix.is_empty() {
        store
    } else {
        Arc::new(PrefixStore::new(store, prefix))
    })
}
