//! Fuzz-style property tests of everything that parses untrusted text: MLflow filter
//! strings, manifests and their paths, `NAME@REF`. Each property runs `CAIRN_FUZZ_CASES`
//! random inputs (default 20,000: a few seconds each) and, first, the corpus of inputs
//! that once broke or nearly broke a parser (`CORPUS`, and proptest's own record of
//! failures in `tests/fuzz-regressions.txt`, replayed before new cases). Run longer with
//! `CAIRN_FUZZ_CASES=2000000 cargo test -p cairn-core --release --test fuzz`.

use std::str::FromStr;

use cairn_core::manifest::validate_path;
use cairn_core::search::{Value, parse_filter, parse_order_by};
use cairn_core::{FileEntry, Manifest, ModelName, ModelVersionRef, Sha256Digest, VersionRef};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

fn config() -> ProptestConfig {
    let cases = std::env::var("CAIRN_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/fuzz-regressions.txt",
        ))),
        ..ProptestConfig::default()
    }
}

/// Inputs that broke, or were written to break, a parser: traversal in every spelling,
/// NULs, quotes and SQL, numbers past 64 bits, odd Unicode.
const CORPUS: &[&str] = &[
    "",
    "..",
    "../../etc/passwd",
    "a/../b",
    "%2e%2e/x",
    "..%2f..%2f",
    "/abs",
    "\\\\server\\share",
    "a\\..\\b",
    "a\u{0}b",
    "\u{ff0e}\u{ff0e}/x",
    "\u{2024}\u{2024}/x",
    "a//b",
    "./a",
    "a/.",
    "名前/ü",
    "x@y@3",
    "@",
    "m@",
    "m@-1",
    "m@18446744073709551616",
    "m@9223372036854775808",
    "metrics.acc > 1e309",
    "metrics.acc > NaN",
    "params.p = '1' OR 1=1 --'",
    "tags.t = ''; DROP TABLE models; --'",
    "name LIKE '%",
    "attributes.status IN ('A', ",
    "metrics.`a b` >= -0",
    "tags.\"x\" = \"y\"",
    "name = 'a' AND",
    "AND AND AND",
    "metrics.m < 2 and params.p != 'x' and tags.t ilike '%a%'",
];

/// A manifest path made of path-ish pieces, so that accepted ones are common.
fn pathish() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("..".to_owned()),
        Just(".".to_owned()),
        Just(String::new()),
        Just("\\".to_owned()),
        Just("\u{0}".to_owned()),
        Just("名".to_owned()),
        "[a-z0-9_.-]{1,12}",
        any::<String>(),
    ];
    (proptest::collection::vec(piece, 1..6), any::<bool>()).prop_map(|(pieces, absolute)| {
        let joined = pieces.join("/");
        if absolute {
            format!("/{joined}")
        } else {
            joined
        }
    })
}

fn assert_safe(path: &str) {
    assert!(!path.is_empty() && !path.starts_with('/'), "{path:?}");
    assert!(
        !path.contains('\\') && !path.chars().any(char::is_control),
        "{path:?}"
    );
    assert!(
        path.split('/')
            .all(|s| !s.is_empty() && s != "." && s != ".."),
        "{path:?}"
    );
}

#[test]
fn the_corpus_never_panics_a_parser() {
    for input in CORPUS {
        let _ = parse_filter(input);
        let _ = parse_order_by(input);
        let _ = ModelVersionRef::from_str(input);
        let _ = VersionRef::from_str(input);
        if validate_path(input).is_ok() {
            assert_safe(input);
        }
    }
    // What a quoted value holds is a value, whatever it says.
    let parsed = parse_filter("tags.t = ''; DROP TABLE models; --'").unwrap_or_default();
    assert!(parsed.len() <= 1);
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn filters_parse_or_refuse_and_quoted_values_stay_values(
        input in any::<String>(),
        key in "[a-zA-Z_][a-zA-Z0-9_]{0,10}",
        value in any::<String>(),
        number in any::<f64>(),
    ) {
        let _ = parse_filter(&input);
        let _ = parse_order_by(&input);
        // A quoted value, with its quotes doubled... or refused: never split into SQL.
        let escaped = value.replace('\'', "");
        let filter = format!("tags.{key} = '{escaped}' AND metrics.{key} >= {number:e}");
        if let Ok(parsed) = parse_filter(&filter) {
            prop_assert_eq!(parsed.len(), 2);
            prop_assert_eq!(&parsed[0].value, &Value::Str(escaped.clone()));
        }
    }

    #[test]
    fn accepted_paths_stay_inside_their_directory(path in pathish()) {
        if validate_path(&path).is_ok() {
            assert_safe(&path);
        }
    }

    #[test]
    fn manifests_hold_only_safe_distinct_paths(
        files in proptest::collection::vec((pathish(), any::<u64>()), 0..8),
    ) {
        let entries: Vec<FileEntry> = files
            .iter()
            .map(|(path, size)| FileEntry { path: path.clone(), size: *size, sha256: Sha256Digest::of(path.as_bytes()) })
            .collect();
        if let Ok(manifest) = Manifest::new(entries) {
            let paths: Vec<&str> = manifest.files().iter().map(|f| f.path.as_str()).collect();
            for p in &paths {
                assert_safe(p);
            }
            let mut sorted = paths.clone();
            sorted.dedup();
            prop_assert_eq!(sorted.len(), paths.len());
            prop_assert!(manifest.total_size() <= i64::MAX as u64);
            // The JSON a server would send parses back to the same digest.
            let json = serde_json::to_string(&manifest).unwrap();
            let back: Manifest = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(back.digest(), manifest.digest());
        }
    }

    #[test]
    fn name_at_ref_round_trips(input in any::<String>(), name in "[^@/:\\x00-\\x1f]{1,40}", n in 1u64..=i64::MAX as u64) {
        let _ = ModelVersionRef::from_str(&input);
        if let Ok(model) = ModelName::new(&name) {
            for reference in [VersionRef::Number(n), VersionRef::Latest] {
                let text = format!("{model}@{reference}");
                let parsed = ModelVersionRef::from_str(&text).unwrap();
                prop_assert_eq!(parsed.model, model.clone());
                prop_assert_eq!(parsed.version, reference);
            }
        }
    }
}
