//! Whether a secret is stored. A channel never reads secret values: the host puts them into outbound
//! requests (URL path, header or body placeholders like `{TELEGRAM_BOT_TOKEN}`) for the hosts the
//! capabilities file allows.
//!
//! ```no_run
//! if !airlock_channel::secrets::exists("slack_bot_token") {
//!     airlock_channel::log::warn("no bot token stored yet; replies will fail");
//! }
//! ```

use crate::sys;

/// True only if `name` is allowed for this channel (`secrets.allowed_names`) and a value is stored.
pub fn exists(name: &str) -> bool {
    sys::secret_exists(name)
}
