"""Host capabilities: one module per host function family, each with its config, per-channel state and
per-callback buffers. Capabilities do not import each other; ``channels.callstate`` composes them."""
