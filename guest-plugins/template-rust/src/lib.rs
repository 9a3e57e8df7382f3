//! Template channel: a generic JSON webhook, written with the `airlock-channel` SDK. Copy it to start a
//! channel of your own (see "Writing a channel in Rust" in the repository README).
//!
//! - `POST /webhook/template-rust` with `{"user": "u1", "text": "hello", "name": "Ada", "thread": "t1",
//!   "id": "m-1"}` becomes a message for the agent. The host checks the `X-Airlock-Webhook-Secret` header
//!   before this code runs (the capabilities file's `webhook` block; the secret is generated on first
//!   start, `airlock secrets list` shows its name).
//! - Direct-message policy (`dm_policy` in the config) through the pairing store: an unknown sender under
//!   `pairing` gets a pairing code in the HTTP answer, once; the operator approves it with
//!   `airlock pairing approve template-rust <code>`.
//! - A repeated `id` (a platform retrying a delivery) is answered `duplicate` and not emitted again; the
//!   recent ids live in the workspace (`state/seen`, durable; the SDK's `workspace::RecentIds`).
//! - The agent's reply is POSTed as JSON `{"user", "text", "thread", "in_reply_to", "message_id"}` to
//!   `config.reply_url`, which must be on the capabilities file's HTTP allow-list; if the secret
//!   `template_rust_reply_token` is stored, the host adds it as a bearer token.

pub mod inbound;
pub mod settings;

use airlock_channel::pairing::Admission;
use airlock_channel::workspace::RecentIds;
use airlock_channel::{
    emit, export_channel, http, info, warn, AgentResponse, Channel, ChannelConfig, Config, Context, Endpoint, Request,
    Response, Result,
};
use serde_json::json;

use crate::inbound::Inbound;
use crate::settings::{Settings, CHANNEL};

/// The webhook path (also in the capabilities file's `allowed_paths`).
pub const WEBHOOK_PATH: &str = "/webhook/template-rust";
/// Workspace path of the recent message ids.
pub const SEEN_PATH: &str = "state/seen";
/// How many message ids the redelivery filter remembers (ids are at most 256 bytes, see [`inbound`]).
pub const SEEN_LIMIT: usize = 256;
/// Time limit of the reply POST, in milliseconds.
pub const REPLY_TIMEOUT_MS: u32 = 10_000;

/// The channel. No fields: every callback runs in a fresh instance.
pub struct TemplateChannel;

impl Channel for TemplateChannel {
    fn on_start(config: Config) -> Result<ChannelConfig> {
        let settings = Settings::from_config(&config)?;
        settings.save()?;
        info!("template-rust started: dm_policy {}, replies to {}", settings.gate.policy.as_str(), settings.reply_url);
        Ok(ChannelConfig::new("Template (Rust)").endpoint(Endpoint::post(WEBHOOK_PATH).require_secret(true)))
    }

    fn on_http_request(req: &Request) -> Response {
        if req.path != WEBHOOK_PATH {
            return Response::not_found();
        }
        if req.method != "POST" {
            return Response::json(405, &json!({"error": "method not allowed"})).with_header("allow", "POST");
        }
        // The endpoint requires the secret, so the host has already refused unverified requests; checking
        // again costs nothing and keeps this code safe if the endpoint is ever registered without it.
        if req.ensure_secret_validated().is_err() {
            return Response::unauthorized();
        }
        let message = match inbound::parse(&req.body) {
            Ok(m) => m,
            Err(e) => return Response::bad_request(e.message()),
        };
        match handle(&message) {
            Ok(resp) => resp,
            Err(e) => {
                warn!("webhook from {} failed: {e}", message.user);
                Response::json(503, &json!({"error": "temporarily unavailable"}))
            }
        }
    }

    fn on_respond(response: &AgentResponse) -> Result<()> {
        let user = response.metadata_str("user").context("reply metadata has no user")?;
        let thread = response.thread_id.as_deref().or_else(|| response.metadata_str("thread"));
        post_reply(user, &response.content, thread, response.metadata_str("message_id"), &response.message_id)
    }

    fn on_broadcast(user_id: &str, response: &AgentResponse) -> Result<()> {
        post_reply(user_id, &response.content, response.thread_id.as_deref(), None, &response.message_id)
    }
}

/// Admission, redelivery filter, emit. Errors are host failures (workspace), answered with a 503.
fn handle(message: &Inbound) -> Result<Response> {
    let settings = Settings::load()?;
    let meta = json!({"name": message.name, "channel": CHANNEL});
    match settings.gate.admit(&message.user, message.name.as_deref(), &meta) {
        Admission::Allowed => {}
        Admission::Denied => {
            info!("dropping message from {}: not allowed by dm_policy", message.user);
            return Ok(Response::json(403, &json!({"status": "denied"})));
        }
        Admission::Pairing { code, created } => {
            // The code is shown once, when the request is created; the operator approves it.
            let mut body = json!({"status": "pairing"});
            if created && !code.is_empty() {
                body["code"] = json!(code);
                body["approve_with"] = json!(format!("airlock pairing approve {CHANNEL} {code}"));
            }
            return Ok(Response::json(202, &body));
        }
    }
    if let Some(id) = &message.id {
        let mut seen = RecentIds::try_load(SEEN_PATH, SEEN_LIMIT)?;
        if !seen.first_time(id) {
            return Ok(Response::json(200, &json!({"status": "duplicate"})));
        }
        seen.save()?;
    }
    let mut msg = emit::Message::new(&message.user, &message.text)
        .metadata(json!({"user": message.user, "message_id": message.id, "thread": message.thread}));
    if let Some(name) = &message.name {
        msg = msg.user_name(name);
    }
    if let Some(thread) = &message.thread {
        msg = msg.thread_id(thread);
    }
    msg.emit();
    Ok(Response::json(200, &json!({"status": "accepted"})))
}

/// POST one reply to the configured URL; a non-2xx answer is an error.
fn post_reply(user: &str, text: &str, thread: Option<&str>, in_reply_to: Option<&str>, message_id: &str) -> Result<()> {
    let settings = Settings::load()?;
    http::post(&settings.reply_url)
        .json(&json!({"user": user, "text": text, "thread": thread, "in_reply_to": in_reply_to, "message_id": message_id}))
        .timeout_ms(REPLY_TIMEOUT_MS)
        .send()?
        .error_for_status()
        .context("reply")?;
    Ok(())
}

export_channel!(TemplateChannel);

#[cfg(test)]
mod tests;
