//! What later callbacks need: the parsed `config`, saved by `on-start` in the workspace (every callback runs
//! in a fresh instance).

use airlock_channel::pairing::DmGate;
use airlock_channel::{bail, workspace, Config, Context, Result};
use serde::{Deserialize, Serialize};

pub const CHANNEL: &str = "wechat";
pub const SETTINGS_PATH: &str = "state/config";
/// The iLink API host (Tencent/openclaw-weixin, docs/protocol.md: "The default API base URL").
pub const DEFAULT_API_BASE: &str = "https://ilinkai.weixin.qq.com";
/// Milliseconds between polls when a long poll returned at once (the host raises it to the file's
/// `min_poll_interval_ms`; a long poll the server held is followed at once).
pub const DEFAULT_POLL_INTERVAL_MS: u32 = 30_000;
/// How long the server may hold `getupdates` (protocol.md: `longpolling_timeout_ms`, 35000 in its sample).
pub const DEFAULT_LONG_POLL_TIMEOUT_MS: u32 = 35_000;
/// Bounds of `long_poll_timeout_ms`: at least 1 s, at most 50 s (the capabilities file gives the callback 60 s
/// and the HTTP request 55 s, so the request ends before either deadline).
pub const LONG_POLL_TIMEOUT_RANGE_MS: (u32, u32) = (1_000, 50_000);

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    pub gate: DmGate,
    /// `https://...` without a trailing `/` (the host's allow-list decides which hosts are reachable).
    pub api_base: String,
    pub poll_interval_ms: u32,
    pub long_poll_timeout_ms: u32,
}

fn number(config: &Config, key: &str, default: u32) -> Result<u32> {
    match config.get(key) {
        None | Some(serde_json::Value::Null) => Ok(default),
        Some(v) => match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
            Some(n) => Ok(n),
            None => bail!("{key} must be a whole number of milliseconds"),
        },
    }
}

impl Settings {
    /// Parse `config`: `api_base` (https, default [`DEFAULT_API_BASE`]), `poll_interval_ms`,
    /// `long_poll_timeout_ms` (within [`LONG_POLL_TIMEOUT_RANGE_MS`]), `dm_policy` (default `pairing`),
    /// `owner_id` and `allow_from` (iLink user ids such as `o9cq80...@im.wechat`, exact, or `"*"`).
    pub fn from_config(config: &Config) -> Result<Self> {
        let api_base = config.str("api_base").unwrap_or(DEFAULT_API_BASE).trim().trim_end_matches('/').to_string();
        if !api_base.starts_with("https://") {
            bail!("api_base must be an https:// URL");
        }
        let long_poll_timeout_ms = number(config, "long_poll_timeout_ms", DEFAULT_LONG_POLL_TIMEOUT_MS)?;
        let (low, high) = LONG_POLL_TIMEOUT_RANGE_MS;
        if !(low..=high).contains(&long_poll_timeout_ms) {
            bail!("long_poll_timeout_ms must be between {low} and {high}");
        }
        let gate = DmGate::from_config(CHANNEL, config, "WeChat user ids")?;
        Ok(Settings {
            gate,
            api_base,
            poll_interval_ms: number(config, "poll_interval_ms", DEFAULT_POLL_INTERVAL_MS)?,
            long_poll_timeout_ms,
        })
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
    fn parses_config_and_refuses_bad_values() {
        let c = Config::from_json(
            r#"{"api_base": "https://ilinkai.weixin.qq.com/", "allow_from": ["a@im.wechat", " "], "owner_id": "o@im.wechat",
                "long_poll_timeout_ms": 2000}"#,
        )
        .unwrap();
        let s = Settings::from_config(&c).unwrap();
        assert_eq!(s.api_base, DEFAULT_API_BASE);
        assert_eq!(s.gate.allow_from, vec!["a@im.wechat"]);
        assert_eq!(s.gate.owner_id.as_deref(), Some("o@im.wechat"));
        assert_eq!(s.gate.policy, DmPolicy::Pairing);
        assert_eq!((s.poll_interval_ms, s.long_poll_timeout_ms), (DEFAULT_POLL_INTERVAL_MS, 2000));
        let defaults = Settings::from_config(&Config::from_json("{}").unwrap()).unwrap();
        assert_eq!(defaults.long_poll_timeout_ms, DEFAULT_LONG_POLL_TIMEOUT_MS);
        for bad in [
            r#"{"api_base": "http://x"}"#,
            r#"{"long_poll_timeout_ms": 60000}"#,
            r#"{"long_poll_timeout_ms": 999}"#,
            r#"{"poll_interval_ms": "soon"}"#,
            r#"{"allow_from": "a"}"#,
            r#"{"dm_policy": "all"}"#,
        ] {
            assert!(Settings::from_config(&Config::from_json(bad).unwrap()).is_err(), "{bad}");
        }
    }
}
