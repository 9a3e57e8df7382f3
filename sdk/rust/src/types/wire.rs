//! Lenient parsing of the JSON texts the host passes in WIT records (`metadata-json`, `headers-json`,
//! `query-json`) into the SDK's types, and the JSON kind names used in their error messages. Apart because the
//! export glue (`channel::dispatch`), the config and the `http` wrappers all use them.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::{Error, Result};

/// `"an object"`, `"a string"`, ... for error messages.
pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Parse a metadata JSON text: empty is `{}`; anything but an object is an error.
pub(crate) fn metadata_object(text: &str, what: &str) -> Result<Value> {
    if text.trim().is_empty() {
        return Ok(Value::Object(serde_json::Map::new()));
    }
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(other) => Err(Error::new(format!("{what} is {} instead of an object", json_kind(&other)))),
        Err(e) => Err(Error::new(format!("{what} is not JSON: {e}"))),
    }
}

/// Lenient `{name: value}` parse of headers/query JSON: arrays are joined with `", "`, numbers and bools
/// become text, `null` becomes empty; an array of `[name, value]` pairs is accepted too; anything
/// unparseable is an empty map (the host always sends an object; this only guards against surprises).
pub(crate) fn string_map(text: &str, lower_keys: bool) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let value = match serde_json::from_str::<Value>(text) {
        Ok(v) => v,
        Err(_) => return out,
    };
    let pairs: Vec<(String, Value)> = match value {
        Value::Object(map) => map.into_iter().collect(),
        Value::Array(items) => items
            .into_iter()
            .filter_map(|item| match item {
                Value::Array(mut pair) if pair.len() == 2 => {
                    let v = pair.pop()?;
                    let k = pair.pop()?;
                    Some((k.as_str()?.to_string(), v))
                }
                _ => None,
            })
            .collect(),
        _ => return out,
    };
    for (k, v) in pairs {
        let key = if lower_keys { k.to_ascii_lowercase() } else { k };
        let text = match v {
            Value::Array(parts) => parts.iter().map(scalar_text).collect::<Vec<_>>().join(", "),
            other => scalar_text(&other),
        };
        match out.get_mut(&key) {
            Some(existing) => {
                let existing: &mut String = existing;
                existing.push_str(", ");
                existing.push_str(&text);
            }
            None => {
                out.insert(key, text);
            }
        }
    }
    out
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_map_joins_and_lowercases() {
        let m = string_map(r#"{"X-A": ["1", 2], "b": null, "C": true}"#, true);
        assert_eq!(m["x-a"], "1, 2");
        assert_eq!(m["b"], "");
        assert_eq!(m["c"], "true");
        let pairs = string_map(r#"[["k", "v"], ["K", "w"], ["bad"]]"#, true);
        assert_eq!(pairs["k"], "v, w");
        assert!(string_map("not json", true).is_empty());
        assert!(string_map("[1, 2]", false).is_empty());
    }

    #[test]
    fn metadata_must_be_an_object() {
        assert_eq!(metadata_object("", "m").unwrap(), serde_json::json!({}));
        assert!(metadata_object("[1]", "m").unwrap_err().to_string().contains("an array"));
        assert!(metadata_object("{", "m").is_err());
    }
}
