//! Inbound media of the AI bot's long connection: the image and file items of a message callback become attachments
//! for the agent.
//!
//! Frame shapes (WeCom, "智能机器人长连接", developer.work.weixin.qq.com/document/path/101463, 接收消息回调; the
//! types of WeCom's `aibot-node-sdk`, `src/types/message.ts`): `msgtype: "image"` carries `image: {url, aeskey}`,
//! `msgtype: "file"` carries `file: {url, aeskey}`, and a `mixed` message's `msg_item` list holds
//! `{msgtype: "image", image: {url, aeskey}}` items between its text items. The `url` is a download link valid for
//! five minutes, on Tencent COS (`*.myqcloud.com`, the host IronClaw's wecom capabilities file allow-lists); the
//! bytes there are encrypted with the item's own `aeskey` ([`crate::crypt`]). WeCom's SDK takes the file name from
//! the download's `Content-Disposition` (`filename*=UTF-8''...` first, then `filename=`), as this module does.
//!
//! Each item is downloaded through the host (the capabilities file's allow-list applies), decrypted in the guest and
//! handed to the host with `store-attachment-data`. Whatever goes wrong with one item (refused or failed download,
//! a file over the size limit, bytes that do not decrypt, a store the host refuses) becomes a short note in the
//! message's text instead of an attachment: the message itself always reaches the agent.

use airlock_channel::emit::{store_attachment_data, InboundAttachment};
use airlock_channel::{http, now_millis, warn};

use crate::crypt::{decrypt_in_place, PAD_BLOCK};

/// Default of the `max_media_bytes` config: the largest file (after decryption) attached. 2 MiB is the host's
/// default limit on one `store-attachment-data` call (`HostConfig.max_guest_list_bytes`).
pub const DEFAULT_MAX_MEDIA_BYTES: usize = 2 * 1024 * 1024;
/// Highest `max_media_bytes` accepted: the host keeps at most 20 MiB per attachment (`store-attachment-data`).
pub const MAX_MEDIA_BYTES_CAP: usize = 20 * 1024 * 1024;
/// Most items of one message downloaded (the rest become one note): downloads run one after another inside one
/// callback, whose wall-clock limit (30 s by default) they share.
pub const MAX_MEDIA_PER_MESSAGE: usize = 4;
/// Time limit of one download, in milliseconds (the host caps it with the file's `timeout_secs`).
pub const DOWNLOAD_TIMEOUT_MS: u32 = 10_000;
/// Time all downloads of one message may take together, in milliseconds: well inside the callback's 30 s
/// (`callback_timeout_secs`), so the message is emitted even when the links are slow. An item whose turn comes
/// with less than [`MIN_DOWNLOAD_MS`] left is not fetched.
pub const MEDIA_BUDGET_MS: u64 = 20_000;
/// The least time worth starting a download with.
pub const MIN_DOWNLOAD_MS: u64 = 1_000;
/// Longest file name kept, in UTF-8 bytes (longer names are cut at a character boundary).
pub const MAX_FILENAME_BYTES: usize = 200;

/// What a media item is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Image,
    File,
}

impl Kind {
    pub fn word(self) -> &'static str {
        match self {
            Kind::Image => "image",
            Kind::File => "file",
        }
    }
}

/// One image or file item of a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaRef {
    pub kind: Kind,
    pub url: String,
    /// The item's key; WeCom sends it in long-connection mode ("长连接模式下返回"). Without one the download is
    /// taken as the file itself, as WeCom's SDK does (`downloadFile(url, aesKey?)`).
    pub aeskey: Option<String>,
}

/// What became of a message's media: the attachments stored, and a note per item that was not.
#[derive(Debug, Default, PartialEq)]
pub struct Fetched {
    pub attachments: Vec<InboundAttachment>,
    pub notes: Vec<String>,
}

/// Download, decrypt and store `items` (at most [`MAX_MEDIA_PER_MESSAGE`]), each at most `max_bytes` once
/// decrypted. Attachment ids are `image-<n>` / `file-<n>` (n counts from 1 in the message).
pub fn fetch_all(items: &[MediaRef], max_bytes: usize) -> Fetched {
    let mut out = Fetched::default();
    let deadline = now_millis() + MEDIA_BUDGET_MS;
    for (i, item) in items.iter().take(MAX_MEDIA_PER_MESSAGE).enumerate() {
        let id = format!("{}-{}", item.kind.word(), i + 1);
        let left = deadline.saturating_sub(now_millis());
        let result = if left < MIN_DOWNLOAD_MS {
            Err("no time was left to download it".to_string())
        } else {
            fetch(item, &id, max_bytes, left.min(u64::from(DOWNLOAD_TIMEOUT_MS)) as u32)
        };
        match result {
            Ok(attachment) => out.attachments.push(attachment),
            Err(why) => out.notes.push(format!("[{} {} not attached: {why}]", item.kind.word(), i + 1)),
        }
    }
    if items.len() > MAX_MEDIA_PER_MESSAGE {
        let skipped = items.len() - MAX_MEDIA_PER_MESSAGE;
        out.notes.push(format!("[{skipped} more item(s) not attached: at most {MAX_MEDIA_PER_MESSAGE} per message]"));
    }
    out
}

fn fetch(item: &MediaRef, id: &str, max_bytes: usize, timeout_ms: u32) -> Result<InboundAttachment, String> {
    let resp = http::get(&item.url).timeout_ms(timeout_ms).send().map_err(|e| {
        warn!("{id}: download refused or failed: {e}");
        "the download was refused or failed".to_string()
    })?;
    if !resp.is_success() {
        warn!("{id}: download answered HTTP {}", resp.status);
        return Err(format!("the download answered HTTP {}", resp.status));
    }
    let over = || format!("larger than the channel's limit of {max_bytes} bytes");
    // Ciphertext is the file padded by 1..=32 bytes: anything longer cannot decrypt to max_bytes or less.
    if resp.body.len() > max_bytes + PAD_BLOCK {
        return Err(over());
    }
    let name = resp.header("content-disposition").and_then(filename_of);
    let mut data = resp.body;
    if let Some(key) = &item.aeskey {
        decrypt_in_place(&mut data, key).map_err(|e| {
            warn!("{id}: not decrypted: {e}");
            "it could not be decrypted".to_string()
        })?;
    }
    if data.len() > max_bytes {
        return Err(over());
    }
    let mime = mime_of(&data, name.as_deref(), item.kind);
    let filename = name.unwrap_or_else(|| format!("{id}{}", extension_of(mime)));
    store_attachment_data(id, &data).map_err(|e| {
        warn!("{id}: {e}");
        "the host did not store it".to_string()
    })?;
    let mut attachment = InboundAttachment::new(id, mime);
    attachment.filename = Some(filename);
    attachment.size_bytes = Some(data.len() as u64);
    Ok(attachment)
}

/// The file name of a `Content-Disposition` value: RFC 6266's `filename*=UTF-8''<percent-encoded>` (RFC 5987)
/// first, else `filename="..."` / `filename=...`; reduced to its last path segment, without control characters,
/// at most [`MAX_FILENAME_BYTES`]. `None` when no usable name is there.
pub fn filename_of(disposition: &str) -> Option<String> {
    let params: Vec<(String, &str)> = disposition
        .split(';')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim()))
        .collect();
    let extended = params.iter().find(|(k, _)| k == "filename*").and_then(|(_, v)| {
        let (charset, rest) = v.split_once('\'')?;
        let (_, encoded) = rest.split_once('\'')?;
        charset.eq_ignore_ascii_case("utf-8").then(|| percent_decode(encoded))?
    });
    let plain = || params.iter().find(|(k, _)| k == "filename").map(|(_, v)| v.trim_matches('"').to_string());
    let name = extended.or_else(plain)?;
    let last = name.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = last.chars().filter(|c| !c.is_control()).collect();
    let cleaned = cleaned.trim();
    (!cleaned.is_empty() && cleaned != "." && cleaned != "..").then(|| cut(cleaned, MAX_FILENAME_BYTES).to_string())
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn cut(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The MIME type: from the bytes' signature for common images and PDF, else from the name's extension, else
/// `image/jpeg` for an image item (WeCom's own default for images) and `application/octet-stream` for a file. The
/// download's `Content-Type` is not used: it describes the encrypted object, not the file.
pub fn mime_of(data: &[u8], name: Option<&str>, kind: Kind) -> &'static str {
    const SIGNATURES: [(&[u8], &str); 5] = [
        (b"\x89PNG\r\n\x1a\n", "image/png"),
        (b"\xff\xd8\xff", "image/jpeg"),
        (b"GIF8", "image/gif"),
        (b"%PDF-", "application/pdf"),
        (b"BM", "image/bmp"),
    ];
    if data.len() >= 12 && &data[..4] == b"RIFF" && &data[8..12] == b"WEBP" {
        return "image/webp";
    }
    if let Some((_, mime)) = SIGNATURES.iter().find(|(sig, _)| data.starts_with(sig)) {
        return mime;
    }
    let ext = name.and_then(|n| n.rsplit_once('.')).map(|(_, e)| e.to_ascii_lowercase());
    let by_ext = match ext.as_deref() {
        Some("txt" | "md" | "log") => Some("text/plain"),
        Some("csv") => Some("text/csv"),
        Some("json") => Some("application/json"),
        Some("zip") => Some("application/zip"),
        Some("doc") => Some("application/msword"),
        Some("docx") => Some("application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
        Some("xls") => Some("application/vnd.ms-excel"),
        Some("xlsx") => Some("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        Some("pptx") => Some("application/vnd.openxmlformats-officedocument.presentationml.presentation"),
        _ => None,
    };
    by_ext.unwrap_or(match kind {
        Kind::Image => "image/jpeg",
        Kind::File => "application/octet-stream",
    })
}

fn extension_of(mime: &str) -> &'static str {
    match mime {
        "image/png" => ".png",
        "image/jpeg" => ".jpg",
        "image/gif" => ".gif",
        "image/webp" => ".webp",
        "image/bmp" => ".bmp",
        "application/pdf" => ".pdf",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_from_content_disposition() {
        assert_eq!(filename_of("attachment; filename*=UTF-8''%E6%8A%A5%E5%91%8A.pdf").as_deref(), Some("报告.pdf"));
        assert_eq!(
            filename_of(r#"attachment; filename="plain.txt"; filename*=UTF-8''better.txt"#).as_deref(),
            Some("better.txt")
        );
        assert_eq!(filename_of(r#"attachment; filename="a b.docx""#).as_deref(), Some("a b.docx"));
        assert_eq!(filename_of("attachment; filename=../../etc/passwd").as_deref(), Some("passwd"));
        assert_eq!(filename_of("attachment; filename=\"x\u{7}y.txt\"").as_deref(), Some("xy.txt"));
        assert_eq!(filename_of("attachment; filename*=UTF-8''%ZZ"), None);
        assert_eq!(filename_of("attachment"), None);
        assert_eq!(filename_of("attachment; filename=\"..\""), None);
        let long = format!("attachment; filename={}", "é".repeat(150));
        assert_eq!(filename_of(&long).unwrap().len(), MAX_FILENAME_BYTES);
    }

    #[test]
    fn downloads_share_one_time_budget() {
        use airlock_channel::testing::MockHost;
        let host = MockHost::install();
        host.set_now(1_000);
        let clock = host.clone();
        // Each download "takes" 8 s of the mock clock: the third starts with 4 s left, the fourth with none.
        host.on_http(move |call| {
            let now = now_millis();
            assert!(call.timeout_ms.unwrap() <= DOWNLOAD_TIMEOUT_MS);
            clock.set_now(now + 8_000);
            Ok((200, Default::default(), b"\x89PNG\r\n\x1a\n".to_vec()))
        });
        let item = MediaRef { kind: Kind::Image, url: "https://x.myqcloud.com/a".into(), aeskey: None };
        let fetched = fetch_all(&vec![item; 5], 1024);
        assert_eq!(fetched.attachments.len(), 3);
        assert_eq!(
            host.http_calls().iter().map(|c| c.timeout_ms.unwrap()).collect::<Vec<_>>(),
            [10_000, 10_000, 4_000]
        );
        assert_eq!(
            fetched.notes,
            [
                "[image 4 not attached: no time was left to download it]",
                "[1 more item(s) not attached: at most 4 per message]",
            ]
        );
        assert_eq!(host.attachment_data().len(), 3);
    }

    #[test]
    fn mime_types() {
        assert_eq!(mime_of(b"\x89PNG\r\n\x1a\nrest", None, Kind::File), "image/png");
        assert_eq!(mime_of(b"\xff\xd8\xff\xe0", None, Kind::Image), "image/jpeg");
        assert_eq!(mime_of(b"RIFF\0\0\0\0WEBPVP8 ", None, Kind::Image), "image/webp");
        assert_eq!(mime_of(b"%PDF-1.7", Some("x.bin"), Kind::File), "application/pdf");
        assert_eq!(mime_of(b"hello", Some("notes.TXT"), Kind::File), "text/plain");
        assert_eq!(mime_of(b"hello", None, Kind::File), "application/octet-stream");
        assert_eq!(mime_of(b"????", None, Kind::Image), "image/jpeg");
        assert_eq!(extension_of("image/png"), ".png");
    }
}
