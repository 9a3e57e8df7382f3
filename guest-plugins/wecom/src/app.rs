//! Callback mode of a self-built app: `GET`/`POST /webhook/wecom`. The host has verified `msg_signature` and
//! decrypted the value (webhook scheme `wecom`) before this code runs: a GET's body is the plain `echostr`,
//! which WeCom's URL check wants back verbatim ("回调配置", path/90930); a POST's body is the plain XML message
//! ("接收消息", path/90239). A POST is answered with an empty 200 (no passive reply; the agent's reply goes out
//! through `message/send`), also when the message is ignored, so WeCom does not redeliver it.

use airlock_channel::{debug, emit, warn, Request, Response, Result};
use serde_json::json;

use crate::dedupe::first_delivery;
use crate::settings::{is_wecom_id, Settings};
use crate::{api, xml};

pub const WEBHOOK_PATH: &str = "/webhook/wecom";

/// Answer one verified callback.
pub fn handle(req: &Request) -> Response {
    if !req.secret_validated {
        warn!("callback not verified by the host: refused");
        return Response::unauthorized();
    }
    match req.method.as_str() {
        "GET" => Response::text(200, String::from_utf8_lossy(&req.body).into_owned()),
        "POST" => {
            if let Err(e) = callback(&req.body) {
                warn!("callback not handled: {e}");
            }
            Response::new(200)
        }
        _ => Response::new(405),
    }
}

fn callback(body: &[u8]) -> Result<()> {
    let fields = xml::fields(std::str::from_utf8(body)?)?;
    let field = |name: &str| fields.get(name).map(|v| v.trim()).unwrap_or("");
    if field("MsgType") != "text" {
        debug!("callback of type {:?} ignored", field("MsgType").chars().take(32).collect::<String>());
        return Ok(());
    }
    let (from, msgid, content) = (field("FromUserName"), field("MsgId"), field("Content"));
    if !is_wecom_id(from) || !is_wecom_id(msgid) {
        debug!("text callback without usable FromUserName / MsgId ignored");
        return Ok(());
    }
    if !first_delivery(msgid) {
        debug!("message {msgid} already handled");
        return Ok(());
    }
    if content.is_empty() {
        return Ok(());
    }
    let settings = Settings::load()?;
    let agent_id = field("AgentID").parse::<u64>().ok().filter(|a| *a > 0).or(settings.agent_id);
    let send_code = |code: &str| match agent_id {
        Some(agent) => api::send_text(&settings.api_base, agent, from, &settings.gate.code_text(code)),
        None => Err(airlock_channel::Error::new("no AgentID to send the pairing code with")),
    };
    if !settings.gate.admit_or_send_code(from, None, &json!({"userid": from}), send_code) {
        return Ok(());
    }
    let mut metadata = json!({"mode": "app", "msgid": msgid, "userid": from});
    if let Some(agent) = agent_id {
        metadata["agent_id"] = json!(agent);
    }
    emit::Message::new(from, content).metadata(metadata).emit();
    Ok(())
}

/// A reply to a message that came by callback: `message/send` from the same app.
pub fn reply(settings: &Settings, userid: &str, agent_id: Option<u64>, text: &str) -> Result<()> {
    let Some(agent) = agent_id.or(settings.agent_id) else {
        airlock_channel::bail!("no AgentID for an app reply (set config.agent_id)");
    };
    api::send_text(&settings.api_base, agent, userid, text)
}
