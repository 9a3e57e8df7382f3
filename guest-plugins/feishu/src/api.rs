//! Feishu Open API calls made with the tenant access token (`Authorization: Bearer t-...`, set here from
//! the cached token: it is not a stored secret). Every answer is `{"code": 0, ...}` on success; codes
//! 99991661 (no token), 99991663 (invalid token) and 99991677 (expired token) make the channel forget the
//! cached token, fetch a new one and try once more.

use airlock_channel::{bail, http, workspace, Context, Error, Result, SendClass};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::settings::Settings;
use crate::text::{is_feishu_id, split, MAX_CHUNK_BYTES};
use crate::token;

/// The bot's identity, cached (durable) after the first `GET /open-apis/bot/v3/info`.
pub const BOT_PATH: &str = "state/bot";
const TOKEN_ERRORS: [i64; 3] = [99991661, 99991663, 99991677];
const TIMEOUT_MS: u32 = 15_000;

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    code: i64,
    #[serde(default)]
    msg: String,
    #[serde(default)]
    data: Value,
    #[serde(default)]
    bot: Option<BotInfo>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BotInfo {
    #[serde(default)]
    pub open_id: String,
    #[serde(default)]
    pub app_name: String,
}

/// One call with the tenant token; on a token error, once more with a fresh token.
fn call(settings: &Settings, method: &str, path: &str, body: Option<&Value>, what: &str) -> Result<Answer> {
    let mut retried = false;
    loop {
        let bearer = token::tenant_token(&settings.api_base)?;
        let mut req = http::Request::new(method, &format!("{}{path}", settings.api_base))
            .header("Authorization", &format!("Bearer {bearer}"))
            .timeout_ms(TIMEOUT_MS);
        if let Some(body) = body {
            req = req.json(body);
        }
        let answer: Answer = req.send()?.json().context(what)?;
        if answer.code == 0 {
            return Ok(answer);
        }
        if TOKEN_ERRORS.contains(&answer.code) && !retried {
            token::forget()?;
            retried = true;
            continue;
        }
        bail!("{what}: code {} ({})", answer.code, answer.msg);
    }
}

fn text_body(text: &str) -> Value {
    json!({"msg_type": "text", "content": json!({"text": text}).to_string()})
}

/// `POST /open-apis/im/v1/messages/{message_id}/reply`, one call per chunk. `in_thread` keeps the reply in
/// the topic thread of the original message. Returns the ids of the messages created.
pub fn reply(settings: &Settings, message_id: &str, text: &str, in_thread: bool) -> Result<Vec<String>> {
    if !is_feishu_id(message_id) {
        bail!("invalid Feishu message id");
    }
    let mut ids = Vec::new();
    for chunk in split(text, MAX_CHUNK_BYTES) {
        let mut body = text_body(&chunk);
        if in_thread {
            body["reply_in_thread"] = json!(true);
        }
        let answer =
            call(settings, "POST", &format!("/open-apis/im/v1/messages/{message_id}/reply"), Some(&body), "reply")?;
        ids.push(answer.data.get("message_id").and_then(Value::as_str).unwrap_or_default().to_string());
    }
    Ok(ids)
}

/// `POST /open-apis/im/v1/messages?receive_id_type=open_id`: a new message to a user (broadcasts). Returns the
/// ids of the messages created.
pub fn send_to_user(settings: &Settings, open_id: &str, text: &str) -> Result<Vec<String>> {
    if !is_feishu_id(open_id) {
        bail!("invalid Feishu open_id");
    }
    let mut ids = Vec::new();
    for chunk in split(text, MAX_CHUNK_BYTES) {
        let mut body = text_body(&chunk);
        body["receive_id"] = json!(open_id);
        let answer =
            call(settings, "POST", "/open-apis/im/v1/messages?receive_id_type=open_id", Some(&body), "send message")?;
        ids.push(answer.data.get("message_id").and_then(Value::as_str).unwrap_or_default().to_string());
    }
    Ok(ids)
}

/// Feishu's "edit message" allows 20 edits of one message (open.feishu.cn, im-v1 message update, "使用限制").
pub const MAX_EDITS_PER_MESSAGE: u32 = 20;
/// Feishu's answer code when a message cannot be edited again.
pub const EDIT_LIMIT_CODE: i64 = 230072;
/// Workspace path of the edit counts: a JSON array of `[message_id, edits]`, newest last.
pub const EDIT_COUNTS_PATH: &str = "state/edit_counts";
/// Messages whose edits are counted (older ones are forgotten: a stream edits its newest messages), so the
/// workspace stays small.
pub const EDIT_COUNTS_KEPT: usize = 64;

fn edit_counts() -> Vec<(String, u32)> {
    workspace::read_json::<Vec<(String, u32)>>(EDIT_COUNTS_PATH).ok().flatten().unwrap_or_default()
}

fn count_edit(message_id: &str, done: u32) {
    let mut counts = edit_counts();
    counts.retain(|(id, _)| id != message_id);
    counts.push((message_id.to_string(), done + 1));
    let excess = counts.len().saturating_sub(EDIT_COUNTS_KEPT);
    counts.drain(..excess);
    // the edit is done: a count that cannot be kept must not turn it into a failure (and a resend)
    if let Err(e) = workspace::write_json(EDIT_COUNTS_PATH, &counts) {
        airlock_channel::warn!("edit of {message_id} not counted: {e}");
    }
}

/// `PUT /open-apis/im/v1/messages/{message_id}` with a text body (Feishu's "edit message"; text and post messages
/// only), the text cut to one chunk. The 21st edit of a message is refused here, for good (`SendClass::Permanent`:
/// the host then sends a stream's final text as a new message), without a call; so is Feishu's own refusal
/// (code 230072).
pub fn edit_message(settings: &Settings, message_id: &str, text: &str) -> Result<()> {
    if !is_feishu_id(message_id) {
        return Err(Error::permanent("invalid Feishu message id"));
    }
    let done = edit_counts().iter().find(|(id, _)| id == message_id).map_or(0, |(_, n)| *n);
    if done >= MAX_EDITS_PER_MESSAGE {
        return Err(Error::permanent(format!("Feishu allows {MAX_EDITS_PER_MESSAGE} edits of a message")));
    }
    let chunk = split(text, MAX_CHUNK_BYTES).into_iter().next().unwrap_or_default();
    let path = format!("/open-apis/im/v1/messages/{message_id}");
    call(settings, "PUT", &path, Some(&text_body(&chunk)), "edit message").map_err(|e| {
        if e.message().contains(&format!("code {EDIT_LIMIT_CODE} ")) {
            e.with_class(SendClass::Permanent)
        } else {
            e
        }
    })?;
    count_edit(message_id, done);
    Ok(())
}

/// The bot's open_id: from the config, else the cache, else `GET /open-apis/bot/v3/info` (then cached).
pub fn bot_open_id(settings: &Settings) -> Result<String> {
    if let Some(id) = &settings.bot_open_id {
        return Ok(id.clone());
    }
    if let Ok(Some(bot)) = workspace::read_json::<BotInfo>(BOT_PATH) {
        if !bot.open_id.is_empty() {
            return Ok(bot.open_id);
        }
    }
    let answer = call(settings, "GET", "/open-apis/bot/v3/info", None, "bot info")?;
    let bot = answer.bot.filter(|b| is_feishu_id(&b.open_id)).context("bot info: no open_id")?;
    workspace::write_json(BOT_PATH, &bot)?;
    Ok(bot.open_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_channel::pairing::{DmGate, DmPolicy};
    use airlock_channel::testing::MockHost;
    use std::cell::Cell;
    use std::collections::BTreeMap;
    use std::rc::Rc;

    fn settings() -> Settings {
        Settings {
            gate: DmGate::new("feishu", DmPolicy::Open),
            api_base: "https://open.feishu.cn".into(),
            bot_open_id: None,
        }
    }

    #[test]
    fn expired_token_is_replaced_once() {
        let host = MockHost::install();
        let issued = Rc::new(Cell::new(0));
        let seen = issued.clone();
        host.on_http(move |call| {
            if call.url.ends_with("/tenant_access_token/internal") {
                seen.set(seen.get() + 1);
                let body = format!(r#"{{"code":0,"tenant_access_token":"t-{}","expire":7200}}"#, seen.get());
                return Ok((200, BTreeMap::new(), body.into_bytes()));
            }
            if call.headers["Authorization"] == "Bearer t-1" {
                return Ok((400, BTreeMap::new(), br#"{"code":99991677,"msg":"expired"}"#.to_vec()));
            }
            Ok((200, BTreeMap::new(), br#"{"code":0,"data":{"message_id":"om_new"}}"#.to_vec()))
        });
        let ids = reply(&settings(), "om_1", "hello", false).unwrap();
        assert_eq!(ids, vec!["om_new"]);
        assert_eq!(issued.get(), 2);
        let sent = host.http_calls().into_iter().filter(|c| c.url.ends_with("/reply")).collect::<Vec<_>>();
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[1].json()["content"], r#"{"text":"hello"}"#);
        assert!(reply(&settings(), "om_1/../x", "hello", false).is_err());
    }

    #[test]
    fn bot_open_id_from_config_cache_or_api() {
        let host = MockHost::install();
        host.on_http(|call| {
            if call.url.ends_with("/bot/v3/info") {
                return Ok((200, BTreeMap::new(), br#"{"code":0,"bot":{"open_id":"ou_bot","app_name":"A"}}"#.to_vec()));
            }
            Ok((200, BTreeMap::new(), br#"{"code":0,"tenant_access_token":"t","expire":7200}"#.to_vec()))
        });
        let mut configured = settings();
        configured.bot_open_id = Some("ou_cfg".into());
        assert_eq!(bot_open_id(&configured).unwrap(), "ou_cfg");
        assert_eq!(host.http_calls().len(), 0);
        assert_eq!(bot_open_id(&settings()).unwrap(), "ou_bot");
        assert_eq!(bot_open_id(&settings()).unwrap(), "ou_bot");
        assert_eq!(host.http_calls().iter().filter(|c| c.url.ends_with("/bot/v3/info")).count(), 1);
    }

    fn token_and(
        answer: &'static [u8],
    ) -> impl Fn(&airlock_channel::testing::HttpCall) -> airlock_channel::testing::HttpResult {
        move |call| {
            if call.url.ends_with("/tenant_access_token/internal") {
                return Ok((200, BTreeMap::new(), br#"{"code":0,"tenant_access_token":"t-1","expire":7200}"#.to_vec()));
            }
            Ok((200, BTreeMap::new(), answer.to_vec()))
        }
    }

    #[test]
    fn edits_put_the_message_and_stop_at_feishus_limit() {
        let host = MockHost::install();
        host.on_http(token_and(br#"{"code":0,"data":{}}"#));
        edit_message(&settings(), "om_1", "hello, world").unwrap();
        let puts: Vec<_> = host.http_calls().into_iter().filter(|c| c.method == "PUT").collect();
        assert_eq!(puts[0].url, "https://open.feishu.cn/open-apis/im/v1/messages/om_1");
        assert_eq!(puts[0].json(), json!({"msg_type": "text", "content": r#"{"text":"hello, world"}"#}));
        assert_eq!(host.workspace_get(EDIT_COUNTS_PATH).as_deref(), Some(r#"[["om_1",1]]"#));
        host.workspace_set(EDIT_COUNTS_PATH, &format!(r#"[["om_1",{MAX_EDITS_PER_MESSAGE}]]"#));
        let refused = edit_message(&settings(), "om_1", "again").unwrap_err();
        assert_eq!(refused.class(), Some(airlock_channel::SendClass::Permanent));
        assert_eq!(host.http_calls().iter().filter(|c| c.method == "PUT").count(), 1, "no call past the limit");
        assert!(edit_message(&settings(), "om_1/../x", "x").is_err());
        host.on_http(token_and(
            br#"{"code":230072,"msg":"The message has reached the number of times it can be edited"}"#,
        ));
        let platform_says = edit_message(&settings(), "om_2", "x").unwrap_err();
        assert_eq!(platform_says.class(), Some(airlock_channel::SendClass::Permanent));
        assert!(!host.workspace_get(EDIT_COUNTS_PATH).unwrap().contains("om_2"), "a refused edit is not counted");
    }

    #[test]
    fn edit_counts_keep_only_the_newest_messages() {
        let host = MockHost::install();
        host.on_http(token_and(br#"{"code":0,"data":{}}"#));
        for i in 0..EDIT_COUNTS_KEPT + 3 {
            edit_message(&settings(), &format!("om_{i}"), "x").unwrap();
        }
        edit_message(&settings(), "om_70", "y").unwrap();
        let counts: Vec<(String, u32)> = serde_json::from_str(&host.workspace_get(EDIT_COUNTS_PATH).unwrap()).unwrap();
        assert_eq!(counts.len(), EDIT_COUNTS_KEPT);
        assert_eq!(counts.last().unwrap(), &("om_70".to_string(), 1), "the newest message, counted");
        assert!(counts.iter().all(|(id, _)| id != "om_0"), "the oldest are forgotten");
    }
}
