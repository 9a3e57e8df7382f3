//! The tenant access token, cached in the workspace.
//!
//! `POST /open-apis/auth/v3/tenant_access_token/internal` with `{"app_id", "app_secret"}` returns
//! `{"code": 0, "tenant_access_token": "t-...", "expire": <seconds>}` (Feishu docs, "Get
//! tenant_access_token (self-built app)"; tokens live 2 hours). The channel never holds the app secret:
//! it sends the placeholders `{FEISHU_APP_ID}` / `{FEISHU_APP_SECRET}` in the body and lists them in
//! `X-Airlock-Body-Secrets`, and the host fills them in. What is cached (`state/tenant_token`, durable) is
//! only the token the platform answered and its expiry; the host redacts the secrets from the response.

use airlock_channel::{bail, http, info, now_millis, workspace, Context, Result};
use serde::{Deserialize, Serialize};

pub const TOKEN_PATH: &str = "state/tenant_token";
const TOKEN_ENDPOINT: &str = "/open-apis/auth/v3/tenant_access_token/internal";
const BODY: &str = r#"{"app_id":"{FEISHU_APP_ID}","app_secret":"{FEISHU_APP_SECRET}"}"#;
/// Refresh this long before the expiry (at most a quarter of the token's lifetime), so a token never
/// expires between being read here and reaching Feishu.
const REFRESH_MARGIN_MS: u64 = 60_000;
const TIMEOUT_MS: u32 = 10_000;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedToken {
    pub token: String,
    /// Wall-clock milliseconds after which the token is no longer used.
    pub refresh_after_ms: u64,
}

#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    code: i64,
    #[serde(default)]
    msg: String,
    #[serde(default)]
    tenant_access_token: Option<String>,
    #[serde(default)]
    expire: Option<u64>,
}

/// The cached token if still fresh, else a new one (cached for later callbacks of the same run and
/// across restarts; the workspace keeps it only if this callback succeeds).
pub fn tenant_token(api_base: &str) -> Result<String> {
    if let Ok(Some(cached)) = workspace::read_json::<CachedToken>(TOKEN_PATH) {
        if now_millis() < cached.refresh_after_ms && !cached.token.is_empty() {
            return Ok(cached.token);
        }
    }
    fetch(api_base)
}

/// Forget the cached token (Feishu said it is invalid or expired).
pub fn forget() -> Result<()> {
    workspace::write(TOKEN_PATH, "null")
}

fn fetch(api_base: &str) -> Result<String> {
    let resp = http::post(&format!("{api_base}{TOKEN_ENDPOINT}"))
        .header("Content-Type", "application/json; charset=utf-8")
        .body(BODY)
        .body_secrets(&["FEISHU_APP_ID", "FEISHU_APP_SECRET"])
        .timeout_ms(TIMEOUT_MS)
        .send()?;
    let answer: TokenAnswer = resp.json().context("tenant_access_token")?;
    if answer.code != 0 {
        bail!("tenant_access_token refused: code {} ({})", answer.code, answer.msg);
    }
    let token = answer.tenant_access_token.filter(|t| !t.is_empty()).context("tenant_access_token: no token")?;
    let lifetime_ms = answer.expire.unwrap_or(0).saturating_mul(1000);
    let margin = REFRESH_MARGIN_MS.min(lifetime_ms / 4);
    let cached = CachedToken { token: token.clone(), refresh_after_ms: now_millis() + lifetime_ms - margin };
    workspace::write_json(TOKEN_PATH, &cached)?;
    info!("tenant access token obtained (valid {} s)", lifetime_ms / 1000);
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_channel::testing::MockHost;
    use std::collections::BTreeMap;

    #[test]
    fn fetched_once_then_cached_until_the_margin() {
        let host = MockHost::install();
        host.set_now(1_000_000);
        host.on_http(|call| {
            assert_eq!(call.body.as_deref(), Some(BODY.as_bytes()));
            assert_eq!(call.headers["X-Airlock-Body-Secrets"], "FEISHU_APP_ID, FEISHU_APP_SECRET");
            Ok((200, BTreeMap::new(), br#"{"code":0,"msg":"ok","tenant_access_token":"t-1","expire":7200}"#.to_vec()))
        });
        assert_eq!(tenant_token("https://open.feishu.cn").unwrap(), "t-1");
        assert_eq!(tenant_token("https://open.feishu.cn").unwrap(), "t-1");
        assert_eq!(host.http_calls().len(), 1);
        assert_eq!(host.http_calls()[0].url, "https://open.feishu.cn/open-apis/auth/v3/tenant_access_token/internal");
        let cached: CachedToken = serde_json::from_str(&host.workspace_get(TOKEN_PATH).unwrap()).unwrap();
        assert_eq!(cached.refresh_after_ms, 1_000_000 + 7_200_000 - 60_000);
        host.set_now(cached.refresh_after_ms);
        tenant_token("https://open.feishu.cn").unwrap();
        assert_eq!(host.http_calls().len(), 2);
    }

    #[test]
    fn short_lifetimes_keep_three_quarters() {
        let host = MockHost::install();
        host.set_now(0);
        host.on_http(|_| Ok((200, BTreeMap::new(), br#"{"code":0,"tenant_access_token":"t-2","expire":8}"#.to_vec())));
        tenant_token("https://open.feishu.cn").unwrap();
        let cached: CachedToken = serde_json::from_str(&host.workspace_get(TOKEN_PATH).unwrap()).unwrap();
        assert_eq!(cached.refresh_after_ms, 6_000);
    }

    #[test]
    fn refusal_is_an_error_and_nothing_is_cached() {
        let host = MockHost::install();
        host.on_http(|_| Ok((400, BTreeMap::new(), br#"{"code":10014,"msg":"app secret invalid"}"#.to_vec())));
        let err = tenant_token("https://open.feishu.cn").unwrap_err().to_string();
        assert!(err.contains("10014"), "{err}");
        assert_eq!(host.workspace_get(TOKEN_PATH), None);
    }
}
