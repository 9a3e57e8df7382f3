//! The interactions webhook (`POST /webhook/discord`). The host has already checked the Ed25519 signature
//! (`X-Signature-Ed25519` over `X-Signature-Timestamp` + body) and the timestamp window.
//!
//! Source: Discord developer docs, "Receiving and Responding" (interaction types 1 PING, 2
//! APPLICATION_COMMAND, 3 MESSAGE_COMPONENT, 4 APPLICATION_COMMAND_AUTOCOMPLETE, 5 MODAL_SUBMIT; callback
//! types 1 PONG, 4 CHANNEL_MESSAGE_WITH_SOURCE, 5 DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE, 6
//! DEFERRED_UPDATE_MESSAGE, 8 APPLICATION_COMMAND_AUTOCOMPLETE_RESULT). The initial answer must come
//! within 3 seconds, so a command is deferred at once (type 5) and the agent's reply edits it later.

use airlock_channel::pairing::Admission;
use airlock_channel::{debug, emit, info, warn, Response};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::settings::{Settings, CHANNEL};
use crate::text::{is_interaction_token, is_snowflake};

const PING: u8 = 1;
const APPLICATION_COMMAND: u8 = 2;
const MESSAGE_COMPONENT: u8 = 3;
const AUTOCOMPLETE: u8 = 4;
const MODAL_SUBMIT: u8 = 5;

/// Flag 64: only the invoking user sees the message.
const EPHEMERAL: u32 = 1 << 6;
/// Most option values collected from one command (nested subcommands included).
const MAX_OPTIONS: usize = 25;

#[derive(Deserialize)]
pub struct Interaction {
    #[serde(rename = "type")]
    pub kind: u8,
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub application_id: String,
    #[serde(default)]
    pub token: String,
    #[serde(default)]
    pub channel_id: Option<String>,
    #[serde(default)]
    pub guild_id: Option<String>,
    #[serde(default)]
    pub member: Option<Member>,
    #[serde(default)]
    pub user: Option<User>,
    #[serde(default)]
    pub data: Option<CommandData>,
}

#[derive(Deserialize)]
pub struct Member {
    pub user: Option<User>,
}

#[derive(Clone, Deserialize)]
pub struct User {
    pub id: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub global_name: Option<String>,
}

impl User {
    pub fn display_name(&self) -> Option<&str> {
        self.global_name.as_deref().or(self.username.as_deref()).filter(|n| !n.is_empty())
    }
}

#[derive(Deserialize)]
pub struct CommandData {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub options: Vec<CommandOption>,
}

#[derive(Deserialize)]
pub struct CommandOption {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub value: Option<Value>,
    #[serde(default)]
    pub options: Vec<CommandOption>,
}

/// `/name sub` and the option values, in order. Subcommands (options without a value but with options)
/// extend the command path; strings are taken as they are, numbers and booleans as JSON text.
fn command_parts(data: &CommandData) -> (String, Vec<String>) {
    let mut path = vec![data.name.clone()];
    let mut values = Vec::new();
    let mut stack: Vec<&CommandOption> = data.options.iter().rev().collect();
    while let Some(opt) = stack.pop() {
        if values.len() >= MAX_OPTIONS {
            break;
        }
        match &opt.value {
            Some(Value::String(s)) => values.push(s.clone()),
            Some(other) => values.push(other.to_string()),
            None => {
                path.push(opt.name.clone());
                stack.extend(opt.options.iter().rev());
            }
        }
    }
    (path.join(" "), values)
}

/// The text the agent gets: the option values joined by spaces (`/ask question: hi` -> `hi`), or the
/// command itself (`/help`) when it has no values.
pub fn command_text(data: &CommandData) -> String {
    let (path, values) = command_parts(data);
    let joined = values.join(" ");
    if joined.trim().is_empty() {
        format!("/{path}")
    } else {
        joined.trim().to_string()
    }
}

fn reply(kind: u8, data: Option<Value>) -> Response {
    let mut body = json!({"type": kind});
    if let Some(data) = data {
        body["data"] = data;
    }
    Response::json(200, &body)
}

fn ephemeral(text: &str) -> Response {
    reply(4, Some(json!({"content": text, "flags": EPHEMERAL, "allowed_mentions": {"parse": []}})))
}

pub fn pairing_text(code: &str) -> String {
    airlock_channel::pairing::code_text(CHANNEL, code)
}

/// Answer one verified interaction.
pub fn handle(body: &[u8]) -> Response {
    let interaction: Interaction = match serde_json::from_slice(body) {
        Ok(i) => i,
        Err(e) => {
            warn!("malformed interaction ({} bytes): {e}", body.len());
            return Response::bad_request("malformed interaction");
        }
    };
    match interaction.kind {
        PING => reply(1, None),
        APPLICATION_COMMAND => command(&interaction),
        AUTOCOMPLETE => reply(8, Some(json!({"choices": []}))),
        MESSAGE_COMPONENT | MODAL_SUBMIT => reply(6, None),
        other => {
            debug!("interaction type {other} not handled");
            Response::bad_request("unsupported interaction type")
        }
    }
}

fn command(interaction: &Interaction) -> Response {
    let Some(data) = interaction.data.as_ref() else {
        return Response::bad_request("command without data");
    };
    let user = interaction.member.as_ref().and_then(|m| m.user.clone()).or_else(|| interaction.user.clone());
    let Some(user) = user.filter(|u| is_snowflake(&u.id)) else {
        return Response::bad_request("command without a user");
    };
    if !is_snowflake(&interaction.application_id) || !is_interaction_token(&interaction.token) {
        return Response::bad_request("command without a usable application id or token");
    }
    let settings = match Settings::load() {
        Ok(s) => s,
        Err(e) => {
            warn!("{e}");
            return ephemeral("This bot is not ready yet.");
        }
    };
    let in_guild = interaction.guild_id.is_some();
    if !in_guild {
        let meta = json!({"username": user.username, "name": user.display_name(), "source": "slash command"});
        match settings.gate.admit(&user.id, user.username.as_deref(), &meta) {
            Admission::Allowed => {}
            Admission::Denied => {
                info!("slash command from Discord user {} refused (dm_policy)", user.id);
                return ephemeral("You are not allowed to use this bot.");
            }
            Admission::Pairing { code, .. } if !code.is_empty() => return ephemeral(&pairing_text(&code)),
            Admission::Pairing { .. } => return ephemeral("Pairing is unavailable right now; try again later."),
        }
    }
    let mut metadata = json!({
        "source": "interaction",
        "application_id": interaction.application_id,
        "interaction_token": interaction.token,
        "interaction_id": interaction.id,
        "command": command_parts(data).0,
        "is_group": in_guild,
    });
    if let Some(channel_id) = &interaction.channel_id {
        metadata["channel_id"] = json!(channel_id);
    }
    if let Some(guild_id) = &interaction.guild_id {
        metadata["guild_id"] = json!(guild_id);
    }
    let mut message = emit::Message::new(&user.id, command_text(data)).metadata(metadata);
    if let Some(name) = user.display_name() {
        message = message.user_name(name);
    }
    if let (true, Some(channel_id)) = (in_guild, &interaction.channel_id) {
        message = message.thread_id(channel_id.clone());
    }
    message.emit();
    reply(5, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(json: &str) -> CommandData {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn command_text_from_options() {
        assert_eq!(
            command_text(&data(r#"{"name":"ask","options":[{"name":"q","type":3,"value":"what is up"}]}"#)),
            "what is up"
        );
        assert_eq!(command_text(&data(r#"{"name":"help"}"#)), "/help");
        let nested = r#"{"name":"todo","options":[{"name":"add","type":1,"options":[{"name":"item","value":"milk"},{"name":"n","value":2}]}]}"#;
        assert_eq!(command_text(&data(nested)), "milk 2");
        assert_eq!(command_parts(&data(nested)).0, "todo add");
        assert_eq!(command_text(&data(r#"{"name":"todo","options":[{"name":"list","type":1}]}"#)), "/todo list");
    }
}
