//! The registry's one error type. Each variant has a stable machine-readable code
//! ([`Error::code`]); the HTTP layer maps variants to statuses in one exhaustive match.
//! Messages of client errors are written for the user; internal errors (database,
//! storage, I/O) are logged by the server and not sent to clients in detail.

use cairn_core::source::SourceProblem;
use cairn_core::{Sha256Digest, ValidationError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error("{0}")]
    InvalidArgument(String),
    /// A version source the registry cannot register from.
    #[error("invalid version source {uri:?}: {problem}")]
    InvalidSource { uri: String, problem: SourceProblem },
    #[error("model {0:?} does not exist")]
    ModelNotFound(String),
    #[error("model {0:?} already exists")]
    ModelExists(String),
    #[error("version {model}@{reference} does not exist")]
    VersionNotFound { model: String, reference: String },
    #[error("model {model:?} has no alias {alias:?}")]
    AliasNotFound { model: String, alias: String },
    /// An experiment, run, logged model or another tracked thing that does not exist.
    #[error("{0}")]
    NotFound(Missing),
    /// A tracking write its target's state or the request's own content forbids.
    #[error("{0}")]
    Refused(Refusal),
    /// The actor lacks the role the change needs (a protected alias moved by a
    /// non-admin).
    #[error(transparent)]
    Forbidden(#[from] cairn_core::access::Denied),
    /// An experiment or other uniquely named thing that exists already.
    #[error("{0}")]
    AlreadyExists(String),
    #[error("blob sha256:{0} is not stored")]
    BlobNotFound(Sha256Digest),
    #[error(
        "content does not match its digest: expected sha256:{expected}, received {size} bytes hashing to sha256:{actual}"
    )]
    DigestMismatch {
        expected: Sha256Digest,
        actual: Sha256Digest,
        size: u64,
    },
    #[error("{path}: {declared} bytes declared, but blob sha256:{digest} holds {stored} bytes")]
    SizeMismatch {
        path: String,
        digest: Sha256Digest,
        declared: u64,
        stored: u64,
    },
    /// A stored blob whose bytes no longer hash to its digest: the store is damaged.
    #[error("stored blob sha256:{0} is corrupt; `cairn verify` names what it breaks")]
    CorruptBlob(Sha256Digest),
    #[error("upload interrupted: {0}")]
    UploadInterrupted(String),
    #[error("{} blob(s) of the manifest are not stored; upload them first (first: sha256:{})", .0.len(), .0[0])]
    MissingBlobs(Vec<Sha256Digest>),
    /// The request is valid but the registry's state does not allow it.
    #[error("{0}")]
    Conflict(String),
    /// An alias move that the promotion policies of the alias refuse: every unmet rule.
    #[error("{target} is refused by its promotion policy: {}", unmet.join("; "))]
    PolicyUnmet { target: String, unmet: Vec<String> },
    /// A write whose `COMMIT` was sent but whose answer was lost, and whose outcome the
    /// registry could not learn before giving up (the database did not answer again in
    /// time, or the transaction left no mark to look for). Retrying it without an
    /// idempotency key may do it twice.
    #[error(
        "the outcome of this write is unknown: the database connection was lost while it committed ({0})"
    )]
    CommitUnknown(String),
    /// An idempotency key another request stored while this one ran (its write rolls
    /// back and answers the other's outcome; this reaches a client only if that key
    /// expired in between).
    #[error("a concurrent request used idempotency key {0:?}; retry")]
    KeyInFlight(String),
    /// An idempotency key sent again with a different request.
    #[error(
        "idempotency key {0:?} was used for a different request; use a new key for a new request"
    )]
    KeyReused(String),
    #[error("metadata store: {0}")]
    Database(#[from] sqlx::Error),
    /// A failed read on the SQLite readers (`sqlite_reads`).
    #[error("metadata store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("metadata store migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("blob store: {0}")]
    Storage(#[from] object_store::Error),
    /// An upload the blob store stopped answering in the middle of (its parts or its
    /// completion lost), where the object store client reports only its clean-up.
    #[error("blob store stopped answering during an upload: {0}")]
    BlobStoreLost(String),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// A database failure after which the transaction provably did not commit, and
    /// may not fail again: a serialization failure or a deadlock (PostgreSQL aborts one
    /// of the transactions involved), or a connection lost before `COMMIT` was sent (a
    /// lost `COMMIT` is resolved by `db::outcome`, or becomes [`Error::CommitUnknown`]).
    /// The whole transaction can be run again.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Database(sqlx::Error::Database(e)) => {
                matches!(e.code().as_deref(), Some("40001" | "40P01"))
                    || e.code().as_deref().is_some_and(is_connection_failure)
            }
            Self::Database(sqlx::Error::Io(_) | sqlx::Error::Protocol(_)) => true,
            _ => false,
        }
    }

    /// The blob store cannot be reached: no connection, no answer in time, a
    /// connection cut (after the object store client's own retries). What a client may
    /// retry later (HTTP 503): blobs are written create-if-absent under their digest,
    /// and nothing refers to a blob before it is whole.
    pub fn is_blob_store_unavailable(&self) -> bool {
        let e = match self {
            Self::Storage(e) => e,
            Self::BlobStoreLost(_) => return true,
            _ => return false,
        };
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(cause) = source {
            if let Some(http) = cause.downcast_ref::<object_store::client::HttpError>() {
                use object_store::client::HttpErrorKind::{Connect, Interrupted, Request, Timeout};
                return matches!(http.kind(), Connect | Request | Timeout | Interrupted);
            }
            source = cause.source();
        }
        false
    }

    /// The metadata store cannot be reached: no connection within the acquire timeout,
    /// a connection lost, or a database shutting down or starting up. What a client may
    /// retry later (HTTP 503), the request having changed nothing.
    pub fn is_database_unavailable(&self) -> bool {
        match self {
            Self::Database(
                sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::Protocol(_),
            ) => true,
            Self::Database(sqlx::Error::Database(e)) => {
                e.code().as_deref().is_some_and(is_connection_failure)
            }
            _ => false,
        }
    }

    /// A write refused for a duplicate key (unique or primary), on either engine.
    pub fn is_unique_violation(&self) -> bool {
        use rusqlite::ffi::{SQLITE_CONSTRAINT_PRIMARYKEY, SQLITE_CONSTRAINT_UNIQUE};
        match self {
            Self::Database(sqlx::Error::Database(e)) => e.is_unique_violation(),
            Self::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.extended_code,
                SQLITE_CONSTRAINT_UNIQUE | SQLITE_CONSTRAINT_PRIMARYKEY
            ),
            _ => false,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid(_) | Self::InvalidArgument(_) | Self::Refused(_) => "invalid_argument",
            Self::InvalidSource { .. } => "invalid_source",
            Self::ModelNotFound(_) => "model_not_found",
            Self::ModelExists(_) => "model_exists",
            Self::NotFound(_) => "not_found",
            Self::AlreadyExists(_) => "already_exists",
            Self::VersionNotFound { .. } => "version_not_found",
            Self::AliasNotFound { .. } => "alias_not_found",
            Self::BlobNotFound(_) => "blob_not_found",
            Self::DigestMismatch { .. } => "digest_mismatch",
            Self::SizeMismatch { .. } => "size_mismatch",
            Self::UploadInterrupted(_) => "upload_interrupted",
            Self::MissingBlobs(_) => "missing_blobs",
            Self::Conflict(_) => "conflict",
            Self::PolicyUnmet { .. } => "policy_unmet",
            Self::Forbidden(_) => "forbidden",
            Self::CorruptBlob(_) => "corrupt_blob",
            Self::CommitUnknown(_) => "commit_unknown",
            Self::KeyInFlight(_) => "idempotency_key_in_flight",
            Self::KeyReused(_) => "idempotency_key_reused",
            e if e.is_database_unavailable() => "database_unavailable",
            e if e.is_blob_store_unavailable() => "blob_store_unavailable",
            Self::Database(_)
            | Self::Sqlite(_)
            | Self::Migration(_)
            | Self::Storage(_)
            | Self::BlobStoreLost(_)
            | Self::Io(_) => "internal",
        }
    }

    /// Whether the fault lies with the caller's input (as opposed to the registry).
    pub fn is_client_error(&self) -> bool {
        !matches!(
            self.code(),
            "internal"
                | "corrupt_blob"
                | "commit_unknown"
                | "database_unavailable"
                | "blob_store_unavailable"
        )
    }
}

/// PostgreSQL's SQLSTATEs of a connection that failed or a server that is going away or
/// not up yet: class 08 (connection exception), 57P01 (admin shutdown), 57P02 (crash
/// shutdown), 57P03 (cannot connect now).
fn is_connection_failure(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03")
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a lookup did not find. Displayed in Cairn's words; each API surface may word it
/// its own way (the MLflow adapter words it as MLflow does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    Experiment(i64),
    ExperimentNamed(String),
    Run(String),
    /// A tag `key` of run `run`.
    RunTag {
        run: String,
        key: String,
    },
    LoggedModel(String),
    /// A tag `key` of logged model `model`.
    LoggedModelTag {
        model: String,
        key: String,
    },
    Upload(String),
    /// A user (with a password, grants or tokens).
    User(String),
    /// A promotion policy, as `MODELS@ALIAS`.
    Policy(String),
    Webhook(String),
    WebhookDelivery(String),
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Experiment(id) => write!(f, "experiment {id} does not exist"),
            Self::Policy(target) => write!(f, "no promotion policy for {target}"),
            Self::ExperimentNamed(name) => write!(f, "experiment {name:?} does not exist"),
            Self::Run(id) => write!(f, "run {id:?} does not exist"),
            Self::RunTag { run, key } => write!(f, "run {run:?} has no tag {key:?}"),
            Self::LoggedModel(id) => write!(f, "logged model {id:?} does not exist"),
            Self::LoggedModelTag { model, key } => {
                write!(f, "logged model {model:?} has no tag {key:?}")
            }
            Self::Upload(id) => write!(f, "multipart upload {id:?} does not exist"),
            Self::User(name) => write!(f, "user {name:?} does not exist"),
            Self::Webhook(id) => write!(f, "webhook {id:?} does not exist"),
            Self::WebhookDelivery(id) => write!(f, "webhook delivery {id:?} does not exist"),
        }
    }
}

/// Why a tracking write was refused. Displayed in Cairn's words; the MLflow adapter
/// words it as MLflow does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A write to a deleted experiment (`for_run`: creating a run in it).
    ExperimentDeleted { id: i64, for_run: bool },
    /// A write to a deleted run.
    RunDeleted(String),
    /// More metrics, params or tags in one batch than a batch may hold.
    BatchTooLarge,
    /// One batch gives a param two values.
    DuplicateParam(String),
    /// A param logged again with another value (params never change).
    ParamChanged {
        run: String,
        key: String,
        old: String,
        new: String,
    },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::tracking::{BATCH_METRICS_MAX, BATCH_PARAMS_MAX, BATCH_TAGS_MAX};
        match self {
            Self::ExperimentDeleted { id, .. } => write!(f, "experiment {id} is deleted"),
            Self::RunDeleted(id) => write!(f, "run {id:?} is deleted"),
            Self::BatchTooLarge => write!(
                f,
                "a batch holds at most {BATCH_METRICS_MAX} metrics, {BATCH_PARAMS_MAX} params and {BATCH_TAGS_MAX} tags"
            ),
            Self::DuplicateParam(key) => write!(f, "param {key:?} is given twice"),
            Self::ParamChanged { run, key, old, .. } => {
                write!(
                    f,
                    "param {key:?} of run {run:?} is {old:?} already; params never change"
                )
            }
        }
    }
}
