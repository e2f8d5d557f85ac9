"""The command routes' operations, derived from their specs (gateway.commands.COMMAND_ROUTES)
and their commands' Avro schemas: nothing about a command route is declared twice.

The body is the command's `data` (schemas/commands/<Command>/), less the fields the gateway
fills itself: path parameters that are also data, and a field defaulting to the caller; plus
the client-chosen id of a create. Only the examples are written here.
"""

from __future__ import annotations

import re
from typing import Any

from gateway.commands import COMMAND_ROUTES, REJECTION_STATUS, CommandRoute
from gateway.dispatch import MAX_WAIT_SECONDS
from gateway.openapi.model import DATABASE, LOG, Body, JsonSchema, Operation, Param, Reply
from gateway.openapi.schema_kit import EXAMPLE_IDS, ID, command_data, ref

EXAMPLES: dict[str, dict[str, Any]] = {
    "RegisterUser": {"email": "ada@example.com", "name": "Ada", "locale": "en-GB"},
    "UpdateUserProfile": {"name": "Ada Lovelace"},
    "SetNotificationPreferences": {
        "channels": [{"channel": "email", "address": "ada@example.com", "enabled": True}],
        "quiet_hours": {"start": "22:00", "end": "07:00", "timezone": "Europe/London"},
    },
    "DeactivateUser": {"reason": "left the company"},
    "CreateWorkspace": {"name": "Analytical Engines"},
    "RenameWorkspace": {"name": "Difference Engines"},
    "AddWorkspaceMember": {"user_id": "charles", "role": "admin"},
    "RemoveWorkspaceMember": {},
    "ArchiveWorkspace": {"reason": "project done"},
}
IF_MATCH = Param(
    "If-Match",
    {"type": "string", "pattern": '^("[0-9]{1,18}"|\\*)$'},
    "optimistic concurrency: the version the aggregate must be at (its ETag); 412 if not",
    location="header",
    example='"3"',
)
PREFER = Param(
    "Prefer",
    {"type": "string", "pattern": "^wait=[0-9]{1,2}$"},
    f"`wait=N`: wait up to N seconds (at most {MAX_WAIT_SECONDS:g}) for the outcome and "
    "for the read models to show it; without it, or past it, the answer is 202",
    location="header",
    example="wait=5",
)
_WORDS = re.compile(r"(?<!^)(?=[A-Z])")


def command_operation(spec: CommandRoute) -> Operation:
    created = spec.id_param is None
    success = Reply(
        "accepted, and visible to the next request (with `Prefer: wait`)",
        ref("CommandAccepted"),
        headers=("ETag", "Preference-Applied", *(("Location",) if created else ())),
    )
    return Operation(
        summary=_WORDS.sub(" ", spec.command).capitalize(),
        tag=f"{spec.aggregate_type}s",
        description=f"Sends the command {spec.command} (schemas/commands/{spec.command}); "
        "the command is in Kafka before any 2xx.",
        scopes=(spec.scope,),
        params=(IF_MATCH, PREFER),
        path_params={
            "id": Param(
                "id",
                ID,
                f"the {spec.aggregate_type}'s id",
                example=EXAMPLE_IDS[spec.aggregate_type],
            ),
            "user_id": Param("user_id", ID, "the member's user id", example="charles"),
        },
        body=Body(_body(spec), optional=spec.body_optional, example=EXAMPLES[spec.command]),
        replies={
            201 if created else 200: success,
            202: Reply(
                "durably in the log, outcome not known yet (or not waited for)",
                ref("CommandPending"),
                headers=("Location",),
            ),
        },
        problems=_rejections(),
        uses=frozenset({LOG, DATABASE}),
    )


def _body(spec: CommandRoute) -> JsonSchema:
    data = command_data(spec.command)
    properties = {k: v for k, v in data["properties"].items() if k not in spec.path_data}
    filled = {*spec.path_data, spec.caller_default}
    required = [name for name in data.get("required", []) if name not in filled]
    if spec.body_id is not None:
        properties[spec.body_id] = ID | {"description": "the new aggregate's id (default: new)"}
    if spec.caller_default is not None:
        described = properties[spec.caller_default]
        properties[spec.caller_default] = described | {"description": "default: the caller"}
    body: JsonSchema = {**data, "properties": properties, "required": required}
    return body if required else {k: v for k, v in body.items() if k != "required"}


def _rejections() -> dict[int, str]:
    """What a broken rule answers, by the command processor's rejection kinds."""
    kinds: dict[int, list[str]] = {}
    for kind, status in REJECTION_STATUS.items():
        kinds.setdefault(status, []).append(kind)
    described = {s: f"rejected: {', '.join(k)}" for s, k in kinds.items() if s < 500}
    described[400] = "bad If-Match"
    described[422] = described[422] + "; the body does not match the command's schema"
    return described


def command_operations() -> dict[tuple[str, str], Operation]:
    """By (method, path), as the route table has them."""
    return {(spec.method, spec.path): command_operation(spec) for spec in COMMAND_ROUTES}
