//! MLflow tracking endpoints: experiments, runs, metrics, server info (logged models are
//! in `logged_models`).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use cairn_core::search::{Excerpt, parse_filter, parse_order_by};
use cairn_core::tracking::{DatasetInput, Lifecycle, RunStatus};
use cairn_registry::tracking::{MetricValue, ModelMetricValue, ViewType};
use cairn_registry::{Registry, now_ms};
use serde_json::{Value, json};

use cairn_core::access::Scope;
use cairn_core::auth::Role;

use super::convert;
use super::error::{MlflowError, MlflowResult};
use super::paging;
use super::request::{Fields, value_to_f64};
use super::schema;
use crate::access::Caller;

pub(super) type Reply = MlflowResult<Json<Value>>;

pub(super) fn ok() -> Reply {
    Ok(Json(json!({})))
}

pub fn experiment_id(f: &Fields, name: &str) -> MlflowResult<i64> {
    let raw = f.str(name)?;
    raw.parse()
        .map_err(|_| MlflowError::invalid(format!("Invalid experiment ID: '{raw}'")))
}

/// The `experiment_ids` list of a search.
pub(super) fn experiment_ids(f: &Fields) -> MlflowResult<Vec<i64>> {
    f.str_list("experiment_ids")?
        .iter()
        .map(|id| {
            id.parse()
                .map_err(|_| MlflowError::invalid(format!("Invalid experiment ID: '{id}'")))
        })
        .collect()
}

fn run_id(f: &Fields) -> MlflowResult<String> {
    match f.opt_str("run_id")?.filter(|s| !s.is_empty()) {
        Some(id) => Ok(id),
        None => f.str("run_uuid"),
    }
}

fn view_type(f: &Fields, field: &str) -> MlflowResult<ViewType> {
    Ok(match f.opt_str(field)?.as_deref() {
        None | Some("ACTIVE_ONLY") | Some("1") => ViewType::ActiveOnly,
        Some("DELETED_ONLY") | Some("2") => ViewType::DeletedOnly,
        Some("ALL") | Some("3") => ViewType::All,
        Some(other) => return Err(MlflowError::invalid(format!("Invalid view type {other}"))),
    })
}

pub(super) fn filter(f: &Fields) -> MlflowResult<Vec<cairn_core::search::Comparison>> {
    let text = f.opt_str("filter")?.unwrap_or_default();
    parse_filter(&text)
        .map_err(|e| MlflowError::invalid(format!("Invalid filter {:?}: {e}", Excerpt(&text))))
}

/// The `order_by` clauses of a search request.
pub(super) fn order_by(f: &Fields) -> MlflowResult<Vec<cairn_core::search::OrderBy>> {
    f.str_list("order_by")?
        .iter()
        .map(|clause| parse_order_by(clause).map_err(|e| MlflowError::invalid(e.to_string())))
        .collect()
}

// ---- experiments ----

pub async fn create_experiment(State(r): State<Registry>, f: Fields) -> Reply {
    f.check(schema::CREATE_EXPERIMENT)?;
    let name = f.str("name")?;
    let tags: BTreeMap<String, String> = f.key_values("tags")?.into_iter().collect();
    let location = f.opt_str("artifact_location")?;
    let id = r
        .tracking()
        .create_experiment(&name, location.as_deref(), &tags)
        .await?;
    Ok(Json(json!({"experiment_id": id.to_string()})))
}

pub async fn get_experiment(State(r): State<Registry>, f: Fields) -> Reply {
    f.check(schema::EXPERIMENT_ID)?;
    let e = r
        .tracking()
        .get_experiment(experiment_id(&f, "experiment_id")?)
        .await?;
    Ok(Json(json!({"experiment": convert::experiment(&e)})))
}

pub async fn get_experiment_by_name(State(r): State<Registry>, f: Fields) -> Reply {
    f.check(schema::GET_EXPERIMENT_BY_NAME)?;
    let e = r
        .tracking()
        .get_experiment_by_name(&f.str("experiment_name")?)
        .await?;
    Ok(Json(json!({"experiment": convert::experiment(&e)})))
}

pub async fn search_experiments(
    State(r): State<Registry>,
    Caller(actor): Caller,
    f: Fields,
) -> Reply {
    f.check(schema::SEARCH_EXPERIMENTS)?;
    let limit = paging::max_results(&f, 1000, 50000)?;
    let offset = paging::offset(&f)?;
    let mut all = r
        .tracking()
        .search_experiments(view_type(&f, "view_type")?, &filter(&f)?, &order_by(&f)?)
        .await?;
    // A caller with grants per experiment sees those it may read.
    all.retain(|e| actor.may(Role::Reader, Scope::Experiment(e.id)));
    let (page, token) = paging::page(all.into_iter().skip(offset).collect(), offset, limit);
    let mut out = json!({"experiments": page.iter().map(convert::experiment).collect::<Vec<_>>()});
    if let Some(t) = token {
        out["next_page_token"] = json!(t);
    }
    Ok(Json(out))
}

pub async fn update_experiment(State(r): State<Registry>, f: Fields) -> Reply {
    f.check(schema::UPDATE_EXPERIMENT)?;
    let id = experiment_id(&f, "experiment_id")?;
    if let Some(name) = f.opt_str("new_name")? {
        r.tracking().rename_experiment(id, &name).await?;
    }
    ok()
}

pub async fn delete_experiment(State(r): State<Registry>, f: Fields) -> Reply {
    f.check(schema::EXPERIMENT_ID)?;
    r.tracking()
        .set_experiment_lifecycle(experiment_id(&f, "experiment_id")?, Lifecycle::Deleted)
        .await?;
    ok()
}

pub async fn restore_experiment(State(r): State<Registry>, f: Fields) -> Reply {
    f.check(schema::EXPERIMENT_ID)?;
    r.tracking()
        .set_experiment_lifecycle(experiment_id(&f, "experiment_id")?, Lifecycle::Active)
        .await?;
    ok()
}

pub async fn set_experiment_tag(State(r): State<Registry>, f: Fields) -> Reply {
    f.check(schema::SET_EXPERIMENT_TAG)?;
    r.tracking()
        .set_experiment_tag(
            experiment_id(&f, "experiment_id")?,
            &f.str("key")?,
            &f.opt_str("value")?.unwrap_or_default(),
        )
        .await?;
    ok()
}

pub async fn delete_experiment_tag(State(r): State<Registry>, f: Fields) -> Reply {
    f.check(schema::DELETE_EXPERIMENT_TAG)?;
    r.tracking()
        .delete_experiment_tag(experiment_id(&f, "experiment_id")?, &f.str("key")?)
        .await?;
    ok()
}

// ---- runs ----

pub async fn create_run(State(r): State<Registry>, f: Fields) -> Reply {
    f.check(schema::CREATE_RUN)?;
    let exp = match f.opt_str("experiment_id")?.filter(|s| !s.is_empty()) {
        Some(_) => experiment_id(&f, "experiment_id")?,
        None => 0,
    };
    let tags: BTreeMap<String, String> = f.key_values("tags")?.into_iter().collect();
    let start = f.opt_i64("start_time")?.unwrap_or_else(now_ms);
    let user = f.opt_str("user_id")?.unwrap_or_default();
    let run = r
        .tracking()
        .create_run(exp, &user, start, f.opt_str("run_name")?.as_deref(), &tags)
        .await?;
    let mut value = convert::run(&run);
    value.as_object_mut().map(|o| o.remove("outputs"));
    Ok(Json(json!({ "run": value })))
}

pub async fn get_run(State(r): State<Registry>, f: Fields) -> Reply {
    f.check(schema::RUN_ID)?;
    let run = r.tracking().get_run(&run_id(&f)?).await?;
    Ok(Json(json!({"run": convert::run(&run)})))
}

pub async fn update_run(State(r): State<Registry>, f: Fields) -> Reply {
    f.check(schema::UPDATE_RUN)?;
    let status = match f.opt_str("status")? {
        Some(s) => Some(
            RunStatus::parse(&s)
                .ok_or_else(|| MlflowError::invalid(format!("Invalid run status {s}")))?,
        ),
        None => None,
    };
    let info = r
        .tracking()
        .update_run(
            &run_id(&f)?,
            status,
            f.opt_i64("end_time")?,
            f.opt_str("run_name")?.as_deref(),
        )
        .await?;
    Ok(Json(json!({"run_info": convert::run_info(&info)})))
}

pub async fn delete_run(State(r): State<Registry>, f: Fields) -> Reply {
    f.check(schema::RUN_ID)?;
    r.tracking()
        .set_run_lifecycle(&run_id(&f)?, Lifecycle::Deleted)
        .await?;
    ok()
}

pub async fn restore_run(State(r): State<Registry>, f: Fields) -> Reply {
    f.check(schema::RUN_ID)?;
    r.tracking()
        .set_run_lifecycle(&run_id(&f)?, Lifecycle::Active)
        .await?;
    ok()
}

fn metric_from(v: &Value, fallback_ts: i64) -> MlflowResult<MetricValue> {
    let key = v.get("key").and_then(Value::as_str).ok_or_else(|| {
        MlflowError::invalid("Missing value for required parameter 'metrics.key'")
    })?;
    let value = v
        .get("value")
        .and_then(value_to_f64)
        .ok_or_else(|| MlflowError::invalid(format!("Invalid value for metric '{key}'")))?;
    let int = |name: &str| -> MlflowResult<Option<i64>> {
        match v.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => Ok(n.as_i64()),
            Some(Value::String(s)) => s
                .parse()
                .map(Some)
                .map_err(|_| MlflowError::invalid(format!("Invalid {name} for metric '{key}'"))),
            Some(other) => Err(MlflowError::invalid(format!(
                "Invalid {name} {other} for metric '{key}'"
            ))),
        }
    };
    Ok(MetricValue {
        key: key.to_owned(),
        value,
        timestamp: int("timestamp")?.unwrap_or(fallback_ts),
        step: int("step")?.unwrap_or(0),
    })
}

pub async fn log_metric(State(r): State<Registry>, f: Fields) -> Reply {
    f.check(schema::LOG_METRIC)?;
    let m = MetricValue {
        key: f.str("key")?,
        value: f.f64("value")?,
        timestamp: f.i64("timestamp")?,
        step: f.opt_i64("step")?.unwrap_or(0),
    };
    let run = run_id(&f)?;
    let nonempty = |field| f.opt_str(field).map(|v| v.filter(|s| !s.is_empty()));
    let dataset = dataset_of(nonempty("dataset_name")?, nonempty("dataset_digest")?)?;
    if let Some(model) = nonempty("model_id")? {
        r.tracking()
            .log_model_metrics(
                &run,
                &model,
                &[ModelMetricValue {
                    metric: m.clone(),
                    dataset,
                }],
            )
            .await?;
    }
    r.tracking().log_batch(&run, &[m], &[], &[]).await?;
    ok()
}

/// A metric's dataset: both its name and digest, or neither.
fn dataset_of(
    name: Option<String>,
    digest: Option<String>,
) -> MlflowResult<Option<(String, String)>> {
    match (name, digest) {
        (Some(name), Some(digest)) => Ok(Some((name, digest))),
        (None, None) => Ok(None),
        _ => Err(MlflowError::invalid(
            "Both dataset_name and dataset_digest must be provided if one is provided",
        )),
    }
}

pub async fn log_param(State(r): State<Registry>, f: Fields) -> Reply {
    f.check(schema::LOG_PARAM)?;
    let param = (f.str("key")?, f.opt_str("value")?.unwrap_or_default());
    r.tracking()
        .log_batch(&run_id(&f)?, &[], &[param], &[])
        .await?;
    ok()
}

pub async fn set_tag(State(r): State<Registry>, f: Fields) -> Reply {
    f.check(schema::SET_TAG)?;
    let tag = (f.str("key")?, f.opt_str("value")?.unwrap_or_default());
    r.tracking()
        .log_batch(&run_id(&f)?, &[], &[], &[tag])
        .await?;
    ok()
}

pub async fn delete_tag(State(r): State<Registry>, f: Fields) -> Reply {
    f.check(schema::DELETE_TAG)?;
    r.tracking()
        .delete_run_tag(&run_id(&f)?, &f.str("key")?)
        .await?;
    ok()
}

pub async fn log_batch(State(r): State<Registry>, f: Fields) -> Reply {
    f.check(schema::LOG_BATCH)?;
    let now = now_ms();
    let metrics = f
        .list("metrics")
        .iter()
        .map(|m| metric_from(m, now))
        .collect::<MlflowResult<Vec<_>>>()?;
    let params = f.key_values("params")?;
    let tags = f.key_values("tags")?;
    let run = run_id(&f)?;
    // Metrics of logged models, by model, recorded before the run's own.
    let mut by_model: BTreeMap<String, Vec<ModelMetricValue>> = BTreeMap::new();
    for (item, metric) in f.list("metrics").iter().zip(&metrics) {
        let text = |k: &str| {
            item.get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let dataset = dataset_of(text("dataset_name"), text("dataset_digest"))?;
        if let Some(model) = text("model_id") {
            by_model.entry(model).or_default().push(ModelMetricValue {
                metric: metric.clone(),
                dataset,
            });
        }
    }
    for (model, values) in &by_model {
        r.tracking().log_model_metrics(&run, model, values).await?;
    }
    r.tracking()
        .log_batch(&run, &metrics, &params, &tags)
        .await?;
    ok()
}

pub async fn log_inputs(State(r): State<Registry>, f: Fields) -> Reply {
    f.check(schema::LOG_INPUTS)?;
    let mut inputs = Vec::new();
    for input in f.list("datasets") {
        let d = input.get("dataset").cloned().unwrap_or(Value::Null);
        let s = |k: &str| d.get(k).and_then(Value::as_str).map(str::to_owned);
        // Every tag of the input is kept (its context is one of them).
        let tags: BTreeMap<String, String> = input
            .get("tags")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|t| {
                let key = t.get("key").and_then(Value::as_str)?;
                let value = t.get("value").and_then(Value::as_str).unwrap_or_default();
                Some((key.to_owned(), value.to_owned()))
            })
            .collect();
        inputs.push(DatasetInput {
            name: s("name").ok_or_else(|| {
                MlflowError::invalid("Missing value for required parameter 'dataset.name'")
            })?,
            digest: s("digest").ok_or_else(|| {
                MlflowError::invalid("Missing value for required parameter 'dataset.digest'")
            })?,
            source_type: s("source_type").unwrap_or_default(),
            source: s("source").unwrap_or_default(),
            schema: s("schema"),
            profile: s("profile"),
            tags,
        });
    }
    let models: Vec<String> = f
        .list("models")
        .iter()
        .filter_map(|m| m.get("model_id").and_then(Value::as_str).map(str::to_owned))
        .collect();
    r.tracking()
        .log_inputs(&run_id(&f)?, &inputs, &models)
        .await?;
    ok()
}

pub async fn log_outputs(State(r): State<Registry>, f: Fields) -> Reply {
    f.check(schema::LOG_OUTPUTS)?;
    let models = f
        .list("models")
        .iter()
        .map(|m| {
            let id = m.get("model_id").and_then(Value::as_str).ok_or_else(|| {
                MlflowError::invalid("Missing value for required parameter 'models.model_id'")
            })?;
            let step = m
                .get("step")
                .and_then(|s| s.as_i64().or_else(|| s.as_str()?.parse().ok()))
                .unwrap_or(0);
            Ok((id.to_owned(), step))
        })
        .collect::<MlflowResult<Vec<_>>>()?;
    r.tracking().log_outputs(&run_id(&f)?, &models).await?;
    ok()
}

/// MLflow 2.x records logged models by appending the MLmodel JSON to a run tag.
pub async fn log_model(State(r): State<Registry>, f: Fields) -> Reply {
    f.check(schema::LOG_MODEL)?;
    let run = run_id(&f)?;
    let model_json = f.str("model_json")?;
    let model: Value = serde_json::from_str(&model_json)
        .map_err(|e| MlflowError::invalid(format!("Malformed model info: {e}")))?;
    let current = r.tracking().get_run(&run).await?;
    let mut history: Vec<Value> = current
        .tags
        .get("mlflow.log-model.history")
        .and_then(|h| serde_json::from_str(h).ok())
        .unwrap_or_default();
    history.push(model);
    let tag = (
        "mlflow.log-model.history".to_owned(),
        Value::Array(history).to_string(),
    );
    r.tracking().log_batch(&run, &[], &[], &[tag]).await?;
    ok()
}

pub async fn search_runs(State(r): State<Registry>, f: Fields) -> MlflowResult<Response> {
    f.check(schema::SEARCH_RUNS)?;
    let ids = experiment_ids(&f)?;
    let limit = paging::max_results(&f, 1000, 50000)?;
    let offset = paging::offset(&f)?;
    let runs = r
        .tracking()
        .search_runs(
            &ids,
            &filter(&f)?,
            view_type(&f, "run_view_type")?,
            &order_by(&f)?,
            offset,
            limit,
        )
        .await?;
    let (page, token) = paging::page(runs, offset, limit);
    let answer = RunsPage {
        runs: page.iter().map(convert::RunJson::from).collect(),
        next_page_token: token,
    };
    // About a KiB per run with a few metrics, params and tags: written into a buffer of
    // that size, a page is not copied into ever larger ones as it grows (`Json` starts
    // at 128 bytes; a page of 100 runs moved ten times).
    let mut body = Vec::with_capacity(1024 * answer.runs.len().max(1));
    serde_json::to_writer(&mut body, &answer).expect("a page of runs serializes");
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// A page of `runs/search`, serialized straight from the runs (see [`convert::RunJson`]).
#[derive(serde::Serialize)]
struct RunsPage<'a> {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    runs: Vec<convert::RunJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_page_token: Option<String>,
}

pub async fn metric_history(State(r): State<Registry>, f: Fields) -> Reply {
    f.check(schema::GET_METRIC_HISTORY)?;
    let key = f.str("metric_key")?;
    let limit = paging::max_results(&f, 25000, 25000)?;
    let offset = paging::offset(&f)?;
    let history = r.tracking().metric_history(&run_id(&f)?, &key).await?;
    let (page, token) = paging::page(history.into_iter().skip(offset).collect(), offset, limit);
    Ok(Json(paging::reply(
        "metrics",
        page.iter().map(convert::metric).collect(),
        token,
    )))
}

/// The UI's metric charts: one metric of several runs, within a step range, each run's
/// values sampled to at most `max_results` as `mlflow server` samples them.
pub async fn metric_history_bulk_interval(State(r): State<Registry>, f: Fields) -> Reply {
    f.check(schema::GET_METRIC_HISTORY_BULK_INTERVAL)?;
    let key = f.str("metric_key")?;
    let steps = match (f.opt_i64("start_step")?, f.opt_i64("end_step")?) {
        (Some(start), Some(end)) if start > end => {
            return Err(MlflowError::invalid(format!(
                "end_step must be greater than start_step. Found start_step={start} and end_step={end}."
            )));
        }
        (Some(start), Some(end)) => Some((start, end)),
        (None, None) => None,
        _ => {
            return Err(MlflowError::invalid(
                "If either start step or end step are specified, both must be specified.",
            ));
        }
    };
    let most = f.opt_i64("max_results")?.unwrap_or(2500).max(1) as usize;
    let mut metrics = Vec::new();
    for run in f.str_list("run_ids")? {
        let values = r
            .tracking()
            .metric_values_by_step(&run, &key, steps)
            .await?;
        for m in sampled(&values, most) {
            let mut v = convert::metric(m);
            v["run_id"] = json!(run);
            metrics.push(v);
        }
    }
    Ok(Json(paging::reply("metrics", metrics, None)))
}

/// At most `most` of `rows` (sorted by step), as MLflow's SQL store picks them: the rows
/// split into `most` buckets of near-equal size (the first ones one larger), the first
/// row of each, and the last row always — in place of the last pick when it was not it.
fn sampled<T>(rows: &[T], most: usize) -> Vec<&T> {
    let (n, most) = (rows.len(), most.max(1));
    if n <= most {
        return rows.iter().collect();
    }
    let (size, larger) = (n / most, n % most);
    let mut picked: Vec<&T> = (0..most)
        .map(|bucket| &rows[bucket * size + bucket.min(larger)])
        .collect();
    if let Some(last) = picked.last_mut() {
        *last = &rows[n - 1];
    }
    picked
}

/// The UI's comparison charts: one metric of up to 100 runs, every value, in one list
/// (`run_id` repeated in the query string).
pub async fn metric_history_bulk(State(r): State<Registry>, f: Fields) -> MlflowResult<Response> {
    let runs = f.str_list("run_id")?;
    if runs.is_empty() {
        return Err(MlflowError::invalid(
            "GetMetricHistoryBulk request must specify at least one run_id.",
        ));
    }
    if runs.len() > 100 {
        return Err(MlflowError::invalid(format!(
            "GetMetricHistoryBulk request cannot specify more than 100 run_ids. Received {} run_ids.",
            runs.len()
        )));
    }
    let Some(key) = f.opt_str("metric_key")? else {
        return Err(MlflowError::invalid(
            "GetMetricHistoryBulk request must specify a metric_key.",
        ));
    };
    let most = f.opt_i64("max_results")?.unwrap_or(25000).clamp(0, 25000) as usize;
    let values = r
        .tracking()
        .metric_values_of_runs(&runs, &key, most)
        .await?;
    let metrics: Vec<Value> = values
        .iter()
        .map(|(run, m)| {
            let mut v = convert::metric(m);
            v["run_id"] = json!(run);
            v
        })
        .collect();
    Ok(Json(json!({ "metrics": metrics })).into_response())
}

pub async fn server_info() -> Json<Value> {
    Json(json!({
        "store_type": "SqlStore",
        "workspaces_enabled": false,
        "trace_archival_enabled": false,
        "multipart_uploads_enabled": true,
        "multipart_downloads_enabled": false,
        "presigned_upload_run_id_supported": false,
        "presigned_upload_model_id_supported": false,
        "features_enabled": {}
    }))
}

#[cfg(test)]
mod tests {
    use super::sampled;

    #[test]
    fn samples_as_mlflow_server_does() {
        let steps: Vec<i64> = (0..10).collect();
        let picks = |most| {
            sampled(&steps, most)
                .into_iter()
                .copied()
                .collect::<Vec<_>>()
        };
        assert_eq!(picks(4), [0, 3, 6, 9]);
        assert_eq!(picks(3), [0, 4, 9]);
        assert_eq!(picks(1), [9]);
        assert_eq!(picks(10), steps);
        assert_eq!(picks(25), steps);
        assert_eq!(
            sampled(&steps[2..7], 2)
                .into_iter()
                .copied()
                .collect::<Vec<_>>(),
            [2, 6]
        );
    }
}
