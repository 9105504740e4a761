//! `cairn events [--follow] [--model NAME] [--since SEQ] [--type T]… [--json]`: the
//! registry's events (every change, numbered as the audit log numbers them), one line
//! each — or one JSON object each (`cairn.event.v1`) with `--json` — as they commit.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use cairn_core::ModelName;
use cairn_core::event::Event;
use futures::StreamExt;

use crate::client::RegistryClient;

#[derive(clap::Args)]
pub struct Args {
    /// Keep printing events as they commit (otherwise stop once caught up).
    #[arg(long, short = 'f')]
    follow: bool,
    /// Only this model's events.
    #[arg(long)]
    model: Option<ModelName>,
    /// Start after this event number (0: from the first). Default: every event so far
    /// without --follow; only new ones with it.
    #[arg(long)]
    since: Option<u64>,
    /// Only events of this type (`alias.set`) or type prefix (`alias.*`); repeatable.
    #[arg(long = "type", value_name = "TYPE")]
    kinds: Vec<String>,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

pub async fn run(registry: &dyn RegistryClient, args: Args) -> Result<ExitCode> {
    let since = match (args.since, args.follow) {
        (Some(since), _) => Some(since),
        (None, false) => Some(0),
        (None, true) => None,
    };
    let mut events = registry
        .events(since, args.model.as_ref(), args.follow)
        .await?;
    let mut out = std::io::stdout().lock();
    while let Some(event) = events.next().await {
        let event = event?;
        if !event.is_of(&args.kinds) {
            continue;
        }
        if args.json {
            serde_json::to_writer(&mut out, &event)?;
            writeln!(out)?;
        } else {
            writeln!(out, "{}", line(&event))?;
        }
        // Each event as it comes: a pipe reading `--follow` must not wait for a buffer.
        out.flush()?;
    }
    Ok(ExitCode::SUCCESS)
}

fn line(e: &Event) -> String {
    let show = |v: &Option<serde_json::Value>| {
        v.as_ref().map_or_else(|| "-".to_owned(), |v| v.to_string())
    };
    let at =
        e.at.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
    format!(
        "{:>6}  {at}  {}  {}  {}  {} -> {}",
        e.seq,
        e.actor,
        e.kind,
        e.target,
        show(&e.before),
        show(&e.after)
    )
}
