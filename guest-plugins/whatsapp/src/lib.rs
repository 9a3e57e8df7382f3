//! WhatsApp Cloud API channel for Airlock (signed webhook in, Graph messages endpoint out). See `channel.rs`.

pub mod channel;
pub mod config;
pub mod env;
pub mod text;
pub mod webhook;

#[cfg(test)]
mod channel_tests;
#[cfg(test)]
mod testing;
