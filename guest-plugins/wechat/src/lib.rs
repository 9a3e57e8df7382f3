//! WeChat channel for Airlock over the iLink bot API (the API of Tencent's `openclaw-weixin` plugin, which
//! IronClaw's wechat channel also uses): messages arrive by long-polling `getupdates` in `on-poll`; replies go
//! out with `sendmessage`. The bot token (from the iLink QR-code login) is a stored secret the host injects as
//! a bearer token; the channel never sees it.
//!
//! Direct messages only (a message with a `group_id` is not relayed); `dm_policy` as in the other channels
//! (the SDK's `DmGate`, re-checked by the host). `on-status` shows the typing indicator ([`typing`]).

pub mod api;
pub mod poll;
pub mod settings;
pub mod typing;

#[cfg(test)]
mod poll_tests;

use airlock_channel::{secrets, warn, AgentResponse, Channel, ChannelConfig, Config, Poll, Result, StatusUpdate};

use crate::settings::Settings;

pub struct WeChat;

impl Channel for WeChat {
    fn on_start(config: Config) -> Result<ChannelConfig> {
        let settings = Settings::from_config(&config)?;
        settings.save()?;
        if !secrets::exists(api::TOKEN_SECRET) {
            warn!("secret {} is not set: polling waits until it is stored", api::TOKEN_SECRET);
        }
        Ok(ChannelConfig::new("WeChat").poll(Poll::every_ms(settings.poll_interval_ms)))
    }

    fn on_poll() -> Result<()> {
        poll::poll()
    }

    fn on_respond(response: &AgentResponse) -> Result<()> {
        poll::respond(response)
    }

    fn on_status(update: &StatusUpdate) -> Result<()> {
        typing::status(update)
    }

    fn on_broadcast(user_id: &str, response: &AgentResponse) -> Result<()> {
        poll::broadcast(user_id, response)
    }
}

airlock_channel::export_channel!(WeChat);
