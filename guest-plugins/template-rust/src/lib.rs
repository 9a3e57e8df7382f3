//! Template Rust channel (work in progress): a JSON webhook that emits messages for the agent.
use airlock_channel::{emit, export_channel, AgentResponse, Channel, ChannelConfig, Config, Endpoint, Request, Response, Result};

struct Template;

impl Channel for Template {
    fn on_start(_config: Config) -> Result<ChannelConfig> {
        Ok(ChannelConfig::new("Template (Rust)").endpoint(Endpoint::post("/webhook/template-rust")))
    }

    fn on_http_request(req: &Request) -> Response {
        match req.json::<serde_json::Value>() {
            Ok(v) => {
                let user = v["user"].as_str().unwrap_or("unknown").to_string();
                let text = v["text"].as_str().unwrap_or("").to_string();
                emit::Message::new(user, text).emit();
                Response::json(200, &serde_json::json!({"ok": true}))
            }
            Err(_) => Response::bad_request("expected JSON"),
        }
    }

    fn on_respond(_response: &AgentResponse) -> Result<()> {
        Ok(())
    }
}

export_channel!(Template);
