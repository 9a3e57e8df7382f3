//! Feishu / Lark channel for Airlock.
//!
//! In: event subscription callbacks on `POST /webhook/feishu`, verified (and decrypted, when an Encrypt
//! Key is set) by the host (`webhook.scheme: "feishu"`). `url_verification` is answered with its
//! challenge; `im.message.receive_v1` text messages are emitted: p2p chats subject to `dm_policy`, group
//! chats only when the bot is @-mentioned; messages from apps (the bot itself included) are ignored.
//!
//! Out: `POST /open-apis/im/v1/messages/{message_id}/reply` with the tenant access token, which is fetched
//! with the app id and secret filled in by the host and cached in the workspace (see `token`).

mod api;
mod event;
mod settings;
mod text;
mod token;

use airlock_channel::{
    bail, debug, secrets, warn, AgentResponse, Channel, ChannelConfig, Config, Endpoint, MessageEdit, Request,
    Response, Result,
};

use settings::Settings;
use text::is_feishu_id;

pub const WEBHOOK_PATH: &str = "/webhook/feishu";
const APP_SECRETS: [&str; 2] = ["feishu_app_id", "feishu_app_secret"];

pub struct Feishu;

impl Channel for Feishu {
    fn on_start(config: Config) -> Result<ChannelConfig> {
        let settings = Settings::from_config(&config)?;
        settings.save()?;
        for name in APP_SECRETS {
            if !secrets::exists(name) {
                warn!("secret {name} is not set: replies will fail until it is stored");
            }
        }
        Ok(ChannelConfig::new("Feishu").endpoint(Endpoint::post(WEBHOOK_PATH).require_secret(true)))
    }

    fn on_http_request(req: &Request) -> Response {
        if req.path != WEBHOOK_PATH {
            return Response::not_found();
        }
        if req.method != "POST" {
            return Response::new(405);
        }
        if !req.secret_validated {
            warn!("event callback not verified by the host: refused");
            return Response::unauthorized();
        }
        event::handle(&req.body)
    }

    fn on_respond(response: &AgentResponse) -> Result<()> {
        Self::on_send(response).map(drop)
    }

    /// The reply; returns the id of its last message (world 0.2.0: edits name it).
    fn on_send(response: &AgentResponse) -> Result<Option<String>> {
        if response.content.trim().is_empty() {
            debug!("reply {} is empty: nothing sent", response.message_id);
            return Ok(None);
        }
        let Some(message_id) = response.metadata_str("message_id") else {
            bail!("the original message's metadata has no Feishu message_id");
        };
        let in_thread = response.metadata_str("thread_id").is_some();
        let ids = api::reply(&Settings::load()?, message_id, &response.content, in_thread)?;
        Ok(ids.into_iter().next_back().filter(|id| is_feishu_id(id)))
    }

    fn on_broadcast(user_id: &str, response: &AgentResponse) -> Result<()> {
        Self::on_send_broadcast(user_id, response).map(drop)
    }

    fn on_send_broadcast(user_id: &str, response: &AgentResponse) -> Result<Option<String>> {
        let ids = api::send_to_user(&Settings::load()?, user_id, &response.content)?;
        Ok(ids.into_iter().next_back().filter(|id| is_feishu_id(id)))
    }

    /// Streamed replies (world 0.2.0): Feishu's "edit message" (`PUT`), at most 20 edits of a message.
    fn on_edit(edit: &MessageEdit) -> Result<()> {
        api::edit_message(&Settings::load()?, &edit.platform_message_id, &edit.content)
    }
}

airlock_channel::export_channel!(Feishu);
