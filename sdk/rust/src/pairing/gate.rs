//! The `dm_policy` rule ([`DmPolicy`], [`DmGate`]): who may send direct messages, decided from the channel's
//! config and, under `pairing`, the host's pairing store. Apart from the store's host functions (the parent module)
//! because it is the rule, the same for every channel; re-exported as `airlock_channel::pairing::DmGate` etc.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{code_text, is_approved, upsert, Upsert};
use crate::error::{Error, Result};
use crate::Config;

/// The `dm_policy` config value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DmPolicy {
    /// Everyone may talk to the agent.
    Open,
    /// Only the owner and `allow_from`.
    Allowlist,
    /// `allowlist` plus approved pairings; unknown senders get a code (the default).
    #[default]
    Pairing,
    /// No direct messages at all (not even the owner's).
    Disabled,
}

impl DmPolicy {
    /// Parse `open`, `allowlist`, `pairing` or `disabled` (case-insensitive, surrounding space ignored).
    pub fn parse(text: &str) -> Result<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "open" => Ok(DmPolicy::Open),
            "allowlist" => Ok(DmPolicy::Allowlist),
            "pairing" => Ok(DmPolicy::Pairing),
            "disabled" => Ok(DmPolicy::Disabled),
            other => Err(Error::new(format!("dm_policy must be open, allowlist, pairing or disabled, not {other:?}"))),
        }
    }

    /// The `dm_policy` value of a channel's `config` object: absent, `null` or a blank string is the default
    /// (`pairing`); a string is [`parse`](DmPolicy::parse)d; anything else is an error.
    pub fn from_config(value: Option<&Value>) -> Result<Self> {
        match value {
            None | Some(Value::Null) => Ok(DmPolicy::default()),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(DmPolicy::default()),
            Some(Value::String(s)) => DmPolicy::parse(s),
            Some(other) => Err(Error::new(format!("dm_policy must be a string, not {other}"))),
        }
    }

    /// The config spelling: `"open"`, `"allowlist"`, `"pairing"` or `"disabled"`.
    pub fn as_str(self) -> &'static str {
        match self {
            DmPolicy::Open => "open",
            DmPolicy::Allowlist => "allowlist",
            DmPolicy::Pairing => "pairing",
            DmPolicy::Disabled => "disabled",
        }
    }
}

/// Decision of [`DmGate::decide`] made from configuration alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Let the message through.
    Allow,
    /// Drop it.
    Deny,
    /// Ask the pairing store ([`DmGate::admit`] does).
    AskPairing,
}

/// Outcome of [`DmGate::admit`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Let the message through.
    Allowed,
    /// Drop it (policy).
    Denied,
    /// The sender must be approved first. `created` is true the first time: send the code then.
    /// `code` is empty when the pairing store could not be reached (logged as a warning).
    Pairing {
        /// Pairing code for the operator.
        code: String,
        /// True when this message created the request.
        created: bool,
    },
}

/// The `allow_from` entry that admits every sender (as at the host).
pub const ALLOW_ALL: &str = "*";

/// The `dm_policy` rule for one channel (see the [module docs](super)).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DmGate {
    /// Channel name (the pairing store's key).
    pub channel: String,
    /// The policy.
    pub policy: DmPolicy,
    /// The owner's platform id: always allowed.
    #[serde(default)]
    pub owner_id: Option<String>,
    /// Extra allowed senders: platform user ids, compared exactly; `"*"` allows everyone.
    #[serde(default)]
    pub allow_from: Vec<String>,
}

impl DmGate {
    /// A gate with no owner and an empty `allow_from`.
    pub fn new(channel: impl Into<String>, policy: DmPolicy) -> Self {
        DmGate { channel: channel.into(), policy, owner_id: None, allow_from: Vec::new() }
    }

    /// The gate a channel's `config` object describes, for platforms whose user ids are strings: `dm_policy`
    /// ([`DmPolicy::from_config`]), `owner_id` (a string, surrounding space ignored; blank or another type: no
    /// owner) and `allow_from` (a list: its strings trimmed, blank ones and other values dropped). An `allow_from`
    /// that is neither a list nor absent or `null` is the error "allow_from must be a list of {ids}" (`ids` names
    /// the platform's ids, e.g. `open_ids`). A channel whose ids may be numbers reads these keys itself.
    pub fn from_config(channel: impl Into<String>, config: &Config, ids: &str) -> Result<Self> {
        let policy = DmPolicy::from_config(config.get("dm_policy"))?;
        let allow = match config.get("allow_from") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str())
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            Some(_) => return Err(Error::new(format!("allow_from must be a list of {ids}"))),
        };
        let owner = config.str("owner_id").map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
        Ok(DmGate::new(channel, policy).owner(owner).allow(allow))
    }

    /// Set the owner id.
    pub fn owner(mut self, owner_id: Option<String>) -> Self {
        self.owner_id = owner_id.filter(|o| !o.is_empty());
        self
    }

    /// Set `allow_from`.
    pub fn allow(mut self, allow_from: Vec<String>) -> Self {
        self.allow_from = allow_from;
        self
    }

    /// The decision from configuration alone (no host calls), by the rule in the [module docs](super):
    /// `open` allows; `disabled` denies; otherwise the owner, an exact `allow_from` id or a `"*"` entry
    /// allows, and anyone else is denied (`allowlist`) or sent to the pairing store (`pairing`).
    /// `sender_name` is not used for the decision (names are not identities); it is accepted so callers can
    /// pass what they pass to [`admit`](DmGate::admit).
    pub fn decide(&self, sender_id: &str, sender_name: Option<&str>) -> Decision {
        let _ = sender_name;
        match self.policy {
            DmPolicy::Open => return Decision::Allow,
            DmPolicy::Disabled => return Decision::Deny,
            DmPolicy::Allowlist | DmPolicy::Pairing => {}
        }
        let is_owner = self.owner_id.as_deref() == Some(sender_id);
        if is_owner || self.allow_from.iter().map(|e| e.trim()).any(|e| e == sender_id || e == ALLOW_ALL) {
            return Decision::Allow;
        }
        if self.policy == DmPolicy::Allowlist {
            Decision::Deny
        } else {
            Decision::AskPairing
        }
    }

    /// The full decision: [`decide`](DmGate::decide), then (policy `pairing`) the pairing store: an
    /// approved sender is allowed, anyone else gets a pairing request with `meta` for the operator (and a
    /// newly created request is logged at info level with `sender_name`). Pairing-store failures are logged
    /// as warnings and never let a message through.
    pub fn admit(&self, sender_id: &str, sender_name: Option<&str>, meta: &Value) -> Admission {
        match self.decide(sender_id, sender_name) {
            Decision::Allow => return Admission::Allowed,
            Decision::Deny => return Admission::Denied,
            Decision::AskPairing => {}
        }
        if is_approved(&self.channel, sender_id) {
            return Admission::Allowed;
        }
        match upsert(&self.channel, sender_id, meta) {
            Ok(Upsert { code, created }) => {
                if created {
                    let name = sender_name.map(|n| format!(" ({n})")).unwrap_or_default();
                    crate::log::info(&format!(
                        "pairing requested by {sender_id}{name} on {}: code {code}",
                        self.channel
                    ));
                }
                Admission::Pairing { code, created }
            }
            Err(e) => {
                crate::log::warn(&format!("{e} (pairing request of {sender_id})"));
                Admission::Pairing { code: String::new(), created: false }
            }
        }
    }

    /// [`admit`](DmGate::admit) for a message that arrives over the platform (not an interactive answer):
    /// true when the message may be emitted. A denied sender is logged at info level; the first message of
    /// a new pairing request calls `send_code` with the code (once per request, never with an empty code)
    /// so the channel can tell the sender how to get approved, e.g. with [`code_text`]; a failed send is
    /// logged as a warning naming the sender (the request stays pending).
    pub fn admit_or_send_code<T, E: std::fmt::Display>(
        &self,
        sender_id: &str,
        sender_name: Option<&str>,
        meta: &Value,
        send_code: impl FnOnce(&str) -> std::result::Result<T, E>,
    ) -> bool {
        match self.admit(sender_id, sender_name, meta) {
            Admission::Allowed => true,
            Admission::Denied => {
                crate::log::info(&format!(
                    "DM from {sender_id} on {} dropped (dm_policy {})",
                    self.channel,
                    self.policy.as_str()
                ));
                false
            }
            Admission::Pairing { code, created } => {
                if created && !code.is_empty() {
                    if let Err(e) = send_code(&code) {
                        crate::log::warn(&format!("could not send the pairing code to {sender_id}: {e}"));
                    }
                }
                false
            }
        }
    }

    /// The standard pairing message for `code` on this channel (see [`code_text`]).
    pub fn code_text(&self, code: &str) -> String {
        code_text(&self.channel, code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate_of(config: &str) -> Result<DmGate> {
        DmGate::from_config("c", &Config::from_json(config).unwrap(), "open_ids")
    }

    #[test]
    fn from_config_reads_policy_owner_and_allow_from() {
        let g = gate_of(r#"{"dm_policy": "allowlist", "owner_id": " o ", "allow_from": ["a", " ", 7, null, " b "]}"#)
            .unwrap();
        assert_eq!((g.policy, g.owner_id.as_deref()), (DmPolicy::Allowlist, Some("o")));
        assert_eq!(g.allow_from, vec!["a", "b"]);
        assert_eq!(gate_of("{}").unwrap(), DmGate::new("c", DmPolicy::Pairing));
        assert_eq!(gate_of(r#"{"owner_id": 5, "allow_from": null}"#).unwrap(), DmGate::new("c", DmPolicy::Pairing));
        assert_eq!(
            gate_of(r#"{"allow_from": "a, b"}"#).unwrap_err().to_string(),
            "allow_from must be a list of open_ids"
        );
        assert!(gate_of(r#"{"dm_policy": "everyone"}"#).is_err());
    }
}
