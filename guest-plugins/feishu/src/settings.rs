//! What later callbacks need: the parsed `config`, saved by `on-start` in the workspace (every callback
//! runs in a fresh instance).

use airlock_channel::pairing::DmGate;
use airlock_channel::{bail, workspace, Config, Context, Result};
use serde::{Deserialize, Serialize};

pub const CHANNEL: &str = "feishu";
pub const SETTINGS_PATH: &str = "state/config";

/// The two Open Platform deployments, both on the capabilities file's allow-list.
pub const API_BASES: [&str; 2] = ["https://open.feishu.cn", "https://open.larksuite.com"];

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    pub gate: DmGate,
    /// `https://open.feishu.cn` (Feishu, default) or `https://open.larksuite.com` (Lark).
    pub api_base: String,
    /// The bot's own open_id, if configured; otherwise learned from `GET /open-apis/bot/v3/info`.
    pub bot_open_id: Option<String>,
}

impl Settings {
    /// Parse `config`: `api_base` (one of [`API_BASES`], trailing `/` ignored), `bot_open_id`, `dm_policy`
    /// (default `pairing`), `owner_id` (an open_id), `allow_from` (a list of open_ids, exact matches, or `"*"`
    /// for everyone: the host's own rule, applied by the SDK's `DmGate`).
    pub fn from_config(config: &Config) -> Result<Self> {
        let api_base = config.str("api_base").unwrap_or(API_BASES[0]).trim().trim_end_matches('/').to_string();
        if !API_BASES.contains(&api_base.as_str()) {
            bail!("api_base must be {} or {}", API_BASES[0], API_BASES[1]);
        }
        let gate = DmGate::from_config(CHANNEL, config, "open_ids")?;
        let bot_open_id = config.str("bot_open_id").map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
        Ok(Settings { gate, api_base, bot_open_id })
    }

    pub fn save(&self) -> Result<()> {
        workspace::write_json(SETTINGS_PATH, self)
    }

    pub fn load() -> Result<Self> {
        workspace::read_json(SETTINGS_PATH)?.context("channel settings missing (on-start has not run)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_channel::pairing::DmPolicy;

    #[test]
    fn parses_config() {
        let c = Config::from_json(
            r#"{"api_base": "https://open.larksuite.com/", "allow_from": ["ou_a", " "], "owner_id": "ou_o"}"#,
        )
        .unwrap();
        let s = Settings::from_config(&c).unwrap();
        assert_eq!(s.api_base, "https://open.larksuite.com");
        assert_eq!(s.gate.allow_from, vec!["ou_a"]);
        assert_eq!(s.gate.owner_id.as_deref(), Some("ou_o"));
        assert_eq!(s.gate.policy, DmPolicy::Pairing);
        assert_eq!(Settings::from_config(&Config::from_json("{}").unwrap()).unwrap().api_base, API_BASES[0]);
        assert!(Settings::from_config(&Config::from_json(r#"{"api_base": "https://evil.example"}"#).unwrap()).is_err());
    }
}
