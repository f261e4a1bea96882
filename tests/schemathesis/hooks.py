"""schemathesis hooks for tests/schemathesis.rs (loaded with SCHEMATHESIS_HOOKS=hooks).

The long-poll `GET /v1/bundles?wait=N` is held N seconds (at most 60) when
nothing newer than `after` waits, as documented: a legitimate answer, but one
that would stretch the run by minutes. Generated listings that the node
could hold (a whole number of seconds above 0) are skipped, and hypothesis
draws others; every other value of `wait` (0, negative, fractional, not a
number, empty, repeated) is still sent.
"""

import schemathesis


def _holds(value) -> bool:
    """Whether the node could hold a listing with this `wait`."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value > 0
    if isinstance(value, str):
        return value.isascii() and value.isdigit() and int(value) > 0
    if isinstance(value, list):
        return bool(value) and _holds(value[0])
    return False


@schemathesis.hook("filter_query").apply_to(path="/v1/bundles", method="GET")
def filter_query(context, query):
    return not (query and "wait" in query and _holds(query["wait"]))


# The bundle and application bodies are raw bytes (`format: binary`), sent
# as they are, like `application/octet-stream`.
schemathesis.serializer.alias(
    ["application/zip", "application/vnd.sealpost.bundle+zip"], "application/octet-stream"
)
