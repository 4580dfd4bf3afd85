"""Request bodies decoded the way Toxiproxy's Go server decodes them.

Go's encoding/json reads the first JSON value (trailing bytes are ignored), matches
keys case-insensitively, leaves a field alone when it is missing or null, and rejects
a value of the wrong JSON type, a fraction or exponent for an integer, and NaN.
Every such rejection here is a 400 "bad request body: ...", never a 5xx.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from typing import Any

from faultlab.harness.proxy.collection import ProxySpec
from faultlab.harness.proxy.errors import (
    BAD_REQUEST_BODY,
    INVALID_STREAM,
    INVALID_TOXIC_TYPE,
    MISSING_FIELD,
    TOXIC_EXISTS,
)
from faultlab.harness.proxy.toxics import REGISTRY, Toxic, ToxicEntry

DEFAULT_LISTEN = "127.0.0.1:0"  # Toxiproxy binds every interface here; we stay on loopback
INT64 = (-(2**63), 2**63 - 1)
FLOAT32_MAX = 3.4028234663852886e38
_MISSING = object()


def _no_constants(name: str) -> Any:
    raise ValueError(f"invalid character '{name[0]}' looking for beginning of value")


_DECODER = json.JSONDecoder(parse_constant=_no_constants)


def decode(raw: bytes) -> Any:
    """The first JSON value of a body; 400 when there is none or it is malformed."""
    text = raw.decode("utf-8", errors="replace").lstrip(" \t\r\n")
    if not text:
        raise BAD_REQUEST_BODY.joined("EOF")
    try:
        value, _ = _DECODER.raw_decode(text)
    except json.JSONDecodeError as exc:
        raise BAD_REQUEST_BODY.joined(exc.msg) from None
    except (ValueError, RecursionError) as exc:
        raise BAD_REQUEST_BODY.joined(str(exc) or "nesting too deep") from None
    return value


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _wrong(value: Any, where: str, go_type: str) -> Exception:
    got = _json_type(value)
    if got == "number":
        got = f"number {json.dumps(value)}"
    return BAD_REQUEST_BODY.joined(
        f"json: cannot unmarshal {got} into Go struct field {where} of type {go_type}"
    )


def _object(value: Any, go_type: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BAD_REQUEST_BODY.joined(
            f"json: cannot unmarshal {_json_type(value)} into Go value of type {go_type}"
        )
    return value


def _field(obj: dict[str, Any], key: str) -> Any:
    if key in obj:
        return obj[key]
    for name, value in obj.items():
        if name.lower() == key:
            return value
    return _MISSING


def _str(obj: dict[str, Any], key: str, default: str, where: str) -> str:
    value = _field(obj, key)
    if value is _MISSING or value is None:
        return default
    if not isinstance(value, str):
        raise _wrong(value, f"{where}.{key}", "string")
    return value


def _bool(obj: dict[str, Any], key: str, default: bool, where: str) -> bool:
    value = _field(obj, key)
    if value is _MISSING or value is None:
        return default
    if not isinstance(value, bool):
        raise _wrong(value, f"{where}.{key}", "bool")
    return value


def _float32(obj: dict[str, Any], key: str, default: float, where: str) -> float:
    value = _field(obj, key)
    if value is _MISSING or value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _wrong(value, f"{where}.{key}", "float32")
    if not math.isfinite(float(value)) or abs(float(value)) > FLOAT32_MAX:
        raise _wrong(value, f"{where}.{key}", "float32")
    return float(value)


# --- proxies ----------------------------------------------------------------------------
def proxy_create(body: Any) -> ProxySpec:
    obj = _object(body, "toxiproxy.Proxy")
    spec = ProxySpec(
        name=_str(obj, "name", "", "Proxy"),
        listen=_str(obj, "listen", "", "Proxy") or DEFAULT_LISTEN,
        upstream=_str(obj, "upstream", "", "Proxy"),
        enabled=_bool(obj, "enabled", True, "Proxy"),
    )
    if not spec.name:
        raise MISSING_FIELD.joined("name")
    if not spec.upstream:
        raise MISSING_FIELD.joined("upstream")
    return spec


def proxy_update(body: Any, listen: str, upstream: str, enabled: bool) -> tuple[str, str, bool]:
    """The new (listen, upstream, enabled); what the body leaves out stays as it is."""
    obj = _object(body, "toxiproxy.Proxy")
    return (
        _str(obj, "listen", listen, "Proxy") or DEFAULT_LISTEN,
        _str(obj, "upstream", upstream, "Proxy") or upstream,
        _bool(obj, "enabled", enabled, "Proxy"),
    )


def populate(body: Any) -> list[ProxySpec]:
    """A JSON array of proxies; all are checked before any is created."""
    if body is None:
        return []
    if not isinstance(body, list):
        raise BAD_REQUEST_BODY.joined(
            f"json: cannot unmarshal {_json_type(body)} into Go value of type "
            "[]struct { toxiproxy.Proxy; Enabled *bool }"
        )
    specs = []
    for i, item in enumerate(body, start=1):
        obj = _object(item, "toxiproxy.Proxy")
        spec = ProxySpec(
            name=_str(obj, "name", "", "Proxy"),
            listen=_str(obj, "listen", "", "Proxy") or DEFAULT_LISTEN,
            upstream=_str(obj, "upstream", "", "Proxy"),
            enabled=_bool(obj, "enabled", True, "Proxy"),
        )
        if not spec.name:
            raise MISSING_FIELD.joined(f"name at proxy {i}")
        if not spec.upstream:
            raise MISSING_FIELD.joined(f"upstream at proxy {i}")
        specs.append(spec)
    return specs


# --- toxics -----------------------------------------------------------------------------
def attributes(current: Toxic, raw: Any) -> Toxic:
    """`current` with the integer attributes that `raw` sets (unknown keys ignored)."""
    where = f"{type(current).__name__}.attributes"
    obj = _object(raw, f"toxics.{type(current).__name__}")
    changes: dict[str, int] = {}
    for field in dataclasses.fields(current):
        value = _field(obj, field.name)
        if value is _MISSING or value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise _wrong(value, f"{where}.{field.name}", "int64")
        if not INT64[0] <= value <= INT64[1]:
            raise _wrong(value, f"{where}.{field.name}", "int64")
        changes[field.name] = value
    return dataclasses.replace(current, **changes)


def parse_stream(stream: str) -> str:
    direction = stream.lower()
    if direction not in ("upstream", "downstream"):
        raise INVALID_STREAM
    return direction


def toxic_create(body: Any, exists: Callable[[str], bool]) -> ToxicEntry:
    """Checked in Toxiproxy's order: body, stream, type, duplicate name, attributes."""
    obj = _object(body, "toxics.ToxicWrapper")
    where = "ToxicWrapper"
    name = _str(obj, "name", "", where)
    kind = _str(obj, "type", "", where)
    stream = _str(obj, "stream", "downstream", where)
    toxicity = _float32(obj, "toxicity", 1.0, where)
    raw_attributes = _field(obj, "attributes")
    raw_attributes = None if raw_attributes is _MISSING else raw_attributes
    _object(raw_attributes, "toxics.NoopToxic")
    direction = parse_stream(stream)
    name = name or f"{kind}_{stream}"
    cls = REGISTRY.get(kind)
    if cls is None:
        raise INVALID_TOXIC_TYPE
    if exists(name):
        raise TOXIC_EXISTS
    toxic = attributes(cls(), raw_attributes)
    return ToxicEntry(name, kind, stream, direction, toxicity, toxic)


def toxic_update(body: Any, entry: ToxicEntry) -> tuple[Toxic, float]:
    """New attributes merged over the current ones, and the (maybe new) toxicity."""
    obj = _object(body, "struct { Attributes interface {}; Toxicity float32 }")
    toxicity = _float32(obj, "toxicity", entry.toxicity, "Toxicity")
    raw = _field(obj, "attributes")
    toxic = attributes(entry.toxic, None if raw is _MISSING else raw)
    return toxic, toxicity
