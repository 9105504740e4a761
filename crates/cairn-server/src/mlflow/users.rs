//! MLflow's user and permission endpoints (`mlflow server --app-name basic-auth`) over
//! Cairn's users: create, get, current, update-password, update-admin, delete, list;
//! under `/api/3.0`, `users/permissions/grant|revoke|get` for registered models and
//! experiments; MLflow 2's `registered-models/permissions/*` and
//! `experiments/permissions/*`. MLflow's permissions map onto roles: READ and USE are
//! reader, EDIT writer, MANAGE admin, NO_PERMISSIONS and DENY an explicit deny.

use axum::Json;
use axum::extract::State;
use cairn_core::Sha256Digest;
use cairn_core::access::{Authority, Scope};
use cairn_core::auth::{ModelPattern, Role, UserInfo};
use cairn_registry::{GrantOn, Registry};
use serde_json::{Value, json};

use super::error::{MlflowError, MlflowResult};
use super::request::Fields;
use crate::access::Caller;

type Reply = MlflowResult<Json<Value>>;

/// A stable number for a user name: MLflow's clients read a numeric id.
fn user_id(name: &str) -> i64 {
    let digest = Sha256Digest::of(name.as_bytes()).to_hex();
    i64::from_str_radix(&digest[..12], 16).unwrap_or(0)
}

fn is_admin(user: &UserInfo) -> bool {
    user.grants
        .iter()
        .any(|g| g.models.is_none() && g.role == Some(Role::Admin))
}

/// A user as MLflow's clients read it (MLflow 2's also list the user's permissions: its
/// grants on models, each named by its pattern).
fn user_json(user: &UserInfo) -> Value {
    let id = user_id(&user.name);
    let models: Vec<Value> = user
        .grants
        .iter()
        .filter_map(|g| {
            let name = g.models.as_deref()?;
            Some(json!({"name": name, "user_id": id, "permission": permission_name(g.role)}))
        })
        .collect();
    let experiments: Vec<Value> = user
        .grants
        .iter()
        .filter_map(|g| {
            let experiment = g.experiment?;
            Some(
                json!({"experiment_id": experiment.to_string(), "user_id": id,
                        "permission": permission_name(g.role)}),
            )
        })
        .collect();
    json!({
        "id": user_id(&user.name), "username": user.name, "is_admin": is_admin(user),
        "experiment_permissions": experiments, "registered_model_permissions": models,
    })
}

async fn find_user(r: &Registry, name: &str) -> MlflowResult<UserInfo> {
    r.user(name)
        .await?
        .ok_or_else(|| MlflowError::not_found(format!("User with username={name} not found")))
}

fn required(f: &Fields, field: &str) -> MlflowResult<String> {
    f.opt_str(field)?.filter(|v| !v.is_empty()).ok_or_else(|| {
        MlflowError::invalid(format!("Missing value for required parameter '{field}'."))
    })
}

pub async fn create_user(State(r): State<Registry>, Caller(actor): Caller, f: Fields) -> Reply {
    let (Some(user), Some(password)) = (f.opt_str("username")?, f.opt_str("password")?) else {
        return Err(MlflowError::invalid(
            "Username and password cannot be empty.",
        ));
    };
    if user.is_empty() || password.is_empty() {
        return Err(MlflowError::invalid(
            "Username and password cannot be empty.",
        ));
    }
    r.create_user(&actor, &user, &password).await?;
    Ok(Json(
        json!({"user": user_json(&find_user(&r, &user).await?)}),
    ))
}

pub async fn get_user(State(r): State<Registry>, f: Fields) -> Reply {
    let user = required(&f, "username")?;
    Ok(Json(
        json!({"user": user_json(&find_user(&r, &user).await?)}),
    ))
}

pub async fn current_user(State(r): State<Registry>, Caller(actor): Caller) -> Reply {
    let user = match find_user(&r, &actor.name).await {
        Ok(user) => user_json(&user),
        // Without authentication, the declared actor, allowed everything.
        Err(_) => json!({"id": user_id(&actor.name), "username": actor.name,
                         "is_admin": actor.authority == Authority::Unrestricted}),
    };
    Ok(Json(json!({ "user": user })))
}

pub async fn list_users(State(r): State<Registry>) -> Reply {
    let users: Vec<Value> = r.list_users().await?.iter().map(user_json).collect();
    Ok(Json(json!({ "users": users })))
}

pub async fn update_password(State(r): State<Registry>, Caller(actor): Caller, f: Fields) -> Reply {
    let user = required(&f, "username")?;
    let password = required(&f, "password")?;
    find_user(&r, &user).await?;
    // Changing one's own password takes the current one, as in MLflow: a stolen session
    // must not rotate it silently. Admins changing another's skip it.
    if actor.name == user {
        let Some(current) = f.opt_str("current_password")?.filter(|p| !p.is_empty()) else {
            return Err(MlflowError::invalid(
                "Current password is required when changing your own password.",
            ));
        };
        if r.authenticate_password(&user, &current).await?.is_none() {
            return Err(MlflowError::invalid("Current password does not match."));
        }
        if password == current {
            return Err(MlflowError::invalid(
                "New password must differ from the current password.",
            ));
        }
    }
    r.set_password(&actor, &user, &password).await?;
    Ok(Json(json!({})))
}

pub async fn update_admin(State(r): State<Registry>, Caller(actor): Caller, f: Fields) -> Reply {
    let user = required(&f, "username")?;
    let admin = f
        .get("is_admin")
        .and_then(|v| {
            v.as_bool()
                .or_else(|| v.as_str().map(|s| s.eq_ignore_ascii_case("true")))
        })
        .ok_or_else(|| MlflowError::invalid("Missing value for required parameter 'is_admin'."))?;
    find_user(&r, &user).await?;
    if admin {
        r.grant(&actor, &user, GrantOn::Everything, Some(Role::Admin))
            .await?;
    } else {
        r.revoke_grant(&actor, &user, GrantOn::Everything).await?;
    }
    Ok(Json(json!({})))
}

pub async fn delete_user(State(r): State<Registry>, Caller(actor): Caller, f: Fields) -> Reply {
    r.delete_user(&actor, &required(&f, "username")?).await?;
    Ok(Json(json!({})))
}

fn exactly(name: &str) -> MlflowResult<ModelPattern> {
    Ok(ModelPattern::exactly(name)?)
}

/// What a permission is on: a registered model (the name itself, or every model for
/// `*`) or an experiment.
enum Resource {
    Models(ModelPattern),
    Experiment(i64),
}

impl Resource {
    fn on(&self) -> GrantOn<'_> {
        match self {
            Self::Models(pattern) => GrantOn::Models(pattern),
            Self::Experiment(id) => GrantOn::Experiment(*id),
        }
    }
}

fn experiment_number(id: &str) -> MlflowResult<i64> {
    id.trim().parse().map_err(|_| {
        MlflowError::invalid(format!(
            "Invalid experiment id '{id}': a permission is on one experiment, by its id"
        ))
    })
}

fn resource(f: &Fields) -> MlflowResult<Resource> {
    let kind = required(f, "resource_type")?;
    let id = required(f, "resource_id")?;
    match kind.as_str() {
        "registered_model" if id == "*" => Ok(Resource::Models(ModelPattern::new("*")?)),
        "registered_model" => Ok(Resource::Models(exactly(&id)?)),
        "experiment" => Ok(Resource::Experiment(experiment_number(&id)?)),
        other => Err(MlflowError::invalid(format!(
            "resource_type '{other}' is not supported by the per-user permission convenience APIs."
        ))),
    }
}

fn role_of(permission: &str) -> MlflowResult<Option<Role>> {
    match permission {
        "READ" | "USE" => Ok(Some(Role::Reader)),
        "EDIT" => Ok(Some(Role::Writer)),
        "MANAGE" => Ok(Some(Role::Admin)),
        "NO_PERMISSIONS" | "DENY" => Ok(None),
        other => Err(MlflowError::invalid(format!(
            "Invalid permission '{other}'. Valid permissions are: READ, USE, EDIT, MANAGE, DENY, NO_PERMISSIONS"
        ))),
    }
}

pub async fn grant_permission(
    State(r): State<Registry>,
    Caller(actor): Caller,
    f: Fields,
) -> Reply {
    let user = required(&f, "username")?;
    let role = role_of(&required(&f, "permission")?)?;
    let on = resource(&f)?;
    find_user(&r, &user).await?;
    r.grant(&actor, &user, on.on(), role).await?;
    Ok(Json(json!({})))
}

pub async fn revoke_permission(
    State(r): State<Registry>,
    Caller(actor): Caller,
    f: Fields,
) -> Reply {
    let user = required(&f, "username")?;
    let on = resource(&f)?;
    find_user(&r, &user).await?;
    r.revoke_grant(&actor, &user, on.on()).await?;
    Ok(Json(json!({})))
}

/// The highest role `user`'s own grants give on `scope`.
async fn role_of_user(r: &Registry, user: &str, scope: Scope<'_>) -> MlflowResult<Option<Role>> {
    find_user(r, user).await?;
    Ok(Authority::Grants(r.user_grants(user).await?).role_on(scope))
}

fn permission_name(role: Option<Role>) -> &'static str {
    match role {
        Some(Role::Admin) => "MANAGE",
        Some(Role::Writer) => "EDIT",
        Some(Role::Reader) => "READ",
        None => "NO_PERMISSIONS",
    }
}

pub async fn get_permission(State(r): State<Registry>, f: Fields) -> Reply {
    let user = required(&f, "username")?;
    let id = required(&f, "resource_id")?;
    let scope = match resource(&f)? {
        Resource::Experiment(experiment) => Scope::Experiment(experiment),
        Resource::Models(_) if id == "*" => Scope::Registry,
        Resource::Models(_) => Scope::Model(&id),
    };
    let held = role_of_user(&r, &user, scope).await?;
    Ok(Json(
        json!({"allowed": held >= Some(Role::Writer), "permission": permission_name(held)}),
    ))
}

// ---- MLflow 2's per-model permissions: `registered-models/permissions/*` ----

fn model_permission_json(name: &str, user: &str, role: Option<Role>) -> Value {
    json!({"registered_model_permission": {
        "name": name, "user_id": user_id(user), "permission": permission_name(role)}})
}

/// Creates or (`update`) changes `username`'s permission on model `name`.
pub async fn set_model_permission(
    State(r): State<Registry>,
    Caller(actor): Caller,
    f: Fields,
) -> Reply {
    let (name, user) = (required(&f, "name")?, required(&f, "username")?);
    let role = role_of(&required(&f, "permission")?)?;
    find_user(&r, &user).await?;
    let model = exactly(&name)?;
    r.grant(&actor, &user, GrantOn::Models(&model), role)
        .await?;
    Ok(Json(model_permission_json(&name, &user, role)))
}

pub async fn get_model_permission(State(r): State<Registry>, f: Fields) -> Reply {
    let (name, user) = (required(&f, "name")?, required(&f, "username")?);
    let held = role_of_user(&r, &user, Scope::Model(&name)).await?;
    Ok(Json(model_permission_json(&name, &user, held)))
}

pub async fn delete_model_permission(
    State(r): State<Registry>,
    Caller(actor): Caller,
    f: Fields,
) -> Reply {
    let (name, user) = (required(&f, "name")?, required(&f, "username")?);
    if !r
        .revoke_grant(&actor, &user, GrantOn::Models(&exactly(&name)?))
        .await?
    {
        return Err(MlflowError::not_found(format!(
            "Registered model permission with name={name} and username={user} not found"
        )));
    }
    Ok(Json(json!({})))
}

// ---- MLflow 2's per-experiment permissions: `experiments/permissions/*` ----

fn experiment_permission_json(experiment: i64, user: &str, role: Option<Role>) -> Value {
    json!({"experiment_permission": {
        "experiment_id": experiment.to_string(), "user_id": user_id(user),
        "permission": permission_name(role)}})
}

/// Creates or (`update`) changes `username`'s permission on an experiment.
pub async fn set_experiment_permission(
    State(r): State<Registry>,
    Caller(actor): Caller,
    f: Fields,
) -> Reply {
    let experiment = experiment_number(&required(&f, "experiment_id")?)?;
    let user = required(&f, "username")?;
    let role = role_of(&required(&f, "permission")?)?;
    find_user(&r, &user).await?;
    r.grant(&actor, &user, GrantOn::Experiment(experiment), role)
        .await?;
    Ok(Json(experiment_permission_json(experiment, &user, role)))
}

pub async fn get_experiment_permission(State(r): State<Registry>, f: Fields) -> Reply {
    let experiment = experiment_number(&required(&f, "experiment_id")?)?;
    let user = required(&f, "username")?;
    let held = role_of_user(&r, &user, Scope::Experiment(experiment)).await?;
    Ok(Json(experiment_permission_json(experiment, &user, held)))
}

pub async fn delete_experiment_permission(
    State(r): State<Registry>,
    Caller(actor): Caller,
    f: Fields,
) -> Reply {
    let experiment = experiment_number(&required(&f, "experiment_id")?)?;
    let user = required(&f, "username")?;
    if !r
        .revoke_grant(&actor, &user, GrantOn::Experiment(experiment))
        .await?
    {
        return Err(MlflowError::not_found(format!(
            "Experiment permission with experiment_id={experiment} and username={user} not found"
        )));
    }
    Ok(Json(json!({})))
}
