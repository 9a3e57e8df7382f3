//! Slack channel for Airlock: the Events API webhook in, `chat.postMessage` out, `chat.update` for edits
//! (world 0.2.0: replies return their `ts`, streamed replies become edits of one message).
//!
//! Behaviour lives in [`channel`] (over the SDK's host wrappers, unit-tested natively with `airlock_channel::testing::MockHost`); this file only binds
//! it to the SDK's [`Channel`] trait. `on-status` does nothing: a Slack bot has no typing indicator in the
//! Events API, and posting "thinking..." messages would add noise to the conversation.

pub mod channel;
pub mod config;
pub mod events;
pub mod files;

#[cfg(test)]
mod channel_tests;

use airlock_channel::{
    AgentResponse, Channel, ChannelConfig, Config, Endpoint, Error, MessageEdit, Request, Response, Result,
};
use serde_json::Value;

use crate::channel::{Reply, WEBHOOK_PATH};

fn reply(response: &AgentResponse) -> Reply<'_> {
    Reply {
        content: &response.content,
        thread_id: response.thread_id.as_deref(),
        metadata: &response.metadata,
        attachments: &response.attachments,
    }
}

pub struct Slack;

impl Channel for Slack {
    fn on_start(config: Config) -> Result<ChannelConfig> {
        channel::start(&Value::Object(config.as_map().clone())).map_err(Error::new)?;
        Ok(ChannelConfig::new("Slack").endpoint(Endpoint::post(WEBHOOK_PATH).require_secret(true)))
    }

    fn on_http_request(req: &Request) -> Response {
        let request = channel::Request {
            method: &req.method,
            path: &req.path,
            body: &req.body,
            secret_validated: req.secret_validated,
        };
        let out = channel::handle_request(&request);
        Response::json(out.status, &out.body)
    }

    fn on_respond(response: &AgentResponse) -> Result<()> {
        Self::on_send(response).map(drop)
    }

    fn on_broadcast(user_id: &str, response: &AgentResponse) -> Result<()> {
        Self::on_send_broadcast(user_id, response).map(drop)
    }

    fn on_send(response: &AgentResponse) -> Result<Option<String>> {
        channel::respond(&reply(response)).map_err(Error::new)
    }

    fn on_send_broadcast(user_id: &str, response: &AgentResponse) -> Result<Option<String>> {
        channel::broadcast(user_id, &reply(response)).map_err(Error::new)
    }

    fn on_edit(edit: &MessageEdit) -> Result<()> {
        channel::edit(&edit.platform_message_id, &edit.content, &edit.metadata).map_err(Error::new)
    }
}

airlock_channel::export_channel!(Slack);
