//! Promotion policies on both engines: a move that breaks a policy is refused with
//! every unmet rule, through alias moves and MLflow stages alike; approvals come from
//! others than the author; a rollback skips the rules; every step is audited.

use cairn_core::access::{Actor, Authority, Grant};
use cairn_core::auth::Role;
use cairn_core::policy::Policy;
use cairn_core::{AliasName, ModelName};

use crate::test_support::{conformance, registry};
use crate::tests::stage;
use crate::{AliasTarget, Error, Registry, VersionOrigin};

fn person(name: &str, role: Role) -> Actor {
    Actor {
        name: name.into(),
        token: None,
        authority: Authority::Grants(vec![Grant {
            models: None,
            experiment: None,
            role: Some(role),
        }]),
    }
}

async fn version(r: &Registry, by: &Actor, model: &ModelName, content: &str, auc: f64) -> u64 {
    let mut new = stage(r, &[("model.onnx", content.as_bytes())]).await;
    new.metrics.insert("auc".into(), auc);
    r.register_version(by, model, &new, &VersionOrigin::default())
        .await
        .unwrap()
        .version
}

async fn a_promotion_meets_every_rule_and_a_rollback_skips_them() {
    let (_dir, r) = registry().await;
    let m = ModelName::new("fraud").unwrap();
    let prod = AliasName::new("production").unwrap();
    let (ada, bob, cy, admin) = (
        person("ada", Role::Writer),
        person("bob", Role::Writer),
        person("cy", Role::Writer),
        person("root", Role::Admin),
    );
    let one = version(&r, &ada, &m, "one", 0.95).await;
    let two = version(&r, &ada, &m, "two", 0.93).await;
    r.move_alias(&ada, &m, &prod, AliasTarget::Version(one), None)
        .await
        .unwrap();

    let policy = Policy {
        require_tags: vec!["validated=true".parse().unwrap()],
        require_metrics: vec!["auc>=0.9".parse().unwrap()],
        approvals: 2,
        require_files: vec!["*.onnx".into()],
        ..Policy::default()
    };
    let refused = r
        .set_policy(&ada, "fraud", &prod, &policy)
        .await
        .unwrap_err();
    assert!(
        matches!(refused, Error::Forbidden(_)),
        "only admins set policies"
    );
    r.set_policy(&admin, "fraud", &prod, &policy).await.unwrap();

    // Neither the tag nor the approvals: both named, in one refusal; nothing moved.
    let refused = r
        .move_alias(&ada, &m, &prod, AliasTarget::Version(two), None)
        .await
        .unwrap_err();
    let Error::PolicyUnmet { unmet, .. } = &refused else {
        panic!("{refused}")
    };
    assert_eq!(unmet.len(), 2, "{unmet:?}");
    assert!(
        refused
            .to_string()
            .contains("tag validated=true is missing"),
        "{refused}"
    );
    assert_eq!(r.promotion_check(&m, &prod, two).await.unwrap(), *unmet);
    // The legacy stage door is the same alias.
    let staged = r.set_stage(&ada, &m, two, "Production", false).await;
    assert!(
        matches!(staged, Err(Error::PolicyUnmet { .. })),
        "{staged:?}"
    );

    r.set_tag(&ada, &m, Some(two), "validated", Some("true"))
        .await
        .unwrap();
    let refused = r.approve(&ada, &m, two, &prod, None).await.unwrap_err();
    assert!(refused.to_string().contains("author"), "{refused}");
    assert!(
        r.approve(&bob, &m, two, &prod, Some("looked at it"))
            .await
            .unwrap()
    );
    assert!(
        !r.approve(&bob, &m, two, &prod, None).await.unwrap(),
        "one approval per actor"
    );
    let unmet = r.promotion_check(&m, &prod, two).await.unwrap();
    assert_eq!(
        unmet,
        ["2 approval(s) needed from someone other than its author, 1 given"]
    );
    r.approve(&cy, &m, two, &prod, None).await.unwrap();
    assert!(r.promotion_check(&m, &prod, two).await.unwrap().is_empty());
    r.move_alias(&ada, &m, &prod, AliasTarget::Version(two), None)
        .await
        .unwrap()
        .unwrap();

    // A rollback is the escape hatch: version one has no tag and no approvals.
    r.move_alias(&ada, &m, &prod, AliasTarget::PreviousVersion, None)
        .await
        .unwrap()
        .unwrap();
    // A pattern's policy governs every model it matches, and adds its rules.
    let strict = Policy {
        require_metrics: vec!["auc>=0.99".parse().unwrap()],
        ..Policy::default()
    };
    let refused = r
        .set_policy(&person("owner", Role::Writer), "*", &prod, &strict)
        .await;
    assert!(matches!(refused, Err(Error::Forbidden(_))));
    r.set_policy(&admin, "*", &prod, &strict).await.unwrap();
    let unmet = r.promotion_check(&m, &prod, two).await.unwrap();
    assert_eq!(unmet, ["metric auc>=0.99 is not met (auc is 0.93)"]);
    assert!(r.delete_policy(&admin, "*", &prod).await.unwrap());
    assert!(!r.delete_policy(&admin, "*", &prod).await.unwrap());

    let actions: Vec<String> = r
        .audit_log(None, None)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    for expected in [
        "policy.set",
        "version.approve",
        "alias.set",
        "alias.rollback",
        "policy.delete",
    ] {
        assert!(
            actions.iter().any(|a| a == expected),
            "{expected} not in {actions:?}"
        );
    }
    assert!(r.verify_audit(None).await.unwrap().broken.is_none());
}

conformance!(a_promotion_meets_every_rule_and_a_rollback_skips_them,);
