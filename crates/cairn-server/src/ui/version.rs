//! A version's page (`/models/{name}/versions/{ref}`): its files with sizes, digests and
//! download links, metrics, params and tags, the lineage graph (parents, data, code, run
//! → the version → its children) and its audit entries; and the download of one file.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use cairn_core::access::Actor;
use cairn_core::lineage::{Lineage, LineageInput, ParentRef};
use cairn_core::{ModelName, Version, VersionRef};
use cairn_registry::{AuditFilter, FileList, Registry};
use maud::{Markup, html};

use super::audit::entries_table;
use super::layout::{
    Section, frame, model_url, number, query_string, run_url, segment, short_digest, size, time,
    version_url,
};
use super::{UiError, UiResult, may_read};
use crate::access::Caller;

async fn render(r: &Registry, actor: &Actor, name: &str, reference: &str) -> UiResult<Markup> {
    let name = ModelName::new(name)?;
    let reference: VersionRef = reference.parse()?;
    let v = r.get_version(&name, &reference, FileList::Included).await?;
    // An external version has no recorded content, hence no lineage node.
    let lineage = match v.digest {
        Some(_) => Some(r.lineage(&name, &VersionRef::Number(v.version)).await?),
        None => None,
    };
    let filter = AuditFilter {
        target: Some(format!("{name}@{}", v.version)),
        ..AuditFilter::default()
    };
    let entries = r.audit_page(&filter, None, 100).await?;
    let compare_previous = (v.version > 1).then(|| {
        format!(
            "/compare{}",
            query_string(&[
                ("v", &format!("{name}@{}", v.version - 1)),
                ("v", &format!("{name}@{}", v.version)),
            ])
        )
    });
    let body = html! {
        p.muted {
            a href=(model_url(&v.model)) { (v.model) } " · created by " (v.created_by) " on " (time(v.created_at))
            @for alias in &v.aliases { " " span.alias { (alias) } }
            @if let Some(link) = &compare_previous { " · " a #compare-previous href=(link) { "compare with v" (v.version - 1) } }
        }
        @if !v.description.is_empty() { p { (v.description) } }
        p { "Digest " code #digest { @match &v.digest {
            Some(d) => (d.to_string()),
            None => { "none (external: " (v.external_source.as_deref().unwrap_or("")) ")" },
        } } }
        h2 { "Lineage" }
        @match &lineage {
            Some(l) => (lineage_graph(actor, &v, l)),
            None => p.muted { "An external version records no lineage." },
        }
        (key_values("Metrics", "metrics", v.metrics.iter().map(|(k, x)| (k.as_str(), number(*x)))))
        (key_values("Params", "params", v.params.iter().map(|(k, x)| (k.as_str(), x.clone()))))
        (key_values("Tags", "tags", v.tags.iter().map(|(k, x)| (k.as_str(), x.clone()))))
        h2 { "Files (" (v.file_count) ", " (size(v.size)) ")" }
        (files_table(&v))
        h2 { "Audit entries" }
        (entries_table(&entries))
        p { a href=(format!("/audit{}", query_string(&[("model", &v.model)]))) { "The model's whole audit log" } }
    };
    let title = format!("{}@{}", v.model, v.version);
    Ok(frame(Section::Models, &title, Some(actor), body))
}

/// `GET /models/{name}/versions/{reference}` (a number, an alias or `latest`).
pub async fn page(
    State(r): State<Registry>,
    Caller(actor): Caller,
    Path((name, reference)): Path<(String, String)>,
) -> UiResult<Markup> {
    render(&r, &actor, &name, &reference).await
}

fn key_values<'a>(title: &str, id: &str, rows: impl Iterator<Item = (&'a str, String)>) -> Markup {
    let rows: Vec<_> = rows.collect();
    html! {
        h2 { (title) }
        @if rows.is_empty() { p.muted { "None." } }
        @else {
            table id=(id) { tbody { @for (k, v) in &rows { tr { th { (k) } td.num { (v) } } } } }
        }
    }
}

fn files_table(v: &Version) -> Markup {
    let files = v.files.as_deref().unwrap_or_default();
    let base = format!("{}/files", version_url(&v.model, v.version));
    html! {
        @if files.is_empty() { p.muted { "No files." } }
        @else {
            table #files {
                thead { tr { th { "Path" } th.num { "Size" } th { "SHA-256" } } }
                tbody { @for f in files {
                    @let link = format!("{base}/{}", f.path.split('/').map(segment).collect::<Vec<_>>().join("/"));
                    tr {
                        td { a href=(link) download { (f.path) } }
                        td.num { (size(f.size)) }
                        td.digest title=(f.sha256.to_string()) { (short_digest(&f.sha256.to_string())) }
                    }
                } }
            }
        }
    }
}

/// A version reference as a node, linked when the reader may see it.
fn version_node(actor: &Actor, p: &ParentRef, kind: &str) -> Markup {
    html! {
        div.node {
            div.kind { (kind) }
            @if may_read(actor, &p.model) {
                a href=(version_url(&p.model, p.version)) { (p.model) "@" (p.version) }
            } @else {
                span.muted { "a version you may not read" }
            }
        }
    }
}

/// Inputs on the left (parents, data, code, run), the version, its children on the right.
fn lineage_graph(actor: &Actor, v: &Version, lineage: &Lineage) -> Markup {
    let LineageInput {
        run_id,
        code,
        data,
        parents,
        environment,
    } = &lineage.recorded;
    html! {
        div.lineage #lineage {
            div.col.inputs {
                @for p in parents { (version_node(actor, p, "parent")) }
                @for d in data {
                    div.node.data {
                        div.kind { "data · " (d.kind) }
                        (d.path) br; code title=(d.digest) { (short_digest(&d.digest)) }
                        @if let Some(s) = d.size { " · " (size(s)) }
                    }
                }
                @if let Some(c) = code {
                    div.node.code {
                        div.kind { "code" }
                        code title=(c.commit) { (c.commit.chars().take(12).collect::<String>()) }
                        @if let Some(b) = &c.branch { " on " (b) }
                        @if c.dirty { " " span.removed { "(uncommitted changes)" } }
                        @if let Some(remote) = &c.remote { br; span.muted { (remote) } }
                    }
                }
                @if let Some(run) = run_id {
                    div.node.run { div.kind { "run" } a href=(run_url(run)) { (run) } }
                }
                @for e in environment {
                    div.node.env { div.kind { "environment" } (e.path) " · " (size(e.size)) }
                }
                @if parents.is_empty() && data.is_empty() && code.is_none() && run_id.is_none() && environment.is_empty() {
                    div.node.muted { "nothing recorded" }
                }
            }
            div.arrow { "→" }
            div.col {
                div.node.self { div.kind { "this version" } (v.model) "@" (v.version) }
                div.arrow { "↓" }
                @for c in &lineage.children { (version_node(actor, c, "child")) }
                @if lineage.children.is_empty() { div.node.muted { "no children" } }
            }
        }
    }
}

/// `GET /models/{name}/versions/{reference}/files/{*path}`: one file of the version,
/// its bytes checked against their digest on the way out.
pub async fn download(
    State(r): State<Registry>,
    Path((name, reference, path)): Path<(String, String, String)>,
) -> Result<Response, UiError> {
    let name = ModelName::new(&name)?;
    let reference: VersionRef = reference.parse()?;
    let v = r.get_version(&name, &reference, FileList::Included).await?;
    let file = v
        .files
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|f| f.path == path)
        .ok_or_else(|| {
            UiError::new(
                StatusCode::NOT_FOUND,
                format!("{name}@{} has no file {path:?}", v.version),
            )
        })?;
    let blob = r.read_blob(&file.sha256).await?;
    Ok(super::attachment(blob, &path))
}
