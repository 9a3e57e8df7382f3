// @ts-check
// An Airlock agent in plain JavaScript (Node 18+; no packages): long-polls the agent API and answers with
// "echo: <content>". Messages a user sent in a row (several of one conversation in one lease) get one answer, to the
// newest, echoing them all ("echo: first / second"); the older ones are acknowledged together in one request
// (POST /v1/messages/ack).
// Register it first: `airlock agents add echo-js` prints its token.
//   AIRLOCK_API=http://127.0.0.1:8789 AIRLOCK_TOKEN=... node examples/agent.mjs
// (The same agent in TypeScript, compiled with the pinned `tsc`: examples/agent.ts.)
const api = process.env.AIRLOCK_API ?? "http://127.0.0.1:8789";
const headers = { Authorization: `Bearer ${process.env.AIRLOCK_TOKEN}`, "Content-Type": "application/json" };
const maxReplies = Number(process.env.MAX_REPLIES ?? Infinity); // tests stop after a few

/** @typedef {{id: string, lease_token: string, channel: string, user_id: string, content: string,
 *   conversation: string}} Message */
/** @typedef {{id: string, state?: "acked", error?: {status: number, message: string}}} AckResult */

/** @param {string} method @param {string} path @param {object} [body] @param {string} [key] */
async function call(method, path, body, key) {
  const h = key ? { ...headers, "Idempotency-Key": key } : headers;
  const res = await fetch(api + path, { method, headers: h, body: body && JSON.stringify(body) });
  if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status} ${await res.text()}`);
  return res.json();
}

let replies = 0;
while (replies < maxReplies) {
  /** @type {{messages: Message[]}} */
  const { messages } = await call("GET", "/v1/messages?wait=30&limit=10");
  /** @type {Map<string, Message>} */
  const newest = new Map();
  const texts = new Map();
  for (const m of messages) { // a lease is oldest first: the last one stays
    newest.set(m.conversation, m);
    texts.set(m.conversation, [...(texts.get(m.conversation) ?? []), m.content]);
  }
  const older = messages.filter((m) => newest.get(m.conversation) !== m);
  if (older.length > 0) { // up to 100 in one request; each result says acked, or why not (404, 409)
    const items = older.map((m) => ({ id: m.id, lease_token: m.lease_token }));
    /** @type {{results: AckResult[]}} */
    const { results } = await call("POST", "/v1/messages/ack", { messages: items });
    for (const r of results) if (r.error) console.error(`not acknowledged ${r.id}: ${r.error.message}`);
    console.log(`acknowledged ${older.length} older message(s) in one request`);
  }
  for (const m of newest.values()) {
    await call("POST", `/v1/messages/${m.id}/status`, { status: "thinking" });
    const said = (texts.get(m.conversation) ?? [m.content]).join(" / ");
    const body = { text: `echo: ${said}`, lease_token: m.lease_token };
    const { outbox_id } = await call("POST", `/v1/messages/${m.id}/reply`, body, `reply-${m.id}`);
    console.log(`replied to ${m.id} (${m.channel}/${m.user_id}): outbox ${outbox_id}`);
    replies += 1;
  }
}
