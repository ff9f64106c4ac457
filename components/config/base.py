"""Shared pieces of the typed stack config: the base model, value types, the error type."""

from __future__ import annotations

import re
from typing import Annotated, Literal

import pulumi
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

PROJECT = "llm-edge"

HOSTNAME_PATTERN = r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"
DNS_LABEL_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
# `[registry[:port]/]path[:tag][@sha256:digest]`, lower-case path as registries require.
IMAGE_PATTERN = r"^([a-z0-9.-]+(:[0-9]+)?/)?[a-z0-9._/-]+(:[0-9A-Za-z_][0-9A-Za-z_.-]{0,127})?(@sha256:[0-9a-f]{64})?$"
QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti)?$"


class ConfigError(pulumi.RunError):
    """A stack config problem. RunError makes Pulumi print the message without a traceback."""


class Model(BaseModel):
    """Base for config sections: camelCase keys, unknown keys rejected, immutable."""

    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True
    )


Hostname = Annotated[str, Field(pattern=HOSTNAME_PATTERN, max_length=253)]
DnsLabel = Annotated[str, Field(pattern=DNS_LABEL_PATTERN)]
Quantity = Annotated[str, Field(pattern=QUANTITY_PATTERN)]


def is_pinned_image(image: str) -> bool:
    """True when the image names a tag other than `latest`, or a digest."""
    if not re.match(IMAGE_PATTERN, image):
        return False
    name = image.split("@", 1)[0]
    tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else None
    has_digest = "@sha256:" in image
    return has_digest or (tag is not None and tag != "latest")


def _pinned(image: str) -> str:
    if not is_pinned_image(image):
        raise ValueError(
            f"image {image!r} is not pinned: give an explicit version tag (not 'latest') or a digest"
        )
    return image


PinnedImage = Annotated[str, AfterValidator(_pinned)]


class Resources(Model):
    """Container requests and limits (Kubernetes quantities)."""

    cpu_request: Quantity = "50m"
    memory_request: Quantity = "64Mi"
    cpu_limit: Quantity = "500m"
    memory_limit: Quantity = "256Mi"


class Taint(Model):
    """A node taint that pods of this stack must tolerate (operator Exists when no value)."""

    key: Annotated[str, Field(min_length=1)]
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None

