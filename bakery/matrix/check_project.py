"""The `[project]` table: the image repository and the user the images run as."""

from __future__ import annotations

import re
from typing import Any

from bakery.matrix.checker import Checker
from bakery.matrix.model import Project

PROJECT_KEYS = ("repository", "user", "uid", "gid")
# Every pattern is used with re.fullmatch and spells digits [0-9]: `$` lets a trailing newline
# through and `\d` accepts non-ASCII digits, and any of these values may end up in a rendered file.
REPOSITORY_RE = re.compile(r"[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._/-][a-z0-9]+)*)*")
USER_RE = re.compile(r"[a-z_][a-z0-9_-]{0,31}")


def read_project(c: Checker, value: Any) -> Project | None:
    table = c.table(value, "project")
    if table is None:
        return None
    c.keys(table, PROJECT_KEYS, "project")
    repository = c.string(
        table,
        "repository",
        "project",
        REPOSITORY_RE,
        "lower-case registry/path, e.g. ghcr.io/my-lab/bakery",
    )
    user = c.string(table, "user", "project", USER_RE, "a Linux user name such as trainer")
    uid = c.integer(table, "uid", "project")
    gid = c.integer(table, "gid", "project")
    if repository is None or user is None or uid is None or gid is None:
        return None
    return Project(repository=repository, user=user, uid=uid, gid=gid)
