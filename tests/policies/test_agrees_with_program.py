"""The policy pack stands alone (it is published without the program), so it repeats two rules of
the program: which images count as pinned, and the label that marks a preview's namespace. These
tests prove that each pair agrees, so a stack the config accepts is one the pack accepts."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from components.config import DISPOSABLE_LABEL, is_pinned_image
from policies import kube, zone

_NAME = st.text(alphabet="abcxyz019._-", min_size=1, max_size=12)
_TAG = st.one_of(st.just("latest"), st.text(alphabet="abcXYZ019._-", min_size=1, max_size=10))
_DIGEST = st.text(alphabet="0123456789abcdef", min_size=63, max_size=65)


@st.composite
def image_references(draw) -> str:
    """Mostly well-formed references (registry, port, path, tag, digest in any mix), some broken."""
    registry = draw(st.sampled_from(["", "ghcr.io/", "registry.local:5000/", "Docker.io/", "a..b/"]))
    path = "/".join(draw(st.lists(_NAME, min_size=1, max_size=3)))
    tag = draw(st.one_of(st.none(), _TAG))
    digest = draw(st.one_of(st.none(), _DIGEST))
    reference = registry + path + (f":{tag}" if tag is not None else "") + (f"@sha256:{digest}" if digest else "")
    return draw(st.sampled_from([reference, reference.upper(), reference + " ", ":" + reference]))


@settings(max_examples=600, deadline=None)
@given(st.one_of(image_references(), st.text(max_size=40)))
@example("vllm/vllm-openai:v0.11.0")
@example("vllm/vllm-openai:latest")
@example("vllm/vllm-openai")
@example("ghcr.io/llm-edge/gateway@sha256:" + "a" * 64)
@example("registry.local:5000/vllm:v1")
@example("registry.local:5000/vllm")
def test_the_config_and_the_pack_agree_on_pinned_images(image):
    assert is_pinned_image(image) == kube.is_pinned_image(image)


def test_the_config_and_the_pack_name_the_same_preview_label():
    assert zone.DISPOSABLE_LABEL == DISPOSABLE_LABEL
