//! Authorization inside the registry, on both engines: a protected alias moves only for
//! an admin of its model, through every door (alias moves, rollbacks, deletes, MLflow
//! stages); changes record the actor's token; entries of the first audit format keep
//! verifying next to the current one.

use cairn_core::access::{Actor, Authority, Grant};
use cairn_core::auth::{ModelPattern, Role};
use cairn_core::{AliasName, ModelName, Sha256Digest};

use crate::test_support::{conformance, registry};
use crate::tests::stage;
use crate::{AliasTarget, Error, GrantOn, Registry, VersionOrigin};

fn holder(name: &str, role: Role, models: Option<&str>) -> Actor {
    Actor {
        name: name.into(),
        token: Some(format!("{name}-token")),
        authority: Authority::Grants(vec![Grant {
            models: models.map(|p| ModelPattern::new(p).unwrap()),
            experiment: None,
            role: Some(role),
        }]),
    }
}

async fn two_versions(r: &Registry, model: &ModelName, by: &Actor) {
    for content in ["one", "two"] {
        let new = stage(r, &[("w.bin", content.as_bytes())]).await;
        r.register_version(by, model, &new, &VersionOrigin::default())
            .await
            .unwrap();
    }
}

async fn a_protected_alias_moves_only_for_admins_of_its_model() {
    let (_dir, r) = registry().await;
    let m = ModelName::new("fraud-detector").unwrap();
    let prod = AliasName::new("production").unwrap();
    let writer = holder("wendy", Role::Writer, None);
    let model_admin = holder("ada", Role::Admin, Some("fraud-*"));
    two_versions(&r, &m, &writer).await;

    // Protecting is for admins; it works before the alias points anywhere.
    let refused = r.protect_alias(&writer, &m, &prod, true).await.unwrap_err();
    assert!(matches!(refused, Error::Forbidden(_)), "{refused}");
    assert!(
        r.protect_alias(&model_admin, &m, &prod, true)
            .await
            .unwrap()
    );
    assert!(
        !r.protect_alias(&model_admin, &m, &prod, true)
            .await
            .unwrap()
    );
    assert_eq!(r.protected_aliases(&m).await.unwrap(), ["production"]);

    let set = |who, n| r.move_alias(who, &m, &prod, AliasTarget::Version(n), None);
    let refused = set(&writer, 1).await.unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("needs the admin role on model \"fraud-detector\""),
        "{refused}"
    );
    set(&model_admin, 1).await.unwrap().unwrap();
    set(&model_admin, 2).await.unwrap().unwrap();
    for target in [AliasTarget::PreviousVersion, AliasTarget::Remove] {
        let refused = r.move_alias(&writer, &m, &prod, target, None).await;
        assert!(matches!(refused, Err(Error::Forbidden(_))), "{target:?}");
    }
    // The legacy stage is the same alias: a writer cannot move a version into or out
    // of stage Production, but may use other stages.
    let refused = r.set_stage(&writer, &m, 1, "Production", false).await;
    assert!(matches!(refused, Err(Error::Forbidden(_))));
    r.set_stage(&model_admin, &m, 2, "Production", true)
        .await
        .unwrap();
    r.set_stage(&writer, &m, 1, "Staging", false).await.unwrap();
    for stage in ["Archived", "Staging"] {
        let refused = r.set_stage(&writer, &m, 2, stage, false).await;
        assert!(matches!(refused, Err(Error::Forbidden(_))), "{stage}");
    }

    // Renaming it (into names other admins hold) takes an admin of the model while an
    // alias is protected.
    let elsewhere = ModelName::new("fraud-renamed").unwrap();
    let refused = r.rename_model(&writer, &m, &elsewhere).await;
    assert!(matches!(refused, Err(Error::Forbidden(_))));

    // Other aliases stay the writer's to move; unprotected, production is too.
    r.move_alias(
        &writer,
        &m,
        &AliasName::new("candidate").unwrap(),
        AliasTarget::Version(2),
        None,
    )
    .await
    .unwrap();
    assert!(
        r.protect_alias(&model_admin, &m, &prod, false)
            .await
            .unwrap()
    );
    set(&writer, 1).await.unwrap().unwrap();

    // The log names who did each change and with which token.
    let log = r.audit_log(Some("fraud-detector"), None).await.unwrap();
    let protect = log.iter().find(|e| e.action == "alias.protect").unwrap();
    assert_eq!(
        (protect.actor.as_str(), protect.token.as_deref()),
        ("ada", Some("ada-token"))
    );
    assert!(log.iter().all(|e| e.format == 2 && e.token.is_some()));
    assert!(r.verify_audit(None).await.unwrap().broken.is_none());
}

/// Entries written in format 1 (before tokens were recorded) keep verifying, and an
/// entry rewritten into an older format than the one before it does not.
async fn entries_of_both_formats_verify() {
    let (_dir, r) = registry().await;
    let genesis = "0".repeat(64);
    let canonical = serde_json::json!([
        1,
        1000,
        "old-actor",
        "model.create",
        "legacy",
        "legacy",
        null,
        null,
        genesis
    ]);
    let hash = Sha256Digest::of(canonical.to_string().as_bytes()).to_hex();
    r.meta
        .write(
            "INSERT INTO audit_log (seq, at, actor, action, model, target, before, after,
                                    prev_hash, hash)
             VALUES (1, 1000, 'old-actor', 'model.create', 'legacy', 'legacy', NULL, NULL, $1, $2)",
        )
        .bind(&genesis)
        .bind(&hash)
        .execute()
        .await
        .unwrap();
    r.meta
        .write("UPDATE audit_head SET seq = 1, hash = $1 WHERE id = 1")
        .bind(&hash)
        .execute()
        .await
        .unwrap();
    two_versions(
        &r,
        &ModelName::new("m").unwrap(),
        &Actor::unrestricted("new-actor"),
    )
    .await;
    let report = r.verify_audit(None).await.unwrap();
    assert!(report.broken.is_none(), "{:?}", report.broken);
    let log = r.audit_log(None, None).await.unwrap();
    assert_eq!(log.iter().map(|e| e.format).collect::<Vec<_>>(), [1, 2, 2]);

    // Downgrading the last entry's format (to drop its token) breaks the chain there.
    r.meta
        .write("UPDATE audit_log SET format = 1 WHERE seq = 3")
        .execute()
        .await
        .unwrap();
    let broken = r.verify_audit(None).await.unwrap().broken.unwrap();
    assert_eq!(broken.seq, 3, "{}", broken.reason);
}

/// A password logs its user in with the user's own grants; a user's deny binds its
/// tokens; nothing of the password reaches the database or the log in clear.
async fn passwords_and_user_grants() {
    let (_dir, r) = registry().await;
    let admin = Actor::unrestricted("bootstrap");
    let short = r.set_password(&admin, "pat", "short").await;
    assert!(matches!(short, Err(Error::InvalidArgument(_))));
    r.set_password(&admin, "pat", "correct horse battery")
        .await
        .unwrap();
    assert_eq!(
        r.authenticate_password("pat", "wrong horse battery")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        r.authenticate_password("nobody", "correct horse battery")
            .await
            .unwrap(),
        None
    );
    let pat = r
        .authenticate_password("pat", "correct horse battery")
        .await
        .unwrap()
        .unwrap();
    assert!(
        !pat.may(Role::Reader, cairn_core::access::Scope::AnyModel),
        "no grant yet"
    );

    let fraud = ModelPattern::new("fraud-*").unwrap();
    r.grant(&admin, "pat", GrantOn::Models(&fraud), Some(Role::Writer))
        .await
        .unwrap();
    let secret_model = ModelPattern::new("fraud-secret").unwrap();
    r.grant(&admin, "pat", GrantOn::Models(&secret_model), None)
        .await
        .unwrap();
    r.grant(&admin, "pat", GrantOn::Experiment(3), Some(Role::Reader))
        .await
        .unwrap();
    let pat = r
        .authenticate_password("pat", "correct horse battery")
        .await
        .unwrap()
        .unwrap();
    use cairn_core::access::Scope::Model;
    assert!(pat.may(Role::Writer, Model("fraud-a")) && !pat.may(Role::Reader, Model("churn")));
    assert!(!pat.may(Role::Reader, Model("fraud-secret")));
    use cairn_core::access::Scope::Experiment;
    assert!(pat.may(Role::Reader, Experiment(3)) && !pat.may(Role::Reader, Experiment(4)));

    // The deny binds an admin token of the same user.
    let token = crate::NewToken {
        user: "pat".into(),
        name: String::new(),
        role: Role::Admin,
        models: None,
        lifetime: None,
    };
    let (_, secret) = r.create_token(&admin, &token).await.unwrap();
    let by_token = r.authenticate(&secret).await.unwrap().unwrap();
    assert!(by_token.may(Role::Admin, Model("churn")));
    assert!(!by_token.may(Role::Reader, Model("fraud-secret")));

    assert!(
        r.revoke_grant(&admin, "pat", GrantOn::Models(&fraud))
            .await
            .unwrap()
    );
    assert!(
        !r.revoke_grant(&admin, "pat", GrantOn::Models(&fraud))
            .await
            .unwrap()
    );
    let listed = r.list_users().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].has_password && listed[0].grants.len() == 2);
    assert!(listed[0].grants.iter().any(|g| g.experiment == Some(3)));
    let stored: Vec<(Option<String>,)> = r
        .meta
        .read("SELECT password_hash FROM principals")
        .fetch_all()
        .await
        .unwrap();
    let hash = stored[0].0.clone().unwrap();
    assert!(hash.starts_with("$argon2id$") && !hash.contains("horse"));
    let log = r.audit_log(None, None).await.unwrap();
    assert!(log.iter().any(|e| e.action == "user.password"));
    assert!(!serde_json::to_string(&log).unwrap().contains("horse"));
}

conformance!(
    a_protected_alias_moves_only_for_admins_of_its_model,
    entries_of_both_formats_verify,
    passwords_and_user_grants,
);
