//! World 0.2.0's `delivery`, `edits` and `reactions` interfaces: as [`super::dispatch`], with the errors as the
//! WIT `send-error` (see [`send_error`]).

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
