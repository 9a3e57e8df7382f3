//! Discord REST calls (API v10). The host adds `Authorization: Bot <token>` to every request for
//! discord.com (the capabilities file's credential); the channel never sees the token.
//!
//! Replies never ping anyone: `allowed_mentions.parse` is empty, so an agent tricked into writing
//! `@everyone` cannot notify a server.

use airlock_channel::{bail, http, Attachment, Context, Result};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::files::{with_files, MAX_FILES};
use crate::text::{is_interaction_token, is_snowflake, split, MAX_CONTENT_CHARS};

pub const API: &str = "https://discord.com/api/v10";
/// Per-request timeout (the host caps it by the callback's deadline).
const TIMEOUT_MS: u32 = 15_000;

#[derive(Deserialize)]
struct Created {
    id: String,
}

fn no_pings() -> Value {
    json!({"parse": [], "replied_user": false})
}

fn send(req: http::Request, what: &str) -> Result<http::Response> {
    req.timeout_ms(TIMEOUT_MS).send()?.error_for_status().context(what)
}

/// `POST /channels/{channel_id}/messages` for each chunk of `text`; the first chunk answers `reply_to`
/// (a message id) when given, the last carries `files` (multipart, [`crate::files`]; a reply of files only is one
/// message with empty content). Returns the ids of the messages created.
pub fn send_message(channel_id: &str, text: &str, reply_to: Option<&str>, files: &[Attachment]) -> Result<Vec<String>> {
    if !is_snowflake(channel_id) {
        bail!("invalid Discord channel id");
    }
    if files.len() > MAX_FILES {
        bail!("a Discord message carries at most {MAX_FILES} files");
    }
    let mut chunks = if text.trim().is_empty() { Vec::new() } else { split(text, MAX_CONTENT_CHARS) };
    if chunks.is_empty() {
        chunks.push(String::new());
    }
    let last = chunks.len() - 1;
    let mut ids = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let mut body = json!({"content": chunk, "allowed_mentions": no_pings()});
        if let (0, Some(message_id)) = (i, reply_to.filter(|id| is_snowflake(id))) {
            body["message_reference"] = json!({"message_id": message_id, "fail_if_not_exists": false});
        }
        let attached = if i == last { files } else { &[] };
        let req = with_files(http::post(&format!("{API}/channels/{channel_id}/messages")), body, attached);
        let resp = send(req, "create message")?;
        ids.push(resp.json::<Created>()?.id);
    }
    Ok(ids)
}

/// Files of an interaction's answer: one follow-up message (`POST /webhooks/{application_id}/{token}`, multipart)
/// after the text. Returns its id.
pub fn interaction_files(application_id: &str, token: &str, files: &[Attachment]) -> Result<String> {
    if !is_snowflake(application_id) || !is_interaction_token(token) {
        bail!("invalid interaction application id or token");
    }
    if files.len() > MAX_FILES {
        bail!("a Discord message carries at most {MAX_FILES} files");
    }
    let body = json!({"content": "", "allowed_mentions": no_pings()});
    let req = with_files(http::post(&format!("{API}/webhooks/{application_id}/{token}")), body, files);
    Ok(send(req, "interaction follow-up")?.json::<Created>().map(|c| c.id).unwrap_or_default())
}

/// Answer a deferred interaction: the first chunk replaces the "thinking..." message
/// (`PATCH /webhooks/{application_id}/{token}/messages/@original`), further chunks are follow-up messages
/// (`POST /webhooks/{application_id}/{token}`). Interaction tokens are valid for 15 minutes. Returns the ids of
/// the messages (the original response's first).
pub fn answer_interaction(application_id: &str, token: &str, text: &str) -> Result<Vec<String>> {
    if !is_snowflake(application_id) || !is_interaction_token(token) {
        bail!("invalid interaction application id or token");
    }
    let hook = format!("{API}/webhooks/{application_id}/{token}");
    let mut ids = Vec::new();
    for (i, chunk) in split(text, MAX_CONTENT_CHARS).iter().enumerate() {
        let body = json!({"content": chunk, "allowed_mentions": no_pings()});
        let resp = if i == 0 {
            send(http::patch(&format!("{hook}/messages/@original")).json(&body), "edit interaction response")?
        } else {
            send(http::post(&hook).json(&body), "interaction follow-up")?
        };
        ids.push(resp.json::<Created>().map(|c| c.id).unwrap_or_default());
    }
    Ok(ids)
}

/// Replace a message's text (world 0.2.0 edits), cut to [`MAX_CONTENT_CHARS`]: `PATCH
/// /channels/{channel_id}/messages/{message_id}` for a message the bot posted, or `PATCH
/// /webhooks/{application_id}/{token}/messages/{message_id}` for an interaction's response (`interaction` is then
/// `Some((application_id, token))`). Mentions stay off.
pub fn edit_message(channel_id: &str, message_id: &str, interaction: Option<(&str, &str)>, text: &str) -> Result<()> {
    if !is_snowflake(message_id) {
        bail!("invalid Discord message id");
    }
    let content: String = text.chars().take(MAX_CONTENT_CHARS).collect();
    let body = json!({"content": content, "allowed_mentions": no_pings()});
    let url = match interaction {
        Some((app, token)) if is_snowflake(app) && is_interaction_token(token) => {
            format!("{API}/webhooks/{app}/{token}/messages/{message_id}")
        }
        Some(_) => bail!("invalid interaction application id or token"),
        None if is_snowflake(channel_id) => format!("{API}/channels/{channel_id}/messages/{message_id}"),
        None => bail!("invalid Discord channel id"),
    };
    send(http::patch(&url).json(&body), "edit message").map(|_| ())
}

/// `POST /channels/{channel_id}/typing`: "typing..." for about 10 seconds.
pub fn trigger_typing(channel_id: &str) -> Result<()> {
    if !is_snowflake(channel_id) {
        bail!("invalid Discord channel id");
    }
    send(http::post(&format!("{API}/channels/{channel_id}/typing")), "trigger typing").map(|_| ())
}

/// `POST /users/@me/channels` with `recipient_id`: the DM channel with a user (created if needed).
pub fn open_dm(user_id: &str) -> Result<String> {
    if !is_snowflake(user_id) {
        bail!("invalid Discord user id");
    }
    let resp =
        send(http::post(&format!("{API}/users/@me/channels")).json(&json!({"recipient_id": user_id})), "open DM")?;
    Ok(resp.json::<Created>()?.id)
}
