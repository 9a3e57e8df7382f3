//! The channel's settings: parsed from the capabilities file's `config` in `on_start`, validated, and kept
//! in the workspace for the later callbacks (each callback runs in a fresh instance and never sees the
//! config).

use airlock_channel::pairing::{DmGate, DmPolicy};
use airlock_channel::{workspace, Config, Context, Error, Result};
use serde::{Deserialize, Serialize};

/// The channel's name: pairing store key, webhook path suffix, capabilities file name.
pub const CHANNEL: &str = "template-rust";
/// Workspace path of the saved settings.
pub const SETTINGS_PATH: &str = "state/settings";
/// Longest reply URL accepted, in bytes.
pub const MAX_URL_BYTES: usize = 2048;

/// What the later callbacks need.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// Where replies are POSTed (must also be on the capabilities file's `http.allowlist`).
    pub reply_url: String,
    /// Who may talk to the agent.
    pub gate: DmGate,
}

/// The raw `config` object (every key optional except `reply_url`).
#[derive(Deserialize)]
struct RawConfig {
    reply_url: Option<String>,
    #[serde(default)]
    dm_policy: Option<String>,
    #[serde(default)]
    owner_id: Option<serde_json::Value>,
    #[serde(default)]
    allow_from: Vec<serde_json::Value>,
}

impl Settings {
    /// Parse and check the config: `reply_url` is an `https://` URL of at most [`MAX_URL_BYTES`];
    /// `dm_policy` is open/allowlist/pairing/disabled (default pairing); ids may be strings or numbers.
    pub fn from_config(config: &Config) -> Result<Settings> {
        let raw: RawConfig = config.parse()?;
        let reply_url = raw.reply_url.filter(|u| !u.trim().is_empty()).context("config.reply_url is required")?;
        let reply_url = reply_url.trim().to_string();
        if !reply_url.starts_with("https://") || reply_url.len() > MAX_URL_BYTES {
            return Err(Error::new(format!(
                "config.reply_url must be an https:// URL of at most {MAX_URL_BYTES} bytes"
            )));
        }
        let policy = DmPolicy::parse(raw.dm_policy.as_deref().unwrap_or("pairing"))?;
        let owner = raw.owner_id.as_ref().map(id_text).transpose()?.flatten();
        let allow = raw.allow_from.iter().map(id_text).collect::<Result<Vec<_>>>()?.into_iter().flatten().collect();
        Ok(Settings { reply_url, gate: DmGate::new(CHANNEL, policy).owner(owner).allow(allow) })
    }

    /// Save for later callbacks.
    pub fn save(&self) -> Result<()> {
        workspace::write_json(SETTINGS_PATH, self)
    }

    /// The settings saved by `on_start`.
    pub fn load() -> Result<Settings> {
        workspace::read_json(SETTINGS_PATH)?.context("channel not started (no saved settings)")
    }
}

/// A user id from the config: a string or an integer; `null`/empty is none.
fn id_text(v: &serde_json::Value) -> Result<Option<String>> {
    match v {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::String(s) => Ok(Some(s.trim().to_string()).filter(|s| !s.is_empty())),
        serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => Ok(Some(n.to_string())),
        other => Err(Error::new(format!("user ids must be strings or integers, not {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Settings> {
        Settings::from_config(&Config::from_json(json)?)
    }

    #[test]
    fn accepts_a_full_config() {
        let s = parse(
            r#"{"reply_url": " https://hooks.example.com/r ", "dm_policy": "allowlist",
                          "owner_id": 42, "allow_from": ["bob", 7, null]}"#,
        )
        .unwrap();
        assert_eq!(s.reply_url, "https://hooks.example.com/r");
        assert_eq!(s.gate.policy, DmPolicy::Allowlist);
        assert_eq!(s.gate.owner_id.as_deref(), Some("42"));
        assert_eq!(s.gate.allow_from, vec!["bob".to_string(), "7".to_string()]);
    }

    #[test]
    fn defaults_to_pairing() {
        assert_eq!(parse(r#"{"reply_url": "https://x.example/"}"#).unwrap().gate.policy, DmPolicy::Pairing);
    }

    #[test]
    fn rejects_bad_values() {
        assert!(parse("{}").unwrap_err().to_string().contains("reply_url is required"));
        assert!(parse(r#"{"reply_url": "http://x.example/"}"#).is_err());
        let long = format!(r#"{{"reply_url": "https://x.example/{}"}}"#, "a".repeat(MAX_URL_BYTES));
        assert!(parse(&long).is_err());
        assert!(parse(r#"{"reply_url": "https://x.example/", "dm_policy": "all"}"#).is_err());
        assert!(parse(r#"{"reply_url": "https://x.example/", "owner_id": 1.5}"#).is_err());
        assert!(parse(r#"{"reply_url": 5}"#).is_err());
    }
}
