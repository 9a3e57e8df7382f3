//! Gateway dispatches, delivered by the host as `POST /__websocket` with the whole frame
//! `{"op":0,"t":...,"s":...,"d":...}` as the body. The host runs HELLO, heartbeats, IDENTIFY and RESUME;
//! only dispatch events get here, in order, one at a time.
//!
//! Source: Discord developer docs, "Gateway Events" (READY: `d.user`, `d.application.id`; MESSAGE_CREATE:
//! a message object with `guild_id` and `member` for guild messages) and "Message Resource" (message
//! types 0 DEFAULT and 19 REPLY carry user text; `author.bot`, `webhook_id`, `mentions`,
//! `message_reference`).

use airlock_channel::{debug, emit, info, Result};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api;
use crate::interaction::{pairing_text, User};
use crate::settings::{BotUser, Settings};
use crate::text::{is_snowflake, mentions, strip_mention};

/// Message types with user-written text: 0 DEFAULT, 19 REPLY. Everything else (joins, pins, ...) is ignored.
const USER_MESSAGE_TYPES: [u8; 2] = [0, 19];

#[derive(Deserialize)]
struct Frame {
    #[serde(default)]
    op: u8,
    #[serde(default)]
    t: Option<String>,
    #[serde(default)]
    d: Value,
}

#[derive(Deserialize)]
struct Ready {
    user: User,
    #[serde(default)]
    application: Option<Application>,
}

#[derive(Deserialize)]
struct Application {
    id: String,
}

#[derive(Deserialize)]
pub struct Message {
    pub id: String,
    pub channel_id: String,
    #[serde(default)]
    pub guild_id: Option<String>,
    pub author: Author,
    #[serde(default)]
    pub content: String,
    #[serde(default, rename = "type")]
    pub kind: u8,
    #[serde(default)]
    pub webhook_id: Option<String>,
    #[serde(default)]
    pub mentions: Vec<Mentioned>,
    #[serde(default)]
    pub message_reference: Option<Value>,
    #[serde(default)]
    pub referenced_message: Option<Box<Referenced>>,
}

#[derive(Deserialize)]
pub struct Author {
    pub id: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub global_name: Option<String>,
    #[serde(default)]
    pub bot: bool,
}

#[derive(Deserialize)]
pub struct Mentioned {
    pub id: String,
}

#[derive(Deserialize)]
pub struct Referenced {
    pub author: Option<Author>,
}

/// Handle one dispatch frame. Errors are logged by the caller; the host ignores the response anyway.
pub fn handle(body: &[u8]) -> Result<()> {
    let frame: Frame = serde_json::from_slice(body)?;
    if frame.op != 0 {
        debug!("gateway op {} ignored (the host owns non-dispatch ops)", frame.op);
        return Ok(());
    }
    match frame.t.as_deref() {
        Some("READY") => ready(frame.d),
        Some("MESSAGE_CREATE") => message_create(serde_json::from_value(frame.d)?),
        Some(other) => {
            debug!("gateway dispatch {other} ignored");
            Ok(())
        }
        None => Ok(()),
    }
}

fn ready(d: Value) -> Result<()> {
    let ready: Ready = serde_json::from_value(d)?;
    if !is_snowflake(&ready.user.id) {
        airlock_channel::bail!("READY without a valid bot user id");
    }
    let bot = BotUser {
        id: ready.user.id,
        username: ready.user.username.unwrap_or_default(),
        application_id: ready.application.map(|a| a.id).filter(|id| is_snowflake(id)),
    };
    if BotUser::load().as_ref() != Some(&bot) {
        info!("gateway ready as {} ({})", bot.username, bot.id);
        bot.save()?;
    }
    Ok(())
}

/// Why a MESSAGE_CREATE is not for the agent, or `None` if it is.
fn skip_reason(msg: &Message, bot: Option<&BotUser>) -> Option<&'static str> {
    if msg.author.bot || msg.webhook_id.is_some() {
        return Some("sent by a bot or webhook");
    }
    if bot.is_some_and(|b| b.id == msg.author.id) {
        return Some("our own message");
    }
    if !USER_MESSAGE_TYPES.contains(&msg.kind) {
        return Some("not a user message");
    }
    if !is_snowflake(&msg.id) || !is_snowflake(&msg.channel_id) || !is_snowflake(&msg.author.id) {
        return Some("malformed ids");
    }
    None
}

/// True when a guild message is addressed to the bot: it mentions it, or replies to one of its messages.
fn addressed(msg: &Message, bot: &BotUser) -> bool {
    msg.mentions.iter().any(|m| m.id == bot.id)
        || mentions(&msg.content, &bot.id)
        || msg.referenced_message.as_ref().and_then(|r| r.author.as_ref()).is_some_and(|a| a.id == bot.id)
}

fn message_create(msg: Message) -> Result<()> {
    let bot = BotUser::load();
    if let Some(reason) = skip_reason(&msg, bot.as_ref()) {
        debug!("message {} ignored: {reason}", msg.id);
        return Ok(());
    }
    let settings = Settings::load()?;
    let in_guild = msg.guild_id.is_some();
    let content = if in_guild {
        let Some(bot) = bot.as_ref() else {
            debug!("guild message {} ignored: bot user unknown until READY", msg.id);
            return Ok(());
        };
        if !settings.respond_to_mentions || !addressed(&msg, bot) {
            return Ok(());
        }
        strip_mention(&msg.content, &bot.id)
    } else {
        if !admit_dm(&settings, &msg) {
            return Ok(());
        }
        msg.content.trim().to_string()
    };
    if content.is_empty() {
        debug!("message {} ignored: no text", msg.id);
        return Ok(());
    }
    let mut metadata = json!({
        "source": "gateway",
        "channel_id": msg.channel_id,
        "message_id": msg.id,
        "is_group": in_guild,
    });
    if let Some(guild_id) = &msg.guild_id {
        metadata["guild_id"] = json!(guild_id);
    }
    if let Some(reference) = &msg.message_reference {
        metadata["message_reference"] = reference.clone();
    }
    let mut message = emit::Message::new(&msg.author.id, content).metadata(metadata);
    let name = msg.author.global_name.as_deref().or(msg.author.username.as_deref()).filter(|n| !n.is_empty());
    if let Some(name) = name {
        message = message.user_name(name);
    }
    if in_guild {
        // The channel is the conversation: a thread is its own channel id, so replies stay in the thread.
        message = message.thread_id(msg.channel_id.clone());
    }
    message.emit();
    Ok(())
}

/// `dm_policy` for a direct message; sends the pairing code (once) to a new sender.
fn admit_dm(settings: &Settings, msg: &Message) -> bool {
    let meta = json!({"username": msg.author.username, "name": msg.author.global_name, "channel_id": msg.channel_id});
    let send_code = |code: &str| api::send_message(&msg.channel_id, &pairing_text(code), None, &[]);
    settings.gate.admit_or_send_code(&msg.author.id, msg.author.username.as_deref(), &meta, send_code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(json: Value) -> Message {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn skips_bots_webhooks_self_and_system_messages() {
        let bot = BotUser { id: "9".into(), ..BotUser::default() };
        let base = json!({"id": "1", "channel_id": "2", "author": {"id": "3"}, "content": "hi"});
        assert_eq!(skip_reason(&msg(base.clone()), Some(&bot)), None);
        let mut from_bot = base.clone();
        from_bot["author"]["bot"] = json!(true);
        assert!(skip_reason(&msg(from_bot), Some(&bot)).is_some());
        let mut own = base.clone();
        own["author"]["id"] = json!("9");
        assert_eq!(skip_reason(&msg(own), Some(&bot)), Some("our own message"));
        let mut hook = base.clone();
        hook["webhook_id"] = json!("5");
        assert!(skip_reason(&msg(hook), Some(&bot)).is_some());
        let mut join = base.clone();
        join["type"] = json!(7);
        assert_eq!(skip_reason(&msg(join), Some(&bot)), Some("not a user message"));
        let mut bad = base;
        bad["channel_id"] = json!("../x");
        assert_eq!(skip_reason(&msg(bad), None), Some("malformed ids"));
    }

    #[test]
    fn addressed_by_mention_or_reply() {
        let bot = BotUser { id: "9".into(), ..BotUser::default() };
        let plain = json!({"id": "1", "channel_id": "2", "author": {"id": "3"}, "content": "hi all"});
        assert!(!addressed(&msg(plain.clone()), &bot));
        let mut mention = plain.clone();
        mention["mentions"] = json!([{"id": "9"}]);
        assert!(addressed(&msg(mention), &bot));
        let mut inline = plain.clone();
        inline["content"] = json!("<@9> hi");
        assert!(addressed(&msg(inline), &bot));
        let mut reply = plain;
        reply["referenced_message"] = json!({"author": {"id": "9"}});
        assert!(addressed(&msg(reply), &bot));
    }
}
