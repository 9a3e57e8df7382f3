//! Reply attachments through Slack's files upload v2 (Slack docs, "Uploading files": `files.getUploadURLExternal`,
//! then the bytes POSTed to the returned `upload_url`, then `files.completeUploadExternal` to share them).
//!
//! Per file: `files.getUploadURLExternal` (form-encoded `filename` and `length`: Slack does not take JSON for this
//! method) answers `upload_url` and `file_id`; the bytes go to `upload_url` as the raw body. Then one
//! `files.completeUploadExternal` (JSON) shares all files in the reply's channel and thread. The upload URL must be
//! `https://files.slack.com/...` (allow-listed in the capabilities file); anything else is refused before any byte
//! leaves. Every error names the step and Slack's error code only.

use airlock_channel::{http, Attachment};
use serde_json::{json, Value};

use crate::channel::{api_answer, api_call, API, REPLY_HTTP_TIMEOUT_MS};

/// Where Slack's upload URLs point (`files.getUploadURLExternal` answers `https://files.slack.com/upload/v1/...`).
pub const UPLOAD_URL_PREFIX: &str = "https://files.slack.com/";

/// Upload `files` and share them in `channel` (in `thread_ts` when given). Nothing is shared unless every upload
/// succeeded (the host retries the whole reply; an unshared upload is dropped by Slack).
pub fn upload(channel: &str, thread_ts: Option<&str>, files: &[Attachment]) -> Result<(), String> {
    if files.is_empty() {
        return Ok(());
    }
    let mut shared = Vec::with_capacity(files.len());
    for file in files {
        let (url, id) = upload_url(file)?;
        send_bytes(&url, file)?;
        shared.push(json!({"id": id, "title": file.filename}));
    }
    let mut payload = json!({"files": shared, "channel_id": channel});
    if let Some(ts) = thread_ts {
        payload["thread_ts"] = json!(ts);
    }
    let body = payload.to_string();
    api_call("files.completeUploadExternal", "application/json; charset=utf-8", body.as_bytes(), REPLY_HTTP_TIMEOUT_MS)
        .map(drop)
}

fn upload_url(file: &Attachment) -> Result<(String, String), String> {
    const METHOD: &str = "files.getUploadURLExternal";
    let pairs = [("filename", file.filename.clone()), ("length", file.data.len().to_string())];
    let resp = http::post(&format!("{API}/{METHOD}"))
        .form(&pairs)
        .timeout_ms(REPLY_HTTP_TIMEOUT_MS)
        .send()
        .map_err(|e| format!("{METHOD}: {e}"))?;
    let data = api_answer(METHOD, resp)?;
    let url = data.get("upload_url").and_then(Value::as_str).unwrap_or("");
    let id = data.get("file_id").and_then(Value::as_str).unwrap_or("");
    if !url.starts_with(UPLOAD_URL_PREFIX) || id.is_empty() {
        return Err(format!("{METHOD}: no usable upload_url and file_id in the answer"));
    }
    Ok((url.to_string(), id.to_string()))
}

fn send_bytes(url: &str, file: &Attachment) -> Result<(), String> {
    let mime = if file.mime_type.is_empty() { "application/octet-stream" } else { &file.mime_type };
    let resp = http::post(url)
        .header("Content-Type", mime)
        .body(file.data.clone())
        .timeout_ms(REPLY_HTTP_TIMEOUT_MS)
        .send()
        .map_err(|e| format!("file upload: {e}"))?;
    if (200..300).contains(&resp.status) {
        Ok(())
    } else {
        Err(format!("file upload: HTTP {}", resp.status))
    }
}
