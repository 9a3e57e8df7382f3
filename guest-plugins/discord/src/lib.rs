//! Discord channel for Airlock.
//!
//! Two ways in:
//! - the interactions webhook `POST /webhook/discord` (signature and timestamp checked by the host,
//!   `webhook.scheme: "discord"`): PING is answered with PONG, a slash command is deferred at once and
//!   emitted; the agent's reply edits the deferred response;
//! - the gateway websocket, run by the host (`websocket.protocol: "discord"`; IDENTIFY is built by the host
//!   with the bot token, which the channel never sees): READY teaches the channel its own user id;
//!   MESSAGE_CREATE in a DM (subject to `dm_policy`) or mentioning the bot in a guild is emitted, and the
//!   reply is posted by REST in the same channel (thread), referencing the message in guilds.
//!
//! Replies return the id of the message they became (world 0.2.0), and a streamed reply edits it (`PATCH` the
//! message, or the interaction's response).
//!
//! Outbound REST goes to `https://discord.com/api/v10` with `Authorization: Bot <token>` injected by the
//! host. State (settings, the bot's user id) lives in the workspace.

mod api;
mod files;
mod gateway;
mod interaction;
mod settings;
mod text;

use airlock_channel::{
    bail, debug, secrets, warn, AgentResponse, Channel, ChannelConfig, Config, Endpoint, Error, MessageEdit, Request,
    Response, Result, Status, StatusUpdate,
};

use settings::Settings;
use text::is_snowflake;

pub const WEBHOOK_PATH: &str = "/webhook/discord";
const TOKEN_SECRET: &str = "discord_bot_token";

pub struct Discord;

impl Channel for Discord {
    fn on_start(config: Config) -> Result<ChannelConfig> {
        let settings = Settings::from_config(&config)?;
        settings.save()?;
        if !secrets::exists(TOKEN_SECRET) {
            warn!("secret {TOKEN_SECRET} is not set: the gateway stays closed and replies will fail");
        }
        Ok(ChannelConfig::new("Discord").endpoint(Endpoint::post(WEBHOOK_PATH).require_secret(true)))
    }

    fn on_http_request(req: &Request) -> Response {
        if req.is_websocket_frame() {
            if let Err(e) = gateway::handle(&req.body) {
                warn!("gateway dispatch not handled: {e}");
            }
            return Response::ok();
        }
        if req.path != WEBHOOK_PATH {
            return Response::not_found();
        }
        if req.method != "POST" {
            return Response::new(405);
        }
        if !req.secret_validated {
            warn!("interaction without a host-verified signature: refused");
            return Response::unauthorized();
        }
        interaction::handle(&req.body)
    }

    fn on_respond(response: &AgentResponse) -> Result<()> {
        Self::on_send(response).map(drop)
    }

    /// The reply; returns the id of its last message (world 0.2.0: edits name it).
    fn on_send(response: &AgentResponse) -> Result<Option<String>> {
        let files = &response.attachments;
        if response.content.trim().is_empty() && files.is_empty() {
            debug!("reply {} is empty: nothing sent", response.message_id);
            return Ok(None);
        }
        let ids = match response.metadata_str("source") {
            Some("interaction") => {
                let app = response.metadata_str("application_id").unwrap_or_default();
                let token = response.metadata_str("interaction_token").unwrap_or_default();
                let text = if response.content.trim().is_empty() { "(files)" } else { &response.content };
                let ids = api::answer_interaction(app, token, text)?;
                if !files.is_empty() {
                    api::interaction_files(app, token, files)?;
                }
                ids // edits replace the text of the answer, not the files' follow-up
            }
            Some("gateway") => {
                let channel_id = response.metadata_str("channel_id").unwrap_or_default();
                let in_guild = response.metadata.get("is_group").and_then(|v| v.as_bool()).unwrap_or(false);
                let reply_to = if in_guild { response.metadata_str("message_id") } else { None };
                api::send_message(channel_id, &response.content, reply_to, files)?
            }
            _ => bail!("the original message's metadata has no Discord source"),
        };
        Ok(ids.into_iter().next_back().filter(|id| is_snowflake(id)))
    }

    /// Streamed replies (world 0.2.0): `PATCH` the message in its channel, or the interaction's response.
    fn on_edit(edit: &MessageEdit) -> Result<()> {
        let interaction = match edit.metadata_str("source") {
            Some("interaction") => Some((
                edit.metadata_str("application_id").unwrap_or_default(),
                edit.metadata_str("interaction_token").unwrap_or_default(),
            )),
            Some("gateway") => None,
            _ => return Err(Error::permanent("the original message's metadata has no Discord source")),
        };
        let channel_id = edit.metadata_str("channel_id").unwrap_or_default();
        api::edit_message(channel_id, &edit.platform_message_id, interaction, &edit.content)
    }

    fn on_status(update: &StatusUpdate) -> Result<()> {
        // Interactions already show "thinking..." while deferred; gateway messages get a typing indicator.
        if update.status != Status::Thinking || update.metadata_str("source") != Some("gateway") {
            return Ok(());
        }
        match update.metadata_str("channel_id") {
            Some(channel_id) if is_snowflake(channel_id) => api::trigger_typing(channel_id),
            _ => Ok(()),
        }
    }

    fn on_broadcast(user_id: &str, response: &AgentResponse) -> Result<()> {
        Self::on_send_broadcast(user_id, response).map(drop)
    }

    fn on_send_broadcast(user_id: &str, response: &AgentResponse) -> Result<Option<String>> {
        let channel_id = api::open_dm(user_id)?;
        let ids = api::send_message(&channel_id, &response.content, None, &response.attachments)?;
        Ok(ids.into_iter().next_back())
    }
}

airlock_channel::export_channel!(Discord);

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_channel::testing::MockHost;
    use serde_json::json;

    const CHANNEL: &str = "1200000000000000001";

    #[test]
    fn replies_return_the_last_message_id_and_edits_patch_it() {
        let host = MockHost::install();
        let meta = json!({"source": "gateway", "channel_id": CHANNEL, "is_group": false});
        host.queue_http(200, r#"{"id": "1300000000000000007"}"#);
        let sent = Discord::on_send(&AgentResponse::new("r1", "hello").with_metadata(meta.clone())).unwrap();
        assert_eq!(sent.as_deref(), Some("1300000000000000007"));
        host.queue_http(200, r#"{"id": "1300000000000000007"}"#);
        Discord::on_edit(&MessageEdit::new("1300000000000000007", "hello, world").with_metadata(meta.clone())).unwrap();
        let calls = host.http_calls();
        assert_eq!(calls[1].method, "PATCH");
        assert_eq!(calls[1].url, format!("{}/channels/{CHANNEL}/messages/1300000000000000007", api::API));
        assert_eq!(calls[1].json()["content"], "hello, world");
        assert_eq!(calls[1].json()["allowed_mentions"], json!({"parse": [], "replied_user": false}));
        // ids are checked before any request; a platform error is the guest's unclassified error
        assert!(Discord::on_edit(&MessageEdit::new("../x", "t").with_metadata(meta.clone())).is_err());
        let unknown = Discord::on_edit(&MessageEdit::new("1", "t").with_metadata(json!({}))).unwrap_err();
        assert_eq!(unknown.class(), Some(airlock_channel::SendClass::Permanent));
        host.queue_http(404, r#"{"message": "Unknown Message", "code": 10008}"#);
        assert!(Discord::on_edit(&MessageEdit::new("13", "t").with_metadata(meta)).is_err());
        assert_eq!(host.http_calls().len(), 3);
    }

    #[test]
    fn files_go_with_the_last_chunk_as_multipart() {
        let host = MockHost::install();
        let meta = json!({"source": "gateway", "channel_id": CHANNEL, "is_group": false});
        let data = b"\x89PNG--airlock-discord-0000000000000000".to_vec();
        let file = airlock_channel::Attachment { filename: "c.png".into(), mime_type: "image/png".into(), data };
        host.queue_http(200, r#"{"id": "1300000000000000011"}"#);
        let reply = AgentResponse::new("r1", "see").with_metadata(meta);
        let reply = AgentResponse { attachments: vec![file], ..reply };
        assert_eq!(Discord::on_send(&reply).unwrap().as_deref(), Some("1300000000000000011"));
        let call = &host.http_calls()[0];
        let ctype = call.headers.get("Content-Type").cloned().unwrap_or_default();
        assert_eq!(ctype, "multipart/form-data; boundary=airlock-discord-0000000000000001");
        let body = String::from_utf8_lossy(call.body.as_deref().unwrap()).into_owned();
        assert!(body.contains(r#"name="files[0]"; filename="c.png""#) && body.contains("Content-Type: image/png"));
        assert!(body.contains(r#""attachments":[{"filename":"c.png","id":0}]"#), "{body}");
    }

    #[test]
    fn interaction_replies_are_edited_through_the_webhook() {
        let host = MockHost::install();
        let token = "a".repeat(80);
        let meta =
            json!({"source": "interaction", "application_id": "1100000000000000001", "interaction_token": token});
        host.queue_http(200, r#"{"id": "1300000000000000009"}"#);
        let sent = Discord::on_send(&AgentResponse::new("r1", "thinking done").with_metadata(meta.clone())).unwrap();
        assert_eq!(sent.as_deref(), Some("1300000000000000009"));
        host.queue_http(200, r#"{"id": "1300000000000000009"}"#);
        Discord::on_edit(&MessageEdit::new("1300000000000000009", "more").with_metadata(meta)).unwrap();
        let url = &host.http_calls()[1].url;
        assert_eq!(url, &format!("{}/webhooks/1100000000000000001/{token}/messages/1300000000000000009", api::API));
    }
}
