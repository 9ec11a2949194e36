"""OpenAPI entries for the webhook receiver, subscriptions and the change feed (merged into
`api.openapi.build_openapi()`'s document by `api.app`)."""

from __future__ import annotations

from typing import Any

from jobs.changes import CURSOR_PATTERN, DEFAULT_LIMIT, EVENT_TYPES, MAX_LIMIT

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: Schema) -> Schema:
    return {"content": {"application/json": {"schema": schema}}}


def _error(description: str) -> Schema:
    return {"description": description, **_json(_ref("Error"))}


def _ok(description: str, name: str) -> Schema:
    return {"description": description, **_json(_ref(name))}


_STD = {
    "401": _error("unauthorized: missing or invalid bearer token"),
    "500": _error("internal: a bug, logged with its traceback"),
    "503": _error("unavailable: Redis, MongoDB or the upstream API is not answering"),
}
_SUB_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 128}}
_ROLE_EVENT = {
    "type": "object",
    "properties": {
        "type": {"type": "string", "enum": list(EVENT_TYPES)},
        "company_id": {"type": ["integer", "null"]},
        "company_name": {"type": ["string", "null"]},
        "title": {"type": ["string", "null"]},
        "date_from": {"type": ["string", "null"]},
        "date_to": {"type": ["string", "null"]},
        "previous_title": {"type": ["string", "null"]},
        "previous_company_id": {"type": ["integer", "null"]},
        "previous_company_name": {"type": ["string", "null"]},
        "removed": {"type": "boolean"},
    },
}


def schemas() -> dict[str, Schema]:
    return {
        "WebhookAccepted": {
            "type": "object",
            "properties": {"accepted": {"type": "integer"}, "duplicate": {"type": "boolean"}},
        },
        "Subscription": {
            "type": "object",
            "description": "id, type, selection, created_at, expiring_at, "
            "last_delivery_at, collect_unknown, ids_count, query; webhook_url only on create",
        },
        "SubscriptionList": {
            "type": "object",
            "properties": {"subscriptions": {"type": "array", "items": _ref("Subscription")}},
        },
        "RoleEvent": _ROLE_EVENT,
        "ChangeEvent": {
            "type": "object",
            "properties": {
                "id": {"type": "integer", "description": "sequence number: the feed's order"},
                "employee_id": {"type": "integer"},
                "detected_at": {"type": "string", "format": "date-time"},
                "source": {"type": "string", "enum": ["collect", "bulk", "webhook"]},
                "run_id": {"type": ["string", "null"]},
                "fields": {"type": "array", "items": {"type": "string"}},
                "events": {"type": "array", "items": _ref("RoleEvent")},
            },
        },
        "ChangePage": {
            "type": "object",
            "properties": {
                "changes": {"type": "array", "items": _ref("ChangeEvent")},
                "next_cursor": {"type": "string", "description": "pass back as cursor; never null"},
                "has_more": {"type": "boolean"},
            },
        },
    }


def _receiver() -> Schema:
    notice = {
        "type": "object",
        "required": ["member_id", "status"],
        "properties": {
            "member_id": {"type": "integer", "minimum": 1},
            "status": {"type": "string"},
            "changed_fields": {"type": "array", "items": {"type": "string"}},
        },
        "additionalProperties": False,
    }
    return {
        "post": {
            "summary": "Coresignal webhook receiver (capability URL: the token is the credential)",
            "security": [],
            "operationId": "receiveWebhook",
            "parameters": [{"name": "token", "in": "path", "required": True, "schema": {"type": "string"}}],
            "requestBody": {"required": True, **_json({"type": "array", "minItems": 1, "items": notice})},
            "responses": {
                "202": _ok("stored in the inbox; refreshed asynchronously", "WebhookAccepted"),
                "400": _error("invalid_body: not the documented notice list"),
                "404": _error("not_found: unknown token"),
                "413": _error("too_large: over WEBHOOK_MAX_BODY_BYTES or WEBHOOK_MAX_NOTICES"),
                "503": _STD["503"],
            },
        }
    }


def _changes() -> Schema:
    params = [
        {"name": "since", "in": "query", "schema": {"type": "string", "format": "date-time"}},
        {
            "name": "employee_id",
            "in": "query",
            "schema": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
        },
        {"name": "type", "in": "query", "schema": {"type": "string", "enum": list(EVENT_TYPES)}},
        {
            "name": "limit",
            "in": "query",
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
        },
        {"name": "cursor", "in": "query", "schema": {"type": "string", "pattern": CURSOR_PATTERN}},
    ]
    return {
        "get": {
            "summary": "Change events in sequence order. Pages never skip or repeat an event while new "
            "ones arrive: events are served once settled (CHANGES_SETTLE_S after their number was "
            "allocated); pass next_cursor back with the same filters",
            "operationId": "listChanges",
            "parameters": params,
            "responses": {
                "200": _ok("one page", "ChangePage"),
                "400": _error("invalid_parameter"),
                **_STD,
            },
        }
    }


def _op(summary: str, op_id: str, ok: tuple[str, Schema], errors: str, **extra: Any) -> Schema:
    responses: dict[str, Schema] = {ok[0]: ok[1]}
    for status in errors.split():
        responses[status] = _STD.get(status) or _error(status)
    return {"summary": summary, "operationId": op_id, "responses": {**responses, **_STD}, **extra}


# Exactly one of ids / query / all (which the upstream then judges: a query it refuses is a 422).
_CREATE_SUBSCRIPTION: Schema = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "type": {"type": "string", "enum": ["experience", "profile"]},
        "ids": {
            "type": "array",
            "minItems": 1,
            "items": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
        },
        "query": {"type": "object", "required": ["query"], "properties": {"query": {"type": "object"}}},
        "all": {"const": True},
        "collect_unknown": {"type": "boolean"},
    },
    "oneOf": [{"required": ["ids"]}, {"required": ["query"]}, {"required": ["all"]}],
}


def paths() -> dict[str, Schema]:
    return {
        "/v1/webhooks/coresignal/{token}": _receiver(),
        "/v1/changes": _changes(),
        "/v1/subscriptions": {
            "post": _op(
                "Create a webhook subscription upstream ({type, ids | query | all: true, collect_unknown})",
                "createSubscription",
                ("201", _ok("created; webhook_url (with its token) is shown only here", "Subscription")),
                "400 422 502",
                requestBody={"required": True, **_json(_CREATE_SUBSCRIPTION)},
            ),
            "get": _op(
                "List subscriptions", "listSubscriptions", ("200", _ok("all", "SubscriptionList")), ""
            ),
        },
        "/v1/subscriptions/{id}": {
            "get": _op(
                "A subscription, with what the upstream says now",
                "getSubscription",
                ("200", _ok("the subscription", "Subscription")),
                "400 404 502",
                parameters=[_SUB_ID],
            ),
            "delete": _op(
                "Delete a subscription upstream and here",
                "deleteSubscription",
                ("204", {"description": "deleted"}),
                "400 404 502",
                parameters=[_SUB_ID],
            ),
        },
        "/v1/subscriptions/{id}/renew": {
            "post": _op(
                "Renew a subscription (91 more days, within its one-year limit)",
                "renewSubscription",
                ("200", _ok("renewed", "Subscription")),
                "400 404 422 502",
                parameters=[_SUB_ID],
            )
        },
    }


def extend(document: dict[str, Any]) -> dict[str, Any]:
    document["paths"].update(paths())
    document["components"]["schemas"].update(schemas())
    return document
