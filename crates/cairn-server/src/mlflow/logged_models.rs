//! MLflow 3 logged models: create, read, finalize, delete, tags, params, and search
//! (filters, datasets and ordering on their metrics).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use cairn_core::tracking::{LoggedModel, LoggedModelMetric};
use cairn_registry::Registry;
use cairn_registry::tracking::{DatasetFilter, latest_metric};
use serde_json::{Value, json};

use super::convert;
use super::error::{MlflowError, MlflowResult};
use super::paging;
use super::request::Fields;
use super::schema;
use super::tracking::{Reply, experiment_id, experiment_ids, filter, ok};

pub async fn create_logged_model(State(r): State<Registry>, f: Fields) -> Reply {
    f.check(schema::CREATE_LOGGED_MODEL)?;
    let exp = experiment_id(&f, "experiment_id")?;
    let tags: BTreeMap<String, String> = f.key_values("tags")?.into_iter().collect();
    let params: BTreeMap<String, String> = f.key_values("params")?.into_iter().collect();
    let m = r
        .tracking()
        .create_logged_model(
            exp,
            f.opt_str("name")?.as_deref(),
            f.opt_str("source_run_id")?
                .as_deref()
                .filter(|s| !s.is_empty()),
            f.opt_str("model_type")?.as_deref(),
            &tags,
            &params,
        )
        .await?;
    Ok(Json(json!({"model": convert::logged_model(&m)})))
}

pub async fn get_logged_model(State(r): State<Registry>, Path(id): Path<String>) -> Reply {
    let mut m = [r.tracking().get_logged_model(&id).await?];
    with_version_links(&r, &mut m).await?;
    Ok(Json(json!({"model": convert::logged_model(&m[0])})))
}

/// MLflow lists the versions registered from a logged model in its `mlflow.modelVersions`
/// tag, which its client appends to after registering, in a read and a write of its own.
/// Cairn answers the tag from the version rows instead (each records its logged model in
/// its own transaction): no registration missed under concurrency, none listed twice.
async fn with_version_links(
    r: &Registry,
    models: &mut [cairn_core::tracking::LoggedModel],
) -> MlflowResult<()> {
    let ids: Vec<&str> = models.iter().map(|m| m.id.as_str()).collect();
    let mut links = r.versions_from_logged_models(&ids).await?;
    for m in models {
        if let Some(versions) = links.remove(&m.id) {
            let listed: Vec<Value> = versions
                .into_iter()
                .map(|(name, number)| json!({"name": name, "version": number.to_string()}))
                .collect();
            m.tags
                .insert(MODEL_VERSIONS_TAG.into(), Value::Array(listed).to_string());
        }
    }
    Ok(())
}

/// The logged-model tag listing the versions registered from it.
const MODEL_VERSIONS_TAG: &str = "mlflow.modelVersions";

pub async fn finalize_logged_model(
    State(r): State<Registry>,
    Path(id): Path<String>,
    f: Fields,
) -> Reply {
    f.check(schema::FINALIZE_LOGGED_MODEL)?;
    let status = f.str("status")?;
    let mut m = [r.tracking().set_logged_model_status(&id, &status).await?];
    with_version_links(&r, &mut m).await?;
    Ok(Json(json!({"model": convert::logged_model(&m[0])})))
}

pub async fn delete_logged_model(State(r): State<Registry>, Path(id): Path<String>) -> Reply {
    r.tracking().delete_logged_model(&id).await?;
    ok()
}

pub async fn set_logged_model_tags(
    State(r): State<Registry>,
    Path(id): Path<String>,
    f: Fields,
) -> Reply {
    f.check(schema::SET_LOGGED_MODEL_TAGS)?;
    r.tracking()
        .set_logged_model_tags(&id, &f.key_values("tags")?)
        .await?;
    ok()
}

/// `POST logged-models/{id}/params`. MLflow requires the body to repeat `model_id`;
/// the path names the model.
pub async fn log_logged_model_params(
    State(r): State<Registry>,
    Path(id): Path<String>,
    f: Fields,
) -> Reply {
    f.check(schema::LOG_LOGGED_MODEL_PARAMS)?;
    r.tracking()
        .log_logged_model_params(&id, &f.key_values("params")?)
        .await?;
    ok()
}

pub async fn delete_logged_model_tag(
    State(r): State<Registry>,
    Path((id, key)): Path<(String, String)>,
) -> Reply {
    r.tracking().delete_logged_model_tag(&id, &key).await?;
    ok()
}

/// The `datasets` of a logged-model search or of one of its `order_by` entries.
fn dataset_filters(items: &[Value]) -> MlflowResult<Vec<DatasetFilter>> {
    items
        .iter()
        .map(|d| {
            let text = |k: &str| d.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
            let name = text("dataset_name").ok_or_else(|| {
                MlflowError::invalid("`dataset_name` in the `datasets` clause must be specified.")
            })?;
            Ok(DatasetFilter {
                name: name.to_owned(),
                digest: text("dataset_digest").map(str::to_owned),
            })
        })
        .collect()
}

/// How one `order_by` entry of a logged-model search orders two models.
enum ModelOrder {
    Name,
    Id,
    Created,
    Updated,
    /// The newest value of a metric (in some datasets); models without one go last.
    Metric(String, Vec<DatasetFilter>),
}

impl ModelOrder {
    fn parse(item: &Value) -> MlflowResult<(Self, bool)> {
        let field = item
            .get("field_name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let ascending = item
            .get("ascending")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let order = match field {
            "name" => Self::Name,
            "model_id" => Self::Id,
            "creation_timestamp" | "creation_time" | "creation_timestamp_ms" => Self::Created,
            "last_updated_timestamp" | "last_updated_timestamp_ms" => Self::Updated,
            other => match other.split_once('.') {
                Some(("metrics", key)) => {
                    let datasets = match item.get("dataset_name") {
                        Some(_) => dataset_filters(std::slice::from_ref(item))?,
                        None => Vec::new(),
                    };
                    Self::Metric(key.to_owned(), datasets)
                }
                Some(_) => {
                    return Err(MlflowError::invalid(format!(
                        "Invalid order by field name: {other}. Only metrics are supported."
                    )));
                }
                None => {
                    return Err(MlflowError::invalid(format!(
                        "Invalid order by field name: {other}"
                    )));
                }
            },
        };
        Ok((order, ascending))
    }

    fn compare(&self, a: &LoggedModel, b: &LoggedModel, ascending: bool) -> std::cmp::Ordering {
        let directed = |o: std::cmp::Ordering| if ascending { o } else { o.reverse() };
        match self {
            Self::Name => directed(a.name.cmp(&b.name)),
            Self::Id => directed(a.id.cmp(&b.id)),
            Self::Created => directed(a.creation_time.cmp(&b.creation_time)),
            Self::Updated => directed(a.last_updated_time.cmp(&b.last_updated_time)),
            Self::Metric(key, datasets) => {
                // Here a dataset without a digest means any digest of that name.
                let counted = |v: &LoggedModelMetric| {
                    datasets.is_empty()
                        || datasets.iter().any(|d| match &v.dataset {
                            Some((name, digest)) => {
                                *name == d.name && d.digest.as_ref().is_none_or(|w| w == digest)
                            }
                            None => false,
                        })
                };
                let value = |m: &LoggedModel| latest_metric(m, key, counted);
                match (value(a), value(b)) {
                    (Some(x), Some(y)) => directed(x.total_cmp(&y)),
                    (Some(_), None) => std::cmp::Ordering::Less,
                    (None, Some(_)) => std::cmp::Ordering::Greater,
                    (None, None) => std::cmp::Ordering::Equal,
                }
            }
        }
    }
}

pub async fn search_logged_models(State(r): State<Registry>, f: Fields) -> Reply {
    f.check(schema::SEARCH_LOGGED_MODELS)?;
    let ids = experiment_ids(&f)?;
    if ids.is_empty() {
        return Err(MlflowError::invalid(
            "Missing value for required parameter 'experiment_ids'",
        ));
    }
    let limit = paging::max_results(&f, 50, 1000)?;
    let offset = paging::offset(&f)?;
    let datasets = dataset_filters(&f.list("datasets"))?;
    let orders = f
        .list("order_by")
        .iter()
        .map(ModelOrder::parse)
        .collect::<MlflowResult<Vec<_>>>()?;
    let mut models = r
        .tracking()
        .search_logged_models(&ids, &filter(&f)?, &datasets)
        .await?;
    // The store's order (newest first, then id) breaks the remaining ties: the sort is
    // stable.
    models.sort_by(|a, b| {
        orders
            .iter()
            .map(|(order, ascending)| order.compare(a, b, *ascending))
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let (mut page, token) = paging::page(
        models.into_iter().skip(offset).collect::<Vec<_>>(),
        offset,
        limit,
    );
    with_version_links(&r, &mut page).await?;
    Ok(Json(paging::reply(
        "models",
        page.iter().map(convert::logged_model).collect(),
        token,
    )))
}
