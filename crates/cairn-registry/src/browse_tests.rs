//! Browsing reads on both engines: versions sorted by a metric a page at a time (those
//! without it last, pages spanning the boundary), the alias timeline, audit pages
//! filtered by target, actor and action family.

use cairn_core::access::Actor;
use cairn_core::model::AliasAction;
use cairn_core::{AliasName, ModelName};

use crate::test_support::{conformance, registry};
use crate::tests::stage;
use crate::{AliasTarget, AuditFilter, VersionOrigin, VersionSort};

async fn sorted_pages_timeline_and_audit_pages() {
    let (_dir, r) = registry().await;
    let ada = Actor::unrestricted("ada");
    let bob = Actor::unrestricted("bob");
    let m = ModelName::new("fraud").unwrap();
    // v1..v7: auc on the odd ones only (v1 0.5, v3 0.9, v5 0.7, v7 0.9).
    let auc = [Some(0.5), None, Some(0.9), None, Some(0.7), None, Some(0.9)];
    for (i, value) in auc.iter().enumerate() {
        let mut new = stage(&r, &[("model.bin", &[i as u8])]).await;
        if let Some(v) = value {
            new.metrics.insert("auc".into(), *v);
        }
        let who = if i % 2 == 0 { &ada } else { &bob };
        r.register_version(who, &m, &new, &VersionOrigin::default())
            .await
            .unwrap();
    }
    let numbers = |versions: Vec<cairn_core::Version>| -> Vec<u64> {
        versions.iter().map(|v| v.version).collect()
    };
    let by_auc = VersionSort::Metric("auc".into());
    let all = r.versions_sorted(&m, &by_auc, true, 0, 100).await.unwrap();
    // Ties in value: the newest first; without the metric: last, newest first.
    assert_eq!(numbers(all), [7, 3, 5, 1, 6, 4, 2]);
    let ascending = r.versions_sorted(&m, &by_auc, false, 0, 100).await.unwrap();
    assert_eq!(numbers(ascending), [1, 5, 3, 7, 6, 4, 2]);
    // A page spanning the versions with and without the metric, and one past them.
    let spanning = r.versions_sorted(&m, &by_auc, true, 3, 2).await.unwrap();
    assert_eq!(numbers(spanning), [1, 6]);
    let beyond = r.versions_sorted(&m, &by_auc, true, 5, 10).await.unwrap();
    assert_eq!(numbers(beyond), [4, 2]);
    let newest = r
        .versions_sorted(&m, &VersionSort::Number, true, 2, 3)
        .await
        .unwrap();
    assert_eq!(numbers(newest), [5, 4, 3]);
    assert_eq!(r.recent_metric_keys(&m, 10).await.unwrap(), ["auc"]);

    let production = AliasName::new("production").unwrap();
    for target in [
        AliasTarget::Version(1),
        AliasTarget::Version(3),
        AliasTarget::PreviousVersion,
    ] {
        r.move_alias(&ada, &m, &production, target, Some("why"))
            .await
            .unwrap();
    }
    let timeline = r.alias_timeline(&m, 10).await.unwrap();
    let moves: Vec<_> = timeline.iter().map(|t| (t.from, t.to, t.action)).collect();
    assert_eq!(
        moves,
        [
            (Some(3), Some(1), AliasAction::Rollback),
            (Some(1), Some(3), AliasAction::Set),
            (None, Some(1), AliasAction::Set),
        ]
    );

    let page = |filter: AuditFilter, before| {
        let r = r.clone();
        async move { r.audit_page(&filter, before, 100).await.unwrap() }
    };
    let of_v3 = page(
        AuditFilter {
            target: Some("fraud@3".into()),
            ..AuditFilter::default()
        },
        None,
    )
    .await;
    assert_eq!(of_v3.len(), 1);
    assert_eq!(of_v3[0].action, "version.create");
    let by_bob = page(
        AuditFilter {
            actor: Some("bob".into()),
            ..AuditFilter::default()
        },
        None,
    )
    .await;
    assert_eq!(by_bob.len(), 3, "{by_bob:?}");
    let alias_family = page(
        AuditFilter {
            action: Some("alias".into()),
            ..AuditFilter::default()
        },
        None,
    )
    .await;
    assert_eq!(alias_family.len(), 3);
    assert!(alias_family.iter().all(|e| e.action.starts_with("alias.")));
    assert!(
        alias_family.windows(2).all(|w| w[0].seq > w[1].seq),
        "newest first"
    );
    let older = page(AuditFilter::default(), Some(alias_family[2].seq)).await;
    assert!(older.iter().all(|e| e.seq < alias_family[2].seq) && older.len() == 7);
    assert!(r.audit_status().await.unwrap().ok());
}

conformance!(sorted_pages_timeline_and_audit_pages);
