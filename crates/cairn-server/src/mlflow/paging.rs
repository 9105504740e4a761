//! Page tokens: base64 of `{"offset": N}`, as MLflow's own server makes them.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::error::{MlflowError, MlflowResult};
use super::request::Fields;

pub fn offset(f: &Fields) -> MlflowResult<usize> {
    let Some(token) = f.opt_str("page_token")?.filter(|t| !t.is_empty()) else {
        return Ok(0);
    };
    let bad = || MlflowError::invalid("Invalid page token, could not base64-decode");
    let bytes = STANDARD.decode(token.as_bytes()).map_err(|_| bad())?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    value
        .get("offset")
        .and_then(Value::as_u64)
        .map(|o| o as usize)
        .ok_or_else(bad)
}

pub fn token(offset: usize) -> String {
    STANDARD.encode(json!({ "offset": offset }).to_string())
}

/// `max_results`, defaulted and bounded the way MLflow bounds it for this endpoint.
pub fn max_results(f: &Fields, default: i64, max: i64) -> MlflowResult<usize> {
    let n = f.opt_i64("max_results")?.unwrap_or(default);
    if n < 1 || n > max {
        return Err(MlflowError::invalid(format!(
            "Invalid value {n} for parameter 'max_results' supplied. It must be at most {max}"
        )));
    }
    Ok(n as usize)
}

/// Cuts `items` (which may hold one more than a page) to the page and adds the token.
pub fn page<T>(mut items: Vec<T>, offset: usize, limit: usize) -> (Vec<T>, Option<String>) {
    let more = items.len() > limit;
    items.truncate(limit);
    (items, more.then(|| token(offset.saturating_add(limit))))
}

/// `{field: items, next_page_token?}`, leaving out an empty list as MLflow does.
pub fn reply(field: &str, items: Vec<Value>, token: Option<String>) -> Value {
    let mut out = serde_json::Map::new();
    if !items.is_empty() {
        out.insert(field.into(), Value::Array(items));
    }
    if let Some(t) = token {
        out.insert("next_page_token".into(), json!(t));
    }
    Value::Object(out)
}
