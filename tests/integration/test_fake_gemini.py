"""The real google-genai client against FakeGemini: proves the fake speaks the wire protocol the SDK
expects, and pins down how the SDK fails (exception classes, retries, timeouts) so the brain's
error handling is written against observed behaviour, not guesses."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time

import pytest

genai = pytest.importorskip("google.genai")
httpx2 = pytest.importorskip("httpx2")  # google-genai 3.x's transport: its errors escape the SDK unwrapped

from google.genai import errors, types  # noqa: E402 - after the skip

from agentproxy.testing.fake_gemini import (  # noqa: E402
    Disconnect,
    FakeGemini,
    FunctionCall,
    GeminiRequest,
    Hang,
    Json,
    RawText,
    Status,
)

MODEL = "gemini-2.5-flash"
API_KEY = "test-key"
VERDICT_SCHEMA = {"type": "OBJECT", "properties": {"verdict": {"type": "STRING"}}, "required": ["verdict"]}
RETRY = types.HttpRetryOptions(
    attempts=3, initial_delay=0.01, max_delay=0.05, http_status_codes=[408, 429, 500, 502, 503, 504]
)
PNG = b"\x89PNG\r\n\x1a\n" + bytes(24)


@pytest.fixture(autouse=True)
def clean_genai_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK silently reads these (Vertex mode, API version, keys); a developer's shell must not
    change what goes on the wire."""
    for name in (
        "GOOGLE_API_KEY",
        "GEMINI_API_KEY",
        "GOOGLE_GENAI_USE_VERTEXAI",
        "GOOGLE_GENAI_API_VERSION",
        "GOOGLE_GEMINI_BASE_URL",
        "GOOGLE_CLOUD_PROJECT",
        "GOOGLE_CLOUD_LOCATION",
    ):
        monkeypatch.delenv(name, raising=False)


def client_for(url: str, **http_options: object) -> genai.Client:
    """Keep the returned client in a variable: a temporary one is closed by its __del__ before
    ``.models`` sends anything (see test_a_temporary_client_is_closed_before_it_sends)."""
    return genai.Client(api_key=API_KEY, http_options=types.HttpOptions(base_url=url, **http_options))


def ask(client: genai.Client, config: types.GenerateContentConfig | None = None) -> types.GenerateContentResponse:
    return client.models.generate_content(model=MODEL, contents="Is the build green?", config=config)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_structured_output_round_trip_carries_schema_image_system_and_temperature() -> None:
    with FakeGemini(Json({"verdict": "ok"}, input_tokens=11, output_tokens=7)) as api:
        client = client_for(api.url)
        response = client.models.generate_content(
            model=MODEL,
            contents=["Look at this screenshot.", types.Part.from_bytes(data=PNG, mime_type="image/png")],
            config=types.GenerateContentConfig(
                system_instruction="You are the supervisor's brain.",
                temperature=0.2,
                response_mime_type="application/json",
                response_schema=VERDICT_SCHEMA,
            ),
        )

    assert json.loads(response.text or "") == {"verdict": "ok"}
    assert response.parsed == {"verdict": "ok"}
    usage = response.usage_metadata
    assert usage is not None
    assert (usage.prompt_token_count, usage.candidates_token_count, usage.total_token_count) == (11, 7, 18)
    [request] = api.requests
    assert (request.api_version, request.model, request.method, request.api_key) == (
        "v1",
        MODEL,
        "generateContent",
        API_KEY,
    )
    assert request.body["generationConfig"]["responseSchema"] == VERDICT_SCHEMA  # a dict goes as-is
    assert request.schema == VERDICT_SCHEMA
    assert request.images == [("image/png", len(PNG))]
    assert request.system_text == "You are the supervisor's brain."
    assert "Look at this screenshot." in request.text and "supervisor's brain" in request.text
    assert request.temperature == 0.2


def test_response_json_schema_travels_as_response_json_schema() -> None:
    with FakeGemini(Json({"verdict": "ok"})) as api:
        client = client_for(api.url)
        config = types.GenerateContentConfig(response_mime_type="application/json", response_json_schema=VERDICT_SCHEMA)
        response = ask(client, config)

    assert response.parsed == {"verdict": "ok"}
    assert "responseJsonSchema" in api.requests[0].body["generationConfig"]
    assert api.requests[0].schema == VERDICT_SCHEMA


def test_default_usage_is_estimated_from_request_and_reply_lengths() -> None:
    with FakeGemini(Json({"verdict": "a rather long verdict"})) as api:
        client = client_for(api.url)
        usage = ask(client).usage_metadata

    assert usage is not None
    assert usage.prompt_token_count == len(api.requests[0].text) // 4
    assert usage.candidates_token_count == len(json.dumps({"verdict": "a rather long verdict"})) // 4


@pytest.mark.parametrize("api_version", ["v1", "v1beta"])
def test_both_api_versions_are_routed(api_version: str) -> None:
    with FakeGemini(Json({"verdict": "ok"})) as api:
        client = client_for(api.url, api_version=api_version)
        assert ask(client).parsed is None  # no schema asked for: .parsed stays None even for JSON text

    assert api.requests[0].api_version == api_version


def test_unknown_route_is_a_google_style_404() -> None:
    with FakeGemini() as api:
        client = client_for(api.url, api_version="v2")
        with pytest.raises(errors.ClientError) as caught:
            ask(client)

    assert (caught.value.code, caught.value.status) == (404, "NOT_FOUND")
    assert api.requests == []


def test_stream_is_concatenated_and_count_tokens_does_not_consume_the_script() -> None:
    with FakeGemini(RawText("streamed answer")) as api:
        client = client_for(api.url)
        total = client.models.count_tokens(model=MODEL, contents="sixteen chars!!!").total_tokens
        chunks = [chunk.text for chunk in client.models.generate_content_stream(model=MODEL, contents="go")]

    assert total == 4
    assert len(chunks) == 2 and "".join(chunk or "" for chunk in chunks) == "streamed answer"
    assert [r.method for r in api.requests] == ["countTokens", "streamGenerateContent"]


def test_function_call_raw_text_callable_and_default_replies() -> None:
    def echo_model(request: GeminiRequest) -> Json:
        return Json({"model": request.model})

    with FakeGemini(FunctionCall("run_tests", {"path": "tests/"}), RawText("{not json"), echo_model) as api:
        client = client_for(api.url)
        calls = ask(client).function_calls
        json_config = types.GenerateContentConfig(response_mime_type="application/json", response_schema=VERDICT_SCHEMA)
        malformed = ask(client, json_config)
        echoed = ask(client).text
        exhausted = ask(client).text
        api.add(Json([1, 2]))
        added = ask(client).text

    assert calls and (calls[0].name, calls[0].args) == ("run_tests", {"path": "tests/"})
    assert malformed.text == "{not json" and malformed.parsed is None  # bad JSON is not an exception
    assert json.loads(echoed or "") == {"model": MODEL}
    assert exhausted == "{}"
    assert added == "[1, 2]"
    assert api.wait_for_requests(5, timeout=0.1) == api.requests


def test_429_then_success_is_retried_with_retry_options() -> None:
    with FakeGemini(Status(429, status="RESOURCE_EXHAUSTED"), Json({"verdict": "ok"})) as api:
        client = client_for(api.url, retry_options=RETRY)
        assert ask(client).text == '{"verdict": "ok"}'

    assert len(api.requests) == 2


def test_500_three_times_raises_server_error_after_exactly_three_attempts() -> None:
    with FakeGemini(default=Status(500, "boom", "INTERNAL")) as api:
        client = client_for(api.url, retry_options=RETRY)
        with pytest.raises(errors.ServerError) as caught:
            ask(client)

    assert (caught.value.code, caught.value.status, caught.value.message) == (500, "INTERNAL", "boom")
    assert len(api.requests) == 3
    assert API_KEY not in str(caught.value)


def test_without_retry_options_the_sdk_sends_a_single_request() -> None:
    with FakeGemini(default=Status(429)) as api:
        client = client_for(api.url)
        with pytest.raises(errors.ClientError) as caught:
            ask(client)

    assert caught.value.status == "RESOURCE_EXHAUSTED"
    assert isinstance(caught.value, errors.APIError)
    assert len(api.requests) == 1


def test_connection_refused_is_httpx2_connect_error_not_api_error() -> None:
    client = client_for(f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(httpx2.ConnectError) as caught:
        ask(client)

    assert not isinstance(caught.value, errors.APIError)
    assert API_KEY not in str(caught.value)


def test_hang_past_the_timeout_is_httpx2_read_timeout_and_timeout_is_milliseconds() -> None:
    with FakeGemini(Hang(10)) as api:
        client = client_for(api.url, timeout=500)
        started = time.monotonic()
        with pytest.raises(httpx2.ReadTimeout) as caught:
            ask(client)
        elapsed = time.monotonic() - started

    assert 0.45 <= elapsed < 2.0
    assert api.requests[0].headers["X-Server-Timeout"] == "1"  # the SDK also tells the server, in whole seconds
    assert API_KEY not in str(caught.value)


def test_retry_options_also_retry_timeouts() -> None:
    with FakeGemini(Hang(10), Json({"verdict": "ok"})) as api:
        client = client_for(api.url, timeout=200, retry_options=RETRY)
        assert ask(client).parsed is None

    assert len(api.requests) == 2


def test_disconnect_is_httpx2_remote_protocol_error_and_never_retried() -> None:
    with FakeGemini(default=Disconnect()) as api:
        client = client_for(api.url, retry_options=RETRY)
        with pytest.raises(httpx2.RemoteProtocolError) as caught:
            ask(client)

    assert len(api.requests) == 1
    assert API_KEY not in str(caught.value)


def test_closing_the_fake_cuts_a_hang_short() -> None:
    outcome: list[BaseException] = []
    with FakeGemini(Hang(30)) as api:
        client = client_for(api.url)

        def call() -> None:
            try:
                ask(client)
            except Exception as exc:
                outcome.append(exc)

        caller = threading.Thread(target=call)
        caller.start()
        api.wait_for_requests(1, timeout=5)
    caller.join(timeout=5)

    assert not caller.is_alive()
    assert isinstance(outcome[0], httpx2.RemoteProtocolError)


def test_a_temporary_client_is_closed_before_it_sends() -> None:
    """SDK quirk: ``genai.Client(...).models.generate_content(...)`` drops the Client, whose __del__
    closes the shared HTTP client before the call."""
    with FakeGemini() as api, pytest.raises(RuntimeError, match="client has been closed"):
        client_for(api.url).models.generate_content(model=MODEL, contents="hi")

    assert api.requests == []


def test_both_env_keys_log_a_warning_but_the_explicit_key_is_sent(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", "google-env-key")
    monkeypatch.setenv("GEMINI_API_KEY", "gemini-env-key")
    with FakeGemini() as api, caplog.at_level(logging.WARNING):
        client = client_for(api.url)
        ask(client)

    assert "Both GOOGLE_API_KEY and GEMINI_API_KEY are set" in caplog.text
    assert api.requests[0].api_key == API_KEY
