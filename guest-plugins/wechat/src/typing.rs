//! `on-status`: the typing indicator. `thinking` turns it on, `done` and `interrupted` off (the host repeats
//! `thinking` every few seconds until the reply). `sendtyping` needs a typing ticket per user from `getconfig`;
//! tickets are kept for [`TICKET_TTL_MS`] so a repeated `thinking` costs one request, not two. Turning the
//! indicator off never fetches a ticket: without one it was never on.

use airlock_channel::{now_millis, workspace, Result, Status, StatusUpdate};
use serde::{Deserialize, Serialize};

use crate::api::{self, TYPING_OFF, TYPING_ON};
use crate::settings::Settings;

/// Typing tickets by user (not durable: a restart fetches new ones).
pub const TICKETS_PATH: &str = "state/typing_tickets";
/// How long a ticket is reused (IronClaw's wechat channel keeps them a day).
pub const TICKET_TTL_MS: u64 = 24 * 60 * 60 * 1000;
/// Users whose ticket is kept; the oldest are forgotten beyond this.
pub const MAX_TICKETS: usize = 256;

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Ticket {
    user: String,
    ticket: String,
    fetched_ms: u64,
}

fn cached(user: &str) -> Option<String> {
    let tickets: Vec<Ticket> = workspace::read_json(TICKETS_PATH).ok().flatten().unwrap_or_default();
    let now = now_millis();
    tickets.into_iter().find(|t| t.user == user && now.saturating_sub(t.fetched_ms) < TICKET_TTL_MS).map(|t| t.ticket)
}

fn remember(user: &str, ticket: &str) -> Result<()> {
    let mut tickets: Vec<Ticket> = workspace::read_json(TICKETS_PATH).ok().flatten().unwrap_or_default();
    tickets.retain(|t| t.user != user);
    tickets.push(Ticket { user: user.to_string(), ticket: ticket.to_string(), fetched_ms: now_millis() });
    let excess = tickets.len().saturating_sub(MAX_TICKETS);
    tickets.drain(..excess);
    workspace::write_json(TICKETS_PATH, &tickets)
}

/// Turn the indicator on or off for the sender of the message being worked on.
pub fn status(update: &StatusUpdate) -> Result<()> {
    let status = match update.status {
        Status::Thinking => TYPING_ON,
        Status::Done | Status::Interrupted => TYPING_OFF,
        _ => return Ok(()),
    };
    let Some(user) = update.metadata_str("from_user_id") else { return Ok(()) };
    let settings = Settings::load()?;
    let ticket = match cached(user) {
        Some(ticket) => ticket,
        None if status == TYPING_OFF => return Ok(()),
        None => {
            let ticket = api::typing_ticket(&settings, user, update.metadata_str("context_token"))?;
            remember(user, &ticket)?;
            ticket
        }
    };
    api::send_typing(&settings, user, &ticket, status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_channel::testing::MockHost;
    use airlock_channel::{Channel, Config};
    use serde_json::json;
    use std::collections::BTreeMap;

    fn update(status: Status, user: &str) -> StatusUpdate {
        StatusUpdate { status, message: String::new(), metadata: json!({"from_user_id": user, "context_token": "ctx"}) }
    }

    #[test]
    fn ticket_fetched_once_then_reused_until_it_ages() {
        let host = MockHost::install();
        crate::WeChat::on_start(Config::from_json("{}").unwrap()).unwrap();
        host.on_http(|call| {
            if call.url.ends_with("/getconfig") {
                assert_eq!(
                    (call.json()["ilink_user_id"].as_str(), call.json()["context_token"].as_str()),
                    (Some("u"), Some("ctx"))
                );
                return Ok((200, BTreeMap::new(), br#"{"ret":0,"typing_ticket":"dGlja2V0"}"#.to_vec()));
            }
            Ok((200, BTreeMap::new(), br#"{"ret":0}"#.to_vec()))
        });
        status(&update(Status::Done, "u")).unwrap();
        assert!(host.http_calls().is_empty(), "off without a ticket: nothing to turn off");
        status(&update(Status::Thinking, "u")).unwrap();
        status(&update(Status::Thinking, "u")).unwrap();
        status(&update(Status::ToolStarted, "u")).unwrap();
        status(&update(Status::Done, "u")).unwrap();
        let paths: Vec<String> =
            host.http_calls().iter().map(|c| c.url.rsplit('/').next().unwrap().to_string()).collect();
        assert_eq!(paths, ["getconfig", "sendtyping", "sendtyping", "sendtyping"]);
        let calls = host.http_calls();
        assert_eq!((calls[1].json()["status"].as_i64(), calls[3].json()["status"].as_i64()), (Some(1), Some(2)));
        assert_eq!(calls[1].json()["typing_ticket"], "dGlja2V0");
        host.set_now(1_700_000_000_000 + TICKET_TTL_MS);
        status(&update(Status::Thinking, "u")).unwrap();
        assert_eq!(host.http_calls().iter().filter(|c| c.url.ends_with("/getconfig")).count(), 2);
    }

    #[test]
    fn refusals_are_errors_and_tickets_are_bounded() {
        let host = MockHost::install();
        crate::WeChat::on_start(Config::from_json("{}").unwrap()).unwrap();
        host.queue_http(200, r#"{"ret":-1,"errmsg":"no"}"#);
        assert_eq!(status(&update(Status::Thinking, "u")).unwrap_err().to_string(), "getconfig refused: -1 (no)");
        for n in 0..MAX_TICKETS + 3 {
            remember(&format!("u{n}"), "t").unwrap();
        }
        let stored: Vec<Ticket> = serde_json::from_str(&host.workspace_get(TICKETS_PATH).unwrap()).unwrap();
        assert_eq!((stored.len(), stored[0].user.as_str()), (MAX_TICKETS, "u3"));
    }
}
