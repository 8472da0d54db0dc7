"""The LLM judge against a fake OpenAI-compatible server on loopback."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import polars as pl
import pytest

from saeprobe.errors import ConfigError
from saeprobe.regularization.llm_judge import LLMJudgeConfig, llm_judge, parse_decision


class FakeChat(BaseHTTPRequestHandler):
    """Explains spans about signatures as such, about football as football, says Cannot
    Tell to anything else; judges signatures irrelevant and football relevant."""

    status = 200
    requests: list[dict] = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeChat.requests.append({"body": body, "auth": self.headers.get("Authorization")})
        prompt = body["messages"][0]["content"]
        if "Explanation:" in prompt:
            if "iPhone" in prompt:
                content = "email signatures naming a device"
            elif "goal" in prompt:
                content = "football scores"
            else:
                content = "Cannot Tell."
        elif "signatures" in prompt:
            content = "Irrelevant to spam. Final Decision: [[ No ]]"
        elif "football" in prompt:
            content = "Final Decision: [[ Probably ]]"
        else:
            content = "no idea"
        payload = json.dumps({"choices": [{"message": {"content": content}}]}).encode()
        self.send_response(FakeChat.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    FakeChat.status = 200
    FakeChat.requests = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeChat)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()


CARDS = pl.DataFrame(
    {
        "latent": [3, 3, 7, 7, 9],
        "rank": [0, 1, 0, 1, 0],
        "context": [
            "Sent from my «iPhone» and more",
            "via «iPhone»",
            "the «goal» in the 90th",
            "a late «goal»",
            "a «random» thing",
        ],
    }
)


def config(url: str) -> LLMJudgeConfig:
    return LLMJudgeConfig(base_url=url, model="fake", task="Is this SMS spam?")


def test_llm_judge_follows_the_papers_decisions_and_caches_every_answer(
    server, tmp_path, monkeypatch
):
    monkeypatch.setenv("OPENAI_API_KEY", "secret")
    cache = tmp_path / "answers.json"
    table = llm_judge(CARDS, config(server), cache)
    decisions = dict(zip(table["latent"].to_list(), table["decision"].to_list(), strict=True))
    assert decisions == {3: "unintended", 7: "intended"}  # 9: Cannot Tell, left out
    assert FakeChat.requests[0]["auth"] == "Bearer secret"
    assert "Span 1: Sent from my iPhone" in FakeChat.requests[0]["body"]["messages"][0]["content"]
    sent = len(FakeChat.requests)
    assert sent == 5  # three explanations, two judgements
    again = llm_judge(CARDS, config("http://127.0.0.1:9/v1"), cache)  # nothing listens there
    assert again.equals(table)
    assert len(FakeChat.requests) == sent


def test_a_failing_endpoint_names_itself_and_leaves_no_partial_cache(server, tmp_path):
    FakeChat.status = 500
    cache = tmp_path / "answers.json"
    with pytest.raises(ConfigError, match="HTTP 500"):
        llm_judge(CARDS, config(server), cache)
    assert not cache.exists()
    with pytest.raises(ConfigError, match="cannot reach http://127.0.0.1:9/v1"):
        llm_judge(CARDS, config("http://127.0.0.1:9/v1"), cache)
    assert not cache.exists()


def test_decisions_are_read_from_the_last_bracketed_answer():
    assert parse_decision("[[ Maybe ]] ... Final Decision: [[ Yes ]]") == "yes"
    assert parse_decision("Final Decision: [[probably]]") == "probably"
    assert parse_decision("I think no") is None
