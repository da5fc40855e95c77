"""meterline quick start for Python.

    METERLINE_API_KEY=ml_sk_... METERLINE_ENDPOINT=http://127.0.0.1:8080 python quickstart.py

Tracks a few billable events for two customers, shows an invalid event being refused,
asks one customer's entitlement, flushes, prints the client's counters, and prints what
the server stored (read back through ``GET /v1/events`` with urllib).
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from datetime import datetime, timezone

import meterline


def main() -> int:
    api_key = os.environ.get("METERLINE_API_KEY")
    if not api_key:
        print("set METERLINE_API_KEY to a secret key (ml_sk_...)", file=sys.stderr)
        return 2
    endpoint = os.environ.get("METERLINE_ENDPOINT", "http://127.0.0.1:8080")

    errors: list[meterline.MeterlineError] = []
    with meterline.Client(
        api_key, endpoint, source="python-quickstart", on_error=errors.append
    ) as client:
        # Every billable action is one track(): it validates and queues, never waits on the
        # network. The background sender batches, compresses and retries.
        for i in range(5):
            event_id = client.track(
                "api.call", "customer-42", {"tokens": 100 * (i + 1), "model": "m-large"}
            )
            print(f"tracked api.call for customer-42 ({event_id})")
        client.track(
            "api.call",
            "customer-7",
            {"tokens": 42, "model": "m-small"},
            time=datetime.now(timezone.utc),
        )

        # An invalid event fails at once, with the JSON pointer of the problem, and is not
        # queued.
        try:
            client.track("api.call", "customer-42", {"tokens": float("nan")})
        except meterline.ValidationError as error:
            print(f"refused as expected: {error}")

        # Entitlements: answered from a local cache kept current by the server's stream; a
        # miss waits at most entitlement_timeout, then answers the fallback with a reason.
        answer = client.entitlement("customer-42", "api_calls")
        print(
            f"entitlement api_calls for customer-42: has_access={answer.has_access} "
            f"kind={answer.kind} usage={answer.usage} limit={answer.limit} "
            f"source={answer.source} reason={answer.reason}"
        )

        client.flush(timeout=10)
        stats = client.stats()
        print(
            f"stats: enqueued={stats.enqueued} sent={stats.sent} "
            f"duplicates={stats.duplicates} rejected={stats.rejected} dropped={stats.dropped}"
        )
    for problem in errors:
        print(f"background error: {problem.code}: {problem}")

    # Read back what the server stored.
    request = urllib.request.Request(
        endpoint.rstrip("/") + "/v1/events?limit=1000",
        headers={"Authorization": f"Bearer {api_key}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        events = json.load(response)["events"]
    print(f"the server stored {len(events)} events:")
    for event in events:
        data = json.dumps(event.get("data"), sort_keys=True)
        print(f"  {event.get('time', '-')} {event['type']} {event['subject']} {data}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
