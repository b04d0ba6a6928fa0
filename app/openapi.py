"""The OpenAPI schemas of the wire types, as msgspec generates them: msgspec is also what decodes and checks every
request body, so the document states exactly what the decoder enforces (required members, msgspec.Meta lengths,
patterns and ranges, Literal enums, and `additionalProperties: false` where a struct forbids unknown fields).

A struct that is decoded leniently, because the service checks it itself to report problems in the contract's
shape, names the JSON Schema of what is really enforced in its `DOCUMENTED_AS` class attribute; the document shows
that schema under the struct's name. Litestar's own struct plugin, which this replaces, drops nested constraints and
never says `additionalProperties: false`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import msgspec
from litestar.openapi.spec import OpenAPIFormat, OpenAPIType, Reference, Schema
from litestar.plugins import OpenAPISchemaPlugin
from litestar.typing import FieldDefinition

# A struct's class attribute: a function returning the JSON Schema (2020-12) the service enforces for it. A local
# reference ("#/$defs/<name>") to a definition named after a struct the struct contains is that struct's component;
# other definitions are written inline.
DOCUMENTED_AS = "documented_as"

_REFERENCE_PREFIX = "#/$defs/"
# JSON Schema keywords holding one subschema, a list of them, or a map of them.
_SUBSCHEMA = frozenset(
    {"items", "additionalProperties", "propertyNames", "not", "contains", "if", "then", "else", "contentSchema"}
    | {"unevaluatedItems", "unevaluatedProperties"}
)
_SUBSCHEMA_LISTS = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
_SUBSCHEMA_MAPS = frozenset({"properties", "patternProperties", "dependentSchemas"})
# Keywords that identify or hold a standalone document's parts, not constraints of the schema itself.
_DOCUMENT_KEYWORDS = frozenset({"$schema", "$id", "$defs", "$comment"})


def _json_name(field: dataclasses.Field[Any]) -> str:
    alias = field.metadata.get("alias")
    if isinstance(alias, str):
        return alias
    first, *rest = field.name.split("_")
    return first + "".join(part.title() for part in rest)


# JSON Schema keyword -> attribute of Litestar's Schema.
_ATTRIBUTES = {_json_name(field): field.name for field in dataclasses.fields(Schema)}

Resolve = Callable[[str], "Schema | Reference"]


class StructSchemaPlugin(OpenAPISchemaPlugin):
    """Documents every msgspec Struct with msgspec's own JSON Schema of it, as a component named after the class."""

    def is_plugin_supported_field(self, field_definition: FieldDefinition) -> bool:
        return not field_definition.is_union and field_definition.is_subclass_of(msgspec.Struct)

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: Any) -> Schema:
        struct = field_definition.type_
        # Registered before its members are converted, so a struct that contains itself refers to its component.
        component: Schema = schema_creator.schema_registry.get_schema_for_field_definition(field_definition)
        structs = _nested_structs(struct)

        def component_of(name: str) -> Schema | Reference:
            result: Schema | Reference = schema_creator.for_field_definition(
                FieldDefinition.from_annotation(structs[name])
            )
            return result

        documented: Callable[[], dict[str, Any]] | None = getattr(struct, DOCUMENTED_AS, None)
        if documented is not None:
            document = documented()
            definitions: dict[str, Any] = document.get("$defs", {})

            def resolve(name: str) -> Schema | Reference:
                # A definition named after a member struct is that struct's component; others are written inline.
                if name in structs and name != struct.__name__:
                    return component_of(name)
                return to_schema(definitions[name], resolve)

            converted = to_schema(document, resolve)
        else:
            (_,), components = msgspec.json.schema_components([struct], ref_template=_REFERENCE_PREFIX + "{name}")
            if set(components) != set(structs):
                raise TypeError(f"msgspec names the structs of {struct.__name__} {sorted(components)}")
            converted = to_schema(components[struct.__name__], component_of)
            if isinstance(converted, Schema):
                _mark_zoned_times(converted, struct)
        if not isinstance(converted, Schema):
            raise TypeError(f"the documented schema of {struct.__name__} is only a reference")
        for field in dataclasses.fields(Schema):
            setattr(component, field.name, getattr(converted, field.name))
        # Litestar refers to a component (rather than inlining it) when it is a titled object.
        component.title = struct.__name__
        component.type = OpenAPIType.OBJECT
        return component


def to_schema(node: dict[str, Any], resolve: Resolve) -> Schema | Reference:
    """Litestar's Schema object of a JSON Schema (2020-12) dict; `resolve` gets the name of each "#/$defs/<name>"."""
    reference = node.get("$ref")
    if isinstance(reference, str):
        if not reference.startswith(_REFERENCE_PREFIX):
            raise ValueError(f"only local references are supported, not {reference!r}")
        target = resolve(reference.removeprefix(_REFERENCE_PREFIX))
        rest = {key: value for key, value in node.items() if key != "$ref" and key not in _DOCUMENT_KEYWORDS}
        if not rest:
            return target
        schema = _converted(rest, resolve)
        schema.all_of = [*(schema.all_of or ()), target]
        return schema
    return _converted(node, resolve)


def _converted(node: dict[str, Any], resolve: Resolve) -> Schema:
    attributes: dict[str, Any] = {}
    for keyword, value in node.items():
        if keyword in _DOCUMENT_KEYWORDS:
            continue
        converted: Any
        if keyword in _SUBSCHEMA and isinstance(value, dict):
            converted = to_schema(value, resolve)
        elif keyword in _SUBSCHEMA_LISTS:
            converted = [to_schema(item, resolve) for item in value]
        elif keyword in _SUBSCHEMA_MAPS:
            converted = {name: to_schema(item, resolve) for name, item in value.items()}
        elif keyword == "type":
            converted = [OpenAPIType(item) for item in value] if isinstance(value, list) else OpenAPIType(value)
        elif keyword == "format":
            converted = OpenAPIFormat(value)
        elif keyword in _ATTRIBUTES:
            converted = value
        else:
            raise ValueError(f"JSON Schema keyword {keyword!r} has no place in an OpenAPI schema object")
        attributes[_ATTRIBUTES[keyword]] = converted
    enum = node.get("enum")
    # msgspec gives a Literal only its values; generated clients want the type too.
    if "type" not in node and enum:
        types = {_ENUM_TYPES.get(type(value)) for value in enum}
        if len(types) == 1 and None not in types:
            attributes["type"] = types.pop()
    return Schema(**attributes)


_ENUM_TYPES = {str: OpenAPIType.STRING, bool: OpenAPIType.BOOLEAN, int: OpenAPIType.INTEGER}


def _mark_zoned_times(schema: Schema, struct: type[msgspec.Struct]) -> None:
    """Document datetime members as RFC 3339 date-times, which msgspec does only for those annotated tz=True: every
    time the service sends comes from a timestamptz column, so it carries its offset."""
    info = msgspec.inspect.type_info(struct)
    assert isinstance(info, msgspec.inspect.StructType)
    for field in info.fields:
        options = field.type.types if isinstance(field.type, msgspec.inspect.UnionType) else (field.type,)
        kinds = {type(option.type if isinstance(option, msgspec.inspect.Metadata) else option) for option in options}
        # Only a datetime is a string without a format here, unless a plain string is an option too.
        if msgspec.inspect.DateTimeType not in kinds or msgspec.inspect.StrType in kinds:
            continue
        member = (schema.properties or {}).get(field.encode_name)
        for branch in (member.any_of or (member,)) if isinstance(member, Schema) else ():
            if isinstance(branch, Schema) and branch.type == OpenAPIType.STRING and branch.format is None:
                branch.format = OpenAPIFormat.DATE_TIME


def _nested_structs(struct: type[msgspec.Struct]) -> dict[str, type[msgspec.Struct]]:
    """Every struct type reachable from `struct` (itself included), by class name."""
    found: dict[str, type[msgspec.Struct]] = {}
    pending: list[msgspec.inspect.Type] = [msgspec.inspect.type_info(struct)]
    while pending:
        current = pending.pop()
        if isinstance(current, msgspec.inspect.Metadata):
            pending.append(current.type)
        elif isinstance(current, msgspec.inspect.StructType):
            if current.cls.__name__ in found:
                continue
            found[current.cls.__name__] = current.cls
            pending.extend(field.type for field in current.fields)
        elif isinstance(current, msgspec.inspect.UnionType):
            pending.extend(current.types)
        elif isinstance(current, msgspec.inspect.CollectionType):
            pending.append(current.item_type)
        elif isinstance(current, msgspec.inspect.TupleType):
            pending.extend(current.item_types)
        elif isinstance(current, msgspec.inspect.DictType):
            pending.extend((current.key_type, current.value_type))
    return found
