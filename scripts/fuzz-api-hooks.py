"""The one expectation scripts/fuzz-api adds to what the OpenAPI document says.

An Idempotency-Key first used with another request is refused with 422
(urn:problem:order-api:idempotency-key-reused), as the IETF Idempotency-Key draft asks,
even though the request itself is schema-valid: the document says so in the 422 response of
POST /api/orders, but no schema can express "this key was used before". Schemathesis draws
short keys, so it reuses them with other bodies and reports that 422 as a schema-valid
request rejected. This drops exactly that report; every other failure, including any other
422 for a schema-valid order, still fails the run.
"""

import schemathesis
from schemathesis.openapi.checks import RejectedPositiveData

IDEMPOTENCY_KEY_REUSED = "urn:problem:order-api:idempotency-key-reused"


def _problem_type(response):
    try:
        body = response.json()
    except Exception:  # not JSON: not the problem this hook is about
        return None
    return body.get("type") if isinstance(body, dict) else None


@schemathesis.hook.apply_to(method="POST", path="/api/orders")
def filter_failure(context, failure, case, response):
    """Keeps every failure except a reused key's documented 422."""
    reused_key = (
        isinstance(failure, RejectedPositiveData)
        and response.status_code == 422
        and _problem_type(response) == IDEMPOTENCY_KEY_REUSED
    )
    return not reused_key
