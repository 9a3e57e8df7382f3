//! Message ids already handled (durable), shared by both inbound paths: WeCom redelivers a callback it thinks
//! failed, and a long connection that reconnects may offer a message again.

use airlock_channel::workspace::RecentIds;

pub const SEEN_PATH: &str = "state/recent_messages";
/// How many message ids are remembered.
pub const SEEN_CAPACITY: usize = 512;

/// Remember `msgid`; false if it was already seen.
pub fn first_delivery(msgid: &str) -> bool {
    let mut seen = RecentIds::load(SEEN_PATH, SEEN_CAPACITY);
    let first = seen.first_time(msgid);
    seen.save_or_warn();
    first
}
