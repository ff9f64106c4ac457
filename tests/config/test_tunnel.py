"""Config of hostname routes: where they may point and what they may publish."""

from __future__ import annotations

from components.config import parse_stack_config
from tests.config.cases import errors_of, with_

MODEL = {"huggingFaceId": "Qwen/Qwen2.5-0.5B-Instruct", "image": "vllm/vllm-openai:v0.11.0"}
WITH_MODEL = with_("models", {"qwen": dict(MODEL)})


def test_route_to_an_unknown_backend():
    [line] = errors_of(with_("routes", [{"hostname": "a.example.com", "backend": "nope"}], WITH_MODEL))
    assert line.startswith("llm-edge:routes[0].backend: must name a model or backend (qwen)")


def test_duplicate_hostnames():
    routes = [{"hostname": "a.example.com", "backend": "qwen"}, {"hostname": "a.example.com", "backend": "qwen"}]
    [line] = errors_of(with_("routes", routes, WITH_MODEL))
    assert line.startswith("llm-edge:routes[1].hostname: is already used")
    [line] = errors_of(with_("routes", [{"hostname": "llm.example.com", "backend": "qwen"}], WITH_MODEL))
    assert line.startswith("llm-edge:routes[0].hostname: is already used")


def test_publishing_an_unauthenticated_backend_needs_an_explicit_yes():
    raw = with_("backends", {"ollama": {"url": "http://10.0.0.5:11434", "models": ["llama3.2:3b"]}}, WITH_MODEL)
    [line] = errors_of(with_("routes", [{"hostname": "node1.example.com", "backend": "ollama"}], raw))
    assert line.startswith("llm-edge:routes[0].backend: checks no API key")
    ok = with_("routes", [{"hostname": "node1.example.com", "backend": "ollama", "allowUnauthenticated": True}], raw)
    assert parse_stack_config("dev", ok).routes[0].backend == "ollama"
