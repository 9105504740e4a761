//! Authentication as a new user meets it: an admin token made against a fresh data
//! directory, `cairn server --auth` on a network address, then every role at work
//! through the CLI (`CAIRN_TOKEN`, or the 0600 token file).

use super::*;

/// A server over `env`'s data directory, with authentication on unless told otherwise.
struct AuthServer {
    child: Child,
    url: String,
}

impl AuthServer {
    fn start(env: &Env) -> Self {
        Self::with(env, &["--auth", "--host", "0.0.0.0"])
    }

    /// With `flags`; `url` is reached through loopback, in the scheme the server says.
    fn with(env: &Env, flags: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args(["server", "--port", "0", "--data"])
            .arg(&env.data)
            .args(flags)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .rsplit(':')
            .find_map(|w| w.split_whitespace().next()?.parse::<u16>().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        let scheme = if line.contains("https://") {
            "https"
        } else {
            "http"
        };
        Self {
            child,
            url: format!("{scheme}://127.0.0.1:{port}"),
        }
    }
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `cairn` against the server, with `token` (or none).
fn as_(env: &Env, server: &AuthServer, token: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = env.command(args);
    cmd.env("CAIRN_REGISTRY", &server.url);
    if let Some(token) = token {
        cmd.env("CAIRN_TOKEN", token);
    }
    cmd.output().unwrap()
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Expects exit 1 and an error naming `words`.
fn refused(out: Output, words: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(words), "expected {words:?} in: {stderr}");
}

#[test]
fn roles_tokens_and_protected_aliases_as_a_new_user_meets_them() {
    let env = Env::new(Mode::Embedded);
    // Bootstrap: the first admin token, made against the fresh data directory.
    let admin = env.ok(&["token", "create", "--user", "ada", "--role", "admin"]);
    let admin = admin.trim();
    let server = AuthServer::start(&env);
    let model = env.path("model");
    std::fs::create_dir(&model).unwrap();
    write(&model.join("weights.bin"), b"weights v1");

    // Anonymous: nothing, not even a listing.
    refused(
        as_(&env, &server, None, &["models", "list"]),
        "authentication required",
    );
    refused(
        as_(
            &env,
            &server,
            Some("cairn_000000000000_00"),
            &["models", "list"],
        ),
        "unknown, revoked or expired",
    );

    // The admin makes tokens through the server; stdout is the secret alone.
    let create = |user: &str, role: &str, extra: &[&str]| {
        let mut args = vec!["token", "create", "--user", user, "--role", role];
        args.extend_from_slice(extra);
        let secret = ok(as_(&env, &server, Some(admin), &args));
        assert_eq!(secret.lines().count(), 1);
        secret.trim().to_owned()
    };
    let reader = create("rita", "reader", &[]);
    let writer = create("wendy", "writer", &[]);
    let fraud = create("fred", "writer", &["--models", "fraud-*"]);
    let brief = create("bea", "writer", &["--expires", "1s"]);
    // Only an admin manages tokens.
    refused(
        as_(&env, &server, Some(&writer), &["token", "list"]),
        "admin role",
    );

    let push = |token: &str, name: &str| {
        as_(
            &env,
            &server,
            Some(token).filter(|t| !t.is_empty()),
            &["push", model.to_str().unwrap(), "--model", name],
        )
    };
    refused(push(&reader, "churn"), "needs the writer role");
    ok(push(&writer, "churn"));
    write(&model.join("weights.bin"), b"weights v2");
    ok(push(&writer, "churn"));
    ok(push(&fraud, "fraud-cards"));
    refused(push(&fraud, "churn"), "model \"churn\"");
    // A token limited to fraud-* cannot read churn, nor see it listed.
    refused(
        as_(&env, &server, Some(&fraud), &["show", "churn@1"]),
        "reader role on model \"churn\"",
    );
    let listed = ok(as_(&env, &server, Some(&fraud), &["models", "list"]));
    assert!(
        listed.contains("fraud-cards") && !listed.contains("churn"),
        "{listed}"
    );

    // production is protected before it points anywhere: the writer cannot promote,
    // the admin can; other aliases stay the writer's.
    refused(
        as_(
            &env,
            &server,
            Some(&writer),
            &["alias", "protect", "churn", "production"],
        ),
        "admin role",
    );
    ok(as_(
        &env,
        &server,
        Some(admin),
        &["alias", "protect", "churn", "production"],
    ));
    refused(
        as_(
            &env,
            &server,
            Some(&writer),
            &["promote", "churn@1", "--to", "production"],
        ),
        "needs the admin role on model \"churn\"",
    );
    ok(as_(
        &env,
        &server,
        Some(admin),
        &["promote", "churn@1", "--to", "production"],
    ));
    ok(as_(
        &env,
        &server,
        Some(admin),
        &["promote", "churn@2", "--to", "production"],
    ));
    refused(
        as_(
            &env,
            &server,
            Some(&writer),
            &["rollback", "churn", "production"],
        ),
        "admin role",
    );
    ok(as_(
        &env,
        &server,
        Some(&writer),
        &["promote", "churn@2", "--to", "staging"],
    ));
    let protected = ok(as_(
        &env,
        &server,
        Some(&reader),
        &["alias", "protected", "churn"],
    ));
    assert_eq!(protected.trim(), "production");

    // Revoked and expired tokens stop working (revocation within a second).
    let tokens = serde_json::from_str::<Value>(&ok(as_(
        &env,
        &server,
        Some(admin),
        &["token", "list", "--json"],
    )))
    .unwrap();
    let wendy = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["user"] == "wendy")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    ok(as_(
        &env,
        &server,
        Some(admin),
        &["token", "revoke", &wendy],
    ));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    refused(push(&writer, "churn"), "unknown, revoked or expired");
    refused(push(&brief, "churn"), "unknown, revoked or expired");

    // The log names the authenticated users, never the declared actor ("tester").
    let log = ok(as_(&env, &server, Some(admin), &["audit", "log", "--json"]));
    let log: Value = serde_json::from_str(&log).unwrap();
    let by: Vec<(String, String)> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap().into(),
                e["action"].as_str().unwrap().into(),
            )
        })
        .collect();
    for expected in [
        ("wendy", "version.create"),
        ("fred", "version.create"),
        ("ada", "alias.protect"),
        ("ada", "alias.set"),
        ("wendy", "alias.set"),
        ("ada", "token.revoke"),
    ] {
        assert!(
            by.iter().any(|(a, b)| (a.as_str(), b.as_str()) == expected),
            "{expected:?} not in {by:?}"
        );
    }
    // Refused writes are in the security log, not in the audit log.
    refused(push("", "churn"), "authentication required");
    // (Recorded by the server's log writer a moment after the refusal.)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let denied = ok(as_(
            &env,
            &server,
            Some(admin),
            &["audit", "denied", "--json"],
        ));
        let denied: Vec<Value> = serde_json::from_str(&denied).unwrap();
        let seen = |user: Option<&str>, status: u64| {
            denied
                .iter()
                .any(|d| d["user"].as_str() == user && d["status"] == status)
        };
        // Also the protected alias the registry refused (past the guard).
        let protected = denied.iter().any(|d| {
            d["user"] == "wendy" && d["path"].as_str().unwrap().ends_with("/aliases/production")
        });
        let all = seen(Some("rita"), 403) && seen(Some("fred"), 403) && protected;
        if all && seen(Some("wendy"), 403) && seen(None, 401) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{denied:?}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let text = ok(as_(&env, &server, Some(admin), &["audit", "denied"]));
    assert!(
        text.contains("anonymous") && text.contains("rita (token "),
        "{text}"
    );
    refused(
        as_(&env, &server, Some(&reader), &["audit", "denied"]),
        "admin role",
    );

    // Only the bootstrap, made against the data directory, carries the local name.
    assert!(
        by.iter().skip(1).all(|(actor, _)| actor != "tester"),
        "{by:?}"
    );
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .skip(1)
            .all(|e| e["token"].is_string())
    );
}

/// A token file readable by others is refused; at 0600 it is used.
#[cfg(unix)]
#[test]
fn the_token_file_must_be_private() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new(Mode::Embedded);
    let admin = env.ok(&["token", "create", "--user", "ada", "--role", "admin"]);
    let server = AuthServer::start(&env);
    let file = env.path("config/cairn/token");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, &admin).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    refused(as_(&env, &server, None, &["models", "list"]), "chmod 600");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    ok(as_(&env, &server, None, &["models", "list"]));
}

/// `--tls-cert`/`--tls-key`: the server speaks HTTPS only, and the CLI trusts a private
/// authority through `CAIRN_CA_CERT`.
#[test]
fn the_server_serves_https_with_a_given_certificate() {
    let env = Env::new(Mode::Embedded);
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cert, key) = (env.path("cert.pem"), env.path("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let (cert_arg, key_arg) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let server = AuthServer::with(&env, &["--tls-cert", cert_arg, "--tls-key", key_arg]);
    let url = server.url.clone();
    assert!(url.starts_with("https://"), "{url}");
    let run = |registry: &str, ca: Option<&Path>| {
        let mut cmd = env.command(&["models", "list"]);
        cmd.env("CAIRN_REGISTRY", registry);
        if let Some(ca) = ca {
            cmd.env("CAIRN_CA_CERT", ca);
        }
        cmd.output().unwrap()
    };
    let trusted = run(&url, Some(&cert));
    assert!(
        trusted.status.success(),
        "{}",
        String::from_utf8_lossy(&trusted.stderr)
    );
    // Without the authority, the certificate is refused; plain HTTP gets no answer.
    assert_eq!(run(&url, None).status.code(), Some(1));
    assert_eq!(
        run(&url.replace("https", "http"), None).status.code(),
        Some(1)
    );
    // A key that does not exist stops the server before it listens: exit 1, one line.
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["server", "--port", "0", "--data"])
        .arg(env.path("other"))
        .arg("--tls-cert")
        .arg(&cert)
        .args(["--tls-key", "/nonexistent/key.pem"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "it said it listens");
}

/// `cairn user`: a password from stdin (never echoed or stored in clear), grants on
/// models and experiments, denies, and their removal.
#[test]
fn users_get_passwords_and_grants() {
    use std::io::Write;
    let env = Env::new(Mode::Embedded);
    let mut child = env
        .command(&["user", "password", "paula"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"a long password\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    env.ok(&[
        "user", "grant", "paula", "--role", "writer", "--models", "fraud-*",
    ]);
    env.ok(&[
        "user",
        "grant",
        "paula",
        "--role",
        "reader",
        "--experiment",
        "7",
    ]);
    env.ok(&["user", "deny", "paula", "--models", "fraud-secret"]);
    let listed = env.ok(&["user", "list"]);
    for part in [
        "paula",
        "yes",
        "writer fraud-*",
        "reader experiment 7",
        "deny fraud-secret",
    ] {
        assert!(listed.contains(part), "{part} in {listed}");
    }
    env.ok(&["user", "revoke", "paula", "--experiment", "7"]);
    assert!(!env.ok(&["user", "list"]).contains("experiment 7"));
    env.fails(1, &["user", "revoke", "paula", "--experiment", "7"]);
    env.fails(
        2,
        &[
            "user",
            "grant",
            "paula",
            "--role",
            "writer",
            "--models",
            "x",
            "--experiment",
            "1",
        ],
    );
    let db = std::fs::read(env.data.join("cairn.db")).unwrap();
    assert!(!String::from_utf8_lossy(&db).contains("a long password"));
}
