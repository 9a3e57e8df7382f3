//! Logging through the host. Lines are buffered by the host and written to its log after the callback,
//! tagged with the channel's name; at most 1000 lines of 4 KB per callback (longer lines are cut here,
//! at a character boundary, with a `" ...[truncated]"` marker).
//!
//! ```no_run
//! use airlock_channel::{info, log};
//! info!("got {} updates", 3);
//! log::warn("rate limited; retrying on the next poll");
//! ```

use crate::sys;

/// Largest log line the host keeps, in bytes.
pub const MAX_LINE_BYTES: usize = 4096;
const MARKER: &str = " ...[truncated]";

/// Severity of a log line (the WIT `log-level`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something odd that the channel handled.
    Warn,
    /// A failure.
    Error,
}

/// Log `message` at `level` (cut to [`MAX_LINE_BYTES`]).
pub fn log(level: Level, message: &str) {
    sys::log(level, &truncate(message, MAX_LINE_BYTES))
}

/// Log at trace level.
pub fn trace(message: &str) {
    log(Level::Trace, message)
}

/// Log at debug level.
pub fn debug(message: &str) {
    log(Level::Debug, message)
}

/// Log at info level.
pub fn info(message: &str) {
    log(Level::Info, message)
}

/// Log at warn level.
pub fn warn(message: &str) {
    log(Level::Warn, message)
}

/// Log at error level.
pub fn error(message: &str) {
    log(Level::Error, message)
}

/// `text` cut to at most `limit` bytes (marker included) at a character boundary.
pub(crate) fn truncate(text: &str, limit: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= limit {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut end = limit.saturating_sub(MARKER.len());
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    std::borrow::Cow::Owned(format!("{}{MARKER}", &text[..end]))
}

/// Log a formatted line at trace level: `trace!("x = {x}")`.
#[macro_export]
macro_rules! trace {
    ($($arg:tt)*) => { $crate::log::log($crate::log::Level::Trace, &::std::format!($($arg)*)) };
}

/// Log a formatted line at debug level: `debug!("x = {x}")`.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => { $crate::log::log($crate::log::Level::Debug, &::std::format!($($arg)*)) };
}

/// Log a formatted line at info level: `info!("x = {x}")`.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::log::log($crate::log::Level::Info, &::std::format!($($arg)*)) };
}

/// Log a formatted line at warn level: `warn!("x = {x}")`.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::log::log($crate::log::Level::Warn, &::std::format!($($arg)*)) };
}

/// Log a formatted line at error level: `error!("x = {x}")`.
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::log::log($crate::log::Level::Error, &::std::format!($($arg)*)) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_char_boundaries_and_limit() {
        assert_eq!(truncate("short", 4096), "short");
        let long = "é".repeat(3000); // 6000 bytes
        let cut = truncate(&long, MAX_LINE_BYTES);
        assert!(cut.len() <= MAX_LINE_BYTES);
        assert!(cut.ends_with(MARKER));
    }

    #[test]
    fn macros_reach_the_host() {
        let host = crate::testing::MockHost::install();
        crate::info!("n = {}", 3);
        crate::warn!("careful");
        log(Level::Error, &"x".repeat(10_000));
        let logs = host.logs();
        assert_eq!(logs[0], (Level::Info, "n = 3".to_string()));
        assert_eq!(logs[1].0, Level::Warn);
        assert_eq!(logs[2].1.len(), MAX_LINE_BYTES);
    }
}
