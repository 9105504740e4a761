//! Experiments and runs: the experiments (`/experiments`), an experiment's runs with
//! their metrics and params (`/experiments/{id}`: sortable, filtered with MLflow's
//! filter grammar, a page at a time), a run (`/runs/{id}`: a line chart per metric
//! history, params, tags, artifacts) and the data of its charts.

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use cairn_core::access::Scope;
use cairn_core::auth::Role;
use cairn_core::search::{parse_filter, parse_order_by};
use cairn_core::source::artifact_path;
use cairn_registry::Registry;
use cairn_registry::tracking::ViewType;
use maud::{Markup, html};
use serde_json::{Value, json};

use super::layout::{Section, frame, number, pager, query_string, run_url, segment, size, time_ms};
use super::{Query, UiError, UiResult};
use crate::access::Caller;

const PAGE: usize = 50;
/// Params shown as columns of a runs table (the run's page has them all).
const PARAM_COLUMNS: usize = 8;

/// `GET /experiments`: the active experiments the caller may read.
pub async fn experiments(State(r): State<Registry>, Caller(actor): Caller) -> UiResult<Markup> {
    let mut all = r
        .tracking()
        .search_experiments(ViewType::ActiveOnly, &[], &[])
        .await?;
    all.retain(|e| actor.may(Role::Reader, Scope::Experiment(e.id)));
    let body = html! {
        @if all.is_empty() { p.muted { "No experiments." } }
        @else {
            table #experiments {
                thead { tr { th.num { "Id" } th { "Name" } th { "Created" } } }
                tbody { @for e in &all { tr {
                    td.num { (e.id) }
                    td { a href=(format!("/experiments/{}", e.id)) { (e.name) } }
                    td.muted { (time_ms(e.creation_time)) }
                } } }
            }
        }
    };
    Ok(frame(
        Section::Experiments,
        "Experiments",
        Some(&actor),
        body,
    ))
}

/// `GET /experiments/{id}?filter=&order_by=&page=`.
pub async fn experiment(
    State(r): State<Registry>,
    Caller(actor): Caller,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> UiResult<Markup> {
    let id: i64 = id
        .parse()
        .map_err(|_| UiError::bad_request(format!("{id:?} is not an experiment id")))?;
    let tracking = r.tracking();
    let experiment = tracking.get_experiment(id).await?;
    let query = Query::parse(raw.as_deref());
    let filter_text = query.get("filter").unwrap_or_default();
    let order_text = query.get("order_by").unwrap_or_default();
    let filter =
        parse_filter(filter_text).map_err(|e| UiError::bad_request(format!("filter: {}", e.0)))?;
    let order = if order_text.is_empty() {
        Vec::new()
    } else {
        vec![
            parse_order_by(order_text)
                .map_err(|e| UiError::bad_request(format!("order: {}", e.0)))?,
        ]
    };
    let page_number = query.page()?;
    let offset = (page_number as usize - 1) * PAGE;
    let mut runs = tracking
        .search_runs(
            &[id],
            &filter,
            ViewType::ActiveOnly,
            &order,
            offset,
            PAGE + 1,
        )
        .await?;
    let more = runs.len() > PAGE;
    runs.truncate(PAGE);
    let metric_keys: BTreeSet<&str> = runs
        .iter()
        .flat_map(|run| run.metrics.iter().map(|m| m.key.as_str()))
        .collect();
    let param_keys: Vec<&str> = runs
        .iter()
        .flat_map(|run| run.params.keys().map(String::as_str))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .take(PARAM_COLUMNS)
        .collect();
    let base = format!("/experiments/{id}");
    let sort_link = |column: String| {
        let descending = format!("{column} DESC");
        let order = if order_text == descending {
            format!("{column} ASC")
        } else {
            descending
        };
        format!(
            "{base}{}",
            query_string(&[("filter", filter_text), ("order_by", &order)])
        )
    };
    let body = html! {
        form.filters method="get" action=(base) {
            label { "Filter (MLflow's grammar)"
                input name="filter" size="50" value=(filter_text) placeholder="metrics.acc > 0.9 and params.lr = '0.1'"; }
            input type="hidden" name="order_by" value=(order_text);
            button type="submit" { "Filter" }
        }
        @if runs.is_empty() { p.muted { "No runs match." } }
        @else {
            table #runs {
                thead { tr {
                    th { "Run" }
                    th { a href=(sort_link("attributes.start_time".into())) { "Started" } }
                    th { "Status" } th { "User" }
                    @for k in &metric_keys { th.num { a href=(sort_link(format!("metrics.`{k}`"))) { (k) } } }
                    @for k in &param_keys { th { a href=(sort_link(format!("params.`{k}`"))) { (k) } } }
                } }
                tbody { @for run in &runs { tr {
                    td { a href=(run_url(&run.info.id)) { @if run.info.name.is_empty() { (run.info.id) } @else { (run.info.name) } } }
                    td.muted { (time_ms(run.info.start_time)) }
                    td { (run.info.status.as_str()) }
                    td { (run.info.user_id) }
                    @for k in &metric_keys {
                        td.num { @if let Some(m) = run.metrics.iter().find(|m| m.key == *k) { (number(m.value)) } }
                    }
                    @for k in &param_keys { td { (run.params.get(*k).map(String::as_str).unwrap_or("")) } }
                } } }
            }
        }
        (pager(&base, &[("filter", filter_text), ("order_by", order_text)], page_number, more))
    };
    Ok(frame(
        Section::Experiments,
        &experiment.name,
        Some(&actor),
        body,
    ))
}

/// The root of a run's artifacts in the artifact index.
fn artifact_root(artifact_uri: &str) -> Option<String> {
    artifact_path(artifact_uri).filter(|p| !p.is_empty())
}

/// `GET /runs/{id}?path=`: the run, its metric charts, params, tags and artifacts.
pub async fn run(
    State(r): State<Registry>,
    Caller(actor): Caller,
    Path(run_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> UiResult<Markup> {
    let run = r.tracking().get_run(&run_id).await?;
    let experiment = r.tracking().get_experiment(run.info.experiment_id).await?;
    let query = Query::parse(raw.as_deref());
    let dir = query.get("path").unwrap_or_default().trim_matches('/');
    let artifacts = match artifact_root(&run.info.artifact_uri) {
        Some(root) => {
            let listed = if dir.is_empty() {
                root.clone()
            } else {
                format!("{root}/{dir}")
            };
            Some(r.tracking().list_artifacts(&listed).await?)
        }
        None => None,
    };
    let title = if run.info.name.is_empty() {
        run.info.id.clone()
    } else {
        run.info.name.clone()
    };
    let run_link = run_url(&run.info.id);
    let body = html! {
        p.muted {
            "Experiment " a href=(format!("/experiments/{}", experiment.id)) { (experiment.name) }
            " · " (run.info.status.as_str()) " · started " (time_ms(run.info.start_time))
            " by " (run.info.user_id) " · id " code { (run.info.id) }
        }
        h2 { "Metrics" }
        @if run.metrics.is_empty() { p.muted { "No metrics." } }
        @else {
            div.cards #charts { @for m in &run.metrics {
                div.chart data-metric=(m.key) data-src=(format!("{run_link}/metric-history{}", query_string(&[("key", &m.key)]))) {
                    h3 { (m.key) " " span.muted { "latest " (number(m.value)) " at step " (m.step) } }
                    div.plot {}
                }
            } }
        }
        h2 { "Params" }
        (pairs_table("params", run.params.iter()))
        h2 { "Tags" }
        (pairs_table("tags", run.tags.iter().filter(|(k, _)| !k.starts_with("mlflow.log-model"))))
        h2 { "Artifacts" @if !dir.is_empty() { ": " (dir) } }
        @match &artifacts {
            None => p.muted { "Stored outside the registry: " (run.info.artifact_uri) },
            Some(entries) if entries.is_empty() => p.muted { "No artifacts." },
            Some(entries) => table #artifacts {
                thead { tr { th { "Name" } th.num { "Size" } } }
                tbody { @for e in entries {
                    @let path = if dir.is_empty() { e.name.clone() } else { format!("{dir}/{}", e.name) };
                    tr {
                        @if e.is_dir {
                            td { a href=(format!("{run_link}{}", query_string(&[("path", &path)]))) { (e.name) "/" } }
                            td {}
                        } @else {
                            td { a href=(format!("{run_link}/artifacts/{}", path.split('/').map(segment).collect::<Vec<_>>().join("/"))) download { (e.name) } }
                            td.num { (e.size.map(size).unwrap_or_default()) }
                        }
                    }
                } }
            },
        }
    };
    Ok(frame(Section::Experiments, &title, Some(&actor), body))
}

fn pairs_table<'a>(id: &str, pairs: impl Iterator<Item = (&'a String, &'a String)>) -> Markup {
    let pairs: Vec<_> = pairs.collect();
    html! {
        @if pairs.is_empty() { p.muted { "None." } }
        @else { table id=(id) { tbody { @for (k, v) in &pairs { tr { th { (k) } td { (v) } } } } } }
    }
}

/// `GET /runs/{id}/metric-history?key=K`: every value of a metric, by step, as the
/// chart draws it: `{key, x_label, x: [step…], y: [value…]}` (NaN as null, a gap).
pub async fn metric_history(
    State(r): State<Registry>,
    Path(run_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> UiResult<Json<Value>> {
    let query = Query::parse(raw.as_deref());
    let key = query
        .get("key")
        .ok_or_else(|| UiError::bad_request("key is required"))?;
    let mut history = r.tracking().metric_history(&run_id, key).await?;
    history.sort_by(|a, b| a.step.cmp(&b.step).then(a.timestamp.cmp(&b.timestamp)));
    let x: Vec<i64> = history.iter().map(|m| m.step).collect();
    let y: Vec<Option<f64>> = history
        .iter()
        .map(|m| m.value.is_finite().then_some(m.value))
        .collect();
    Ok(Json(
        json!({ "key": key, "x_label": "step", "x": x, "y": y }),
    ))
}

/// `GET /runs/{id}/artifacts/{*path}`: one artifact file, checked on the way out.
pub async fn artifact(
    State(r): State<Registry>,
    Path((run_id, path)): Path<(String, String)>,
) -> UiResult<Response> {
    let run = r.tracking().run_info(&run_id).await?;
    let root = artifact_root(&run.artifact_uri).ok_or_else(|| {
        UiError::bad_request("this run's artifacts are stored outside the registry")
    })?;
    let full = format!("{root}/{}", path.trim_matches('/'));
    let (digest, _) = r.tracking().artifact_blob(&full).await?.ok_or_else(|| {
        UiError::new(
            axum::http::StatusCode::NOT_FOUND,
            format!("run {run_id} has no artifact {path:?}"),
        )
    })?;
    let blob = r.tracking().read_blob(&digest).await?;
    Ok(super::attachment(blob, &path))
}
