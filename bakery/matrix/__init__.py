"""matrix.toml: load it, validate every key, and expand it into variants.

All problems are collected and raised together as one `ConfigError` before anything runs; each
names the file, the key path, the bad value, the valid choices and the closest match.
"""

from __future__ import annotations

import difflib
import fnmatch
import os
import re
import stat
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet

from bakery.compat import (
    ACCELERATORS,
    COMPANIONS,
    WheelIndex,
    describe_python,
    is_version,
    load_pairing,
    python_key,
)
from bakery.errors import ConfigError, ConfigProblem, SelectionError, shown

FLAVOURS = ("full", "slim")
TOP_KEYS = ("project", "targets", "stack", "exclude", "include", "apt_packages")
PROJECT_KEYS = ("repository", "user", "uid", "gid")
TARGET_KEYS = (
    "index",
    "base",
    "base_digest",
    "base_python",
    "torch",
    "python",
    "companions",
    "gpu_archs",
    "flavours",
    "env",
    "apt_packages",
)
RULE_KEYS = ("target", "torch", "python", "flavour", "torchvision", "torchaudio")
STACK_KEYS = ("python", "packages")
# Every pattern is used with re.fullmatch and spells digits [0-9]: `$` lets a trailing newline
# through and `\d` accepts non-ASCII digits, and any of these values may end up in a rendered file.
DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
PYTHON_RE = re.compile(r"3\.[0-9]{1,2}")
REPOSITORY_RE = re.compile(r"[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._/-][a-z0-9]+)*)*")
IMAGE_RE = re.compile(r"[a-z0-9][a-z0-9._/:-]*")
USER_RE = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# An ENV value is rendered inside double quotes: no quote, backslash or `$` (Docker would unescape
# or expand them), no control character (a newline would end the instruction).
ENV_VALUE_RE = re.compile(r"[A-Za-z0-9 _.,:;/=+@%#*!?~^&|<>()\[\]{}'-]*")
ENV_VALUE_HINT = "letters, digits, spaces and _.,:;/=+@%#*!?~^&|<>()[]{}'- only (no quotes, backslashes, $ or control characters)"
PACKAGE_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")
# Debian policy 5.6.1: lower-case letters, digits, + - . ; at least two characters, starting
# alphanumeric. The names end up on an apt-get command line.
APT_PACKAGE_RE = re.compile(r"[a-z0-9][a-z0-9+.-]+")
ARCH_RE = {"rocm": re.compile(r"gfx[0-9a-f]{3,4}"), "cuda": re.compile(r"sm_[0-9]{2,3}a?")}


@dataclass(frozen=True)
class Project:
    repository: str
    user: str
    uid: int
    gid: int


@dataclass(frozen=True)
class Variant:
    """One image: a target × torch × python × flavour combination, fully resolved."""

    target: str
    index: WheelIndex
    torch: str
    python: str
    flavour: str
    companions: tuple[tuple[str, str], ...]
    base: str
    base_digest: str
    base_python: str
    gpu_archs: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    stack: tuple[tuple[str, str], ...]
    project: Project
    apt_packages: tuple[str, ...] = ()  # matrix apt_packages: global, then the target's

    @property
    def tag(self) -> str:
        suffix = "-slim" if self.flavour == "slim" else ""
        return f"{self.torch}-{self.index.tag_part}-py{self.python}{suffix}"

    @property
    def id(self) -> str:
        return self.tag

    @property
    def image(self) -> str:
        return f"{self.project.repository}:{self.tag}"

    @property
    def base_ref(self) -> str:
        return f"{self.base}@{self.base_digest}" if self.base_digest else self.base

    @property
    def accelerator(self) -> str:
        return self.index.accelerator

    @property
    def pypi_equivalent(self) -> bool:
        return self.torch in self.index.pypi_equivalent

    def companion(self, name: str) -> str | None:
        return dict(self.companions).get(name)


@dataclass(frozen=True)
class Matrix:
    path: Path
    project: Project
    variants: tuple[Variant, ...]


@dataclass(frozen=True)
class Selection:
    """What the selection flags ask for; empty tuples select everything."""

    targets: tuple[str, ...] = ()
    torch: tuple[str, ...] = ()
    python: tuple[str, ...] = ()
    flavours: tuple[str, ...] = ()
    variants: tuple[str, ...] = ()  # globs on the variant id


def load_matrix(path: Path) -> Matrix:
    """Read and validate `path`; raise ConfigError listing every problem found."""
    text = _read_matrix_text(path)
    if text.startswith("\ufeff"):
        raise ConfigError(
            [
                ConfigProblem(
                    str(path),
                    "(file)",
                    "starts with a UTF-8 byte order mark (BOM), which TOML does not allow",
                    "save the file as UTF-8 without a BOM",
                )
            ]
        )
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        problem = ConfigProblem(str(path), "(syntax)", f"not valid TOML: {exc}")
        raise ConfigError([problem]) from None
    except RecursionError:
        problem = ConfigProblem(
            str(path),
            "(syntax)",
            "tables or arrays are nested too deeply to read",
            "a matrix needs at most a few levels; remove the nesting",
        )
        raise ConfigError([problem]) from None
    return parse_matrix(data, path)


def _read_matrix_text(path: Path) -> str:
    """The file's text; only a regular file is read (a FIFO or a device would block forever)."""
    try:
        # O_NONBLOCK: opening a FIFO does not wait for a writer, so fstat can refuse it.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ConfigError([ConfigProblem(str(path), "(file)", "not found", _MISSING_FIX)]) from None
    except OSError as exc:
        raise ConfigError([ConfigProblem(str(path), "(file)", f"cannot be read: {exc}")]) from None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            problem = ConfigProblem(
                str(path), "(file)", "is not a regular file", "pass --matrix a TOML file"
            )
            raise ConfigError([problem])
        try:
            return handle.read().decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problem = ConfigProblem(str(path), "(file)", f"cannot be read: {exc}")
            raise ConfigError([problem]) from None


_MISSING_FIX = "run from the project root or pass --matrix PATH"


def parse_matrix(data: Mapping[str, Any], path: Path) -> Matrix:
    """Validate already-parsed TOML data; only ConfigError ever escapes."""
    checker = _Checker(str(path))
    variants = checker.run(data)
    if checker.problems:
        raise ConfigError(checker.problems)
    if checker.project is None:  # pragma: no cover - a missing project is always a problem
        raise ConfigError([ConfigProblem(str(path), "project", "missing")])
    return Matrix(path=path, project=checker.project, variants=tuple(variants))


def closest(word: str, choices: Iterable[str]) -> str:
    """' (did you mean "x"?)' for the closest valid name, or ''."""
    options = list(choices)
    match = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if not match and len(word) >= 3:
        match = [c for c in options if c.startswith(word) or word.startswith(c)][:1]
    return f' (did you mean "{match[0]}"?)' if match else ""


def describe_choices(choices: Iterable[str]) -> str:
    return ", ".join(f'"{c}"' for c in choices)


@dataclass
class _Checker:
    file: str
    problems: list[ConfigProblem] = field(default_factory=list)
    project: Project | None = None
    apt: tuple[str, ...] = ()

    def add(self, key: str, message: str, fix: str = "") -> None:
        self.problems.append(ConfigProblem(self.file, key, message, fix))

    def run(self, data: Mapping[str, Any]) -> list[Variant]:
        self.keys(data, TOP_KEYS, "")
        self.project = self.read_project(data.get("project"))
        self.apt = self.apt_packages(data, "")
        stack_sets = self.read_stack(data.get("stack"))
        targets = self.read_targets(data.get("targets"))
        if self.project is None or self.problems:
            return []
        variants = [v for t in targets for v in self.expand(t, stack_sets)]
        variants = self.apply_excludes(variants, data.get("exclude", []))
        self.check_expanded_ranges(variants, targets)
        from_targets = len(variants)
        variants = self.apply_includes(variants, targets, stack_sets, data.get("include", []))
        self.check_duplicates(variants, from_targets)
        return variants

    # -- generic helpers ------------------------------------------------------------------
    def keys(self, table: Mapping[str, Any], allowed: Sequence[str], path: str) -> None:
        for key in table:
            if key not in allowed:
                where = f"{path}.{key}" if path else str(key)
                self.add(
                    where,
                    f"unknown key{closest(str(key), allowed)}",
                    f"valid keys here: {describe_choices(allowed)}",
                )

    def table(self, value: Any, path: str, required: bool = True) -> Mapping[str, Any] | None:
        if value is None:
            if required:
                self.add(path, "missing", "add this table; see README 'The matrix'")
            return None
        if not isinstance(value, Mapping):
            self.add(path, f"must be a table, got {_type_name(value)} {shown(value)}")
            return None
        return value

    def string(
        self,
        table: Mapping[str, Any],
        key: str,
        path: str,
        pattern: re.Pattern[str] | None = None,
        hint: str = "",
        required: bool = True,
    ) -> str | None:
        where = f"{path}.{key}"
        if key not in table:
            if required:
                self.add(where, "missing", hint)
            return None
        value = table[key]
        if not isinstance(value, str):
            self.add(where, f"must be a string, got {_type_name(value)} {shown(value)}", hint)
            return None
        if pattern is not None and not pattern.fullmatch(value):
            self.add(where, f"invalid value {shown(value)}", hint)
            return None
        return value

    def integer(self, table: Mapping[str, Any], key: str, path: str) -> int | None:
        where = f"{path}.{key}"
        value = table.get(key)
        if value is None:
            self.add(where, "missing", "a whole number from 0 to 65535")
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
            self.add(where, f"must be a whole number from 0 to 65535, got {shown(value)}")
            return None
        return value

    def strings(
        self, table: Mapping[str, Any], key: str, path: str, allow_empty: bool = False
    ) -> tuple[str, ...] | None:
        where = f"{path}.{key}"
        if key not in table:
            self.add(where, "missing", "a list of strings")
            return None
        value = table[key]
        if not isinstance(value, list):
            self.add(where, f"must be a list of strings, got {_type_name(value)} {shown(value)}")
            return None
        bad = [i for i, item in enumerate(value) if not isinstance(item, str)]
        for i in bad:
            self.add(
                f"{where}[{i}]",
                f"must be a string, got {_type_name(value[i])} {shown(value[i])}",
                'quote it: "3.10", not 3.10',
            )
        if bad:
            return None
        if not value and not allow_empty:
            self.add(where, "must not be empty")
            return None
        seen: set[str] = set()
        for item in value:
            if item in seen:
                self.add(where, f"lists {shown(item)} twice")
            seen.add(item)
        return tuple(value)

    # -- sections -------------------------------------------------------------------------
    def read_project(self, value: Any) -> Project | None:
        table = self.table(value, "project")
        if table is None:
            return None
        self.keys(table, PROJECT_KEYS, "project")
        repository = self.string(
            table,
            "repository",
            "project",
            REPOSITORY_RE,
            "lower-case registry/path, e.g. ghcr.io/my-lab/bakery",
        )
        user = self.string(table, "user", "project", USER_RE, "a Linux user name such as trainer")
        uid = self.integer(table, "uid", "project")
        gid = self.integer(table, "gid", "project")
        if repository is None or user is None or uid is None or gid is None:
            return None
        return Project(repository=repository, user=user, uid=uid, gid=gid)

    def read_stack(self, value: Any) -> list[tuple[SpecifierSet, tuple[tuple[str, str], ...]]]:
        if value is None:
            self.add("stack", "missing", "add [[stack]] tables with python and packages")
            return []
        if not isinstance(value, list):
            self.add("stack", f"must be an array of tables ([[stack]]), got {_type_name(value)}")
            return []
        sets = []
        for i, entry in enumerate(value):
            path = f"stack[{i}]"
            table = self.table(entry, path)
            if table is None:
                continue
            self.keys(table, STACK_KEYS, path)
            spec = self.specifier(table, path)
            packages = self.packages(table.get("packages"), f"{path}.packages")
            if spec is not None and packages is not None:
                sets.append((spec, packages))
        return sets

    def specifier(self, table: Mapping[str, Any], path: str) -> SpecifierSet | None:
        text = self.string(table, "python", path, hint='a specifier such as ">=3.11"')
        if text is None:
            return None
        try:
            return SpecifierSet(text)
        except InvalidSpecifier:
            self.add(
                f"{path}.python", f"invalid specifier {shown(text)}", 'use e.g. ">=3.11" or "<3.11"'
            )
            return None

    def packages(self, value: Any, path: str) -> tuple[tuple[str, str], ...] | None:
        table = self.table(value, path)
        if table is None:
            return None
        result = []
        for name, version in table.items():
            where = f"{path}.{name}"
            if not PACKAGE_RE.fullmatch(str(name)):
                self.add(where, f"invalid package name {shown(name)}")
            elif str(name).lower() in ("torch", *COMPANIONS):
                self.add(
                    where,
                    "the torch stack comes from the target, not the application stack",
                    f"remove {name} from [[stack]]; set targets.*.torch / companions",
                )
            elif not isinstance(version, str) or not _is_exact_version(version):
                self.add(
                    where, f"must be an exact version string, got {shown(version)}", 'e.g. "0.42.1"'
                )
            else:
                result.append((str(name), version))
        return tuple(sorted(result))

    def read_targets(self, value: Any) -> list[_Target]:
        table = self.table(value, "targets")
        if table is None:
            return []
        if not table:
            self.add(
                "targets", "no targets defined", f"add one of {describe_choices(ACCELERATORS)}"
            )
        targets = []
        for name, entry in table.items():
            target = self.read_target(str(name), entry)
            if target is not None:
                targets.append(target)
        return targets

    def read_target(self, name: str, value: Any) -> _Target | None:
        path = f"targets.{name}"
        table = self.table(value, path)
        if table is None:
            return None
        self.keys(table, TARGET_KEYS, path)
        before = len(self.problems)
        index = self.wheel_index(table, path)
        base = self.string(
            table,
            "base",
            path,
            IMAGE_RE,
            "an image name such as docker.io/library/debian:bookworm-slim",
        )
        digest = self.string(
            table,
            "base_digest",
            path,
            DIGEST_RE if table.get("base_digest") != "" else None,
            'sha256: followed by 64 lower-case hex digits, or "" for a local image',
            required=False,
        )
        if table.get("base_digest") == "":
            digest = ""
        base_python = self.string(
            table,
            "base_python",
            path,
            PYTHON_RE,
            'the base image\'s own Python as "3.Y" ("" if it has none)',
            required=False,
        )
        torch = self.strings(table, "torch", path)
        python = self.strings(table, "python", path)
        companions = self.strings(table, "companions", path, allow_empty=True)
        archs = self.strings(table, "gpu_archs", path, allow_empty=True)
        flavours = self.strings(table, "flavours", path)
        env = self.env(table.get("env", {}), f"{path}.env")
        apt = self.apt_packages(table, path)
        if index is not None:
            self.check_target_values(path, index, torch, python, companions, archs, flavours)
        if len(self.problems) != before:
            return None
        return _Target(
            name=name, index=index, base=base or "", base_digest=digest or "",  # type: ignore[arg-type]
            base_python=base_python or "", torch=torch or (), python=python or (),
            companions=companions or (), gpu_archs=archs or (), flavours=flavours or (), env=env,
            apt_packages=apt,
        )  # fmt: skip

    def apt_packages(self, table: Mapping[str, Any], path: str) -> tuple[str, ...]:
        """Optional `apt_packages = ["git", "ffmpeg"]`, each a Debian package name."""
        if "apt_packages" not in table:
            return ()
        where = f"{path}.apt_packages" if path else "apt_packages"
        names = table["apt_packages"]
        if not isinstance(names, list):
            self.add(where, f"must be a list of strings, got {_type_name(names)} {names!r}")
            return ()
        bad = [
            (i, n)
            for i, n in enumerate(names)
            if not isinstance(n, str) or not APT_PACKAGE_RE.fullmatch(n)
        ]
        for i, name in bad:
            self.add(
                f"{where}[{i}]",
                f"invalid Debian package name {name!r}",
                "lower-case letters, digits and + - . only, at least 2 characters, starting with a letter or digit (e.g. ffmpeg, libgl1)",
            )
        return () if bad else tuple(names)

    def wheel_index(self, table: Mapping[str, Any], path: str) -> WheelIndex | None:
        indexes = load_pairing().indexes
        name = self.string(table, "index", path, hint=f"one of {describe_choices(indexes)}")
        if name is None:
            return None
        if name not in indexes:
            self.add(
                f"{path}.index",
                f"unknown wheel index {shown(name)}{closest(name, indexes)}",
                f"valid: {describe_choices(indexes)}",
            )
            return None
        return indexes[name]

    def env(self, value: Any, path: str) -> tuple[tuple[str, str], ...]:
        table = self.table(value, path)
        if table is None:
            return ()
        result = []
        for key, item in table.items():
            where = f"{path}.{key}"
            if not ENV_NAME_RE.fullmatch(str(key)):
                self.add(
                    where,
                    f"invalid environment variable name {shown(key)}",
                    "use letters, digits and _, not starting with a digit",
                )
            elif not isinstance(item, str):
                self.add(
                    where,
                    f"must be a string, got {_type_name(item)} {shown(item)}",
                    f"quote it: {key} = {shown(str(item))}",
                )
            elif not ENV_VALUE_RE.fullmatch(item):
                self.add(where, f"invalid value {shown(item)}", ENV_VALUE_HINT)
            else:
                result.append((str(key), item))
        return tuple(result)

    def check_target_values(
        self,
        path: str,
        index: WheelIndex,
        torch: tuple[str, ...] | None,
        python: tuple[str, ...] | None,
        companions: tuple[str, ...] | None,
        archs: tuple[str, ...] | None,
        flavours: tuple[str, ...] | None,
        check_ranges: bool = False,
    ) -> None:
        pairing = load_pairing()
        for i, version in enumerate(torch or ()):
            if version not in index.torch:
                self.add(
                    f"{path}.torch[{i}]",
                    f"torch {version} has no {index.name} wheels{closest(version, index.torch)}",
                    f"{index.name} has torch {', '.join(index.torch)}",
                )
            elif version not in pairing.releases:
                self.add(
                    f"{path}.torch[{i}]",
                    f"no pairing data for torch {version}",
                    "add it to bakery/data/pairing.toml",
                )
        for i, py in enumerate(python or ()):
            if not PYTHON_RE.fullmatch(py):
                self.add(
                    f"{path}.python[{i}]",
                    f"invalid Python version {shown(py)}",
                    'use "3.Y", e.g. "3.11"',
                )
                continue
            if check_ranges:
                for version in torch or ():
                    self.check_range(f"{path}.python[{i}]", version, py)
        for i, name in enumerate(companions or ()):
            if name not in COMPANIONS:
                self.add(
                    f"{path}.companions[{i}]",
                    f"unknown companion {shown(name)}{closest(name, COMPANIONS)}",
                    f"valid: {describe_choices(COMPANIONS)}",
                )
        pattern = ARCH_RE.get(index.accelerator)
        for i, arch in enumerate(archs or ()):
            if pattern is None:
                self.add(
                    f"{path}.gpu_archs[{i}]",
                    f"{index.accelerator} targets have no GPU architectures",
                    "use gpu_archs = []",
                )
            elif not pattern.fullmatch(arch):
                example = "gfx942" if index.accelerator == "rocm" else "sm_90"
                self.add(
                    f"{path}.gpu_archs[{i}]",
                    f"{shown(arch)} is not a {index.accelerator} architecture",
                    f"use names like {example}",
                )
        for i, flavour in enumerate(flavours or ()):
            if flavour not in FLAVOURS:
                self.add(
                    f"{path}.flavours[{i}]",
                    f"unknown flavour {shown(flavour)}{closest(flavour, FLAVOURS)}",
                    f"valid: {describe_choices(FLAVOURS)}",
                )

    # -- expansion ------------------------------------------------------------------------
    def check_range(self, key: str, torch: str, python: str) -> None:
        release = load_pairing().releases.get(torch)
        if release is not None and python not in release.python:
            self.add(
                key,
                f"Python {python} is outside torch {torch}'s range {describe_python(release.python)}",
                f"drop it, or add an [[exclude]] rule for torch {torch} × Python {python}",
            )

    def check_expanded_ranges(
        self, variants: Sequence[Variant], targets: Sequence[_Target]
    ) -> None:
        """Python ranges are checked after [[exclude]], so an exclude rule can fix a combination."""
        by_name = {t.name: t for t in targets}
        seen: set[tuple[str, str, str]] = set()
        for v in variants:
            if (v.target, v.torch, v.python) in seen:
                continue
            seen.add((v.target, v.torch, v.python))
            index = by_name[v.target].python.index(v.python)
            self.check_range(f"targets.{v.target}.python[{index}]", v.torch, v.python)

    def expand(self, target: _Target, stack_sets: Sequence[_StackSet]) -> list[Variant]:
        return [
            v
            for torch in target.torch
            for python in target.python
            for flavour in target.flavours
            if (v := self.make_variant(target, torch, python, flavour, stack_sets, "")) is not None
        ]

    def make_variant(
        self,
        target: _Target,
        torch: str,
        python: str,
        flavour: str,
        stack_sets: Sequence[_StackSet],
        where: str,
    ) -> Variant | None:
        release = load_pairing().releases[torch]
        stack = [pkgs for spec, pkgs in stack_sets if spec.contains(python)]
        if not stack:
            self.add(
                where or "stack",
                f"no [[stack]] entry covers Python {python}",
                "add a [[stack]] table whose python specifier contains it",
            )
            return None
        if self.project is None:  # pragma: no cover - checked by the caller
            return None
        return Variant(
            target=target.name, index=target.index, torch=torch, python=python, flavour=flavour,
            companions=tuple((n, release.companion(n)) for n in target.companions),
            base=target.base, base_digest=target.base_digest, base_python=target.base_python,
            gpu_archs=target.gpu_archs, env=target.env, stack=stack[0], project=self.project,
            apt_packages=tuple(dict.fromkeys((*self.apt, *target.apt_packages))),
        )  # fmt: skip

    def apply_excludes(self, variants: list[Variant], rules: Any) -> list[Variant]:
        if not isinstance(rules, list):
            self.add(
                "exclude", f"must be an array of tables ([[exclude]]), got {_type_name(rules)}"
            )
            return variants
        for i, rule in enumerate(rules):
            path = f"exclude[{i}]"
            table = self.table(rule, path)
            if table is None:
                continue
            self.keys(table, RULE_KEYS, path)
            if not table:
                self.add(path, "empty rule would exclude everything", "name at least one key")
                continue
            matched = [v for v in variants if _rule_matches(table, v)]
            if not matched:
                self.add(
                    path,
                    f"matches no variant: {shown(dict(table))}",
                    "fix the values or delete the rule",
                )
            variants = [v for v in variants if v not in matched]
        return variants

    def apply_includes(
        self,
        variants: list[Variant],
        targets: Sequence[_Target],
        stack_sets: Sequence[_StackSet],
        rules: Any,
    ) -> list[Variant]:
        if not isinstance(rules, list):
            self.add(
                "include", f"must be an array of tables ([[include]]), got {_type_name(rules)}"
            )
            return variants
        by_name = {t.name: t for t in targets}
        for i, rule in enumerate(rules):
            variant = self.read_include(f"include[{i}]", rule, by_name, stack_sets)
            if variant is not None:
                variants.append(variant)
        return variants

    def read_include(
        self, path: str, rule: Any, targets: Mapping[str, _Target], stack_sets: Sequence[_StackSet]
    ) -> Variant | None:
        table = self.table(rule, path)
        if table is None:
            return None
        self.keys(table, RULE_KEYS, path)
        before = len(self.problems)
        name = self.string(table, "target", path, hint=f"one of {describe_choices(targets)}")
        torch = self.string(table, "torch", path, hint='a torch version such as "2.9.1"')
        python = self.string(table, "python", path, PYTHON_RE, 'use "3.Y"')
        flavour = self.string(table, "flavour", path, required=False) or "full"
        if name is not None and name not in targets:
            self.add(
                f"{path}.target",
                f"unknown target {shown(name)}{closest(name, targets)}",
                f"valid: {describe_choices(targets)}",
            )
        if len(self.problems) != before or name is None or torch is None or python is None:
            return None
        target = targets[name]
        self.check_target_values(
            path, target.index, (torch,), (python,), (), (), (flavour,), check_ranges=True
        )
        for companion in COMPANIONS:
            self.check_pinned_companion(path, table, companion, torch)
        if len(self.problems) != before:
            return None
        return self.make_variant(target, torch, python, flavour, stack_sets, path)

    def check_pinned_companion(
        self, path: str, table: Mapping[str, Any], name: str, torch: str
    ) -> None:
        if name not in table:
            return
        release = load_pairing().releases.get(torch)
        wanted = release.companion(name) if release is not None else None
        if table[name] != wanted:
            self.add(
                f"{path}.{name}",
                f"{name} {shown(table[name])} does not pair with torch {torch}",
                f"torch {torch} pairs with {name} {wanted}; drop the key to get it automatically",
            )

    def check_duplicates(self, variants: Sequence[Variant], from_targets: int) -> None:
        """Two entries yielding one variant id: name both (targets sharing an index, or an include)."""
        seen: dict[str, int] = {}
        for i, v in enumerate(variants):
            first = seen.setdefault(v.id, i)
            if first == i:
                continue
            if i >= from_targets:
                self.add(
                    "include",
                    f"variant {v.id} is defined twice",
                    "remove the [[include]] that repeats a variant the targets already yield",
                )
            else:
                self.add(
                    f"targets.{v.target}",
                    f"yields variant {v.id}, which targets.{variants[first].target} yields too",
                    "give each target its own index, or drop the repeated torch/python versions",
                )


@dataclass(frozen=True)
class _Target:
    name: str
    index: WheelIndex
    base: str
    base_digest: str
    base_python: str
    torch: tuple[str, ...]
    python: tuple[str, ...]
    companions: tuple[str, ...]
    gpu_archs: tuple[str, ...]
    flavours: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    apt_packages: tuple[str, ...] = ()


_StackSet = tuple[SpecifierSet, tuple[tuple[str, str], ...]]


def _rule_matches(rule: Mapping[str, Any], variant: Variant) -> bool:
    values = {
        "target": variant.target,
        "torch": variant.torch,
        "python": variant.python,
        "flavour": variant.flavour,
        "torchvision": variant.companion("torchvision"),
        "torchaudio": variant.companion("torchaudio"),
    }
    return all(values.get(str(k)) == v for k, v in rule.items())


VERSION_RE = re.compile(r"[0-9]+(\.[0-9]+)*((a|b|rc)[0-9]+)?(\.post[0-9]+)?(\.dev[0-9]+)?")


def _is_exact_version(text: str) -> bool:
    """A plain ASCII public version ("0.42.1", "1.0rc1"); it is written into requirements.txt."""
    return VERSION_RE.fullmatch(text) is not None and is_version(text)


def _type_name(value: Any) -> str:
    return {
        bool: "a boolean", int: "an integer", float: "a number", str: "a string",
        list: "a list", dict: "a table",
    }.get(type(value), type(value).__name__)  # fmt: skip


def select_variants(matrix: Matrix, selection: Selection) -> list[Variant]:
    """The variants the selection flags pick; SelectionError names what exists if none."""
    chosen = [v for v in matrix.variants if _selected(v, selection)]
    if not chosen:
        raise SelectionError(
            f"no variant matches {_describe_selection(selection)}",
            f"{matrix.path} yields {len(matrix.variants)} variants: targets "
            f"{_values(matrix, 'target')}; torch {_values(matrix, 'torch')}; "
            f"python {_values(matrix, 'python')}; flavours {_values(matrix, 'flavour')}",
            "run `python build.py list` to see them all",
        )
    return chosen


def _selected(v: Variant, s: Selection) -> bool:
    return (
        (not s.targets or v.target in s.targets)
        and (not s.torch or v.torch in s.torch)
        and (not s.python or v.python in s.python)
        and (not s.flavours or v.flavour in s.flavours)
        and (not s.variants or any(fnmatch.fnmatchcase(v.id, g) for g in s.variants))
    )


def _values(matrix: Matrix, attr: str) -> str:
    values = {str(getattr(v, attr)) for v in matrix.variants}
    key = python_key if attr in ("python",) else None
    return ", ".join(sorted(values, key=key) if key else sorted(values))


def _describe_selection(s: Selection) -> str:
    parts = [
        f"--{name} {','.join(values)}"
        for name, values in (
            ("target", s.targets), ("torch", s.torch), ("python", s.python),
            ("flavour", s.flavours), ("variant", s.variants),
        )
        if values
    ]  # fmt: skip
    return " ".join(parts) or "the selection"
