//! The SDK's error type. Its `Display` text is what the host sees as the WIT `err(string)` of `on-start`,
//! `on-respond` and `on-broadcast`, and what is logged when another callback fails.

use core::fmt;

/// An error from a channel or from a host function.
///
/// The message is plain text meant for the operator's log: keep secrets and large payloads out of it
/// (the host logs it and reports it to the agent runtime). Host-function failures carry a prefix naming
/// the function family (`http: ...`, `workspace: ...`, `pairing: ...`, `websocket: ...`).
///
/// ```
/// use airlock_channel::{Error, Result};
///
/// fn parse_port(text: &str) -> Result<u16> {
///     text.parse::<u16>().map_err(|e| Error::new(format!("bad port {text:?}: {e}")))
/// }
/// assert_eq!(parse_port("x").unwrap_err().to_string(), "bad port \"x\": invalid digit found in string");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Error {
    message: String,
    class: Option<SendClass>,
}

/// How the host should treat a failed delivery (`on_respond`, `on_broadcast`, `on_edit`, `on_react`); world
/// 0.2.0's `send-error`. It takes precedence over the host's own classification of the platform's HTTP answers
/// (`wit/channel.wit`, interface `delivery`). An [`Error`] without a class leaves the host to classify it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendClass {
    /// The platform asked to slow down: try again after this many seconds (the host waits at least 1, at most 3600).
    RateLimited(u32),
    /// Worth another try, with exponential backoff (a platform outage, a timeout).
    Temporary,
    /// Trying again fails the same way (the chat is gone, the request is invalid): no retry, a dead letter.
    Permanent,
}

/// `core::result::Result` with the SDK's [`Error`].
pub type Result<T, E = Error> = core::result::Result<T, E>;

impl Error {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Error { message: message.into(), class: None }
    }

    /// A delivery error the host retries after `seconds` (world 0.2.0; see [`SendClass::RateLimited`]).
    ///
    /// ```
    /// use airlock_channel::{Error, SendClass};
    /// let e = Error::rate_limited(3, "429 from the platform");
    /// assert_eq!(e.class(), Some(SendClass::RateLimited(3)));
    /// assert_eq!(e.to_string(), "429 from the platform");
    /// ```
    pub fn rate_limited(seconds: u32, message: impl Into<String>) -> Self {
        Error { message: message.into(), class: Some(SendClass::RateLimited(seconds)) }
    }

    /// A delivery error the host retries with backoff ([`SendClass::Temporary`]).
    pub fn temporary(message: impl Into<String>) -> Self {
        Error { message: message.into(), class: Some(SendClass::Temporary) }
    }

    /// A delivery error the host never retries ([`SendClass::Permanent`]).
    pub fn permanent(message: impl Into<String>) -> Self {
        Error { message: message.into(), class: Some(SendClass::Permanent) }
    }

    /// This error with `class` ([`SendClass`]), e.g. `http_error.with_class(SendClass::Permanent)`.
    pub fn with_class(self, class: SendClass) -> Self {
        Error { class: Some(class), ..self }
    }

    /// The delivery class, if the channel gave one.
    pub fn class(&self) -> Option<SendClass> {
        self.class
    }

    /// The message (the same text as `Display`).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Prefix the message with what was being done: `"{context}: {message}"`.
    ///
    /// ```
    /// let e = airlock_channel::Error::new("timed out").context("send reply");
    /// assert_eq!(e.to_string(), "send reply: timed out");
    /// ```
    pub fn context(self, context: impl fmt::Display) -> Self {
        Error { message: format!("{context}: {}", self.message), class: self.class }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Error({:?})", self.message)
    }
}

impl std::error::Error for Error {}

impl From<String> for Error {
    fn from(message: String) -> Self {
        Error::new(message)
    }
}

impl From<&str> for Error {
    fn from(message: &str) -> Self {
        Error::new(message)
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::new(format!("JSON: {e}"))
    }
}

impl From<std::str::Utf8Error> for Error {
    fn from(e: std::str::Utf8Error) -> Self {
        Error::new(format!("not UTF-8: {e}"))
    }
}

impl From<std::string::FromUtf8Error> for Error {
    fn from(e: std::string::FromUtf8Error) -> Self {
        Error::new(format!("not UTF-8: {e}"))
    }
}

/// Add context to a `Result` or turn an `Option` into a `Result`.
///
/// ```
/// use airlock_channel::{Context, Result};
///
/// fn first_word(text: &str) -> Result<&str> {
///     text.split_whitespace().next().context("empty message")
/// }
/// assert_eq!(first_word("  ").unwrap_err().to_string(), "empty message");
/// let parsed: Result<u32> = "12x".parse::<u32>().context("parse count");
/// assert_eq!(parsed.unwrap_err().to_string(), "parse count: invalid digit found in string");
/// ```
pub trait Context<T> {
    /// On failure, an [`Error`] whose message is `"{context}: {original}"` (for `Option`: just `context`).
    fn context(self, context: impl fmt::Display) -> Result<T>;
}

impl<T, E: fmt::Display> Context<T> for core::result::Result<T, E> {
    fn context(self, context: impl fmt::Display) -> Result<T> {
        self.map_err(|e| Error::new(format!("{context}: {e}")))
    }
}

impl<T> Context<T> for Option<T> {
    fn context(self, context: impl fmt::Display) -> Result<T> {
        self.ok_or_else(|| Error::new(context.to_string()))
    }
}

/// Return early with an [`Error`] built from a format string.
///
/// ```
/// fn check(n: u32) -> airlock_channel::Result<()> {
///     if n > 10 {
///         airlock_channel::bail!("{n} is more than 10");
///     }
///     Ok(())
/// }
/// assert_eq!(check(11).unwrap_err().to_string(), "11 is more than 10");
/// ```
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => {
        return ::core::result::Result::Err($crate::Error::new(::std::format!($($arg)*)))
    };
}

/// Return early with an [`Error`] unless a condition holds.
///
/// ```
/// fn check(text: &str) -> airlock_channel::Result<()> {
///     airlock_channel::ensure!(!text.is_empty(), "empty text");
///     Ok(())
/// }
/// assert!(check("").is_err());
/// ```
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($arg:tt)*) => {
        if !$cond {
            $crate::bail!($($arg)*);
        }
    };
}
