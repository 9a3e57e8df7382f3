//! # airlock-channel: write Airlock channels in Rust
//!
//! A channel connects a chat platform to the agent. It runs as a WebAssembly component inside the
//! Airlock host, which gives it only what its capabilities file allows: HTTPS to listed hosts (with
//! secrets injected by the host, never seen by the channel), a key-value workspace, a pairing store,
//! messages to the agent, a log. This crate turns the `airlock:channel/sandboxed-channel` world
//! (`wit/channel.wit`) into one trait, [`Channel`], and typed wrappers around the host functions.
//!
//! ## A channel in one impl
//!
//! A generic JSON webhook: `POST /webhook/mychannel` with `{"user": "...", "text": "..."}` becomes a
//! message for the agent, and the agent's reply is posted to a URL from the config.
//!
//! ```no_run
//! use airlock_channel::{
//!     emit, export_channel, http, info, workspace, AgentResponse, Channel, ChannelConfig, Config,
//!     Context, Endpoint, Request, Response, Result,
//! };
//! use serde::Deserialize;
//! use serde_json::json;
//!
//! #[derive(Deserialize)]
//! struct Inbound { user: String, text: String }
//!
//! struct MyChannel;
//!
//! impl Channel for MyChannel {
//!     // Activation: read the capabilities file's `config`, keep what later callbacks need in the
//!     // workspace (every callback runs in a fresh instance), declare the endpoints.
//!     fn on_start(config: Config) -> Result<ChannelConfig> {
//!         let reply_url = config.str("reply_url").context("config.reply_url is required")?;
//!         workspace::write("state/reply_url", reply_url)?;
//!         Ok(ChannelConfig::new("My channel").endpoint(Endpoint::post("/webhook/mychannel")))
//!     }
//!
//!     // Inbound: parse, emit; answer the platform quickly (the agent replies later).
//!     fn on_http_request(req: &Request) -> Response {
//!         let Ok(inbound) = req.json::<Inbound>() else {
//!             return Response::bad_request("expected {\"user\": ..., \"text\": ...}");
//!         };
//!         info!("message from {}", inbound.user);
//!         emit::Message::new(&inbound.user, inbound.text).metadata(json!({"user": inbound.user})).emit();
//!         Response::json(200, &json!({"ok": true}))
//!     }
//!
//!     // Outbound: the reply carries the metadata of the message it answers.
//!     fn on_respond(response: &AgentResponse) -> Result<()> {
//!         let url = workspace::read("state/reply_url").context("channel not started")?;
//!         http::post(&url)
//!             .json(&json!({"user": response.metadata_str("user"), "text": response.content}))
//!             .send()?
//!             .error_for_status()?;
//!         Ok(())
//!     }
//! }
//!
//! export_channel!(MyChannel);
//! ```
//!
//! The crate of a channel is a `cdylib` depending on this crate and `serde`/`serde_json`; build it with
//! `scripts/build-rust-guest.sh guest-plugins/<name> build/channels/<name>.wasm` (or `make rust-guests`),
//! which compiles for `wasm32-unknown-unknown` and wraps the module with `wasm-tools component new`.
//! `guest-plugins/template-rust` is a complete example with its capabilities file and tests; the
//! repository README walks through copying it.
//!
//! ## Host functions
//!
//! | module | what |
//! |---|---|
//! | [`http`] | outbound requests through the host's allow-list, JSON helpers |
//! | [`workspace`] | per-channel key-value text store, JSON helpers |
//! | [`emit`] | messages (and attachments) for the agent |
//! | [`pairing`] | pairing store and the shared `dm_policy` rule ([`pairing::DmGate`]) |
//! | [`log`] | host log, plus the [`info!`]/[`warn!`]/[`error!`]/[`debug!`]/[`trace!`] macros |
//! | [`secrets`] | whether a secret is stored (values are never visible) |
//! | [`websocket`] | send frames on the host-managed socket; inbound frames are [`Request`]s |
//! | [`text`] | splitting long replies into platform-sized messages (pure, no host call) |
//! | [`now_millis`] | wall clock |
//!
//! ## Errors
//!
//! [`Error`] is a message; its `Display` text is the WIT error of `on-start`, `on-respond` and
//! `on-broadcast`, and what is logged when `on-poll`, `on-status` or `on-shutdown` fail. Use `?` with
//! [`Context::context`], [`bail!`] and [`ensure!`]. A delivery error may carry a [`SendClass`]
//! ([`Error::rate_limited`], [`Error::temporary`], [`Error::permanent`]): it tells the host whether and when to
//! try again, ahead of the host's own reading of the platform's HTTP answers.
//!
//! ## World 0.2.0: message ids, edits, reactions
//!
//! `export_channel!(MyChannel)` exports the `channel` and `delivery` interfaces: the host calls
//! [`Channel::on_send`] (default: [`Channel::on_respond`], no id) and gets the platform's id of the message sent.
//! With the crate feature `edit` (`airlock-channel = { ..., features = ["edit"] }`) it also exports `edits`
//! ([`Channel::on_edit`]: streamed replies become edits of one message), with `react` it exports `reactions`
//! ([`Channel::on_react`]). The host runs channels without `edits` too: a streamed reply reaches them as one final
//! message. (Features, not macro arguments: wit-bindgen describes one world per crate.)
//!
//! ## Testing
//!
//! On the build machine (any target but wasm32), host functions go to [`testing::MockHost`], so the
//! channel's callbacks can be unit-tested with plain `cargo test`.

#![warn(missing_docs)]

/// The bindings generated by wit-bindgen from `wit/`: world `airlock:channel/delivering-channel@0.2.0` (the host
/// functions, the `channel` callbacks and `delivery`), or with the crate features `edit` / `react` the world that
/// adds `edits` / `reactions` (`editing-channel`, `reacting-channel`, both: `interactive-channel`). A channel crate
/// turns a feature on to export that interface (`export_channel!` follows the features). Channels use the typed
/// wrappers instead; this is public only for [`export_channel!`].
#[doc(hidden)]
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    #[cfg(all(not(feature = "edit"), not(feature = "react")))]
    wit_bindgen::generate!({
        path: "../../wit",
        world: "airlock:channel/delivering-channel",
        pub_export_macro: true,
        export_macro_name: "__export_channel_world",
        default_bindings_module: "airlock_channel::bindings",
        additional_derives: [PartialEq],
    });
    #[cfg(all(feature = "edit", not(feature = "react")))]
    wit_bindgen::generate!({
        path: "../../wit",
        world: "airlock:channel/editing-channel",
        pub_export_macro: true,
        export_macro_name: "__export_channel_world",
        default_bindings_module: "airlock_channel::bindings",
        additional_derives: [PartialEq],
    });
    #[cfg(all(not(feature = "edit"), feature = "react"))]
    wit_bindgen::generate!({
        path: "../../wit",
        world: "airlock:channel/reacting-channel",
        pub_export_macro: true,
        export_macro_name: "__export_channel_world",
        default_bindings_module: "airlock_channel::bindings",
        additional_derives: [PartialEq],
    });
    #[cfg(all(feature = "edit", feature = "react"))]
    wit_bindgen::generate!({
        path: "../../wit",
        world: "airlock:channel/interactive-channel",
        pub_export_macro: true,
        export_macro_name: "__export_channel_world",
        default_bindings_module: "airlock_channel::bindings",
        additional_derives: [PartialEq],
    });
}

mod channel;
mod error;
mod sys;
mod types;

pub mod emit;
pub mod http;
pub mod log;
pub mod pairing;
pub mod secrets;
pub mod text;
pub mod websocket;
pub mod workspace;

#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

pub use channel::Channel;
pub use error::{Context, Error, Result, SendClass};
pub use types::{
    AgentResponse, Attachment, ChannelConfig, Config, Endpoint, MessageEdit, Poll, Reaction, Request, Response, Status,
    StatusUpdate,
};

/// Re-exported so channels and the macros use the same serde_json as the SDK.
pub use serde_json;

/// Wall-clock milliseconds since the Unix epoch (the host's clock; there is no other in a component).
pub fn now_millis() -> u64 {
    sys::now_millis()
}

/// Used by [`export_channel!`]. Not public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::bindings::exports::airlock::channel::channel as wit;
    pub use crate::bindings::exports::airlock::channel::delivery as wit_delivery;
    #[cfg(feature = "edit")]
    pub use crate::bindings::exports::airlock::channel::edits as wit_edits;
    #[cfg(feature = "react")]
    pub use crate::bindings::exports::airlock::channel::reactions as wit_reactions;
    pub use crate::channel::dispatch::*;
    pub use crate::channel::dispatch_v2::*;
}
