//! Messages with files (Discord docs, "Reference" > "Uploading Files"): `multipart/form-data` with the JSON body in
//! a `payload_json` part and each file in a `files[n]` part (its filename and content type), the body's
//! `attachments` naming them as `{"id": n, "filename": ...}`. Discord takes at most [`MAX_FILES`] files per message.

use airlock_channel::{http, Attachment};
use serde_json::{json, Value};

/// Discord: at most 10 files per message.
pub const MAX_FILES: usize = 10;

/// A header value cannot carry CR, LF or a quote; anything else of the name is kept.
fn safe_filename(name: &str) -> String {
    let cleaned: String = name.chars().map(|c| if c.is_control() || c == '"' || c == '\\' { '_' } else { c }).collect();
    if cleaned.is_empty() {
        "file".into()
    } else {
        cleaned
    }
}

fn safe_mime(mime: &str) -> &str {
    let ok = !mime.is_empty() && mime.len() <= 127 && mime.bytes().all(|b| b.is_ascii_graphic() && b != b'"');
    if ok {
        mime
    } else {
        "application/octet-stream"
    }
}

/// A boundary that occurs in no part's bytes (RFC 2046: it must not appear inside the encapsulated parts).
fn boundary(parts: &[&[u8]]) -> String {
    let mut n: u64 = 0;
    loop {
        let candidate = format!("airlock-discord-{n:016x}");
        let b = candidate.as_bytes();
        if !parts.iter().any(|p| p.windows(b.len()).any(|w| w == b)) {
            return candidate;
        }
        n += 1;
    }
}

/// The request `req` with `body` as `payload_json` and `files` as `files[0..]` (multipart). Without files, a plain
/// JSON request.
pub fn with_files(req: http::Request, mut body: Value, files: &[Attachment]) -> http::Request {
    if files.is_empty() {
        return req.json(&body);
    }
    let described: Vec<Value> =
        files.iter().enumerate().map(|(i, f)| json!({"id": i, "filename": safe_filename(&f.filename)})).collect();
    body["attachments"] = Value::Array(described);
    let payload = body.to_string();
    let mut parts: Vec<&[u8]> = vec![payload.as_bytes()];
    parts.extend(files.iter().map(|f| f.data.as_slice()));
    let b = boundary(&parts);
    let mut out = Vec::new();
    out.extend_from_slice(
        format!(
            "--{b}\r\nContent-Disposition: form-data; name=\"payload_json\"\r\nContent-Type: application/json\r\n\r\n"
        )
        .as_bytes(),
    );
    out.extend_from_slice(payload.as_bytes());
    for (i, f) in files.iter().enumerate() {
        out.extend_from_slice(
            format!(
                "\r\n--{b}\r\nContent-Disposition: form-data; name=\"files[{i}]\"; filename=\"{}\"\r\nContent-Type: {}\r\n\r\n",
                safe_filename(&f.filename),
                safe_mime(&f.mime_type)
            )
            .as_bytes(),
        );
        out.extend_from_slice(&f.data);
    }
    out.extend_from_slice(format!("\r\n--{b}--\r\n").as_bytes());
    req.header("Content-Type", &format!("multipart/form-data; boundary={b}")).body(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundary_avoids_the_bytes_and_names_are_cleaned() {
        let data = b"xx airlock-discord-0000000000000000 yy".to_vec();
        assert_eq!(boundary(&[&data]), "airlock-discord-0000000000000001");
        assert_eq!(safe_filename("a\"b\r\n.txt"), "a_b__.txt");
        assert_eq!(safe_mime("text/plain\r\nX: y"), "application/octet-stream");
    }
}
