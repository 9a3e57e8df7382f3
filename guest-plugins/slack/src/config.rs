//! The `config` object of `slack.capabilities.json`, checked in `on-start` and kept in the workspace
//! (`state/config`) because every later callback runs in a fresh instance that never saw it.
//!
//! Keys: `bot_user_id` (optional; the bot's own Slack user id, else learnt from `auth.test` or the event
//! envelope), `owner_id`, `dm_policy` (`open` | `allowlist` | `pairing` | `disabled`, default `pairing`),
//! `allow_from` (user ids, or `*`), `reply_in_thread` (default true: answers to an @mention go to its thread),
//! `resolve_user_names` (default true: look a sender's name up once with `users.info` and cache it).

use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmPolicy {
    Open,
    Allowlist,
    Pairing,
    Disabled,
}

impl DmPolicy {
    fn parse(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "open" => Ok(Self::Open),
            "allowlist" => Ok(Self::Allowlist),
            "pairing" | "" => Ok(Self::Pairing),
            "disabled" => Ok(Self::Disabled),
            other => Err(format!("dm_policy must be open, allowlist, pairing or disabled, not {other:?}")),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Allowlist => "allowlist",
            Self::Pairing => "pairing",
            Self::Disabled => "disabled",
        }
    }
}

/// What the static rules say about a direct message, before the pairing store is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Allow,
    Deny,
    Pairing,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub bot_user_id: Option<String>,
    pub owner_id: Option<String>,
    pub dm_policy: DmPolicy,
    pub allow_from: Vec<String>,
    pub reply_in_thread: bool,
    pub resolve_user_names: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bot_user_id: None,
            owner_id: None,
            dm_policy: DmPolicy::Pairing,
            allow_from: Vec::new(),
            reply_in_thread: true,
            resolve_user_names: true,
        }
    }
}

/// An id given as a string or a number; `null`/empty is None.
fn id_text(value: Option<&Value>) -> Result<Option<String>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(format!("expected an id (string), not {other}")),
    }
}

fn boolean(raw: &Value, key: &str, default: bool) -> Result<bool, String> {
    match raw.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(format!("{key} must be true or false, not {other}")),
    }
}

fn id_list(value: Option<&Value>) -> Result<Vec<String>, String> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        // "U1, U2" in a hand-edited file is read like ["U1", "U2"].
        Some(Value::String(s)) => Ok(s.split([',', ' ', '\n']).filter(|p| !p.is_empty()).map(String::from).collect()),
        Some(Value::Array(items)) => {
            let mut out = Vec::new();
            for item in items {
                if let Some(id) = id_text(Some(item)).map_err(|e| format!("allow_from: {e}"))? {
                    out.push(id);
                }
            }
            Ok(out)
        }
        Some(other) => Err(format!("allow_from must be a list of user ids, not {other}")),
    }
}

impl Config {
    /// Strict parse of the capabilities file's `config` (an error fails `on-start` with this message).
    pub fn from_json(raw: &Value) -> Result<Self, String> {
        if !raw.is_object() && !raw.is_null() {
            return Err("config must be a JSON object".into());
        }
        let policy = match raw.get("dm_policy") {
            None | Some(Value::Null) => DmPolicy::Pairing,
            Some(Value::String(s)) => DmPolicy::parse(s)?,
            Some(other) => return Err(format!("dm_policy must be a string, not {other}")),
        };
        Ok(Self {
            bot_user_id: id_text(raw.get("bot_user_id")).map_err(|e| format!("bot_user_id: {e}"))?,
            owner_id: id_text(raw.get("owner_id")).map_err(|e| format!("owner_id: {e}"))?,
            dm_policy: policy,
            allow_from: id_list(raw.get("allow_from"))?,
            reply_in_thread: boolean(raw, "reply_in_thread", true)?,
            resolve_user_names: boolean(raw, "resolve_user_names", true)?,
        })
    }

    pub fn to_state(&self) -> Value {
        json!({
            "bot_user_id": self.bot_user_id,
            "owner_id": self.owner_id,
            "dm_policy": self.dm_policy.name(),
            "allow_from": self.allow_from,
            "reply_in_thread": self.reply_in_thread,
            "resolve_user_names": self.resolve_user_names,
        })
    }

    /// Lenient read of `to_state` output: defaults when missing or unreadable (a broken workspace entry must
    /// not stop the channel; the default policy, pairing, admits nobody unknown).
    pub fn from_state(text: Option<&str>) -> Self {
        text.and_then(|t| serde_json::from_str::<Value>(t).ok())
            .and_then(|v| Self::from_json(&v).ok())
            .unwrap_or_default()
    }

    pub fn policy_name(&self) -> &'static str {
        self.dm_policy.name()
    }

    /// The static part of DM admission: owner and `allow_from` always pass; `open` admits all; `disabled`
    /// only the owner; `allowlist` denies the rest; `pairing` sends the rest to the pairing store.
    pub fn admission(&self, user_id: &str) -> Admission {
        if self.dm_policy == DmPolicy::Open || self.owner_id.as_deref() == Some(user_id) {
            return Admission::Allow;
        }
        if self.dm_policy == DmPolicy::Disabled {
            return Admission::Deny;
        }
        if self.allow_from.iter().any(|a| a == "*" || a == user_id) {
            return Admission::Allow;
        }
        match self.dm_policy {
            DmPolicy::Allowlist => Admission::Deny,
            _ => Admission::Pairing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_round_trip() {
        let cfg =
            Config::from_json(&json!({"owner_id": null, "dm_policy": "allowlist", "allow_from": ["U1", 7]})).unwrap();
        assert_eq!(cfg.dm_policy, DmPolicy::Allowlist);
        assert_eq!(cfg.allow_from, vec!["U1", "7"]);
        assert!(cfg.reply_in_thread);
        let back = Config::from_state(Some(&cfg.to_state().to_string()));
        assert_eq!(back, cfg);
        assert_eq!(Config::from_json(&Value::Null).unwrap(), Config::default());
    }

    #[test]
    fn bad_values_are_named() {
        assert!(Config::from_json(&json!({"dm_policy": "everyone"})).unwrap_err().contains("dm_policy"));
        assert!(Config::from_json(&json!({"reply_in_thread": "yes"})).unwrap_err().contains("reply_in_thread"));
        assert!(Config::from_json(&json!({"allow_from": {"a": 1}})).unwrap_err().contains("allow_from"));
        assert!(Config::from_json(&json!([1])).is_err());
        assert_eq!(Config::from_state(Some("{broken")), Config::default());
    }

    #[test]
    fn admission_rules() {
        let mut cfg =
            Config { owner_id: Some("UOWNER".into()), allow_from: vec!["UFRIEND".into()], ..Config::default() };
        assert_eq!(cfg.admission("UOWNER"), Admission::Allow);
        assert_eq!(cfg.admission("UFRIEND"), Admission::Allow);
        assert_eq!(cfg.admission("USTRANGER"), Admission::Pairing);
        cfg.dm_policy = DmPolicy::Allowlist;
        assert_eq!(cfg.admission("USTRANGER"), Admission::Deny);
        cfg.dm_policy = DmPolicy::Disabled;
        assert_eq!(cfg.admission("UFRIEND"), Admission::Deny);
        assert_eq!(cfg.admission("UOWNER"), Admission::Allow);
        cfg.dm_policy = DmPolicy::Open;
        assert_eq!(cfg.admission("USTRANGER"), Admission::Allow);
        cfg.dm_policy = DmPolicy::Allowlist;
        cfg.allow_from = vec!["*".into()];
        assert_eq!(cfg.admission("USTRANGER"), Admission::Allow);
        assert_eq!(Config::from_json(&json!({"allow_from": "U1, U2"})).unwrap().allow_from, vec!["U1", "U2"]);
    }
}
