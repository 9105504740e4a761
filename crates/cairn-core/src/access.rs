//! Authorization, decided in one place: [`authorize`] answers whether an [`Actor`] may
//! do what a request [`Need`]s. The server calls it for every request before a handler
//! runs (from one table of routes), and the registry calls it for the rules that depend
//! on stored state (a protected alias needs an admin of its model). Nothing else decides.

use std::fmt;

use crate::auth::{ModelPattern, Role};

/// One grant: a role (or, with `role` `None`, an explicit deny) on every model
/// (`models` `None`, which also covers the registry as a whole and every experiment),
/// on the models a pattern matches, or — with `experiment` set — on one experiment and
/// its runs, logged models and artifacts only.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    pub models: Option<ModelPattern>,
    pub experiment: Option<i64>,
    pub role: Option<Role>,
}

/// What a caller may do.
#[derive(Debug, Clone, PartialEq)]
pub enum Authority {
    /// No authentication is enforced: embedded use of the data directory, or a server
    /// started without `--auth` (which only listens on loopback). Everything is allowed.
    Unrestricted,
    /// What the caller's grants allow; an explicit deny wins over any role.
    Grants(Vec<Grant>),
}

/// What a request acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    /// The registry as a whole: garbage collection, verifying everything, the audit
    /// log, tokens. Only grants on every model count.
    Registry,
    /// MLflow tracking as a whole (creating experiments, or a request that names no
    /// experiment): only grants on every model count, as for the registry.
    Tracking,
    /// One experiment, with its runs, logged models and artifacts.
    Experiment(i64),
    /// Some experiment, whichever: listings of experiments (filtered entry by entry).
    AnyExperiment,
    /// One model, by name.
    Model(&'a str),
    /// Some model, whichever: listings (their entries are then filtered one by one)
    /// and blob uploads (a blob belongs to no model until a version names it).
    AnyModel,
}

/// What a request needs: `role` on `scope`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Need<'a> {
    pub role: Role,
    pub scope: Scope<'a>,
}

impl<'a> Need<'a> {
    pub fn new(role: Role, scope: Scope<'a>) -> Self {
        Self { role, scope }
    }
}

/// Why a request was refused: what it needed, said so that the caller knows what to
/// ask for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{user:?} may not do this: it needs the {role} role on {scope}{held}")]
pub struct Denied {
    pub user: String,
    pub role: Role,
    /// `model "churn"`, `the registry`, …
    pub scope: String,
    /// `; the caller holds reader`, or empty.
    held: String,
}

impl Scope<'_> {
    fn describe(&self) -> String {
        match self {
            Self::Registry => "every model (the registry as a whole)".to_owned(),
            Self::Tracking => "every model (experiments and runs)".to_owned(),
            Self::Model(name) => format!("model {name:?}"),
            Self::AnyModel => "some model".to_owned(),
            Self::Experiment(id) => format!("experiment {id}"),
            Self::AnyExperiment => "some experiment".to_owned(),
        }
    }
}

impl Authority {
    /// The highest role the caller holds on `scope`; `None`: no role at all.
    pub fn role_on(&self, scope: Scope<'_>) -> Option<Role> {
        let grants = match self {
            Self::Unrestricted => return Some(Role::Admin),
            Self::Grants(grants) => grants,
        };
        let applies = |g: &Grant| match (g.experiment, scope) {
            (Some(experiment), Scope::Experiment(id)) => experiment == id,
            (Some(_), Scope::AnyExperiment) => g.role.is_some(),
            (Some(_), _) => false,
            (None, _) => match (scope, &g.models) {
                (_, None) => true,
                (Scope::Model(name), Some(pattern)) => pattern.matches(name),
                (Scope::AnyModel, Some(_)) => g.role.is_some(),
                (
                    Scope::Registry | Scope::Tracking | Scope::Experiment(_) | Scope::AnyExperiment,
                    Some(_),
                ) => false,
            },
        };
        let matching = grants.iter().filter(|g| applies(g));
        // An explicit deny (on a model, an experiment, or everything) wins over any role;
        // "some" scopes ask whether any role is held at all.
        let some = matches!(scope, Scope::AnyModel | Scope::AnyExperiment);
        let denied = |g: &Grant| g.role.is_none() && !some;
        if matching.clone().any(denied) {
            return None;
        }
        matching.filter_map(|g| g.role).max()
    }
}

/// An actor as the registry records it: who (a user, or a name a client declared when
/// authentication is off), with which token, allowed to do what.
#[derive(Debug, Clone, PartialEq)]
pub struct Actor {
    pub name: String,
    /// The id of the token the request came with (never its secret).
    pub token: Option<String>,
    pub authority: Authority,
}

impl Actor {
    /// An actor of a registry used without authentication: allowed everything,
    /// recorded under the name it gives.
    pub fn unrestricted(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            token: None,
            authority: Authority::Unrestricted,
        }
    }

    /// Whether the actor holds `role` on `scope` (see [`authorize`]).
    pub fn may(&self, role: Role, scope: Scope<'_>) -> bool {
        authorize(self, Need::new(role, scope)).is_ok()
    }
}

/// The one decision: may `actor` do what `need` says?
pub fn authorize(actor: &Actor, need: Need<'_>) -> Result<(), Denied> {
    let held = actor.authority.role_on(need.scope);
    if held.is_some_and(|role| role >= need.role) {
        return Ok(());
    }
    Err(Denied {
        user: actor.name.clone(),
        role: need.role,
        scope: need.scope.describe(),
        held: match held {
            Some(role) => format!("; it holds {role}"),
            None => "; it holds no role there".to_owned(),
        },
    })
}

impl fmt::Display for Scope<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(grants: &[(Option<&str>, Option<Role>)]) -> Actor {
        Actor {
            name: "u".into(),
            token: Some("t".into()),
            authority: Authority::Grants(
                grants
                    .iter()
                    .map(|(p, role)| Grant {
                        models: p.map(|p| ModelPattern::new(p).unwrap()),
                        experiment: None,
                        role: *role,
                    })
                    .collect(),
            ),
        }
    }

    #[test]
    fn roles_cover_the_roles_below_them_on_their_scope() {
        let writer = actor(&[(Some("fraud-*"), Some(Role::Writer))]);
        assert!(writer.may(Role::Reader, Scope::Model("fraud-a")));
        assert!(writer.may(Role::Writer, Scope::Model("fraud-a")));
        assert!(!writer.may(Role::Admin, Scope::Model("fraud-a")));
        assert!(!writer.may(Role::Reader, Scope::Model("churn")));
        assert!(writer.may(Role::Writer, Scope::AnyModel));
        // A grant on some models is no grant on the registry or on tracking.
        assert!(!writer.may(Role::Reader, Scope::Registry));
        assert!(!writer.may(Role::Reader, Scope::Tracking));
        let global = actor(&[(None, Some(Role::Reader))]);
        assert!(global.may(Role::Reader, Scope::Registry));
        assert!(!global.may(Role::Writer, Scope::Model("x")));
        assert!(Actor::unrestricted("a").may(Role::Admin, Scope::Registry));
        assert!(!actor(&[]).may(Role::Reader, Scope::AnyModel));
    }

    #[test]
    fn an_experiment_grant_covers_that_experiment_only() {
        let mut a = actor(&[(Some("fraud-*"), Some(Role::Admin))]);
        let Authority::Grants(grants) = &mut a.authority else {
            unreachable!()
        };
        grants.push(Grant {
            models: None,
            experiment: Some(7),
            role: Some(Role::Writer),
        });
        assert!(a.may(Role::Writer, Scope::Experiment(7)));
        assert!(!a.may(Role::Admin, Scope::Experiment(7)));
        assert!(!a.may(Role::Reader, Scope::Experiment(8)));
        assert!(a.may(Role::Reader, Scope::AnyExperiment));
        assert!(!a.may(Role::Reader, Scope::Tracking) && !a.may(Role::Reader, Scope::Registry));
        let global = actor(&[(None, Some(Role::Reader))]);
        assert!(global.may(Role::Reader, Scope::Experiment(8)));
        assert!(!actor(&[(Some("x"), Some(Role::Admin))]).may(Role::Reader, Scope::Experiment(1)));
    }

    #[test]
    fn an_explicit_deny_wins() {
        let a = actor(&[(None, Some(Role::Admin)), (Some("secret-*"), None)]);
        assert!(!a.may(Role::Reader, Scope::Model("secret-x")));
        assert!(a.may(Role::Admin, Scope::Model("other")));
        let denied = authorize(&a, Need::new(Role::Reader, Scope::Model("secret-x"))).unwrap_err();
        assert_eq!(
            denied.to_string(),
            "\"u\" may not do this: it needs the reader role on model \"secret-x\"; \
             it holds no role there"
        );
    }
}
