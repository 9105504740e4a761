//! One module per verb: an `Args` struct and a `run`.

pub mod alias;
pub mod audit;
pub mod copy;
pub mod models;
pub mod pull;
pub mod push;
pub mod server;
pub mod verify;
pub mod versions;

/// `KEY=VALUE` for `--tag` and `--param`.
pub fn parse_key_value(s: &str) -> Result<(String, String), String> {
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))?;
    cairn_core::MetaKey::new(key).map_err(|e| e.to_string())?;
    Ok((key.to_owned(), value.to_owned()))
}

/// `KEY=NUMBER` for `--metric`.
pub fn parse_metric(s: &str) -> Result<(String, f64), String> {
    let (key, value) = parse_key_value(s)?;
    match value.trim().parse::<f64>() {
        Ok(v) if v.is_finite() => Ok((key, v)),
        _ => Err(format!(
            "metric {key:?} needs a finite number, got {value:?}"
        )),
    }
}
