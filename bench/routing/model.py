"""The benchmark's model: the test layer's tokenizer and chat template, with a wider, deeper Llama.

    <vLLM venv>/bin/python bench/routing/model.py OUT_DIR

Random weights (`--load-format dummy`): what matters here is the time prefill takes, which grows
with the prompt, and tests/vllm/tiny_model.py's 2-layer, 128-wide model makes it too small to see
on a CPU. This one (6 layers, 384 wide, about 10M parameters) takes a few hundred milliseconds for
a 1,000-token prompt here, so a cache hit shows in the time to first token.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.vllm import tiny_model  # noqa: E402  (run by the vLLM venv's Python, from any directory)

MAX_POSITIONS = 4096
CONFIG = {
    **tiny_model.LLAMA_CONFIG,
    "hidden_size": 384,
    "intermediate_size": 1024,
    "num_hidden_layers": 6,
    "num_attention_heads": 6,
    "num_key_value_heads": 2,
    "head_dim": 64,
    "max_position_embeddings": MAX_POSITIONS,
}


def build(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tok = tiny_model.tokenizer()
    tok.save(str(out / "tokenizer.json"))
    tiny_model.write_json(out / "config.json", {**CONFIG, "vocab_size": tok.get_vocab_size()})
    tiny_model.write_json(out / "tokenizer_config.json", {**tiny_model.TOKENIZER_CONFIG, "model_max_length": MAX_POSITIONS})
    tiny_model.write_json(out / "generation_config.json", {"bos_token_id": tiny_model.BOS_ID, "eos_token_id": tiny_model.EOS_ID,
                                                           "pad_token_id": tiny_model.PAD_ID})


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    build(Path(sys.argv[1]))
