//! The iLink bot API as the channel uses it. Source: Tencent/openclaw-weixin, `docs/protocol.md` ("Weixin
//! Backend API Protocol"): JSON POSTs to `<api_base>/ilink/bot/<operation>` with the headers `Content-Type:
//! application/json`, `AuthorizationType: ilink_bot_token`, `X-WECHAT-UIN` (base64 of the decimal text of a
//! random uint32) and `Authorization: Bearer <bot_token>`, each body carrying `base_info.channel_version`;
//! answers `{"ret": 0, ...}` on success.
//!
//! The channel never holds the bot token: the capabilities file binds the stored `wechat_bot_token` to the API
//! host as a bearer credential, and the host adds the `Authorization` header.

use airlock_channel::text::{Splitter, Unit};
use airlock_channel::{bail, http, now_millis, Context, Result};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::settings::Settings;

/// The stored secret the host injects as the bearer token.
pub const TOKEN_SECRET: &str = "wechat_bot_token";
/// `errcode` of a session the server ended (protocol: "-14 = session timeout"): the operator must log in again.
pub const SESSION_EXPIRED: i64 = -14;
/// `message_type` of a message a person sent (2 is a bot's).
pub const MESSAGE_TYPE_USER: i64 = 1;
const MESSAGE_TYPE_BOT: i64 = 2;
/// `message_state` 2: finished (not a partial, generating message).
const MESSAGE_STATE_FINISH: i64 = 2;
/// `MessageItem.type`: 1 text (`text_item`), 3 voice (`voice_item`, whose `text` is the transcript).
pub const ITEM_TEXT: i64 = 1;
pub const ITEM_VOICE: i64 = 3;
/// Extra time the HTTP request gets beyond the long-poll timeout (the server answers at the timeout).
pub const LONG_POLL_MARGIN_MS: u32 = 5_000;
const SEND_TIMEOUT_MS: u32 = 15_000;
/// Most characters of text in one sent message (WeChat's client shows about 2,000 characters per bubble;
/// longer replies become several messages).
pub const MAX_CHUNK_CHARS: usize = 2_000;
/// Most messages one reply becomes; the last then ends with "[truncated]".
pub const MAX_CHUNKS: usize = 10;
/// Most characters of the platform's `errmsg` kept in an error.
const MAX_ERRMSG_CHARS: usize = 120;

#[derive(Debug, Default, Deserialize)]
pub struct Updates {
    #[serde(default)]
    pub ret: Option<i64>,
    #[serde(default)]
    pub errcode: Option<i64>,
    #[serde(default)]
    pub errmsg: Option<String>,
    #[serde(default)]
    pub msgs: Vec<Update>,
    #[serde(default)]
    pub get_updates_buf: Option<String>,
}

/// A `WeixinMessage` (protocol.md, "Message model"); only what the channel reads.
#[derive(Debug, Default, Deserialize)]
pub struct Update {
    #[serde(default)]
    pub message_id: Option<Value>,
    #[serde(default)]
    pub from_user_id: Option<String>,
    #[serde(default)]
    pub group_id: Option<String>,
    #[serde(default)]
    pub message_type: Option<i64>,
    #[serde(default)]
    pub context_token: Option<String>,
    #[serde(default)]
    pub item_list: Vec<Item>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Item {
    #[serde(default, rename = "type")]
    pub kind: Option<i64>,
    #[serde(default)]
    pub text_item: Option<TextItem>,
    #[serde(default)]
    pub voice_item: Option<TextItem>,
}

#[derive(Debug, Default, Deserialize)]
pub struct TextItem {
    #[serde(default)]
    pub text: Option<String>,
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    ret: Option<i64>,
    #[serde(default)]
    errcode: Option<i64>,
    #[serde(default)]
    errmsg: Option<String>,
}

impl Updates {
    /// The application error code, if the answer is not a success (`ret` or `errcode` non-zero).
    pub fn error_code(&self) -> Option<i64> {
        failure(self.ret, self.errcode)
    }
}

fn failure(ret: Option<i64>, errcode: Option<i64>) -> Option<i64> {
    errcode.filter(|c| *c != 0).or(ret.filter(|r| *r != 0))
}

fn base_info() -> Value {
    json!({"channel_version": env!("CARGO_PKG_VERSION")})
}

/// A uint32 from the clock and a per-call counter, mixed (splitmix64). Components have no random source; the
/// header is a per-request marker, not a credential.
fn uin_value(salt: u64) -> u32 {
    let mut z = now_millis().wrapping_add(salt.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) as u32
}

/// Standard base64 (RFC 4648, with padding).
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn post(settings: &Settings, operation: &str, body: &Value, timeout_ms: u32, salt: u64) -> Result<http::Response> {
    http::post(&format!("{}/ilink/bot/{operation}", settings.api_base))
        .header("AuthorizationType", "ilink_bot_token")
        .header("X-WECHAT-UIN", &base64(uin_value(salt).to_string().as_bytes()))
        .json(body)
        .timeout_ms(timeout_ms)
        .send()
}

fn short(errmsg: Option<&str>) -> String {
    errmsg.unwrap_or("").chars().take(MAX_ERRMSG_CHARS).collect()
}

/// `getupdates` with `cursor` (empty the first time): the server holds it up to `long_poll_timeout_ms`.
pub fn get_updates(settings: &Settings, cursor: &str) -> Result<Updates> {
    let body = json!({"get_updates_buf": cursor, "base_info": base_info()});
    let resp = post(settings, "getupdates", &body, settings.long_poll_timeout_ms + LONG_POLL_MARGIN_MS, 0)?
        .error_for_status()?;
    resp.json::<Updates>().context("getupdates")
}

/// `sendmessage`: `text` to `to_user`, split into messages of at most [`MAX_CHUNK_CHARS`] characters (at most
/// [`MAX_CHUNKS`]), each a finished bot message with one text item and the conversation's `context_token`.
pub fn send_text(settings: &Settings, to_user: &str, text: &str, context_token: Option<&str>) -> Result<()> {
    let chunks = Splitter::new(MAX_CHUNK_CHARS, Unit::Chars).max_pieces(MAX_CHUNKS).split(text);
    for (n, chunk) in chunks.iter().enumerate() {
        let mut msg = json!({
            "from_user_id": "",
            "to_user_id": to_user,
            "client_id": format!("airlock-wechat-{}-{n}", now_millis()),
            "message_type": MESSAGE_TYPE_BOT,
            "message_state": MESSAGE_STATE_FINISH,
            "item_list": [{"type": ITEM_TEXT, "text_item": {"text": chunk}}],
        });
        if let Some(token) = context_token.filter(|t| !t.is_empty()) {
            msg["context_token"] = json!(token);
        }
        let body = json!({"msg": msg, "base_info": base_info()});
        let answer: Answer =
            post(settings, "sendmessage", &body, SEND_TIMEOUT_MS, n as u64 + 1)?.error_for_status()?.json()?;
        if let Some(code) = failure(answer.ret, answer.errcode) {
            bail!("sendmessage refused: {code} ({})", short(answer.errmsg.as_deref()));
        }
    }
    Ok(())
}

#[derive(Deserialize)]
struct ConfigAnswer {
    #[serde(default)]
    ret: Option<i64>,
    #[serde(default)]
    errcode: Option<i64>,
    #[serde(default)]
    errmsg: Option<String>,
    #[serde(default)]
    typing_ticket: Option<String>,
}

/// `sendtyping` `status`: 1 typing, 2 cancel (protocol.md, "sendTyping").
pub const TYPING_ON: i64 = 1;
pub const TYPING_OFF: i64 = 2;

/// `getconfig` for `user`: the typing ticket `sendtyping` needs (protocol.md, "getConfig").
pub fn typing_ticket(settings: &Settings, user: &str, context_token: Option<&str>) -> Result<String> {
    let mut body = json!({"ilink_user_id": user, "base_info": base_info()});
    if let Some(token) = context_token.filter(|t| !t.is_empty()) {
        body["context_token"] = json!(token);
    }
    let answer: ConfigAnswer = post(settings, "getconfig", &body, SEND_TIMEOUT_MS, 0)?.error_for_status()?.json()?;
    if let Some(code) = failure(answer.ret, answer.errcode) {
        bail!("getconfig refused: {code} ({})", short(answer.errmsg.as_deref()));
    }
    answer.typing_ticket.filter(|t| !t.is_empty()).context("getconfig: no typing_ticket")
}

/// `sendtyping`: `status` [`TYPING_ON`] or [`TYPING_OFF`] for `user`.
pub fn send_typing(settings: &Settings, user: &str, ticket: &str, status: i64) -> Result<()> {
    let body = json!({"ilink_user_id": user, "typing_ticket": ticket, "status": status, "base_info": base_info()});
    let answer: Answer = post(settings, "sendtyping", &body, SEND_TIMEOUT_MS, 0)?.error_for_status()?.json()?;
    if let Some(code) = failure(answer.ret, answer.errcode) {
        bail!("sendtyping refused: {code} ({})", short(answer.errmsg.as_deref()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_channel::pairing::{DmGate, DmPolicy};
    use airlock_channel::testing::MockHost;
    use std::collections::BTreeMap;

    pub fn settings() -> Settings {
        Settings {
            gate: DmGate::new("wechat", DmPolicy::Open),
            api_base: "https://ilinkai.weixin.qq.com".into(),
            poll_interval_ms: 30_000,
            long_poll_timeout_ms: 35_000,
        }
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn getupdates_request_shape_and_no_token_in_the_guest() {
        let host = MockHost::install();
        host.on_http(|_| Ok((200, BTreeMap::new(), br#"{"ret":0,"msgs":[],"get_updates_buf":"c2"}"#.to_vec())));
        let updates = get_updates(&settings(), "c1").unwrap();
        assert_eq!(updates.get_updates_buf.as_deref(), Some("c2"));
        let call = &host.http_calls()[0];
        assert_eq!(call.url, "https://ilinkai.weixin.qq.com/ilink/bot/getupdates");
        assert_eq!(call.json()["get_updates_buf"], "c1");
        assert!(call.json()["base_info"]["channel_version"].is_string());
        assert_eq!(call.headers["AuthorizationType"], "ilink_bot_token");
        assert!(!call.headers.contains_key("Authorization"), "the host adds the bearer token");
        assert_eq!(call.timeout_ms, Some(35_000 + LONG_POLL_MARGIN_MS));
        // X-WECHAT-UIN: base64 of a decimal uint32.
        let uin = &call.headers["X-WECHAT-UIN"];
        assert!(
            uin.len() >= 4 && uin.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
        );
    }

    #[test]
    fn sendmessage_splits_and_reports_refusals() {
        let host = MockHost::install();
        host.on_http(|call| {
            if call.json()["msg"]["to_user_id"] == "blocked@im.wechat" {
                return Ok((200, BTreeMap::new(), br#"{"ret":-2,"errmsg":"not allowed"}"#.to_vec()));
            }
            Ok((200, BTreeMap::new(), br#"{"ret":0,"errmsg":""}"#.to_vec()))
        });
        send_text(&settings(), "u@im.wechat", &"word ".repeat(MAX_CHUNK_CHARS), Some("ctx-1")).unwrap();
        let calls = host.http_calls();
        assert_eq!(calls.len(), 5); // 10,000 characters
        let msg = &calls[0].json()["msg"];
        assert_eq!((msg["message_type"].as_i64(), msg["message_state"].as_i64()), (Some(2), Some(2)));
        assert_eq!(msg["context_token"], "ctx-1");
        assert_eq!(msg["item_list"][0]["type"], 1);
        assert!(msg["item_list"][0]["text_item"]["text"].as_str().unwrap().chars().count() <= MAX_CHUNK_CHARS);
        assert_ne!(calls[0].json()["msg"]["client_id"], calls[1].json()["msg"]["client_id"]);
        let err = send_text(&settings(), "blocked@im.wechat", "hi", None).unwrap_err().to_string();
        assert_eq!(err, "sendmessage refused: -2 (not allowed)");
        assert!(host.http_calls().last().unwrap().json()["msg"].get("context_token").is_none());
    }
}
