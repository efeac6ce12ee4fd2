"""The versioned JSON format of a benchmark run, validated with jsonschema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

try:
    import jsonschema
except ImportError:  # pragma: no cover - minimal images (e.g. a bare GPU box) may lack it
    jsonschema = None

__all__ = ["SCHEMA", "SCHEMA_VERSION", "BenchFileError", "load_run", "validate_run"]

SCHEMA_VERSION = "monobench/1"

_TIMING = {
    "type": "object",
    "required": ["median_s"],
    "properties": {
        "median_s": {"type": "number", "exclusiveMinimum": 0},
        "iqr_s": {"type": "number", "minimum": 0},
        "min_s": {"type": "number", "minimum": 0},
        "max_s": {"type": "number", "minimum": 0},
        "repeats": {"type": "integer", "minimum": 1},
        "recorded": {"type": "boolean"},
    },
}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["schema", "package", "environment", "settings", "results"],
    "properties": {
        "schema": {"const": SCHEMA_VERSION},
        "package": {"type": "string", "minLength": 1},
        "environment": {
            "type": "object",
            "required": ["date", "device", "device_name", "versions"],
        },
        "settings": {"type": "object"},
        "results": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["case", "id", "params", "status"],
                "properties": {
                    "case": {"type": "string"},
                    "id": {"type": "string"},
                    "params": {"type": "object"},
                    "status": {"enum": ["ok", "error"]},
                    "error": {"type": ["string", "null"]},
                    "candidate": _TIMING,
                    "baseline": _TIMING,
                    "speedup": {"type": ["number", "null"]},
                    "extra": {"type": "object"},
                },
            },
        },
    },
}


class BenchFileError(ValueError):
    """A results file that cannot be read or does not follow the schema."""


def validate_run(run: Any, source: str = "<run>") -> dict[str, Any]:
    """Validate a decoded run against :data:`SCHEMA`; :class:`BenchFileError` names the field."""
    if jsonschema is None:
        missing = [k for k in SCHEMA["required"] if not isinstance(run, dict) or k not in run]
        if missing or run.get("schema") != SCHEMA_VERSION:
            raise BenchFileError(f"{source}: not a {SCHEMA_VERSION} results file ({missing})")
        return run
    try:
        jsonschema.validate(run, SCHEMA)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "<top level>"
        raise BenchFileError(
            f"{source}: not a {SCHEMA_VERSION} results file ({where}: {exc.message})"
        ) from None
    return run


def load_run(path: str | Path) -> dict[str, Any]:
    """Read and validate a results JSON file."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise BenchFileError(f"{p}: cannot read ({exc.strerror or exc})") from None
    try:
        run = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BenchFileError(f"{p}: invalid JSON at line {exc.lineno} ({exc.msg})") from None
    return validate_run(run, str(p))
