//! Unit tests of `channel.rs` over the recording `FakeEnv`.

use serde_json::{json, Value};

use crate::channel::*;
use crate::testing::FakeEnv;

fn started(config: Value) -> FakeEnv {
    let mut env = FakeEnv::default();
    start(&mut env, &config).unwrap();
    env
}

fn text_note(from: &str, body: &str, id: &str) -> Value {
    json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"phone_number_id": "106", "display_phone_number": "1555"},
        "contacts": [{"profile": {"name": "Alice"}, "wa_id": from}],
        "messages": [{"from": from, "id": id, "timestamp": "1", "type": "text", "text": {"body": body}}]}}]}]})
}

fn post(env: &mut FakeEnv, body: &Value) -> Response {
    let body = body.to_string();
    let query = json!({});
    handle_request(
        env,
        &Request { method: "POST", path: WEBHOOK_PATH, query: &query, body: body.as_bytes(), secret_validated: true },
    )
}

fn get(query: &Value, ok: bool) -> Request<'_> {
    Request { method: "GET", path: WEBHOOK_PATH, query, body: b"", secret_validated: ok }
}

#[test]
fn handshake() {
    let mut env = started(json!({}));
    let q = json!({"hub.mode": "subscribe", "hub.challenge": "1158201444", "hub.verify_token": "t"});
    let r = handle_request(&mut env, &get(&q, true));
    assert_eq!((r.status, r.content_type, r.body.as_slice()), (200, "text/plain", b"1158201444".as_slice()));
    assert_eq!(handle_request(&mut env, &get(&q, false)).status, 403);
    for bad in [
        json!({"hub.mode": "unsubscribe", "hub.challenge": "1"}),
        json!({"hub.mode": "subscribe"}),
        json!({"hub.mode": "subscribe", "hub.challenge": "<script>alert(1)</script> x"}),
        json!({"hub.mode": "subscribe", "hub.challenge": "9".repeat(MAX_CHALLENGE_CHARS + 1)}),
    ] {
        assert_eq!(handle_request(&mut env, &get(&bad, true)).status, 400, "{bad}");
    }
}

#[test]
fn refusals() {
    let mut env = started(json!({}));
    let q = json!({});
    let unverified = Request { method: "POST", path: WEBHOOK_PATH, query: &q, body: b"{}", secret_validated: false };
    assert_eq!(handle_request(&mut env, &unverified).status, 401);
    let put = Request { method: "PUT", path: WEBHOOK_PATH, query: &q, body: b"", secret_validated: true };
    assert_eq!(handle_request(&mut env, &put).status, 405);
    let junk = Request { method: "POST", path: WEBHOOK_PATH, query: &q, body: b"{x", secret_validated: true };
    assert_eq!(handle_request(&mut env, &junk).status, 200);
    assert!(env.emitted.is_empty());
}

#[test]
fn open_text_emitted_once() {
    let mut env = started(json!({"dm_policy": "open"}));
    assert_eq!(post(&mut env, &text_note("4917", "hello", "wamid.1")).status, 200);
    post(&mut env, &text_note("4917", "hello", "wamid.1"));
    assert_eq!(env.emitted.len(), 1);
    let m = &env.emitted[0];
    assert_eq!((m.user_id.as_str(), m.user_name.as_deref(), m.content.as_str()), ("4917", Some("Alice"), "hello"));
    assert_eq!(
        (m.metadata["phone_number_id"].as_str(), m.metadata["message_id"].as_str()),
        (Some("106"), Some("wamid.1"))
    );
    assert_eq!(env.workspace[LAST_NUMBER_PATH], "106");
    assert!(env.posts.is_empty());
}

#[test]
fn unsupported_and_status_skipped() {
    let mut env = started(json!({"dm_policy": "open"}));
    let mut image = text_note("4917", "x", "wamid.2");
    image["entry"][0]["changes"][0]["value"]["messages"][0] =
        json!({"from": "4917", "id": "wamid.2", "type": "sticker"});
    post(&mut env, &image);
    let status = json!({"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages",
        "value": {"metadata": {"phone_number_id": "106"}, "statuses": [{"id": "wamid.OUT", "status": "read"}]}}]}]});
    post(&mut env, &status);
    assert!(env.emitted.is_empty() && env.posts.is_empty());
    assert!(env.logs.iter().any(|(_, m)| m.contains("unsupported message type sticker")));
}

#[test]
fn pairing_then_approval() {
    let mut env = started(json!({"dm_policy": "pairing"}));
    post(&mut env, &text_note("4917", "hi", "wamid.1"));
    post(&mut env, &text_note("4917", "hi again", "wamid.2"));
    assert!(env.emitted.is_empty());
    assert_eq!(env.posts.len(), 1);
    assert_eq!(env.posts[0].0, "https://graph.facebook.com/v20.0/106/messages");
    let sent = env.posted_json(0);
    assert_eq!((sent["to"].as_str(), sent["type"].as_str()), (Some("4917"), Some("text")));
    assert!(sent["text"]["body"].as_str().unwrap().contains("CODE1"));
    env.paired.insert("4917".into());
    post(&mut env, &text_note("4917", "now", "wamid.3"));
    assert_eq!(env.emitted.len(), 1);
}

#[test]
fn allowlist_normalises_numbers() {
    let mut env = started(json!({"dm_policy": "allowlist", "allow_from": ["+49 17"]}));
    post(&mut env, &text_note("4917", "ok", "wamid.1"));
    post(&mut env, &text_note("4918", "no", "wamid.2"));
    assert_eq!(env.emitted.len(), 1);
    assert!(env.posts.is_empty());
}

#[test]
fn respond_quotes_the_message_and_splits() {
    let mut env = started(json!({"api_version": "v21.0"}));
    let meta = json!({"phone_number_id": "106", "from": "4917", "message_id": "wamid.1"});
    let long = "a ".repeat(MAX_TEXT_CHARS);
    respond(&mut env, &Reply { content: &long, metadata: &meta, attachments: 0 }).unwrap();
    assert_eq!(env.posts.len(), 2);
    assert_eq!(env.posts[0].0, "https://graph.facebook.com/v21.0/106/messages");
    let (first, second) = (env.posted_json(0), env.posted_json(1));
    assert_eq!(first["context"]["message_id"], "wamid.1");
    assert!(second.get("context").is_none());
    assert!(first["text"]["body"].as_str().unwrap().chars().count() <= MAX_TEXT_CHARS);
    let mut env = started(json!({"reply_to_message": false}));
    respond(&mut env, &Reply { content: "x", metadata: &meta, attachments: 0 }).unwrap();
    assert!(env.posted_json(0).get("context").is_none());
}

#[test]
fn respond_errors() {
    let mut env = started(json!({}));
    let meta = json!({"phone_number_id": "106", "from": "4917", "message_id": "wamid.1"});
    let reply = Reply { content: "x", metadata: &meta, attachments: 0 };
    env.answer(
        401,
        r#"{"error": {"message": "Invalid OAuth access token EAAG-secret", "type": "OAuthException", "code": 190}}"#,
    );
    let err = respond(&mut env, &reply).unwrap_err();
    assert_eq!(err, "whatsapp send failed: HTTP 401 code 190 OAuthException");
    env.answers.push_back(Err("host refused".into()));
    assert_eq!(respond(&mut env, &reply).unwrap_err(), "whatsapp send: host refused");
    assert!(respond(&mut env, &Reply { content: "x", metadata: &json!({}), attachments: 0 }).is_err());
    let bad = json!({"phone_number_id": "106/../../me", "from": "4917"});
    assert!(respond(&mut env, &Reply { content: "x", metadata: &bad, attachments: 0 }).is_err());
    assert_eq!(env.posts.len(), 2);
}

#[test]
fn broadcast_needs_a_number() {
    let mut env = started(json!({}));
    let reply = Reply { content: "news", metadata: &json!({}), attachments: 0 };
    assert!(broadcast(&mut env, "4917", &reply).is_err());
    let mut env = started(json!({"phone_number_id": "106"}));
    broadcast(&mut env, "+49 17", &reply).unwrap();
    assert_eq!(env.posted_json(0)["to"], "4917");
}
