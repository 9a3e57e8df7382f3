"""The fake WeCom server API against the request/response samples published in WeCom's developer docs:
"获取access_token" (https://developer.work.weixin.qq.com/document/path/91039) and "发送应用消息" (path/90236, text
message request sample and return sample). The documented requests are sent verbatim (with the fake's own corp id,
secret and agent id where the sample has placeholders) and the answers must carry the documented fields."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from fake_wecom import MAX_TEXT_BYTES, FakeWecom

# path/90236, "文本消息" request sample (agentid 1 as in the sample).
TEXT_SAMPLE = {
    "touser": "UserID1|UserID2|UserID3", "toparty": "PartyID1|PartyID2", "totag": "TagID1 | TagID2",
    "msgtype": "text", "agentid": 1,
    "text": {"content": "你的快递已到，请携带工卡前往邮件中心领取。\n出发前可查看<a href=\"https://work.weixin.qq.com\">"
                        "邮件中心视频实况</a>，聪明避开排队。"},
    "safe": 0, "enable_id_trans": 0, "enable_duplicate_check": 0, "duplicate_check_interval": 1800,
}
# path/90236, "返回示例" fields (response_code only for interactive template cards).
SEND_ANSWER_FIELDS = {"errcode", "errmsg", "invaliduser", "invalidparty", "invalidtag", "msgid"}
# path/91039, "返回结果" fields.
TOKEN_ANSWER_FIELDS = {"errcode", "errmsg", "access_token", "expires_in"}


@pytest.fixture
async def fake() -> AsyncIterator[FakeWecom]:
    async with FakeWecom(agent_id=1) as f:
        yield f


async def get_token(fake: FakeWecom, corpid: str, corpsecret: str) -> Any:
    async with aiohttp.ClientSession() as s, s.get(f"{fake.base_url}/cgi-bin/gettoken",
                                                   params={"corpid": corpid, "corpsecret": corpsecret}) as r:
        assert r.status == 200
        return await r.json()


async def send(fake: FakeWecom, token: str, body: Any) -> Any:
    async with aiohttp.ClientSession() as s, s.post(f"{fake.base_url}/cgi-bin/message/send",
                                                    params={"access_token": token}, json=body) as r:
        assert r.status == 200  # errors are in errcode
        return await r.json()


async def test_gettoken_answers_the_documented_fields(fake: FakeWecom) -> None:
    answer = await get_token(fake, fake.corp_id, fake.corp_secret)
    assert set(answer) == TOKEN_ANSWER_FIELDS
    assert (answer["errcode"], answer["errmsg"], answer["expires_in"]) == (0, "ok", 7200)
    assert (await get_token(fake, "wwnotmycorp0000000", fake.corp_secret))["errcode"] == 40013
    assert (await get_token(fake, fake.corp_id, "wrong"))["errcode"] == 40001


async def test_documented_text_sample_is_sent(fake: FakeWecom) -> None:
    token = (await get_token(fake, fake.corp_id, fake.corp_secret))["access_token"]
    answer = await send(fake, token, TEXT_SAMPLE)
    assert set(answer) == SEND_ANSWER_FIELDS and (answer["errcode"], answer["errmsg"]) == (0, "ok")
    assert fake.sent == [TEXT_SAMPLE]


async def test_token_and_content_errors(fake: FakeWecom) -> None:
    assert (await send(fake, "no-such-token", TEXT_SAMPLE))["errcode"] == 40014
    token = (await get_token(fake, fake.corp_id, fake.corp_secret))["access_token"]
    too_long = {**TEXT_SAMPLE, "text": {"content": "x" * (MAX_TEXT_BYTES + 1)}}
    assert (await send(fake, token, too_long))["errcode"] == 45002
    assert (await send(fake, token, {**TEXT_SAMPLE, "agentid": 2}))["errcode"] == 40056
    fake.expire_tokens()
    assert (await send(fake, token, TEXT_SAMPLE))["errcode"] == 42001
    assert fake.sent == [] and fake.send_codes == [40014, 45002, 40056, 42001]
