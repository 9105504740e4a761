//! Compare 2–5 versions (`/compare?v=NAME@REF&v=…`): metrics and params side by side
//! with what differs from the first highlighted, a bar chart per metric they all have,
//! and each version's file and lineage differences from the first — the same
//! `VersionDiff` as `cairn diff`.

use std::collections::BTreeSet;

use axum::extract::{RawQuery, State};
use cairn_core::ModelVersionRef;
use cairn_core::access::{Need, Scope, authorize};
use cairn_core::auth::Role;
use cairn_core::diff::VersionDiff;
use cairn_registry::{FileList, Registry};
use maud::{Markup, html};

use super::layout::{Section, frame, number, short_digest, size, version_url};
use super::{Query, UiError, UiResult};
use crate::access::Caller;

const MOST: usize = 5;

/// `GET /compare?v=A&v=B[&v=…]`.
pub async fn page(
    State(r): State<Registry>,
    Caller(actor): Caller,
    RawQuery(raw): RawQuery,
) -> UiResult<Markup> {
    let query = Query::parse(raw.as_deref());
    let asked = query.all("v");
    if !(2..=MOST).contains(&asked.len()) {
        return Err(UiError::bad_request(format!(
            "compare takes 2 to {MOST} versions (v=NAME@REF), not {}",
            asked.len()
        )));
    }
    let mut refs = Vec::with_capacity(asked.len());
    for text in asked {
        let reference: ModelVersionRef = text.parse()?;
        // The route is open to readers of any model; the caller must read each.
        authorize(
            &actor,
            Need::new(Role::Reader, Scope::Model(reference.model.as_str())),
        )
        .map_err(cairn_registry::Error::from)?;
        refs.push(reference);
    }
    let mut versions = Vec::with_capacity(refs.len());
    for reference in &refs {
        versions.push(
            r.get_version(&reference.model, &reference.version, FileList::Omitted)
                .await?,
        );
    }
    // Oldest first, whatever the order asked in (a link names the same comparison
    // however its versions were ticked): the first is the one the others are read against.
    versions.sort_by(|a, b| (&a.model, a.version).cmp(&(&b.model, b.version)));
    versions.dedup_by(|a, b| (&a.model, a.version) == (&b.model, b.version));
    if versions.len() < 2 {
        return Err(UiError::bad_request("compare needs two different versions"));
    }
    let resolved: Vec<ModelVersionRef> = versions
        .iter()
        .map(|v| format!("{}@{}", v.model, v.version).parse())
        .collect::<Result<_, _>>()?;
    let mut diffs = Vec::with_capacity(resolved.len() - 1);
    for other in &resolved[1..] {
        diffs.push(r.diff(&resolved[0], other).await?);
    }
    let label = |i: usize| format!("{}@{}", versions[i].model, versions[i].version);
    let labels: Vec<String> = (0..versions.len()).map(label).collect();

    let metric_keys: BTreeSet<&String> = versions.iter().flat_map(|v| v.metrics.keys()).collect();
    let shared: Vec<&String> = metric_keys
        .iter()
        .copied()
        .filter(|k| versions.iter().all(|v| v.metrics.contains_key(*k)))
        .collect();
    let param_keys: BTreeSet<&String> = versions.iter().flat_map(|v| v.params.keys()).collect();

    let body = html! {
        p.muted { "Each version is compared with the first, " strong { (labels[0]) } "; what differs is highlighted." }
        h2 { "Metrics" }
        @if metric_keys.is_empty() { p.muted { "No metrics." } }
        @else {
            table #metrics {
                thead { tr { th { "Metric" } @for (i, l) in labels.iter().enumerate() { th.num { a href=(version_url(&versions[i].model, versions[i].version)) { (l) } } } } }
                tbody { @for key in &metric_keys {
                    @let base = versions[0].metrics.get(*key);
                    tr data-key=(key) {
                        th { (key) }
                        @for (i, v) in versions.iter().enumerate() {
                            @let value = v.metrics.get(*key);
                            @let changed = i > 0 && value != base;
                            td.num.changed[changed] {
                                @if let Some(x) = value {
                                    (number(*x))
                                    @if let (true, Some(b)) = (i > 0, base) {
                                        @let delta = x - b;
                                        @if delta != 0.0 {
                                            " " span class=(if delta > 0.0 { "up" } else { "down" }) {
                                                "(" @if delta > 0.0 { "+" } (number(delta)) ")"
                                            }
                                        }
                                    }
                                } @else { span.muted { "—" } }
                            }
                        }
                    }
                } }
            }
        }
        @if !shared.is_empty() {
            div.cards #charts { @for key in &shared {
                (bar_chart(key, &labels, &versions.iter().map(|v| v.metrics[*key]).collect::<Vec<_>>()))
            } }
        }
        h2 { "Params" }
        @if param_keys.is_empty() { p.muted { "No params." } }
        @else {
            table #params {
                thead { tr { th { "Param" } @for l in &labels { th { (l) } } } }
                tbody { @for key in &param_keys {
                    @let base = versions[0].params.get(*key);
                    tr data-key=(key) {
                        th { (key) }
                        @for (i, v) in versions.iter().enumerate() {
                            @let value = v.params.get(*key);
                            td.changed[i > 0 && value != base] { (value.map(String::as_str).unwrap_or("—")) }
                        }
                    }
                } }
            }
        }
        @for (i, d) in diffs.iter().enumerate() {
            h2 { "Files and lineage: " (labels[0]) " → " (labels[i + 1]) }
            (diff_details(d))
        }
    };
    Ok(frame(
        Section::Models,
        "Compare versions",
        Some(&actor),
        body,
    ))
}

/// One metric across the versions as horizontal bars, drawn on the server (SVG).
fn bar_chart(key: &str, labels: &[String], values: &[f64]) -> Markup {
    const WIDTH: f64 = 360.0;
    const LABEL: f64 = 120.0;
    const ROW: f64 = 24.0;
    let finite = values.iter().copied().filter(|v| v.is_finite());
    let (low, high) = finite.fold((0.0_f64, 0.0_f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let span = if high - low > 0.0 { high - low } else { 1.0 };
    let plot = WIDTH - LABEL - 70.0;
    let zero = LABEL + (0.0 - low) / span * plot;
    let height = ROW * values.len() as f64 + 6.0;
    html! {
        div.chart.bar-chart data-metric=(key) {
            h3 { (key) }
            svg.bars width=(WIDTH) height=(height) viewBox=(format!("0 0 {WIDTH} {height}")) role="img" aria-label=(format!("{key} by version")) {
                @for (i, (label, value)) in labels.iter().zip(values).enumerate() {
                    @let y = 3.0 + ROW * i as f64;
                    @let x_end = if value.is_finite() { LABEL + (value - low) / span * plot } else { zero };
                    text x="0" y=(y + 15.0) { (label) }
                    rect x=(zero.min(x_end)) y=(y + 3.0) width=((x_end - zero).abs().max(1.0)) height=(ROW - 8.0)
                        fill=(if i == 0 { "#8fa9bf" } else { "#2f6f9f" }) {}
                    text x=(zero.max(x_end) + 4.0) y=(y + 15.0) { (number(*value)) }
                }
            }
        }
    }
}

/// Files and lineage of one `VersionDiff`, as `cairn diff` prints them.
fn diff_details(d: &VersionDiff) -> Markup {
    let f = &d.files;
    let l = &d.lineage;
    html! {
        div.diff {
            @if f.added.is_empty() && f.removed.is_empty() && f.changed.is_empty() && f.renamed.is_empty() {
                p.muted { "Same files (" (f.unchanged) ")." }
            } @else {
                table.files-diff {
                    thead { tr { th { "File" } th { "Change" } th { "Detail" } } }
                    tbody {
                        @for e in &f.added { tr { td { (e.path) } td.added { "added" } td { (size(e.size)) " · " code { (short_digest(&e.sha256.to_string())) } } } }
                        @for e in &f.removed { tr { td { (e.path) } td.removed { "removed" } td { (size(e.size)) } } }
                        @for c in &f.changed { tr {
                            td { (c.path) } td { "changed" }
                            td { code { (short_digest(&c.a.to_string())) } " → " code { (short_digest(&c.b.to_string())) }
                                 " (" @if c.size_delta >= 0 { "+" } (c.size_delta) " B)" }
                        } }
                        @for rn in &f.renamed { tr { td { (rn.from) } td { "renamed" } td { "→ " (rn.to) } } }
                    }
                }
                p.muted { (f.unchanged) " unchanged file(s)." }
            }
            ul.lineage-diff {
                @if let Some(run) = &l.run_id { li { "run: " (run.a.as_deref().unwrap_or("none")) " → " (run.b.as_deref().unwrap_or("none")) } }
                @if let Some(code) = &l.code {
                    li { "code: "
                        (code.a.as_ref().map(|c| c.commit.chars().take(12).collect::<String>()).unwrap_or_else(|| "none".into()))
                        " → "
                        (code.b.as_ref().map(|c| c.commit.chars().take(12).collect::<String>()).unwrap_or_else(|| "none".into())) }
                }
                @for x in &l.data.added { li.added { "data added: " (x.path) " " code { (short_digest(&x.digest)) } } }
                @for x in &l.data.removed { li.removed { "data removed: " (x.path) } }
                @for x in &l.data.changed { li.data-changed { "data changed: " (x.path) " " code { (short_digest(&x.a)) } " → " code { (short_digest(&x.b)) } } }
                @for p in &l.parents_removed { li.removed { "parent removed: " (p.model) "@" (p.version) } }
                @for p in &l.parents_added { li.added { "parent added: " (p.model) "@" (p.version) } }
                @for e in &l.environment.added { li.added { "environment file added: " (e.path) } }
                @for e in &l.environment.removed { li.removed { "environment file removed: " (e.path) } }
                @for e in &l.environment.changed {
                    li { "environment file changed: " (e.path)
                        @if let Some(u) = &e.unified { (unified(u)) } }
                }
            }
        }
    }
}

fn unified(text: &str) -> Markup {
    html! {
        pre.diff { @for line in text.lines() {
            @let class = if line.starts_with('+') && !line.starts_with("+++") { "add" }
                else if line.starts_with('-') && !line.starts_with("---") { "del" } else { "" };
            span class=(class) { (line) } "\n"
        } }
    }
}
