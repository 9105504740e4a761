//! Cairn's domain → MLflow's JSON shapes. MLflow omits unset fields and empty lists;
//! ids of experiments and version numbers are strings, times are integer milliseconds.

use std::collections::BTreeMap;

use cairn_core::tracking::{Experiment, LoggedModel, Metric, Run, RunInfo};
use cairn_core::{Model, Version};
use cairn_registry::VersionExtras;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use super::request::f64_to_value;

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
    let mut obj = Map::new();
    obj.insert("run_uuid".into(), json!(i.id));
    obj.insert("experiment_id".into(), json!(i.experiment_id.to_string()));
    obj.insert("run_name".into(), json!(i.name));
    obj.insert("user_id".into(), json!(i.user_id));
    obj.insert("status".into(), json!(i.status.as_str()));
    obj.insert("start_time".into(), json!(i.start_time));
    if let Some(end) = i.end_time {
        obj.insert("end_time".into(), json!(end));
    }
    obj.insert("artifact_uri".into(), json!(i.artifact_uri));
    obj.insert("lifecycle_stage".into(), json!(i.lifecycle.as_str()));
    obj.insert("run_id".into(), json!(i.id));
    Value::Object(obj)
}

pub fn metric(m: &Metric) -> Value {
    json!({"key": m.key, "value": f64_to_value(m.value), "timestamp": m.timestamp, "step": m.step})
}

pub fn run(r: &Run) -> Value {
    let mut data = Map::new();
    put_nonempty(
        &mut data,
        "metrics",
        Value::Array(r.metrics.iter().map(metric).collect()),
    );
    put_nonempty(&mut data, "params", key_values(&r.params));
    put_nonempty(&mut data, "tags", key_values(&r.tags));
    let mut inputs = Map::new();
    let datasets: Vec<Value> = r
        .inputs
        .iter()
        .map(|d| {
            let mut dataset = Map::new();
            dataset.insert("name".into(), json!(d.name));
            dataset.insert("digest".into(), json!(d.digest));
            dataset.insert("source_type".into(), json!(d.source_type));
            dataset.insert("source".into(), json!(d.source));
            if let Some(schema) = &d.schema {
                dataset.insert("schema".into(), json!(schema));
            }
            if let Some(profile) = &d.profile {
                dataset.insert("profile".into(), json!(profile));
            }
            let mut input = Map::new();
            if let Some(context) = &d.context {
                input.insert(
                    "tags".into(),
                    json!([{"key": "mlflow.data.context", "value": context}]),
                );
            }
            input.insert("dataset".into(), Value::Object(dataset));
            Value::Object(input)
        })
        .collect();
    put_nonempty(&mut inputs, "dataset_inputs", Value::Array(datasets));
    let mut outputs = Map::new();
    put_nonempty(
        &mut outputs,
        "model_outputs",
        Value::Array(
            r.outputs
                .iter()
                .map(|(id, step)| json!({"model_id": id, "step": step}))
                .collect(),
        ),
    );
    json!({"info": run_info(&r.info), "data": data, "inputs": inputs, "outputs": outputs})
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
