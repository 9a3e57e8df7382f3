//! One poll: `getupdates` from the saved cursor, each new message from a person through `dm_policy`, then to
//! the agent; and the replies, with the conversation's `context_token` (protocol.md, sendMessage: "The
//! `context_token` received with an inbound message must be passed back when the reply belongs to that
//! conversation").

use airlock_channel::workspace::RecentIds;
use airlock_channel::{bail, debug, emit, secrets, warn, workspace, AgentResponse, Context, Result};
use serde_json::{json, Value};

use crate::api::{self, Update, ITEM_TEXT, ITEM_VOICE, MESSAGE_TYPE_USER, SESSION_EXPIRED, TOKEN_SECRET};
use crate::settings::Settings;

/// The `get_updates_buf` cursor (durable: a restart continues where the last poll stopped).
pub const CURSOR_PATH: &str = "state/cursor";
/// Message ids already handled (durable), so a message offered twice reaches the agent and gets a pairing
/// code once.
pub const SEEN_PATH: &str = "state/recent_messages";
pub const SEEN_CAPACITY: usize = 512;
/// The latest `context_token` per user (durable), for broadcasts and replies whose metadata lacks it.
pub const CONTEXT_PATH: &str = "state/context_tokens";
/// Users whose token is remembered; the least recently seen are forgotten beyond this.
pub const MAX_CONTEXT_TOKENS: usize = 256;
/// Longest user id or context token kept (iLink ids are well under 100 bytes).
const MAX_ID_BYTES: usize = 512;

/// Latest context token per user, most recent last.
struct ContextTokens(Vec<(String, String)>);

impl ContextTokens {
    fn load() -> Self {
        ContextTokens(workspace::read_json(CONTEXT_PATH).ok().flatten().unwrap_or_default())
    }

    fn get(&self, user: &str) -> Option<&str> {
        self.0.iter().find(|(u, _)| u == user).map(|(_, t)| t.as_str())
    }

    /// Remember `token` for `user`; true when that changed what is stored.
    fn remember(&mut self, user: &str, token: &str) -> bool {
        if token.is_empty() || token.len() > MAX_ID_BYTES || self.0.last().is_some_and(|(u, t)| u == user && t == token)
        {
            return false;
        }
        self.0.retain(|(u, _)| u != user);
        self.0.push((user.to_string(), token.to_string()));
        let excess = self.0.len().saturating_sub(MAX_CONTEXT_TOKENS);
        self.0.drain(..excess);
        true
    }

    fn save_or_warn(&self) {
        if let Err(e) = workspace::write_json(CONTEXT_PATH, &self.0) {
            warn!("could not record context tokens: {e}");
        }
    }
}

/// The id of a message as text (iLink sends a number; a string is taken as it is).
fn id_text(id: Option<&Value>) -> String {
    match id {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    }
}

/// The text of a message: its text items and voice transcripts, one per line.
pub fn text_of(update: &Update) -> String {
    let parts: Vec<&str> = update
        .item_list
        .iter()
        .filter_map(|item| match item.kind {
            Some(ITEM_TEXT) => item.text_item.as_ref()?.text.as_deref(),
            Some(ITEM_VOICE) => item.voice_item.as_ref()?.text.as_deref(),
            _ => None,
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    parts.join("\n")
}

/// `on-poll`. Without the bot token there is nothing to ask (logged); a refusal by the server is an error (the
/// host logs it), a session that expired says what the operator must do.
pub fn poll() -> Result<()> {
    if !secrets::exists(TOKEN_SECRET) {
        warn!("secret {TOKEN_SECRET} is not set: not polling");
        return Ok(());
    }
    let settings = Settings::load()?;
    let cursor = workspace::read(CURSOR_PATH).unwrap_or_default();
    let updates = api::get_updates(&settings, &cursor)?;
    if let Some(code) = updates.error_code() {
        if code == SESSION_EXPIRED {
            bail!("the iLink session expired (errcode -14): log in again and store the new {TOKEN_SECRET}");
        }
        let errmsg: String = updates.errmsg.as_deref().unwrap_or("").chars().take(120).collect();
        bail!("getupdates refused: {code} ({errmsg})");
    }
    if let Some(next) = updates.get_updates_buf.as_deref().filter(|c| !c.is_empty() && *c != cursor) {
        workspace::write(CURSOR_PATH, next)?;
    }
    let mut seen = RecentIds::load(SEEN_PATH, SEEN_CAPACITY);
    let mut contexts = ContextTokens::load();
    let mut contexts_changed = false;
    for update in &updates.msgs {
        contexts_changed |= handle(&settings, update, &mut seen, &mut contexts);
    }
    seen.save_or_warn();
    if contexts_changed {
        contexts.save_or_warn();
    }
    Ok(())
}

/// One message; true when the context tokens changed.
fn handle(settings: &Settings, update: &Update, seen: &mut RecentIds, contexts: &mut ContextTokens) -> bool {
    if update.message_type != Some(MESSAGE_TYPE_USER) {
        return false; // the bot's own messages come back in the stream too
    }
    let from = update.from_user_id.as_deref().unwrap_or("").trim();
    if from.is_empty() || from.len() > MAX_ID_BYTES {
        debug!("message without a usable from_user_id ignored");
        return false;
    }
    if update.group_id.as_deref().is_some_and(|g| !g.is_empty()) {
        debug!("group message ignored (this channel relays direct messages only)");
        return false;
    }
    let id = id_text(update.message_id.as_ref());
    if !seen.first_time(&id) {
        debug!("message {id} already handled");
        return false;
    }
    let context = update.context_token.as_deref().unwrap_or("");
    let changed = contexts.remember(from, context);
    let text = text_of(update);
    if text.is_empty() {
        debug!("message {id} has no text");
        return changed;
    }
    let context = (!context.is_empty()).then_some(context);
    let send_code = |code: &str| api::send_text(settings, from, &settings.gate.code_text(code), context);
    if !settings.gate.admit_or_send_code(from, None, &json!({"from_user_id": from}), send_code) {
        return changed;
    }
    let mut metadata = json!({"message_id": id, "from_user_id": from});
    if let Some(context) = context {
        metadata["context_token"] = json!(context);
    }
    emit::Message::new(from, text).metadata(metadata).emit();
    changed
}

/// `on-respond`: to the sender of the original message, in its conversation.
pub fn respond(response: &AgentResponse) -> Result<()> {
    if response.content.trim().is_empty() {
        debug!("reply {} is empty: nothing sent", response.message_id);
        return Ok(());
    }
    let to = response.metadata_str("from_user_id").context("the original message's metadata has no from_user_id")?;
    let contexts = ContextTokens::load();
    let context = response.metadata_str("context_token").or_else(|| contexts.get(to));
    api::send_text(&Settings::load()?, to, &response.content, context)
}

/// `on-broadcast`: to `user_id`, in the last conversation seen with them (if any).
pub fn broadcast(user_id: &str, response: &AgentResponse) -> Result<()> {
    let contexts = ContextTokens::load();
    api::send_text(&Settings::load()?, user_id, &response.content, contexts.get(user_id))
}
