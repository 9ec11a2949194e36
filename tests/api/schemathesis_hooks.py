"""A check of our own for the schemathesis run (loaded through SCHEMATHESIS_HOOKS).

schemathesis.toml lets POST /v1/runs answer a schema-valid body with 422; this check allows only
the two refusals JSON Schema cannot express: a shorthand_names list with no usable name
(`no_valid_items`) and a search body over the API's limits (`invalid_query`).
"""

from __future__ import annotations

from typing import Any

import schemathesis


@schemathesis.check
def unprocessable_only_where_the_schema_cannot_say(ctx: Any, response: Any, case: Any) -> bool | None:
    if case.method != "POST" or case.path != "/v1/runs" or response.status_code != 422:
        return None
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return None
    code = response.json()["error"]["code"]
    body = case.body if isinstance(case.body, dict) else {}
    explained = {"shorthand_names": "no_valid_items", "search": "invalid_query"}
    if any(field in body and code == expected for field, expected in explained.items()):
        return None
    raise AssertionError(f"a schema-valid body was refused with 422 {code}: {body!r:.300}")
