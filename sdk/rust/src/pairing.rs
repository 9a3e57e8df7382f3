//! Pairing: who may talk to the agent in direct messages. An unknown sender gets a pairing code; the
//! operator approves it (`airlock pairing approve <channel> <code>`); afterwards the sender is resolved
//! to an owner and listed by [`allow_from`]. The `channel` argument must be the channel's own name.
//!
//! [`DmGate`] implements the `dm_policy` rule shared by the bundled channels. It is the host's rule
//! (`ChannelManager.admit` in `host/airlock/channels/manager.py`, which re-checks every emitted direct message),
//! so a message the gate lets through is never dropped by the host:
//!
//! | policy      | who gets through                                                                            |
//! |-------------|---------------------------------------------------------------------------------------------|
//! | `open`      | everyone                                                                                    |
//! | `allowlist` | the owner and `allow_from`; others dropped                                                  |
//! | `pairing`   | as `allowlist`, plus senders approved through pairing; others get a pairing code             |
//! | `disabled`  | no one, not even the owner (the host refuses every direct message under this policy)         |
//!
//! `allow_from` entries are platform user ids, compared exactly (surrounding space ignored); the entry `"*"`
//! admits every sender. Other patterns are not understood: an `"@name"` entry (a user name) admits no one,
//! here or at the host, because names are not identities. The host exempts messages whose metadata has
//! `"is_group": true` or a group `chat_type` from its re-check (they are left to the guest's mention rules).
//! One difference is on the safe side: under `allowlist` the host also admits paired ids, the gate does not.
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

/// The message that tells a new sender how to get approved: `To chat with this bot, ask the operator to
/// approve pairing code {code} (airlock pairing approve {channel} {code})`.
pub fn code_text(channel: &str, code: &str) -> String {
    format!("To chat with this bot, ask the operator to approve pairing code {code} (airlock pairing approve {channel} {code})")
}

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
    /// Extra allowed senders: platform user ids, compared exactly; `"*"` allows everyone.
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

    /// The decision from configuration alone (no host calls), by the rule in the [module docs](self):
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
    use crate::testing::MockHost;

    fn gate(policy: DmPolicy) -> DmGate {
        DmGate::new("c", policy).owner(Some("owner".into())).allow(vec!["friend".into(), " pal ".into()])
    }

    #[test]
    fn static_decisions() {
        assert_eq!(gate(DmPolicy::Open).decide("x", None), Decision::Allow);
        // Like the host: `disabled` refuses every direct message, the owner's and `*` included.
        assert_eq!(gate(DmPolicy::Disabled).decide("owner", None), Decision::Deny);
        assert_eq!(gate(DmPolicy::Disabled).decide("friend", None), Decision::Deny);
        assert_eq!(DmGate::new("c", DmPolicy::Disabled).allow(vec!["*".into()]).decide("z", None), Decision::Deny);
        assert_eq!(gate(DmPolicy::Allowlist).decide("friend", None), Decision::Allow);
        assert_eq!(gate(DmPolicy::Allowlist).decide("pal", None), Decision::Allow);
        assert_eq!(gate(DmPolicy::Allowlist).decide("u9", Some("friend")), Decision::Deny, "names are not ids");
        assert_eq!(gate(DmPolicy::Pairing).decide("u9", None), Decision::AskPairing);
        // `*` admits everyone (as at the host); other patterns and user names admit no one.
        assert_eq!(DmGate::new("c", DmPolicy::Allowlist).allow(vec![" * ".into()]).decide("z", None), Decision::Allow);
        assert_eq!(DmGate::new("c", DmPolicy::Pairing).allow(vec!["*".into()]).decide("z", None), Decision::Allow);
        let named = DmGate::new("c", DmPolicy::Allowlist).allow(vec!["@ada".into(), "U*".into()]);
        assert_eq!(named.decide("ada", Some("ada")), Decision::Deny);
        assert_eq!(named.decide("U1", None), Decision::Deny);
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
        assert_eq!(DmPolicy::from_config(None).unwrap(), DmPolicy::Pairing);
        assert_eq!(DmPolicy::from_config(Some(&Value::Null)).unwrap(), DmPolicy::Pairing);
        assert_eq!(DmPolicy::from_config(Some(&serde_json::json!(" "))).unwrap(), DmPolicy::Pairing);
        assert_eq!(DmPolicy::from_config(Some(&serde_json::json!("Allowlist"))).unwrap(), DmPolicy::Allowlist);
        assert!(DmPolicy::from_config(Some(&serde_json::json!(1)))
            .unwrap_err()
            .to_string()
            .contains("must be a string"));
        assert!(DmPolicy::from_config(Some(&serde_json::json!("all"))).is_err());
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

    #[test]
    fn admit_or_send_code_sends_once_and_logs() {
        let host = MockHost::install();
        let g = gate(DmPolicy::Pairing);
        let meta = serde_json::json!({});
        let mut sent = Vec::new();
        assert!(!g.admit_or_send_code("u9", None, &meta, |code| {
            sent.push(g.code_text(code));
            Ok::<(), String>(())
        }));
        assert_eq!(sent.len(), 1);
        assert!(sent[0].starts_with("To chat with this bot, ask the operator to approve pairing code "));
        assert!(sent[0].ends_with(")") && sent[0].contains("(airlock pairing approve c "));
        // The request exists now: no second code, and a failing sender is only logged.
        assert!(
            !g.admit_or_send_code("u9", None, &meta, |_| -> std::result::Result<(), String> { panic!("sent twice") })
        );
        assert!(!g.admit_or_send_code("u8", None, &meta, |_| Err::<(), _>("HTTP 500")));
        assert!(host.logs().iter().any(|(_, l)| l == "could not send the pairing code to u8: HTTP 500"));
        assert!(g.admit_or_send_code("friend", None, &meta, |_| Ok::<(), String>(())));
        assert!(!gate(DmPolicy::Allowlist).admit_or_send_code("u9", None, &meta, |_| Ok::<(), String>(())));
        assert!(host.logs().iter().any(|(_, l)| l == "DM from u9 on c dropped (dm_policy allowlist)"));
        assert_eq!(code_text("slack", "AB12"), g.code_text("AB12").replace(" c AB12", " slack AB12"));
    }
}
