"""Every OpenAI-compatible route vLLM serves that names a model, straight and through the gateway:
the same answer, the key and model checked by the gateway, and the usage vLLM reports counted
(issue 14, item 4: POST /v1/responses was a 404 at the gateway)."""

from __future__ import annotations

import pytest

from gateway.routes import PROXIED
from tests.vllm.conftest import OTHER_CLIENT_KEY
from tests.vllm.helpers import EXTRA, counted_since, post, tokens
from tests.vllm.server import CLASSIFY_MODEL, CLIENT_KEY, EMBED_MODEL, MODEL, START_TIMEOUT_S

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(START_TIMEOUT_S + 120)]

RESPONSES_INPUT = {"model": MODEL, "input": "hello world", "max_output_tokens": 6, "extra_body": {"ignore_eos": True}}


def usage_tokens(usage: dict) -> tuple[int, int]:
    """(prompt, completion) of a usage object, in the Chat Completions or the Responses shape."""
    return (usage.get("prompt_tokens", usage.get("input_tokens", 0)),
            usage.get("completion_tokens", usage.get("output_tokens", 0)) or 0)


def test_responses_plain(vllm, gateway):
    for client, counted in ((vllm.client(), False), (gateway.client(CLIENT_KEY), True)):
        before = tokens(gateway, MODEL)
        reply = client.responses.create(**RESPONSES_INPUT)
        assert reply.status == "incomplete" and reply.incomplete_details.reason == "max_output_tokens"
        assert reply.usage.output_tokens == 6
        expected = (reply.usage.input_tokens, 6) if counted else (0, 0)
        assert counted_since(gateway, before, expected, MODEL) == expected


def test_responses_stream(vllm, gateway):
    def stream(client) -> list:
        return list(client.responses.create(**RESPONSES_INPUT, stream=True))

    direct = stream(vllm.client())
    before = tokens(gateway, MODEL)
    through = stream(gateway.client(CLIENT_KEY))
    assert kinds(through) == kinds(direct)
    usage = through[-1].response.usage
    assert through[-1].type == "response.completed" and usage.output_tokens == 6
    expected = (usage.input_tokens, 6)
    assert counted_since(gateway, before, expected, MODEL) == expected


def kinds(events: list) -> list[str]:
    """The event types in order, a run of deltas as one: vLLM's timing decides how many tokens a delta holds."""
    types = [event.type for event in events]
    return [kind for index, kind in enumerate(types) if index == 0 or kind != types[index - 1]]


@pytest.mark.parametrize("path, body, counted", [
    ("/v1/chat/completions/batch", {"messages": [[{"role": "user", "content": "hi"}], [{"role": "user", "content": "yo"}]],
                                    "max_tokens": 2, **EXTRA}, True),
    ("/tokenize", {"prompt": "hello world"}, False),
    ("/detokenize", {"tokens": [75, 76]}, False),
])
def test_other_generate_routes(vllm, gateway, path, body, counted):
    body = {"model": MODEL, **body}
    direct = post(vllm, path, body)
    before = tokens(gateway, MODEL)
    through = post(gateway, path, body)
    assert direct.status_code == through.status_code == 200
    assert through.json().keys() == direct.json().keys()
    expected = usage_tokens(through.json()["usage"]) if counted else (0, 0)
    assert counted_since(gateway, before, expected, MODEL) == expected
    if not counted:
        assert through.json() == direct.json()


@pytest.mark.parametrize("path", ["/v1/audio/transcriptions", "/v1/audio/translations"])
def test_audio_routes_reach_vllm_by_the_forms_model(vllm, gateway, path):
    """The generating model mounts no audio route: vLLM's own 404 comes back, so the gateway routed it."""
    form = {"data": {"model": MODEL}, "files": {"file": ("a.wav", b"RIFF....WAVEfmt ", "audio/wav")}}
    seen = vllm.requests_logged("POST", path)
    direct = post(vllm, path, **form)
    through = post(gateway, path, **form)
    assert direct.status_code == through.status_code == 404
    assert through.json() == direct.json() == {"detail": "Not Found"}
    assert vllm.requests_logged("POST", path) == seen + 2
    refused = post(gateway, path, key=OTHER_CLIENT_KEY, **form)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "model_not_allowed"


@pytest.mark.parametrize("path", sorted(PROXIED))
def test_every_route_checks_key_and_model_at_the_gateway(vllm, gateway, path):
    form = path.startswith("/v1/audio/")
    request = {"data": {"model": MODEL}, "files": {"file": ("a.wav", b"RIFF", "audio/wav")}} if form else \
        {"body": {"model": MODEL}}
    seen = vllm.requests_logged("POST", path)
    assert post(gateway, path, key="sk-test-wrong", **request).status_code == 401
    refused = post(gateway, path, key=OTHER_CLIENT_KEY, **request)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "model_not_allowed"
    assert vllm.requests_logged("POST", path) == seen


@pytest.mark.parametrize("path", ["/invocations", "/v1/messages", "/v2/embed", "/v1/files", "/generative_scoring"])
def test_routes_the_gateway_does_not_serve_stay_404(vllm, gateway, path):
    seen = vllm.requests_logged("POST", path)
    reply = post(gateway, path, {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1})
    assert reply.status_code == 404 and reply.json()["error"]["code"] == "unknown_url"
    assert vllm.requests_logged("POST", path) == seen


# --- pooling: vLLM's pooling runner, `--convert embed` and `--convert classify` --------------------

EMBED_ROUTES = {
    "/v1/embeddings": {"input": ["hello world", "two"]},
    "/pooling": {"input": "hello world"},
    "/score": {"text_1": "hello", "text_2": ["hello there", "the lazy dog"]},
    "/v1/score": {"queries": "hello", "documents": ["hello there", "the lazy dog"]},
    "/rerank": {"query": "hello", "documents": ["hello there", "the lazy dog"]},
    "/v1/rerank": {"query": "hello", "documents": ["hello there", "the lazy dog"], "top_n": 1},
    "/v2/rerank": {"query": "hello", "documents": ["hello there", "the lazy dog"]},
}


@pytest.mark.parametrize("path", list(EMBED_ROUTES))
def test_embedding_model_routes(embed_vllm, path):
    server, gateway = embed_vllm
    same_answer_and_usage(server, gateway, EMBED_MODEL, path, {"model": EMBED_MODEL, **EMBED_ROUTES[path]})


def test_embeddings_with_the_sdk(embed_vllm):
    server, gateway = embed_vllm
    direct = server.client().embeddings.create(model=EMBED_MODEL, input="hello world")
    before = tokens(gateway, EMBED_MODEL)
    through = gateway.client(CLIENT_KEY).embeddings.create(model=EMBED_MODEL, input="hello world")
    assert through.data[0].embedding == pytest.approx(direct.data[0].embedding, abs=1e-3)
    expected = (through.usage.prompt_tokens, 0)
    assert counted_since(gateway, before, expected, EMBED_MODEL) == expected


@pytest.mark.parametrize("path", ["/classify", "/pooling"])
def test_classify_model_routes(classify_vllm, path):
    server, gateway = classify_vllm
    same_answer_and_usage(server, gateway, CLASSIFY_MODEL, path, {"model": CLASSIFY_MODEL, "input": ["hello world", "two"]})


def same_answer_and_usage(server, gateway, model: str, path: str, body: dict) -> None:
    direct = post(server, path, body)
    before = tokens(gateway, model)
    through = post(gateway, path, body)
    assert direct.status_code == through.status_code == 200, through.text
    assert through.json().keys() == direct.json().keys()
    usage = through.json()["usage"]
    assert usage_tokens(usage) == usage_tokens(direct.json()["usage"])
    assert usage_tokens(usage)[0] > 0
    assert counted_since(gateway, before, usage_tokens(usage), model) == usage_tokens(usage)
