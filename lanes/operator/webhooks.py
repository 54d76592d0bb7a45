"""Call an analysis webhook as Flagger does: POST its JSON payload, 2xx means go on.

The payload is Flagger's, so hooks written for Flagger (its load tester, gates, notifiers)
work unchanged:

    {"name": ROLLOUT, "namespace": NS, "phase": PHASE, "checksum": REVISION,
     "metadata": {...the hook's metadata...}}

The operator only sends the payload; it never runs anything named in it. (Flagger's load
tester runs the `cmd` of its metadata on its own side; that stays the hook's business.)

One call is bounded by the hook's `timeout`, retries included: a connection failure or a 5xx
answer is tried once more if time is left, so at most two attempts fit in the timeout. A 4xx
or 3xx answer is final (redirects are not followed). Webhooks are reached directly, without
the proxies the environment names, as Prometheus is.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import httpx

from lanes.analysis.verdict import HookResult
from lanes.api.analysis import Webhook, seconds

MAX_ATTEMPTS = 2
RETRY_PAUSE_S = 0.1
MIN_ATTEMPT_S = 0.05  # less time left than this is not worth a second attempt
BODY_EXCERPT = 200


def webhook_payload(
    hook: Webhook, name: str, namespace: str, phase: str, checksum: str
) -> dict[str, Any]:
    """Flagger's webhook payload for rollout `name` in `namespace`, with the hook's metadata.

    `phase` is the rollout's phase as the hook should see it; `checksum` identifies the
    revision being released, so a hook can tell one release from the next.
    """
    return {
        "name": name,
        "namespace": namespace,
        "phase": phase,
        "checksum": checksum,
        "metadata": dict(hook.metadata),
    }


def call_webhook(
    hook: Webhook, payload: Mapping[str, Any], client: httpx.Client | None = None
) -> HookResult:
    """POST `payload` as JSON to `hook.url`; ok when it answers 2xx within `hook.timeout`.

    Never raises for a failed call: the result's message names the URL and what went wrong
    (the status and the start of the body, a timeout, a refused connection).
    """
    budget = seconds(hook.timeout)
    if client is None:
        with httpx.Client(trust_env=False, follow_redirects=False) as own:
            return _call(hook, payload, own, budget)
    return _call(hook, payload, client, budget)


def _call(
    hook: Webhook, payload: Mapping[str, Any], client: httpx.Client, budget: float
) -> HookResult:
    deadline = time.monotonic() + budget
    failure = ""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        left = deadline - time.monotonic()
        if attempt > 1 and left < MIN_ATTEMPT_S + RETRY_PAUSE_S:
            break
        if attempt > 1:
            time.sleep(RETRY_PAUSE_S)
            left -= RETRY_PAUSE_S
        ok, outcome, retry = _attempt(hook, payload, client, left)
        if ok:
            return HookResult(hook.name, True, outcome, hook.type)
        failure = outcome if attempt == 1 else f"{outcome} (attempt {attempt} of {MAX_ATTEMPTS})"
        if not retry:
            break
    return HookResult(hook.name, False, failure, hook.type)


def _attempt(
    hook: Webhook, payload: Mapping[str, Any], client: httpx.Client, timeout: float
) -> tuple[bool, str, bool]:
    """One POST: (whether it succeeded, what it answered or what went wrong, whether to retry).

    Every network wait (connecting, sending, reading) is bounded by `timeout`.
    """
    try:
        response = client.post(hook.url, json=dict(payload), timeout=timeout)
    except httpx.TimeoutException:
        return False, f"POST {hook.url} did not answer within {hook.timeout}", False
    except httpx.TransportError as error:
        return False, f"POST {hook.url} cannot be reached: {error or type(error).__name__}", True
    answered = f"POST {hook.url} answered {response.status_code}"
    if response.is_success:
        return True, answered, False
    return (
        False,
        f"{answered}{_excerpt(response)}",
        response.status_code >= 500,
    )


def _excerpt(response: httpx.Response) -> str:
    text = response.text.strip()
    if not text:
        return ""
    cut = text[:BODY_EXCERPT] + ("..." if len(text) > BODY_EXCERPT else "")
    return f": {cut}"
