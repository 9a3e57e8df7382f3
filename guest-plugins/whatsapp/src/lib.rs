//! WhatsApp Cloud API channel for Airlock: the signed webhook in, the Graph messages endpoint out.
//!
//! Behaviour lives in [`channel`] (over the SDK's host wrappers, unit-tested natively with `airlock_channel::testing::MockHost`); this file only binds
//! it to the SDK's [`Channel`] trait. `on-status` does nothing: the Cloud API's typing indicator needs the
//! id of a message to mark as read, and a read receipt the user did not expect is worse than none.

pub mod channel;
pub mod config;
pub mod webhook;

#[cfg(test)]
mod channel_tests;

use airlock_channel::{AgentResponse, Channel, ChannelConfig, Config, Endpoint, Error, Request, Response, Result};
use serde_json::Value;

use crate::channel::{Reply, WEBHOOK_PATH};

fn reply(response: &AgentResponse) -> Reply<'_> {
    Reply { content: &response.content, metadata: &response.metadata, attachments: response.attachments.len() }
}

pub struct WhatsApp;

impl Channel for WhatsApp {
    fn on_start(config: Config) -> Result<ChannelConfig> {
        channel::start(&Value::Object(config.as_map().clone())).map_err(Error::new)?;
        let endpoint = Endpoint::new(WEBHOOK_PATH, &["GET", "POST"]).require_secret(true);
        Ok(ChannelConfig::new("WhatsApp").endpoint(endpoint))
    }

    fn on_http_request(req: &Request) -> Response {
        let query = Value::Object(req.query.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect());
        let request = channel::Request {
            method: &req.method,
            path: &req.path,
            query: &query,
            body: &req.body,
            secret_validated: req.secret_validated,
        };
        let out = channel::handle_request(&request);
        Response::new(out.status).with_header("Content-Type", out.content_type).with_body(out.body)
    }

    fn on_respond(response: &AgentResponse) -> Result<()> {
        channel::respond(&reply(response)).map_err(Error::new)
    }

    fn on_broadcast(user_id: &str, response: &AgentResponse) -> Result<()> {
        channel::broadcast(user_id, &reply(response)).map_err(Error::new)
    }
}

airlock_channel::export_channel!(WhatsApp);
