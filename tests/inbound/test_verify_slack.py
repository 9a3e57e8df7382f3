"""Slack request signing, checked against slack_sdk's own signer and Slack's published worked example."""

from __future__ import annotations

import json

import pytest
from slack_sdk.signature import SignatureVerifier
from webhook_signing import NOW, Secrets, request, slack_headers

from airlock.inbound.verifiers import Accept, Reject, ReplayCache, SlackVerifier

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BODY = json.dumps({"type": "event_callback", "event_id": "Ev1", "event": {"type": "message", "text": "hi"}}).encode()
TS = int(NOW)


def verifier(secrets: Secrets | None = None, replay: ReplayCache | None = None) -> SlackVerifier:
    store = secrets if secrets is not None else Secrets(slack_signing_secret=SECRET)
    return SlackVerifier("slack", store.lookup, secret_name="slack_signing_secret", replay=replay)


def test_slack_documented_example_verifies() -> None:
    # Data: the worked example in Slack's "Verifying requests from Slack" (docs.slack.dev).
    body = (b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
            b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
            b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskX"
            b"aIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c")
    headers = {"X-Slack-Request-Timestamp": "1531420618",
               "X-Slack-Signature": "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"}
    assert verifier().verify(request(body, headers, now=1531420618 + 30)) == Accept(validated=True)


def test_good_signature_from_slack_sdk_accepted_and_agrees_with_slack_sdk() -> None:
    headers = slack_headers(SECRET, BODY, TS)
    assert verifier().verify(request(BODY, headers)) == Accept(validated=True)

    class Clock:
        def now(self) -> float:
            return NOW

    assert SignatureVerifier(SECRET, clock=Clock()).is_valid_request(BODY, headers)


def test_header_names_are_case_insensitive() -> None:
    headers = {k.lower(): v for k, v in slack_headers(SECRET, BODY, TS).items()}
    assert isinstance(verifier().verify(request(BODY, headers)), Accept)


@pytest.mark.parametrize("drop", ["X-Slack-Signature", "X-Slack-Request-Timestamp"])
def test_missing_header_is_401(drop: str) -> None:
    headers = slack_headers(SECRET, BODY, TS)
    del headers[drop]
    verdict = verifier().verify(request(BODY, headers))
    assert isinstance(verdict, Reject) and verdict.status == 401


@pytest.mark.parametrize("sig", ["", "v1=" + "a" * 64, "v0=" + "a" * 63, "v0=" + "g" * 64, "a" * 67])
def test_malformed_signature_is_401(sig: str) -> None:
    headers = slack_headers(SECRET, BODY, TS) | {"X-Slack-Signature": sig}
    verdict = verifier().verify(request(BODY, headers))
    assert isinstance(verdict, Reject) and verdict.status == 401


@pytest.mark.parametrize("ts", ["", "12.5", "-1", "abc", "1" * 13])
def test_malformed_timestamp_is_401(ts: str) -> None:
    headers = slack_headers(SECRET, BODY, ts)
    verdict = verifier().verify(request(BODY, headers))
    assert isinstance(verdict, Reject) and verdict.status == 401


@pytest.mark.parametrize("offset", [-301, 301, -86_400, 86_400])
def test_stale_or_future_timestamp_is_403_even_when_signed(offset: int) -> None:
    headers = slack_headers(SECRET, BODY, TS + offset)
    verdict = verifier().verify(request(BODY, headers))
    assert isinstance(verdict, Reject) and verdict.status == 403
    assert "window 300 s" in verdict.reason


@pytest.mark.parametrize("offset", [-300, 300])
def test_timestamp_at_the_window_edge_accepted(offset: int) -> None:
    assert isinstance(verifier().verify(request(BODY, slack_headers(SECRET, BODY, TS + offset))), Accept)


def test_bad_signature_wrong_key_and_tampered_body_are_403() -> None:
    v = verifier()
    wrong_key = slack_headers("another-secret", BODY, TS)
    tampered = slack_headers(SECRET, BODY, TS)
    flipped = slack_headers(SECRET, BODY, TS)
    last = flipped["X-Slack-Signature"][-1]
    flipped["X-Slack-Signature"] = flipped["X-Slack-Signature"][:-1] + ("0" if last != "0" else "1")
    for body, headers in ((BODY, wrong_key), (BODY + b" ", tampered), (BODY, flipped)):
        verdict = v.verify(request(body, headers))
        assert isinstance(verdict, Reject) and verdict.status == 403


def test_signature_with_the_timestamp_changed_is_403() -> None:
    headers = slack_headers(SECRET, BODY, TS) | {"X-Slack-Request-Timestamp": str(TS + 1)}
    verdict = verifier().verify(request(BODY, headers))
    assert isinstance(verdict, Reject) and verdict.status == 403


def test_replay_within_window_is_403_and_reason_names_no_signature() -> None:
    v = verifier()
    headers = slack_headers(SECRET, BODY, TS)
    assert isinstance(v.verify(request(BODY, headers)), Accept)
    verdict = v.verify(request(BODY, headers, now=NOW + 10))
    assert isinstance(verdict, Reject) and verdict.status == 403 and "replay" in verdict.reason
    assert headers["X-Slack-Signature"] not in verdict.reason and SECRET not in verdict.reason
    # The same signature later is stale, not a fresh request.
    later = v.verify(request(BODY, headers, now=NOW + 301))
    assert isinstance(later, Reject) and later.status == 403 and "old" in later.reason


def test_a_rejected_signature_is_not_remembered() -> None:
    cache = ReplayCache(4)
    v = verifier(replay=cache)
    bad = slack_headers("wrong", BODY, TS)
    v.verify(request(BODY, bad))
    assert len(cache) == 0


def test_missing_stored_secret_rejects_and_secret_set_later_applies() -> None:
    store = Secrets()
    v = verifier(store)
    headers = slack_headers(SECRET, BODY, TS)
    verdict = v.verify(request(BODY, headers))
    assert isinstance(verdict, Reject) and verdict.status == 403 and "not stored" in verdict.reason
    store["slack_signing_secret"] = ""
    assert isinstance(v.verify(request(BODY, headers)), Reject)  # empty counts as missing
    store["slack_signing_secret"] = SECRET  # read on every request: no restart needed
    assert v.verify(request(BODY, headers)) == Accept(validated=True)


def test_repeated_signature_header_is_401() -> None:
    headers = slack_headers(SECRET, BODY, TS)
    pairs = [*headers.items(), ("X-Slack-Signature", headers["X-Slack-Signature"])]
    verdict = verifier().verify(request(BODY, pairs))
    assert isinstance(verdict, Reject) and verdict.status == 401
