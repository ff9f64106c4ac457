"""GPU utilisation and memory of the vLLM pods, from the cluster vendor's exporter.

NVIDIA: dcgm-exporter (GPU Operator), fields of its default-counters.csv: DCGM_FI_DEV_GPU_UTIL (%),
DCGM_FI_DEV_FB_USED and DCGM_FI_DEV_FB_FREE (MiB), labels `Hostname` and `gpu`.
AMD: device-metrics-exporter (AMD GPU Operator), docs/configuration/metricslist.md:
gpu_gfx_activity (%), gpu_used_vram and gpu_total_vram (MB), labels `hostname` and `gpu_id`.

Both label each GPU's series with the pod and namespace that use it. Scraped with
`honorLabels: false` (dcgm-exporter's chart default) those arrive as `exported_namespace`; with
`honorLabels: true` (AMD's chart default) as `namespace`: the queries accept either. Without the
exporter the panels stay empty.
"""

from __future__ import annotations

from typing import Literal

from components.observability.grafana.panels import Panel, Query

EXPORTERS = {"nvidia": "NVIDIA dcgm-exporter", "amd": "AMD device-metrics-exporter"}


def _series(metric: str) -> str:
    return f'({metric}{{exported_namespace="$namespace"}} or {metric}{{namespace="$namespace"}})'


def panels(vendor: Literal["nvidia", "amd"]) -> tuple[Panel, ...]:
    if vendor == "nvidia":
        gpu, legend = "Hostname, gpu", "{{Hostname}} GPU {{gpu}}"
        busy = f"avg by ({gpu}) ({_series('DCGM_FI_DEV_GPU_UTIL')}) / 100"
        used = f"sum by ({gpu}) ({_series('DCGM_FI_DEV_FB_USED')})"
        whole = f"({used} + sum by ({gpu}) ({_series('DCGM_FI_DEV_FB_FREE')}))"
    else:
        gpu, legend = "hostname, gpu_id", "{{hostname}} GPU {{gpu_id}}"
        busy = f"avg by ({gpu}) ({_series('gpu_gfx_activity')}) / 100"
        used = f"sum by ({gpu}) ({_series('gpu_used_vram')})"
        whole = f"sum by ({gpu}) ({_series('gpu_total_vram')})"
    exporter = EXPORTERS[vendor]
    return (
        Panel(
            "GPU utilisation",
            f"Share of time each GPU of this namespace's pods is busy ({exporter}; empty without it).",
            (Query(busy, legend),), unit="percentunit", width=12,
        ),
        Panel(
            "GPU memory used",
            f"Share of each GPU's memory in use; vLLM takes `gpuMemoryUtilization` of it at start ({exporter}).",
            (Query(f"{used} / {whole}", legend),), unit="percentunit", width=12,
        ),
    )
