//! The `config` object of `whatsapp.capabilities.json`, checked in `on-start` and kept in the workspace
//! (`state/config`) because every later callback runs in a fresh instance.
//!
//! Keys: `api_version` (Graph API version, `vNN.N`, default `v20.0`), `phone_number_id` (optional: the business
//! number used for proactive messages; replies use the number the message came to), `reply_to_message`
//! (default true: a reply quotes the message it answers), `owner_id`, `dm_policy` (`open` | `allowlist` |
//! `pairing` | `disabled`, default `pairing`), `allow_from` (WhatsApp ids, i.e. phone numbers in international
//! form; `+`, spaces, dashes and parentheses are ignored; `*` admits everyone). Messages are admitted by the
//! SDK's [`DmGate`] (the host's `dm_policy` rule; every WhatsApp chat here is a direct one).

use airlock_channel::pairing::{DmGate, DmPolicy};
use serde::Serialize;
use serde_json::Value;

use crate::channel::CHANNEL;

pub const DEFAULT_API_VERSION: &str = "v20.0";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Config {
    pub api_version: String,
    pub phone_number_id: Option<String>,
    pub reply_to_message: bool,
    pub owner_id: Option<String>,
    pub dm_policy: DmPolicy,
    pub allow_from: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            api_version: DEFAULT_API_VERSION.into(),
            phone_number_id: None,
            reply_to_message: true,
            owner_id: None,
            dm_policy: DmPolicy::Pairing,
            allow_from: Vec::new(),
        }
    }
}

/// A WhatsApp id as Meta writes it: the phone number's digits (`+49 170-1234` -> `491701234`). Other text
/// (`*`, a non-phone id) is kept as given.
pub fn normalize_id(text: &str) -> String {
    let t = text.trim();
    if !t.is_empty() && t.chars().all(|c| c.is_ascii_digit() || " +-()".contains(c)) {
        t.chars().filter(char::is_ascii_digit).collect()
    } else {
        t.to_string()
    }
}

fn id_text(value: Option<&Value>, key: &str) -> Result<Option<String>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(normalize_id(s))),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(format!("{key} must be an id (string), not {other}")),
    }
}

/// True for ids the Graph API uses in URL paths (digits only, 1..=32 of them).
pub fn is_numeric_id(text: &str) -> bool {
    !text.is_empty() && text.len() <= 32 && text.bytes().all(|b| b.is_ascii_digit())
}

/// `vNN.N` (e.g. `v20.0`): the only shape allowed into the URL path.
pub fn is_api_version(text: &str) -> bool {
    let Some(rest) = text.strip_prefix('v') else { return false };
    let mut parts = rest.split('.');
    let major = parts.next().unwrap_or("");
    let minor = parts.next().unwrap_or("");
    parts.next().is_none()
        && (1..=2).contains(&major.len())
        && minor.len() == 1
        && major.bytes().chain(minor.bytes()).all(|b| b.is_ascii_digit())
}

impl Config {
    /// Strict parse (an error fails `on-start` with this message).
    pub fn from_json(raw: &Value) -> Result<Self, String> {
        if !raw.is_object() && !raw.is_null() {
            return Err("config must be a JSON object".into());
        }
        let api_version = match raw.get("api_version") {
            None | Some(Value::Null) => DEFAULT_API_VERSION.to_string(),
            Some(Value::String(s)) if is_api_version(s.trim()) => s.trim().to_string(),
            Some(other) => return Err(format!("api_version must look like v20.0, not {other}")),
        };
        let phone_number_id = id_text(raw.get("phone_number_id"), "phone_number_id")?;
        if phone_number_id.as_deref().is_some_and(|p| !is_numeric_id(p)) {
            return Err("phone_number_id must be the numeric id Meta shows under WhatsApp > API Setup".into());
        }
        let dm_policy = DmPolicy::from_config(raw.get("dm_policy")).map_err(|e| e.to_string())?;
        let reply_to_message = match raw.get("reply_to_message") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(other) => return Err(format!("reply_to_message must be true or false, not {other}")),
        };
        let allow_from = match raw.get("allow_from") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => s.split([',', '\n']).map(normalize_id).filter(|p| !p.is_empty()).collect(),
            Some(Value::Array(items)) => {
                let mut out = Vec::new();
                for item in items {
                    out.extend(id_text(Some(item), "allow_from entry")?);
                }
                out
            }
            Some(other) => return Err(format!("allow_from must be a list of ids, not {other}")),
        };
        Ok(Self {
            api_version,
            phone_number_id,
            reply_to_message,
            owner_id: id_text(raw.get("owner_id"), "owner_id")?,
            dm_policy,
            allow_from,
        })
    }

    /// The `dm_policy` rule (ids already normalized by [`normalize_id`]).
    pub fn gate(&self) -> DmGate {
        DmGate::new(CHANNEL, self.dm_policy).owner(self.owner_id.clone()).allow(self.allow_from.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_channel::testing::MockHost;
    use airlock_channel::workspace;
    use serde_json::json;

    #[test]
    fn parse_and_round_trip() {
        let cfg =
            Config::from_json(&json!({"api_version": "v21.0", "phone_number_id": "1065", "owner_id": "+49 170-1",
                                            "allow_from": ["+1 (555) 01", 42], "dm_policy": "allowlist"}))
            .unwrap();
        assert_eq!((cfg.api_version.as_str(), cfg.owner_id.as_deref()), ("v21.0", Some("491701")));
        assert_eq!(cfg.allow_from, vec!["155501", "42"]);
        let host = MockHost::install();
        workspace::write_json("state/config", &cfg).unwrap();
        assert_eq!(workspace::read_checked("state/config", Config::from_json), cfg);
        // The stored copy is checked again: a value that would reach a URL falls back to the defaults.
        host.workspace_set("state/config", r#"{"api_version": "v1/../x"}"#);
        assert_eq!(workspace::read_checked("state/config", Config::from_json), Config::default());
        assert_eq!(Config::from_json(&Value::Null).unwrap(), Config::default());
    }

    #[test]
    fn rejects_what_would_reach_a_url() {
        for bad in [
            json!({"api_version": "v20.0/../x"}),
            json!({"api_version": "20"}),
            json!({"phone_number_id": "12/ab"}),
            json!({"dm_policy": "all"}),
            json!({"reply_to_message": 1}),
            json!({"allow_from": 5}),
        ] {
            assert!(Config::from_json(&bad).is_err(), "{bad}");
        }
        assert!(is_api_version("v9.0") && !is_api_version("v100.0") && !is_api_version("v20.00"));
    }

    #[test]
    fn admission() {
        use airlock_channel::pairing::Decision;
        let cfg = Config { owner_id: Some("1".into()), allow_from: vec!["2".into()], ..Config::default() };
        let decide = |cfg: &Config, id: &str| cfg.gate().decide(id, None);
        assert_eq!(
            (decide(&cfg, "1"), decide(&cfg, "2"), decide(&cfg, "3")),
            (Decision::Allow, Decision::Allow, Decision::AskPairing)
        );
        let cfg = Config { dm_policy: DmPolicy::Allowlist, ..cfg };
        assert_eq!(decide(&cfg, "3"), Decision::Deny);
        // As at the host: `disabled` refuses every direct message, the owner's too.
        let cfg = Config { dm_policy: DmPolicy::Disabled, ..cfg };
        assert_eq!((decide(&cfg, "1"), decide(&cfg, "2")), (Decision::Deny, Decision::Deny));
        let cfg = Config::from_json(&json!({"dm_policy": "allowlist", "allow_from": "*"})).unwrap();
        assert_eq!(decide(&cfg, "3"), Decision::Allow);
    }
}
