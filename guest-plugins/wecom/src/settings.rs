//! What later callbacks need: the parsed `config`, saved by `on-start` in the workspace (every callback runs in
//! a fresh instance).

use airlock_channel::pairing::DmGate;
use airlock_channel::{bail, workspace, Config, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::media::{DEFAULT_MAX_MEDIA_BYTES, MAX_MEDIA_BYTES_CAP};

pub const CHANNEL: &str = "wecom";
pub const SETTINGS_PATH: &str = "state/config";
/// The WeCom server API (the capabilities file's allow-list).
pub const DEFAULT_API_BASE: &str = "https://qyapi.weixin.qq.com";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    pub gate: DmGate,
    /// `https://...` without a trailing `/`.
    pub api_base: String,
    /// The self-built app's AgentId, for messages the app sends without a callback to answer (broadcasts);
    /// a reply to a callback uses the callback's own `AgentID`.
    pub agent_id: Option<u64>,
    /// Sent with `aibot_respond_welcome_msg` when a user opens a chat with the bot (`enter_chat`); none: nothing.
    #[serde(default)]
    pub welcome_text: Option<String>,
    /// Largest inbound image or file attached, in bytes once decrypted (config `max_media_bytes`).
    #[serde(default = "default_max_media_bytes")]
    pub max_media_bytes: usize,
}

fn default_max_media_bytes() -> usize {
    DEFAULT_MAX_MEDIA_BYTES
}

/// Longest `welcome_text`, in UTF-8 bytes (a text message's limit in WeCom).
pub const MAX_WELCOME_BYTES: usize = 2048;

impl Settings {
    /// Parse `config`: `api_base` (https, default [`DEFAULT_API_BASE`]), `agent_id` (a positive number, or
    /// its decimal text), `welcome_text` (at most [`MAX_WELCOME_BYTES`]), `dm_policy` (default `pairing`),
    /// `owner_id` and `allow_from` (WeCom userids, exact, or `"*"`), `max_media_bytes` (1 to
    /// [`MAX_MEDIA_BYTES_CAP`], default [`DEFAULT_MAX_MEDIA_BYTES`]).
    pub fn from_config(config: &Config) -> Result<Self> {
        let api_base = config.str("api_base").unwrap_or(DEFAULT_API_BASE).trim().trim_end_matches('/').to_string();
        if !api_base.starts_with("https://") {
            bail!("api_base must be an https:// URL");
        }
        let agent_id = match config.get("agent_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(value) => {
                let parsed = match value {
                    Value::Number(n) => n.as_u64(),
                    Value::String(s) => s.trim().parse::<u64>().ok(),
                    _ => None,
                };
                match parsed.filter(|n| *n > 0) {
                    Some(n) => Some(n),
                    None => bail!("agent_id must be the app's positive numeric AgentId"),
                }
            }
        };
        let gate = DmGate::from_config(CHANNEL, config, "WeCom userids")?;
        let welcome_text = config.str("welcome_text").map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
        if welcome_text.as_ref().is_some_and(|w| w.len() > MAX_WELCOME_BYTES) {
            bail!("welcome_text is longer than {MAX_WELCOME_BYTES} bytes");
        }
        let max_media_bytes = match config.get("max_media_bytes") {
            None | Some(Value::Null) => DEFAULT_MAX_MEDIA_BYTES,
            Some(value) => match value.as_u64().and_then(|n| usize::try_from(n).ok()) {
                Some(n) if (1..=MAX_MEDIA_BYTES_CAP).contains(&n) => n,
                _ => bail!("max_media_bytes must be a number of bytes from 1 to {MAX_MEDIA_BYTES_CAP}"),
            },
        };
        Ok(Settings { gate, api_base, agent_id, welcome_text, max_media_bytes })
    }

    pub fn save(&self) -> Result<()> {
        workspace::write_json(SETTINGS_PATH, self)
    }

    pub fn load() -> Result<Self> {
        workspace::read_json(SETTINGS_PATH)?.context("channel settings missing (on-start has not run)")
    }
}

/// A WeCom userid or chat id as the channel accepts it from a frame or callback: 1 to 128 bytes, no control
/// characters (userids are letters, digits and `_-.@`; chat ids are opaque).
pub fn is_wecom_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && !id.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_channel::pairing::DmPolicy;

    #[test]
    fn parses_config() {
        let c = Config::from_json(r#"{"agent_id": "1000002", "allow_from": ["zhangsan", " "], "owner_id": "lisi"}"#)
            .unwrap();
        let s = Settings::from_config(&c).unwrap();
        assert_eq!((s.api_base.as_str(), s.agent_id), (DEFAULT_API_BASE, Some(1_000_002)));
        assert_eq!(s.gate.allow_from, vec!["zhangsan"]);
        assert_eq!(s.gate.owner_id.as_deref(), Some("lisi"));
        assert_eq!(s.gate.policy, DmPolicy::Pairing);
        assert_eq!(s.max_media_bytes, DEFAULT_MAX_MEDIA_BYTES);
        let big = Config::from_json(&format!(r#"{{"max_media_bytes": {MAX_MEDIA_BYTES_CAP}}}"#)).unwrap();
        assert_eq!(Settings::from_config(&big).unwrap().max_media_bytes, MAX_MEDIA_BYTES_CAP);
        let s = Settings::from_config(
            &Config::from_json(r#"{"agent_id": 218, "api_base": "https://q.example/"}"#).unwrap(),
        )
        .unwrap();
        assert_eq!((s.api_base.as_str(), s.agent_id), ("https://q.example", Some(218)));
        assert_eq!(Settings::from_config(&Config::from_json(r#"{"agent_id": ""}"#).unwrap()).unwrap().agent_id, None);
        for bad in [
            r#"{"agent_id": "abc"}"#,
            r#"{"agent_id": 0}"#,
            r#"{"agent_id": true}"#,
            r#"{"api_base": "http://x"}"#,
            r#"{"allow_from": "x"}"#,
            r#"{"max_media_bytes": 0}"#,
            r#"{"max_media_bytes": 20971521}"#,
            r#"{"max_media_bytes": "1"}"#,
        ] {
            assert!(Settings::from_config(&Config::from_json(bad).unwrap()).is_err(), "{bad}");
        }
    }

    #[test]
    fn ids() {
        assert!(is_wecom_id("zhangsan") && is_wecom_id("wrkSFfCgAAxxxx") && is_wecom_id("a.b-c_d@e"));
        assert!(!is_wecom_id("") && !is_wecom_id("a\nb") && !is_wecom_id(&"a".repeat(129)));
    }
}
