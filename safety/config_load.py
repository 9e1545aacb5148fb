"""Loading a cell configuration: TOML -> schema -> the rules that span fields, every problem at once.

`load_config(path)` is the one entry point: TOML (stdlib `tomllib`) -> schema (pydantic, the models of
`safety.config`) -> the rules that span fields (`safety.config_rules`). Every problem found becomes one
line of `ConfigError.problems`, "FILE: key.path: what was wrong; expected ...", and all of them are
reported at once. It sits above the models and the rules, so neither imports it. Field reference:
docs/configuration.md.
"""

from __future__ import annotations

import difflib
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ValidationError

from cobotguard.safety.config import CellConfig, ConfigError, key_path, unit_of
from cobotguard.safety.config_rules import cell_problems, partial_problems


def load_config(path: str | PathLike[str]) -> CellConfig:
    """Read, parse and validate a cell configuration file; raises ConfigError listing every problem."""
    source = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(
            [f"{source}: cannot read the file ({exc.strerror}); expected a readable TOML file"]
        ) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [f"{source}: byte {exc.start}: not UTF-8 ({exc.reason}); expected a UTF-8 encoded TOML file"]
        ) from None
    return loads_config(text, source)


def loads_config(text: str, source: str = "<string>") -> CellConfig:
    """Parse and validate configuration TOML text; `source` names it in problem messages."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([_toml_problem(source, str(exc))]) from None
    return config_from_dict(raw, source)


def config_from_dict(raw: Mapping[str, Any], source: str = "<dict>") -> CellConfig:
    """Validate an already-parsed configuration (TOML tables as dicts); raises ConfigError."""
    try:
        cfg = CellConfig.model_validate(raw)
    except ValidationError as exc:
        problems = [_schema_problem(err) for err in exc.errors()]
        problems += partial_problems(raw)  # rules for the sections that did validate
        raise ConfigError([f"{source}: {p}" for p in _unique(problems)]) from None
    problems = cell_problems(cfg)
    if problems:
        raise ConfigError([f"{source}: {p}" for p in _unique(problems)])
    return cfg


def _unique(items: list[str]) -> list[str]:
    """Drop repeated lines, keep order."""
    return list(dict.fromkeys(items))


def _toml_problem(source: str, message: str) -> str:
    """One line for a TOML syntax error, with its line and column."""
    match = re.match(r"(?P<what>.*) \(at line (?P<line>\d+), column (?P<col>\d+)\)$", message)
    if match is None:
        return f"{source}: TOML syntax error: {message}; expected valid TOML (toml.io)"
    what = match["what"][0].lower() + match["what"][1:]
    return (
        f"{source}: line {match['line']}, column {match['col']}: TOML syntax error: {what}; "
        "expected valid TOML (toml.io)"
    )


def _short_repr(value: Any) -> str:
    """repr() cut to a readable length."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _schema_problem(err: Mapping[str, Any]) -> str:
    """One pydantic error as 'key.path: what was wrong; expected ...'."""
    loc = tuple(err["loc"])
    kind = err["type"]
    last_key = next((p for p in reversed(loc) if isinstance(p, str)), "")
    unit = unit_of(last_key)
    unit_note = f" in {unit}" if unit else ""
    if kind == "missing" and loc and isinstance(loc[-1], int):
        size = _tuple_size(loc[:-1])
        return (
            f"{key_path(loc[:-1])}: too few values ({_short_repr(err['input'])}); "
            f"expected a list of {size} numbers{unit_note}"
        )
    if kind == "missing":
        return f"{key_path(loc)}: required key is missing; expected a value{unit_note} (no default)"
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        hint = ""
        if allowed:
            close = difflib.get_close_matches(str(loc[-1]), allowed, n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            hint += "; expected one of: " + ", ".join(allowed)
        else:
            hint = "; expected no such key"
        return f"{key_path(loc)}: unknown key{hint}"
    if kind == "too_long":
        return (
            f"{key_path(loc)}: too many values ({_short_repr(err['input'])}); "
            f"expected a list of {_tuple_size(loc)} numbers{unit_note}"
        )
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"{key_path(loc)}: got {_short_repr(err['input'])}; expected a table"
    if kind in ("list_type", "tuple_type"):
        return f"{key_path(loc)}: got {_short_repr(err['input'])}; expected an array"
    message = str(err["msg"])
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    expected = re.sub(r"^Input should be ", "", message)
    if kind in ("float_type", "int_type", "float_parsing", "int_parsing") and isinstance(err["input"], str):
        expected += f"{unit_note} (a bare number: the unit is in the key name)"
    elif unit and kind not in ("literal_error",):
        expected += f" ({unit})"
    return f"{key_path(loc)}: got {_short_repr(err['input'])}; expected {expected}"


def _annotation_at(loc: tuple[int | str, ...]) -> Any:
    """The type annotation the schema declares at `loc` (None if the path leaves the schema)."""
    current: Any = CellConfig
    for part in loc:
        current = _strip(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return None
            current = field.annotation
            continue
        origin = typing.get_origin(current)
        args = typing.get_args(current)
        if origin is dict:
            current = args[1]
        elif origin is list:
            current = args[0]
        elif origin is tuple and isinstance(part, int) and part < len(args):
            current = args[part]
        else:
            return None
    return _strip(current)


def _strip(annotation: Any) -> Any:
    """Remove Annotated wrappers and a '| None'."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            rest = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = rest[0] if len(rest) == 1 else annotation
            if len(rest) != 1:
                return annotation
        else:
            return annotation


def _allowed_keys(loc: tuple[int | str, ...]) -> list[str]:
    """The keys a table at `loc` may hold (empty when unknown)."""
    model = _annotation_at(loc)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []


def _tuple_size(loc: tuple[int | str, ...]) -> int:
    """How many numbers the tuple at `loc` holds (2 when unknown)."""
    annotation = _annotation_at(loc)
    if typing.get_origin(annotation) is tuple:
        return len(typing.get_args(annotation))
    return 2
