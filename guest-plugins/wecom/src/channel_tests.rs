//! The channel's callbacks against the SDK's MockHost. Frames are shaped like WeCom's `aibot-node-sdk`
//! (`src/types/api.ts`, `src/types/message.ts`); the callback message is the decrypted sample of WeCom's
//! "加解密方案说明" test vector (path/90968).

use std::collections::BTreeMap;

use airlock_channel::testing::MockHost;
use airlock_channel::{AgentResponse, Channel, Config, Request};
use serde_json::{json, Value};

use crate::Wecom;

const SAMPLE: &str = "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>\n<FromUserName><![CDATA[mycreate]]></FromUserName>\n<CreateTime>1409659813</CreateTime>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[hello]]></Content>\n<MsgId>4561255354251345929</MsgId>\n<AgentID>218</AgentID>\n</xml>";

fn start(host: &MockHost, config: Value) {
    host.set_websocket_open(true);
    Wecom::on_start(Config::from_json(&config.to_string()).unwrap()).unwrap();
}

fn frame(value: Value) -> Request {
    Request::new("POST", "/__websocket")
        .with_header("x-airlock-source", "websocket")
        .with_secret_validated(true)
        .with_body(value.to_string())
}

fn callback(req_id: &str, msgid: &str, userid: &str, text: &str, group: Option<&str>) -> Value {
    let mut body = json!({"msgid": msgid, "aibotid": "aib-1", "chattype": "single", "from": {"userid": userid},
                         "msgtype": "text", "text": {"content": text}});
    if let Some(chat) = group {
        body["chattype"] = json!("group");
        body["chatid"] = json!(chat);
    }
    json!({"cmd": "aibot_msg_callback", "headers": {"req_id": req_id}, "body": body})
}

fn sent(host: &MockHost) -> Vec<Value> {
    host.websocket_sent().iter().map(|f| serde_json::from_str(f).unwrap()).collect()
}

#[test]
fn bot_dm_round_trip_over_the_socket() {
    let host = MockHost::install();
    start(&host, json!({"dm_policy": "open"}));
    Wecom::on_http_request(&frame(callback("req-1", "msg-1", "zhangsan", "hello bot", None)));
    Wecom::on_http_request(&frame(callback("req-1", "msg-1", "zhangsan", "hello bot", None)));
    let emitted = host.emitted();
    assert_eq!(emitted.len(), 1, "a redelivered msgid is handled once");
    assert_eq!((emitted[0].user_id.as_str(), emitted[0].content.as_str()), ("zhangsan", "hello bot"));
    assert_eq!(emitted[0].metadata["req_id"], "req-1");
    assert_eq!(emitted[0].metadata["chat_type"], "single");
    let long = "x".repeat(crate::bot::MAX_STREAM_BYTES + 10);
    Wecom::on_respond(&AgentResponse::new("m", long).with_metadata(emitted[0].metadata.clone())).unwrap();
    let frames = sent(&host);
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[0]["cmd"], "aibot_respond_msg");
    assert_eq!(frames[0]["headers"]["req_id"], "req-1");
    assert_eq!(
        (frames[0]["body"]["msgtype"].as_str(), frames[0]["body"]["stream"]["finish"].as_bool()),
        (Some("stream"), Some(true))
    );
    assert!(frames[0]["body"]["stream"]["content"].as_str().unwrap().len() <= crate::bot::MAX_STREAM_BYTES);
    assert_eq!(
        (frames[1]["cmd"].as_str(), frames[1]["body"]["chatid"].as_str()),
        (Some("aibot_send_msg"), Some("zhangsan"))
    );
    assert_ne!(frames[1]["headers"]["req_id"], "req-1");
}

#[test]
fn bot_pairing_code_answers_the_callback() {
    let host = MockHost::install();
    start(&host, json!({}));
    Wecom::on_http_request(&frame(callback("req-7", "msg-7", "stranger", "let me in", None)));
    assert!(host.emitted().is_empty());
    let frames = sent(&host);
    let code = &host.pairing_requests()[0].3;
    assert_eq!(frames[0]["headers"]["req_id"], "req-7");
    assert!(frames[0]["body"]["stream"]["content"].as_str().unwrap().contains(code.as_str()));
    host.approve_pairing("wecom", "stranger", "op");
    Wecom::on_http_request(&frame(callback("req-8", "msg-8", "stranger", "now?", None)));
    assert_eq!(host.emitted()[0].content, "now?");
}

#[test]
fn bot_group_mentions_are_relayed_to_the_group() {
    let host = MockHost::install();
    start(&host, json!({"dm_policy": "allowlist"}));
    Wecom::on_http_request(&frame(callback("req-2", "msg-2", "lisi", "@Helper what time is it", Some("wrkGroup1"))));
    let msg = &host.emitted()[0];
    assert_eq!(msg.content, "what time is it");
    assert_eq!(
        (msg.metadata["chat_type"].as_str(), msg.metadata["chat_id"].as_str()),
        (Some("group"), Some("wrkGroup1"))
    );
    Wecom::on_respond(&AgentResponse::new("m", "noon").with_metadata(msg.metadata.clone())).unwrap();
    assert_eq!(sent(&host)[0]["body"]["stream"]["content"], "noon");
}

#[test]
fn bot_welcome_on_enter_chat_when_configured() {
    let host = MockHost::install();
    let enter = json!({"cmd": "aibot_event_callback", "headers": {"req_id": "ev-1"},
                       "body": {"msgid": "e1", "from": {"userid": "u"}, "msgtype": "event",
                                "event": {"eventtype": "enter_chat"}}});
    start(&host, json!({}));
    Wecom::on_http_request(&frame(enter.clone()));
    assert!(sent(&host).is_empty(), "no welcome_text, no welcome");
    start(&host, json!({"welcome_text": "欢迎"}));
    Wecom::on_http_request(&frame(enter));
    let frames = sent(&host);
    assert_eq!(frames[0]["cmd"], "aibot_respond_welcome_msg");
    assert_eq!(frames[0]["headers"]["req_id"], "ev-1");
    assert_eq!(frames[0]["body"], json!({"msgtype": "text", "text": {"content": "欢迎"}}));
}

#[test]
fn bot_acks_events_and_garbage() {
    let host = MockHost::install();
    start(&host, json!({"dm_policy": "open"}));
    Wecom::on_http_request(&frame(json!({"headers": {"req_id": "r"}, "errcode": 40008, "errmsg": "invalid"})));
    assert!(host.logs().iter().any(|(_, l)| l == "WeCom refused command r: errcode 40008 (invalid)"));
    Wecom::on_http_request(&frame(json!({"cmd": "aibot_event_callback", "headers": {"req_id": "e"},
                                         "body": {"event": {"eventtype": "enter_chat"}}})));
    let not_json = Request::new("POST", "/__websocket")
        .with_header("x-airlock-source", "websocket")
        .with_secret_validated(true)
        .with_body("nope");
    assert_eq!(Wecom::on_http_request(&not_json).status, 200);
    assert!(host.emitted().is_empty());
}

#[test]
fn app_callback_url_check_message_and_reply() {
    let host = MockHost::install();
    start(&host, json!({"dm_policy": "open"}));
    let check = Request::new("GET", "/webhook/wecom").with_secret_validated(true).with_body("1616140317555161061");
    let answer = Wecom::on_http_request(&check);
    assert_eq!((answer.status, answer.body.as_slice()), (200, &b"1616140317555161061"[..]));
    let post = Request::new("POST", "/webhook/wecom").with_secret_validated(true).with_body(SAMPLE);
    let answer = Wecom::on_http_request(&post);
    assert_eq!((answer.status, answer.body.len()), (200, 0));
    Wecom::on_http_request(&post);
    let emitted = host.emitted();
    assert_eq!(emitted.len(), 1);
    assert_eq!((emitted[0].user_id.as_str(), emitted[0].content.as_str()), ("mycreate", "hello"));
    assert_eq!(
        emitted[0].metadata,
        json!({"mode": "app", "msgid": "4561255354251345929", "userid": "mycreate", "agent_id": 218})
    );
    host.on_http(|call| {
        if call.url.ends_with("/gettoken") {
            return Ok((200, BTreeMap::new(), br#"{"errcode":0,"access_token":"at","expires_in":7200}"#.to_vec()));
        }
        Ok((200, BTreeMap::new(), br#"{"errcode":0,"errmsg":"ok","invaliduser":""}"#.to_vec()))
    });
    Wecom::on_respond(&AgentResponse::new("m", "hi").with_metadata(emitted[0].metadata.clone())).unwrap();
    let send = host.http_calls().into_iter().find(|c| c.url.contains("/message/send")).unwrap();
    assert_eq!(
        send.json(),
        json!({"touser": "mycreate", "msgtype": "text", "agentid": 218, "text": {"content": "hi"}, "safe": 0})
    );
}

#[test]
fn app_refuses_unverified_and_ignores_events() {
    let host = MockHost::install();
    start(&host, json!({"dm_policy": "open"}));
    let unverified = Request::new("POST", "/webhook/wecom").with_body(SAMPLE);
    assert_eq!(Wecom::on_http_request(&unverified).status, 401);
    let event = SAMPLE.replace("<![CDATA[text]]>", "<![CDATA[event]]>");
    assert_eq!(
        Wecom::on_http_request(&Request::new("POST", "/webhook/wecom").with_secret_validated(true).with_body(event))
            .status,
        200
    );
    assert_eq!(Wecom::on_http_request(&Request::new("POST", "/webhook/other").with_secret_validated(true)).status, 404);
    assert!(host.emitted().is_empty());
    assert!(Wecom::on_respond(&AgentResponse::new("m", "x").with_metadata(json!({}))).is_err());
}

#[test]
fn broadcast_prefers_the_app_when_configured() {
    let host = MockHost::install();
    start(&host, json!({}));
    Wecom::on_broadcast("zhangsan", &AgentResponse::new("m", "news")).unwrap();
    assert_eq!(sent(&host)[0]["body"]["markdown"]["content"], "news");
    host.add_secret("wecom_corp_secret");
    start(&host, json!({"agent_id": 1000002}));
    host.on_http(|call| {
        if call.url.ends_with("/gettoken") {
            return Ok((200, BTreeMap::new(), br#"{"errcode":0,"access_token":"at","expires_in":7200}"#.to_vec()));
        }
        Ok((200, BTreeMap::new(), br#"{"errcode":0,"errmsg":"ok"}"#.to_vec()))
    });
    Wecom::on_broadcast("zhangsan", &AgentResponse::new("m", "news")).unwrap();
    assert_eq!(host.http_calls().last().unwrap().json()["agentid"], 1000002);
}
