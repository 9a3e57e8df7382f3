//! WeCom (企业微信) channel for Airlock, two ways in, both optional:
//!
//! * the AI bot's long connection ([`bot`]): the host runs the `wecom_aibot` websocket with the stored bot id
//!   and secret; message callbacks reach the channel as websocket frames and replies go back on the socket;
//! * a self-built app's callback URL ([`app`]): `GET`/`POST /webhook/wecom`, whose `msg_signature` and
//!   AES-encrypted bodies the host verifies and decrypts (webhook scheme `wecom`); replies go out through the
//!   app's `message/send` with an access token fetched with credentials the host adds ([`api`]).
//!
//! The channel never holds a stored secret. Direct messages pass `dm_policy` (the SDK's `DmGate`, re-checked by
//! the host); in a group the AI bot only receives messages that @mention it, and those are relayed.

pub mod api;
pub mod app;
pub mod bot;
pub mod crypt;
pub mod dedupe;
pub mod media;
pub mod settings;
pub mod upload;
pub mod xml;

#[cfg(test)]
mod channel_tests;

use airlock_channel::{
    bail, debug, info, secrets, warn, AgentResponse, Channel, ChannelConfig, Config, Endpoint, Request, Response,
    Result,
};

use crate::settings::Settings;

/// Secrets of the self-built app (callback mode and app replies); the bot's are required by the file.
const APP_SECRETS: [&str; 4] = ["wecom_corp_id", "wecom_corp_secret", "wecom_callback_token", "wecom_callback_aes_key"];

pub struct Wecom;

impl Channel for Wecom {
    fn on_start(config: Config) -> Result<ChannelConfig> {
        let settings = Settings::from_config(&config)?;
        settings.save()?;
        let missing: Vec<&str> = APP_SECRETS.into_iter().filter(|name| !secrets::exists(name)).collect();
        if !missing.is_empty() {
            // The bot's long connection works without them: worth a note, not a warning.
            info!("app callbacks and app replies need secrets {} (not stored)", missing.join(", "));
        }
        let endpoint = Endpoint::new(app::WEBHOOK_PATH, &["GET", "POST"]).require_secret(true);
        Ok(ChannelConfig::new("WeCom").endpoint(endpoint))
    }

    fn on_http_request(req: &Request) -> Response {
        if req.is_websocket_frame() {
            if let Err(e) = bot::handle(&req.body) {
                warn!("long-connection frame not handled: {e}");
            }
            return Response::ok();
        }
        if req.path != app::WEBHOOK_PATH {
            return Response::not_found();
        }
        app::handle(req)
    }

    fn on_respond(response: &AgentResponse) -> Result<()> {
        if response.content.trim().is_empty() && response.attachments.is_empty() {
            debug!("reply {} is empty: nothing sent", response.message_id);
            return Ok(());
        }
        let userid = response.metadata_str("userid").unwrap_or_default();
        match response.metadata_str("mode") {
            Some("bot") => {
                let Some(req_id) = response.metadata_str("req_id") else { bail!("bot message without req_id") };
                let chat = response.metadata_str("chat_id").unwrap_or(userid);
                let notes = upload::start(chat, &response.message_id, &response.attachments)?;
                let text = with_notes(&response.content, &notes);
                if text.is_empty() {
                    return Ok(());
                }
                bot::reply(req_id, chat, &text)
            }
            Some("app") => {
                let agent = response.metadata.get("agent_id").and_then(|v| v.as_u64());
                let text = with_notes(&response.content, &app_file_notes(response));
                app::reply(&Settings::load()?, userid, agent, &text)
            }
            _ => bail!("the original message's metadata has no WeCom mode"),
        }
    }

    /// Through the app when it is configured (`agent_id` and the corp secret), else on the bot's connection.
    fn on_broadcast(user_id: &str, response: &AgentResponse) -> Result<()> {
        let settings = Settings::load()?;
        match settings.agent_id {
            Some(agent) if secrets::exists("wecom_corp_secret") => {
                let text = with_notes(&response.content, &app_file_notes(response));
                api::send_text(&settings.api_base, agent, user_id, &text)
            }
            _ => {
                let notes = upload::start(user_id, &response.message_id, &response.attachments)?;
                let text = with_notes(&response.content, &notes);
                if text.is_empty() {
                    return Ok(());
                }
                bot::send(user_id, &text)
            }
        }
    }
}

/// `text` with `notes` on lines of their own (trimmed; empty when both are).
fn with_notes(text: &str, notes: &[String]) -> String {
    let text = text.trim();
    std::iter::once(text)
        .chain(notes.iter().map(String::as_str))
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The self-built app path sends text only: one note for the files of `response`, if any.
fn app_file_notes(response: &AgentResponse) -> Vec<String> {
    let n = response.attachments.len();
    if n == 0 {
        return Vec::new();
    }
    warn!("{n} file(s) of reply {} not sent: app replies carry text only", response.message_id);
    vec![format!("[{n} file(s) not sent: this conversation takes text only]")]
}

airlock_channel::export_channel!(Wecom);
