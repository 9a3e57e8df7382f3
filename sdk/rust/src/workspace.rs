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

/// The JSON at `path` passed through `check` (for example a config's strict parser, run again on the stored
/// copy because parts of it reach URLs); `T::default()` when the value was never written, is not JSON or is
/// refused by `check`. For state whose loss must not stop the channel: choose a `Default` that is safe.
pub fn read_checked<T: Default, E>(
    path: &str,
    check: impl FnOnce(&serde_json::Value) -> std::result::Result<T, E>,
) -> T {
    read_json::<serde_json::Value>(path).ok().flatten().and_then(|v| check(&v).ok()).unwrap_or_default()
}

/// Store `value` as compact JSON at `path`.
pub fn write_json<T: Serialize + ?Sized>(path: &str, value: &T) -> Result<()> {
    write(path, &serde_json::to_string(value)?)
}

/// A redelivery filter: the last ids seen (oldest first, at most `capacity`), kept as a JSON array of strings
/// at a workspace path, so a platform's retry of a delivery already handled can be dropped even in a later
/// callback or after a restart (list the path in `durable_workspace_paths`).
///
/// Bounds: `capacity` is clamped to `1..=`[`RecentIds::MAX_CAPACITY`] and ids longer than
/// [`RecentIds::MAX_ID_BYTES`] are never recorded (always "first time"), so the stored value stays under
/// about 530 KB, inside the host's 1 MiB limit per workspace value. An empty id is never recorded either.
///
/// ```no_run
/// use airlock_channel::workspace::RecentIds;
///
/// let mut recent = RecentIds::load("state/recent_events", 200);
/// if recent.first_time("Ev123") { /* handle the event */ }
/// recent.save_or_warn();
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecentIds {
    path: String,
    capacity: usize,
    ids: Vec<String>,
    changed: bool,
}

impl RecentIds {
    /// Largest `capacity`.
    pub const MAX_CAPACITY: usize = 2048;
    /// Longest id recorded, in bytes.
    pub const MAX_ID_BYTES: usize = 256;

    /// The ids stored at `path`; empty when never written or unreadable (a broken entry must not stop the
    /// channel: at worst one redelivery gets through).
    pub fn load(path: &str, capacity: usize) -> Self {
        Self::try_load(path, capacity).unwrap_or_else(|_| Self::empty(path, capacity))
    }

    /// Like [`load`](RecentIds::load), but an entry that is not a JSON array of strings is an error
    /// (`"workspace {path}: ..."`).
    pub fn try_load(path: &str, capacity: usize) -> Result<Self> {
        let mut recent = Self::empty(path, capacity);
        recent.ids = read_json(path)?.unwrap_or_default();
        Ok(recent)
    }

    fn empty(path: &str, capacity: usize) -> Self {
        let capacity = capacity.clamp(1, Self::MAX_CAPACITY);
        RecentIds { path: path.to_string(), capacity, ids: Vec::new(), changed: false }
    }

    /// True if `id` is among the recorded ids.
    pub fn contains(&self, id: &str) -> bool {
        self.ids.iter().any(|seen| seen == id)
    }

    /// False if `id` was seen already; otherwise records it (dropping the oldest ids beyond the capacity)
    /// and returns true. Empty and over-long ids are not recorded and always return true.
    pub fn first_time(&mut self, id: &str) -> bool {
        if id.is_empty() || id.len() > Self::MAX_ID_BYTES {
            return true;
        }
        if self.contains(id) {
            return false;
        }
        self.ids.push(id.to_string());
        let excess = self.ids.len().saturating_sub(self.capacity);
        self.ids.drain(..excess);
        self.changed = true;
        true
    }

    /// The recorded ids, oldest first.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// Write the ids back if [`first_time`](RecentIds::first_time) recorded one (workspace errors as for
    /// [`write()`]).
    pub fn save(&mut self) -> Result<()> {
        if self.changed {
            write_json(&self.path, &self.ids)?;
            self.changed = false;
        }
        Ok(())
    }

    /// [`save`](RecentIds::save), logging a failure as a warning (the filter is best effort: a lost write
    /// lets one redelivery through).
    pub fn save_or_warn(&mut self) {
        if let Err(e) = self.save() {
            crate::log::warn(&format!("could not record recent ids at {}: {e}", self.path));
        }
    }
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

    #[test]
    fn read_checked_falls_back_to_the_default() {
        let host = crate::testing::MockHost::install();
        let positive = |v: &serde_json::Value| v.as_u64().filter(|n| *n > 0).ok_or("not positive");
        assert_eq!(read_checked("n", positive), 0, "never written");
        host.workspace_set("n", "7");
        assert_eq!(read_checked("n", positive), 7);
        host.workspace_set("n", "-1");
        assert_eq!(read_checked("n", positive), 0, "refused by the check");
        host.workspace_set("n", "{broken");
        assert_eq!(read_checked("n", positive), 0, "not JSON");
    }

    #[test]
    fn recent_ids_drop_repeats_within_the_bound() {
        let host = crate::testing::MockHost::install();
        let mut recent = RecentIds::load("state/recent", 3);
        assert!(recent.first_time("a") && !recent.first_time("a"));
        for id in ["b", "c", "d"] {
            assert!(recent.first_time(id));
        }
        assert_eq!(recent.ids(), ["b", "c", "d"]);
        assert!(recent.first_time("a"), "the oldest id falls out of the window");
        recent.save().unwrap();
        assert_eq!(host.workspace_get("state/recent").as_deref(), Some(r#"["c","d","a"]"#));
        // A later callback sees them; an unchanged filter writes nothing.
        let mut again = RecentIds::load("state/recent", 3);
        assert!(!again.first_time("d") && again.contains("c"));
        host.workspace_set("state/recent", "[]");
        again.save().unwrap();
        assert_eq!(host.workspace_get("state/recent").as_deref(), Some("[]"));
    }

    #[test]
    fn recent_ids_limits_and_broken_entries() {
        let host = crate::testing::MockHost::install();
        let long = "x".repeat(RecentIds::MAX_ID_BYTES + 1);
        let mut recent = RecentIds::load("r", 0);
        assert!(recent.first_time("") && recent.first_time(""));
        assert!(recent.first_time(&long) && recent.first_time(&long));
        assert!(recent.ids().is_empty());
        assert!(recent.first_time("a") && recent.first_time("b"));
        assert_eq!(recent.ids(), ["b"], "capacity 0 is clamped to 1");
        let mut big = RecentIds::load("big", usize::MAX);
        for i in 0..RecentIds::MAX_CAPACITY + 5 {
            big.first_time(&i.to_string());
        }
        assert_eq!(big.ids().len(), RecentIds::MAX_CAPACITY);
        host.workspace_set("r", "{broken");
        assert!(RecentIds::load("r", 5).ids().is_empty());
        assert!(RecentIds::try_load("r", 5).unwrap_err().to_string().starts_with("workspace r:"));
        let mut bad_path = RecentIds::load("/abs", 5);
        bad_path.first_time("a");
        assert!(bad_path.save().is_err());
        bad_path.save_or_warn();
        assert!(host.logs().iter().any(|(_, l)| l.starts_with("could not record recent ids at /abs: workspace: ")));
    }
}
