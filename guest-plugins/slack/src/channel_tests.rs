//! Unit tests of `channel.rs` over the SDK's `MockHost` (every outbound call is answered with
//! `200 {"ok": true, "ts": "9.000001"}` unless a test queues another answer).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::channel::*;
use airlock_channel::log::Level;
use airlock_channel::Attachment;
use std::rc::Rc;

use airlock_channel::testing::MockHost;

/// A fresh mock host whose outbound calls succeed by default.
fn fake() -> Rc<MockHost> {
    let host = MockHost::install();
    host.on_http(|_| Ok((200, BTreeMap::new(), br#"{"ok": true, "ts": "9.000001"}"#.to_vec())));
    host
}

/// The body of the `i`th outbound request, as JSON.
fn posted_json(host: &MockHost, i: usize) -> Value {
    host.http_calls()[i].json()
}

fn started(config: Value) -> Rc<MockHost> {
    let env = fake();
    env.queue_http(200, r#"{"ok": true, "user_id": "UBOT"}"#);
    start(&config).unwrap();
    env.take_http_calls();
    env
}

fn request(body: &Value) -> Response {
    let body = body.to_string();
    handle_request(&Request { method: "POST", path: WEBHOOK_PATH, body: body.as_bytes(), secret_validated: true })
}

fn dm(text: &str, user: &str, event_id: &str) -> Value {
    json!({"type": "event_callback", "event_id": event_id, "team_id": "T1",
           "event": {"type": "message", "channel": "D1", "user": user, "text": text, "ts": "10.000100",
                     "channel_type": "im"}})
}

#[test]
fn start_learns_the_bot_id_and_rejects_bad_config() {
    let env = started(json!({"dm_policy": "open"}));
    assert_eq!(env.workspace_get(BOT_USER_PATH).as_deref(), Some("UBOT"));
    let _host = fake();
    assert!(start(&json!({"dm_policy": "nobody"})).unwrap_err().contains("dm_policy"));
    let env = fake();
    env.queue_http(200, r#"{"ok": false, "error": "invalid_auth"}"#);
    start(&json!({})).unwrap();
    assert!(env.logs().iter().any(|(l, m)| *l == Level::Warn && m.contains("invalid_auth")));
}

#[test]
fn challenge_and_refusals() {
    let env = started(json!({}));
    let r = request(&json!({"type": "url_verification", "challenge": "c-123"}));
    assert_eq!((r.status, r.body.clone()), (200, json!({"challenge": "c-123"})));
    let unverified = Request { method: "POST", path: WEBHOOK_PATH, body: b"{}", secret_validated: false };
    assert_eq!(handle_request(&unverified).status, 401);
    let get = Request { method: "GET", path: WEBHOOK_PATH, body: b"", secret_validated: true };
    assert_eq!(handle_request(&get).status, 405);
    let other = Request { method: "POST", path: "/webhook/other", body: b"", secret_validated: true };
    assert_eq!(handle_request(&other).status, 404);
    let junk = Request { method: "POST", path: WEBHOOK_PATH, body: b"{junk", secret_validated: true };
    assert_eq!(handle_request(&junk).status, 200);
    assert!(env.emitted().is_empty());
}

#[test]
fn open_dm_is_emitted_once_with_name_and_metadata() {
    let env = started(json!({"dm_policy": "open"}));
    env.queue_http(200, r#"{"ok": true, "user": {"id": "U1", "name": "alice", "profile": {"display_name": "Alice"}}}"#);
    assert_eq!(request(&dm("hello", "U1", "Ev1")).status, 200);
    assert_eq!(request(&dm("hello", "U1", "Ev1")).status, 200); // Slack's retry
    assert_eq!(env.emitted().len(), 1);
    let m = &env.emitted()[0];
    assert_eq!((m.user_id.as_str(), m.user_name.as_deref(), m.content.as_str()), ("U1", Some("Alice"), "hello"));
    assert_eq!(m.metadata["channel"], "D1");
    assert_eq!(m.metadata["is_group"], false);
    assert_eq!(m.thread_id, None);
    assert_eq!(env.http_calls().len(), 1, "users.info once");
    assert!(
        env.http_calls()[0].url.ends_with("/users.info")
            && env.http_calls()[0].body.as_deref() == Some(&b"user=U1"[..])
    );
    // The name is cached: a second message makes no call.
    request(&dm("again", "U1", "Ev2"));
    assert_eq!((env.http_calls().len(), env.emitted()[1].user_name.as_deref()), (1, Some("Alice")));
}

#[test]
fn self_and_bot_messages_ignored() {
    let env = started(json!({"dm_policy": "open", "resolve_user_names": false}));
    request(&dm("echo of myself", "UBOT", "Ev1"));
    let mut bot = dm("from a bot", "U2", "Ev2");
    bot["event"]["bot_id"] = json!("B9");
    request(&bot);
    assert!(env.emitted().is_empty() && env.http_calls().is_empty());
}

#[test]
fn pairing_sends_a_code_once_then_admits_after_approval() {
    let env = started(json!({"dm_policy": "pairing", "resolve_user_names": false}));
    request(&dm("let me in", "U7", "Ev1"));
    request(&dm("please", "U7", "Ev2"));
    assert!(env.emitted().is_empty());
    assert_eq!(env.http_calls().len(), 1, "one code, not one per message");
    let sent = posted_json(&env, 0);
    assert_eq!(sent["channel"], "D1");
    assert!(sent["text"].as_str().unwrap().contains("CODE0001"));
    env.approve_pairing(CHANNEL, "U7", "owner");
    request(&dm("now?", "U7", "Ev3"));
    assert_eq!(env.emitted().len(), 1);
}

#[test]
fn allowlist_denies_strangers_and_admits_owner() {
    let env = started(json!({"dm_policy": "allowlist", "owner_id": "UOWN", "resolve_user_names": false}));
    request(&dm("hi", "U7", "Ev1"));
    assert!(env.emitted().is_empty() && env.http_calls().is_empty());
    request(&dm("hi", "UOWN", "Ev2"));
    assert_eq!(env.emitted().len(), 1);
}

#[test]
fn mention_replies_in_thread() {
    let env = started(json!({"dm_policy": "allowlist", "resolve_user_names": false}));
    let body = json!({"type": "event_callback", "event_id": "Ev1",
                      "event": {"type": "app_mention", "channel": "C1", "user": "U5", "ts": "20.000200",
                                "text": "<@UBOT> status?"}});
    request(&body);
    let m = env.emitted()[0].clone();
    assert_eq!((m.content.as_str(), m.thread_id.as_deref()), ("status?", Some("20.000200")));
    assert_eq!(m.metadata["is_group"], true);
    let meta = m.metadata.clone();
    respond(&Reply { content: "all good", thread_id: None, metadata: &meta, attachments: &[] }).unwrap();
    let sent = posted_json(&env, 0);
    assert_eq!((sent["channel"].as_str(), sent["thread_ts"].as_str()), (Some("C1"), Some("20.000200")));
    assert!(env.http_calls()[0].url == "https://slack.com/api/chat.postMessage");
}

#[test]
fn respond_errors_are_reported() {
    let env = fake();
    let meta = json!({"channel": "D1", "reply_thread_ts": null});
    let reply = Reply { content: "hi", thread_id: None, metadata: &meta, attachments: &[] };
    env.queue_http(200, r#"{"ok": false, "error": "channel_not_found"}"#);
    assert_eq!(respond(&reply).unwrap_err(), "chat.postMessage failed: channel_not_found");
    env.queue_http(500, "oops");
    assert_eq!(respond(&reply).unwrap_err(), "chat.postMessage: HTTP 500");
    env.queue_http(429, "");
    assert!(respond(&reply).unwrap_err().contains("rate limited"));
    env.queue_http_error("host refused: not allowed");
    assert_eq!(
        respond(&reply).unwrap_err(),
        "chat.postMessage: http: POST https://slack.com/api/chat.postMessage: host refused: not allowed"
    );
    env.queue_http(200, r#"{"ok": false, "error": "xoxb-secret-looking <script>"}"#);
    assert_eq!(respond(&reply).unwrap_err(), "chat.postMessage failed: unknown_error");
    let no_channel = Reply { content: "hi", thread_id: None, metadata: &json!({}), attachments: &[] };
    assert!(respond(&no_channel).is_err());
    let sent = posted_json(&env, 0);
    assert!(sent.get("thread_ts").is_none());
}

#[test]
fn long_reply_split_and_thread_from_reply_when_metadata_lacks_it() {
    let env = fake();
    let text = "word ".repeat(MAX_TEXT_CHARS / 4);
    let meta = json!({"channel": "D1"});
    respond(&Reply { content: &text, thread_id: Some("5.5"), metadata: &meta, attachments: &[] }).unwrap();
    assert_eq!(env.http_calls().len(), 2);
    assert!((0..2).all(|i| posted_json(&env, i)["thread_ts"] == "5.5"));
    let bad_thread = Reply { content: "x", thread_id: Some("../etc"), metadata: &meta, attachments: &[] };
    respond(&bad_thread).unwrap();
    assert!(posted_json(&env, 2).get("thread_ts").is_none());
}

#[test]
fn broadcast_checks_the_id() {
    let env = fake();
    let reply = Reply { content: "news", thread_id: None, metadata: &json!({}), attachments: &[] };
    broadcast("U123", &reply).unwrap();
    assert_eq!(posted_json(&env, 0)["channel"], "U123");
    assert!(broadcast("U1&x=2", &reply).is_err());
}

#[test]
fn recent_events_are_bounded() {
    let env = started(json!({"dm_policy": "open", "resolve_user_names": false}));
    for i in 0..(MAX_RECENT_EVENTS + 10) {
        request(&dm("x", "U1", &format!("Ev{i}")));
    }
    let kept: Vec<String> = serde_json::from_str(&env.workspace_get(RECENT_EVENTS_PATH).unwrap()).unwrap();
    assert_eq!(kept.len(), MAX_RECENT_EVENTS);
    assert_eq!(kept[0], "Ev10");
}

#[test]
fn replies_return_the_last_ts_and_edits_use_chat_update() {
    let env = started(json!({"dm_policy": "open"}));
    let meta = json!({"channel": "C1"});
    env.queue_http(200, r#"{"ok": true, "ts": "1712345678.000100"}"#);
    let sent = respond(&Reply { content: "first", thread_id: None, metadata: &meta, attachments: &[] }).unwrap();
    assert_eq!(sent.as_deref(), Some("1712345678.000100"));
    env.queue_http(200, r#"{"ok": true, "ts": "1712345678.000100"}"#);
    edit("1712345678.000100", "first, then more", &meta).unwrap();
    let calls = env.http_calls();
    assert_eq!(calls[1].url, "https://slack.com/api/chat.update");
    assert_eq!(calls[1].json(), json!({"channel": "C1", "ts": "1712345678.000100", "text": "first, then more"}));
    env.queue_http(200, r#"{"ok": false, "error": "message_not_found"}"#);
    assert_eq!(edit("1712345678.000100", "x", &meta).unwrap_err(), "chat.update failed: message_not_found");
    assert!(edit("12; DROP", "x", &meta).is_err(), "a ts that is not Slack's is refused before any call");
    assert!(edit("1.2", "x", &json!({})).is_err(), "no channel in the metadata");
    assert_eq!(env.http_calls().len(), 3);
    // a broadcast (a DM opened by user id) returns its ts too
    env.queue_http(200, r#"{"ok": true, "ts": "1.5"}"#);
    let reply = Reply { content: "hi", thread_id: None, metadata: &meta, attachments: &[] };
    assert_eq!(broadcast("U123", &reply).unwrap().as_deref(), Some("1.5"));
}

#[test]
fn files_are_uploaded_with_files_upload_v2() {
    let env = fake();
    let meta = json!({"channel": "C1", "reply_thread_ts": "7.000001"});
    let files =
        [Attachment { filename: "a b.pdf".into(), mime_type: "application/pdf".into(), data: b"%PDF".to_vec() }];
    env.queue_http(200, r#"{"ok": true, "ts": "8.000001"}"#);
    env.queue_http(200, r#"{"ok": true, "upload_url": "https://files.slack.com/upload/v1/abc", "file_id": "F1"}"#);
    env.queue_http(200, "OK - 4");
    env.queue_http(200, r#"{"ok": true, "files": [{"id": "F1"}]}"#);
    let sent = respond(&Reply { content: "see", thread_id: None, metadata: &meta, attachments: &files }).unwrap();
    assert_eq!(sent.as_deref(), Some("8.000001"), "the text message's ts, for edits");
    let calls = env.http_calls();
    assert_eq!(calls[1].url, "https://slack.com/api/files.getUploadURLExternal");
    assert_eq!(calls[1].body.as_deref(), Some(&b"filename=a+b.pdf&length=4"[..]));
    assert_eq!(
        (calls[2].url.as_str(), calls[2].body.as_deref()),
        ("https://files.slack.com/upload/v1/abc", Some(&b"%PDF"[..]))
    );
    assert_eq!(calls[3].url, "https://slack.com/api/files.completeUploadExternal");
    assert_eq!(
        calls[3].json(),
        json!({"files": [{"id": "F1", "title": "a b.pdf"}], "channel_id": "C1", "thread_ts": "7.000001"})
    );
    // an upload URL off files.slack.com is refused before any byte leaves
    env.queue_http(200, r#"{"ok": true, "upload_url": "https://evil.example/x", "file_id": "F2"}"#);
    let only_files = Reply { content: "", thread_id: None, metadata: &meta, attachments: &files };
    assert!(respond(&only_files).unwrap_err().contains("no usable upload_url"));
    assert_eq!(env.http_calls().len(), 5);
}
