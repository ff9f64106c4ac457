"""The components of the stack, one package per area, named like their type tokens
(`llm-edge:<area>:<Name>`): edge, tunnel, secrets, cluster, inference, gateway, traffic,
observability. `config` is the typed stack config, split by the same areas; `kube` holds the
Kubernetes building blocks the areas share and `naming` the rules that keep derived names within
their limits. Each package's `__init__` names what it offers.
"""
