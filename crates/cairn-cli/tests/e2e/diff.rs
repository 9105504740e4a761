//! `cairn diff`: two versions differing in one file, one renamed file, two metrics and
//! the data digest are reported as exactly that, as a table and as JSON; exit 0 unless
//! `--exit-code` and they differ.

use super::*;

pub(super) fn diff_reports_exactly_what_changed(mode: Mode) {
    let env = Env::new(mode);
    let model = env.path("model");
    std::fs::create_dir_all(model.join("data")).unwrap();
    write(&model.join("model.onnx"), b"weights-1");
    write(&model.join("config.json"), b"{}");
    write(&model.join("notes.txt"), b"same");
    write(&env.path("train.csv"), b"a,b\n1,2\n");
    let push = |metrics: [&str; 3]| {
        let mut args = vec!["push", "model", "--model", "fraud", "--data", "train.csv"];
        for m in &metrics {
            args.extend(["--metric", m]);
        }
        env.ok(&args);
    };
    push(["auc=0.8", "loss=0.5", "f1=0.7"]);
    write(&model.join("model.onnx"), b"weights-2!");
    std::fs::rename(model.join("config.json"), model.join("settings.json")).unwrap();
    write(&env.path("train.csv"), b"a,b\n1,2\n3,4\n");
    push(["auc=0.9", "loss=0.4", "f1=0.7"]);

    let d = env.json(&["diff", "fraud@1", "fraud@2", "--json"]);
    assert_eq!(d["differ"], true);
    let keys: Vec<&str> = d["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["auc", "loss"]);
    assert_eq!(d["files"]["changed"][0]["path"], "model.onnx");
    assert_eq!(d["files"]["changed"].as_array().unwrap().len(), 1);
    assert_eq!(d["files"]["renamed"][0]["from"], "config.json");
    assert_eq!(d["files"]["renamed"][0]["to"], "settings.json");
    assert_eq!(d["files"]["added"].as_array().unwrap().len(), 0);
    assert_eq!(d["files"]["removed"].as_array().unwrap().len(), 0);
    assert_eq!(d["files"]["unchanged"], 1);
    assert_eq!(d["lineage"]["data"]["changed"].as_array().unwrap().len(), 1);
    assert!(d["params"]["changed"].as_array().unwrap().is_empty());

    let table = env.ok(&["diff", "fraud@1", "fraud@2"]);
    for expected in [
        "auc",
        "+0.1",
        "(+12.5%)",
        "~ model.onnx",
        "> config.json -> settings.json",
        "1 unchanged",
        "~ data",
    ] {
        assert!(table.contains(expected), "{expected:?} not in:\n{table}");
    }
    assert!(
        !table.contains("f1"),
        "an unchanged metric is listed:\n{table}"
    );

    // Exit codes: 0 either way; with --exit-code, 1 when they differ, 0 when not.
    assert_eq!(
        env.run(&["diff", "fraud@1", "fraud@2", "--exit-code"])
            .status
            .code(),
        Some(1)
    );
    let same = env.run(&["diff", "fraud@2", "fraud@latest", "--exit-code"]);
    assert_eq!(same.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&same.stdout).contains("no differences"));
    // Listings print every version unless --limit is given.
    let all = env.json(&["versions", "fraud", "--json"]);
    assert_eq!(all.as_array().unwrap().len(), 2);
    let first = env.json(&["versions", "fraud", "--json", "--limit", "1"]);
    assert_eq!(first.as_array().unwrap().len(), 1);
    assert_eq!(first[0]["version"], 1);
    // A version that does not exist: a failure, said on stderr.
    let missing = env.run(&["diff", "fraud@1", "fraud@9"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("fraud@9"));
}
