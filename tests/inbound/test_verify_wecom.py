"""WeCom callback mode: msg_signature, AES-256-CBC with 32-byte padding, receive id. The first tests use the
official test vector of WeCom's developer docs, "加解密方案说明" (https://developer.work.weixin.qq.com/document/
path/90968; the same values are in WeCom's WXBizMsgCrypt samples): Token "QDG6eK", EncodingAESKey
"jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", CorpID "wx5823bf96d3bd56c7"; others encrypt with the test fakes'
builder (tests/fakes/fake_wecom.py, made with ``cryptography``, checked here against the same vector)."""

from __future__ import annotations

from fake_wecom import encrypt_message, sign
from webhook_signing import Secrets, request

from airlock.inbound.verifiers import Accept, Reject, WecomVerifier, build_verifier
from airlock.inbound.verifiers.wecom import decrypt, signature
from airlock.manifest import WebhookSpec

TOKEN = "QDG6eK"
AES_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
CORP_ID = "wx5823bf96d3bd56c7"

# The POST sample of the vector (a text message "hello").
POST_SIGNATURE, POST_TIMESTAMP, POST_NONCE = "477715d11cdb4164915debcba66cb864d751f3e6", "1409659813", "1372623149"
POST_ENCRYPT = (
    "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvuJTs3"
    "TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gs"
    "ijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax"
    "5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGH"
    "BZZIs2pDBS8R07+qN+E7Q=="
)
POST_BODY = (f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><Encrypt><![CDATA[{POST_ENCRYPT}]]></Encrypt>"
             "<AgentID><![CDATA[218]]></AgentID></xml>").encode()
# The URL-check (GET) sample: echostr decrypts to "1616140317555161061".
GET_SIGNATURE, GET_TIMESTAMP, GET_NONCE = "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3", "1409659589", "263014780"
GET_ECHOSTR = "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ=="
NOW = 1409659813.0


def verifier(secrets: Secrets | None = None, *, receive_id: bool = True, optional: bool = False) -> WecomVerifier:
    store = secrets if secrets is not None else Secrets(t=TOKEN, k=AES_KEY, c=CORP_ID)
    return WecomVerifier("wecom", store.lookup, token_name="t", aes_key_name="k",
                         receive_id_name="c" if receive_id else None, receive_id_optional=optional)


def post(body: bytes, sig: str = POST_SIGNATURE, ts: str = POST_TIMESTAMP, nonce: str = POST_NONCE,
         now: float = NOW) -> object:
    return verifier().verify(request(body, query={"msg_signature": sig, "timestamp": ts, "nonce": nonce}, now=now))


def status(verdict: object) -> int:
    assert isinstance(verdict, Reject), verdict
    return verdict.status


def test_official_vector_signature_and_decryption() -> None:
    assert signature(TOKEN, POST_TIMESTAMP, POST_NONCE, POST_ENCRYPT) == POST_SIGNATURE
    message, receive_id = decrypt(AES_KEY, POST_ENCRYPT)
    assert receive_id.decode() == CORP_ID
    assert b"<Content><![CDATA[hello]]></Content>" in message and b"<MsgId>4561255354251345929</MsgId>" in message
    assert decrypt(AES_KEY, GET_ECHOSTR) == (b"1616140317555161061", CORP_ID.encode())
    # The fakes' builder follows the same algorithm: what it encrypts, the host decrypts and signs alike.
    encrypted = encrypt_message(AES_KEY, "<xml>你好</xml>", CORP_ID)
    assert decrypt(AES_KEY, encrypted) == ("<xml>你好</xml>".encode(), CORP_ID.encode())
    assert sign(TOKEN, POST_TIMESTAMP, POST_NONCE, POST_ENCRYPT) == POST_SIGNATURE


def test_official_post_sample_is_accepted_and_decrypted() -> None:
    verdict = post(POST_BODY)
    assert isinstance(verdict, Accept) and verdict.validated
    assert verdict.body is not None and b"<MsgType><![CDATA[text]]></MsgType>" in verdict.body
    # The Encrypt element without CDATA is the same request.
    bare = POST_BODY.replace(f"<![CDATA[{POST_ENCRYPT}]]>".encode(), POST_ENCRYPT.encode())
    assert isinstance(post(bare), Accept)


def test_official_url_check_gives_the_guest_the_plain_echostr() -> None:
    query = {"msg_signature": GET_SIGNATURE, "timestamp": GET_TIMESTAMP, "nonce": GET_NONCE, "echostr": GET_ECHOSTR}
    verdict = verifier().verify(request(method="GET", query=query, now=float(GET_TIMESTAMP)))
    assert verdict == Accept(validated=True, body=b"1616140317555161061")
    assert status(verifier().verify(request(method="GET", query=query | {"echostr": GET_ECHOSTR[4:]},
                                            now=float(GET_TIMESTAMP)))) == 403
    no_echo = {k: v for k, v in query.items() if k != "echostr"}
    assert status(verifier().verify(request(method="GET", query=no_echo, now=float(GET_TIMESTAMP)))) == 401


def test_wrong_signature_stale_timestamp_and_malformed_queries() -> None:
    assert status(post(POST_BODY, sig="0" * 40)) == 403
    assert status(post(POST_BODY, sig="zz")) == 401
    assert status(post(POST_BODY, now=NOW + 301)) == 403
    assert status(post(POST_BODY, ts="soon")) == 401
    assert status(verifier().verify(request(POST_BODY, query={"timestamp": POST_TIMESTAMP}, now=NOW))) == 401
    assert status(verifier().verify(request(POST_BODY, method="PUT", now=NOW))) == 403


def test_body_must_hold_exactly_one_base64_encrypt() -> None:
    assert status(post(b"<xml><ToUserName>x</ToUserName></xml>")) == 401
    assert status(post(POST_BODY.replace(b"</xml>", b"<Encrypt>QUFB</Encrypt></xml>"))) == 401
    assert status(post(b'<!DOCTYPE x [<!ENTITY e "a">]><xml><Encrypt>&e;</Encrypt></xml>')) == 401


def test_secrets_missing_or_malformed_refuse() -> None:
    incomplete = (Secrets(k=AES_KEY, c=CORP_ID), Secrets(t=TOKEN, c=CORP_ID),
                  Secrets(t=TOKEN, k=AES_KEY[:-1], c=CORP_ID))
    for secrets in incomplete:
        verdict = verifier(secrets).verify(
            request(POST_BODY, query={"msg_signature": POST_SIGNATURE, "timestamp": POST_TIMESTAMP,
                                      "nonce": POST_NONCE}, now=NOW))
        assert status(verdict) == 403


def test_receive_id_must_match_unless_optional_and_unstored() -> None:
    query = {"msg_signature": POST_SIGNATURE, "timestamp": POST_TIMESTAMP, "nonce": POST_NONCE}
    other_corp = Secrets(t=TOKEN, k=AES_KEY, c="ww0000000000000000")
    assert status(verifier(other_corp).verify(request(POST_BODY, query=query, now=NOW))) == 403
    unstored = Secrets(t=TOKEN, k=AES_KEY)
    assert status(verifier(unstored).verify(request(POST_BODY, query=query, now=NOW))) == 403
    assert isinstance(verifier(unstored, optional=True).verify(request(POST_BODY, query=query, now=NOW)), Accept)
    assert isinstance(verifier(unstored, receive_id=False).verify(request(POST_BODY, query=query, now=NOW)), Accept)


def test_factory_builds_it_from_the_capabilities_block() -> None:
    spec = WebhookSpec(scheme="wecom", verification_token_secret_name="t", encrypt_key_secret_name="k",
                       receive_id_secret_name="c")
    built = build_verifier(spec, Secrets().lookup, channel="wecom", optional=frozenset({"c"}))
    assert isinstance(built, WecomVerifier) and built.receive_id_optional and built.aes_key_name == "k"
