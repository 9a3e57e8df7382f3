//! The AI bot's long connection ("智能机器人长连接", developer.work.weixin.qq.com/document/path/101463; frame
//! shapes as in WeCom's own `aibot-node-sdk`, `src/types`). The host owns the socket (protocol `wecom_aibot`:
//! subscribe with the bot id and secret, pings) and hands each other frame to the channel as a
//! `POST /__websocket` request; the channel answers on the socket:
//!
//! * in: `{"cmd": "aibot_msg_callback", "headers": {"req_id"}, "body": {"msgid", "aibotid", "chatid"?,
//!   "chattype": "single"|"group", "from": {"userid"}, "msgtype", "text": {"content"} | "voice": {"content"} |
//!   "image": {"url", "aeskey"} | "file": {"url", "aeskey"} | "mixed": {"msg_item": [...]}}}` (images and files
//!   become attachments: [`crate::media`]); `aibot_event_callback` frames (`enter_chat` is answered with the
//!   configured welcome text); and the acks `{"headers": {"req_id"},
//!   "errcode", "errmsg"}` of the channel's own commands;
//! * out: `aibot_respond_msg` with the callback's `req_id` and `{"msgtype": "stream", "stream": {"id", "finish":
//!   true, "content"}}` (content at most 20480 bytes), and `aibot_send_msg` `{"chatid", "msgtype": "markdown",
//!   "markdown": {"content"}}` for what does not fit and for broadcasts (`chatid` is the userid in a single chat);
//!   reply files go through the media upload commands ([`crate::upload`]), whose acks are routed there.

use airlock_channel::text::{Splitter, Unit};
use airlock_channel::{debug, emit, now_millis, warn, websocket, Result};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::dedupe::first_delivery;
use crate::media::{fetch_all, Kind, MediaRef};
use crate::settings::{is_wecom_id, Settings};

/// Most UTF-8 bytes of one stream reply ("最长不超过 20480 个字节").
pub const MAX_STREAM_BYTES: usize = 20_480;
/// Most messages one reply becomes; the last then ends with "[truncated]".
pub const MAX_CHUNKS: usize = 10;

#[derive(Deserialize)]
struct Frame {
    #[serde(default)]
    cmd: Option<String>,
    #[serde(default)]
    headers: Headers,
    #[serde(default)]
    body: Value,
    #[serde(default)]
    errcode: Option<i64>,
    #[serde(default)]
    errmsg: Option<String>,
}

#[derive(Default, Deserialize)]
struct Headers {
    #[serde(default)]
    req_id: String,
}

#[derive(Deserialize)]
struct MessageBody {
    #[serde(default)]
    msgid: String,
    #[serde(default)]
    chatid: Option<String>,
    #[serde(default)]
    chattype: String,
    #[serde(default)]
    from: From,
    #[serde(default)]
    msgtype: String,
    #[serde(default)]
    text: Option<Content>,
    #[serde(default)]
    voice: Option<Content>,
    #[serde(default)]
    image: Option<Media>,
    #[serde(default)]
    file: Option<Media>,
    #[serde(default)]
    mixed: Option<Mixed>,
}

/// An image or file item: its encrypted download and the key ([`crate::media`]).
#[derive(Deserialize)]
struct Media {
    #[serde(default)]
    url: String,
    #[serde(default)]
    aeskey: Option<String>,
}

#[derive(Default, Deserialize)]
struct From {
    #[serde(default)]
    userid: String,
}

#[derive(Deserialize)]
struct Content {
    #[serde(default)]
    content: String,
}

#[derive(Deserialize)]
struct Mixed {
    #[serde(default)]
    msg_item: Vec<MixedItem>,
}

#[derive(Deserialize)]
struct MixedItem {
    #[serde(default)]
    msgtype: String,
    #[serde(default)]
    text: Option<Content>,
    #[serde(default)]
    image: Option<Media>,
}

/// One frame from the host.
pub fn handle(frame: &[u8]) -> Result<()> {
    let frame: Frame = serde_json::from_slice(frame)?;
    match frame.cmd.as_deref() {
        Some("aibot_msg_callback") => message(&frame.headers.req_id, serde_json::from_value(frame.body)?),
        Some("aibot_event_callback") => event(&frame.headers.req_id, &frame.body),
        Some(cmd) => {
            debug!("frame {cmd} ignored");
            Ok(())
        }
        None if frame.headers.req_id.starts_with(crate::upload::REQ_PREFIX) => {
            let errmsg = frame.errmsg.unwrap_or_default();
            crate::upload::on_ack(&frame.headers.req_id, frame.errcode.unwrap_or(0), &errmsg, &frame.body)
        }
        None => {
            if let Some(code) = frame.errcode.filter(|c| *c != 0) {
                let errmsg: String = frame.errmsg.unwrap_or_default().chars().take(120).collect();
                warn!("WeCom refused command {}: errcode {code} ({errmsg})", frame.headers.req_id);
            }
            Ok(())
        }
    }
}

/// The text of a message: text, a voice message's transcript, or the text parts of a mixed message.
fn text_of(body: &MessageBody) -> String {
    let text = match body.msgtype.as_str() {
        "text" => body.text.as_ref().map(|t| t.content.clone()),
        "voice" => body.voice.as_ref().map(|v| v.content.clone()),
        "mixed" => body.mixed.as_ref().map(|m| {
            let parts: Vec<&str> = m
                .msg_item
                .iter()
                .filter(|i| i.msgtype == "text")
                .filter_map(|i| i.text.as_ref().map(|t| t.content.trim()))
                .collect();
            parts.join("\n")
        }),
        _ => None,
    };
    text.unwrap_or_default().trim().to_string()
}

/// The image and file items of a message, in order (a mixed message's images between its texts).
fn media_of(body: &MessageBody) -> Vec<MediaRef> {
    let as_ref = |kind: Kind, m: &Media| {
        let url = m.url.trim();
        let key = m.aeskey.as_deref().map(str::trim).filter(|k| !k.is_empty());
        (!url.is_empty()).then(|| MediaRef { kind, url: url.to_string(), aeskey: key.map(str::to_string) })
    };
    match body.msgtype.as_str() {
        "image" => body.image.as_ref().and_then(|m| as_ref(Kind::Image, m)).into_iter().collect(),
        "file" => body.file.as_ref().and_then(|m| as_ref(Kind::File, m)).into_iter().collect(),
        "mixed" => body.mixed.as_ref().map_or_else(Vec::new, |m| {
            m.msg_item
                .iter()
                .filter(|i| i.msgtype == "image")
                .filter_map(|i| i.image.as_ref().and_then(|img| as_ref(Kind::Image, img)))
                .collect()
        }),
        _ => Vec::new(),
    }
}

/// In a group the bot gets only messages that @mention it, and the text starts with that mention: drop it.
fn without_leading_mention(text: &str) -> &str {
    match text.strip_prefix('@') {
        Some(rest) => rest.split_once(char::is_whitespace).map_or("", |(_, after)| after.trim_start()),
        None => text,
    }
}

fn message(req_id: &str, body: MessageBody) -> Result<()> {
    let userid = body.from.userid.trim();
    if req_id.is_empty() || !is_wecom_id(userid) || !is_wecom_id(&body.msgid) {
        debug!("message callback without req_id, userid or msgid ignored");
        return Ok(());
    }
    if !first_delivery(&body.msgid) {
        debug!("message {} already handled", body.msgid);
        return Ok(());
    }
    let text = text_of(&body);
    let media = media_of(&body);
    let group = body.chattype == "group";
    let chat_id = body.chatid.as_deref().map(str::trim).filter(|c| is_wecom_id(c));
    let text = if group { without_leading_mention(&text).to_string() } else { text };
    if (text.is_empty() && media.is_empty()) || (group && chat_id.is_none()) {
        debug!("message {} ignored: no text or media, or a group without chatid", body.msgid);
        return Ok(());
    }
    let settings = Settings::load()?;
    if !group {
        let send_code = |code: &str| respond_stream(req_id, &settings.gate.code_text(code));
        if !settings.gate.admit_or_send_code(userid, None, &json!({"userid": userid}), send_code) {
            return Ok(());
        }
    }
    // Only an admitted sender's files are downloaded; a file that cannot be attached leaves a note in the text.
    let fetched = fetch_all(&media, settings.max_media_bytes);
    let text = [text].into_iter().chain(fetched.notes).filter(|t| !t.is_empty()).collect::<Vec<_>>().join("\n");
    let mut metadata = json!({"mode": "bot", "msgid": body.msgid, "req_id": req_id, "userid": userid,
                              "chat_type": if group { "group" } else { "single" }});
    if let Some(chat) = chat_id.filter(|_| group) {
        metadata["chat_id"] = json!(chat);
    }
    let mut message = emit::Message::new(userid, text).metadata(metadata);
    message.attachments = fetched.attachments;
    message.emit();
    Ok(())
}

/// `enter_chat` (a user opened a chat with the bot): the configured welcome text, if any, as
/// `aibot_respond_welcome_msg` `{"msgtype": "text", "text": {"content"}}` answering the event's `req_id`. Other
/// events are ignored (the host already acts on `disconnected_event`).
fn event(req_id: &str, body: &Value) -> Result<()> {
    let kind = body.pointer("/event/eventtype").and_then(Value::as_str).unwrap_or("");
    if kind != "enter_chat" || req_id.is_empty() {
        debug!("event {:?} ignored", kind.chars().take(32).collect::<String>());
        return Ok(());
    }
    let Some(text) = Settings::load()?.welcome_text else { return Ok(()) };
    websocket::send_json(&json!({
        "cmd": "aibot_respond_welcome_msg",
        "headers": {"req_id": req_id},
        "body": {"msgtype": "text", "text": {"content": text}},
    }))
}

fn new_id(kind: &str) -> String {
    format!("airlock_{kind}_{}", now_millis())
}

/// `aibot_respond_msg`: a finished stream message answering the callback `req_id`.
pub fn respond_stream(req_id: &str, content: &str) -> Result<()> {
    websocket::send_json(&json!({
        "cmd": "aibot_respond_msg",
        "headers": {"req_id": req_id},
        "body": {"msgtype": "stream", "stream": {"id": new_id("stream"), "finish": true, "content": content}},
    }))
}

/// `aibot_send_msg`: a markdown message to a chat (a userid for a single chat).
pub fn send_markdown(chatid: &str, content: &str) -> Result<()> {
    websocket::send_json(&json!({
        "cmd": "aibot_send_msg",
        "headers": {"req_id": new_id("send")},
        "body": {"chatid": chatid, "msgtype": "markdown", "markdown": {"content": content}},
    }))
}

fn chunks(text: &str) -> Vec<String> {
    Splitter::new(MAX_STREAM_BYTES, Unit::Bytes).max_pieces(MAX_CHUNKS).split(text)
}

/// A reply: the first part answers `req_id`, the rest go to `chat` (the group's chatid or the userid).
pub fn reply(req_id: &str, chat: &str, text: &str) -> Result<()> {
    for (n, chunk) in chunks(text).iter().enumerate() {
        if n == 0 {
            respond_stream(req_id, chunk)?;
        } else {
            send_markdown(chat, chunk)?;
        }
    }
    Ok(())
}

/// A message without a callback to answer (broadcast): markdown messages to `chat`.
pub fn send(chat: &str, text: &str) -> Result<()> {
    chunks(text).iter().try_for_each(|chunk| send_markdown(chat, chunk))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_and_text_kinds() {
        assert_eq!(without_leading_mention("@Bot  what time is it"), "what time is it");
        assert_eq!(without_leading_mention("@Bot"), "");
        assert_eq!(without_leading_mention("no mention"), "no mention");
        let mixed: MessageBody = serde_json::from_value(json!({
            "msgid": "m", "from": {"userid": "u"}, "msgtype": "mixed",
            "mixed": {"msg_item": [{"msgtype": "text", "text": {"content": "look "}},
                                   {"msgtype": "image", "image": {"url": "https://x"}},
                                   {"msgtype": "text", "text": {"content": "at this"}}]}
        }))
        .unwrap();
        assert_eq!(text_of(&mixed), "look\nat this");
        let voice: MessageBody =
            serde_json::from_value(json!({"msgtype": "voice", "voice": {"content": "spoken"}})).unwrap();
        assert_eq!(text_of(&voice), "spoken");
        let image: MessageBody = serde_json::from_value(json!({"msgtype": "image"})).unwrap();
        assert_eq!(text_of(&image), "");
    }
}
