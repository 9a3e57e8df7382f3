//! Unit tests of the export glue: the WIT records in, the channel's answers and errors out.

use super::dispatch;
use crate::bindings::exports::airlock::channel::channel as wit;
use crate::testing::MockHost;
use crate::{bail, AgentResponse, Channel, ChannelConfig, Config, Endpoint, Request, Response, Result};

struct Probe;

impl Channel for Probe {
    fn on_start(config: Config) -> Result<ChannelConfig> {
        match config.str("mode") {
            Some("fail") => bail!("no token configured"),
            Some("bad-path") => Ok(ChannelConfig::new("p").endpoint(Endpoint::post("webhook"))),
            _ => Ok(ChannelConfig::new("p").endpoint(Endpoint::new("/w", &["post", "get"]).require_secret(true))),
        }
    }
    fn on_http_request(req: &Request) -> Response {
        Response::json(201, &serde_json::json!({"ua": req.header("user-agent"), "q": req.query_param("a")}))
            .with_header("X-Seen", req.method.clone())
    }
    fn on_respond(response: &AgentResponse) -> Result<()> {
        match response.metadata_str("chat") {
            Some(_) => Ok(()),
            None => bail!("no chat in metadata"),
        }
    }
    fn on_poll() -> Result<()> {
        bail!("poll broke")
    }
}

fn reply(metadata_json: &str) -> wit::AgentResponse {
    wit::AgentResponse {
        message_id: "m".into(),
        content: "c".into(),
        thread_id: None,
        metadata_json: metadata_json.into(),
        attachments: vec![],
    }
}

#[test]
fn on_start_converts_validates_and_reports() {
    let cfg = dispatch::on_start::<Probe>("").unwrap();
    assert_eq!(cfg.http_endpoints[0].methods, vec!["POST", "GET"]);
    assert!(cfg.http_endpoints[0].require_secret);
    assert_eq!(dispatch::on_start::<Probe>(r#"{"mode": "fail"}"#).unwrap_err(), "no token configured");
    assert!(dispatch::on_start::<Probe>(r#"{"mode": "bad-path"}"#).unwrap_err().contains("must start with '/'"));
    assert!(dispatch::on_start::<Probe>("[1]").unwrap_err().starts_with("config: "));
}

#[test]
fn on_http_request_lowercases_headers_and_encodes_the_response() {
    let out = dispatch::on_http_request::<Probe>(wit::IncomingHttpRequest {
        method: "post".into(),
        path: "/w".into(),
        headers_json: r#"{"User-Agent": "t/1"}"#.into(),
        query_json: r#"{"a": ["1", "2"]}"#.into(),
        body: vec![],
        secret_validated: true,
    });
    assert_eq!(out.status, 201);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&out.body).unwrap(),
        serde_json::json!({"ua": "t/1", "q": "1, 2"})
    );
    let headers: serde_json::Value = serde_json::from_str(&out.headers_json).unwrap();
    assert_eq!(headers["x-seen"], "POST");
    assert_eq!(headers["content-type"], "application/json");
}

#[test]
fn respond_errors_and_bad_metadata_become_wit_errors() {
    assert_eq!(dispatch::on_respond::<Probe>(reply(r#"{"chat": "1"}"#)), Ok(()));
    assert_eq!(dispatch::on_respond::<Probe>(reply("{}")).unwrap_err(), "no chat in metadata");
    assert!(dispatch::on_respond::<Probe>(reply("[]")).unwrap_err().contains("instead of an object"));
    assert_eq!(
        dispatch::on_broadcast::<Probe>("u", reply("{}")).unwrap_err(),
        "this channel does not support broadcasts"
    );
}

#[test]
fn callbacks_without_an_error_result_log_failures() {
    let host = MockHost::install();
    dispatch::on_poll::<Probe>();
    dispatch::on_status::<Probe>(wit::StatusUpdate {
        status: wit::StatusType::Thinking,
        message: String::new(),
        metadata_json: "not json".into(),
    });
    dispatch::on_shutdown::<Probe>();
    let logs: Vec<String> = host.logs().into_iter().map(|(_, l)| l).collect();
    assert_eq!(logs[0], "on_poll failed: poll broke");
    assert!(logs[1].starts_with("on_status failed: status metadata-json is not JSON"));
    assert_eq!(logs.len(), 2, "on_shutdown's default succeeds");
}

struct Sender;

impl Channel for Sender {
    fn on_start(_config: Config) -> Result<ChannelConfig> {
        Ok(ChannelConfig::new("s"))
    }
    fn on_respond(response: &AgentResponse) -> Result<()> {
        Self::on_send(response).map(drop)
    }
    fn on_send(response: &AgentResponse) -> Result<Option<String>> {
        match response.content.as_str() {
            "slow" => Err(crate::Error::rate_limited(7, "429")),
            "gone" => Err(crate::Error::permanent("chat not found")),
            "flaky" => Err(crate::Error::temporary("502")),
            "odd" => bail!("something else"),
            _ => Ok(Some("m-1".into())),
        }
    }
    fn on_edit(edit: &crate::MessageEdit) -> Result<()> {
        crate::ensure!(edit.metadata_str("chat").is_some(), "no chat");
        Ok(())
    }
}

fn said(content: &str) -> wit::AgentResponse {
    wit::AgentResponse { content: content.into(), ..reply(r#"{"chat": "1"}"#) }
}

#[test]
fn delivery_returns_the_platform_id_and_typed_errors() {
    use crate::bindings::exports::airlock::channel::delivery::{RateLimit, SendError};
    use crate::channel::dispatch_v2 as v2;
    assert_eq!(v2::on_send::<Sender>(said("hi")), Ok(Some("m-1".into())));
    assert_eq!(
        v2::on_send::<Sender>(said("slow")),
        Err(SendError::RateLimited(RateLimit { retry_after_secs: 7, message: "429".into() }))
    );
    assert_eq!(v2::on_send::<Sender>(said("gone")), Err(SendError::Permanent("chat not found".into())));
    assert_eq!(v2::on_send::<Sender>(said("flaky")), Err(SendError::Temporary("502".into())));
    assert_eq!(v2::on_send::<Sender>(said("odd")), Err(SendError::Unclassified("something else".into())));
    // the 0.1.0 export runs the same code, with the error as text
    assert_eq!(dispatch::on_respond::<Sender>(said("gone")).unwrap_err(), "chat not found");
    // a 0.1.0-style channel (Probe) gets on_send from on_respond: no id, unclassified errors
    assert_eq!(v2::on_send::<Probe>(reply(r#"{"chat": "1"}"#)), Ok(None));
    assert_eq!(v2::on_send::<Probe>(reply("{}")), Err(SendError::Unclassified("no chat in metadata".into())));
    assert!(matches!(v2::on_send::<Probe>(reply("[]")), Err(SendError::Permanent(_))));
    assert_eq!(
        v2::on_send_broadcast::<Probe>("u", reply("{}")),
        Err(SendError::Unclassified("this channel does not support broadcasts".into()))
    );
}

#[cfg(feature = "edit")]
#[test]
fn edits_convert_and_default_to_permanent_errors() {
    use crate::bindings::exports::airlock::channel::delivery::SendError;
    use crate::bindings::exports::airlock::channel::edits::MessageEdit;
    use crate::channel::dispatch_v2 as v2;
    let edit = |meta: &str| MessageEdit {
        platform_message_id: "m-1".into(),
        content: "new".into(),
        thread_id: None,
        metadata_json: meta.into(),
    };
    assert_eq!(v2::on_edit::<Sender>(edit(r#"{"chat": "1"}"#)), Ok(()));
    assert_eq!(v2::on_edit::<Sender>(edit("{}")), Err(SendError::Unclassified("no chat".into())));
    assert!(matches!(v2::on_edit::<Sender>(edit("nope")), Err(SendError::Permanent(_))));
    assert_eq!(
        v2::on_edit::<Probe>(edit("{}")),
        Err(SendError::Permanent("this channel does not edit messages".into()))
    );
}

#[cfg(feature = "react")]
#[test]
fn reactions_default_to_a_permanent_error() {
    use crate::bindings::exports::airlock::channel::delivery::SendError;
    use crate::bindings::exports::airlock::channel::reactions::Reaction;
    use crate::channel::dispatch_v2 as v2;
    let react =
        Reaction { platform_message_id: "m".into(), emoji: "👍".into(), remove: false, metadata_json: "{}".into() };
    assert_eq!(
        v2::on_react::<Sender>(react),
        Err(SendError::Permanent("this channel does not react to messages".into()))
    );
}
