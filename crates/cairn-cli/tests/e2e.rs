//! End-to-end: the real `cairn` binary, as a user runs it. Every scenario runs twice:
//! against an embedded registry (a data directory) and against a `cairn server` started
//! on port 0 (remote mode). Both must behave identically.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

#[derive(Clone, Copy, Debug)]
enum Mode {
    Embedded,
    Server,
}

/// A scratch directory, a registry in it, and (in server mode) the server process.
struct Env {
    dir: tempfile::TempDir,
    /// Where the registry keeps its database and blobs.
    data: PathBuf,
    /// What `--registry` gets.
    registry: String,
    server: Option<Child>,
}

impl Env {
    fn new(mode: Mode) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("registry");
        let (registry, server) = match mode {
            Mode::Embedded => (data.display().to_string(), None),
            Mode::Server => {
                let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
                    .args(["server", "--port", "0", "--data"])
                    .arg(&data)
                    .env("RUST_LOG", "warn")
                    .stdout(Stdio::piped())
                    .stderr(Stdio::inherit())
                    .spawn()
                    .unwrap();
                let mut line = String::new();
                BufReader::new(child.stdout.take().unwrap())
                    .read_line(&mut line)
                    .unwrap();
                let url = line
                    .split_whitespace()
                    .find(|w| w.starts_with("http://"))
                    .unwrap_or_else(|| panic!("no address in {line:?}"))
                    .to_owned();
                (url, Some(child))
            }
        };
        Self {
            dir,
            data,
            registry,
            server,
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
        cmd.args(args)
            .env("CAIRN_REGISTRY", &self.registry)
            .env("CAIRN_ACTOR", "tester")
            .env_remove("RUST_LOG")
            .env_remove("CAIRN_TOKEN")
            .env("XDG_CONFIG_HOME", self.dir.path().join("config"))
            .current_dir(self.dir.path());
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs and expects success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "cairn {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args)).unwrap()
    }

    /// Runs and expects exit `code`; returns stderr.
    fn fails(&self, code: i32, args: &[&str]) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(code), "cairn {args:?}: {stderr}");
        assert!(
            stderr.contains("error"),
            "no error line for {args:?}: {stderr}"
        );
        stderr
    }

    fn blob_files(&self) -> Vec<PathBuf> {
        files_under(&self.data.join("blobs/sha256"))
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = server.kill();
            let _ = server.wait();
        }
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.path().is_dir() {
                out.extend(files_under(&e.path()));
            } else {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

fn write(path: &Path, content: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

/// A 3-file model directory.
fn model_dir(env: &Env) -> PathBuf {
    let dir = env.path("model");
    write(&dir.join("model.onnx"), b"onnx weights v1");
    write(&dir.join("config.json"), br#"{"layers": 3}"#);
    write(&dir.join("tokenizer/vocab.txt"), b"a\nb\nc\n");
    dir
}

/// `NAME@N sha256:<64 hex>`, exactly.
fn parse_push_line(stdout: &str) -> (String, u64, String) {
    let line = stdout.trim_end_matches('\n');
    assert!(
        !line.contains('\n'),
        "push printed more than one line: {stdout:?}"
    );
    let (reference, digest) = line.split_once(' ').unwrap();
    let (name, n) = reference.split_once('@').unwrap();
    let digest = digest.strip_prefix("sha256:").unwrap();
    assert_eq!(digest.len(), 64);
    (name.into(), n.parse().unwrap(), digest.into())
}

fn push_dedup_and_pull_round_trip(mode: Mode) {
    let env = Env::new(mode);
    let model = model_dir(&env);
    let (name, n, digest1) = parse_push_line(&env.ok(&["push", "model", "--model", "demo"]));
    assert_eq!((name.as_str(), n), ("demo", 1));
    write(&model.join("model.onnx"), b"onnx weights v2");
    let (_, n, digest2) = parse_push_line(&env.ok(&["push", "model", "--model", "demo"]));
    assert_eq!(n, 2);
    assert_ne!(digest1, digest2);
    assert_eq!(
        env.blob_files().len(),
        4,
        "3 files + 1 changed file = 4 blobs"
    );
    // Blobs live at blobs/sha256/<2 hex>/<64 hex> and hold exactly their content.
    for blob in env.blob_files() {
        let hex = blob.file_name().unwrap().to_str().unwrap();
        assert_eq!(
            blob.parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_str()
                .unwrap(),
            &hex[..2]
        );
        assert_eq!(sha256sum(&blob), hex);
    }

    env.ok(&["pull", "demo@1", "-o", "out"]);
    write(&model.join("model.onnx"), b"onnx weights v1");
    assert_same_tree(&model, &env.path("out"));

    // The manifest agrees with sha256sum, and `show --json` has the documented keys.
    let shown = env.json(&["show", "demo@1", "--json"]);
    assert_eq!(shown["model"], "demo");
    assert_eq!(shown["version"], 1);
    assert_eq!(shown["digest"], digest1.as_str());
    for key in ["aliases", "metrics", "params", "tags"] {
        assert!(shown.get(key).is_some(), "show --json lacks {key}");
    }
    let files = shown["files"].as_array().unwrap();
    assert_eq!(files.len(), 3);
    for f in files {
        let path = model.join(f["path"].as_str().unwrap());
        assert_eq!(f["sha256"].as_str().unwrap(), sha256sum(&path));
        assert_eq!(
            f["size"].as_u64().unwrap(),
            std::fs::metadata(&path).unwrap().len()
        );
    }
    // The version digest is SHA-256 of the canonical manifest text.
    let canonical: String = files
        .iter()
        .map(|f| {
            format!(
                "{} {} {}\n",
                f["sha256"].as_str().unwrap(),
                f["size"],
                f["path"].as_str().unwrap()
            )
        })
        .collect();
    write(&env.path("canonical"), canonical.as_bytes());
    assert_eq!(sha256sum(&env.path("canonical")), digest1);

    let versions = env.json(&["versions", "demo", "--json"]);
    let numbers: Vec<u64> = versions
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [1, 2]);

    // Pulling again over identical files is a no-op; over a changed file it refuses.
    env.ok(&["pull", "demo@1", "-o", "out"]);
    write(&env.path("out/config.json"), b"edited");
    let err = env.fails(1, &["pull", "demo@1", "-o", "out"]);
    assert!(
        err.contains("config.json") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(env.path("out/config.json")).unwrap(),
        b"edited"
    );
    env.ok(&["pull", "demo@1", "-o", "out", "--force"]);
    assert_same_tree(&model, &env.path("out"));
}

fn single_file_push_keeps_its_name(mode: Mode) {
    let env = Env::new(mode);
    write(&env.path("clf.pkl"), b"pickle bytes");
    env.ok(&[
        "push",
        "clf.pkl",
        "--model",
        "clf",
        "--metric",
        "acc=0.97",
        "--param",
        "depth=8",
        "--tag",
        "team=risk",
        "--description",
        "first cut",
    ]);
    let shown = env.json(&["show", "clf@latest", "--json"]);
    assert_eq!(shown["files"][0]["path"], "clf.pkl");
    assert_eq!(shown["metrics"]["acc"], 0.97);
    assert_eq!(shown["params"]["depth"], "8");
    assert_eq!(shown["tags"]["team"], "risk");
    assert_eq!(shown["description"], "first cut");
    assert_eq!(shown["created_by"], "tester");
    env.ok(&["pull", "clf", "-o", "got"]);
    assert_eq!(
        std::fs::read(env.path("got/clf.pkl")).unwrap(),
        b"pickle bytes"
    );
}

fn promote_rollback_and_history(mode: Mode) {
    let env = Env::new(mode);
    let model = model_dir(&env);
    env.ok(&["push", "model", "--model", "demo"]);
    write(&model.join("model.onnx"), b"better weights");
    env.ok(&["push", "model", "--model", "demo"]);

    env.ok(&["promote", "demo@1", "--to", "production"]);
    env.ok(&[
        "promote",
        "demo@2",
        "--to",
        "production",
        "--reason",
        "higher accuracy",
    ]);
    assert_eq!(
        env.json(&["show", "demo@production", "--json"])["version"],
        2
    );
    env.ok(&[
        "rollback",
        "demo",
        "production",
        "--reason",
        "latency regression",
    ]);
    assert_eq!(
        env.json(&["show", "demo@production", "--json"])["version"],
        1
    );

    let history = env.json(&["history", "demo", "production", "--json"]);
    let moves: Vec<(Value, Value)> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["from"].clone(), m["to"].clone()))
        .collect();
    assert_eq!(
        moves,
        [
            (Value::Null, 1.into()),
            (1.into(), 2.into()),
            (2.into(), 1.into())
        ]
    );
    for m in history.as_array().unwrap() {
        assert_eq!(m["alias"], "production");
        assert_eq!(m["actor"], "tester");
        assert!(m["at"].as_str().unwrap().starts_with("20"), "{m}");
        assert!(m.get("reason").is_some());
    }
    assert_eq!(history[2]["reason"], "latency regression");
    let table = env.ok(&["history", "demo", "production"]);
    assert_eq!(table.lines().count(), 4, "{table}");
    assert!(
        table.contains("rollback") && table.contains("tester"),
        "{table}"
    );

    // alias set / delete, and what `models show` reports.
    env.ok(&["alias", "set", "demo", "champion", "2"]);
    let m = env.json(&["models", "show", "demo", "--json"]);
    assert_eq!(m["aliases"]["champion"], 2);
    assert_eq!(m["aliases"]["production"], 1);
    env.ok(&["alias", "delete", "demo", "champion"]);
    env.fails(1, &["show", "demo@champion"]);
    env.fails(1, &["promote", "demo@7", "--to", "production"]);
    assert_eq!(
        env.json(&["show", "demo@production", "--json"])["version"],
        1
    );
}

fn verify_detects_corruption_and_pull_refuses_it(mode: Mode) {
    let env = Env::new(mode);
    let model = model_dir(&env);
    env.ok(&["push", "model", "--model", "demo"]);
    env.ok(&["push", "model", "--model", "other"]);
    let ok = env.run(&["verify", "demo@1"]);
    assert!(ok.status.success());
    env.ok(&["verify", "--all"]);

    // Overwrite one byte of the blob holding model.onnx.
    let blob = env
        .blob_files()
        .into_iter()
        .find(|b| b.file_name().unwrap().to_str().unwrap() == sha256sum(&model.join("model.onnx")))
        .unwrap();
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[3] ^= 0x01;
    std::fs::write(&blob, bytes).unwrap();

    let out = env.run(&["verify", "demo@1"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("corrupt: demo@1 model.onnx"), "{stdout}");
    assert!(
        stdout.contains("other@1 model.onnx"),
        "the other version sharing the blob: {stdout}"
    );
    assert!(
        stderr.contains("demo@1") && stderr.contains("other@1"),
        "{stderr}"
    );
    let report = env
        .command(&["verify", "--all", "--json"])
        .output()
        .unwrap();
    assert_eq!(report.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(report["problems"][0]["problem"], "corrupt");

    let err = env.fails(1, &["pull", "demo@1", "-o", "out"]);
    assert!(
        err.contains("model.onnx") && err.contains("corrupt"),
        "{err}"
    );
    assert!(
        files_under(&env.path("out")).is_empty(),
        "a corrupt pull must write nothing"
    );

    std::fs::remove_file(&blob).unwrap();
    let out = env.run(&["verify", "--all"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("missing: demo@1 model.onnx"));
}

fn concurrent_pushes_get_distinct_gap_free_versions(mode: Mode) {
    let env = Env::new(mode);
    let processes = 4;
    let pushes_each = 3;
    for p in 0..processes {
        write(
            &env.path(&format!("m{p}/weights.bin")),
            format!("model {p}").as_bytes(),
        );
    }
    let children: Vec<_> = (0..processes)
        .map(|p| {
            let script = (0..pushes_each)
                .map(|_| format!("\"$CAIRN\" push m{p} --model shared || exit 1"))
                .collect::<Vec<_>>()
                .join("; ");
            let mut cmd = env.command(&[]);
            let program = cmd.get_program().to_owned();
            cmd = Command::new("sh");
            cmd.arg("-c")
                .arg(script)
                .env("CAIRN", program)
                .env("CAIRN_REGISTRY", &env.registry)
                .current_dir(env.dir.path())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            cmd.spawn().unwrap()
        })
        .collect();
    let mut numbers = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for line in String::from_utf8(out.stdout).unwrap().lines() {
            numbers.push(parse_push_line(line).1);
        }
    }
    numbers.sort_unstable();
    assert_eq!(
        numbers,
        (1..=(processes * pushes_each) as u64).collect::<Vec<_>>()
    );
}

fn bad_input_gets_clear_errors(mode: Mode) {
    let env = Env::new(mode);
    let model = model_dir(&env);
    env.ok(&["push", "model", "--model", "demo"]);
    // Usage errors: exit 2.
    env.fails(2, &["push", "model", "--model", "bad/name"]);
    env.fails(2, &["show", "demo@0"]);
    env.fails(2, &["alias", "set", "demo", "latest", "1"]);
    env.fails(
        2,
        &["push", "model", "--model", "x", "--metric", "acc=high"],
    );
    env.fails(2, &["frobnicate"]);
    env.fails(2, &["verify"]);
    // Failures: exit 1, one line naming the problem.
    for (args, needle) in [
        (&["show", "ghost@1"][..], "ghost"),
        (&["show", "demo@9"][..], "demo@9"),
        (&["show", "demo@staging"][..], "staging"),
        (&["pull", "ghost@latest"][..], "ghost"),
        (&["rollback", "demo", "production"][..], "production"),
        (&["history", "demo", "production"][..], "production"),
        (&["delete", "demo@5"][..], "demo@5"),
        (&["models", "delete", "ghost"][..], "ghost"),
        (&["push", "nowhere", "--model", "demo"][..], "nowhere"),
    ] {
        let err = env.fails(1, args);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
    // A symlink leaving the pushed directory is refused.
    write(&env.path("secret.txt"), b"not yours");
    std::os::unix::fs::symlink(env.path("secret.txt"), model.join("leak")).unwrap();
    let err = env.fails(1, &["push", "model", "--model", "demo"]);
    assert!(err.contains("outside"), "{err}");
    std::fs::remove_file(model.join("leak")).unwrap();
    // A symlink inside it is followed.
    std::os::unix::fs::symlink(model.join("config.json"), model.join("config-link.json")).unwrap();
    env.ok(&["push", "model", "--model", "demo"]);
    let shown = env.json(&["show", "demo@2", "--json"]);
    assert_eq!(shown["file_count"], 4);
    // Nothing stored changed through all of this.
    assert_eq!(
        env.json(&["versions", "demo", "--json"])
            .as_array()
            .unwrap()
            .len(),
        2
    );
    env.ok(&["verify", "--all"]);
}

fn delete_version_and_model(mode: Mode) {
    let env = Env::new(mode);
    let model = model_dir(&env);
    env.ok(&["push", "model", "--model", "demo"]);
    write(&model.join("model.onnx"), b"v2");
    env.ok(&["push", "model", "--model", "demo"]);
    env.ok(&["promote", "demo@2", "--to", "production"]);
    env.ok(&["delete", "demo@2"]);
    env.fails(1, &["show", "demo@2"]);
    env.fails(1, &["show", "demo@production"]);
    assert_eq!(env.json(&["show", "demo@latest", "--json"])["version"], 1);
    let history = env.json(&["history", "demo", "production", "--json"]);
    assert_eq!(history[1]["to"], Value::Null);
    write(&model.join("model.onnx"), b"v3");
    let (_, n, _) = parse_push_line(&env.ok(&["push", "model", "--model", "demo"]));
    assert_eq!(n, 3, "version numbers are never reused");
    let listed = env.ok(&["models", "list"]);
    assert!(listed.contains("demo"), "{listed}");
    env.ok(&["models", "delete", "demo"]);
    assert_eq!(
        env.json(&["models", "list", "--json"]),
        Value::Array(vec![])
    );
}

/// A file past one 8 MiB part and past 64 MiB: the multipart path both ways, and in
/// embedded mode the copy staged in the store and hashed there (`blobs::staged`),
/// published once, and dropped when the registry holds the file already.
fn large_file_streams_through(mode: Mode) {
    let env = Env::new(mode);
    let content: Vec<u8> = (0..(64 * 1024 * 1024 + 12345u32))
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    write(&env.path("big/weights.bin"), &content);
    write(&env.path("big/config.json"), b"{}");
    env.ok(&["push", "big", "--model", "big"]);
    let again = env.run(&["push", "big", "--model", "big"]);
    assert!(again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("uploaded 0 new blob(s)"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    env.ok(&["pull", "big@1", "-o", "back"]);
    assert!(std::fs::read(env.path("back/weights.bin")).unwrap() == content);
    env.ok(&["verify", "big@2"]);
    let stored: Vec<Vec<u8>> = env
        .blob_files()
        .iter()
        .map(|f| std::fs::read(f).unwrap())
        .collect();
    assert_eq!(stored.len(), 2, "one blob per distinct file");
    assert!(stored.contains(&content));
    assert!(files_under(&env.data.join("blobs/tmp")).is_empty());
}

/// Runs SQL directly on the registry's SQLite file: what someone with database access
/// could do behind the registry's back.
fn tamper(db: &Path, statement: &str) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    conn.execute_batch(statement).unwrap();
}

fn audit_log_records_each_change_and_detects_tampering(mode: Mode) {
    let env = Env::new(mode);
    let model = model_dir(&env);
    env.ok(&["push", "model", "--model", "demo"]);
    write(&model.join("model.onnx"), b"better weights");
    env.ok(&["push", "model", "--model", "demo"]);
    env.ok(&["promote", "demo@2", "--to", "production"]);
    env.ok(&["promote", "demo@1", "--to", "production"]);
    env.ok(&["rollback", "demo", "production", "--reason", "oops"]);
    env.ok(&["alias", "delete", "demo", "production"]);
    env.ok(&["delete", "demo@1"]);

    // One entry per command, in order, by the CLI's actor.
    let log = env.json(&["audit", "log", "--json"]);
    let entries: Vec<(u64, &str, &str, &str)> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["seq"].as_u64().unwrap(),
                e["actor"].as_str().unwrap(),
                e["action"].as_str().unwrap(),
                e["target"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        entries,
        [
            (1, "tester", "version.create", "demo@1"),
            (2, "tester", "version.create", "demo@2"),
            (3, "tester", "alias.set", "demo@production"),
            (4, "tester", "alias.set", "demo@production"),
            (5, "tester", "alias.rollback", "demo@production"),
            (6, "tester", "alias.delete", "demo@production"),
            (7, "tester", "version.delete", "demo@1"),
        ]
    );
    assert_eq!(log[4]["after"]["reason"], "oops");
    let text = env.ok(&["audit", "log", "--model", "demo"]);
    assert_eq!(text.lines().count(), 7, "{text}");

    let head = env.ok(&["audit", "head"]).trim().to_owned();
    assert!(head.starts_with("7:"), "{head}");
    let out = env.run(&["audit", "verify"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("ok: 7 audit entries"));

    // Edit one entry behind the registry's back.
    let db = env.data.join("cairn.db");
    tamper(&db, "UPDATE audit_log SET actor = 'mallory' WHERE seq = 3");
    let err = env.fails(1, &["audit", "verify"]);
    assert!(err.contains("entry 3"), "{err}");
    tamper(&db, "UPDATE audit_log SET actor = 'tester' WHERE seq = 3");
    env.ok(&["audit", "verify", "--head", &head]);

    // Delete one.
    tamper(&db, "DELETE FROM audit_log WHERE seq = 6");
    let err = env.fails(1, &["audit", "verify", "--head", &head]);
    assert!(err.contains("entry 6"), "{err}");

    // A malformed head is a usage error.
    env.fails(2, &["audit", "verify", "--head", "7"]);
}

fn gc_frees_what_deleted_versions_alone_used(mode: Mode) {
    let env = Env::new(mode);
    let dir = env.path("m");
    let version = |files: &[(&str, &str)]| {
        let _ = std::fs::remove_dir_all(&dir);
        for (name, content) in files {
            write(&dir.join(name), content.as_bytes());
        }
        env.ok(&["push", "m", "--model", "demo"]);
    };
    version(&[("a", "only in one"), ("b", "in one and two")]);
    version(&[("b", "in one and two"), ("c", "in two and three")]);
    version(&[("c", "in two and three"), ("d", "only in three")]);
    env.ok(&["delete", "demo@1"]);
    env.ok(&["delete", "demo@2"]);
    let digest = |content: &str| {
        use sha2::Digest;
        sha2::Sha256::digest(content.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let mut expected = vec![digest("only in one"), digest("in one and two")];
    expected.sort();

    let dry = env.ok(&["gc", "--dry-run", "--grace", "0s"]);
    assert_eq!(dry.lines().collect::<Vec<_>>(), expected);
    assert_eq!(env.blob_files().len(), 4, "a dry run deletes nothing");
    // The default grace period (a day) keeps blobs this young.
    assert_eq!(env.ok(&["gc"]), "");
    assert_eq!(env.blob_files().len(), 4);

    let freed = env.json(&["gc", "--grace", "0s", "--json"]);
    let freed: Vec<&str> = freed["freed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert_eq!(freed, expected);
    assert_eq!(env.blob_files().len(), 2);
    env.ok(&["verify", "--all"]);
    assert_eq!(env.ok(&["gc", "--grace", "0s"]), "", "nothing left to free");

    let why = env.ok(&["gc", "--why", &digest("in two and three")]);
    assert_eq!(why.trim(), "version demo@3 file c");
    let why = env.ok(&["gc", "--why", &expected[0]]);
    assert!(why.contains("garbage-collected"), "{why}");
    env.fails(2, &["gc", "--why", "not-a-digest"]);
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=Tester",
            "-c",
            "user.email=tester@example.com",
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn lineage_from_git_dvc_data_and_parents(mode: Mode) {
    let env = Env::new(mode);
    let repo = env.dir.path();
    git(repo, &["init", "-q", "-b", "main"]);
    git(
        repo,
        &[
            "remote",
            "add",
            "origin",
            "https://example.com/team/fraud.git",
        ],
    );
    model_dir(&env);
    // A DVC project with a tracked dataset, as `dvc init` and `dvc add data/train.csv`
    // leave it: the data itself ignored by git, its .dvc file committed.
    write(&env.path(".dvc/config"), b"");
    write(&env.path("data/train.csv"), b"x,y\n1,2\n");
    write(
        &env.path("data/train.csv.dvc"),
        b"outs:\n- md5: 9f2c1e7a2b7f3f0e8c1d2a3b4c5d6e7f\n  size: 8\n  hash: md5\n  path: train.csv\n",
    );
    write(&env.path("data/.gitignore"), b"/train.csv\n");
    write(&env.path("requirements.txt"), b"scikit-learn==1.9.1\n");
    git(repo, &["add", "."]);
    git(repo, &["commit", "-q", "-m", "train"]);
    let commit = git(repo, &["rev-parse", "HEAD"]);
    // An uncommitted change: the tree is dirty.
    write(&env.path("model/config.json"), br#"{"layers": 4}"#);

    env.ok(&[
        "push",
        "model",
        "--model",
        "fraud",
        "--data",
        "data",
        "--env",
        "requirements.txt",
    ]);
    let l = env.json(&["lineage", "fraud@1", "--json"]);
    assert_eq!(l["code"]["commit"], commit.as_str());
    assert_eq!(l["code"]["branch"], "main");
    assert_eq!(l["code"]["remote"], "https://example.com/team/fraud.git");
    assert_eq!(l["code"]["dirty"], true);
    let data = l["data"].as_array().unwrap();
    let dvc = data
        .iter()
        .find(|d| d["kind"] == "dvc")
        .expect("the DVC input");
    assert_eq!(dvc["path"], "data/train.csv");
    assert_eq!(dvc["digest"], "md5:9f2c1e7a2b7f3f0e8c1d2a3b4c5d6e7f");
    let dataset = data
        .iter()
        .find(|d| d["kind"] == "dataset")
        .expect("the dataset digest");
    assert_eq!(
        dataset["files"], 3,
        "every file under data/: train.csv, its .dvc file and .gitignore"
    );
    assert_eq!(l["environment"][0]["path"], "requirements.txt");

    assert_eq!(
        env.ok(&["versions", "--data", "9f2c1e7a2b7f3f0e8c1d2a3b4c5d6e7f"])
            .trim(),
        "fraud@1"
    );
    let dataset_digest = dataset["digest"].as_str().unwrap().to_owned();
    assert_eq!(
        env.ok(&["versions", "--data", &dataset_digest]).trim(),
        "fraud@1"
    );
    assert_eq!(
        env.ok(&["versions", "--commit", &commit[..8]]).trim(),
        "fraud@1"
    );

    write(&env.path("model/model.onnx"), b"fine-tuned weights");
    env.ok(&[
        "push", "model", "--model", "fraud", "--parent", "fraud@1", "--no-git",
    ]);
    assert_eq!(
        env.ok(&["versions", "--parent", "fraud@1"]).trim(),
        "fraud@2"
    );
    let tree = env.ok(&["lineage", "fraud@2"]);
    assert!(tree.contains("parent: fraud@1"), "{tree}");
    assert!(
        tree.contains(&format!("code: {commit} (main, dirty)")),
        "{tree}"
    );
    assert!(
        tree.contains("data (dvc): data/train.csv md5:9f2c1e7a2b7f3f0e8c1d2a3b4c5d6e7f"),
        "{tree}"
    );
    let child = env.json(&["lineage", "fraud@2", "--json"]);
    assert!(child.get("code").is_none(), "--no-git records no code");

    env.fails(
        1,
        &["push", "model", "--model", "fraud", "--parent", "fraud@7"],
    );
    env.fails(
        1,
        &[
            "push",
            "model",
            "--model",
            "fraud",
            "--parent",
            "fraud@production",
        ],
    );
    env.fails(2, &["versions"]);
}

fn model_card_shows_metadata_lineage_files_and_alias_history(mode: Mode) {
    let env = Env::new(mode);
    model_dir(&env);
    write(&env.path("requirements.txt"), b"torch==2.9.0\n");
    env.ok(&[
        "push",
        "model",
        "--model",
        "fraud",
        "--description",
        "Fraud scorer",
        "--metric",
        "auc=0.91",
        "--param",
        "depth=6",
        "--env",
        "requirements.txt",
        "--no-git",
    ]);
    write(&env.path("model/model.onnx"), b"v2 weights");
    env.ok(&[
        "push", "model", "--model", "fraud", "--parent", "fraud@1", "--no-git",
    ]);
    env.ok(&[
        "promote",
        "fraud@1",
        "--to",
        "production",
        "--reason",
        "launch",
    ]);
    env.ok(&["promote", "fraud@2", "--to", "production"]);

    let card = env.ok(&["card", "fraud@1"]);
    let shown = env.json(&["show", "fraud@1", "--json"]);
    assert!(card.starts_with("# Model card: fraud@1"), "{card}");
    assert!(card.contains(shown["digest"].as_str().unwrap()), "{card}");
    assert!(card.contains("Fraud scorer"));
    assert!(
        card.contains("| auc | 0.91 |") && card.contains("| depth | 6 |"),
        "{card}"
    );
    assert!(
        card.contains("- environment: requirements.txt `sha256:"),
        "{card}"
    );
    for f in shown["files"].as_array().unwrap() {
        assert!(
            card.contains(f["sha256"].as_str().unwrap()),
            "every file's digest: {card}"
        );
    }
    assert!(
        card.contains("| production | - | 1 | set | tester |"),
        "{card}"
    );
    assert!(
        card.contains("| production | 1 | 2 | set | tester |"),
        "{card}"
    );

    let child = env.json(&["card", "fraud@production", "--format", "json"]);
    assert_eq!(child["version"]["version"], 2);
    assert_eq!(child["lineage"]["parents"][0]["model"], "fraud");
    assert_eq!(
        child["alias_history"]["production"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    env.fails(1, &["card", "fraud@9"]);
    env.fails(2, &["card", "fraud@1", "--format", "pdf"]);
}

fn sha256sum(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()[..64].to_owned()
}

fn assert_same_tree(a: &Path, b: &Path) {
    let out = Command::new("diff")
        .arg("-r")
        .arg(a)
        .arg(b)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "diff -r {} {}: {}",
        a.display(),
        b.display(),
        String::from_utf8_lossy(&out.stdout)
    );
}

#[path = "e2e/hostile.rs"]
mod hostile;

#[path = "e2e/auth.rs"]
mod auth;

#[path = "e2e/diff.rs"]
mod diff;
use diff::diff_reports_exactly_what_changed;
use hostile::{
    manifest_rows_edited_behind_the_registrys_back_are_found,
    pull_never_writes_outside_its_directory, pull_never_writes_through_a_link,
};

macro_rules! in_both_modes {
    ($($scenario:ident),* $(,)?) => {
        mod embedded {
            $( #[test] fn $scenario() { super::$scenario(super::Mode::Embedded) } )*
        }
        mod server {
            $( #[test] fn $scenario() { super::$scenario(super::Mode::Server) } )*
        }
    };
}

in_both_modes!(
    push_dedup_and_pull_round_trip,
    single_file_push_keeps_its_name,
    promote_rollback_and_history,
    verify_detects_corruption_and_pull_refuses_it,
    concurrent_pushes_get_distinct_gap_free_versions,
    bad_input_gets_clear_errors,
    delete_version_and_model,
    large_file_streams_through,
    audit_log_records_each_change_and_detects_tampering,
    gc_frees_what_deleted_versions_alone_used,
    lineage_from_git_dvc_data_and_parents,
    model_card_shows_metadata_lineage_files_and_alias_history,
    pull_never_writes_outside_its_directory,
    pull_never_writes_through_a_link,
    manifest_rows_edited_behind_the_registrys_back_are_found,
    diff_reports_exactly_what_changed,
);

#[test]
fn server_shuts_down_gracefully_on_sigterm() {
    let mut env = Env::new(Mode::Server);
    let server = env.server.take().unwrap();
    let pid = server.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = server.wait_with_output().unwrap();
    assert!(out.status.success(), "server exited with {:?}", out.status);
}

#[test]
fn default_data_dir_is_cairn_home() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("w.bin"), b"x");
    let home = dir.path().join("home");
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["push", "w.bin", "--model", "m"])
        .env_remove("CAIRN_REGISTRY")
        .env("CAIRN_HOME", &home)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(home.join("cairn.db").exists());
    assert_eq!(files_under(&home.join("blobs/sha256")).len(), 1);
}

#[test]
fn an_unreachable_database_fails_at_once_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args([
            "--registry",
            "postgres://postgres@127.0.0.1:1/none",
            "--artifacts",
        ])
        .arg(dir.path())
        .args(["versions", "m"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("Connection refused"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "not a pool timeout"
    );
}

/// Tokens are managed against the data directory: the secret is stdout's only line,
/// never listed again, and a revoked token says so.
#[test]
fn tokens_are_created_listed_and_revoked() {
    let env = Env::new(Mode::Embedded);
    let out = env.ok(&[
        "token",
        "create",
        "--user",
        "ci",
        "--role",
        "writer",
        "--models",
        "fraud-*",
        "--expires",
        "30d",
        "--name",
        "nightly",
    ]);
    assert_eq!(out.lines().count(), 1, "{out}");
    let secret = out.trim_end();
    assert!(
        secret.starts_with("cairn_") && secret.len() == 6 + 12 + 1 + 64,
        "{secret}"
    );
    let listed = env.ok(&["token", "list"]);
    assert!(listed.contains("writer") && listed.contains("fraud-*") && listed.contains("nightly"));
    assert!(!listed.contains(&secret[19..]), "a listing shows a secret");
    let tokens = env.json(&["token", "list", "--json"]);
    let id = tokens[0]["id"].as_str().unwrap().to_owned();
    assert!(secret.contains(&id) && tokens[0]["revoked_at"].is_null());
    env.ok(&["token", "revoke", &id]);
    assert!(!env.json(&["token", "list", "--json"])[0]["revoked_at"].is_null());
    let audit = env.ok(&["audit", "log"]);
    assert!(
        audit.contains("token.create") && audit.contains("token.revoke"),
        "{audit}"
    );
    // Bad input is a usage error.
    env.fails(2, &["token", "create", "--user", "ci", "--role", "root"]);
    env.fails(2, &["token", "create", "--user", "ci", "--models", r"a\b"]);
}

/// Without authentication the server serves this machine only: a network address is
/// refused (exit 2, one line saying how to serve it anyway) before anything is opened.
#[test]
fn a_network_address_without_authentication_is_refused() {
    let env = Env::new(Mode::Embedded);
    let data = env.path("elsewhere");
    let data = data.to_str().unwrap();
    let err = env.fails(
        2,
        &["server", "--host", "0.0.0.0", "--port", "0", "--data", data],
    );
    assert!(err.contains("--insecure-no-auth"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        !std::path::Path::new(data).exists(),
        "the refused server opened its data"
    );
}
