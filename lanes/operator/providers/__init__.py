"""Metric providers: where an analysis check's queries are answered, one module per provider.

A provider is a function `query(address, query_text) -> value | Silence | None`, given
`headers=` too when the query carries credentials (a `Silence`
says why there is no value: no traffic in the window, or no data; None: no value, unexplained,
a failed check) that raises `ProviderUnavailable` when the provider cannot answer (the check holds and asks
again) and `QueryError` when the query is wrong (a failed check). A MetricTemplate names its
provider by `spec.provider.type`; the operator's built-in metrics use Prometheus. A new
provider is one module here and one entry in `PROVIDERS` (plus its `type` in
`lanes.api.analysis.MetricProvider`), as Flagger's `providers/` and Argo's metric providers are
laid out.
"""

from __future__ import annotations

from collections.abc import Callable

from lanes.analysis.queries import QueryError
from lanes.analysis.verdict import Silence

from .prometheus import PrometheusUnavailable, query_reading

__all__ = ["PROVIDERS", "ProviderUnavailable", "Query", "QueryError", "provider"]

Query = Callable[..., "float | Silence | None"]
"""Sends a query to the provider at an address: `query(address, text) -> value | Silence | None`,
with `headers=` (the credentials' Authorization) where the provider asks for credentials."""

ProviderUnavailable = PrometheusUnavailable
"""The provider did not answer, timed out, or failed itself: not the canary's fault."""

PROVIDERS: dict[str, Query] = {"prometheus": query_reading}
"""Each provider's query function, by the `spec.provider.type` that names it."""


def provider(kind: str) -> Query:
    """The query function of the provider named `kind`.

    Raises:
        QueryError: no provider has that name.
    """
    try:
        return PROVIDERS[kind]
    except KeyError:
        raise QueryError(f"no metric provider {kind!r}; known: {', '.join(sorted(PROVIDERS))}") from None
