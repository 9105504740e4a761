//! One module per verb: an `Args` struct and a `run`.

pub mod alias;
pub mod audit;
pub mod card;
pub mod copy;
pub mod diff;
pub mod events;
pub mod gc;
pub mod lineage;
pub mod models;
pub mod policy;
pub mod pull;
pub mod push;
pub mod serve;
pub mod server;
pub mod token;
pub mod user;
pub mod verify;
pub mod versions;
pub mod webhooks;

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

/// `30s`, `500ms`, `2m`, `24h`, `7d`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    use std::time::Duration;
    let s = s.trim();
    let (number, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("expected a duration like 30s, 24h or 7d, got {s:?}"))?;
    let seconds = |factor: u64| Duration::from_secs(n.saturating_mul(factor));
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(seconds(1)),
        "m" => Ok(seconds(60)),
        "h" => Ok(seconds(3600)),
        "d" => Ok(seconds(86_400)),
        _ => Err(format!(
            "unknown duration unit {unit:?} (use ms, s, m, h or d)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3w").is_err());
    }
}
