//! The `config` object of `slack.capabilities.json`, checked in `on-start` and kept in the workspace
//! (`state/config`) because every later callback runs in a fresh instance that never saw it.
//!
//! Keys: `bot_user_id` (optional; the bot's own Slack user id, else learnt from `auth.test` or the event
//! envelope), `owner_id`, `dm_policy` (`open` | `allowlist` | `pairing` | `disabled`, default `pairing`),
//! `allow_from` (user ids, or `*` for everyone), `reply_in_thread` (default true: answers to an @mention go to its thread),
//! `resolve_user_names` (default true: look a sender's name up once with `users.info` and cache it).
//! Direct messages are admitted by the SDK's [`DmGate`] (the host's `dm_policy` rule).

use airlock_channel::pairing::{DmGate, DmPolicy};
use serde::Serialize;
use serde_json::Value;

use crate::channel::CHANNEL;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
        let policy = DmPolicy::from_config(raw.get("dm_policy")).map_err(|e| e.to_string())?;
        Ok(Self {
            bot_user_id: id_text(raw.get("bot_user_id")).map_err(|e| format!("bot_user_id: {e}"))?,
            owner_id: id_text(raw.get("owner_id")).map_err(|e| format!("owner_id: {e}"))?,
            dm_policy: policy,
            allow_from: id_list(raw.get("allow_from"))?,
            reply_in_thread: boolean(raw, "reply_in_thread", true)?,
            resolve_user_names: boolean(raw, "resolve_user_names", true)?,
        })
    }

    /// The `dm_policy` rule for direct messages.
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
    fn defaults_and_round_trip() {
        let cfg =
            Config::from_json(&json!({"owner_id": null, "dm_policy": "allowlist", "allow_from": ["U1", 7]})).unwrap();
        assert_eq!(cfg.dm_policy, DmPolicy::Allowlist);
        assert_eq!(cfg.allow_from, vec!["U1", "7"]);
        assert!(cfg.reply_in_thread);
        let host = MockHost::install();
        workspace::write_json("state/config", &cfg).unwrap();
        assert_eq!(workspace::read_checked("state/config", Config::from_json), cfg);
        host.workspace_set("state/config", "{broken");
        assert_eq!(workspace::read_checked("state/config", Config::from_json), Config::default());
        assert_eq!(workspace::read_checked("state/missing", Config::from_json), Config::default());
        assert_eq!(Config::from_json(&Value::Null).unwrap(), Config::default());
    }

    #[test]
    fn bad_values_are_named() {
        assert!(Config::from_json(&json!({"dm_policy": "everyone"})).unwrap_err().contains("dm_policy"));
        assert!(Config::from_json(&json!({"reply_in_thread": "yes"})).unwrap_err().contains("reply_in_thread"));
        assert!(Config::from_json(&json!({"allow_from": {"a": 1}})).unwrap_err().contains("allow_from"));
        assert!(Config::from_json(&json!([1])).is_err());
    }

    #[test]
    fn admission_rules() {
        use airlock_channel::pairing::Decision;
        let mut cfg =
            Config { owner_id: Some("UOWNER".into()), allow_from: vec!["UFRIEND".into()], ..Config::default() };
        assert_eq!(cfg.gate().decide("UOWNER", None), Decision::Allow);
        assert_eq!(cfg.gate().decide("UFRIEND", None), Decision::Allow);
        assert_eq!(cfg.gate().decide("USTRANGER", None), Decision::AskPairing);
        cfg.dm_policy = DmPolicy::Allowlist;
        assert_eq!(cfg.gate().decide("USTRANGER", None), Decision::Deny);
        // As at the host: `disabled` refuses every direct message.
        cfg.dm_policy = DmPolicy::Disabled;
        assert_eq!(cfg.gate().decide("UFRIEND", None), Decision::Deny);
        assert_eq!(cfg.gate().decide("UOWNER", None), Decision::Deny);
        cfg.dm_policy = DmPolicy::Open;
        assert_eq!(cfg.gate().decide("USTRANGER", None), Decision::Allow);
        cfg.dm_policy = DmPolicy::Allowlist;
        cfg.allow_from = vec!["*".into()];
        assert_eq!(cfg.gate().decide("USTRANGER", None), Decision::Allow);
        assert_eq!(Config::from_json(&json!({"allow_from": "U1, U2"})).unwrap().allow_from, vec!["U1", "U2"]);
        assert_eq!(Config::from_json(&json!({"dm_policy": " "})).unwrap().dm_policy, DmPolicy::Pairing);
    }
}
