//! Pairing: who may talk to the agent in direct messages. An unknown sender gets a pairing code; the
//! operator approves it (`airlock pairing approve <channel> <code>`); afterwards the sender is resolved
//! to an owner and listed by [`allow_from`]. The `channel` argument must be the channel's own name.
//!
//! [`DmGate`] implements the `dm_policy` rule shared by the bundled channels:
//!
//! | policy      | who gets through                                                                 |
//! |-------------|----------------------------------------------------------------------------------|
//! | `open`      | everyone                                                                         |
//! | `allowlist` | the owner and the ids in `allow_from`; others dropped                            |
//! | `pairing`   | as `allowlist`, plus senders approved through pairing; others get a pairing code  |
//! | `disabled`  | only the owner                                                                    |
//!
//! `allow_from` entries are platform user ids, compared exactly. The host re-checks every emitted direct
//! message with the same rule (`owner_id`, `allow_from` ids, approved pairings; messages whose metadata
//! has `"is_group": true` or a group `chat_type` are exempt), so a broader rule in a guest (wildcards,
//! user names) would only be overruled there: the message would be dropped with a host warning.
//!
//! ```no_run
//! use airlock_channel::pairing::{Admission, DmGate, DmPolicy};
//!
//! # fn main() -> airlock_channel::Result<()> {
//! let gate = DmGate::new("mychannel", DmPolicy::parse("pairing")?);
//! match gate.admit("U1", Some("ada"), &serde_json::json!({"name": "Ada"})) {
//!     Admission::Allowed => { /* emit the message */ }
//!     Admission::Pairing { code, created: true } => { /* tell the sender the code once */ let _ = code; }
//!     Admission::Pairing { .. } | Admission::Denied => { /* drop it */ }
//! }
//! # Ok(()) }
//! ```

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::sys;

/// Result of [`upsert`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upsert {
    /// The pairing code to show to the sender.
    pub code: String,
    /// True when this call created the request (tell the sender only then).
    pub created: bool,
}

/// Create (or find) the pending pairing request of `id`. `meta` is shown to the operator.
pub fn upsert(channel: &str, id: &str, meta: &Value) -> Result<Upsert> {
    sys::pairing_upsert_request(channel, id, &meta.to_string())
        .map(|(code, created)| Upsert { code, created })
        .map_err(|e| Error::new(format!("pairing: {e}")))
}

/// The owner an approved `external_id` is paired with, or `None` if not approved.
pub fn resolve(channel: &str, external_id: &str) -> Result<Option<String>> {
    sys::pairing_resolve_identity(channel, external_id).map_err(|e| Error::new(format!("pairing: {e}")))
}

/// Every approved external id of the channel.
pub fn allow_from(channel: &str) -> Result<Vec<String>> {
    sys::pairing_read_allow_from(channel).map_err(|e| Error::new(format!("pairing: {e}")))
}

/// True when `external_id` was approved through pairing: it [`resolve`]s to an owner or is listed by
/// [`allow_from`]. Store failures are logged as warnings and count as "not approved" (fail closed).
pub fn is_approved(channel: &str, external_id: &str) -> bool {
    match resolve(channel, external_id) {
        Ok(Some(_)) => return true,
        Ok(None) => {}
        Err(e) => crate::log::warn(&format!("{e} (resolving {external_id})")),
    }
    match allow_from(channel) {
        Ok(ids) => ids.iter().any(|id| id == external_id),
        Err(e) => {
            crate::log::warn(&format!("{e} (reading allow_from)"));
            false
        }
    }
}

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
    /// Only the owner.
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

/// The `dm_policy` rule for one channel (see the [module docs](self)).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DmGate {
    /// Channel name (the pairing store's key).
    pub channel: String,
    /// The policy.
    pub policy: DmPolicy,
    /// The owner's platform id: always allowed.
    #[serde(default)]
    pub owner_id: Option<String>,
    /// Extra allowed senders: platform user ids, compared exactly.
    #[serde(default)]
    pub allow_from: Vec<String>,
}

impl DmGate {
    /// A gate with no owner and an empty `allow_from`.
    pub fn new(channel: impl Into<String>, policy: DmPolicy) -> Self {
        DmGate { channel: channel.into(), policy, owner_id: None, allow_from: Vec::new() }
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

    /// The decision from configuration alone (no host calls). `sender_name` is not used for the decision
    /// (names are not identities); it is accepted so callers can pass what they pass to [`admit`](DmGate::admit).
    pub fn decide(&self, sender_id: &str, sender_name: Option<&str>) -> Decision {
        let _ = sender_name;
        let is_owner = self.owner_id.as_deref() == Some(sender_id);
        match self.policy {
            DmPolicy::Open => return Decision::Allow,
            DmPolicy::Disabled => return if is_owner { Decision::Allow } else { Decision::Deny },
            DmPolicy::Allowlist | DmPolicy::Pairing => {}
        }
        if is_owner || self.allow_from.iter().any(|e| e.trim() == sender_id) {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::MockHost;

    fn gate(policy: DmPolicy) -> DmGate {
        DmGate::new("c", policy).owner(Some("owner".into())).allow(vec!["friend".into(), " pal ".into()])
    }

    #[test]
    fn static_decisions() {
        assert_eq!(gate(DmPolicy::Open).decide("x", None), Decision::Allow);
        assert_eq!(gate(DmPolicy::Disabled).decide("owner", None), Decision::Allow);
        assert_eq!(gate(DmPolicy::Disabled).decide("friend", None), Decision::Deny);
        assert_eq!(gate(DmPolicy::Allowlist).decide("friend", None), Decision::Allow);
        assert_eq!(gate(DmPolicy::Allowlist).decide("pal", None), Decision::Allow);
        assert_eq!(gate(DmPolicy::Allowlist).decide("u9", Some("friend")), Decision::Deny, "names are not ids");
        assert_eq!(gate(DmPolicy::Pairing).decide("u9", None), Decision::AskPairing);
        // The host's re-check knows no wildcard, so neither does the gate.
        assert_eq!(DmGate::new("c", DmPolicy::Allowlist).allow(vec!["*".into()]).decide("z", None), Decision::Deny);
    }

    #[test]
    fn is_approved_reads_the_store_of_the_channel() {
        let host = MockHost::install();
        assert!(!is_approved("c", "U1"));
        host.approve_pairing("c", "U1", "owner");
        assert!(is_approved("c", "U1"));
        assert!(!is_approved("other", "U1") && !is_approved("c", "U2"));
    }

    #[test]
    fn parse_policy() {
        assert_eq!(DmPolicy::parse(" Open ").unwrap(), DmPolicy::Open);
        assert!(DmPolicy::parse("everyone").is_err());
        for p in [DmPolicy::Open, DmPolicy::Allowlist, DmPolicy::Pairing, DmPolicy::Disabled] {
            assert_eq!(DmPolicy::parse(p.as_str()).unwrap(), p);
        }
    }

    #[test]
    fn pairing_flow() {
        let host = MockHost::install();
        let g = gate(DmPolicy::Pairing);
        let meta = serde_json::json!({"name": "Zed"});
        let first = g.admit("u9", Some("Zed"), &meta);
        assert!(matches!(first, Admission::Pairing { created: true, .. }));
        assert!(host.logs().iter().any(|(_, l)| l.starts_with("pairing requested by u9 (Zed) on c: code ")));
        let second = g.admit("u9", None, &meta);
        assert!(matches!(second, Admission::Pairing { created: false, .. }));
        assert_eq!(host.pairing_requests()[0].2, r#"{"name":"Zed"}"#);
        host.approve_pairing("c", "u9", "owner-1");
        assert_eq!(g.admit("u9", None, &meta), Admission::Allowed);
        assert_eq!(gate(DmPolicy::Allowlist).admit("u9", None, &meta), Admission::Denied);
    }
}
