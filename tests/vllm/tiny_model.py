"""A tiny random-weight Llama that vLLM serves with `--load-format dummy`: no weight file is written.

    <vLLM venv>/bin/python tests/vllm/tiny_model.py OUT_DIR

Runs with the vLLM venv's Python (it needs only `tokenizers`, which vLLM brings), at test time,
in about 0.1 s. The directory holds a `config.json` (hidden 128, 2 layers, 2 heads, 1 KV head,
head_dim 64, bfloat16), a byte-level BPE tokenizer trained here on a fixed corpus, and a
`tokenizer_config.json` with a chat template, so chat and plain completions both work. The same
bytes come out on every run: the weights are random, but every run serves the same model.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

VOCAB_SIZE = 512
SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>"]
BOS_ID, EOS_ID, PAD_ID = 1, 2, 3
MAX_POSITIONS = 2048

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<s>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '</s>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<s>assistant\n' }}{% endif %}"
)

LLAMA_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "head_dim": 64,
    "hidden_act": "silu",
    "max_position_embeddings": MAX_POSITIONS,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "tie_word_embeddings": False,
    "bos_token_id": BOS_ID,
    "eos_token_id": EOS_ID,
    "pad_token_id": PAD_ID,
    "torch_dtype": "bfloat16",
}

TOKENIZER_CONFIG = {
    "tokenizer_class": "PreTrainedTokenizerFast",
    "bos_token": "<s>",
    "eos_token": "</s>",
    "unk_token": "<unk>",
    "pad_token": "<pad>",
    "model_max_length": MAX_POSITIONS,
    "add_bos_token": False,
    "add_eos_token": False,
    "clean_up_tokenization_spaces": False,
    "chat_template": CHAT_TEMPLATE,
}


def corpus() -> list[str]:
    """Fixed training text: a few hundred lines of words the tests send, plus every printable ASCII."""
    words = (
        "the quick brown fox jumps over the lazy dog hello world model token stream usage request "
        "response gateway proxy api key chat completion system user assistant embedding rerank score "
        "llama prefix cache block tiny random weights cpu server health zero one two three four five"
    ).split()
    lines = [" ".join(words[(i * 13 + j * 5) % len(words)] for j in range(5 + (i * 7) % 11)) for i in range(400)]
    lines.append("0123456789 !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~ ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    return lines


def tokenizer() -> Tokenizer:
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus(), trainer=trainer)
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def build(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tok = tokenizer()
    tok.save(str(out / "tokenizer.json"))
    write_json(out / "config.json", {**LLAMA_CONFIG, "vocab_size": tok.get_vocab_size()})
    write_json(out / "tokenizer_config.json", TOKENIZER_CONFIG)
    write_json(out / "generation_config.json", {"bos_token_id": BOS_ID, "eos_token_id": EOS_ID, "pad_token_id": PAD_ID})


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    build(Path(sys.argv[1]))
