//! Reply files over the AI bot's long connection: each file is uploaded as a temporary media item and then sent to
//! the chat as a file or image message.
//!
//! Protocol (WeCom, "智能机器人长连接", developer.work.weixin.qq.com/document/path/101463, sections 上传临时素材 and
//! 主动推送消息; as WeCom's own `aibot-node-sdk` implements it, `src/client.ts` `uploadMedia` / `sendMediaMessage`
//! and `src/types/api.ts`):
//!
//! 1. `aibot_upload_media_init` `{type: "file"|"image", filename, total_size, total_chunks, md5}`; its ack carries
//!    `body.upload_id`;
//! 2. `aibot_upload_media_chunk` `{upload_id, chunk_index, base64_data}` per chunk of at most 512 KiB before
//!    base64 ([`CHUNK_BYTES`]), at most 100 chunks; `chunk_index` counts from 0 as the SDK sends it (the SDK's type
//!    comment says "从 1 开始", its code and every other client start at 0);
//! 3. `aibot_upload_media_finish` `{upload_id}`; its ack carries `body.media_id` (valid three days);
//! 4. `aibot_send_msg` `{chatid, msgtype: type, <type>: {media_id}}` (chatid: the group's chatid, or the userid of
//!    a single chat).
//!
//! Each step waits for the previous step's ack, and acks reach the channel as separate frames (separate callbacks,
//! each in a fresh instance), so an upload is a small state machine kept in the workspace: `uploads/<id>` (the
//! step reached) and `uploads/<id>/<n>` (chunk `n`, base64, cleared once acknowledged), listed in
//! [`INDEX_PATH`]. A command's `req_id` names its upload and step (`airlock_upload:<id>:<step>`), so an ack finds
//! its state without a search. All chunks go out together once `upload_id` is known (the SDK uploads up to 4 at
//! once). An upload WeCom refuses ends with a short markdown note in the chat; one never acknowledged is dropped
//! after [`PENDING_TTL_MS`].

use airlock_channel::{debug, now_millis, warn, websocket, workspace, Attachment, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// One chunk's bytes before base64 (the SDK: "单个分片不超过 512KB（Base64 编码前）").
pub const CHUNK_BYTES: usize = 512 * 1024;
/// Most files of one reply uploaded (the rest become notes).
pub const MAX_REPLY_FILES: usize = 4;
/// Most bytes of one reply's files together: their base64 must fit the host's 4 MiB of workspace writes per
/// callback (`capabilities/workspace.py`, `MAX_CALLBACK_WRITE_BYTES`), with room for the rest.
pub const MAX_REPLY_FILE_BYTES: usize = 2 * 1024 * 1024;
/// Most bytes of all uploads in flight (their base64 stays in the workspace, 32 MiB per channel, until acked).
pub const MAX_PENDING_BYTES: usize = 8 * 1024 * 1024;
/// An upload not finished after this long is dropped (WeCom answers a command within seconds).
pub const PENDING_TTL_MS: u64 = 5 * 60 * 1000;
/// The list of uploads in flight.
pub const INDEX_PATH: &str = "uploads/index";
/// The prefix of the `req_id` of every upload command.
pub const REQ_PREFIX: &str = "airlock_upload:";
/// WeCom sends JPG and PNG as images (the SDK: "支持JPG、PNG格式"); everything else goes as a file.
const IMAGE_TYPES: [&str; 3] = ["image/jpeg", "image/jpg", "image/png"];
/// Longest `upload_id` or `media_id` accepted from an ack.
const MAX_ID_BYTES: usize = 256;

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
struct Pending {
    id: String,
    started_ms: u64,
    bytes: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
struct Upload {
    chat: String,
    kind: String,
    filename: String,
    chunks: usize,
    #[serde(default)]
    upload_id: Option<String>,
    #[serde(default)]
    acked: Vec<bool>,
}

fn meta_path(id: &str) -> String {
    format!("uploads/{id}")
}

fn chunk_path(id: &str, n: usize) -> String {
    format!("uploads/{id}/{n}")
}

fn req_id(id: &str, step: &str) -> String {
    format!("{REQ_PREFIX}{id}:{step}")
}

fn command(cmd: &str, req: &str, body: Value) -> Result<()> {
    websocket::send_json(&json!({"cmd": cmd, "headers": {"req_id": req}, "body": body}))
}

/// Start uploading `files` for `chat`; `key` (the reply's message id) names the uploads. Returns a note for each
/// file not sent (too many, too large, empty, or no room), to be added to the reply's text.
pub fn start(chat: &str, key: &str, files: &[Attachment]) -> Result<Vec<String>> {
    if files.is_empty() {
        return Ok(Vec::new()); // a text reply touches no upload state
    }
    let key: String = key.chars().filter(char::is_ascii_alphanumeric).take(40).collect();
    let mut notes = Vec::new();
    let mut index = live_index()?;
    let mut reply_bytes = 0;
    for (n, file) in files.iter().enumerate() {
        let name = display_name(&file.filename);
        let pending: usize = index.iter().map(|p| p.bytes).sum();
        let size = file.data.len();
        let refusal = if n >= MAX_REPLY_FILES {
            Some(format!("at most {MAX_REPLY_FILES} files per reply"))
        } else if size == 0 {
            Some("the file is empty".to_string())
        } else if reply_bytes + size > MAX_REPLY_FILE_BYTES {
            Some(format!("a reply's files may total at most {MAX_REPLY_FILE_BYTES} bytes"))
        } else if pending + size > MAX_PENDING_BYTES {
            Some("too many files are still being uploaded".to_string())
        } else {
            None
        };
        if let Some(why) = refusal {
            notes.push(format!("[{name} not sent: {why}]"));
            continue;
        }
        reply_bytes += size;
        let id = format!("{key}-{}-{n}", now_millis());
        begin(&id, chat, file)?;
        index.push(Pending { id, started_ms: now_millis(), bytes: size });
    }
    workspace::write_json(INDEX_PATH, &index)?;
    Ok(notes)
}

/// The index without uploads older than [`PENDING_TTL_MS`] (whose state is cleared).
fn live_index() -> Result<Vec<Pending>> {
    let index: Vec<Pending> = workspace::read_json(INDEX_PATH).ok().flatten().unwrap_or_default();
    let now = now_millis();
    let (live, stale): (Vec<_>, Vec<_>) =
        index.into_iter().partition(|p| now.saturating_sub(p.started_ms) < PENDING_TTL_MS);
    for p in &stale {
        warn!("upload {} dropped: not finished within {PENDING_TTL_MS} ms", p.id);
        clear(&p.id)?;
    }
    Ok(live)
}

fn display_name(filename: &str) -> String {
    let name: String = filename.chars().filter(|c| !c.is_control()).take(120).collect();
    if name.trim().is_empty() {
        "file".to_string()
    } else {
        name
    }
}

fn begin(id: &str, chat: &str, file: &Attachment) -> Result<()> {
    let mime = file.mime_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let kind = if IMAGE_TYPES.contains(&mime.as_str()) { "image" } else { "file" };
    let chunks = file.data.len().div_ceil(CHUNK_BYTES);
    for (n, part) in file.data.chunks(CHUNK_BYTES).enumerate() {
        workspace::write(&chunk_path(id, n), &STANDARD.encode(part))?;
    }
    let filename = display_name(&file.filename);
    let upload = Upload {
        chat: chat.to_string(),
        kind: kind.to_string(),
        filename: filename.clone(),
        chunks,
        upload_id: None,
        acked: vec![false; chunks],
    };
    workspace::write_json(&meta_path(id), &upload)?;
    let md5 = format!("{:x}", Md5::digest(&file.data));
    let body = json!({"type": kind, "filename": filename, "total_size": file.data.len(), "total_chunks": chunks,
                      "md5": md5});
    command("aibot_upload_media_init", &req_id(id, "init"), body)
}

/// An ack `{headers: {req_id}, errcode, errmsg, body}` of one of this module's commands (`req_id` starts with
/// [`REQ_PREFIX`]). Unknown or finished uploads are ignored.
pub fn on_ack(req: &str, errcode: i64, errmsg: &str, body: &Value) -> Result<()> {
    let Some((id, step)) = req.strip_prefix(REQ_PREFIX).and_then(|rest| rest.split_once(':')) else {
        return Ok(());
    };
    let Some(mut upload) = load(id) else {
        debug!("ack for upload {id} ignored: no such upload in flight");
        return Ok(());
    };
    if errcode != 0 {
        let errmsg: String = errmsg.chars().take(120).collect();
        warn!("upload {id} ({step}) refused by WeCom: errcode {errcode} ({errmsg})");
        return fail(id, &upload, &format!("WeCom refused it (errcode {errcode})"));
    }
    match step {
        "init" => {
            let Some(upload_id) = id_in(body, "upload_id") else { return fail(id, &upload, "no upload_id") };
            upload.upload_id = Some(upload_id.clone());
            for n in 0..upload.chunks {
                let data = workspace::read(&chunk_path(id, n)).unwrap_or_default();
                let body = json!({"upload_id": upload_id, "chunk_index": n, "base64_data": data});
                command("aibot_upload_media_chunk", &req_id(id, &format!("chunk{n}")), body)?;
            }
            save(id, &upload)
        }
        _ if step.starts_with("chunk") => {
            let n: Option<usize> = step["chunk".len()..].parse().ok();
            match n.and_then(|n| upload.acked.get_mut(n)) {
                Some(done) if !*done => *done = true,
                _ => return Ok(()),
            }
            workspace::write(&chunk_path(id, n.unwrap_or_default()), "")?;
            if upload.acked.iter().all(|d| *d) {
                let upload_id = upload.upload_id.clone().unwrap_or_default();
                command("aibot_upload_media_finish", &req_id(id, "finish"), json!({"upload_id": upload_id}))?;
            }
            save(id, &upload)
        }
        "finish" => {
            let Some(media_id) = id_in(body, "media_id") else { return fail(id, &upload, "no media_id") };
            let kind = upload.kind.as_str();
            let body = json!({"chatid": upload.chat, "msgtype": kind, kind: {"media_id": media_id}});
            command("aibot_send_msg", &req_id(id, "send"), body)
        }
        "send" => {
            debug!("upload {id}: {} sent", upload.filename);
            clear(id)
        }
        _ => Ok(()),
    }
}

/// A non-empty id of at most [`MAX_ID_BYTES`] without control characters, from `body[key]`.
fn id_in(body: &Value, key: &str) -> Option<String> {
    let value = body.get(key)?.as_str()?.trim();
    let ok = !value.is_empty() && value.len() <= MAX_ID_BYTES && !value.chars().any(char::is_control);
    ok.then(|| value.to_string())
}

fn load(id: &str) -> Option<Upload> {
    let text = workspace::read(&meta_path(id)).filter(|t| !t.is_empty())?;
    serde_json::from_str(&text).ok()
}

fn save(id: &str, upload: &Upload) -> Result<()> {
    workspace::write_json(&meta_path(id), upload)
}

/// Tell the chat the file was not sent, and forget the upload.
fn fail(id: &str, upload: &Upload, why: &str) -> Result<()> {
    clear(id)?;
    let note = format!("[{} not sent: {why}]", upload.filename);
    crate::bot::send_markdown(&upload.chat, &note)
}

/// Clear an upload's chunks and state and remove it from the index.
fn clear(id: &str) -> Result<()> {
    if let Some(upload) = load(id) {
        for n in 0..upload.chunks {
            workspace::write(&chunk_path(id, n), "")?;
        }
    }
    workspace::write(&meta_path(id), "")?;
    let mut index: Vec<Pending> = workspace::read_json(INDEX_PATH).ok().flatten().unwrap_or_default();
    index.retain(|p| p.id != id);
    workspace::write_json(INDEX_PATH, &index)
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_channel::testing::MockHost;

    fn file(name: &str, mime: &str, size: usize) -> Attachment {
        Attachment { filename: name.into(), mime_type: mime.into(), data: (0..size).map(|i| (i % 251) as u8).collect() }
    }

    fn sent(host: &MockHost) -> Vec<Value> {
        host.websocket_sent().iter().map(|f| serde_json::from_str(f).unwrap()).collect()
    }

    fn ack(req: &str, body: Value) {
        on_ack(req, 0, "ok", &body).unwrap();
    }

    #[test]
    fn an_upload_walks_init_chunks_finish_send_and_clears_its_state() {
        let host = MockHost::install();
        host.set_websocket_open(true);
        let data = file("chart.png", "image/png", CHUNK_BYTES + 10);
        assert!(start("zhangsan", "01J-Reply", std::slice::from_ref(&data)).unwrap().is_empty());
        let init = sent(&host).pop().unwrap();
        assert_eq!(init["cmd"], "aibot_upload_media_init");
        assert_eq!(init["body"]["type"], "image");
        assert_eq!(
            (init["body"]["total_size"].as_u64(), init["body"]["total_chunks"].as_u64()),
            (Some(524_298), Some(2))
        );
        assert_eq!(init["body"]["md5"], format!("{:x}", Md5::digest(&data.data)));
        let init_req = init["headers"]["req_id"].as_str().unwrap().to_string();
        assert!(init_req.starts_with("airlock_upload:01JReply-") && init_req.ends_with(":init"), "{init_req}");
        ack(&init_req, json!({"upload_id": "up-1"}));
        let chunks: Vec<Value> = sent(&host).into_iter().skip(1).collect();
        assert_eq!(chunks.len(), 2);
        let joined: Vec<u8> =
            chunks.iter().flat_map(|c| STANDARD.decode(c["body"]["base64_data"].as_str().unwrap()).unwrap()).collect();
        assert_eq!(joined, data.data);
        assert_eq!(
            (chunks[0]["body"]["chunk_index"].as_u64(), chunks[1]["body"]["chunk_index"].as_u64()),
            (Some(0), Some(1))
        );
        for c in &chunks {
            ack(c["headers"]["req_id"].as_str().unwrap(), Value::Null);
        }
        ack(chunks[0]["headers"]["req_id"].as_str().unwrap(), Value::Null); // a repeated ack changes nothing
        let finish = sent(&host).pop().unwrap();
        assert_eq!(
            (finish["cmd"].as_str(), &finish["body"]),
            (Some("aibot_upload_media_finish"), &json!({"upload_id": "up-1"}))
        );
        assert_eq!(sent(&host).len(), 4);
        ack(finish["headers"]["req_id"].as_str().unwrap(), json!({"type": "image", "media_id": "m-1"}));
        let message = sent(&host).pop().unwrap();
        assert_eq!(message["cmd"], "aibot_send_msg");
        assert_eq!(message["body"], json!({"chatid": "zhangsan", "msgtype": "image", "image": {"media_id": "m-1"}}));
        ack(message["headers"]["req_id"].as_str().unwrap(), Value::Null);
        assert_eq!(host.workspace_get(INDEX_PATH).as_deref(), Some("[]"));
        let id = init_req.trim_start_matches(REQ_PREFIX).trim_end_matches(":init");
        assert_eq!(host.workspace_get(&meta_path(id)).as_deref(), Some(""));
        assert_eq!(host.workspace_get(&chunk_path(id, 0)).as_deref(), Some(""));
    }

    #[test]
    fn limits_become_notes() {
        let host = MockHost::install();
        host.set_websocket_open(true);
        assert!(start("u", "r0", &[]).unwrap().is_empty());
        assert_eq!(host.workspace_get(INDEX_PATH), None, "a reply without files writes nothing");
        let files: Vec<Attachment> =
            (0..MAX_REPLY_FILES + 1).map(|i| file(&format!("f{i}.txt"), "text/plain", 10)).collect();
        let notes = start("u", "r1", &files).unwrap();
        assert_eq!(
            notes,
            vec![format!("[f{MAX_REPLY_FILES}.txt not sent: at most {MAX_REPLY_FILES} files per reply]")]
        );
        assert_eq!(sent(&host).len(), MAX_REPLY_FILES);
        let big = [file("a.bin", "", MAX_REPLY_FILE_BYTES - 5), file("b.bin", "", 6), file("", "", 0)];
        let notes = start("u", "r2", &big).unwrap();
        assert_eq!(
            notes,
            vec![
                format!("[b.bin not sent: a reply's files may total at most {MAX_REPLY_FILE_BYTES} bytes]"),
                "[file not sent: the file is empty]".to_string(),
            ]
        );
        // In flight now: 4 * 10 bytes + 2 MiB - 5. Three more replies of 2 MiB fill MAX_PENDING_BYTES.
        for r in 0..3 {
            assert!(start("u", &format!("r{r}x"), &[file("c.bin", "", MAX_REPLY_FILE_BYTES - 64)]).unwrap().is_empty());
        }
        let notes = start("u", "r9", &[file("d.bin", "", MAX_REPLY_FILE_BYTES)]).unwrap();
        assert_eq!(notes, vec!["[d.bin not sent: too many files are still being uploaded]".to_string()]);
        host.set_now(now_millis() + PENDING_TTL_MS + 1); // nothing was acknowledged: all of it is dropped
        assert!(start("u", "r10", &[file("d.bin", "", MAX_REPLY_FILE_BYTES)]).unwrap().is_empty());
        let index: Vec<Pending> = serde_json::from_str(&host.workspace_get(INDEX_PATH).unwrap()).unwrap();
        assert_eq!(index.len(), 1);
    }

    #[test]
    fn a_refused_step_tells_the_chat_and_forgets_the_upload() {
        let host = MockHost::install();
        host.set_websocket_open(true);
        start("wrkGroup01", "r", &[file("report.pdf", "application/pdf", 100)]).unwrap();
        let init_req = sent(&host)[0]["headers"]["req_id"].as_str().unwrap().to_string();
        on_ack(&init_req, 40058, "invalid", &Value::Null).unwrap();
        let note = sent(&host).pop().unwrap();
        assert_eq!(note["cmd"], "aibot_send_msg");
        assert_eq!(note["body"]["chatid"], "wrkGroup01");
        assert_eq!(note["body"]["markdown"]["content"], "[report.pdf not sent: WeCom refused it (errcode 40058)]");
        on_ack(&init_req, 0, "ok", &json!({"upload_id": "late"})).unwrap(); // forgotten: nothing more is sent
        assert_eq!(sent(&host).len(), 2);
        assert_eq!(host.workspace_get(INDEX_PATH).as_deref(), Some("[]"));
        // An ack whose upload_id is over MAX_ID_BYTES (or empty) is not used.
        start("u", "r2", &[file("x.txt", "text/plain", 3)]).unwrap();
        let init_req = sent(&host).pop().unwrap()["headers"]["req_id"].as_str().unwrap().to_string();
        ack(&init_req, json!({"upload_id": "i".repeat(MAX_ID_BYTES + 1)}));
        assert_eq!(sent(&host).pop().unwrap()["body"]["markdown"]["content"], "[x.txt not sent: no upload_id]");
    }
}
