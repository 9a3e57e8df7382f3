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

use serde_json::Value;

use crate::error::{Error, Result};
use crate::sys;

mod gate;

pub use gate::{Admission, Decision, DmGate, DmPolicy, ALLOW_ALL};

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
