//! Unit tests of `channel.rs` over the SDK's `MockHost` (every outbound call is answered with
//! `200 {"messages": [{"id": "wamid.OUT"}]}` unless a test queues another answer).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::channel::*;
use std::rc::Rc;

use airlock_channel::testing::MockHost;

/// A fresh mock host whose outbound calls succeed by default.
fn fake() -> Rc<MockHost> {
    let host = MockHost::install();
    host.on_http(|_| Ok((200, BTreeMap::new(), br#"{"messages": [{"id": "wamid.OUT"}]}"#.to_vec())));
    host
}

/// The body of the `i`th outbound request, as JSON.
fn posted_json(host: &MockHost, i: usize) -> Value {
    host.http_calls()[i].json()
}

fn started(config: Value) -> Rc<MockHost> {
    let env = fake();
    start(&config).unwrap();
    env
}

fn text_note(from: &str, body: &str, id: &str) -> Value {
    json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"phone_number_id": "106", "display_phone_number": "1555"},
        "contacts": [{"profile": {"name": "Alice"}, "wa_id": from}],
        "messages": [{"from": from, "id": id, "timestamp": "1", "type": "text", "text": {"body": body}}]}}]}]})
}

fn post(body: &Value) -> Response {
    let body = body.to_string();
    let query = json!({});
    handle_request(&Request {
        method: "POST",
        path: WEBHOOK_PATH,
        query: &query,
        body: body.as_bytes(),
        secret_validated: true,
    })
}

fn get(query: &Value, ok: bool) -> Request<'_> {
    Request { method: "GET", path: WEBHOOK_PATH, query, body: b"", secret_validated: ok }
}

#[test]
fn handshake() {
    let _host = started(json!({}));
    let q = json!({"hub.mode": "subscribe", "hub.challenge": "1158201444", "hub.verify_token": "t"});
    let r = handle_request(&get(&q, true));
    assert_eq!((r.status, r.content_type, r.body.as_slice()), (200, "text/plain", b"1158201444".as_slice()));
    assert_eq!(handle_request(&get(&q, false)).status, 403);
    for bad in [
        json!({"hub.mode": "unsubscribe", "hub.challenge": "1"}),
        json!({"hub.mode": "subscribe"}),
        json!({"hub.mode": "subscribe", "hub.challenge": "<script>alert(1)</script> x"}),
        json!({"hub.mode": "subscribe", "hub.challenge": "9".repeat(MAX_CHALLENGE_CHARS + 1)}),
    ] {
        assert_eq!(handle_request(&get(&bad, true)).status, 400, "{bad}");
    }
}

#[test]
fn refusals() {
    let env = started(json!({}));
    let q = json!({});
    let unverified = Request { method: "POST", path: WEBHOOK_PATH, query: &q, body: b"{}", secret_validated: false };
    assert_eq!(handle_request(&unverified).status, 401);
    let put = Request { method: "PUT", path: WEBHOOK_PATH, query: &q, body: b"", secret_validated: true };
    assert_eq!(handle_request(&put).status, 405);
    let junk = Request { method: "POST", path: WEBHOOK_PATH, query: &q, body: b"{x", secret_validated: true };
    assert_eq!(handle_request(&junk).status, 200);
    assert!(env.emitted().is_empty());
}

#[test]
fn open_text_emitted_once() {
    let env = started(json!({"dm_policy": "open"}));
    assert_eq!(post(&text_note("4917", "hello", "wamid.1")).status, 200);
    post(&text_note("4917", "hello", "wamid.1"));
    assert_eq!(env.emitted().len(), 1);
    let m = &env.emitted()[0];
    assert_eq!((m.user_id.as_str(), m.user_name.as_deref(), m.content.as_str()), ("4917", Some("Alice"), "hello"));
    assert_eq!(
        (m.metadata["phone_number_id"].as_str(), m.metadata["message_id"].as_str()),
        (Some("106"), Some("wamid.1"))
    );
    assert_eq!(env.workspace_get(LAST_NUMBER_PATH).unwrap(), "106");
    assert!(env.http_calls().is_empty());
}

#[test]
fn unsupported_and_status_skipped() {
    let env = started(json!({"dm_policy": "open"}));
    let mut image = text_note("4917", "x", "wamid.2");
    image["entry"][0]["changes"][0]["value"]["messages"][0] =
        json!({"from": "4917", "id": "wamid.2", "type": "sticker"});
    post(&image);
    let status = json!({"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages",
        "value": {"metadata": {"phone_number_id": "106"}, "statuses": [{"id": "wamid.OUT", "status": "read"}]}}]}]});
    post(&status);
    assert!(env.emitted().is_empty() && env.http_calls().is_empty());
    assert!(env.logs().iter().any(|(_, m)| m.contains("unsupported message type sticker")));
}

#[test]
fn pairing_then_approval() {
    let env = started(json!({"dm_policy": "pairing"}));
    post(&text_note("4917", "hi", "wamid.1"));
    post(&text_note("4917", "hi again", "wamid.2"));
    assert!(env.emitted().is_empty());
    assert_eq!(env.http_calls().len(), 1);
    assert_eq!(env.http_calls()[0].url, "https://graph.facebook.com/v20.0/106/messages");
    let sent = posted_json(&env, 0);
    assert_eq!((sent["to"].as_str(), sent["type"].as_str()), (Some("4917"), Some("text")));
    assert!(sent["text"]["body"].as_str().unwrap().contains("CODE0001"));
    env.approve_pairing(CHANNEL, "4917", "owner");
    post(&text_note("4917", "now", "wamid.3"));
    assert_eq!(env.emitted().len(), 1);
}

#[test]
fn allowlist_normalises_numbers() {
    let env = started(json!({"dm_policy": "allowlist", "allow_from": ["+49 17"]}));
    post(&text_note("4917", "ok", "wamid.1"));
    post(&text_note("4918", "no", "wamid.2"));
    assert_eq!(env.emitted().len(), 1);
    assert!(env.http_calls().is_empty());
}

#[test]
fn respond_quotes_the_message_and_splits() {
    let env = started(json!({"api_version": "v21.0"}));
    let meta = json!({"phone_number_id": "106", "from": "4917", "message_id": "wamid.1"});
    let long = "a ".repeat(MAX_TEXT_CHARS);
    respond(&Reply { content: &long, metadata: &meta, attachments: 0 }).unwrap();
    assert_eq!(env.http_calls().len(), 2);
    assert_eq!(env.http_calls()[0].url, "https://graph.facebook.com/v21.0/106/messages");
    let (first, second) = (posted_json(&env, 0), posted_json(&env, 1));
    assert_eq!(first["context"]["message_id"], "wamid.1");
    assert!(second.get("context").is_none());
    assert!(first["text"]["body"].as_str().unwrap().chars().count() <= MAX_TEXT_CHARS);
    let env = started(json!({"reply_to_message": false}));
    respond(&Reply { content: "x", metadata: &meta, attachments: 0 }).unwrap();
    assert!(posted_json(&env, 0).get("context").is_none());
}

#[test]
fn respond_errors() {
    let env = started(json!({}));
    let meta = json!({"phone_number_id": "106", "from": "4917", "message_id": "wamid.1"});
    let reply = Reply { content: "x", metadata: &meta, attachments: 0 };
    env.queue_http(
        401,
        r#"{"error": {"message": "Invalid OAuth access token EAAG-secret", "type": "OAuthException", "code": 190}}"#,
    );
    let err = respond(&reply).unwrap_err();
    assert_eq!(err, "whatsapp send failed: HTTP 401 code 190 OAuthException");
    env.queue_http_error("host refused");
    assert_eq!(
        respond(&reply).unwrap_err(),
        "whatsapp send: http: POST https://graph.facebook.com/v20.0/106/messages: host refused"
    );
    assert!(respond(&Reply { content: "x", metadata: &json!({}), attachments: 0 }).is_err());
    let bad = json!({"phone_number_id": "106/../../me", "from": "4917"});
    assert!(respond(&Reply { content: "x", metadata: &bad, attachments: 0 }).is_err());
    assert_eq!(env.http_calls().len(), 2);
}

#[test]
fn broadcast_needs_a_number() {
    let _host = started(json!({}));
    let reply = Reply { content: "news", metadata: &json!({}), attachments: 0 };
    assert!(broadcast("4917", &reply).is_err());
    let env = started(json!({"phone_number_id": "106"}));
    broadcast("+49 17", &reply).unwrap();
    assert_eq!(posted_json(&env, 0)["to"], "4917");
}
