//! Idempotent writes on both engines: a registration whose answer was lost, retried
//! with its key, answers the same version and writes none; a key reused for another
//! request is refused; repeats racing the first register once; a failed write leaves
//! its key free; a repeated rollback does not roll back twice. On PostgreSQL, the
//! outcome of a commit whose answer was lost is learned from its mark.

use std::time::Duration;

use cairn_core::access::Actor;
use cairn_core::api::IdempotencyKey;
use cairn_core::{AliasName, ModelName, VersionRef};

use crate::test_support::{conformance, registry};
use crate::tests::stage;
use crate::{AliasTarget, Error, FileList};

fn key(k: &str) -> IdempotencyKey {
    IdempotencyKey::new(k).unwrap()
}

async fn a_repeated_key_answers_the_first_registration() {
    let (_dir, r) = registry().await;
    let ada = Actor::unrestricted("ada");
    let m = ModelName::new("churn").unwrap();
    let new = stage(&r, &[("model.bin", b"weights")]).await;
    let first = r
        .register_version_keyed(&ada, &m, &new, &key("push-1"))
        .await
        .unwrap();
    // The answer was lost; the client sends the same request with the same key.
    let again = r
        .register_version_keyed(&ada, &m, &new, &key("push-1"))
        .await
        .unwrap();
    assert_eq!(again.version, first.version);
    assert_eq!(again.digest, first.digest);
    assert_eq!(again.created_at, first.created_at);
    assert_eq!(r.list_versions(&m).await.unwrap().len(), 1);

    // Another key is another registration; the same key of another principal too.
    let second = r
        .register_version_keyed(&ada, &m, &new, &key("push-2"))
        .await
        .unwrap();
    assert_eq!(second.version, 2);
    let bob = Actor::unrestricted("bob");
    let bobs = r
        .register_version_keyed(&bob, &m, &new, &key("push-1"))
        .await
        .unwrap();
    assert_eq!(bobs.version, 3);

    // The same key with another request is refused, and writes nothing.
    let mut other = new.clone();
    other.description = "another request".into();
    let reused = r
        .register_version_keyed(&ada, &m, &other, &key("push-1"))
        .await
        .unwrap_err();
    assert!(matches!(reused, Error::KeyReused(_)), "{reused:?}");
    assert_eq!(r.list_versions(&m).await.unwrap().len(), 3);
}

async fn repeats_racing_the_first_register_once() {
    let (_dir, r) = registry().await;
    let ada = Actor::unrestricted("ada");
    let m = ModelName::new("churn").unwrap();
    let new = stage(&r, &[("model.bin", b"weights")]).await;
    // A client that timed out and retried while its first request still ran, four times.
    let racing: Vec<_> = (0..4)
        .map(|_| {
            let (r, ada, m, new) = (r.clone(), ada.clone(), m.clone(), new.clone());
            tokio::spawn(async move {
                r.register_version_keyed(&ada, &m, &new, &key("k"))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in racing {
        answers.push(task.await.unwrap());
    }
    assert!(
        answers
            .iter()
            .all(|v| v.version == 1 && v.digest == answers[0].digest)
    );
    assert_eq!(r.list_versions(&m).await.unwrap().len(), 1);
}

async fn a_failed_write_leaves_its_key_free() {
    let (_dir, r) = registry().await;
    let ada = Actor::unrestricted("ada");
    let m = ModelName::new("churn").unwrap();
    let mut new = stage(&r, &[("model.bin", b"weights")]).await;
    new.lineage.parents = vec![cairn_core::lineage::ParentRef {
        model: "nowhere".into(),
        version: 1,
    }];
    let refused = r
        .register_version_keyed(&ada, &m, &new, &key("k"))
        .await
        .unwrap_err();
    // Nothing was stored: the retry runs again, and is refused for its own reason.
    let keys: i64 = r
        .meta
        .read("SELECT COUNT(*) FROM idempotency_keys")
        .scalar_one()
        .await
        .unwrap();
    assert_eq!(keys, 0);
    let again = r
        .register_version_keyed(&ada, &m, &new, &key("k"))
        .await
        .unwrap_err();
    assert_eq!(again.code(), refused.code());
}

async fn an_expired_key_is_forgotten() {
    let (_dir, r) = registry().await;
    let r = r.with_key_ttl(Duration::ZERO);
    let ada = Actor::unrestricted("ada");
    let m = ModelName::new("churn").unwrap();
    let new = stage(&r, &[("model.bin", b"weights")]).await;
    for expected in 1..=2 {
        let v = r
            .register_version_keyed(&ada, &m, &new, &key("k"))
            .await
            .unwrap();
        assert_eq!(v.version, expected);
    }
    r.register_version_keyed(&ada, &m, &new, &key("other"))
        .await
        .unwrap();
    assert!(r.expire_idempotency_keys().await.unwrap() >= 1);
}

async fn a_repeated_rollback_rolls_back_once() {
    let (_dir, r) = registry().await;
    let ada = Actor::unrestricted("ada");
    let m = ModelName::new("churn").unwrap();
    for i in 0..3u8 {
        let new = stage(&r, &[("model.bin", &[i])]).await;
        r.register_version(&ada, &m, &new, &Default::default())
            .await
            .unwrap();
    }
    let prod = AliasName::new("production").unwrap();
    for n in [1, 2, 3] {
        r.move_alias(&ada, &m, &prod, AliasTarget::Version(n), None)
            .await
            .unwrap();
    }
    let rb = key("rb");
    let rollback = || {
        r.move_alias_keyed(
            &ada,
            &m,
            &prod,
            AliasTarget::PreviousVersion,
            Some("bad model"),
            Some(&rb),
        )
    };
    let first = rollback().await.unwrap().expect("a move");
    let again = rollback().await.unwrap().expect("the same move");
    assert_eq!((first.from, first.to), (Some(3), Some(2)));
    assert_eq!(
        (again.from, again.to, again.at),
        (first.from, first.to, first.at)
    );
    let now = r
        .get_version(&m, &VersionRef::Alias(prod.clone()), FileList::Omitted)
        .await
        .unwrap();
    assert_eq!(now.version, 2);
    assert_eq!(r.alias_history(&m, &prod).await.unwrap().len(), 4);
}

async fn a_repeated_key_creates_one_model_and_one_webhook() {
    use crate::webhooks::{KeySource, SecretKey, WebhookConfig};
    use cairn_core::api::CreateModel;
    use cairn_core::webhook::{NewWebhook, Protocol};
    let (dir, r) = registry().await;
    let r = r.with_webhooks(WebhookConfig {
        key: KeySource::Given(SecretKey::load(None, dir.path()).unwrap()),
        allow_private: true,
        retry_for: Duration::from_secs(60),
    });
    let root = Actor::unrestricted("root");
    let req = CreateModel {
        name: "fraud".into(),
        description: "scores transactions".into(),
        tags: Default::default(),
    };
    let first = r
        .create_model_keyed(&root, &req, Some(&key("m")))
        .await
        .unwrap();
    // Without the key, a repeat is refused as a model that exists; with it, it answers
    // the model created.
    let again = r
        .create_model_keyed(&root, &req, Some(&key("m")))
        .await
        .unwrap();
    assert_eq!(again.name, first.name);
    let exists = r.create_model(&root, &req).await.unwrap_err();
    assert!(matches!(exists, Error::ModelExists(_)), "{exists:?}");

    let new = NewWebhook {
        name: None,
        description: String::new(),
        url: "http://127.0.0.1:9/hook".into(),
        protocol: Protocol::Cairn,
        events: vec!["version.*".into()],
        models: None,
        secret: Some("s".repeat(32)),
        active: true,
    };
    let hook = r
        .create_webhook_keyed(&root, &new, Some(&key("w")))
        .await
        .unwrap();
    let same = r
        .create_webhook_keyed(&root, &new, Some(&key("w")))
        .await
        .unwrap();
    assert_eq!(same.id, hook.id);
    assert_eq!(r.webhooks(&root).await.unwrap().len(), 1);
}

conformance!(
    a_repeated_key_creates_one_model_and_one_webhook,
    a_repeated_key_answers_the_first_registration,
    repeats_racing_the_first_register_once,
    a_failed_write_leaves_its_key_free,
    an_expired_key_is_forgotten,
    a_repeated_rollback_rolls_back_once,
);

/// PostgreSQL only: SQLite commits in this process, with no answer to lose.
async fn a_lost_commit_is_learned_from_its_audit_entry() {
    use crate::db::outcome::learn;
    use crate::db::write::{AuditMark, CommitMark};
    let (_dir, r) = registry().await;
    let ada = Actor::unrestricted("ada");
    let m = ModelName::new("churn").unwrap();
    let new = stage(&r, &[("model.bin", b"weights")]).await;
    r.register_version(&ada, &m, &new, &Default::default())
        .await
        .unwrap();
    let (seq, hash): (i64, String) = r
        .meta
        .read("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        .fetch_one()
        .await
        .unwrap();
    let lost = || sqlx::Error::Io(std::io::ErrorKind::ConnectionReset.into());
    let pool = r.meta.pool();
    // Its entry is there: it committed.
    let committed = CommitMark::Audit(AuditMark { seq, hash });
    learn(pool, Some(&committed), lost()).await.unwrap();
    // Another transaction's entry at that number, or none: it did not, and may run again.
    for seq in [seq, seq + 1] {
        let other = CommitMark::Audit(AuditMark {
            seq,
            hash: "0".repeat(64),
        });
        let not = learn(pool, Some(&other), lost()).await.unwrap_err();
        assert!(not.is_transient(), "{not:?}");
    }
    // A transaction without an audit entry marks itself: its token there, it committed;
    // not there, it did not (and looking leaves no token behind).
    let mut tx = r.meta.write_tx().await.unwrap();
    tx.mark_commit().await.unwrap();
    let token: String = tx
        .query("SELECT token FROM commit_marks")
        .scalar_one()
        .await
        .unwrap();
    tx.commit().await.unwrap();
    learn(pool, Some(&CommitMark::Token(token)), lost())
        .await
        .unwrap();
    let absent = CommitMark::Token("never-written".into());
    let not = learn(pool, Some(&absent), lost()).await.unwrap_err();
    assert!(not.is_transient(), "{not:?}");
    let marks: i64 = r
        .meta
        .read("SELECT COUNT(*) FROM commit_marks")
        .scalar_one()
        .await
        .unwrap();
    assert_eq!(marks, 1);
    // Without a mark there is nothing to learn it from.
    let unknown = learn(pool, None, lost()).await.unwrap_err();
    assert_eq!(unknown.code(), "commit_unknown");
    assert!(!unknown.is_transient());
}

mod on_postgres_only {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lost_commit_is_learned_from_its_audit_entry() {
        crate::test_support::on(
            crate::Backend::Postgres,
            super::a_lost_commit_is_learned_from_its_audit_entry(),
        )
        .await
    }
}
