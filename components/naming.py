"""Names that fit their limits: derived from stack and cluster names, which the config cannot bound.

Kubernetes label values and DNS labels take at most 63 characters
(https://kubernetes.io/docs/concepts/overview/working-with-objects/names/), IAM role names 64
(https://docs.aws.amazon.com/IAM/latest/APIReference/API_CreateRole.html). A name within its limit
is kept as it is, so nothing that fits today changes; a longer one keeps its start and ends in a
hash of the whole, so it stays unique and the same on every run.
"""

from __future__ import annotations

import hashlib
import re

LABEL_VALUE_LIMIT = 63
IAM_ROLE_NAME_LIMIT = 64
_HASH_CHARS = 8


def bounded(name: str, limit: int) -> str:
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:_HASH_CHARS]
    return f"{name[: limit - _HASH_CHARS - 1].rstrip('-._')}-{digest}"


def pool_name(name: str) -> str:
    """Load balancer pool names allow "only alphanumeric characters, hyphens, and underscores"
    (Cloudflare API, load-balancing pools `name`); Pulumi stack names may also hold periods."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", name)
