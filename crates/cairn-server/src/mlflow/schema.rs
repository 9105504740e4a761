//! What each MLflow request's fields must be, checked the way `mlflow server` checks
//! them before it looks anything up: one declarative list per request — the same lists
//! as the server's own (`schema={...}` in its handlers), in the same order — so an
//! answer to a badly typed or missing field is MLflow's, status, code and words.
//!
//! The server first parses the body against the request's protobuf message. When that
//! succeeds (every field has its type), only the presence checks run; when it fails,
//! every check of the list runs, in order, and the first that fails answers. Types are
//! Python's: a JSON string is a `str`, a whole number an `int`, `1.5` a `float`.

use serde_json::Value;

use super::error::{MlflowError, MlflowResult};
use super::request::Fields;

/// One check of a field, as MLflow names them (`_assert_string`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Present and not the empty string.
    Required,
    Str,
    /// Whole, or a string of one (Python's `int(x)` succeeds).
    IntLike,
    /// A number, or a string of one (`float(x)` succeeds).
    FloatLike,
    Bool,
    Array,
    /// Every item of an array is a string.
    ItemsStr,
    /// A whole number at most this (a page size).
    AtMost(i64),
    /// A protobuf enum: one of these names, or its number (MLflow checks it as
    /// `_assert_intlike`, which only runs when the name does not parse).
    Enum(&'static [&'static str]),
    /// A protobuf enum MLflow checks as `_assert_string` (when its value does not parse).
    StrEnum(&'static [&'static str]),
    /// Every item of an array of objects has these keys (`metrics[0].key` when not).
    KeysPresent(&'static [&'static str]),
    /// At most this many items; the message names the request (MLflow's proto name).
    MaxItems(usize, &'static str),
    /// A whole number in this range, inclusive.
    Between(i64, i64),
}

use Check::*;

/// A request's fields and their checks, in the server's order.
pub type Schema = &'static [(&'static str, &'static [Check])];

impl Check {
    /// Whether the protobuf parser accepts `value` for a field this check types (the
    /// parser is what decides whether the type checks run at all).
    fn parses(self, value: &Value, from_query: bool) -> bool {
        if from_query {
            // A query string's values are strings, converted by the field's type: one
            // value of a repeated field is a list of one, booleans are spelled out.
            return match (self, value) {
                (Array | ItemsStr | Str, _) => true,
                (Bool, Value::String(s)) => {
                    matches!(s.to_ascii_lowercase().as_str(), "true" | "false")
                }
                _ => self.parses(value, false),
            };
        }
        match self {
            Required | ItemsStr | AtMost(_) | KeysPresent(_) | MaxItems(..) | Between(..) => true,
            Str => value.is_string(),
            IntLike => match value {
                Value::Number(n) => n.as_f64().is_some_and(|f| f.fract() == 0.0),
                Value::String(s) => s.trim().parse::<i64>().is_ok(),
                _ => false,
            },
            FloatLike => match value {
                Value::Number(_) => true,
                Value::String(s) => is_python_float(s),
                _ => false,
            },
            Bool => value.is_boolean(),
            Array => value.is_array(),
            Enum(names) | StrEnum(names) => match value {
                Value::String(s) => names.contains(&s.as_str()) || s.trim().parse::<i64>().is_ok(),
                Value::Number(n) => n.is_i64(),
                _ => false,
            },
        }
    }

    /// Python's verdict on `value` (`None` when absent: no check holds then).
    fn holds(self, value: Option<&Value>) -> bool {
        let Some(value) = value else {
            return false;
        };
        match self {
            Required => !matches!(value, Value::String(s) if s.is_empty()),
            Str | StrEnum(_) => value.is_string(),
            IntLike | Enum(_) => match value {
                Value::Number(_) | Value::Bool(_) => true,
                Value::String(s) => s.trim().parse::<i64>().is_ok(),
                _ => false,
            },
            FloatLike => match value {
                Value::Number(_) | Value::Bool(_) => true,
                Value::String(s) => is_python_float(s),
                _ => false,
            },
            Bool => value.is_boolean(),
            Array => value.is_array(),
            ItemsStr => value
                .as_array()
                .is_some_and(|items| items.iter().all(Value::is_string)),
            AtMost(max) => python_int(value).is_some_and(|n| n <= max),
            Between(low, high) => python_int(value).is_some_and(|n| (low..=high).contains(&n)),
            KeysPresent(_) | MaxItems(..) => true,
        }
    }

    /// Whether the check types the field (and so is skipped once the body parses).
    fn is_type(self) -> bool {
        matches!(
            self,
            Str | IntLike | FloatLike | Bool | Array | ItemsStr | Enum(_) | StrEnum(_)
        )
    }
}

/// Python's `int(x)` of a JSON value, where it succeeds.
fn python_int(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::Bool(b) => Some(i64::from(*b)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The first item of `items` lacking one of `keys`, as `name[i].key`.
fn first_missing_key(name: &str, items: &[Value], keys: &[&str]) -> Option<String> {
    items.iter().enumerate().find_map(|(i, item)| {
        keys.iter()
            .find(|key| match item.get(**key) {
                None | Some(Value::Null) => true,
                Some(Value::String(s)) => s.is_empty(),
                Some(_) => false,
            })
            .map(|key| format!("{name}[{i}].{key}"))
    })
}

/// Whether Python's `float(s)` reads `s`: decimal numbers, `inf`, `nan`, with a sign
/// and surrounding spaces.
fn is_python_float(s: &str) -> bool {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let unsigned = lower.trim_start_matches(['+', '-']);
    matches!(unsigned, "inf" | "infinity" | "nan") || t.parse::<f64>().is_ok()
}

/// Python's name for a JSON value's type, as MLflow's hint names it.
fn python_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// A JSON value as Python's `json.dumps(v, sort_keys=True, separators=(",", ":"))`
/// writes it (serde_json's maps are sorted; non-ASCII is escaped as Python does).
fn python_json(value: &Value) -> String {
    let compact = value.to_string();
    let mut out = String::with_capacity(compact.len());
    for c in compact.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

const SEE_DOCS: &str = " See the API docs for more information about request parameters.";

impl Fields {
    /// Checks the request against `schema` as `mlflow server` does, answering the first
    /// failure in its words.
    pub fn check(&self, schema: Schema) -> MlflowResult<()> {
        let parses = schema.iter().all(|(name, checks)| {
            self.get(name)
                .is_none_or(|value| checks.iter().all(|c| c.parses(value, self.from_query)))
        });
        for (name, checks) in schema {
            // MLflow reads a missing `run_id` from the older `run_uuid`.
            let value = match (*name, self.get(name)) {
                ("run_id", None) => self.get("run_uuid"),
                (_, value) => value,
            };
            if value.is_none() && !checks.contains(&Required) {
                continue;
            }
            for &check in checks.iter() {
                if self.from_query
                    && check == Bool
                    && let Some(Value::String(v)) = value
                    && !matches!(v.to_ascii_lowercase().as_str(), "true" | "false")
                {
                    return Err(MlflowError::invalid(format!(
                        "Invalid boolean value: {v}, must be 'true' or 'false'."
                    )));
                }
                // A query string's strings are whatever type the field has.
                let typed_by_query =
                    self.from_query && matches!(check, Str | Array | ItemsStr | Bool);
                if check.is_type() && (parses || typed_by_query) {
                    continue;
                }
                if let MaxItems(max, request) = check {
                    let count = match value {
                        Some(Value::Array(items)) => items.len(),
                        Some(_) => 1,
                        None => 0,
                    };
                    if count > max {
                        return Err(MlflowError::invalid(format!(
                            "{request} request must specify at most {max} {name}. Received {count} {name}.{SEE_DOCS}"
                        )));
                    }
                    continue;
                }
                if let (Between(low, high), Some(_)) = (check, value)
                    && !check.holds(value)
                    && value.and_then(python_int).is_some()
                {
                    return Err(MlflowError::invalid(format!(
                        "{name} must be between {low} and {high}.{SEE_DOCS}"
                    )));
                }
                if let (KeysPresent(keys), Some(Value::Array(items))) = (check, value) {
                    if let Some(path) = first_missing_key(name, items, keys) {
                        return Err(MlflowError::invalid(format!(
                            "Missing value for required parameter '{path}'.{SEE_DOCS}"
                        )));
                    }
                    continue;
                }
                if !check.holds(value) {
                    let null = Value::Null;
                    let value = value.unwrap_or(&null);
                    return Err(MlflowError::invalid(match check {
                        Required => {
                            format!("Missing value for required parameter '{name}'.{SEE_DOCS}")
                        }
                        _ => format!(
                            "Invalid value {} for parameter '{name}' supplied:  Hint: Value was of type '{}'.{SEE_DOCS}",
                            python_json(value),
                            python_type(value)
                        ),
                    }));
                }
            }
        }
        Ok(())
    }
}

// ---- the requests, as `mlflow server` 3.17 describes them ----

pub const CREATE_EXPERIMENT: Schema = &[
    ("name", &[Required, Str]),
    ("artifact_location", &[Str]),
    ("tags", &[Array]),
];
pub const EXPERIMENT_ID: Schema = &[("experiment_id", &[Required, Str])];
pub const GET_EXPERIMENT_BY_NAME: Schema = &[("experiment_name", &[Required, Str])];
const VIEW_TYPES: Check = Enum(&["ACTIVE_ONLY", "DELETED_ONLY", "ALL"]);
const LOGGED_MODEL_STATUSES: Check = Enum(&[
    "LOGGED_MODEL_STATUS_UNSPECIFIED",
    "LOGGED_MODEL_PENDING",
    "LOGGED_MODEL_READY",
    "LOGGED_MODEL_UPLOAD_FAILED",
]);

pub const SEARCH_EXPERIMENTS: Schema = &[
    ("view_type", &[VIEW_TYPES]),
    ("max_results", &[IntLike]),
    ("order_by", &[Array]),
    ("filter", &[Str]),
    ("page_token", &[Str]),
];
pub const UPDATE_EXPERIMENT: Schema = &[
    ("experiment_id", &[Required, Str]),
    ("new_name", &[Str, Required]),
];
pub const SET_EXPERIMENT_TAG: Schema = &[
    ("experiment_id", &[Required, Str]),
    ("key", &[Required, Str]),
    ("value", &[Str]),
];
pub const DELETE_EXPERIMENT_TAG: Schema = &[
    ("experiment_id", &[Required, Str]),
    ("key", &[Required, Str]),
];
pub const CREATE_RUN: Schema = &[
    ("experiment_id", &[Str]),
    ("start_time", &[IntLike]),
    ("run_name", &[Str]),
];
pub const RUN_ID: Schema = &[("run_id", &[Required, Str])];
pub const UPDATE_RUN: Schema = &[
    ("run_id", &[Required, Str]),
    ("end_time", &[IntLike]),
    (
        "status",
        &[StrEnum(&[
            "RUNNING",
            "SCHEDULED",
            "FINISHED",
            "FAILED",
            "KILLED",
        ])],
    ),
    ("run_name", &[Str]),
];
pub const LOG_METRIC: Schema = &[
    ("run_id", &[Required, Str]),
    ("key", &[Required, Str]),
    ("value", &[Required, FloatLike]),
    ("timestamp", &[IntLike, Required]),
    ("step", &[IntLike]),
    ("model_id", &[Str]),
    ("dataset_name", &[Str]),
    ("dataset_digest", &[Str]),
];
pub const LOG_PARAM: Schema = &[
    ("run_id", &[Required, Str]),
    ("key", &[Required, Str]),
    ("value", &[Str]),
];
pub const SET_TAG: Schema = LOG_PARAM;
pub const DELETE_TAG: Schema = &[("run_id", &[Required, Str]), ("key", &[Required, Str])];
pub const LOG_BATCH: Schema = &[
    ("run_id", &[Str, Required]),
    (
        "metrics",
        &[Array, KeysPresent(&["key", "value", "timestamp"])],
    ),
    ("params", &[Array, KeysPresent(&["key"])]),
    ("tags", &[Array, KeysPresent(&["key"])]),
];
pub const LOG_INPUTS: Schema = &[
    ("run_id", &[Required, Str]),
    ("datasets", &[Array]),
    ("models", &[Array]),
];
pub const LOG_OUTPUTS: Schema = &[("run_id", &[Required, Str]), ("models", &[Required, Array])];
pub const LOG_MODEL: Schema = &[
    ("run_id", &[Str, Required]),
    ("model_json", &[Str, Required]),
];
pub const SEARCH_RUNS: Schema = &[
    ("experiment_ids", &[Array]),
    ("filter", &[Str]),
    ("max_results", &[IntLike, AtMost(50_000)]),
    ("order_by", &[Array, ItemsStr]),
];
pub const GET_METRIC_HISTORY_BULK_INTERVAL: Schema = &[
    (
        "run_ids",
        &[
            Required,
            Array,
            ItemsStr,
            MaxItems(100, "GetMetricHistoryBulkInterval"),
        ],
    ),
    ("metric_key", &[Required, Str]),
    ("start_step", &[IntLike]),
    ("end_step", &[IntLike]),
    ("max_results", &[IntLike, Between(1, 2500)]),
];
pub const GET_METRIC_HISTORY: Schema = &[
    ("run_id", &[Str, Required]),
    ("metric_key", &[Str, Required]),
    ("page_token", &[Str]),
];
pub const LIST_ARTIFACTS: Schema = &[
    ("run_id", &[Str, Required]),
    ("path", &[Str]),
    ("page_token", &[Str]),
];
pub const CREATE_LOGGED_MODEL: Schema = &[
    ("experiment_id", &[Str, Required]),
    ("name", &[Str]),
    ("model_type", &[Str]),
    ("source_run_id", &[Str]),
    ("params", &[Array]),
    ("tags", &[Array]),
];
pub const SEARCH_LOGGED_MODELS: Schema = &[
    ("experiment_ids", &[Array, ItemsStr, Required]),
    ("filter", &[Str]),
    ("datasets", &[Array]),
    ("max_results", &[IntLike]),
    ("order_by", &[Array]),
    ("page_token", &[Str]),
];
pub const FINALIZE_LOGGED_MODEL: Schema = &[
    ("model_id", &[Str, Required]),
    ("status", &[LOGGED_MODEL_STATUSES, Required]),
];
pub const SET_LOGGED_MODEL_TAGS: Schema = &[("tags", &[Array])];
pub const LOG_LOGGED_MODEL_PARAMS: Schema = &[("model_id", &[Str, Required]), ("params", &[Array])];
pub const CREATE_REGISTERED_MODEL: Schema = &[
    ("name", &[Str, Required]),
    ("tags", &[Array]),
    ("description", &[Str]),
];
pub const NAME: Schema = &[("name", &[Str, Required])];
pub const UPDATE_REGISTERED_MODEL: Schema = &[("name", &[Str, Required]), ("description", &[Str])];
pub const RENAME_REGISTERED_MODEL: Schema =
    &[("name", &[Str, Required]), ("new_name", &[Str, Required])];
pub const SEARCH_REGISTERED_MODELS: Schema = &[
    ("filter", &[Str]),
    ("max_results", &[IntLike, AtMost(1000)]),
    ("order_by", &[Array, ItemsStr]),
    ("page_token", &[Str]),
];
pub const SET_REGISTERED_MODEL_TAG: Schema = &[
    ("name", &[Str, Required]),
    ("key", &[Str, Required]),
    ("value", &[Str]),
];
pub const DELETE_REGISTERED_MODEL_TAG: Schema =
    &[("name", &[Str, Required]), ("key", &[Str, Required])];
pub const SET_ALIAS: Schema = &[
    ("name", &[Str, Required]),
    ("alias", &[Str, Required]),
    ("version", &[Str, Required]),
];
pub const ALIAS: Schema = &[("name", &[Str, Required]), ("alias", &[Str, Required])];
pub const GET_LATEST_VERSIONS: Schema =
    &[("name", &[Str, Required]), ("stages", &[Array, ItemsStr])];
pub const CREATE_MODEL_VERSION: Schema = &[
    ("name", &[Str, Required]),
    ("source", &[Str, Required]),
    ("run_id", &[Str]),
    ("tags", &[Array]),
    ("run_link", &[Str]),
    ("description", &[Str]),
    ("model_id", &[Str]),
];
pub const MODEL_VERSION: Schema = &[("name", &[Str, Required]), ("version", &[Str, Required])];
pub const UPDATE_MODEL_VERSION: Schema = &[
    ("name", &[Str, Required]),
    ("version", &[Str, Required]),
    ("description", &[Str]),
];
pub const SEARCH_MODEL_VERSIONS: Schema = &[
    ("filter", &[Str]),
    ("max_results", &[IntLike, AtMost(200_000)]),
    ("order_by", &[Array, ItemsStr]),
    ("page_token", &[Str]),
];
pub const SET_MODEL_VERSION_TAG: Schema = &[
    ("name", &[Str, Required]),
    ("version", &[Str, Required]),
    ("key", &[Str, Required]),
    ("value", &[Str]),
];
pub const DELETE_MODEL_VERSION_TAG: Schema = &[
    ("name", &[Str, Required]),
    ("version", &[Str, Required]),
    ("key", &[Str, Required]),
];
pub const TRANSITION_STAGE: Schema = &[
    ("name", &[Str, Required]),
    ("version", &[Str, Required]),
    ("stage", &[Str, Required]),
    ("archive_existing_versions", &[Bool]),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(body: serde_json::Value, from_query: bool) -> Fields {
        Fields {
            map: body.as_object().unwrap().clone(),
            from_query,
        }
    }

    fn refusal(body: serde_json::Value, schema: Schema) -> String {
        fields(body, false).check(schema).unwrap_err().message
    }

    #[test]
    fn refusals_read_as_mlflow_server_words_them() {
        assert_eq!(
            refusal(serde_json::json!({"name": 123}), CREATE_EXPERIMENT),
            "Invalid value 123 for parameter 'name' supplied:  Hint: Value was of type 'int'. See the API docs for more information about request parameters."
        );
        assert_eq!(
            refusal(
                serde_json::json!({"run_id": "r", "key": "k", "value": 1.0}),
                LOG_METRIC
            ),
            "Missing value for required parameter 'timestamp'. See the API docs for more information about request parameters."
        );
        assert_eq!(
            refusal(
                serde_json::json!({"run_id": "r", "metrics": [{"key": "k", "value": 1}]}),
                LOG_BATCH
            ),
            "Missing value for required parameter 'metrics[0].timestamp'. See the API docs for more information about request parameters."
        );
        // A missing run_id is read from run_uuid, as MLflow reads it.
        let uuid = serde_json::json!({"run_uuid": "r", "key": "k", "value": 1, "timestamp": 2});
        assert!(fields(uuid, false).check(LOG_METRIC).is_ok());
    }

    #[test]
    fn types_are_checked_only_when_the_body_would_not_parse() {
        // "12" parses as an int64 field: no type check runs, as in MLflow.
        let ok = serde_json::json!({"experiment_id": "1", "start_time": "12"});
        assert!(fields(ok, false).check(CREATE_RUN).is_ok());
        // A query string's values are strings of the field's type.
        let query = serde_json::json!({"max_results": "10", "order_by": "name"});
        assert!(fields(query, true).check(SEARCH_REGISTERED_MODELS).is_ok());
        let over = serde_json::json!({"max_results": "2000"});
        assert!(fields(over, true).check(SEARCH_REGISTERED_MODELS).is_err());
        // A protobuf enum given by name parses.
        let status = serde_json::json!({"model_id": "m", "status": "LOGGED_MODEL_READY"});
        assert!(fields(status, false).check(FINALIZE_LOGGED_MODEL).is_ok());
    }
}
