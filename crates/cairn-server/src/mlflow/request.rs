//! MLflow request fields: GET requests carry them as query parameters (repeated keys for
//! lists), everything else as a JSON body. [`Fields`] merges both into one JSON object
//! and reads fields the way MLflow's server does: int64 as numbers or strings, doubles
//! also as "NaN"/"Infinity", both snake_case and camelCase names.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{Method, StatusCode, Uri};
use serde_json::{Map, Value};

use super::error::{MlflowError, MlflowResult};
use crate::extract::{declared_too_large, json_limit, too_large_message};

#[derive(Clone)]
pub struct Fields {
    pub map: Map<String, Value>,
    /// The fields came from a query string (a GET): every value is a string, and a
    /// repeated field given once is one string.
    pub from_query: bool,
}

impl<S: Send + Sync> FromRequest<S> for Fields {
    type Rejection = MlflowError;

    async fn from_request(mut req: Request, state: &S) -> Result<Self, Self::Rejection> {
        // Already read by the access guard (it needed the model's name).
        if let Some(parsed) = req.extensions_mut().remove::<Fields>() {
            return Ok(parsed);
        }
        if let Some(fields) = Self::of_get(req.method(), req.uri()) {
            return Ok(fields);
        }
        let mut map = query_map(req.uri().query());
        // A JSON body must say it is one, as MLflow requires: a browser sends a
        // cross-site form or `text/plain` POST without asking first, a JSON one never.
        if matches!(*req.method(), Method::POST | Method::PUT) {
            let content_type = req
                .headers()
                .get(axum::http::header::CONTENT_TYPE)
                .map(|v| v.to_str().unwrap_or_default());
            match content_type.map(|t| t.split(';').next().unwrap_or_default().trim()) {
                None => {
                    return Err(MlflowError::invalid(
                        "Bad Request. Content-Type header is missing.",
                    ));
                }
                Some(t) if !t.eq_ignore_ascii_case("application/json") => {
                    return Err(MlflowError::invalid(
                        "Bad Request. Content-Type must be one of ['application/json'].",
                    ));
                }
                Some(_) => {}
            }
        }
        let limit = json_limit(&req);
        if let Some(declared) = declared_too_large(&req) {
            return Err(MlflowError::too_large(too_large_message(
                limit,
                Some(declared),
            )));
        }
        let body = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                MlflowError::too_large(too_large_message(limit, None))
            } else {
                MlflowError::invalid(format!("unreadable request body: {e}"))
            }
        })?;
        if !body.is_empty() {
            match serde_json::from_slice::<Value>(&body) {
                Ok(Value::Object(fields)) => map.extend(fields),
                Ok(_) => {
                    return Err(MlflowError::invalid(
                        "the request body must be a JSON object",
                    ));
                }
                Err(e) => {
                    return Err(MlflowError::invalid(format!("malformed JSON body: {e}")));
                }
            }
        }
        Ok(Self {
            map,
            from_query: false,
        })
    }
}

impl Fields {
    /// The fields of a GET, which are its query string (a GET's body is never read);
    /// `None` for any other method.
    pub(crate) fn of_get(method: &Method, uri: &Uri) -> Option<Self> {
        (method == Method::GET).then(|| Self {
            map: query_map(uri.query()),
            from_query: true,
        })
    }
}

/// A query string's fields, a repeated key as an array of its values.
pub(crate) fn query_map(query: Option<&str>) -> Map<String, Value> {
    let mut map = Map::new();
    for (k, v) in form_urlencoded_pairs(query.unwrap_or_default()) {
        match map.get_mut(&k) {
            Some(Value::Array(items)) => items.push(Value::String(v)),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, Value::String(v)]);
            }
            None => {
                map.insert(k, Value::String(v));
            }
        }
    }
    map
}

pub(super) fn form_urlencoded_pairs(query: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

fn camel_case(snake: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

impl Fields {
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.map
            .get(name)
            .or_else(|| self.map.get(&camel_case(name)))
            .filter(|v| !v.is_null())
    }

    fn missing(name: &str) -> MlflowError {
        MlflowError::invalid(format!(
            "Missing value for required parameter '{name}'. See the API docs for more information about request parameters."
        ))
    }

    pub fn opt_str(&self, name: &str) -> MlflowResult<Option<String>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(Value::Array(items)) if items.len() == 1 => match &items[0] {
                Value::String(s) => Ok(Some(s.clone())),
                other => Ok(Some(other.to_string())),
            },
            Some(other) => Err(MlflowError::invalid(format!(
                "Invalid value {other} for parameter '{name}' supplied: expected a string"
            ))),
        }
    }

    pub fn str(&self, name: &str) -> MlflowResult<String> {
        match self.opt_str(name)? {
            Some(s) if !s.is_empty() => Ok(s),
            _ => Err(Self::missing(name)),
        }
    }

    pub fn opt_i64(&self, name: &str) -> MlflowResult<Option<i64>> {
        let bad = |v: &Value| {
            MlflowError::invalid(format!("Invalid value {v} for parameter '{name}' supplied"))
        };
        match self.get(name) {
            None => Ok(None),
            Some(v @ Value::Number(n)) => n
                .as_i64()
                .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
                .map(Some)
                .ok_or_else(|| bad(v)),
            Some(v @ Value::String(s)) => {
                if s.is_empty() {
                    return Ok(None);
                }
                s.parse().map(Some).map_err(|_| bad(v))
            }
            Some(v) => Err(bad(v)),
        }
    }

    pub fn i64(&self, name: &str) -> MlflowResult<i64> {
        self.opt_i64(name)?.ok_or_else(|| Self::missing(name))
    }

    pub fn f64(&self, name: &str) -> MlflowResult<f64> {
        let v = self.get(name).ok_or_else(|| Self::missing(name))?;
        value_to_f64(v).ok_or_else(|| {
            MlflowError::invalid(format!("Invalid value {v} for parameter '{name}' supplied"))
        })
    }

    pub fn opt_bool(&self, name: &str) -> MlflowResult<Option<bool>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(v) => Err(MlflowError::invalid(format!(
                "Invalid value {v} for parameter '{name}' supplied"
            ))),
        }
    }

    /// A repeated field: a JSON array, one query value, or repeated query keys.
    pub fn list(&self, name: &str) -> Vec<Value> {
        match self.get(name) {
            None => Vec::new(),
            Some(Value::Array(items)) => items.clone(),
            Some(v) => vec![v.clone()],
        }
    }

    pub fn str_list(&self, name: &str) -> MlflowResult<Vec<String>> {
        self.list(name)
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                Value::Number(n) => Ok(n.to_string()),
                other => Err(MlflowError::invalid(format!(
                    "Invalid value {other} in parameter '{name}'"
                ))),
            })
            .collect()
    }

    /// `[{key, value}]` pairs (tags, params).
    pub fn key_values(&self, name: &str) -> MlflowResult<Vec<(String, String)>> {
        self.list(name)
            .into_iter()
            .map(|item| {
                let key = item.get("key").and_then(Value::as_str);
                let value = item.get("value").map(|v| match v {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                });
                match (key, value) {
                    (Some(k), v) => Ok((k.to_owned(), v.unwrap_or_default())),
                    _ => Err(MlflowError::invalid(format!(
                        "Missing value for required parameter '{name}.key'"
                    ))),
                }
            })
            .collect()
    }
}

/// A double as MLflow sends it: a number, or a string such as "NaN" or "Infinity".
pub fn value_to_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.as_str() {
            "NaN" | "nan" => Some(f64::NAN),
            "Infinity" | "inf" => Some(f64::INFINITY),
            "-Infinity" | "-inf" => Some(f64::NEG_INFINITY),
            other => other.parse().ok(),
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_query_strings() {
        let pairs =
            form_urlencoded_pairs("filter=name%20%3D%20%27a%27&x=1+2&order_by=a&order_by=b");
        assert_eq!(pairs[0], ("filter".into(), "name = 'a'".into()));
        assert_eq!(pairs[1], ("x".into(), "1 2".into()));
        assert_eq!(pairs.len(), 4);
        assert_eq!(form_urlencoded_pairs("a=%zz%4")[0].1, "%zz%4");
    }

    #[test]
    fn reads_numbers_leniently() {
        let f = Fields {
            map: serde_json::from_str(r#"{"a": "12", "b": 3, "c": "NaN", "stepCount": 4}"#)
                .unwrap(),
            from_query: false,
        };
        assert_eq!(f.i64("a").unwrap(), 12);
        assert_eq!(f.i64("b").unwrap(), 3);
        assert!(f.f64("c").unwrap().is_nan());
        assert_eq!(f.i64("step_count").unwrap(), 4);
        assert!(f.i64("missing").is_err());
    }
}
