//! MLflow model registry endpoints over Cairn's registry: a registered model is a Cairn
//! model, a model version a Cairn version (with a manifest of SHA-256-addressed files),
//! an MLflow alias a Cairn alias whose moves land in the alias history.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use cairn_core::api::CreateModel;
use cairn_core::search::{Comparison, OrderBy};
use cairn_core::{AliasName, Model, ModelName, Version, VersionRef};
use cairn_registry::{AliasTarget, FileList, Registry, SourcedVersion, VersionExtras};
use serde_json::{Value, json};

use cairn_core::access::{Actor, Scope};
use cairn_core::auth::Role;

use super::convert;
use super::error::{MlflowError, MlflowResult};
use super::paging;
use super::request::Fields;
use super::schema;
use crate::access::Caller;

type Reply = MlflowResult<Json<Value>>;
type CachedReply = MlflowResult<Response>;

/// Answers a read of registry state only (never of runs or experiments) through the
/// registry's read cache ([`Registry::cached_read`]): the same request (`endpoint` and
/// all its fields) gets the same bytes back while the registry is unchanged. Errors are
/// never kept.
async fn cached_reply(
    r: &Registry,
    endpoint: &str,
    f: &Fields,
    compute: impl Future<Output = MlflowResult<Value>>,
) -> CachedReply {
    let fields = serde_json::to_string(&f.map).expect("a JSON object serializes");
    let key = format!("{endpoint} {fields}");
    let body = r
        .cached_read(key, async {
            let answer = compute.await?;
            Ok::<_, MlflowError>(Bytes::from(answer.to_string()))
        })
        .await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// Whether `actor` may see model `name` in a listing. A page keeps its place in the
/// whole listing (its token counts every entry), so a caller limited to some models
/// may get pages shorter than asked for, as from `mlflow server` with authentication.
fn readable(actor: &Actor, name: &str) -> bool {
    actor.may(Role::Reader, Scope::Model(name))
}

/// The cache key of a listing: what a caller limited to some models sees is kept apart
/// from what everyone else sees.
fn listing_key(endpoint: &str, actor: &Actor) -> String {
    if actor.may(Role::Reader, Scope::Registry) {
        endpoint.to_owned()
    } else {
        format!("{endpoint} for {:?}", actor.authority)
    }
}

/// What a registry search asks for: `filter`, `order_by`, and the page (`max_results`
/// up to `max`, `default` when absent; `page_token`).
struct SearchPage {
    filter: Vec<Comparison>,
    order: Vec<OrderBy>,
    offset: usize,
    limit: usize,
}

fn search_page(f: &Fields, default: i64, max: i64) -> MlflowResult<SearchPage> {
    let text = f.opt_str("filter")?.unwrap_or_default();
    // Checked in this order, as before: the first bad field is the one reported.
    Ok(SearchPage {
        filter: cairn_core::search::parse_filter(&text)
            .map_err(|e| MlflowError::invalid(e.to_string()))?,
        limit: paging::max_results(f, default, max)?,
        offset: paging::offset(f)?,
        order: super::tracking::order_by(f)?,
    })
}

/// Where registered versions are served from in the artifact API. Experiment artifact
/// paths start with an experiment id, so this prefix cannot collide with them.
pub const VERSION_ARTIFACTS: &str = "_cairn/versions";

/// A registered model's name from `field`, refused in `mlflow server`'s words.
fn name(f: &Fields, field: &str) -> MlflowResult<ModelName> {
    let raw = f.str(field)?;
    ModelName::new(&raw).map_err(|e| {
        MlflowError::invalid(if raw.trim().is_empty() {
            format!("Missing value for required parameter '{field}'.")
        } else if raw.contains(['/', ':']) {
            format!("Invalid model name '{raw}'. Names cannot contain '/' or ':'.")
        } else {
            e.to_string()
        })
    })
}

fn version(f: &Fields) -> MlflowResult<u64> {
    let raw = f.str("version")?;
    raw.parse::<u64>().ok().filter(|n| *n >= 1).ok_or_else(|| {
        MlflowError::invalid(format!("Model version must be an integer, got '{raw}'"))
    })
}

fn alias(f: &Fields) -> MlflowResult<AliasName> {
    let raw = f.str("alias")?;
    let digits_after_v = raw
        .strip_prefix(['v', 'V'])
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    if digits_after_v {
        return Err(MlflowError::invalid(format!(
            "Invalid alias name: '{raw}'. Aliases cannot be 'latest' or of the form 'v<number>'."
        )));
    }
    AliasName::new(&raw).map_err(|e| match e {
        // MLflow's own words for its charset rule.
        cairn_core::ValidationError::Alias(_, why) if why.starts_with("only") => {
            MlflowError::invalid(format!(
                "Invalid alias name: '{raw}'. Names may only contain alphanumerics, underscores (_), and dashes (-)."
            ))
        }
        e => MlflowError::invalid(e.to_string()),
    })
}

fn stage(raw: &str) -> MlflowResult<&'static str> {
    ["None", "Staging", "Production", "Archived"]
        .into_iter()
        .find(|s| s.eq_ignore_ascii_case(raw))
        .ok_or_else(|| {
            MlflowError::invalid(format!(
                "Invalid Model Version stage: {raw}. Value must be one of None, Staging, Production, Archived."
            ))
        })
}

async fn version_json(
    r: &Registry,
    model: &ModelName,
    number: u64,
    with_aliases: bool,
) -> MlflowResult<Value> {
    let (v, extras) = r
        .get_version_with_origin(model, &VersionRef::Number(number))
        .await?;
    Ok(convert::model_version(&v, &extras, with_aliases))
}

/// The newest version in each stage.
/// `with_aliases`: MLflow lists aliases in get-latest-versions, not in `latest_versions`.
fn latest_per_stage(
    versions: &[(Version, VersionExtras)],
    stages: Option<&[&str]>,
    with_aliases: bool,
) -> Vec<Value> {
    let mut newest: BTreeMap<&str, &(Version, VersionExtras)> = BTreeMap::new();
    for pair in versions {
        let (v, x) = pair;
        if stages.is_some_and(|s| !s.contains(&x.stage.as_str())) {
            continue;
        }
        let slot = newest.entry(x.stage.as_str()).or_insert(pair);
        if v.version > slot.0.version {
            *slot = pair;
        }
    }
    let mut out: Vec<&(Version, VersionExtras)> = newest.into_values().collect();
    out.sort_by_key(|(v, _)| v.version);
    out.into_iter()
        .map(|(v, x)| convert::model_version(v, x, with_aliases))
        .collect()
}

async fn registered_model_json(r: &Registry, m: &Model) -> MlflowResult<Value> {
    Ok(registered_models_json(r, std::slice::from_ref(m))
        .await?
        .remove(0))
}

/// Registered models as MLflow shows them, each with its newest version per stage:
/// the same few queries for a whole page.
async fn registered_models_json(r: &Registry, models: &[Model]) -> MlflowResult<Vec<Value>> {
    let names: Vec<&str> = models.iter().map(|m| m.name.as_str()).collect();
    let mut latest = r.latest_versions_per_stage(&names).await?;
    Ok(models
        .iter()
        .map(|m| {
            let versions = latest.remove(&m.name).unwrap_or_default();
            let json = versions
                .iter()
                .map(|(v, x)| convert::model_version(v, x, false))
                .collect();
            convert::registered_model(m, json)
        })
        .collect())
}

// ---- registered models ----

pub async fn create_registered_model(
    State(r): State<Registry>,
    Caller(actor): Caller,
    f: Fields,
) -> Reply {
    f.check(schema::CREATE_REGISTERED_MODEL)?;
    let model = name(&f, "name")?;
    let req = CreateModel {
        name: model.to_string(),
        description: f.opt_str("description")?.unwrap_or_default(),
        tags: f.key_values("tags")?.into_iter().collect(),
    };
    let m = r.create_model(&actor, &req).await?;
    Ok(Json(
        json!({"registered_model": registered_model_json(&r, &m).await?}),
    ))
}

pub async fn get_registered_model(State(r): State<Registry>, f: Fields) -> CachedReply {
    f.check(schema::NAME)?;
    cached_reply(&r, "registered-models/get", &f, async {
        let m = r.get_model(&name(&f, "name")?).await?;
        Ok(json!({"registered_model": registered_model_json(&r, &m).await?}))
    })
    .await
}

pub async fn update_registered_model(
    State(r): State<Registry>,
    Caller(actor): Caller,
    f: Fields,
) -> Reply {
    f.check(schema::UPDATE_REGISTERED_MODEL)?;
    let model = name(&f, "name")?;
    if let Some(d) = f.opt_str("description")? {
        r.set_description(&actor, &model, None, &d).await?;
    }
    let m = r.get_model(&model).await?;
    Ok(Json(
        json!({"registered_model": registered_model_json(&r, &m).await?}),
    ))
}

pub async fn rename_registered_model(
    State(r): State<Registry>,
    Caller(actor): Caller,
    f: Fields,
) -> Reply {
    f.check(schema::RENAME_REGISTERED_MODEL)?;
    let m = r
        .rename_model(&actor, &name(&f, "name")?, &name(&f, "new_name")?)
        .await?;
    Ok(Json(
        json!({"registered_model": registered_model_json(&r, &m).await?}),
    ))
}

pub async fn delete_registered_model(
    State(r): State<Registry>,
    Caller(actor): Caller,
    f: Fields,
) -> Reply {
    f.check(schema::NAME)?;
    r.delete_model(&actor, &name(&f, "name")?).await?;
    Ok(Json(json!({})))
}

pub async fn set_registered_model_tag(
    State(r): State<Registry>,
    Caller(actor): Caller,
    f: Fields,
) -> Reply {
    f.check(schema::SET_REGISTERED_MODEL_TAG)?;
    let value = f.opt_str("value")?.unwrap_or_default();
    r.set_tag(
        &actor,
        &name(&f, "name")?,
        None,
        &f.str("key")?,
        Some(&value),
    )
    .await?;
    Ok(Json(json!({})))
}

pub async fn delete_registered_model_tag(
    State(r): State<Registry>,
    Caller(actor): Caller,
    f: Fields,
) -> Reply {
    f.check(schema::DELETE_REGISTERED_MODEL_TAG)?;
    r.set_tag(&actor, &name(&f, "name")?, None, &f.str("key")?, None)
        .await?;
    Ok(Json(json!({})))
}

pub async fn search_registered_models(
    State(r): State<Registry>,
    Caller(actor): Caller,
    f: Fields,
) -> CachedReply {
    f.check(schema::SEARCH_REGISTERED_MODELS)?;
    let endpoint = listing_key("registered-models/search", &actor);
    cached_reply(&r, &endpoint, &f, async {
        let q = search_page(&f, 100, 1000)?;
        // One more than a page tells whether there is a next one.
        let models = r
            .search_models(&q.filter, &q.order, q.offset, q.limit + 1)
            .await?;
        let (mut page, token) = paging::page(models, q.offset, q.limit);
        page.retain(|m| readable(&actor, &m.name));
        let items = registered_models_json(&r, &page).await?;
        Ok(paging::reply("registered_models", items, token))
    })
    .await
}

pub async fn get_latest_versions(State(r): State<Registry>, f: Fields) -> CachedReply {
    f.check(schema::GET_LATEST_VERSIONS)?;
    cached_reply(&r, "registered-models/get-latest-versions", &f, async {
        let model = name(&f, "name")?;
        r.model_exists(&model).await?;
        let stages = f
            .str_list("stages")?
            .iter()
            .map(|s| stage(s))
            .collect::<MlflowResult<Vec<_>>>()?;
        let versions = r.list_versions_with_origin(&model).await?;
        let out = latest_per_stage(&versions, (!stages.is_empty()).then_some(&stages[..]), true);
        Ok(json!({ "model_versions": out }))
    })
    .await
}

pub async fn set_alias(State(r): State<Registry>, Caller(actor): Caller, f: Fields) -> Reply {
    f.check(schema::SET_ALIAS)?;
    let model = name(&f, "name")?;
    r.model_exists(&model).await?;
    r.move_alias(
        &actor,
        &model,
        &alias(&f)?,
        AliasTarget::Version(version(&f)?),
        None,
    )
    .await?;
    Ok(Json(json!({})))
}

pub async fn delete_alias(State(r): State<Registry>, Caller(actor): Caller, f: Fields) -> Reply {
    f.check(schema::ALIAS)?;
    let model = name(&f, "name")?;
    match r
        .move_alias(&actor, &model, &alias(&f)?, AliasTarget::Remove, None)
        .await
    {
        // MLflow answers 200 for an alias that was not set.
        Ok(_) | Err(cairn_registry::Error::AliasNotFound { .. }) => Ok(Json(json!({}))),
        Err(e) => Err(e.into()),
    }
}

pub async fn get_by_alias(State(r): State<Registry>, f: Fields) -> CachedReply {
    f.check(schema::ALIAS)?;
    // What a model server asks at every load of `models:/NAME@ALIAS`: cached.
    cached_reply(&r, "registered-models/alias", &f, async {
        let model = name(&f, "name")?;
        let (v, extras) = r
            .get_version_with_origin(&model, &VersionRef::Alias(alias(&f)?))
            .await?;
        Ok(json!({"model_version": convert::model_version(&v, &extras, true)}))
    })
    .await
}

// ---- model versions ----

pub async fn create_model_version(
    State(r): State<Registry>,
    Caller(actor): Caller,
    f: Fields,
) -> Reply {
    f.check(schema::CREATE_MODEL_VERSION)?;
    let model = name(&f, "name")?;
    let req = SourcedVersion {
        source: f.str("source")?,
        run_id: f.opt_str("run_id")?,
        model_id: f.opt_str("model_id")?,
        run_link: f.opt_str("run_link")?.unwrap_or_default(),
        description: f.opt_str("description")?.unwrap_or_default(),
        tags: f.key_values("tags")?.into_iter().collect(),
    };
    // The version as committed: nothing to read back.
    let (version, extras) = r.register_from_source(&actor, &model, &req).await?;
    Ok(Json(
        json!({"model_version": convert::model_version(&version, &extras, true)}),
    ))
}

pub async fn get_model_version(State(r): State<Registry>, f: Fields) -> CachedReply {
    f.check(schema::MODEL_VERSION)?;
    cached_reply(&r, "model-versions/get", &f, async {
        let model = name(&f, "name")?;
        Ok(json!({"model_version": version_json(&r, &model, version(&f)?, true).await?}))
    })
    .await
}

pub async fn update_model_version(
    State(r): State<Registry>,
    Caller(actor): Caller,
    f: Fields,
) -> Reply {
    f.check(schema::UPDATE_MODEL_VERSION)?;
    let model = name(&f, "name")?;
    let n = version(&f)?;
    if let Some(d) = f.opt_str("description")? {
        r.set_description(&actor, &model, Some(n), &d).await?;
    }
    Ok(Json(
        json!({"model_version": version_json(&r, &model, n, true).await?}),
    ))
}

pub async fn delete_model_version(
    State(r): State<Registry>,
    Caller(actor): Caller,
    f: Fields,
) -> Reply {
    f.check(schema::MODEL_VERSION)?;
    r.delete_version(&actor, &name(&f, "name")?, version(&f)?)
        .await?;
    Ok(Json(json!({})))
}

pub async fn set_model_version_tag(
    State(r): State<Registry>,
    Caller(actor): Caller,
    f: Fields,
) -> Reply {
    f.check(schema::SET_MODEL_VERSION_TAG)?;
    let value = f.opt_str("value")?.unwrap_or_default();
    r.set_tag(
        &actor,
        &name(&f, "name")?,
        Some(version(&f)?),
        &f.str("key")?,
        Some(&value),
    )
    .await?;
    Ok(Json(json!({})))
}

pub async fn delete_model_version_tag(
    State(r): State<Registry>,
    Caller(actor): Caller,
    f: Fields,
) -> Reply {
    f.check(schema::DELETE_MODEL_VERSION_TAG)?;
    r.set_tag(
        &actor,
        &name(&f, "name")?,
        Some(version(&f)?),
        &f.str("key")?,
        None,
    )
    .await?;
    Ok(Json(json!({})))
}

pub async fn transition_stage(
    State(r): State<Registry>,
    Caller(actor): Caller,
    f: Fields,
) -> Reply {
    f.check(schema::TRANSITION_STAGE)?;
    let model = name(&f, "name")?;
    let n = version(&f)?;
    let target = stage(&f.str("stage")?)?;
    let archive = f.opt_bool("archive_existing_versions")?.unwrap_or(false);
    r.set_stage(&actor, &model, n, target, archive).await?;
    Ok(Json(
        json!({"model_version": version_json(&r, &model, n, true).await?}),
    ))
}

pub async fn get_download_uri(State(r): State<Registry>, f: Fields) -> Reply {
    f.check(schema::MODEL_VERSION)?;
    let model = name(&f, "name")?;
    let n = version(&f)?;
    let v = r
        .get_version(&model, &VersionRef::Number(n), FileList::Omitted)
        .await?;
    // An external version is downloaded from where it is, as MLflow hands out a
    // version's storage location.
    let uri = match v.external_source {
        Some(source) => source,
        None => format!("mlflow-artifacts:/{VERSION_ARTIFACTS}/{model}/{n}"),
    };
    Ok(Json(json!({"artifact_uri": uri})))
}

pub async fn search_model_versions(
    State(r): State<Registry>,
    Caller(actor): Caller,
    f: Fields,
) -> CachedReply {
    f.check(schema::SEARCH_MODEL_VERSIONS)?;
    let endpoint = listing_key("model-versions/search", &actor);
    cached_reply(&r, &endpoint, &f, async {
        let q = search_page(&f, 10000, 200000)?;
        // One more than a page tells whether there is a next one.
        let found = r
            .search_versions(&q.filter, &q.order, q.offset, q.limit + 1)
            .await?;
        let (mut page, token) = paging::page(found, q.offset, q.limit);
        page.retain(|(v, _)| readable(&actor, &v.model));
        let items = page
            .iter()
            .map(|(v, x)| convert::model_version(v, x, false))
            .collect();
        Ok(paging::reply("model_versions", items, token))
    })
    .await
}
