//! A registry that lies: rows edited behind its back (in server mode, a server that
//! sends them), links planted in the output directory. `pull` writes nothing outside its
//! directory and nothing at all when it refuses; `verify` names every record that
//! disagrees with its content.

use super::*;

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex(&sha2::Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Points the only file of `model`@1 at `path`, and gives the version the digest of
/// that manifest: what a compromised server would send, consistent in itself.
fn forge_path(env: &Env, model: &str, content: &[u8], path: &str) {
    let db = env.data.join("cairn.db");
    let sha = sha256_hex(content);
    let digest = sha256_hex(format!("{sha} {} {path}\n", content.len()).as_bytes());
    let version = format!(
        "(SELECT v.id FROM versions v JOIN models m ON m.id = v.model_id WHERE m.name = '{model}' AND v.number = 1)"
    );
    tamper(
        &db,
        &format!("UPDATE version_files SET path = '{path}' WHERE version_id = {version}"),
    );
    tamper(
        &db,
        &format!("UPDATE versions SET digest = '{digest}' WHERE id = {version}"),
    );
}

pub fn pull_never_writes_outside_its_directory(mode: Mode) {
    let env = Env::new(mode);
    let outside = env.path("outside");
    std::fs::create_dir(&outside).unwrap();
    for (model, path) in [
        ("up", "../escaped.bin".to_owned()),
        ("deep", "a/../../escaped.bin".to_owned()),
        ("abs", outside.join("abs.bin").display().to_string()),
    ] {
        write(&env.path("w.bin"), model.as_bytes());
        env.ok(&["push", "w.bin", "--model", model]);
        forge_path(&env, model, model.as_bytes(), &path);
        let err = env.fails(1, &["pull", &format!("{model}@1"), "-o", "out/new"]);
        assert!(err.contains("unsafe manifest"), "{path}: {err}");
        assert!(err.contains("nothing was written"), "{err}");
        assert!(
            !env.path("out").exists(),
            "{path}: a refused pull makes no directory"
        );
    }
    assert!(!env.path("escaped.bin").exists());
    assert!(files_under(&outside).is_empty());
}

pub fn pull_never_writes_through_a_link(mode: Mode) {
    let env = Env::new(mode);
    write(&env.path("model/sub/weights.bin"), b"weights");
    write(&env.path("model/top.txt"), b"top");
    env.ok(&["push", "model", "--model", "m"]);
    let outside = env.path("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::create_dir_all(env.path("out")).unwrap();
    std::os::unix::fs::symlink(&outside, env.path("out/sub")).unwrap();

    let err = env.fails(1, &["pull", "m@1", "-o", "out"]);
    assert!(err.contains("symbolic link"), "{err}");
    assert!(files_under(&outside).is_empty(), "nothing through the link");
    assert!(
        !env.path("out/top.txt").exists(),
        "a refused pull writes nothing"
    );
    let left: Vec<_> = std::fs::read_dir(env.path("out"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(
        left.len(),
        1,
        "only the planted link: no staging left behind"
    );

    // A link where a file goes is not followed either, even with --force.
    std::fs::remove_file(env.path("out/sub")).unwrap();
    let secret = outside.join("secret");
    write(&secret, b"secret");
    std::os::unix::fs::symlink(&secret, env.path("out/top.txt")).unwrap();
    let err = env.fails(1, &["pull", "m@1", "-o", "out", "--force"]);
    assert!(err.contains("not a regular file"), "{err}");
    assert_eq!(std::fs::read(&secret).unwrap(), b"secret");
}

pub fn manifest_rows_edited_behind_the_registrys_back_are_found(mode: Mode) {
    let env = Env::new(mode);
    write(&env.path("model/a.bin"), b"aaaa");
    write(&env.path("model/b.bin"), b"bbbbbbbb");
    env.ok(&["push", "model", "--model", "m"]);
    env.ok(&["push", "model", "--model", "shares"]);
    env.ok(&["verify", "--all"]);
    let db = env.data.join("cairn.db");
    let m1 = "(SELECT v.id FROM versions v JOIN models m ON m.id = v.model_id WHERE m.name = 'm')";

    // a.bin now names b.bin's blob (and size): every blob is intact, the rows lie.
    tamper(
        &db,
        &format!(
            "UPDATE version_files SET sha256 = '{}', size = 8 WHERE path = 'a.bin' AND version_id = {m1}",
            sha256_hex(b"bbbbbbbb")
        ),
    );
    let out = env.run(&["verify", "m@1", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["problems"],
        serde_json::json!([]),
        "the blobs are intact"
    );
    assert_eq!(report["records"][0]["record"], "m@1", "{report}");
    assert!(
        report["records"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("recorded digest"),
        "{report}"
    );
    env.ok(&["verify", "shares@1"]);
    let err = env.fails(1, &["pull", "m@1", "-o", "out"]);
    assert!(err.contains("does not hash to its digest"), "{err}");
    assert!(!env.path("out").exists());

    // Put back, then rename a file: caught the same way.
    tamper(
        &db,
        &format!(
            "UPDATE version_files SET sha256 = '{}', size = 4 WHERE path = 'a.bin' AND version_id = {m1}",
            sha256_hex(b"aaaa")
        ),
    );
    env.ok(&["verify", "--all"]);
    tamper(
        &db,
        &format!(
            "UPDATE version_files SET path = 'c.bin' WHERE path = 'a.bin' AND version_id = {m1}"
        ),
    );
    let out = env.run(&["verify", "--all"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("m@1") && !stdout.contains("shares@1"),
        "{stdout}"
    );

    // A size edited consistently with the digest (as if registered so): the row is
    // named, not the intact versions sharing the blob.
    tamper(
        &db,
        &format!(
            "UPDATE version_files SET path = 'a.bin', size = 999 WHERE path = 'c.bin' AND version_id = {m1}"
        ),
    );
    let out = env.run(&["verify", "--all", "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let records = report["records"].to_string();
    assert!(
        records.contains("m@1 file a.bin") && records.contains("999 bytes declared"),
        "{report}"
    );
    assert!(!records.contains("shares@1"), "{report}");
    assert_eq!(report["problems"], serde_json::json!([]), "{report}");
}
