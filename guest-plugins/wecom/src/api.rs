//! The self-built app's server API: the access token and `message/send`.
//!
//! * `GET /cgi-bin/gettoken?corpid=ID&corpsecret=SECRET` -> `{"errcode": 0, "access_token", "expires_in": 7200}`
//!   (WeCom docs "获取access_token", path/91039: the token must be cached for its lifetime, "不能频繁调用gettoken
//!   接口，否则会受到频率拦截"). The channel never holds the Corp ID or secret: the capabilities file binds
//!   `wecom_corp_id` and `wecom_corp_secret` to this path as query credentials, and the host adds them. What is
//!   cached (`state/access_token`, durable) is only the token WeCom answered and when to refresh it.
//! * `POST /cgi-bin/message/send?access_token=TOKEN` with `{"touser", "msgtype": "text", "agentid",
//!   "text": {"content"}}` (docs "发送应用消息", path/90236; text at most 2048 bytes). errcode 40014 (invalid
//!   access_token) and 42001 (access_token expired) make the channel forget the token and try once more.

use airlock_channel::text::{Splitter, Unit};
use airlock_channel::{bail, http, info, now_millis, workspace, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;

pub const TOKEN_PATH: &str = "state/access_token";
/// errcodes after which a fresh token is fetched and the call tried once more.
pub const TOKEN_ERRORS: [i64; 2] = [40014, 42001];
/// Most UTF-8 bytes of one text message ("文本消息 ... 最长不超过2048个字节").
pub const MAX_TEXT_BYTES: usize = 2048;
/// Most messages one reply becomes; the last then ends with "[truncated]".
pub const MAX_CHUNKS: usize = 10;
/// Refresh this long before the expiry (at most a quarter of the lifetime).
const REFRESH_MARGIN_MS: u64 = 60_000;
const TIMEOUT_MS: u32 = 10_000;
const MAX_ERRMSG_CHARS: usize = 120;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedToken {
    pub token: String,
    /// Wall-clock milliseconds after which the token is no longer used.
    pub refresh_after_ms: u64,
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    errcode: i64,
    #[serde(default)]
    errmsg: String,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    invaliduser: Option<String>,
}

fn short(text: &str) -> String {
    text.chars().take(MAX_ERRMSG_CHARS).collect()
}

/// The cached token if still fresh, else a new one (cached for later callbacks and across restarts).
pub fn access_token(api_base: &str) -> Result<String> {
    if let Ok(Some(cached)) = workspace::read_json::<CachedToken>(TOKEN_PATH) {
        if now_millis() < cached.refresh_after_ms && !cached.token.is_empty() {
            return Ok(cached.token);
        }
    }
    let answer: Answer = http::get(&format!("{api_base}/cgi-bin/gettoken")).timeout_ms(TIMEOUT_MS).send()?.json()?;
    if answer.errcode != 0 {
        bail!("gettoken refused: errcode {} ({})", answer.errcode, short(&answer.errmsg));
    }
    let token = answer.access_token.filter(|t| !t.is_empty()).context("gettoken: no access_token")?;
    let lifetime_ms = answer.expires_in.unwrap_or(0).saturating_mul(1000);
    let margin = REFRESH_MARGIN_MS.min(lifetime_ms / 4);
    workspace::write_json(
        TOKEN_PATH,
        &CachedToken { token: token.clone(), refresh_after_ms: now_millis() + lifetime_ms - margin },
    )?;
    info!("WeCom access token obtained (valid {} s)", lifetime_ms / 1000);
    Ok(token)
}

/// Forget the cached token (WeCom said it is invalid or expired).
pub fn forget_token() -> Result<()> {
    workspace::write(TOKEN_PATH, "null")
}

/// `message/send`: `text` to `userid` from app `agent_id`, in messages of at most [`MAX_TEXT_BYTES`].
pub fn send_text(api_base: &str, agent_id: u64, userid: &str, text: &str) -> Result<()> {
    for chunk in Splitter::new(MAX_TEXT_BYTES, Unit::Bytes).max_pieces(MAX_CHUNKS).split(text) {
        let body =
            json!({"touser": userid, "msgtype": "text", "agentid": agent_id, "text": {"content": chunk}, "safe": 0});
        let mut retried = false;
        loop {
            let token = access_token(api_base)?;
            let answer: Answer = http::post(&format!("{api_base}/cgi-bin/message/send?access_token={token}"))
                .json(&body)
                .timeout_ms(TIMEOUT_MS)
                .send()?
                .error_for_status()?
                .json()?;
            if answer.errcode == 0 {
                if answer.invaliduser.as_deref().is_some_and(|u| !u.is_empty()) {
                    bail!("message/send: the user is not reachable by this app (invaliduser)");
                }
                break;
            }
            if TOKEN_ERRORS.contains(&answer.errcode) && !retried {
                forget_token()?;
                retried = true;
                continue;
            }
            bail!("message/send refused: errcode {} ({})", answer.errcode, short(&answer.errmsg));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_channel::testing::MockHost;
    use std::cell::Cell;
    use std::collections::BTreeMap;
    use std::rc::Rc;

    const BASE: &str = "https://qyapi.weixin.qq.com";

    #[test]
    fn token_is_fetched_once_and_cached_until_the_margin() {
        let host = MockHost::install();
        host.set_now(1_000_000);
        host.on_http(|call| {
            assert_eq!(call.url, "https://qyapi.weixin.qq.com/cgi-bin/gettoken", "the host adds corpid/corpsecret");
            // Documented answer (path/91039).
            Ok((
                200,
                BTreeMap::new(),
                br#"{"errcode":0,"errmsg":"ok","access_token":"accesstoken000001","expires_in":7200}"#.to_vec(),
            ))
        });
        assert_eq!(access_token(BASE).unwrap(), "accesstoken000001");
        assert_eq!(access_token(BASE).unwrap(), "accesstoken000001");
        assert_eq!(host.http_calls().len(), 1);
        let cached: CachedToken = serde_json::from_str(&host.workspace_get(TOKEN_PATH).unwrap()).unwrap();
        assert_eq!(cached.refresh_after_ms, 1_000_000 + 7_200_000 - 60_000);
        host.set_now(cached.refresh_after_ms);
        access_token(BASE).unwrap();
        assert_eq!(host.http_calls().len(), 2);
    }

    #[test]
    fn refused_token_is_an_error_and_nothing_is_cached() {
        let host = MockHost::install();
        host.queue_http(200, r#"{"errcode":40001,"errmsg":"invalid credential"}"#);
        assert_eq!(access_token(BASE).unwrap_err().to_string(), "gettoken refused: errcode 40001 (invalid credential)");
        assert_eq!(host.workspace_get(TOKEN_PATH), None);
    }

    #[test]
    fn expired_token_is_replaced_once_and_long_text_split_by_bytes() {
        let host = MockHost::install();
        let issued = Rc::new(Cell::new(0));
        let seen = issued.clone();
        host.on_http(move |call| {
            if call.url.ends_with("/gettoken") {
                seen.set(seen.get() + 1);
                let body = format!(r#"{{"errcode":0,"access_token":"at-{}","expires_in":7200}}"#, seen.get());
                return Ok((200, BTreeMap::new(), body.into_bytes()));
            }
            if call.url.ends_with("access_token=at-1") {
                return Ok((200, BTreeMap::new(), br#"{"errcode":42001,"errmsg":"access_token expired"}"#.to_vec()));
            }
            Ok((200, BTreeMap::new(), br#"{"errcode":0,"errmsg":"ok","invaliduser":"","msgid":"m"}"#.to_vec()))
        });
        send_text(BASE, 1000002, "zhangsan", &"字".repeat(1000)).unwrap();
        assert_eq!(issued.get(), 2);
        let sends: Vec<_> = host.http_calls().into_iter().filter(|c| c.url.contains("/message/send")).collect();
        assert_eq!(sends.len(), 3, "one refused, then two chunks of at most 2048 bytes");
        let body = sends[1].json();
        assert_eq!(
            (body["touser"].as_str(), body["agentid"].as_u64(), body["msgtype"].as_str()),
            (Some("zhangsan"), Some(1000002), Some("text"))
        );
        assert!(body["text"]["content"].as_str().unwrap().len() <= MAX_TEXT_BYTES);
    }

    #[test]
    fn other_refusals_are_errors_without_the_token() {
        let host = MockHost::install();
        host.on_http(|call| {
            if call.url.ends_with("/gettoken") {
                return Ok((
                    200,
                    BTreeMap::new(),
                    br#"{"errcode":0,"access_token":"at-secret-ish","expires_in":7200}"#.to_vec(),
                ));
            }
            Ok((200, BTreeMap::new(), br#"{"errcode":40056,"errmsg":"invalid agentid"}"#.to_vec()))
        });
        let err = send_text(BASE, 1, "u", "hi").unwrap_err().to_string();
        assert_eq!(err, "message/send refused: errcode 40056 (invalid agentid)");
    }
}
