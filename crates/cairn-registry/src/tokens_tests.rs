//! API tokens on both engines: a secret authenticates until revoked or expired, only
//! its hash is stored, and creating and revoking are audited.

use cairn_core::access::{Actor, Scope};
use cairn_core::auth::{ModelPattern, Role};

use crate::NewToken;
use crate::test_support::{conformance, registry};

fn new_token(user: &str, role: Role, models: Option<&str>, lifetime: Option<i64>) -> NewToken {
    NewToken {
        user: user.into(),
        name: "ci".into(),
        role,
        models: models.map(|p| ModelPattern::new(p).unwrap()),
        lifetime,
    }
}

async fn a_token_authenticates_until_revoked() {
    let (_dir, r) = registry().await;
    let (info, secret) = r
        .create_token(
            &Actor::unrestricted("bootstrap"),
            &new_token("alice", Role::Admin, None, None),
        )
        .await
        .unwrap();
    assert!(secret.starts_with("cairn_") && secret.contains(&info.id));
    let actor: Actor = r.authenticate(&secret).await.unwrap().unwrap();
    assert_eq!(actor.name, "alice");
    assert_eq!(actor.token.as_deref(), Some(info.id.as_str()));
    assert!(actor.may(Role::Admin, Scope::Registry));

    // A secret with one character changed, or of another shape, authenticates nothing.
    let mut forged = secret.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == '0' { '1' } else { '0' });
    assert_eq!(r.authenticate(&forged).await.unwrap(), None);
    assert_eq!(r.authenticate("cairn_x").await.unwrap(), None);

    // Listed without its secret; nothing stored holds it.
    let listed = r.list_tokens().await.unwrap();
    assert_eq!(listed, vec![info.clone()]);
    let stored: Vec<(String,)> = r
        .meta
        .read("SELECT secret_sha256 FROM tokens")
        .fetch_all()
        .await
        .unwrap();
    assert!(!stored[0].0.contains(&secret[20..]));

    let revoked = r
        .revoke_token(&Actor::unrestricted("alice"), &info.id)
        .await
        .unwrap();
    assert!(revoked.revoked_at.is_some());
    assert_eq!(r.authenticate(&secret).await.unwrap(), None);
    let actions: Vec<String> = r
        .audit_log(None, None)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(actions, ["token.create", "token.revoke"]);
}

async fn an_expired_token_authenticates_nothing() {
    let (_dir, r) = registry().await;
    let (_, secret) = r
        .create_token(
            &Actor::unrestricted("bootstrap"),
            &new_token("bob", Role::Reader, Some("fraud-*"), Some(3600)),
        )
        .await
        .unwrap();
    let principal = r.authenticate(&secret).await.unwrap().unwrap();
    assert!(principal.may(Role::Reader, Scope::Model("fraud-x")));
    assert!(!principal.may(Role::Reader, Scope::Model("churn")));
    assert!(!principal.may(Role::Writer, Scope::Model("fraud-x")));
    r.meta
        .write("UPDATE tokens SET expires_at = 1")
        .execute()
        .await
        .unwrap();
    assert_eq!(r.authenticate(&secret).await.unwrap(), None);
}

conformance!(
    a_token_authenticates_until_revoked,
    an_expired_token_authenticates_nothing,
);
