//! Cairn's domain → MLflow's JSON shapes. MLflow omits unset fields and empty lists;
//! ids of experiments and version numbers are strings, times are integer milliseconds.

use std::collections::BTreeMap;

use cairn_core::tracking::{Experiment, LoggedModel, Metric, Run, RunInfo};
use cairn_core::{Model, Version};
use cairn_registry::VersionExtras;
use serde::Serialize;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

pub fn ms(t: &OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

pub fn key_values(map: &BTreeMap<String, String>) -> Value {
    Value::Array(
        map.iter()
            .map(|(k, v)| json!({"key": k, "value": v}))
            .collect(),
    )
}

/// Inserts `key: value` unless the value is an empty list or object.
fn put_nonempty(obj: &mut Map<String, Value>, key: &str, value: Value) {
    let empty = match &value {
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Null => true,
        _ => false,
    };
    if !empty {
        obj.insert(key.into(), value);
    }
}

pub fn experiment(e: &Experiment) -> Value {
    let mut obj = Map::new();
    obj.insert("experiment_id".into(), json!(e.id.to_string()));
    obj.insert("name".into(), json!(e.name));
    obj.insert("artifact_location".into(), json!(e.artifact_location));
    obj.insert("lifecycle_stage".into(), json!(e.lifecycle.as_str()));
    obj.insert("last_update_time".into(), json!(e.last_update_time));
    obj.insert("creation_time".into(), json!(e.creation_time));
    put_nonempty(&mut obj, "tags", key_values(&e.tags));
    // MLflow 3 servers name the workspace; Cairn has one.
    obj.insert("workspace".into(), json!("default"));
    Value::Object(obj)
}

pub fn run_info(i: &RunInfo) -> Value {
    serde_json::to_value(RunInfoJson::from(i)).expect("a run info serializes")
}

pub fn metric(m: &Metric) -> Value {
    serde_json::to_value(MetricJson::from(m)).expect("a metric serializes")
}

pub fn run(r: &Run) -> Value {
    serde_json::to_value(RunJson::from(r)).expect("a run serializes")
}

// A run is written through borrowed structs rather than a `Value` tree: a search answers
// with up to thousands of runs, and building the tree cost more than reading them.

/// A run in MLflow's JSON shape.
#[derive(Serialize)]
pub struct RunJson<'a> {
    info: RunInfoJson<'a>,
    data: RunDataJson<'a>,
    inputs: RunInputsJson<'a>,
    outputs: RunOutputsJson<'a>,
}

impl<'a> From<&'a Run> for RunJson<'a> {
    fn from(r: &'a Run) -> Self {
        Self {
            info: RunInfoJson::from(&r.info),
            data: RunDataJson {
                metrics: r.metrics.iter().map(MetricJson::from).collect(),
                params: key_value_list(&r.params),
                tags: key_value_list(&r.tags),
            },
            inputs: RunInputsJson {
                dataset_inputs: r
                    .inputs
                    .iter()
                    .map(|d| DatasetInputJson {
                        tags: key_value_list(&d.tags),
                        dataset: DatasetJson {
                            name: &d.name,
                            digest: &d.digest,
                            source_type: &d.source_type,
                            source: &d.source,
                            schema: d.schema.as_deref(),
                            profile: d.profile.as_deref(),
                        },
                    })
                    .collect(),
                model_inputs: r
                    .model_inputs
                    .iter()
                    .map(|model_id| ModelInputJson { model_id })
                    .collect(),
            },
            outputs: RunOutputsJson {
                model_outputs: r
                    .outputs
                    .iter()
                    .map(|(model_id, step)| ModelOutputJson {
                        model_id,
                        step: *step,
                    })
                    .collect(),
            },
        }
    }
}

#[derive(Serialize)]
struct RunInfoJson<'a> {
    run_uuid: &'a str,
    experiment_id: String,
    run_name: &'a str,
    user_id: &'a str,
    status: &'a str,
    start_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_time: Option<i64>,
    artifact_uri: &'a str,
    lifecycle_stage: &'a str,
    run_id: &'a str,
}

impl<'a> From<&'a RunInfo> for RunInfoJson<'a> {
    fn from(i: &'a RunInfo) -> Self {
        Self {
            run_uuid: &i.id,
            experiment_id: i.experiment_id.to_string(),
            run_name: &i.name,
            user_id: &i.user_id,
            status: i.status.as_str(),
            start_time: i.start_time,
            end_time: i.end_time,
            artifact_uri: &i.artifact_uri,
            lifecycle_stage: i.lifecycle.as_str(),
            run_id: &i.id,
        }
    }
}

#[derive(Serialize)]
struct RunDataJson<'a> {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    metrics: Vec<MetricJson<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    params: Vec<KeyValueJson<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tags: Vec<KeyValueJson<'a>>,
}

#[derive(Serialize)]
struct MetricJson<'a> {
    key: &'a str,
    value: MlflowDouble,
    timestamp: i64,
    step: i64,
}

impl<'a> From<&'a Metric> for MetricJson<'a> {
    fn from(m: &'a Metric) -> Self {
        Self {
            key: &m.key,
            value: MlflowDouble(m.value),
            timestamp: m.timestamp,
            step: m.step,
        }
    }
}

/// A double as MLflow writes it: non-finite values as the strings `NaN`, `Infinity`
/// and `-Infinity` (which its clients parse back).
struct MlflowDouble(f64);

impl Serialize for MlflowDouble {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            v if v.is_nan() => s.serialize_str("NaN"),
            f64::INFINITY => s.serialize_str("Infinity"),
            f64::NEG_INFINITY => s.serialize_str("-Infinity"),
            v => s.serialize_f64(v),
        }
    }
}

#[derive(Serialize)]
struct KeyValueJson<'a> {
    key: &'a str,
    value: &'a str,
}

fn key_value_list(map: &BTreeMap<String, String>) -> Vec<KeyValueJson<'_>> {
    map.iter()
        .map(|(key, value)| KeyValueJson { key, value })
        .collect()
}

#[derive(Serialize)]
struct RunInputsJson<'a> {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    dataset_inputs: Vec<DatasetInputJson<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    model_inputs: Vec<ModelInputJson<'a>>,
}

#[derive(Serialize)]
struct ModelInputJson<'a> {
    model_id: &'a str,
}

#[derive(Serialize)]
struct DatasetInputJson<'a> {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tags: Vec<KeyValueJson<'a>>,
    dataset: DatasetJson<'a>,
}

#[derive(Serialize)]
struct DatasetJson<'a> {
    name: &'a str,
    digest: &'a str,
    source_type: &'a str,
    source: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    schema: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    profile: Option<&'a str>,
}

#[derive(Serialize)]
struct RunOutputsJson<'a> {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    model_outputs: Vec<ModelOutputJson<'a>>,
}

#[derive(Serialize)]
struct ModelOutputJson<'a> {
    model_id: &'a str,
    step: i64,
}

pub fn logged_model(m: &LoggedModel) -> Value {
    let mut info = Map::new();
    info.insert("model_id".into(), json!(m.id));
    info.insert("experiment_id".into(), json!(m.experiment_id.to_string()));
    info.insert("name".into(), json!(m.name));
    info.insert("creation_timestamp_ms".into(), json!(m.creation_time));
    info.insert(
        "last_updated_timestamp_ms".into(),
        json!(m.last_updated_time),
    );
    info.insert("artifact_uri".into(), json!(m.artifact_uri));
    info.insert("status".into(), json!(m.status));
    info.insert("model_type".into(), json!(m.model_type));
    if let Some(run) = &m.source_run_id {
        info.insert("source_run_id".into(), json!(run));
    }
    put_nonempty(&mut info, "tags", key_values(&m.tags));
    let mut data = Map::new();
    put_nonempty(&mut data, "params", key_values(&m.params));
    let metrics: Vec<Value> = m
        .metrics
        .iter()
        .map(|metric| {
            let mut v = json!({
                "key": metric.key,
                "value": MlflowDouble(metric.value),
                "timestamp": metric.timestamp,
                "step": metric.step,
                "model_id": m.id,
                "run_id": metric.run_id,
            });
            if let Some((name, digest)) = &metric.dataset {
                v["dataset_name"] = json!(name);
                v["dataset_digest"] = json!(digest);
            }
            v
        })
        .collect();
    put_nonempty(&mut data, "metrics", Value::Array(metrics));
    json!({"info": info, "data": data})
}

/// A model version. `with_aliases`: MLflow leaves aliases out of search results and of
/// `latest_versions`.
pub fn model_version(v: &Version, extras: &VersionExtras, with_aliases: bool) -> Value {
    let mut obj = Map::new();
    obj.insert("name".into(), json!(v.model));
    obj.insert("version".into(), json!(v.version.to_string()));
    obj.insert("creation_timestamp".into(), json!(ms(&v.created_at)));
    obj.insert("last_updated_timestamp".into(), json!(extras.updated_at));
    obj.insert("current_stage".into(), json!(extras.stage));
    obj.insert("description".into(), json!(v.description));
    obj.insert("source".into(), json!(source_of(v, extras)));
    obj.insert("run_id".into(), json!(extras.origin.run_id));
    obj.insert("status".into(), json!("READY"));
    put_nonempty(&mut obj, "tags", key_values(&v.tags));
    obj.insert("run_link".into(), json!(extras.origin.run_link));
    if with_aliases {
        put_nonempty(&mut obj, "aliases", json!(v.aliases));
    }
    if let Some(id) = &extras.origin.logged_model_id {
        obj.insert("model_id".into(), json!(id));
    }
    Value::Object(obj)
}

/// Versions pushed with the Cairn CLI have no MLflow source: point at the version itself.
pub fn source_of(v: &Version, extras: &VersionExtras) -> String {
    if extras.origin.source.is_empty() {
        format!("models:/{}/{}", v.model, v.version)
    } else {
        extras.origin.source.clone()
    }
}

pub fn registered_model(m: &Model, latest: Vec<Value>) -> Value {
    let mut obj = Map::new();
    obj.insert("name".into(), json!(m.name));
    obj.insert("creation_timestamp".into(), json!(ms(&m.created_at)));
    obj.insert("last_updated_timestamp".into(), json!(ms(&m.updated_at)));
    if !m.description.is_empty() {
        obj.insert("description".into(), json!(m.description));
    }
    put_nonempty(&mut obj, "latest_versions", Value::Array(latest));
    put_nonempty(&mut obj, "tags", key_values(&m.tags));
    put_nonempty(
        &mut obj,
        "aliases",
        Value::Array(
            m.aliases
                .iter()
                .map(|(a, v)| json!({"alias": a, "version": v.to_string()}))
                .collect(),
        ),
    );
    Value::Object(obj)
}
