//! A recording [`Env`] for unit tests: an in-memory workspace and pairing store, canned HTTP answers.

use std::collections::{HashMap, HashSet, VecDeque};

use serde_json::Value;

use crate::env::{Env, HttpReply, Level, Outgoing};

#[derive(Default)]
pub struct FakeEnv {
    pub workspace: HashMap<String, String>,
    /// Every POST: (url, content type, body as text).
    pub posts: Vec<(String, String, String)>,
    /// Answers for the next POSTs, in order; when empty, `200 {"messages": [{"id": "wamid.OUT"}]}`.
    pub answers: VecDeque<Result<HttpReply, String>>,
    pub emitted: Vec<Outgoing>,
    pub paired: HashSet<String>,
    pub pending: HashMap<String, String>,
    pub logs: Vec<(Level, String)>,
}

impl FakeEnv {
    pub fn answer(&mut self, status: u16, body: &str) {
        self.answers.push_back(Ok(HttpReply { status, body: body.as_bytes().to_vec() }));
    }

    pub fn posted_json(&self, i: usize) -> Value {
        serde_json::from_str(&self.posts[i].2).unwrap()
    }
}

impl Env for FakeEnv {
    fn post(&mut self, url: &str, content_type: &str, body: &[u8], _timeout_ms: u32) -> Result<HttpReply, String> {
        self.posts.push((url.into(), content_type.into(), String::from_utf8_lossy(body).into()));
        self.answers
            .pop_front()
            .unwrap_or_else(|| Ok(HttpReply { status: 200, body: br#"{"messages": [{"id": "wamid.OUT"}]}"#.to_vec() }))
    }

    fn read(&mut self, path: &str) -> Option<String> {
        self.workspace.get(path).cloned()
    }

    fn write(&mut self, path: &str, content: &str) -> Result<(), String> {
        self.workspace.insert(path.into(), content.into());
        Ok(())
    }

    fn emit(&mut self, msg: Outgoing) {
        self.emitted.push(msg);
    }

    fn pairing_upsert(&mut self, id: &str, _meta: &Value) -> Result<(String, bool), String> {
        if let Some(code) = self.pending.get(id) {
            return Ok((code.clone(), false));
        }
        let code = format!("CODE{}", self.pending.len() + 1);
        self.pending.insert(id.into(), code.clone());
        Ok((code, true))
    }

    fn pairing_allowed(&mut self, id: &str) -> bool {
        self.paired.contains(id)
    }

    fn log(&mut self, level: Level, message: &str) {
        self.logs.push((level, message.into()));
    }
}
