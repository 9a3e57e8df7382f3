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
//! Outbound REST goes to `https://discord.com/api/v10` with `Authorization: Bot <token>` injected by the
//! host. State (settings, the bot's user id) lives in the workspace.

mod api;
mod gateway;
mod interaction;
mod settings;
mod text;

use airlock_channel::{
    bail, debug, secrets, warn, AgentResponse, Channel, ChannelConfig, Config, Endpoint, Request, Response, Result,
    Status, StatusUpdate,
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
        if response.content.trim().is_empty() {
            debug!("reply {} is empty: nothing sent", response.message_id);
            return Ok(());
        }
        match response.metadata_str("source") {
            Some("interaction") => {
                let app = response.metadata_str("application_id").unwrap_or_default();
                let token = response.metadata_str("interaction_token").unwrap_or_default();
                api::answer_interaction(app, token, &response.content)
            }
            Some("gateway") => {
                let channel_id = response.metadata_str("channel_id").unwrap_or_default();
                let in_guild = response.metadata.get("is_group").and_then(|v| v.as_bool()).unwrap_or(false);
                let reply_to = if in_guild { response.metadata_str("message_id") } else { None };
                api::send_message(channel_id, &response.content, reply_to).map(|_| ())
            }
            _ => bail!("the original message's metadata has no Discord source"),
        }
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
        let channel_id = api::open_dm(user_id)?;
        api::send_message(&channel_id, &response.content, None).map(|_| ())
    }
}

airlock_channel::export_channel!(Discord);
