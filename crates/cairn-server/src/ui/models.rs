//! The models list (`/`, searchable by name, a page at a time) and a model's page
//! (`/models/{name}`): its versions a page at a time, sorted by number or by any
//! metric, its aliases, and the alias timeline — every move, who, when, why.

use axum::extract::{Path, RawQuery, State};
use cairn_core::model::AliasAction;
use cairn_core::search::{Comparison, EntityKind, Op, OrderBy, Value};
use cairn_core::{ModelName, Version};
use cairn_registry::{Registry, VersionSort};
use maud::{Markup, html};

use super::layout::{
    Section, frame, model_url, number, pager, query_string, short_digest, size, time, version_url,
};
use super::{Query, UiResult, may_read};
use crate::access::Caller;

/// Rows per page of models and of versions.
pub const PAGE: u32 = 50;

/// `GET /`: the models whose name contains `q`, in name order.
pub async fn list(
    State(r): State<Registry>,
    Caller(actor): Caller,
    RawQuery(raw): RawQuery,
) -> UiResult<Markup> {
    let query = Query::parse(raw.as_deref());
    let search = query.get("q").unwrap_or_default();
    let page_number = query.page()?;
    let filter: Vec<Comparison> = if search.is_empty() {
        Vec::new()
    } else {
        vec![Comparison {
            kind: EntityKind::Attribute,
            key: "name".into(),
            op: Op::ILike,
            value: Value::Str(format!("%{search}%")),
        }]
    };
    let order = [OrderBy {
        kind: EntityKind::Attribute,
        key: "name".into(),
        ascending: true,
    }];
    let offset = (page_number - 1) * u64::from(PAGE);
    let mut models = r
        .search_models(&filter, &order, offset as usize, PAGE as usize + 1)
        .await?;
    let more = models.len() > PAGE as usize;
    models.truncate(PAGE as usize);
    // Whoever may not read a model does not learn it exists.
    models.retain(|m| may_read(&actor, &m.name));
    let body = html! {
        form.filters method="get" action="/" {
            label { "Name contains" input type="search" name="q" value=(search) autofocus; }
            button type="submit" { "Search" }
        }
        @if models.is_empty() {
            p.muted { "No models" @if !search.is_empty() { " match “" (search) "”" } "." }
        } @else {
            table #models {
                thead { tr { th { "Model" } th.num { "Versions" } th { "Latest" } th { "Aliases" } th { "Updated" } } }
                tbody {
                    @for m in &models {
                        tr {
                            td { a.model href=(model_url(&m.name)) { (m.name) } }
                            td.num { (m.version_count) }
                            td { @if let Some(n) = m.latest_version { a href=(version_url(&m.name, n)) { "v" (n) } } }
                            td { @for (alias, n) in &m.aliases {
                                a.alias href=(version_url(&m.name, *n)) { (alias) " → v" (n) }
                            } }
                            td.muted { (time(m.updated_at)) }
                        }
                    }
                }
            }
        }
        (pager("/", &[("q", search)], page_number, more))
    };
    Ok(frame(Section::Models, "Models", Some(&actor), body))
}

/// How a model's versions are sorted, from `sort` (`number` or `metric:KEY`) and `order`.
struct Sorting {
    sort: VersionSort,
    descending: bool,
}

impl Sorting {
    fn from_query(query: &Query) -> UiResult<Self> {
        let sort = match query.get("sort") {
            None | Some("number") => VersionSort::Number,
            Some(s) => match s.strip_prefix("metric:") {
                Some(key) if !key.is_empty() => VersionSort::Metric(key.to_owned()),
                _ => {
                    return Err(super::UiError::bad_request(format!(
                        "cannot sort by {s:?}: use number or metric:KEY"
                    )));
                }
            },
        };
        let descending = match query.get("order") {
            None | Some("desc") => true,
            Some("asc") => false,
            Some(o) => {
                return Err(super::UiError::bad_request(format!(
                    "order {o:?} is neither asc nor desc"
                )));
            }
        };
        Ok(Self { sort, descending })
    }

    fn sort_param(&self) -> String {
        match &self.sort {
            VersionSort::Number => "number".into(),
            VersionSort::Metric(key) => format!("metric:{key}"),
        }
    }

    /// The link of a column header: its sort, flipped when it is the current one.
    fn header_link(&self, model: &str, sort: &str) -> String {
        let order = if self.sort_param() == sort && self.descending {
            "asc"
        } else {
            "desc"
        };
        format!(
            "{}{}",
            model_url(model),
            query_string(&[("sort", sort), ("order", order)])
        )
    }

    fn marker(&self, sort: &str) -> &'static str {
        match (self.sort_param() == sort, self.descending) {
            (false, _) => "",
            (true, true) => " ↓",
            (true, false) => " ↑",
        }
    }
}

/// `GET /models/{name}`: the model, a page of its versions, its aliases and their moves.
pub async fn model(
    State(r): State<Registry>,
    Caller(actor): Caller,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> UiResult<Markup> {
    let name = ModelName::new(&name)?;
    let query = Query::parse(raw.as_deref());
    let sorting = Sorting::from_query(&query)?;
    let page_number = query.page()?;
    let model = r.get_model(&name).await?;
    let offset = (page_number - 1) * u64::from(PAGE);
    let mut versions = r
        .versions_sorted(&name, &sorting.sort, sorting.descending, offset, PAGE + 1)
        .await?;
    let more = versions.len() > PAGE as usize;
    versions.truncate(PAGE as usize);
    let mut keys = r.recent_metric_keys(&name, 100).await?;
    for v in &versions {
        keys.extend(v.metrics.keys().cloned());
    }
    if let VersionSort::Metric(key) = &sorting.sort {
        keys.push(key.clone());
    }
    keys.sort();
    keys.dedup();
    let timeline = r.alias_timeline(&name, 200).await?;
    let sort_param = sorting.sort_param();
    let order_param = if sorting.descending { "desc" } else { "asc" };
    let body = html! {
        @if !model.description.is_empty() { p { (model.description) } }
        p.muted {
            (model.version_count) " versions · created by " (model.created_by) " on " (time(model.created_at))
            @for (k, v) in &model.tags { " · " code { (k) "=" (v) } }
        }
        h2 { "Aliases" }
        @if model.aliases.is_empty() { p.muted { "No aliases." } }
        p #aliases { @for (alias, n) in &model.aliases {
            a.alias href=(version_url(&model.name, *n)) { (alias) " → v" (n) }
        } }
        h2 { "Versions" }
        form #versions-form method="get" action="/compare" {
            (versions_table(&model.name, &versions, &keys, &sorting))
            button type="submit" { "Compare selected (2–5)" }
        }
        (pager(&model_url(&model.name), &[("sort", &sort_param), ("order", order_param)], page_number, more))
        h2 { "Alias timeline" }
        (alias_timeline(&model.name, &timeline))
    };
    Ok(frame(Section::Models, &model.name, Some(&actor), body))
}

fn versions_table(model: &str, versions: &[Version], keys: &[String], sorting: &Sorting) -> Markup {
    html! {
        table #versions {
            thead { tr {
                th { "Compare" }
                th { a href=(sorting.header_link(model, "number")) { "Version" (sorting.marker("number")) } }
                th { "Created" } th { "By" } th { "Aliases" } th.num { "Files" } th.num { "Size" } th { "Digest" }
                @for key in keys {
                    @let sort = format!("metric:{key}");
                    th.num { a href=(sorting.header_link(model, &sort)) { (key) (sorting.marker(&sort)) } }
                }
            } }
            tbody {
                @for v in versions {
                    tr data-version=(v.version) {
                        td { input type="checkbox" name="v" value=(format!("{model}@{}", v.version)); }
                        td { a href=(version_url(model, v.version)) { "v" (v.version) } }
                        td.muted { (time(v.created_at)) }
                        td { (v.created_by) }
                        td { @for alias in &v.aliases { span.alias { (alias) } } }
                        td.num { (v.file_count) }
                        td.num { (size(v.size)) }
                        td.digest { @match &v.digest {
                            Some(d) => (short_digest(&d.to_string())),
                            None => span.muted { "external" },
                        } }
                        @for key in keys {
                            td.num { @if let Some(value) = v.metrics.get(key) { (number(*value)) } }
                        }
                    }
                }
            }
        }
    }
}

fn alias_timeline(model: &str, moves: &[cairn_core::AliasMove]) -> Markup {
    let version = |n: Option<u64>| {
        html! { @match n {
            Some(n) => a href=(version_url(model, n)) { "v" (n) },
            None => span.muted { "nothing" },
        } }
    };
    html! {
        @if moves.is_empty() { p.muted { "No alias has moved yet." } }
        @else {
            table #timeline {
                thead { tr { th { "When" } th { "Alias" } th { "Move" } th { "What" } th { "Who" } th { "Why" } } }
                tbody { @for m in moves {
                    tr class=[(m.action == AliasAction::Rollback).then_some("rollback")] {
                        td.muted { (time(m.at)) }
                        td { span.alias { (m.alias) } }
                        td { (version(m.from)) " → " (version(m.to)) }
                        td { @match m.action {
                            AliasAction::Set => "set",
                            AliasAction::Rollback => span.rollback { "rollback" },
                            AliasAction::Delete => "deleted",
                            AliasAction::VersionDeleted => "its version was deleted",
                        } }
                        td { (m.actor) }
                        td { (m.reason.as_deref().unwrap_or("")) }
                    }
                } }
            }
        }
    }
}
