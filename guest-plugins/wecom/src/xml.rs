//! The fields of a WeCom callback message: a flat XML document `<xml><Name>value</Name>...</xml>` whose values
//! are text or one CDATA section (WeCom docs, "接收消息" samples). The host has already checked the signature and
//! decrypted it, but its text is what a WeCom user typed, so the parser is strict and small: no DTD, no
//! processing instructions except the XML declaration, no nesting below the fields, no repeated field, at most
//! [`MAX_FIELDS`] fields; the five predefined entities and numeric character references are decoded outside
//! CDATA.

use std::collections::BTreeMap;

use airlock_channel::{bail, Result};

/// Most fields one message may have (a text message has 7; events a few more).
pub const MAX_FIELDS: usize = 64;

/// `Name -> value` of the document's fields.
pub fn fields(xml: &str) -> Result<BTreeMap<String, String>> {
    let mut rest = xml.trim_start_matches('\u{feff}').trim();
    if rest.starts_with("<?xml") {
        let end = rest.find("?>").map(|i| i + 2).unwrap_or(rest.len());
        rest = rest[end..].trim_start();
    }
    let Some(body) = rest.strip_prefix("<xml>").and_then(|r| r.trim_end().strip_suffix("</xml>")) else {
        bail!("not a WeCom <xml> document");
    };
    let mut out = BTreeMap::new();
    let mut rest = body.trim();
    while !rest.is_empty() {
        let (name, value, after) = field(rest)?;
        if out.len() == MAX_FIELDS {
            bail!("more than {MAX_FIELDS} fields");
        }
        if out.insert(name.to_string(), value).is_some() {
            bail!("field {name} is repeated");
        }
        rest = after.trim_start();
    }
    Ok(out)
}

/// One `<Name>value</Name>` at the start of `text`: the name, the decoded value and what follows.
fn field(text: &str) -> Result<(&str, String, &str)> {
    let Some(open) = text.strip_prefix('<') else { bail!("text outside a field") };
    let Some(end) = open.find('>') else { bail!("unterminated tag") };
    let name = &open[..end];
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        bail!("unsupported tag <{}>", name.chars().take(20).collect::<String>());
    }
    let inner = &open[end + 1..];
    let close = format!("</{name}>");
    if let Some(cdata) = inner.trim_start().strip_prefix("<![CDATA[") {
        let Some(stop) = cdata.find("]]>") else { bail!("unterminated CDATA in {name}") };
        let Some(after) = cdata[stop + 3..].trim_start().strip_prefix(close.as_str()) else {
            bail!("field {name} has more than one CDATA section or is not closed");
        };
        return Ok((name, cdata[..stop].to_string(), after));
    }
    let Some(stop) = inner.find(close.as_str()) else { bail!("field {name} is not closed") };
    let raw = &inner[..stop];
    if raw.contains('<') {
        bail!("field {name} is nested");
    }
    Ok((name, unescape(raw)?, &inner[stop + close.len()..]))
}

fn unescape(raw: &str) -> Result<String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let Some(semi) = rest[amp..].find(';') else { bail!("unterminated entity") };
        let entity = &rest[amp + 1..amp + semi];
        let decoded = match entity {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code = if let Some(hex) = entity.strip_prefix("#x") {
                    u32::from_str_radix(hex, 16).ok()
                } else {
                    entity.strip_prefix('#').and_then(|d| d.parse().ok())
                };
                match code.and_then(char::from_u32) {
                    Some(c) => c,
                    None => bail!("unknown entity &{};", entity.chars().take(12).collect::<String>()),
                }
            }
        };
        out.push(decoded);
        rest = &rest[amp + semi + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The decrypted POST sample of WeCom's "加解密方案说明" test vector (developer.work.weixin.qq.com/document/path/90968).
    const SAMPLE: &str = "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>\n<FromUserName><![CDATA[mycreate]]></FromUserName>\n<CreateTime>1409659813</CreateTime>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[hello]]></Content>\n<MsgId>4561255354251345929</MsgId>\n<AgentID>218</AgentID>\n</xml>";

    #[test]
    fn parses_the_documented_sample() {
        let f = fields(SAMPLE).unwrap();
        assert_eq!(f["FromUserName"], "mycreate");
        assert_eq!(f["Content"], "hello");
        assert_eq!(f["MsgId"], "4561255354251345929");
        assert_eq!(f["AgentID"], "218");
        assert_eq!(f.len(), 7);
    }

    #[test]
    fn cdata_keeps_markup_and_text_decodes_entities() {
        let f = fields(
            "<?xml version=\"1.0\"?><xml><A><![CDATA[<b>&amp;</b> ]]]]></A><B>x &lt;y&gt; &#20320;&#x597D;</B></xml>",
        )
        .unwrap();
        assert_eq!(f["A"], "<b>&amp;</b> ]]");
        assert_eq!(f["B"], "x <y> 你好");
    }

    #[test]
    fn refuses_what_wecom_never_sends() {
        for bad in [
            "<!DOCTYPE x [<!ENTITY e \"a\">]><xml><A>&e;</A></xml>",
            "<xml><A>&e;</A></xml>",
            "<xml><A><B>1</B></A></xml>",
            "<xml><A>1</A><A>2</A></xml>",
            "<xml><A>1</xml>",
            "<xml>text</xml>",
            "<xml><A x=\"1\">1</A></xml>",
            "<xml><A><![CDATA[1]]><![CDATA[2]]></A></xml>",
            "{\"json\": true}",
        ] {
            assert!(fields(bad).is_err(), "{bad}");
        }
        let many: String = (0..=MAX_FIELDS).map(|i| format!("<F{i}>1</F{i}>")).collect();
        assert!(fields(&format!("<xml>{many}</xml>")).is_err());
    }
}
