"""The OpenAI-compatible engine against a real server (`transformers serve` on the embedded model) and, for
retries and protocol corners, a tiny scripted HTTP server started in-process. All traffic stays on 127.0.0.1."""
import contextlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from humpback.inference.base import EngineSpec, Request, Sampling, build_engine
from humpback.inference.openai_engine import OpenAIEngine, backoff_delay, chat_url
from humpback.prompts import SCORE_PREFIX, SCORE_TOKENS

SERVER_START_TIMEOUT_S = 120
GREEDY = Sampling(temperature=0.0, max_new_tokens=16)


def ask(text: str, prefix: str = "") -> Request:
    return Request(messages=({"role": "user", "content": text},), assistant_prefix=prefix)


def completion(text: str = "Paris.", prompt_tokens: int = 12, completion_tokens: int = 3, **choice) -> dict:
    return {"id": "x", "object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop",
                         **choice}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}}


def with_logprobs(top: dict[str, float], reply: str = "4") -> dict:
    entries = [{"token": token, "logprob": logprob} for token, logprob in top.items()]
    return completion(reply, logprobs={"content": [{"token": entries[0]["token"], "logprob": entries[0]["logprob"],
                                                  "top_logprobs": entries}]})


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# ----- a scripted server -----

class ScriptedServer:
    """An HTTP server on 127.0.0.1 whose `respond(body, n_seen)` returns (status, json payload, headers)."""

    def __init__(self, respond):
        self.respond = respond
        self.bodies: list[dict] = []
        self.authorizations: list[str | None] = []
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.bodies.append(body)
                    server.authorizations.append(self.headers.get("Authorization"))
                    seen = len(server.bodies)
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    status, payload, headers = server.respond(body, seen)
                finally:
                    with server.lock:
                        server.in_flight -= 1
                data = json.dumps(payload).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        return Handler

    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def scripted_engine(server: ScriptedServer, **settings) -> OpenAIEngine:
    settings = {"max_retries": 4, "backoff_s": 0.01, "timeout_s": 10.0, **settings}
    return OpenAIEngine("test-model", base_url=server.base_url, **settings)


def last_user_content(body: dict) -> str:
    return [m for m in body["messages"] if m["role"] == "user"][-1]["content"]


def test_service_unavailable_twice_then_an_answer_is_retried_through():
    def respond(body, seen):
        return (503, {"error": "overloaded"}, {}) if seen <= 2 else (200, completion("Paris."), {})

    with ScriptedServer(respond) as server:
        engine = scripted_engine(server)
        result = engine.generate([ask("Capital of France?")], GREEDY)[0]
        engine.close()
    assert result.error is None and result.texts == ["Paris."]
    assert (result.prompt_tokens, result.completion_tokens) == (12, 3)
    assert len(server.bodies) == 3
    sent = server.bodies[-1]
    assert sent["model"] == "test-model" and sent["max_tokens"] == 16 and sent["temperature"] == 0.0
    assert sent["messages"] == [{"role": "user", "content": "Capital of France?"}]


def test_a_row_that_always_fails_gets_an_error_and_the_others_go_on():
    def respond(body, seen):
        return (500, {"error": "boom"}, {}) if "FAIL" in last_user_content(body) else (200, completion("ok"), {})

    with ScriptedServer(respond) as server:
        engine = scripted_engine(server, max_retries=2)
        results = engine.generate([ask("first"), ask("FAIL me"), ask("third")], GREEDY)
        engine.close()
    assert results[1].texts == [] and "HTTP 500" in results[1].error and "after 3 attempts" in results[1].error
    assert [results[0].texts, results[2].texts] == [["ok"], ["ok"]]
    assert sum("FAIL" in last_user_content(body) for body in server.bodies) == 3


def test_a_client_error_is_not_retried():
    with ScriptedServer(lambda body, seen: (400, {"error": "bad request"}, {})) as server:
        engine = scripted_engine(server)
        result = engine.generate([ask("hi")], GREEDY)[0]
        engine.close()
    assert "HTTP 400" in result.error and len(server.bodies) == 1


def test_an_unreachable_server_is_a_row_error_after_bounded_retries():
    engine = OpenAIEngine("m", base_url=f"http://127.0.0.1:{free_port()}/v1", max_retries=1, backoff_s=0.01,
                          timeout_s=2.0)
    started = time.monotonic()
    result = engine.generate([ask("hi")], GREEDY)[0]
    engine.close()
    assert "ConnectError" in result.error and "after 2 attempts" in result.error
    assert time.monotonic() - started < 10


def test_concurrency_is_bounded():
    def respond(body, seen):
        time.sleep(0.2)
        return 200, completion("ok"), {}

    with ScriptedServer(respond) as server:
        engine = scripted_engine(server, concurrency=2)
        results = engine.generate([ask(f"q{i}") for i in range(6)], GREEDY)
        engine.close()
    assert all(r.texts == ["ok"] for r in results)
    assert server.max_in_flight == 2


def test_each_sample_is_one_request_with_its_own_seed():
    from humpback.inference.seeding import row_seed, sample_seeds

    def respond(body, seen):
        return 200, completion(f"sample {seen}", finish_reason="length" if seen == 2 else "stop"), {}

    with ScriptedServer(respond) as server:
        engine = scripted_engine(server, concurrency=1)
        rows = [Request(messages=ask("hi").messages, seed=5), ask("hi")]
        results = engine.generate(rows, Sampling(temperature=0.7, top_p=0.9, max_new_tokens=8, seed=9, n=3))
        engine.close()
    assert results[0].texts == ["sample 1", "sample 2", "sample 3"]
    assert results[0].finish_reasons == ["stop", "length", "stop"] and results[0].finish_reason == "length"
    sent = [body["seed"] for body in server.bodies]
    # the first row's own seed; the second row (no seed of its own) derives one from the call's seed and its place
    assert sent == sample_seeds(5, 3) + sample_seeds(row_seed(9, "#1"), 3)
    assert len(set(sent)) == 6 and all("n" not in body for body in server.bodies)
    assert results[0].seeds == sample_seeds(5, 3) and results[0].completion_tokens == 9


def test_greedy_is_one_request_without_a_seed():
    with ScriptedServer(lambda body, seen: (200, completion("Paris."), {})) as server:
        engine = scripted_engine(server)
        result = engine.generate([ask("hi")], Sampling(temperature=0.0, max_new_tokens=8, n=2))[0]
        engine.close()
    assert result.texts == ["Paris.", "Paris."] and result.seeds == []
    assert len(server.bodies) == 1 and "seed" not in server.bodies[0]


def test_the_assistant_prefix_is_continued_where_the_server_allows_it():
    with ScriptedServer(lambda body, seen: (200, completion(" 4"), {})) as server:
        engine = scripted_engine(server)
        result = engine.generate([ask("Rate it.", SCORE_PREFIX)], GREEDY)[0]
        engine.close()
    sent = server.bodies[0]
    assert sent["messages"][-1] == {"role": "assistant", "content": SCORE_PREFIX}
    assert sent["continue_final_message"] is True and sent["add_generation_prompt"] is False
    assert result.texts == [" 4"] and engine.prefix_mode == "auto"


def test_a_server_that_rejects_continuation_gets_the_prefix_in_the_user_message():
    def respond(body, seen):
        if "continue_final_message" in body:
            return 422, {"detail": "Unexpected fields in the request: {'continue_final_message'}"}, {}
        return 200, completion("Score: 4"), {}

    with ScriptedServer(respond) as server:
        engine = scripted_engine(server)
        first = engine.generate([ask("Rate it.", SCORE_PREFIX)], GREEDY)[0]
        second = engine.generate([ask("Rate that.", SCORE_PREFIX)], GREEDY)[0]
        engine.close()
    assert first.texts == second.texts == ["Score: 4"]
    assert engine.prefix_mode == "append"
    assert len(server.bodies) == 3  # one rejected try, then the appended form for both rows
    assert last_user_content(server.bodies[-1]) == f"Rate that.\n\n{SCORE_PREFIX}"


def test_logprobs_are_combined_through_the_space_token():
    def respond(body, seen):
        if body["messages"][-1]["content"].endswith(" "):  # the prefix plus a space: digits come next
            return 200, with_logprobs({"4": -0.5, "5": -1.2, "3": -3.0}), {}
        return 200, with_logprobs({" ": -0.1, "4": -4.0, " 5": -5.0}, reply=" "), {}  # " " starts " 4": allowed

    with ScriptedServer(respond) as server:
        engine = scripted_engine(server)
        score = engine.next_token_probs([ask("Rate it.", SCORE_PREFIX)], SCORE_TOKENS)[0]
        engine.close()
    assert score.error is None and sum(score.probs.values()) == pytest.approx(1.0)
    assert max(score.probs, key=score.probs.get) == "4"
    assert score.probs["1"] == 0.0 and 0 < score.candidate_mass < 1
    first = server.bodies[0]
    assert first["max_tokens"] == 1 and first["logprobs"] is True and first["top_logprobs"] == 20
    assert server.bodies[1]["messages"][-1]["content"] == SCORE_PREFIX + " "
    allowed = [spelling for token in SCORE_TOKENS for spelling in (token, " " + token)]
    assert all(body["structured_outputs"] == {"choice": allowed} for body in server.bodies)


def test_a_server_that_ignores_the_choice_constraint_gives_a_row_error():
    def respond(body, seen):  # answers 200 but writes what it likes: the constraint was not applied
        reply = "4" if "Good" in last_user_content(body) else " The"
        return 200, with_logprobs({" The": -0.2, "4": -2.0, "3": -3.0}, reply=reply), {}

    with ScriptedServer(respond) as server:
        engine = scripted_engine(server)
        scores = engine.next_token_probs([ask("Good pair.", SCORE_PREFIX), ask("Bad server.", SCORE_PREFIX)],
                                         SCORE_TOKENS)
        engine.close()
    assert scores[0].error is None and max(scores[0].probs, key=scores[0].probs.get) == "4"
    assert scores[1].probs == {} and "ignored the choice constraint" in scores[1].error
    assert "' The'" in scores[1].error


def test_choice_constraint_off_sends_no_constraint_and_accepts_any_reply():
    with ScriptedServer(lambda body, seen: (200, with_logprobs({"4": -0.1, "5": -2.5}, reply="x"), {})) as server:
        engine = OpenAIEngine.from_spec(EngineSpec("openai", "test-model", (
            ("base_url", server.base_url), ("choice_constraint", False), ("max_retries", 0))))
        score = engine.next_token_probs([ask("Rate it.", SCORE_PREFIX)], SCORE_TOKENS)[0]
        engine.close()
    assert score.error is None and score.probs["4"] > score.probs["5"] > 0
    assert "structured_outputs" not in server.bodies[0]


def test_a_server_without_logprobs_gives_a_row_error():
    with ScriptedServer(lambda body, seen: (200, completion("4"), {})) as server:
        engine = scripted_engine(server)
        score = engine.next_token_probs([ask("Rate it.", SCORE_PREFIX)], SCORE_TOKENS)[0]
        engine.close()
    assert score.probs == {} and "no logprobs" in score.error


def test_backoff_grows_with_jitter_and_honours_retry_after():
    assert 0.25 <= backoff_delay(0, 0.5) <= 0.75
    assert 2.0 <= backoff_delay(3, 0.5) <= 6.0
    assert backoff_delay(20, 0.5) == 30.0
    assert backoff_delay(0, 0.5, retry_after="2") == 2.0
    assert 0.25 <= backoff_delay(0, 0.5, retry_after="Wed, 21 Oct 2026 07:28:00 GMT") <= 0.75


def test_base_url_takes_the_openai_client_form():
    assert chat_url("http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000/v1/chat/completions"
    assert chat_url("http://127.0.0.1:8000/v1/") == "http://127.0.0.1:8000/v1/chat/completions"
    assert chat_url("http://127.0.0.1:8000") == "http://127.0.0.1:8000/v1/chat/completions"


def test_spec_options_and_the_api_key_from_the_environment(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with ScriptedServer(lambda body, seen: (200, completion("ok"), {})) as server:
        engine = build_engine(EngineSpec(kind="openai", model_ref="models:/humpback-forward@m0", options=(
            ("base_url", server.base_url), ("served_model", "smol"), ("concurrency", 3), ("max_retries", 1))))
        result = engine.generate([ask("hi")], GREEDY)[0]
        engine.close()
    assert result.texts == ["ok"]
    assert (engine.concurrency, engine.max_retries, engine.served_model) == (3, 1, "smol")
    assert server.bodies[0]["model"] == "smol"
    assert server.authorizations == ["Bearer sk-test"]


# ----- a real server: transformers serve -----

@pytest.fixture(scope="module")
def transformers_server(embedded_model_dir, tmp_path_factory):
    """`transformers serve` on the embedded model, CPU only, on a free port of 127.0.0.1."""
    missing = [name for name in ("openai", "fastapi", "uvicorn") if importlib.util.find_spec(name) is None]
    if missing:
        pytest.fail(f"`transformers serve` needs {missing} (the dev extra): run `make setup`")
    port = free_port()
    log_path = tmp_path_factory.mktemp("serve") / "server.log"
    command = [str(Path(sys.executable).parent / "transformers"), "serve", str(embedded_model_dir),
               "--device", "cpu", "--host", "127.0.0.1", "--port", str(port)]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "HF_HUB_OFFLINE": "1"}
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        wait_until_ready(process, f"http://127.0.0.1:{port}/health", log_path)
        yield {"base_url": f"http://127.0.0.1:{port}/v1", "model": str(embedded_model_dir)}
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)


def wait_until_ready(process: subprocess.Popen, health_url: str, log_path: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"transformers serve exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(health_url, timeout=2.0).status_code == 200:
                return
        time.sleep(0.5)
    pytest.fail(f"transformers serve not ready after {SERVER_START_TIMEOUT_S} s:\n{log_path.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def served_engine(transformers_server):
    engine = build_engine(EngineSpec(kind="openai", model_ref="embedded:smollm2-135m-instruct", options=(
        ("base_url", transformers_server["base_url"]), ("served_model", transformers_server["model"]),
        ("concurrency", 2), ("max_retries", 2), ("timeout_s", 120.0))))
    yield engine
    engine.close()


def test_generate_against_transformers_serve(served_engine):
    prompts = ["What is the capital of France?", "Name a color.", "Say hello."]
    results = served_engine.generate([ask(text) for text in prompts], GREEDY)
    for result in results:
        assert result.error is None
        assert len(result.texts) == 1 and result.texts[0].strip()
        assert result.prompt_tokens > 0 and 0 < result.completion_tokens <= GREEDY.max_new_tokens


def test_transformers_serve_gets_the_prefix_appended_and_refuses_logprob_rating(served_engine):
    generated = served_engine.generate([ask("Rate the answer 'Paris' to 'Capital of France?'", SCORE_PREFIX)],
                                       Sampling(temperature=0.0, max_new_tokens=4))[0]
    assert generated.error is None and served_engine.prefix_mode == "append"  # it answers 422 to continuation
    prefixed, plain = served_engine.next_token_probs([ask("Rate it.", SCORE_PREFIX), ask("Rate it.")], SCORE_TOKENS)
    assert prefixed.probs == {} and "continue an assistant prefix" in prefixed.error
    assert plain.probs == {} and "does not take the choice constraint" in plain.error  # 422 to structured_outputs


def test_transformers_serve_without_the_choice_constraint_returns_no_logprobs(transformers_server):
    engine = build_engine(EngineSpec(kind="openai", model_ref="embedded:smollm2-135m-instruct", options=(
        ("base_url", transformers_server["base_url"]), ("served_model", transformers_server["model"]),
        ("choice_constraint", False), ("max_retries", 0))))
    [plain] = engine.next_token_probs([ask("Rate it.")], SCORE_TOKENS)
    engine.close()
    assert plain.probs == {} and "no logprobs" in plain.error  # it ignores logprobs/top_logprobs
