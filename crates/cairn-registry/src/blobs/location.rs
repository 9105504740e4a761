//! Where blobs live: a local directory or a bucket, and the object store for a bucket.

use std::path::PathBuf;
use std::sync::Arc;

use object_store::{ClientConfigKey, ObjectStore};

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

/// How long connecting to the object store may take before the attempt fails
/// (`CAIRN_ARTIFACTS_CONNECT_TIMEOUT` overrides it).
const CONNECT_TIMEOUT: &str = "2s";

/// How long the object store may go without sending a byte of an answer
/// (`CAIRN_ARTIFACTS_READ_TIMEOUT` overrides it). A store that stops answering (paused,
/// partitioned) fails requests after this, rather than after minutes.
const READ_TIMEOUT: &str = "10s";

/// How long a request to the object store is retried (connection failures, timeouts,
/// 5xx) before it fails: short, since the client retries the whole request itself
/// (the CLI's retries, after a 503 `blob_store_unavailable`), and a request waiting
/// minutes for a store that is down holds its caller for as long.
fn retry_config() -> object_store::RetryConfig {
    object_store::RetryConfig {
        max_retries: 3,
        retry_timeout: std::time::Duration::from_secs(3),
        ..Default::default()
    }
}

/// The client settings of every object store: the timeouts above, from the
/// environment when set there (e.g. `CAIRN_ARTIFACTS_READ_TIMEOUT=60s`).
fn timeouts() -> [(ClientConfigKey, String); 2] {
    let setting = |var: &str, default: &str| std::env::var(var).unwrap_or_else(|_| default.into());
    [
        (
            ClientConfigKey::ConnectTimeout,
            setting("CAIRN_ARTIFACTS_CONNECT_TIMEOUT", CONNECT_TIMEOUT),
        ),
        (
            ClientConfigKey::ReadTimeout,
            setting("CAIRN_ARTIFACTS_READ_TIMEOUT", READ_TIMEOUT),
        ),
    ]
}

/// An object store for `url`, configured from the environment the cloud's own tools
/// read (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`…, `GOOGLE_*`, `AZURE_*`),
/// with keys under the URL's path.
pub(super) fn remote_store(url: &url::Url) -> Result<Arc<dyn ObjectStore>, Error> {
    use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
    use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
    use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
    use object_store::prefix::PrefixStore;

    let store: Arc<dyn ObjectStore> = match url.scheme() {
        "s3" | "s3a" => {
            let mut builder = AmazonS3Builder::from_env()
                .with_url(url.as_str())
                .with_retry(retry_config());
            for (key, value) in timeouts() {
                builder = builder.with_config(AmazonS3ConfigKey::Client(key), value);
            }
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
        "gs" => {
            let mut builder = GoogleCloudStorageBuilder::from_env()
                .with_url(url.as_str())
                .with_retry(retry_config());
            for (key, value) in timeouts() {
                builder = builder.with_config(GoogleConfigKey::Client(key), value);
            }
            Arc::new(builder.build()?)
        }
        _ => {
            let mut builder = MicrosoftAzureBuilder::from_env()
                .with_url(url.as_str())
                .with_retry(retry_config());
            for (key, value) in timeouts() {
                builder = builder.with_config(AzureConfigKey::Client(key), value);
            }
            Arc::new(builder.build()?)
        }
    };
    let prefix = url.path().trim_matches('/');
    Ok(if prefix.is_empty() {
        store
    } else {
        Arc::new(PrefixStore::new(store, prefix))
    })
}
