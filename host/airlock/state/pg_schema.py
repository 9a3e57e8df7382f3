"""The PostgreSQL state schema, as numbered migrations (``migrations``). Append new steps; never edit one.

Times are Unix seconds in ``double precision`` (the same numbers the SQLite backends store); JSON written by
guests is kept as ``text`` exactly as received (a guest's metadata is echoed back to it byte for byte).
"""

from __future__ import annotations

from .migrations import Migration

MESSAGE_LOG = """
CREATE TABLE workspace (
    channel TEXT NOT NULL, path TEXT NOT NULL, value TEXT NOT NULL, updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (channel, path)
);
CREATE TABLE inbound (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    instance TEXT NOT NULL,
    user_id TEXT NOT NULL,
    user_name TEXT,
    thread_id TEXT,
    content TEXT NOT NULL,
    metadata_json TEXT NOT NULL,
    attachments_json TEXT NOT NULL,
    agent TEXT NOT NULL,
    session_key TEXT NOT NULL,
    conversation TEXT NOT NULL,
    matched_on TEXT NOT NULL,
    dedupe_key TEXT,
    received_at DOUBLE PRECISION NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('ready', 'leased', 'acked')),
    attempts INTEGER NOT NULL DEFAULT 0,
    lease_until DOUBLE PRECISION,
    lease_token TEXT,
    acked_at DOUBLE PRECISION
);
CREATE INDEX inbound_open ON inbound (agent, seq) WHERE state <> 'acked';
CREATE INDEX inbound_acked ON inbound (acked_at) WHERE state = 'acked';
CREATE INDEX inbound_state ON inbound (state, seq);
CREATE TABLE dedupe (
    instance TEXT NOT NULL, key TEXT NOT NULL, seen_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (instance, key)
);
CREATE INDEX dedupe_seen ON dedupe (seen_at);
CREATE TABLE outbox (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    instance TEXT NOT NULL,
    conversation TEXT NOT NULL,
    kind TEXT NOT NULL,
    in_reply_to TEXT,
    payload_json TEXT NOT NULL,
    idempotency_key TEXT UNIQUE,
    state TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at DOUBLE PRECISION NOT NULL,
    last_error TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX outbox_pending ON outbox (conversation, seq) WHERE state = 'pending';
CREATE INDEX outbox_state ON outbox (state, seq)
"""

LEASES = """
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    token BIGINT NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    acquired_at DOUBLE PRECISION NOT NULL
)
"""

# ``rowid``: insertion order, named as SQLite's implicit column so that the store's SQL runs on both engines.
PAIRING = """
CREATE TABLE pairing_requests (
    rowid BIGINT GENERATED ALWAYS AS IDENTITY,
    channel TEXT NOT NULL,
    external_id TEXT NOT NULL,
    code TEXT NOT NULL,
    meta_json TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (channel, external_id)
);
CREATE UNIQUE INDEX pairing_requests_code ON pairing_requests (channel, code);
CREATE TABLE paired (
    channel TEXT NOT NULL,
    external_id TEXT NOT NULL,
    owner_id TEXT NOT NULL,
    paired_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (channel, external_id)
)
"""

# Ciphertexts only (stores.secrets_pg): urlsafe base64 of nonce || AES-256-GCM ciphertext + tag.
SECRETS = """
CREATE TABLE secrets (
    name TEXT PRIMARY KEY,
    ciphertext TEXT NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE secret_key_check (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    blob TEXT NOT NULL
)
"""

REPLAY = """
CREATE TABLE replay_seen (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (scope, key)
)
"""

# World 0.2.0: the platform's id of the message a sent reply became (edits and reactions name it).
PLATFORM_IDS = """
ALTER TABLE outbox ADD COLUMN platform_message_id TEXT
"""

BUS = """
ALTER TABLE inbound ADD COLUMN bus_epoch TEXT, ADD COLUMN bus_id TEXT;
CREATE INDEX inbound_open_seq ON inbound (seq) WHERE state <> 'acked'
"""
"""``messages.redisbus``: the Redis epoch an entry was published in (NULL: not yet) and its stream id."""

# A due outbox entry is claimed by one node's sender until ``claim_until`` (messages.postgres.due_outbox): two
# nodes never send one reply twice; a node that dies mid-send leaves a claim that expires.
OUTBOX_CLAIMS = """
ALTER TABLE outbox ADD COLUMN claim_until DOUBLE PRECISION
"""

# One row per node of the cluster (state.nodes): who it is, where it listens, when it last said it is alive.
NODES = """
CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    urls_json TEXT NOT NULL,
    version TEXT NOT NULL,
    started_at DOUBLE PRECISION NOT NULL,
    heartbeat_at DOUBLE PRECISION NOT NULL,
    stopped_at DOUBLE PRECISION
)
"""

# Channels installed once for the cluster (state.cluster): each node writes them into its home at start.
CLUSTER_CHANNELS = """
CREATE TABLE cluster_channels (
    name TEXT PRIMARY KEY,
    component BYTEA NOT NULL,
    capabilities TEXT NOT NULL,
    provenance TEXT,
    version TEXT NOT NULL,
    digest TEXT NOT NULL,
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    updated_at DOUBLE PRECISION NOT NULL
)
"""

# The agents registry of the whole cluster (stores.agents: the SQL of its SQLite schema, on both engines).
AGENTS = """
CREATE TABLE agents (
    name TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    push_url TEXT,
    push_secret_name TEXT,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE idempotency (
    agent TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status INTEGER NOT NULL,
    body TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (agent, key)
);
CREATE INDEX idempotency_age ON idempotency (created_at);
CREATE TABLE grants (
    agent TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    granted_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (agent, sha256)
);
CREATE INDEX grants_age ON grants (granted_at)
"""

# Attachment blobs shared by the nodes (messages.blobs_pg): SHA-256 name, bytes, size, last put (Unix seconds).
BLOBS = """
CREATE TABLE blobs (
    sha256 TEXT PRIMARY KEY,
    data BYTEA NOT NULL,
    size BIGINT NOT NULL,
    touched_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX blobs_touched ON blobs (touched_at)
"""

# Channels removed from the cluster (state.cluster): a node that was down at the removal removes its copy at start.
CLUSTER_REMOVED = """
CREATE TABLE cluster_removed (
    name TEXT PRIMARY KEY,
    removed_at DOUBLE PRECISION NOT NULL
)
"""

# Emit rate windows shared by every node (capabilities.emit_shared): UNLOGGED, since a window needs no durability
# (one process keeps it in memory); a crash of the database empties them, which only restarts the windows.
EMIT_WINDOWS = """
CREATE UNLOGGED TABLE emit_events (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    n INTEGER NOT NULL,
    in_minute INTEGER NOT NULL
);
CREATE INDEX emit_events_by_time ON emit_events (channel, in_minute, at);
CREATE UNLOGGED TABLE emit_totals (channel TEXT PRIMARY KEY, minute BIGINT NOT NULL, hour BIGINT NOT NULL)
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "message log, durable workspace, dedupe keys, outbox", MESSAGE_LOG),
    Migration(2, "leases with fencing tokens (state.leases)", LEASES),
    Migration(3, "pairing requests and paired senders (stores.pairing)", PAIRING),
    Migration(4, "encrypted secrets and the master key check (stores.secrets_pg)", SECRETS),
    Migration(5, "webhook replay caches shared by the nodes (state.replay)", REPLAY),
    Migration(6, "platform message ids of sent replies (airlock:channel@0.2.0 delivery)", PLATFORM_IDS),
    Migration(7, "publication of inbound entries to the Redis bus (messages.redisbus)", BUS),
    Migration(8, "outbox claims: one node sends a due entry (messages.postgres)", OUTBOX_CLAIMS),
    Migration(9, "the node registry of a cluster (state.nodes)", NODES),
    Migration(10, "channels installed once for the cluster, with their switch (state.cluster)", CLUSTER_CHANNELS),
    Migration(11, "the agents registry shared by the nodes (stores.agents)", AGENTS),
    Migration(12, "attachment blobs shared by the nodes (messages.blobs_pg)", BLOBS),
    Migration(13, "tombstones of channels removed from the cluster (state.cluster)", CLUSTER_REMOVED),
    Migration(14, "emit rate windows shared by the nodes (capabilities.emit_shared)", EMIT_WINDOWS),
)
