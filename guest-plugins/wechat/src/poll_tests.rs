//! `on-poll` and the replies against the SDK's MockHost. The getupdates answers are shaped like the sample in
//! Tencent/openclaw-weixin `docs/protocol.md` ("getUpdates" response, "Message model").

use std::collections::BTreeMap;

use airlock_channel::pairing::{DmGate, DmPolicy};
use airlock_channel::testing::MockHost;
use airlock_channel::{AgentResponse, Channel, Config};
use serde_json::{json, Value};

use crate::poll::{poll, respond, CONTEXT_PATH, CURSOR_PATH, MAX_CONTEXT_TOKENS};
use crate::settings::Settings;
use crate::WeChat;

const ALICE: &str = "o9cq80alice@im.wechat";

fn start(host: &MockHost, config: &str) {
    host.add_secret("wechat_bot_token");
    WeChat::on_start(Config::from_json(config).unwrap()).unwrap();
}

fn message(id: u64, from: &str, text: &str) -> Value {
    json!({"message_id": id, "from_user_id": from, "to_user_id": "bot@im.bot", "message_type": 1,
           "message_state": 2, "context_token": format!("ctx-{from}"),
           "item_list": [{"type": 1, "text_item": {"text": text}}]})
}

fn serve(host: &MockHost, batches: Vec<Value>) {
    let batches = std::cell::RefCell::new(batches.into_iter());
    host.on_http(move |call| {
        if call.url.ends_with("/getupdates") {
            let msgs = batches.borrow_mut().next().unwrap_or(json!([]));
            let body = json!({"ret": 0, "msgs": msgs, "get_updates_buf": format!("cur-{}", call.json()["get_updates_buf"].as_str().unwrap()),
                              "longpolling_timeout_ms": 35000});
            return Ok((200, BTreeMap::new(), body.to_string().into_bytes()));
        }
        Ok((200, BTreeMap::new(), br#"{"ret":0,"errmsg":""}"#.to_vec()))
    });
}

#[test]
fn user_messages_reach_the_agent_once_with_their_context() {
    let host = MockHost::install();
    start(&host, r#"{"dm_policy": "open"}"#);
    let bot_echo = json!({"message_id": 3, "from_user_id": "bot@im.bot", "message_type": 2,
                          "item_list": [{"type": 1, "text_item": {"text": "echo"}}]});
    let voice = json!({"message_id": 4, "from_user_id": ALICE, "message_type": 1,
                       "item_list": [{"type": 3, "voice_item": {"text": "spoken words"}}]});
    let group = json!({"message_id": 5, "from_user_id": ALICE, "group_id": "g1", "message_type": 1,
                       "item_list": [{"type": 1, "text_item": {"text": "in a group"}}]});
    serve(
        &host,
        vec![
            json!([message(7448678501208393000, ALICE, "你好"), bot_echo, voice, group]),
            json!([message(7448678501208393000, ALICE, "你好")]),
        ],
    );
    poll().unwrap();
    poll().unwrap();
    let emitted = host.emitted();
    assert_eq!(emitted.iter().map(|m| m.content.as_str()).collect::<Vec<_>>(), vec!["你好", "spoken words"]);
    assert_eq!(emitted[0].user_id, ALICE);
    assert_eq!(emitted[0].metadata["message_id"], "7448678501208393000");
    assert_eq!(emitted[0].metadata["context_token"], format!("ctx-{ALICE}"));
    assert_eq!(host.workspace_get(CURSOR_PATH).as_deref(), Some("cur-cur-"));
    assert_eq!(host.http_calls()[1].json()["get_updates_buf"], "cur-");
}

#[test]
fn pairing_sends_the_code_once_in_the_conversation() {
    let host = MockHost::install();
    start(&host, "{}");
    serve(&host, vec![json!([message(1, ALICE, "let me in")]), json!([message(2, ALICE, "again")])]);
    poll().unwrap();
    poll().unwrap();
    assert!(host.emitted().is_empty());
    let sends: Vec<_> = host.http_calls().into_iter().filter(|c| c.url.ends_with("/sendmessage")).collect();
    assert_eq!(sends.len(), 1);
    let msg = &sends[0].json()["msg"];
    let code = &host.pairing_requests()[0].3;
    assert!(msg["item_list"][0]["text_item"]["text"].as_str().unwrap().contains(code.as_str()));
    assert_eq!(
        (msg["to_user_id"].as_str(), msg["context_token"].as_str()),
        (Some(ALICE), Some("ctx-o9cq80alice@im.wechat"))
    );
    host.approve_pairing("wechat", ALICE, "operator");
    serve(&host, vec![json!([message(3, ALICE, "now?")])]);
    poll().unwrap();
    assert_eq!(host.emitted()[0].content, "now?");
}

#[test]
fn allowlist_drops_strangers_without_a_code() {
    let host = MockHost::install();
    start(&host, r#"{"dm_policy": "allowlist", "allow_from": ["friend@im.wechat"]}"#);
    serve(&host, vec![json!([message(1, ALICE, "hi"), message(2, "friend@im.wechat", "hello")])]);
    poll().unwrap();
    assert_eq!(host.emitted().len(), 1);
    assert_eq!(host.emitted()[0].user_id, "friend@im.wechat");
    assert!(host.http_calls().iter().all(|c| !c.url.ends_with("/sendmessage")));
}

#[test]
fn refusals_and_missing_token() {
    let host = MockHost::install();
    WeChat::on_start(Config::from_json("{}").unwrap()).unwrap();
    poll().unwrap();
    assert!(host.http_calls().is_empty(), "no token, no request");
    host.add_secret("wechat_bot_token");
    host.queue_http(200, r#"{"ret":-14,"errcode":-14,"errmsg":"session timeout"}"#);
    let err = poll().unwrap_err().to_string();
    assert!(err.contains("session expired") && err.contains("wechat_bot_token"), "{err}");
    host.queue_http(200, r#"{"ret":-1,"errmsg":"busy"}"#);
    assert_eq!(poll().unwrap_err().to_string(), "getupdates refused: -1 (busy)");
    host.queue_http(502, "bad gateway");
    assert!(poll().unwrap_err().to_string().starts_with("http: status 502"));
    assert_eq!(host.workspace_get(CURSOR_PATH), None);
}

#[test]
fn replies_use_the_metadata_or_the_remembered_context() {
    let host = MockHost::install();
    start(&host, r#"{"dm_policy": "open"}"#);
    serve(&host, vec![json!([message(1, ALICE, "hi")])]);
    poll().unwrap();
    let original = host.emitted()[0].metadata.clone();
    respond(&AgentResponse::new("m1", "hello alice").with_metadata(original)).unwrap();
    respond(&AgentResponse::new("m2", "again").with_metadata(json!({"from_user_id": ALICE}))).unwrap();
    WeChat::on_broadcast(ALICE, &AgentResponse::new("m3", "news")).unwrap();
    let sends: Vec<Value> =
        host.http_calls().into_iter().filter(|c| c.url.ends_with("/sendmessage")).map(|c| c.json()).collect();
    assert_eq!(sends.len(), 3);
    for (send, text) in sends.iter().zip(["hello alice", "again", "news"]) {
        assert_eq!(send["msg"]["item_list"][0]["text_item"]["text"], text);
        assert_eq!(send["msg"]["context_token"], format!("ctx-{ALICE}"));
    }
    assert!(respond(&AgentResponse::new("m4", "lost").with_metadata(json!({}))).is_err());
    respond(&AgentResponse::new("m5", "  ").with_metadata(json!({}))).unwrap();
}

#[test]
fn context_tokens_are_bounded() {
    let host = MockHost::install();
    start(&host, r#"{"dm_policy": "open"}"#);
    let msgs: Vec<Value> =
        (0..MAX_CONTEXT_TOKENS as u64 + 5).map(|i| message(i + 1, &format!("u{i}@im.wechat"), "x")).collect();
    serve(&host, vec![Value::Array(msgs)]);
    poll().unwrap();
    let stored: Vec<(String, String)> = serde_json::from_str(&host.workspace_get(CONTEXT_PATH).unwrap()).unwrap();
    assert_eq!(stored.len(), MAX_CONTEXT_TOKENS);
    assert_eq!(stored[0].0, "u5@im.wechat");
}

#[test]
fn settings_round_trip_through_the_workspace() {
    let _host = MockHost::install();
    let settings = Settings::from_config(&Config::from_json(r#"{"dm_policy": "disabled"}"#).unwrap()).unwrap();
    settings.save().unwrap();
    assert_eq!(Settings::load().unwrap().gate, DmGate::new("wechat", DmPolicy::Disabled));
}
