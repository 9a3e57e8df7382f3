//! The [`Channel`] trait and the glue between it and the generated WIT exports.

use crate::error::{Error, Result};
use crate::types::{AgentResponse, ChannelConfig, Config, MessageEdit, Reaction, Request, Response, StatusUpdate};

/// A channel: implement this on one type and export it with [`export_channel!`](crate::export_channel).
///
/// Every callback runs in a fresh component instance, so the methods take no `self`: nothing in memory
/// survives between callbacks. Keep state in the [`workspace`](crate::workspace). Host effects (emitted
/// messages, workspace writes) are applied only when the callback succeeds.
///
/// A panic aborts the instance (the host reports it as a trap); prefer returning an [`Error`](crate::Error).
///
/// ```no_run
/// use airlock_channel::{export_channel, AgentResponse, Channel, ChannelConfig, Config, Endpoint, Request,
///                       Response, Result};
///
/// struct Echo;
///
/// impl Channel for Echo {
///     fn on_start(_config: Config) -> Result<ChannelConfig> {
///         Ok(ChannelConfig::new("Echo").endpoint(Endpoint::post("/webhook/echo")))
///     }
///     fn on_http_request(req: &Request) -> Response {
///         Response::text(200, req.text().unwrap_or(""))
///     }
///     fn on_respond(_response: &AgentResponse) -> Result<()> {
///         Ok(())
///     }
/// }
///
/// export_channel!(Echo);
/// ```
pub trait Channel {
    /// Called once when the channel is activated, with the `config` object of its capabilities file.
    /// Return the display name, endpoints and polling schedule; an `Err` keeps the channel inactive and
    /// its message is logged by the host.
    fn on_start(config: Config) -> Result<ChannelConfig>;

    /// One request to an endpoint returned by [`on_start`](Channel::on_start), or a websocket frame
    /// ([`Request::is_websocket_frame`]). Default: 404.
    fn on_http_request(req: &Request) -> Response {
        let _ = req;
        Response::not_found()
    }

    /// One polling tick. An `Err` is logged at error level. Default: nothing.
    fn on_poll() -> Result<()> {
        Ok(())
    }

    /// Deliver the agent's reply to the platform; `response.metadata` is the metadata of the message being
    /// answered. An `Err` tells the host the delivery failed (its text is the WIT error).
    fn on_respond(response: &AgentResponse) -> Result<()>;

    /// Agent progress (typing indicators). Must be idempotent; an `Err` is logged at warn level.
    /// Default: nothing.
    fn on_status(update: &StatusUpdate) -> Result<()> {
        let _ = update;
        Ok(())
    }

    /// A message the agent sends to `user_id` without an inbound message. Default: an error saying the
    /// channel does not support broadcasts.
    fn on_broadcast(user_id: &str, response: &AgentResponse) -> Result<()> {
        let _ = (user_id, response);
        Err(crate::Error::new("this channel does not support broadcasts"))
    }

    /// The channel is being unloaded. An `Err` is logged at warn level. Default: nothing.
    fn on_shutdown() -> Result<()> {
        Ok(())
    }

    /// World 0.2.0 (`delivery`, exported by every `export_channel!`): deliver the reply and return the platform's
    /// id of the message sent (of the last one, when the reply is split), which [`on_edit`](Channel::on_edit)
    /// gets back; `None` when the platform gives none. The host calls this instead of
    /// [`on_respond`](Channel::on_respond). An `Err` with a [`SendClass`](crate::SendClass) decides the retry.
    /// Default: `on_respond`, no id. A channel that implements it usually makes `on_respond` call it.
    fn on_send(response: &AgentResponse) -> Result<Option<String>> {
        Self::on_respond(response).map(|()| None)
    }

    /// World 0.2.0: [`on_broadcast`](Channel::on_broadcast) returning the platform's message id, as
    /// [`on_send`](Channel::on_send). Default: `on_broadcast`, no id.
    fn on_send_broadcast(user_id: &str, response: &AgentResponse) -> Result<Option<String>> {
        Self::on_broadcast(user_id, response).map(|()| None)
    }

    /// World 0.2.0 (`edits`, exported by `export_channel!(T, edit)`): replace the text of the message
    /// `edit.platform_message_id` with `edit.content`. A platform's "not modified" answer is a success.
    /// Default: a permanent error (not exported unless the macro is asked to).
    fn on_edit(edit: &MessageEdit) -> Result<()> {
        let _ = edit;
        Err(Error::permanent("this channel does not edit messages"))
    }

    /// World 0.2.0 (`reactions`, exported by `export_channel!(T, react)`): add (or, `remove`, take away) a
    /// reaction. Default: a permanent error.
    fn on_react(reaction: &Reaction) -> Result<()> {
        let _ = reaction;
        Err(Error::permanent("this channel does not react to messages"))
    }
}

/// Export `$ty` (a type implementing [`Channel`]) as the component's `airlock:channel/channel` interface and
/// world 0.2.0's `delivery` ([`Channel::on_send`]); with this crate's feature `edit` also `edits`
/// ([`Channel::on_edit`]), with `react` also `reactions` ([`Channel::on_react`]). Use it once, in the channel
/// crate's `lib.rs` (crate-type `cdylib`). It expands to nothing on targets other than wasm32, so the crate's unit
/// tests build natively.
///
/// ```no_run
/// # use airlock_channel::*;
/// # struct MyChannel;
/// # impl Channel for MyChannel {
/// #     fn on_start(_: Config) -> Result<ChannelConfig> { Ok(ChannelConfig::new("x")) }
/// #     fn on_respond(_: &AgentResponse) -> Result<()> { Ok(()) }
/// # }
/// airlock_channel::export_channel!(MyChannel);
/// ```
#[macro_export]
macro_rules! export_channel {
    ($ty:ty) => {
        $crate::__export_channel_base!($ty);
    };
}

/// `channel`, `delivery` and, by the crate features, `edits` / `reactions` (used by [`export_channel!`]). Not public
/// API.
#[doc(hidden)]
#[macro_export]
macro_rules! __export_channel_base {
    ($ty:ty) => {
        // Only inside a component: on the build machine (`cargo test` of a cdylib crate) the WIT export
        // names ("airlock:channel/channel@0.2.0#on-start") are not valid in a native linker's symbol list.
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            use $crate::__private::wit as __wit;
            use $crate::__private::wit_delivery as __wit_delivery;
            struct __AirlockChannelExport;
            impl __wit::Guest for __AirlockChannelExport {
                fn on_start(
                    config_json: ::std::string::String,
                ) -> ::core::result::Result<__wit::ChannelConfig, ::std::string::String> {
                    $crate::__private::on_start::<$ty>(&config_json)
                }
                fn on_http_request(req: __wit::IncomingHttpRequest) -> __wit::OutgoingHttpResponse {
                    $crate::__private::on_http_request::<$ty>(req)
                }
                fn on_poll() {
                    $crate::__private::on_poll::<$ty>()
                }
                fn on_respond(response: __wit::AgentResponse) -> ::core::result::Result<(), ::std::string::String> {
                    $crate::__private::on_respond::<$ty>(response)
                }
                fn on_status(update: __wit::StatusUpdate) {
                    $crate::__private::on_status::<$ty>(update)
                }
                fn on_broadcast(
                    user_id: ::std::string::String,
                    response: __wit::AgentResponse,
                ) -> ::core::result::Result<(), ::std::string::String> {
                    $crate::__private::on_broadcast::<$ty>(&user_id, response)
                }
                fn on_shutdown() {
                    $crate::__private::on_shutdown::<$ty>()
                }
            }
            impl __wit_delivery::Guest for __AirlockChannelExport {
                fn on_respond(
                    response: __wit::AgentResponse,
                ) -> ::core::result::Result<::core::option::Option<::std::string::String>, __wit_delivery::SendError>
                {
                    $crate::__private::on_send::<$ty>(response)
                }
                fn on_broadcast(
                    user_id: ::std::string::String,
                    response: __wit::AgentResponse,
                ) -> ::core::result::Result<::core::option::Option<::std::string::String>, __wit_delivery::SendError>
                {
                    $crate::__private::on_send_broadcast::<$ty>(&user_id, response)
                }
            }
            $crate::__impl_channel_edits!(__AirlockChannelExport, $ty);
            $crate::__impl_channel_reactions!(__AirlockChannelExport, $ty);
    $crate::bindings::__export_channel_world!(__AirlockChannelExport with_types_in $crate::bindings);
        };
        // Natively nothing is exported, but the type must still be a Channel (and counts as used).
        #[cfg(not(target_arch = "wasm32"))]
        const _: () = {
            let _ = <$ty as $crate::Channel>::on_start;
        };
    };
}

/// `edits` for the export type `$ex` (used by [`export_channel!`] when the crate feature `edit` is on). Not public
/// API.
#[cfg(feature = "edit")]
#[doc(hidden)]
#[macro_export]
macro_rules! __impl_channel_edits {
    ($ex:ident, $ty:ty) => {
        impl $crate::__private::wit_edits::Guest for $ex {
            fn on_edit(
                edit: $crate::__private::wit_edits::MessageEdit,
            ) -> ::core::result::Result<(), $crate::__private::wit_delivery::SendError> {
                $crate::__private::on_edit::<$ty>(edit)
            }
        }
    };
}

/// Without the crate feature `edit`: nothing (the world has no `edits`). Not public API.
#[cfg(not(feature = "edit"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __impl_channel_edits {
    ($ex:ident, $ty:ty) => {};
}

/// `reactions` for the export type `$ex` (crate feature `react`). Not public API.
#[cfg(feature = "react")]
#[doc(hidden)]
#[macro_export]
macro_rules! __impl_channel_reactions {
    ($ex:ident, $ty:ty) => {
        impl $crate::__private::wit_reactions::Guest for $ex {
            fn on_react(
                reaction: $crate::__private::wit_reactions::Reaction,
            ) -> ::core::result::Result<(), $crate::__private::wit_delivery::SendError> {
                $crate::__private::on_react::<$ty>(reaction)
            }
        }
    };
}

/// Without the crate feature `react`: nothing. Not public API.
#[cfg(not(feature = "react"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __impl_channel_reactions {
    ($ex:ident, $ty:ty) => {};
}

/// Conversions between the generated WIT types and the SDK's; used by [`export_channel!`]. Not public API.
#[doc(hidden)]
pub mod dispatch {
    use super::Channel;
    use crate::bindings::exports::airlock::channel::channel as wit;
    use crate::types::{metadata_object, string_map, Attachment, Status, INTERNAL_ERROR_BODY};
    use crate::{AgentResponse, Config, Request, StatusUpdate};

    /// `on-start`: parse the config, run the channel, validate and convert its answer.
    pub fn on_start<C: Channel>(config_json: &str) -> Result<wit::ChannelConfig, String> {
        let config = Config::from_json(config_json).map_err(|e| e.context("config").to_string())?;
        let cfg = C::on_start(config).map_err(|e| e.to_string())?;
        cfg.validate().map_err(|e| e.to_string())?;
        Ok(wit::ChannelConfig {
            display_name: cfg.display_name,
            http_endpoints: cfg
                .endpoints
                .into_iter()
                .map(|ep| wit::HttpEndpointConfig {
                    path: ep.path,
                    methods: ep.methods,
                    require_secret: ep.require_secret,
                })
                .collect(),
            poll: cfg.poll.map(|p| wit::PollConfig { interval_ms: p.interval_ms, enabled: p.enabled }),
        })
    }

    /// `on-http-request`: the host's record as a [`Request`]; the channel's [`Response`](crate::Response)
    /// back as the WIT record (headers as a JSON object).
    pub fn on_http_request<C: Channel>(req: wit::IncomingHttpRequest) -> wit::OutgoingHttpResponse {
        let request = Request {
            method: req.method.to_ascii_uppercase(),
            path: req.path,
            headers: string_map(&req.headers_json, true),
            query: string_map(&req.query_json, false),
            body: req.body,
            secret_validated: req.secret_validated,
        };
        let resp = C::on_http_request(&request);
        match serde_json::to_string(&resp.headers) {
            Ok(headers_json) => wit::OutgoingHttpResponse { status: resp.status, headers_json, body: resp.body },
            Err(_) => wit::OutgoingHttpResponse {
                status: 500,
                headers_json: r#"{"content-type":"application/json"}"#.into(),
                body: INTERNAL_ERROR_BODY.to_vec(),
            },
        }
    }

    /// `on-poll`: an error is logged.
    pub fn on_poll<C: Channel>() {
        if let Err(e) = C::on_poll() {
            crate::log::error(&format!("on_poll failed: {e}"));
        }
    }

    pub(crate) fn agent_response(r: wit::AgentResponse) -> crate::Result<AgentResponse> {
        Ok(AgentResponse {
            message_id: r.message_id,
            content: r.content,
            thread_id: r.thread_id,
            metadata: metadata_object(&r.metadata_json, "response metadata-json")?,
            attachments: r
                .attachments
                .into_iter()
                .map(|a| Attachment { filename: a.filename, mime_type: a.mime_type, data: a.data })
                .collect(),
        })
    }

    /// `on-respond`: the error's text becomes the WIT error.
    pub fn on_respond<C: Channel>(response: wit::AgentResponse) -> Result<(), String> {
        let response = agent_response(response).map_err(|e| e.to_string())?;
        C::on_respond(&response).map_err(|e| e.to_string())
    }

    /// `on-broadcast`: the error's text becomes the WIT error.
    pub fn on_broadcast<C: Channel>(user_id: &str, response: wit::AgentResponse) -> Result<(), String> {
        let response = agent_response(response).map_err(|e| e.to_string())?;
        C::on_broadcast(user_id, &response).map_err(|e| e.to_string())
    }

    /// `on-status`: bad metadata or an error is logged at warn level.
    pub fn on_status<C: Channel>(update: wit::StatusUpdate) {
        let status = match update.status {
            wit::StatusType::Thinking => Status::Thinking,
            wit::StatusType::Done => Status::Done,
            wit::StatusType::Interrupted => Status::Interrupted,
            wit::StatusType::ToolStarted => Status::ToolStarted,
            wit::StatusType::ToolCompleted => Status::ToolCompleted,
            wit::StatusType::ToolResult => Status::ToolResult,
            wit::StatusType::ApprovalNeeded => Status::ApprovalNeeded,
            wit::StatusType::Status => Status::Status,
            wit::StatusType::JobStarted => Status::JobStarted,
            wit::StatusType::AuthRequired => Status::AuthRequired,
            wit::StatusType::AuthCompleted => Status::AuthCompleted,
        };
        let result = metadata_object(&update.metadata_json, "status metadata-json")
            .and_then(|metadata| C::on_status(&StatusUpdate { status, message: update.message, metadata }));
        if let Err(e) = result {
            crate::log::warn(&format!("on_status failed: {e}"));
        }
    }

    /// `on-shutdown`: an error is logged at warn level.
    pub fn on_shutdown<C: Channel>() {
        if let Err(e) = C::on_shutdown() {
            crate::log::warn(&format!("on_shutdown failed: {e}"));
        }
    }
}

/// World 0.2.0's optional interfaces: conversions for [`export_channel!`]. Not public API.
#[doc(hidden)]
pub mod dispatch_v2 {
    use super::dispatch::agent_response;
    use super::Channel;
    use crate::bindings::exports::airlock::channel::channel as wit;
    use crate::bindings::exports::airlock::channel::delivery as wit_delivery;
    #[cfg(feature = "edit")]
    use crate::bindings::exports::airlock::channel::edits as wit_edits;
    #[cfg(feature = "react")]
    use crate::bindings::exports::airlock::channel::reactions as wit_reactions;
    use crate::error::SendClass;
    #[cfg(any(feature = "edit", feature = "react"))]
    use crate::types::metadata_object;
    use crate::Error;
    #[cfg(feature = "edit")]
    use crate::MessageEdit;
    #[cfg(feature = "react")]
    use crate::Reaction;

    /// An [`Error`] as the WIT `send-error`: its [`SendClass`], or `unclassified` (the host decides).
    pub fn send_error(e: Error) -> wit_delivery::SendError {
        let message = e.to_string();
        match e.class() {
            Some(SendClass::RateLimited(secs)) => {
                wit_delivery::SendError::RateLimited(wit_delivery::RateLimit { retry_after_secs: secs, message })
            }
            Some(SendClass::Temporary) => wit_delivery::SendError::Temporary(message),
            Some(SendClass::Permanent) => wit_delivery::SendError::Permanent(message),
            None => wit_delivery::SendError::Unclassified(message),
        }
    }

    /// `delivery.on-respond`: [`Channel::on_send`]; metadata that is not an object is a permanent error.
    pub fn on_send<C: Channel>(response: wit::AgentResponse) -> Result<Option<String>, wit_delivery::SendError> {
        let response = agent_response(response).map_err(|e| send_error(e.with_class(SendClass::Permanent)))?;
        C::on_send(&response).map_err(send_error)
    }

    /// `delivery.on-broadcast`: [`Channel::on_send_broadcast`].
    pub fn on_send_broadcast<C: Channel>(
        user_id: &str,
        response: wit::AgentResponse,
    ) -> Result<Option<String>, wit_delivery::SendError> {
        let response = agent_response(response).map_err(|e| send_error(e.with_class(SendClass::Permanent)))?;
        C::on_send_broadcast(user_id, &response).map_err(send_error)
    }

    /// `edits.on-edit`: [`Channel::on_edit`].
    #[cfg(feature = "edit")]
    pub fn on_edit<C: Channel>(edit: wit_edits::MessageEdit) -> Result<(), wit_delivery::SendError> {
        let metadata = metadata_object(&edit.metadata_json, "edit metadata-json")
            .map_err(|e| send_error(e.with_class(SendClass::Permanent)))?;
        let edit = MessageEdit {
            platform_message_id: edit.platform_message_id,
            content: edit.content,
            thread_id: edit.thread_id,
            metadata,
        };
        C::on_edit(&edit).map_err(send_error)
    }

    /// `reactions.on-react`: [`Channel::on_react`].
    #[cfg(feature = "react")]
    pub fn on_react<C: Channel>(reaction: wit_reactions::Reaction) -> Result<(), wit_delivery::SendError> {
        let metadata = metadata_object(&reaction.metadata_json, "reaction metadata-json")
            .map_err(|e| send_error(e.with_class(SendClass::Permanent)))?;
        let reaction = Reaction {
            platform_message_id: reaction.platform_message_id,
            emoji: reaction.emoji,
            remove: reaction.remove,
            metadata,
        };
        C::on_react(&reaction).map_err(send_error)
    }
}

#[cfg(test)]
mod tests {
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
            Reaction {
                platform_message_id: "m".into(), emoji: "👍".into(), remove: false, metadata_json: "{}".into()
            };
        assert_eq!(
            v2::on_react::<Sender>(react),
            Err(SendError::Permanent("this channel does not react to messages".into()))
        );
    }
}
