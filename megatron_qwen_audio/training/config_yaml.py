"""YAML files and `key.path=value` overrides -> typed, frozen dataclasses, with errors that point at file and line.

The run configuration is a tree of dataclasses whose fields carry the defaults and the documentation; a YAML file
only overrides some of them. Reading is strict, because a silently ignored key (a typo, a key moved to another
section) trains the wrong thing for days: an unknown key names the file, line and key path and suggests the closest
valid key; a value of the wrong type names the key and the expected type. Every key remembers where it was set
(`file:line`, or the command-line override), so the message points at the line to fix.

Layering, in order: a file's `base:` (another YAML, relative to the file, or a list of them merged in order; each
itself possibly layered) is read first and the file's keys are merged over it (mappings merge key by key, lists and
scalars replace), then the overrides apply. A mapping may name a preset (`preset: NAME`) where the caller registered
presets for its dataclass: the preset replaces the dataclass defaults and the mapping's other keys override it.

Hand-written rather than pydantic/OmegaConf: the checks are few, and the messages (file:line, difflib suggestion,
preset names) are what this module is for.
"""
from __future__ import annotations

import dataclasses
import difflib
import re
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

BASE_KEY = "base"  # a file's parent file, read first
PRESET_KEY = "preset"  # in a mapping whose dataclass has registered presets: the preset it starts from

T = TypeVar("T")
Origins = dict[str, str]  # key path ("model.layers", "data.train[0].weight") -> where it was set


class ConfigError(ValueError):
    """A user's configuration is wrong; the message is one line that names the file, line or key, and the fix."""


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader that also reads `1e-4` as a number: PyYAML follows YAML 1.1, which wants `1.0e-4`, and
    learning rates are commonly written the short way."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def parse_value(text: str) -> Any:
    """One YAML value as a config file would read it: `2` int, `1e-4` float, `true`, `null`, `[14, 18]`, `{a: 1}`."""
    return yaml.load(text, Loader=_Loader)


def read_layered_yaml(path: Path) -> tuple[dict, Origins]:
    """The mapping of `path` merged over its `base:` chain, and where each key was set."""
    return _read_layered(path, ())


def _read_layered(path: Path, chain: tuple[Path, ...]) -> tuple[dict, Origins]:
    resolved = path.resolve()
    if resolved in chain:
        cycle = " -> ".join(str(p) for p in (*chain, resolved))
        raise ConfigError(f"{path}: `{BASE_KEY}:` files form a cycle ({cycle}); remove one of the links")
    data, origins = _read_file(path)
    if BASE_KEY not in data:
        return data, origins
    bases = data.pop(BASE_KEY)
    bases = [bases] if isinstance(bases, str) else bases
    if not isinstance(bases, list) or not bases or not all(isinstance(base, str) and base for base in bases):
        raise ConfigError(f"{origins[BASE_KEY]}: `{BASE_KEY}:` must be the path of another YAML file or a list of "
                          f"them, got {bases!r}")
    merged, merged_origins = {}, {}
    for base in bases:  # later bases override earlier ones, the file overrides them all
        base_path = path.parent / base
        if not base_path.is_file():
            raise ConfigError(f"{origins[BASE_KEY]}: base file {base!r} not found (looked for {base_path}); paths "
                              f"in `{BASE_KEY}:` are relative to the file that names them")
        base_data, base_origins = _read_layered(base_path, (*chain, resolved))
        _merge_into(merged, base_data)
        merged_origins.update(base_origins)
    del origins[BASE_KEY]
    _merge_into(merged, data)
    merged_origins.update(origins)  # every key present in `data` (lists' items included) is now the file's
    return merged, merged_origins


def _read_file(path: Path) -> tuple[dict, Origins]:
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the config file ({error.strerror}); check the path") from error
    try:
        node = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"{where}: not valid YAML ({problem}); fix the syntax there") from error
    if data is None:
        return {}, {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the file must be a mapping of config keys, not {_kind(data)}")
    origins: Origins = {}
    _record_lines(node, "", path, origins)
    return data, origins


def _record_lines(node: yaml.Node, prefix: str, path: Path, origins: Origins) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key_path = _join(prefix, str(key_node.value))
            origins[key_path] = f"{path}:{key_node.start_mark.line + 1}"
            _record_lines(value_node, key_path, path, origins)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            item_path = f"{prefix}[{index}]"
            origins[item_path] = f"{path}:{item.start_mark.line + 1}"
            _record_lines(item, item_path, path, origins)


def _merge_into(target: dict, update: Mapping) -> None:
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _merge_into(target[key], value)
        else:
            target[key] = value


def _record_value(origins: Origins, key_path: str, value: Any, source: str) -> None:
    """Note `source` as the origin of `key_path` and of every key and list item inside `value`."""
    origins[key_path] = source
    if isinstance(value, Mapping):
        for key, item in value.items():
            _record_value(origins, _join(key_path, str(key)), item, source)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _record_value(origins, f"{key_path}[{index}]", item, source)


def apply_override(data: dict, origins: Origins, override: str) -> None:
    """Set one `a.b.c=value` override in the merged mapping (the value read as YAML; a mapping value merges into
    the section it names, as a file merges over its base)."""
    key_path, separator, text = override.partition("=")
    key_path = key_path.strip()
    keys = key_path.split(".")
    if not separator or not all(keys):
        raise ConfigError(f"override {override!r}: write it as key.path=value, e.g. parallel.tensor_parallel=2")
    if keys[0] == BASE_KEY:
        raise ConfigError(f"override {override!r}: `{BASE_KEY}` can only be set inside a config file")
    try:
        value = parse_value(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"override {override!r}: the value is not valid YAML "
                          f"({getattr(error, 'problem', error)}); quote it or fix it") from error
    target = data
    for depth, key in enumerate(keys[:-1]):
        if target.get(key) is None:
            target[key] = {}
        if not isinstance(target[key], dict):
            raise ConfigError(f"override {override!r}: {'.'.join(keys[:depth + 1])} is {target[key]!r}, "
                              "not a section with keys")
        target = target[key]
    if isinstance(value, dict) and isinstance(target.get(keys[-1]), dict):
        _merge_into(target[keys[-1]], value)
    else:
        target[keys[-1]] = value
    _record_value(origins, key_path, value, f"override {override!r}")


def build_dataclass(cls: type[T], data: Mapping, origins: Origins, default_origin: str,
                    presets: Mapping[type, Mapping[str, Any]] | None = None) -> T:
    """`cls` with the keys of `data` converted onto its defaults (and nested dataclasses onto theirs).

    `presets` maps a dataclass to its named instances: a mapping for that class may say `preset: NAME` to start from
    that instance instead of the class defaults. `default_origin` names the source in messages about keys with no
    recorded origin.
    """
    return _Builder(origins, default_origin, presets or {}).build(cls, data, "", None)


class _Builder:
    def __init__(self, origins: Origins, default_origin: str, presets: Mapping[type, Mapping[str, Any]]) -> None:
        self.origins = origins
        self.default_origin = default_origin
        self.presets = presets

    def where(self, key_path: str) -> str:
        """The file:line (or override) that set `key_path`, or the nearest enclosing key that has one."""
        path = key_path
        while path:
            if path in self.origins:
                return self.origins[path]
            path = re.sub(r"(\.[^.\[]*|\[\d+\])$", "", path) if re.search(r"[.\[]", path) else ""
        return self.default_origin

    def build(self, cls: type[T], mapping: Any, path: str, base: T | None) -> T:
        if mapping is None:  # an empty section (`model:` with nothing under it)
            mapping = {}
        mapping = dict(mapping)
        presets = self.presets.get(cls)
        if presets is not None and PRESET_KEY in mapping:
            base = self.preset(presets, mapping.pop(PRESET_KEY), _join(path, PRESET_KEY))
        fields = {field.name: field for field in dataclasses.fields(cls) if field.init}
        hints = get_type_hints(cls)
        changes = {}
        for key, value in mapping.items():
            key_path = _join(path, str(key))
            if key not in fields:
                valid = [*fields, *([PRESET_KEY] if presets is not None else [])]
                suggestion = _suggestion(str(key), valid, path)
                raise ConfigError(f"{self.where(key_path)}: unknown key {key_path!r}{suggestion}")
            changes[key] = self.convert(value, hints[key], key_path, None if base is None else getattr(base, key))
        if base is None:
            missing = [name for name, field in fields.items() if name not in changes and
                       field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING]
            if missing:
                raise ConfigError(f"{self.where(path)}: {path or 'the config'} needs the key(s) {', '.join(missing)}")
        try:
            return cls(**changes) if base is None else dataclasses.replace(base, **changes)
        except ValueError as error:  # the checks in a library dataclass's __post_init__: blame the keys set here
            sources = dict.fromkeys(self.where(_join(path, str(key))) for key in mapping) or [self.where(path)]
            raise ConfigError(f"{', '.join(sources)}: {path}: {error}") from error

    def preset(self, presets: Mapping[str, Any], name: Any, key_path: str) -> Any:
        if not isinstance(name, str) or name not in presets:
            close = difflib.get_close_matches(str(name), list(presets), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(f"{self.where(key_path)}: unknown {key_path} {name!r}; {hint}"
                              f"presets: {', '.join(presets)}")
        return presets[name]

    def convert(self, value: Any, hint: Any, path: str, base: Any, declared: Any = None) -> Any:
        """`value` as type `hint`; `declared` is the field's whole type (`X | None`) when `hint` is a part of it."""
        declared = declared or hint
        origin, args = get_origin(hint), get_args(hint)
        if origin in (Union, types.UnionType):
            if value is None and type(None) in args:
                return None
            (option,) = [arg for arg in args if arg is not type(None)]  # configs use only `X | None` unions
            return self.convert(value, option, path, base, declared)
        if origin is Literal:
            if value not in args or isinstance(value, bool):
                raise self.type_error(path, value, declared)
            return value
        if dataclasses.is_dataclass(hint):
            if value is not None and not isinstance(value, Mapping):
                raise self.type_error(path, value, declared)
            return self.build(hint, value, path, base)
        if origin in (list, tuple):
            return self.convert_sequence(value, hint, path, declared)
        if _is_scalar(value, hint):
            return float(value) if hint is float else value
        raise self.type_error(path, value, declared)

    def convert_sequence(self, value: Any, hint: Any, path: str, declared: Any) -> list | tuple:
        origin, args = get_origin(hint), get_args(hint)
        if not isinstance(value, list):
            raise self.type_error(path, value, declared)
        if origin is tuple and args[-1] is not Ellipsis and len(value) != len(args):
            raise self.type_error(path, value, declared)
        item_hints = [args[0]] * len(value) if origin is list or args[-1] is Ellipsis else list(args)
        items = [self.convert(item, item_hint, f"{path}[{index}]", None)
                 for index, (item, item_hint) in enumerate(zip(value, item_hints, strict=True))]
        return items if origin is list else tuple(items)

    def type_error(self, path: str, value: Any, hint: Any) -> ConfigError:
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        return ConfigError(f"{self.where(path)}: {path} must be {describe_type(hint)}, got {shown} ({_kind(value)})")


def _is_scalar(value: Any, hint: Any) -> bool:
    assert hint in (bool, int, float, str), f"config field type {hint!r} is not supported"
    if isinstance(value, bool):
        return hint is bool
    if hint is float:
        return isinstance(value, (int, float))
    return isinstance(value, hint)


def describe_type(hint: Any) -> str:
    """How a field's type reads in a message: `an integer`, `one of 'bf16', 'fp32'`, `a list of 2 values (...)`."""
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        (option,) = [arg for arg in args if arg is not type(None)]
        return f"{describe_type(option)} or null"
    if origin is Literal:
        return "one of " + ", ".join(repr(arg) for arg in args)
    if dataclasses.is_dataclass(hint):
        return f"a mapping of {hint.__name__} keys"
    if origin is list or (origin is tuple and args[-1] is Ellipsis):
        return f"a list (each item {describe_type(args[0])})"
    if origin is tuple:
        return f"a list of {len(args)} values ({', '.join(describe_type(arg) for arg in args)})"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}[hint]


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    names = {bool: "true/false", int: "an integer", float: "a number", str: "a string", list: "a list",
             dict: "a mapping"}
    return names.get(type(value), type(value).__name__)


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _suggestion(key: str, valid: Sequence[str], section: str) -> str:
    close = difflib.get_close_matches(key, valid, n=1)
    if close:
        return f"; did you mean {_join(section, close[0])!r}?"
    return f"; valid keys {'in ' + section if section else 'at the top level'}: {', '.join(valid)}"
