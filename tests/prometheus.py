"""Read Prometheus text exposition in tests (with prometheus_client's own parser)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def samples(text: str) -> dict[str, dict[frozenset[tuple[str, str]], float]]:
    """sample name (`x_total`, `x_count`, `x`) → {frozenset of label pairs: value}."""
    out: dict[str, dict[frozenset[tuple[str, str]], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[frozenset(sample.labels.items())] = sample.value
    return out


def value(text: str, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels` (0 when there are none)."""
    wanted = set(labels.items())
    return sum(v for k, v in samples(text).get(name, {}).items() if wanted <= k)


def families(text: str) -> dict[str, str]:
    """metric family name → type, as `# TYPE` declares them (counters without `_total`)."""
    return {family.name: family.type for family in text_string_to_metric_families(text)}
