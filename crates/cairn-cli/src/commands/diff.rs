//! `cairn diff A B`: what differs between two versions (of one model or two) — metrics
//! with deltas, params and tags, files (renames found by digest, unchanged files
//! counted), lineage with unified diffs of small environment files. A readable table,
//! or `--json` (docs/DIFF.md). Exit 0 whether or not they differ, like `git diff`;
//! with `--exit-code`, 1 when they differ.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::Result;
use cairn_core::ModelVersionRef;
use cairn_core::diff::{KeyChanges, VersionDiff};

use crate::client::RegistryClient;
use crate::output::print_json;

#[derive(clap::Args)]
pub struct Args {
    /// NAME@REF (a number, an alias or `latest`).
    a: ModelVersionRef,
    /// NAME@REF, of the same model or another.
    b: ModelVersionRef,
    #[arg(long)]
    json: bool,
    /// Exit 1 when the versions differ.
    #[arg(long)]
    exit_code: bool,
}

pub async fn run(registry: &dyn RegistryClient, args: Args) -> Result<ExitCode> {
    let diff = registry.diff(&args.a, &args.b).await?;
    if args.json {
        print_json(&diff)?;
    } else {
        print!("{}", render(&diff));
    }
    Ok(if args.exit_code && diff.differ {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The table `cairn diff` prints.
pub fn render(d: &VersionDiff) -> String {
    let mut out = String::new();
    let digest = |s: &cairn_core::diff::Side| {
        s.digest
            .map(|d| format!("sha256:{}", &d.to_hex()[..12]))
            .unwrap_or_else(|| "external".into())
    };
    let _ = writeln!(
        out,
        "{}@{} ({}) -> {}@{} ({})",
        d.a.model,
        d.a.version,
        digest(&d.a),
        d.b.model,
        d.b.version,
        digest(&d.b)
    );
    if !d.differ {
        out.push_str("no differences\n");
        return out;
    }
    if !d.metrics.is_empty() {
        out.push_str("metrics\n");
        let width = d.metrics.iter().map(|m| m.key.len()).max().unwrap_or(0);
        for m in &d.metrics {
            let value = |v: Option<f64>| v.map_or("-".to_owned(), |v| v.to_string());
            let mut line = format!("  {:width$}  {} -> {}", m.key, value(m.a), value(m.b));
            if let Some(delta) = m.delta {
                let _ = write!(line, "  {}", signed(delta));
            }
            if let Some(relative) = m.relative {
                let _ = write!(line, " ({:+.1}%)", relative * 100.0);
            }
            let _ = writeln!(out, "{line}");
        }
    }
    keys(&mut out, "params", &d.params);
    keys(&mut out, "tags", &d.tags);
    let f = &d.files;
    if !f.is_empty() {
        let _ = writeln!(out, "files ({} unchanged)", f.unchanged);
        for c in &f.changed {
            let _ = writeln!(
                out,
                "  ~ {}  sha256:{} -> sha256:{}  {:+} B",
                c.path,
                &c.a.to_hex()[..12],
                &c.b.to_hex()[..12],
                c.size_delta
            );
        }
        for r in &f.renamed {
            let _ = writeln!(out, "  > {} -> {}", r.from, r.to);
        }
        for a in &f.added {
            let _ = writeln!(out, "  + {}  {} B", a.path, a.size);
        }
        for r in &f.removed {
            let _ = writeln!(out, "  - {}  {} B", r.path, r.size);
        }
    } else if f.unchanged > 0 {
        let _ = writeln!(out, "files: the same {} file(s)", f.unchanged);
    }
    let l = &d.lineage;
    if !l.is_empty() {
        out.push_str("lineage\n");
        if let Some(run) = &l.run_id {
            let _ = writeln!(out, "  run  {} -> {}", or_none(&run.a), or_none(&run.b));
        }
        if let Some(code) = &l.code {
            let commit = |c: &Option<cairn_core::lineage::CodeRef>| {
                c.as_ref().map_or("-".to_owned(), |c| {
                    format!(
                        "{}{}",
                        &c.commit[..c.commit.len().min(12)],
                        if c.dirty { " (dirty)" } else { "" }
                    )
                })
            };
            let _ = writeln!(out, "  code  {} -> {}", commit(&code.a), commit(&code.b));
        }
        for c in &l.data.changed {
            let _ = writeln!(out, "  ~ data {}  {} -> {}", c.path, c.a, c.b);
        }
        for a in &l.data.added {
            let _ = writeln!(out, "  + data {}  {}", a.path, a.digest);
        }
        for r in &l.data.removed {
            let _ = writeln!(out, "  - data {}  {}", r.path, r.digest);
        }
        for p in &l.parents_added {
            let _ = writeln!(out, "  + parent {p}");
        }
        for p in &l.parents_removed {
            let _ = writeln!(out, "  - parent {p}");
        }
        for e in &l.environment.added {
            let _ = writeln!(out, "  + environment {}", e.path);
        }
        for e in &l.environment.removed {
            let _ = writeln!(out, "  - environment {}", e.path);
        }
        for e in &l.environment.changed {
            let _ = writeln!(out, "  ~ environment {}", e.path);
            if let Some(unified) = &e.unified {
                for line in unified.lines() {
                    let _ = writeln!(out, "      {line}");
                }
            }
        }
    }
    out
}

/// A delta with its sign, to six decimals without trailing zeros (`+0.1`, not the
/// `+0.09999999999999998` of the floating-point subtraction); tiny ones in exponent form.
fn signed(delta: f64) -> String {
    if delta != 0.0 && delta.abs() < 1e-4 {
        return format!("{delta:+e}");
    }
    let fixed = format!("{delta:+.6}");
    fixed.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn or_none(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("-")
}

fn keys(out: &mut String, title: &str, k: &KeyChanges) {
    if k.is_empty() {
        return;
    }
    let _ = writeln!(out, "{title}");
    for (key, value) in &k.added {
        let _ = writeln!(out, "  + {key}={value}");
    }
    for (key, value) in &k.removed {
        let _ = writeln!(out, "  - {key}={value}");
    }
    for c in &k.changed {
        let _ = writeln!(out, "  ~ {}: {} -> {}", c.key, c.a, c.b);
    }
}
