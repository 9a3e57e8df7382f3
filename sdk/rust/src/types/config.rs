//! What [`Channel::on_start`](crate::Channel::on_start) is given and returns: the capabilities file's `config`
//! object ([`Config`]) and the channel's answer ([`ChannelConfig`]: its endpoints and polling schedule). Apart
//! from the request and agent types because only activation uses them.

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::wire::json_kind;
use crate::error::{Error, Result};

/// The `config` object of the channel's capabilities file, given to [`Channel::on_start`](crate::Channel::on_start).
///
/// Only `on_start` sees it: every callback runs in a fresh instance, so keep what later callbacks need in
/// the [`workspace`](crate::workspace).
///
/// ```
/// use airlock_channel::Config;
/// use serde::Deserialize;
///
/// #[derive(Deserialize)]
/// struct MyConfig { reply_url: String, #[serde(default)] verbose: bool }
///
/// let config = Config::from_json(r#"{"reply_url": "https://example.com/hook", "dm_policy": "open"}"#).unwrap();
/// assert_eq!(config.str("dm_policy"), Some("open"));
/// let typed: MyConfig = config.parse().unwrap();
/// assert_eq!(typed.reply_url, "https://example.com/hook");
/// assert!(!typed.verbose);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Config {
    values: serde_json::Map<String, Value>,
}

impl Config {
    /// Parse the host's `config-json`; empty text is an empty object. Errors if it is not a JSON object.
    pub fn from_json(text: &str) -> Result<Self> {
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        match serde_json::from_str::<Value>(text)? {
            Value::Object(values) => Ok(Config { values }),
            other => Err(Error::new(format!("config is not a JSON object but {}", json_kind(&other)))),
        }
    }

    /// The raw value of `key`, if present (JSON `null` counts as present).
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.values.get(key)
    }

    /// `key` as a string; `None` when absent or not a string.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.values.get(key).and_then(Value::as_str)
    }

    /// `key` as a bool, or `default` when absent or `null`. Errors when it is another type.
    pub fn bool_or(&self, key: &str, default: bool) -> Result<bool> {
        match self.values.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(Error::new(format!("config {key} must be true or false, not {}", json_kind(other)))),
        }
    }

    /// The whole object deserialized into `T` (use `#[serde(default)]` for optional keys).
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T> {
        T::deserialize(Value::Object(self.values.clone())).map_err(|e| Error::new(format!("config: {e}")))
    }

    /// The whole object.
    pub fn as_map(&self) -> &serde_json::Map<String, Value> {
        &self.values
    }
}

/// One HTTP endpoint the channel serves (must also be listed in the capabilities file's `allowed_paths`).
///
/// ```
/// use airlock_channel::Endpoint;
/// let ep = Endpoint::post("/webhook/mine").require_secret(true);
/// assert_eq!(ep.methods, vec!["POST".to_string()]);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Absolute path, e.g. `/webhook/slack`. Must start with `/`.
    pub path: String,
    /// Upper-case methods, e.g. `["POST"]`.
    pub methods: Vec<String>,
    /// When true the host rejects requests it could not verify (webhook secret or signature) before the
    /// guest runs.
    pub require_secret: bool,
}

impl Endpoint {
    /// An endpoint for these methods (upper-cased), no secret required.
    pub fn new<M: AsRef<str>>(path: impl Into<String>, methods: &[M]) -> Self {
        Endpoint {
            path: path.into(),
            methods: methods.iter().map(|m| m.as_ref().to_ascii_uppercase()).collect(),
            require_secret: false,
        }
    }

    /// A `POST` endpoint.
    pub fn post(path: impl Into<String>) -> Self {
        Endpoint::new(path, &["POST"])
    }

    /// Set whether the host must have verified the request (see the capabilities file's `webhook` block).
    pub fn require_secret(mut self, required: bool) -> Self {
        self.require_secret = required;
        self
    }
}

/// Polling: the host calls [`Channel::on_poll`](crate::Channel::on_poll) every `interval_ms` milliseconds
/// (raised to the capabilities file's `min_poll_interval_ms`; polling also needs `allow_polling: true`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Poll {
    /// Milliseconds between ticks.
    pub interval_ms: u32,
    /// False registers the schedule without running it.
    pub enabled: bool,
}

impl Poll {
    /// Poll every `interval_ms` milliseconds.
    pub fn every_ms(interval_ms: u32) -> Self {
        Poll { interval_ms, enabled: true }
    }
}

/// What [`Channel::on_start`](crate::Channel::on_start) returns: the name shown to operators, the HTTP
/// endpoints, and the optional polling schedule.
///
/// ```
/// use airlock_channel::{ChannelConfig, Endpoint, Poll};
/// let cfg = ChannelConfig::new("My channel")
///     .endpoint(Endpoint::post("/webhook/mine").require_secret(true))
///     .poll(Poll::every_ms(60_000));
/// assert_eq!(cfg.endpoints.len(), 1);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelConfig {
    /// Human-readable name.
    pub display_name: String,
    /// Endpoints to register (each path must be in the capabilities file's `allowed_paths`).
    pub endpoints: Vec<Endpoint>,
    /// Polling schedule, if any.
    pub poll: Option<Poll>,
}

impl ChannelConfig {
    /// A configuration with no endpoints and no polling.
    pub fn new(display_name: impl Into<String>) -> Self {
        ChannelConfig { display_name: display_name.into(), endpoints: Vec::new(), poll: None }
    }

    /// Add an endpoint.
    pub fn endpoint(mut self, endpoint: Endpoint) -> Self {
        self.endpoints.push(endpoint);
        self
    }

    /// Set the polling schedule.
    pub fn poll(mut self, poll: Poll) -> Self {
        self.poll = Some(poll);
        self
    }

    /// Checks done before the value goes back to the host: every path starts with `/`, every endpoint
    /// has at least one method and every method is an HTTP token.
    pub fn validate(&self) -> Result<()> {
        for ep in &self.endpoints {
            if !ep.path.starts_with('/') {
                return Err(Error::new(format!("endpoint path {:?} must start with '/'", ep.path)));
            }
            if ep.methods.is_empty() {
                return Err(Error::new(format!("endpoint {} has no methods", ep.path)));
            }
            if let Some(bad) = ep.methods.iter().find(|m| m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphabetic())) {
                return Err(Error::new(format!("endpoint {} has a bad method {bad:?}", ep.path)));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_config_validation() {
        assert!(ChannelConfig::new("x").endpoint(Endpoint::post("/a")).validate().is_ok());
        assert!(ChannelConfig::new("x").endpoint(Endpoint::post("a")).validate().is_err());
        assert!(ChannelConfig::new("x").endpoint(Endpoint::new::<&str>("/a", &[])).validate().is_err());
        assert!(ChannelConfig::new("x").endpoint(Endpoint::new("/a", &["GE T"])).validate().is_err());
    }

    #[test]
    fn config_accessors() {
        let c = Config::from_json(r#"{"a": "x", "b": true, "n": null, "k": 3}"#).unwrap();
        assert_eq!(c.str("a"), Some("x"));
        assert!(c.bool_or("b", false).unwrap());
        assert!(c.bool_or("n", true).unwrap());
        assert!(c.bool_or("missing", true).unwrap());
        assert!(c.bool_or("k", true).is_err());
        assert!(Config::from_json("[]").is_err());
        assert_eq!(Config::from_json("  ").unwrap(), Config::default());
    }
}
