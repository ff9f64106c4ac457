"""Area `inference` (type tokens `llm-edge:inference:*`): one model served by vLLM in one cluster."""

from components.inference.vllm import PORT, VllmServer, VllmServerArgs, origin_keep_alive_seconds, service_name, service_url

__all__ = ["PORT", "VllmServer", "VllmServerArgs", "origin_keep_alive_seconds", "service_name", "service_url"]
