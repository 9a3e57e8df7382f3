//! [`Env`] over the Airlock SDK: what the component uses at run time.

use airlock_channel::{emit, http, log, pairing, workspace};
use serde_json::Value;

use crate::env::{Env, HttpReply, Level, Outgoing};

/// The host, reached through the SDK's wrappers. `channel` is the pairing namespace (the channel's name).
pub struct SdkEnv {
    pub channel: &'static str,
}

impl Env for SdkEnv {
    fn post(&mut self, url: &str, content_type: &str, body: &[u8], timeout_ms: u32) -> Result<HttpReply, String> {
        http::post(url)
            .header("Content-Type", content_type)
            .body(body.to_vec())
            .timeout_ms(timeout_ms)
            .send()
            .map(|r| HttpReply { status: r.status, body: r.body })
            .map_err(|e| e.to_string())
    }

    fn read(&mut self, path: &str) -> Option<String> {
        workspace::read(path)
    }

    fn write(&mut self, path: &str, content: &str) -> Result<(), String> {
        workspace::write(path, content).map_err(|e| e.to_string())
    }

    fn emit(&mut self, msg: Outgoing) {
        let mut out = emit::Message::new(msg.user_id, msg.content).metadata(msg.metadata);
        if let Some(name) = msg.user_name {
            out = out.user_name(name);
        }
        if let Some(thread) = msg.thread_id {
            out = out.thread_id(thread);
        }
        out.emit();
    }

    fn pairing_upsert(&mut self, id: &str, meta: &Value) -> Result<(String, bool), String> {
        pairing::upsert(self.channel, id, meta).map(|u| (u.code, u.created)).map_err(|e| e.to_string())
    }

    fn pairing_allowed(&mut self, id: &str) -> bool {
        match pairing::resolve(self.channel, id) {
            Ok(Some(_)) => return true,
            Ok(None) => {}
            Err(e) => log::warn(&format!("pairing lookup failed: {e}")),
        }
        match pairing::allow_from(self.channel) {
            Ok(ids) => ids.iter().any(|a| a == id),
            Err(e) => {
                log::warn(&format!("pairing allow-list read failed: {e}"));
                false
            }
        }
    }

    fn log(&mut self, level: Level, message: &str) {
        let level = match level {
            Level::Debug => log::Level::Debug,
            Level::Info => log::Level::Info,
            Level::Warn => log::Level::Warn,
            Level::Error => log::Level::Error,
        };
        log::log(level, message);
    }
}
