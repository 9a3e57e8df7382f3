//! Parsing of Slack Events API request bodies (https://api.slack.com/apis/events-api).
//!
//! What counts as a message for the agent:
//! - `message` events in a direct message (`channel_type: "im"`) with no subtype, or with `file_share` /
//!   `thread_broadcast` (both are a person's own words, with a file or also shown in the channel);
//! - `app_mention` events (someone wrote `<@bot>` in a channel); the mention is removed from the text.
//!
//! Ignored: bot messages (`bot_id` present or subtype `bot_message`), every other subtype (`message_changed`,
//! `message_deleted`, `channel_join`, ...), the bot's own user, `message` events outside DMs (mentions arrive
//! as `app_mention`; relaying every channel message would flood the agent), empty text, other event types.

use serde_json::Value;

/// Longest `url_verification` challenge echoed back (Slack's are about 50 characters).
pub const MAX_CHALLENGE_CHARS: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    DirectMessage,
    Mention,
}

/// A user's message worth handing to the agent (before admission).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    pub kind: Kind,
    pub event_id: Option<String>,
    pub team: Option<String>,
    pub user: String,
    pub channel: String,
    pub channel_type: String,
    pub text: String,
    pub ts: String,
    pub thread_ts: Option<String>,
    /// `user_profile` names when the event carries them (display name first).
    pub profile_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Challenge(String),
    Message(Incoming),
    Ignored(String),
}

fn text_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn owned(v: &Value, key: &str) -> Option<String> {
    text_of(v, key).map(str::to_string)
}

/// The bot's user id as the envelope's `authorizations` tell it (the installation the event is for).
pub fn envelope_bot_user(body: &Value) -> Option<String> {
    body.get("authorizations")?
        .as_array()?
        .iter()
        .find(|a| a.get("is_bot").and_then(Value::as_bool) == Some(true))
        .and_then(|a| owned(a, "user_id"))
}

/// Parse one request body (already decoded JSON). `bot_user` is the bot's own user id when known (its messages
/// are ignored and its mention is stripped).
pub fn parse(value: &Value, bot_user: Option<&str>) -> Parsed {
    match value.get("type").and_then(Value::as_str) {
        Some("url_verification") => match text_of(value, "challenge") {
            Some(c) if c.chars().count() <= MAX_CHALLENGE_CHARS => Parsed::Challenge(c.to_string()),
            Some(_) => Parsed::Ignored("challenge too long".into()),
            None => Parsed::Ignored("url_verification without a challenge".into()),
        },
        Some("event_callback") => match value.get("event") {
            Some(event) if event.is_object() => parse_event(value, event, bot_user),
            _ => Parsed::Ignored("event_callback without an event".into()),
        },
        Some(other) => Parsed::Ignored(format!("request type {other}")),
        None => Parsed::Ignored("request without a type".into()),
    }
}

fn parse_event(envelope: &Value, event: &Value, bot_user: Option<&str>) -> Parsed {
    let kind = match event.get("type").and_then(Value::as_str) {
        Some("message") => Kind::DirectMessage,
        Some("app_mention") => Kind::Mention,
        Some(other) => return Parsed::Ignored(format!("event type {other}")),
        None => return Parsed::Ignored("event without a type".into()),
    };
    let subtype = event.get("subtype").and_then(Value::as_str);
    if event.get("bot_id").is_some_and(|b| !b.is_null()) || subtype == Some("bot_message") {
        return Parsed::Ignored("bot message".into());
    }
    if let Some(sub) = subtype {
        if kind == Kind::Mention || !matches!(sub, "file_share" | "thread_broadcast") {
            return Parsed::Ignored(format!("message subtype {sub}"));
        }
    }
    let channel_type = owned(event, "channel_type").unwrap_or_else(|| "channel".into());
    if kind == Kind::DirectMessage && channel_type != "im" {
        return Parsed::Ignored(format!("message in a {channel_type}, not a direct message"));
    }
    let (Some(user), Some(channel), Some(ts)) = (owned(event, "user"), owned(event, "channel"), owned(event, "ts"))
    else {
        return Parsed::Ignored("event without user, channel or ts".into());
    };
    if bot_user == Some(user.as_str()) {
        return Parsed::Ignored("the bot's own message".into());
    }
    let raw_text = text_of(event, "text").unwrap_or("");
    let text = match (kind, bot_user) {
        (Kind::Mention, bot) => strip_mention(raw_text, bot),
        _ => raw_text.trim().to_string(),
    };
    if text.is_empty() {
        return Parsed::Ignored("no text".into());
    }
    Parsed::Message(Incoming {
        kind,
        event_id: owned(envelope, "event_id"),
        team: owned(envelope, "team_id").or_else(|| owned(event, "team")),
        user,
        channel,
        channel_type,
        text,
        ts,
        thread_ts: owned(event, "thread_ts"),
        profile_name: event
            .get("user_profile")
            .and_then(|p| owned(p, "display_name").or_else(|| owned(p, "real_name")).or_else(|| owned(p, "name"))),
    })
}

/// Remove `<@BOT>` (and `<@BOT|name>`) from a mention's text; without a known bot id, the leading mention.
/// Only the space next to a removed mention goes with it: the rest of the text (code, indentation) is kept.
pub fn strip_mention(text: &str, bot_user: Option<&str>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("<@") {
        let Some(len) = rest[start..].find('>') else { break };
        let id = rest[start + 2..start + len].split('|').next().unwrap_or("");
        let is_bot = match bot_user {
            Some(bot) => id == bot,
            None => out.trim().is_empty() && rest[..start].trim().is_empty(),
        };
        out.push_str(&rest[..start]);
        if is_bot {
            rest = &rest[start + len + 1..];
            if out.ends_with(' ') && rest.starts_with(' ') {
                rest = &rest[1..];
            }
        } else {
            out.push_str(&rest[start..start + len + 1]);
            rest = &rest[start + len + 1..];
        }
    }
    out.push_str(rest);
    out.trim().trim_start_matches([',', ':']).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn envelope(event: Value) -> Value {
        json!({"type": "event_callback", "event_id": "Ev1", "team_id": "T1", "event": event,
               "authorizations": [{"user_id": "UBOT", "is_bot": true}]})
    }

    fn dm(extra: Value) -> Value {
        let mut e = json!({"type": "message", "channel": "D1", "user": "U1", "text": " hi ", "ts": "1.1",
                           "channel_type": "im"});
        for (k, v) in extra.as_object().unwrap() {
            e[k] = v.clone();
        }
        e
    }

    #[test]
    fn challenge() {
        let body = json!({"type": "url_verification", "challenge": "abc"});
        assert_eq!(parse(&body, None), Parsed::Challenge("abc".into()));
        let long = json!({"type": "url_verification", "challenge": "x".repeat(MAX_CHALLENGE_CHARS + 1)});
        assert!(matches!(parse(&long, None), Parsed::Ignored(_)));
    }

    #[test]
    fn direct_message_kept_with_thread() {
        let Parsed::Message(m) = parse(&envelope(dm(json!({"thread_ts": "0.5"}))), Some("UBOT")) else { panic!() };
        assert_eq!((m.kind, m.text.as_str(), m.thread_ts.as_deref()), (Kind::DirectMessage, "hi", Some("0.5")));
        assert_eq!((m.event_id.as_deref(), m.team.as_deref()), (Some("Ev1"), Some("T1")));
    }

    #[test]
    fn ignored_messages() {
        for extra in [
            json!({"bot_id": "B1"}),
            json!({"subtype": "bot_message"}),
            json!({"subtype": "message_changed"}),
            json!({"subtype": "channel_join"}),
            json!({"user": "UBOT"}),
            json!({"channel_type": "channel"}),
            json!({"text": "   "}),
            json!({"user": null}),
        ] {
            let parsed = parse(&envelope(dm(extra.clone())), Some("UBOT"));
            assert!(matches!(parsed, Parsed::Ignored(_)), "{extra} gave {parsed:?}");
        }
        assert!(matches!(parse(&envelope(dm(json!({"subtype": "file_share"}))), None), Parsed::Message(_)));
        assert!(matches!(parse(&json!([1]), None), Parsed::Ignored(_)));
        assert!(matches!(parse(&json!({"type": "event_callback", "event": 5}), None), Parsed::Ignored(_)));
        assert!(matches!(parse(&envelope(json!({"type": "reaction_added"})), None), Parsed::Ignored(_)));
    }

    #[test]
    fn mention_is_stripped() {
        let event = json!({"type": "app_mention", "channel": "C1", "user": "U1", "ts": "2.2",
                           "text": "<@UBOT> what is <@U2>'s plan?"});
        let Parsed::Message(m) = parse(&envelope(event), Some("UBOT")) else { panic!() };
        assert_eq!((m.kind, m.text.as_str()), (Kind::Mention, "what is <@U2>'s plan?"));
        assert_eq!(strip_mention("<@UX|bot>, hello", None), "hello");
        assert_eq!(strip_mention("hey <@UBOT> there", Some("UBOT")), "hey there");
        assert_eq!(strip_mention("<@UBOT> run\n    indented  code", Some("UBOT")), "run\n    indented  code");
        assert_eq!(strip_mention("<@UBOT>", Some("UBOT")), "");
        assert_eq!(strip_mention("broken <@UBOT", Some("UBOT")), "broken <@UBOT");
    }

    #[test]
    fn envelope_bot() {
        assert_eq!(envelope_bot_user(&envelope(json!({}))).as_deref(), Some("UBOT"));
        assert_eq!(envelope_bot_user(&json!({"authorizations": [{"user_id": "U", "is_bot": false}]})), None);
    }
}
