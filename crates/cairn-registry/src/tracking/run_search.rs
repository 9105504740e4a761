//! Run search compiled to SQL, and the choice of its plan.
//!
//! A search asks for one page of an experiment's runs, newest first or in another
//! order, filtered. Two plans serve it, and which is fast depends on how many runs the
//! filter matches, which neither engine can be trusted to guess (SQLite keeps no
//! statistics; PostgreSQL's are missing on a freshly loaded table):
//!
//! - **matches first**: a metric, param or tag comparison finds its runs through its
//!   by-key index (key, value; for metrics key, is_nan, value), and only they are
//!   looked up and sorted. Cost grows with the matches: right when they are few.
//! - **newest first**: the experiment's runs are walked in page order through
//!   `runs_newest_first`, each tested with one primary-key look-up, until the page is
//!   full. Cost grows with page size over the share of runs that match: right when
//!   that share is large (an experiment's listing, a filter most runs pass).
//!
//! Before a newest-first-ordered search, the matches of the selecting comparison are
//! counted up to a bound ten times the rows the page needs (one index range, stopped
//! at the bound): below it, matches first; at it, newest first. Both plans are then
//! written so the engine has no other choice to make.

use cairn_core::search::{Comparison, EntityKind, Op, OrderBy};
use cairn_core::tracking::Run;

use super::rows::run_page_columns;
use super::{Tracking, ViewType, invalid};
use crate::Result;
use crate::db::Backend;
use crate::db::sql::SqlBuilder;
use crate::db::sqlite_reads::ReadSize;
use crate::search_sql::{
    push_match_rows, push_matching_runs, push_run_condition, push_run_matches, run_attribute_column,
};

/// Matches, as a multiple of the rows a page needs, from which walking the runs in
/// page order is cheaper than sorting the matches: a walk tests about
/// `rows / share matching` runs, a sort looks up every match.
const WALK_FROM_MATCHES_PER_ROW: usize = 10;

/// How the runs of a search are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// Every run of the experiments, tested and sorted (no comparison selects runs by
    /// key).
    Scan,
    /// The runs the selecting comparison matches, through its index, then sorted.
    MatchesFirst,
    /// The experiment's runs newest first, tested one by one until the page is full.
    NewestFirst,
}

impl Tracking {
    /// Runs of `experiment_ids` matching `filter`, ordered; `limit` + 1 rows from
    /// `offset` so the caller can tell whether another page exists.
    pub async fn search_runs(
        &self,
        experiment_ids: &[i64],
        filter: &[Comparison],
        view: ViewType,
        order_by: &[OrderBy],
        offset: usize,
        limit: usize,
    ) -> Result<Vec<Run>> {
        if experiment_ids.is_empty() {
            return Ok(Vec::new());
        }
        let backend = self.meta.backend();
        let selecting = filter.iter().find(|c| selects_runs_by_key(c));
        let rows = offset.saturating_add(limit).saturating_add(1);
        // The plan, and whether the runs it reads are about the page's: then the read
        // is as small as the page (`ReadSize`).
        let (plan, bounded) = match selecting {
            None => (Plan::Scan, filter.is_empty() && newest_first(order_by)),
            Some(c) if experiment_ids.len() == 1 && newest_first(order_by) => {
                let bound = rows.saturating_mul(WALK_FROM_MATCHES_PER_ROW);
                // Either way a few times the page: fewer matches than the bound, or so
                // many that the walk meets a match every few runs.
                if self.matches_at_least(c, bound).await? {
                    (Plan::NewestFirst, true)
                } else {
                    (Plan::MatchesFirst, true)
                }
            }
            Some(_) => (Plan::MatchesFirst, false),
        };
        let size = if bounded {
            ReadSize::of_runs(rows)
        } else {
            ReadSize::Large
        };
        let mut q = SqlBuilder::new(
            backend,
            format!("SELECT {} FROM ", run_page_columns(backend)),
        );
        match (plan, selecting) {
            (Plan::MatchesFirst, Some(c)) => {
                q.push("(");
                push_matching_runs(&mut q, backend, c)?;
                // Each match looked up by its id, in the matches' order: SQLite keeps
                // the order of a CROSS JOIN; PostgreSQL runs a LATERAL subquery fenced
                // by OFFSET 0 once per match, instead of hashing every run of the table.
                q.push(match backend {
                    Backend::Sqlite => ") d CROSS JOIN runs r ON r.id = d.run_id",
                    Backend::Postgres => {
                        ") d CROSS JOIN LATERAL (SELECT * FROM runs WHERE id = d.run_id OFFSET 0) r"
                    }
                });
            }
            _ => {
                q.push("runs r");
            }
        }
        // One LEFT JOIN per ordering key that is not a column.
        for (i, o) in order_by.iter().enumerate() {
            let (table, value) = match o.kind {
                EntityKind::Metric => ("run_latest_metrics", "value"),
                EntityKind::Param => ("run_params", "value"),
                EntityKind::Tag => ("run_tags", "value"),
                EntityKind::Attribute => {
                    run_attribute_column(&o.key).ok_or_else(|| {
                        invalid(format!("Invalid order_by key: attribute.{}", o.key))
                    })?;
                    continue;
                }
                EntityKind::Dataset => return Err(invalid("Invalid order_by entity: dataset")),
            };
            q.push(format!(
                " LEFT JOIN (SELECT run_id, {value} AS v FROM {table} WHERE key = "
            ));
            q.push_bind(o.key.clone());
            q.push(format!(") o{i} ON o{i}.run_id = r.id"));
        }
        q.push(" WHERE r.experiment_id IN (");
        let mut sep = q.separated(", ");
        for id in experiment_ids {
            sep.push_bind(*id);
        }
        q.push(") AND ").push(view.sql("r.lifecycle_stage"));
        for c in filter {
            let is_selecting = selecting.is_some_and(|s| std::ptr::eq(c, s));
            match plan {
                // Every joined run matches already: testing it again would build its
                // whole set of matches a second time.
                Plan::MatchesFirst if is_selecting => continue,
                Plan::NewestFirst if is_selecting => {
                    q.push(" AND ");
                    push_run_matches(&mut q, backend, c)?;
                }
                _ => {
                    q.push(" AND ");
                    push_run_condition(&mut q, backend, c)?;
                }
            }
        }
        push_order(&mut q, order_by);
        q.push_limit(limit as u64 + 1, offset as u64);
        self.runs_with_details(q, size).await
    }

    /// Whether comparison `c` matches at least `bound` runs (of any experiment):
    /// counted through its index, and no further than `bound`.
    async fn matches_at_least(&self, c: &Comparison, bound: usize) -> Result<bool> {
        let backend = self.meta.backend();
        // The LIMIT goes inside, on the index range: the count stops there.
        let mut probe = SqlBuilder::new(backend, "SELECT COUNT(*) FROM (");
        push_match_rows(&mut probe, backend, c)?;
        probe.push_limit(bound as u64, 0).push(") m");
        let matches: i64 = self.meta.read_sql(probe).scalar_one().await?;
        Ok(matches as u64 >= bound as u64)
    }
}

/// A comparison that can find its runs through the by-key index of its table.
fn selects_runs_by_key(c: &Comparison) -> bool {
    matches!(
        c.kind,
        EntityKind::Metric | EntityKind::Param | EntityKind::Tag
    ) && matches!(
        c.op,
        Op::Eq | Op::Lt | Op::Le | Op::Gt | Op::Ge | Op::Like | Op::ILike | Op::In
    )
}

/// Whether `order_by` is the default order, newest first: the order of
/// `runs_newest_first` within an experiment.
fn newest_first(order_by: &[OrderBy]) -> bool {
    match order_by {
        [] => true,
        [o] => {
            o.kind == EntityKind::Attribute
                && !o.ascending
                && run_attribute_column(&o.key) == Some("r.start_time")
        }
        _ => false,
    }
}

/// ` ORDER BY …`: the requested keys, NULLs last whatever the direction (as MLflow
/// orders), then start time (newest first) unless requested, then id.
fn push_order(q: &mut SqlBuilder, order_by: &[OrderBy]) {
    q.push(" ORDER BY ");
    let mut has_start_time = false;
    for (i, o) in order_by.iter().enumerate() {
        let direction = if o.ascending { "ASC" } else { "DESC" };
        match o.kind {
            EntityKind::Attribute => {
                let column = run_attribute_column(&o.key).expect("checked when joining");
                has_start_time |= column == "r.start_time";
                // Only end_time may be NULL; testing the others for NULL would keep
                // the engines from reading them in index order.
                if column == "r.end_time" {
                    q.push(format!("({column} IS NULL), "));
                }
                q.push(format!("{column} {direction}, "));
            }
            _ => {
                q.push(format!("(o{i}.v IS NULL), o{i}.v {direction}, "));
            }
        }
    }
    if !has_start_time {
        q.push("r.start_time DESC, ");
    }
    q.push("r.id ASC");
}
