//! Slack channel for Airlock (Events API webhook in, `chat.postMessage` out). See `channel.rs`.

pub mod channel;
pub mod config;
pub mod env;
pub mod events;
pub mod text;

#[cfg(test)]
mod testing;
#[cfg(test)]
mod channel_tests;
