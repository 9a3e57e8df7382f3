//! The [`Channel`] trait; the glue between it and the generated WIT exports is in the sub-modules: `export`
//! (the [`export_channel!`](crate::export_channel) macro and its helpers), [`dispatch`] (world 0.1.0's
//! `channel` interface) and [`dispatch_v2`] (world 0.2.0's `delivery`, `edits`, `reactions`).

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

mod export;

/// Conversions between the generated WIT types and the SDK's; used by [`export_channel!`](crate::export_channel).
/// Not public API.
#[doc(hidden)]
pub mod dispatch;

/// World 0.2.0's optional interfaces: conversions for [`export_channel!`](crate::export_channel). Not public API.
#[doc(hidden)]
pub mod dispatch_v2;

#[cfg(test)]
mod tests;
