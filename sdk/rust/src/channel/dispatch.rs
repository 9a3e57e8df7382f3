//! World 0.1.0's `channel` interface: each export of [`export_channel!`](crate::export_channel) converts the
//! host's WIT record, calls the [`Channel`] method and converts the answer back.

use super::Channel;
use crate::bindings::exports::airlock::channel::channel as wit;
use crate::types::{metadata_object, string_map, Attachment, Status, INTERNAL_ERROR_BODY};
use crate::{AgentResponse, Config, Request, StatusUpdate};

/// `on-start`: parse the config, run the channel, validate and convert its answer.
pub fn on_start<C: Channel>(config_json: &str) -> Result<wit::ChannelConfig, String> {
    let config = Config::from_json(config_json).map_err(|e| e.context("config").to_string())?;
    let cfg = C::on_start(config).map_err(|e| e.to_string())?;
    cfg.validate().map_err(|e| e.to_string())?;
    Ok(wit::ChannelConfig {
        display_name: cfg.display_name,
        http_endpoints: cfg
            .endpoints
            .into_iter()
            .map(|ep| wit::HttpEndpointConfig { path: ep.path, methods: ep.methods, require_secret: ep.require_secret })
            .collect(),
        poll: cfg.poll.map(|p| wit::PollConfig { interval_ms: p.interval_ms, enabled: p.enabled }),
    })
}

/// `on-http-request`: the host's record as a [`Request`]; the channel's [`Response`](crate::Response)
/// back as the WIT record (headers as a JSON object).
pub fn on_http_request<C: Channel>(req: wit::IncomingHttpRequest) -> wit::OutgoingHttpResponse {
    let request = Request {
        method: req.method.to_ascii_uppercase(),
        path: req.path,
        headers: string_map(&req.headers_json, true),
        query: string_map(&req.query_json, false),
        body: req.body,
        secret_validated: req.secret_validated,
    };
    let resp = C::on_http_request(&request);
    match serde_json::to_string(&resp.headers) {
        Ok(headers_json) => wit::OutgoingHttpResponse { status: resp.status, headers_json, body: resp.body },
        Err(_) => wit::OutgoingHttpResponse {
            status: 500,
            headers_json: r#"{"content-type":"application/json"}"#.into(),
            body: INTERNAL_ERROR_BODY.to_vec(),
        },
    }
}

/// `on-poll`: an error is logged.
pub fn on_poll<C: Channel>() {
    if let Err(e) = C::on_poll() {
        crate::log::error(&format!("on_poll failed: {e}"));
    }
}

pub(crate) fn agent_response(r: wit::AgentResponse) -> crate::Result<AgentResponse> {
    Ok(AgentResponse {
        message_id: r.message_id,
        content: r.content,
        thread_id: r.thread_id,
        metadata: metadata_object(&r.metadata_json, "response metadata-json")?,
        attachments: r
            .attachments
            .into_iter()
            .map(|a| Attachment { filename: a.filename, mime_type: a.mime_type, data: a.data })
            .collect(),
    })
}

/// `on-respond`: the error's text becomes the WIT error.
pub fn on_respond<C: Channel>(response: wit::AgentResponse) -> Result<(), String> {
    let response = agent_response(response).map_err(|e| e.to_string())?;
    C::on_respond(&response).map_err(|e| e.to_string())
}

/// `on-broadcast`: the error's text becomes the WIT error.
pub fn on_broadcast<C: Channel>(user_id: &str, response: wit::AgentResponse) -> Result<(), String> {
    let response = agent_response(response).map_err(|e| e.to_string())?;
    C::on_broadcast(user_id, &response).map_err(|e| e.to_string())
}

/// `on-status`: bad metadata or an error is logged at warn level.
pub fn on_status<C: Channel>(update: wit::StatusUpdate) {
    let status = match update.status {
        wit::StatusType::Thinking => Status::Thinking,
        wit::StatusType::Done => Status::Done,
        wit::StatusType::Interrupted => Status::Interrupted,
        wit::StatusType::ToolStarted => Status::ToolStarted,
        wit::StatusType::ToolCompleted => Status::ToolCompleted,
        wit::StatusType::ToolResult => Status::ToolResult,
        wit::StatusType::ApprovalNeeded => Status::ApprovalNeeded,
        wit::StatusType::Status => Status::Status,
        wit::StatusType::JobStarted => Status::JobStarted,
        wit::StatusType::AuthRequired => Status::AuthRequired,
        wit::StatusType::AuthCompleted => Status::AuthCompleted,
    };
    let result = metadata_object(&update.metadata_json, "status metadata-json")
        .and_then(|metadata| C::on_status(&StatusUpdate { status, message: update.message, metadata }));
    if let Err(e) = result {
        crate::log::warn(&format!("on_status failed: {e}"));
    }
}

/// `on-shutdown`: an error is logged at warn level.
pub fn on_shutdown<C: Channel>() {
    if let Err(e) = C::on_shutdown() {
        crate::log::warn(&format!("on_shutdown failed: {e}"));
    }
}
