//! SQLite alone, for the benchmarks' ceilings (`bench/ceilings.py`): runs one call's
//! statements over and over on a database file, with nothing around the engine but
//! prepared statements (kept, as Cairn keeps them) and the rows read to their end,
//! each value once.
//!
//!     sqlite_alone DB SECONDS THREADS KIND < statements (one per line)
//!
//! `KIND`, as Cairn runs the call (`registry::db::sqlite_reads`): `write`, one
//! connection (SQLite has one writer) with the settings of Cairn's writer, each call
//! its own `BEGIN IMMEDIATE … COMMIT`; `lookup`, `THREADS` read-only connections side by
//! side; `snapshot`, the same, each call one read transaction on connections that map
//! the file. A statement's `:step` is bound to a number no call repeats. Prints
//! `ops/s p50_ms p99_ms`.
//!
//! A `write` call whose lines start with `READ ` first runs those as lookups, as Cairn
//! reads what a write depends on before it writes (a registration reads its run and
//! the run's files): then `THREADS` callers run side by side, each reading on a
//! read-only connection of its own and writing on the one writer connection in turn.

use std::io::BufRead;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

/// How a call's statements run (see the module's documentation).
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Write,
    Lookup,
    Snapshot,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = || -> ! {
        eprintln!("usage: sqlite_alone DB SECONDS THREADS write|lookup|snapshot < statements");
        std::process::exit(2);
    };
    let [_, db, seconds, threads, kind] = args.as_slice() else {
        usage()
    };
    let kind = match kind.as_str() {
        "write" => Kind::Write,
        "lookup" => Kind::Lookup,
        "snapshot" => Kind::Snapshot,
        _ => usage(),
    };
    let seconds: f64 = seconds.parse().expect("SECONDS is a number");
    let (reads, writes): (Vec<String>, Vec<String>) = std::io::stdin()
        .lock()
        .lines()
        .map(|l| l.expect("statements on stdin"))
        .filter(|l| !l.trim().is_empty())
        .partition(|l| l.starts_with("READ "));
    let reads: Vec<String> = reads
        .iter()
        .map(|l| l["READ ".len()..].to_owned())
        .collect();
    // One writer, in turn: one caller, unless each also reads before it writes.
    let threads: usize = if kind == Kind::Write && reads.is_empty() {
        1
    } else {
        threads.parse().expect("THREADS is a number")
    };
    let writer = (kind == Kind::Write).then(|| Mutex::new(open_writer(db)));
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut latencies: Vec<Duration> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let call = Call {
                    reads: &reads,
                    statements: &writes,
                    kind,
                    writer: writer.as_ref(),
                };
                scope.spawn(move || run(db, call, t as i64, deadline))
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("a worker panicked"))
            .collect()
    });
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let at = |q: f64| {
        let i = ((latencies.len() as f64 * q) as usize).min(latencies.len() - 1);
        latencies[i].as_secs_f64() * 1000.0
    };
    println!(
        "{:.1} {:.3} {:.3}",
        latencies.len() as f64 / elapsed,
        at(0.5),
        at(0.99)
    );
}

/// One call: its lookups, then its statements (in a transaction but for lookups).
#[derive(Clone, Copy)]
struct Call<'a> {
    reads: &'a [String],
    statements: &'a [String],
    kind: Kind,
    writer: Option<&'a Mutex<Connection>>,
}

/// The writer's connection, with the settings of Cairn's
/// (crates/cairn-registry/src/db/sqlite_writer.rs).
fn open_writer(db: &str) -> Connection {
    let conn = Connection::open(db).expect("opening the database");
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY; PRAGMA wal_autocheckpoint = 10000;",
    )
    .expect("setting the writer up");
    conn.set_prepared_statement_cache_capacity(64);
    conn
}

/// Calls until `deadline`; answers each call's latency.
fn run(db: &str, call: Call<'_>, thread: i64, deadline: Instant) -> Vec<Duration> {
    // No SQLite mutex, as Cairn's readers: one thread uses the connection.
    let reader = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .expect("opening the database");
    if call.kind == Kind::Snapshot {
        // As Cairn's readers of several statements (crates/cairn-registry/src/db/sqlite_reads.rs).
        reader
            .pragma_update(None, "mmap_size", 1_i64 << 30)
            .expect("mapping the file");
    }
    reader.set_prepared_statement_cache_capacity(call.statements.len() + call.reads.len() + 4);
    let (begin, commit) = match call.kind {
        Kind::Write => (Some("BEGIN IMMEDIATE"), Some("COMMIT")),
        Kind::Snapshot => (Some("BEGIN"), Some("COMMIT")),
        Kind::Lookup => (None, None),
    };
    let mut latencies = Vec::new();
    let mut step = thread * 1_000_000_000 + 1_000_000;
    while Instant::now() < deadline {
        let t0 = Instant::now();
        for sql in call.reads {
            step += 1;
            statement(&reader, sql, step);
        }
        let writer = call.writer.map(|w| w.lock().expect("the writer"));
        let conn = writer.as_deref().unwrap_or(&reader);
        if let Some(begin) = begin {
            conn.prepare_cached(begin)
                .and_then(|mut s| s.execute([]))
                .expect("BEGIN");
        }
        for sql in call.statements {
            step += 1;
            statement(conn, sql, step);
        }
        if let Some(commit) = commit {
            conn.prepare_cached(commit)
                .and_then(|mut s| s.execute([]))
                .expect("COMMIT");
        }
        drop(writer);
        latencies.push(t0.elapsed());
    }
    latencies
}

/// Runs `sql` with `:step` bound to `step`, reading its rows to their end and each
/// row's values once, in place (no copy, no decoding): what any client of the rows
/// does at the least, as pgbench's ceilings receive every value.
fn statement(conn: &Connection, sql: &str, step: i64) {
    let mut stmt = conn.prepare_cached(sql).expect("a statement of the call");
    let columns = stmt.column_count();
    let mut rows = if stmt.parameter_index(":step").ok().flatten().is_some() {
        stmt.query(rusqlite::named_params! { ":step": step })
    } else {
        stmt.query([])
    }
    .expect("running a statement");
    let mut bytes = 0usize;
    while let Some(row) = rows.next().expect("reading a row") {
        for column in 0..columns {
            bytes += match row.get_ref(column).expect("a column of the row") {
                ValueRef::Text(b) | ValueRef::Blob(b) => b.len(),
                _ => 8,
            };
        }
    }
    std::hint::black_box(bytes);
}
