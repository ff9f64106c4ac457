"""OpenAI-compatible API-key gateway in front of vLLM (see README.md)."""
