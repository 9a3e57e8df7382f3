//! The channel's key-value workspace: UTF-8 text by relative path (under the capabilities file's
//! `workspace_prefix`, which the host adds). Writes are buffered and become visible to later callbacks
//! only if the current callback succeeds; paths listed in `durable_workspace_paths` survive restarts.
//! Use it for anything a later callback needs: every callback runs in a fresh instance.
//!
//! ```no_run
//! use airlock_channel::workspace;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize, Default)]
//! struct Counters { received: u64 }
//!
//! # fn main() -> airlock_channel::Result<()> {
//! let mut c: Counters = workspace::read_json("state/counters")?.unwrap_or_default();
//! c.received += 1;
//! workspace::write_json("state/counters", &c)?;
//! # Ok(()) }
//! ```

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::sys;

/// The text stored at `path`, or `None` if it was never written.
pub fn read(path: &str) -> Option<String> {
    sys::workspace_read(path)
}

/// Store `content` at `path`. Errors (`"workspace: ..."`) for a path outside the channel's prefix, an
/// invalid path, or a value over the host's size limits.
pub fn write(path: &str, content: &str) -> Result<()> {
    sys::workspace_write(path, content).map_err(|e| Error::new(format!("workspace: {e}")))
}

/// The JSON at `path` deserialized into `T`; `Ok(None)` if never written, an error if it does not parse.
pub fn read_json<T: DeserializeOwned>(path: &str) -> Result<Option<T>> {
    match read(path) {
        None => Ok(None),
        Some(text) => serde_json::from_str(&text).map(Some).map_err(|e| Error::new(format!("workspace {path}: {e}"))),
    }
}

/// Store `value` as compact JSON at `path`.
pub fn write_json<T: Serialize + ?Sized>(path: &str, value: &T) -> Result<()> {
    write(path, &serde_json::to_string(value)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_and_corruption() {
        let host = crate::testing::MockHost::install();
        assert_eq!(read_json::<u32>("a").unwrap(), None);
        write_json("a", &[1, 2]).unwrap();
        assert_eq!(read_json::<Vec<u32>>("a").unwrap(), Some(vec![1, 2]));
        host.workspace_set("b", "{not json");
        assert!(read_json::<u32>("b").unwrap_err().to_string().starts_with("workspace b:"));
        assert!(write("/abs", "x").unwrap_err().to_string().starts_with("workspace: "));
    }
}
