"""The tracking plan compiled into msgspec Structs, so JSON is parsed and checked in one pass.

Each planned type whose `data` schema is covered becomes a Struct tagged by `type`, with the
item's fields, their kinds and lengths (schemas.tracking's limits), and `data` as a Struct
of its own; unknown fields are refused. msgspec decodes an item's JSON text straight into
one of them, in C. It takes only items that the full rules (schemas.tracking) would take as
the same values, and refuses anything else by raising: aliases, unplanned types, every kind
of mistake. A refused item is then parsed again and checked field by field, which names its
errors, so what is accepted and what is answered do not depend on this module.
What `data` may hold to be covered is schemas.json_structs'; a type with anything else in
its `data` is left to the full rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import msgspec

from schemas.json_structs import Limit, data_struct


class ItemDecoder:
    """Decodes an item's JSON text into the Struct of its planned type, or raises."""

    def __init__(self, data_schemas: Mapping[str, Any], limits: Mapping[str, int]) -> None:
        structs = {}
        for name, schema in data_schemas.items():
            data = data_struct(name, schema)
            if data is not None:
                structs[_item_struct(name, data, limits)] = name
        self.types: dict[type, str] = structs  # Struct -> the planned type it stands for
        self._decoder: msgspec.json.Decoder[Any] | None = None
        if structs:
            self._decoder = msgspec.json.Decoder(_union(list(structs)))

    def decode(self, text: bytes | msgspec.Raw) -> Any:
        """The item's Struct; msgspec.DecodeError (a subclass: ValidationError) otherwise."""
        if self._decoder is None:
            raise msgspec.ValidationError("no planned type is compiled")
        return self._decoder.decode(text)


def _union(structs: list[type]) -> Any:
    union: Any = structs[0]
    for struct in structs[1:]:
        union = union | struct
    return union


def _item_struct(name: str, data: type, limits: Mapping[str, int]) -> type:
    def text(longest: int) -> Any:
        return Annotated[str, Limit(min_length=1, max_length=longest)] | None

    fields: list[Any] = [
        ("data", data),
        ("id", text(limits["id"]), None),
        ("user_id", text(limits["user_id"]), None),
        ("anonymous_id", text(limits["anonymous_id"]), None),
        ("timestamp", int | str | None, None),
    ]
    return msgspec.defstruct(
        f"Tracked_{name}", fields, tag_field="type", tag=name,
        forbid_unknown_fields=True, kw_only=True,
    )  # fmt: skip
