//! What later callbacks need to know: the parsed `config` (saved by `on-start`) and the bot's own user
//! (learned from the gateway's READY dispatch). Both live in the workspace: every callback runs in a fresh
//! instance.

use airlock_channel::pairing::{DmGate, DmPolicy};
use airlock_channel::{workspace, Config, Context, Result};
use serde::{Deserialize, Serialize};

pub const CHANNEL: &str = "discord";
pub const SETTINGS_PATH: &str = "state/config";
/// Durable (listed in `durable_workspace_paths`): a restart keeps recognising mentions before READY.
pub const BOT_USER_PATH: &str = "state/bot_user";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    pub gate: DmGate,
    /// Answer guild messages that mention the bot (config `respond_to_mentions`, default true).
    pub respond_to_mentions: bool,
}

impl Settings {
    /// Parse the capabilities file's `config`: `dm_policy` (default `pairing`), `owner_id`, `allow_from` (a list
    /// of user ids, exact matches, or `"*"` for everyone: the host's own rule, applied by the SDK's `DmGate`),
    /// `respond_to_mentions`.
    pub fn from_config(config: &Config) -> Result<Self> {
        let policy = DmPolicy::from_config(config.get("dm_policy"))?;
        let owner = config.get("owner_id").and_then(id_text);
        let allow = match config.get("allow_from") {
            None | Some(serde_json::Value::Null) => Vec::new(),
            Some(serde_json::Value::Array(items)) => items.iter().filter_map(id_text).collect(),
            Some(_) => airlock_channel::bail!("allow_from must be a list of user ids"),
        };
        Ok(Settings {
            gate: DmGate::new(CHANNEL, policy).owner(owner).allow(allow),
            respond_to_mentions: config.bool_or("respond_to_mentions", true)?,
        })
    }

    pub fn save(&self) -> Result<()> {
        workspace::write_json(SETTINGS_PATH, self)
    }

    /// The saved settings; an error if `on-start` never ran (the host calls it first, so this means a bug).
    pub fn load() -> Result<Self> {
        workspace::read_json(SETTINGS_PATH)?.context("channel settings missing (on-start has not run)")
    }
}

/// An id written as a JSON string or number (Discord snowflakes overflow JSON numbers in some tools).
fn id_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The bot's own account, from READY's `d.user` (and the application id from `d.application.id`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BotUser {
    pub id: String,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub application_id: Option<String>,
}

impl BotUser {
    pub fn load() -> Option<Self> {
        workspace::read_json(BOT_USER_PATH).ok().flatten()
    }

    pub fn save(&self) -> Result<()> {
        workspace::write_json(BOT_USER_PATH, self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_config() {
        let config =
            Config::from_json(r#"{"dm_policy": "allowlist", "owner_id": 123, "allow_from": ["4", 5, " "]}"#).unwrap();
        let s = Settings::from_config(&config).unwrap();
        assert_eq!(s.gate.policy, DmPolicy::Allowlist);
        assert_eq!(s.gate.owner_id.as_deref(), Some("123"));
        assert_eq!(s.gate.allow_from, vec!["4", "5"]);
        assert!(s.respond_to_mentions);
        let defaults = Settings::from_config(&Config::from_json("{}").unwrap()).unwrap();
        assert_eq!(defaults.gate.policy, DmPolicy::Pairing);
        assert!(Settings::from_config(&Config::from_json(r#"{"dm_policy": "all"}"#).unwrap()).is_err());
        assert!(Settings::from_config(&Config::from_json(r#"{"allow_from": 5}"#).unwrap()).is_err());
        assert!(Settings::from_config(&Config::from_json(r#"{"allow_from": "4, 5"}"#).unwrap()).is_err());
    }
}
