"""The container's account for the host user: its passwd and group entries (the host
facts themselves live in bakery.host)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from grp import getgrgid
from types import MappingProxyType

from bakery.errors import UsageError
from bakery.host import (
    HostUser,
)

# ---------------------------------------------------------------------------------------------
# The container's account for the host user (the host facts themselves: bakery.host)


@dataclass(frozen=True)
class Account:
    """The container's /etc/passwd and /etc/group with an entry for the host user."""

    passwd: str
    group: str
    login: str
    home: str
    changed: bool  # False: the image already has this uid and gid, nothing to write
    create_home: bool


def _entries(text: str) -> list[list[str]]:
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def _free_name(wanted: str, taken: set[str], fallback: str) -> str:
    for candidate in (wanted, fallback, *(f"{fallback}-{n}" for n in range(1, 100))):
        if candidate and candidate not in taken:
            return candidate
    raise UsageError(f"no free name for {wanted!r} in the image's account files")


def login_name(name: str) -> str:
    """A name useradd would accept: lower case, [a-z0-9_-], starting with a letter or _."""
    cleaned = re.sub(r"[^a-z0-9_-]", "", name.lower())[:32]
    return cleaned if re.match(r"[a-z_]", cleaned) else ""


def plan_account(
    passwd: str, group: str, user: HostUser, extra_groups: Mapping[int, str] = MappingProxyType({})
) -> Account:
    """Add the host user (and the device groups, by their host names) to the image's files.

    Why files and not `useradd` in an entry step: it works for any uid (also one the image
    already gives to someone else, e.g. 1000 = trainer) and needs no tools in the image. An
    image user with the same uid is kept as it is, with its own home.
    """
    users = _entries(passwd)
    existing = next((e for e in users if len(e) > 5 and e[2] == str(user.uid)), None)
    new_passwd, create_home = passwd, False
    if existing is not None:
        login, home = existing[0], existing[5]
    else:
        login = _free_name(login_name(user.name), {e[0] for e in users}, f"u{user.uid}")
        home = f"/home/{login}"
        line = f"{login}:x:{user.uid}:{user.gid}:bakery dev container user:{home}:/bin/bash\n"
        new_passwd, create_home = _with_newline(passwd) + line, True
    new_group = group
    for gid, name in {user.gid: login, **extra_groups}.items():
        groups = _entries(new_group)
        if any(len(g) > 2 and g[2] == str(gid) for g in groups):
            continue
        taken = {g[0] for g in groups}
        gname = _free_name(login_name(name), taken, f"g{gid}")
        new_group = _with_newline(new_group) + f"{gname}:x:{gid}:\n"
    changed = new_passwd != passwd or new_group != group
    return Account(new_passwd, new_group, login, home, changed, create_home)


def _with_newline(text: str) -> str:
    return text if not text or text.endswith("\n") else text + "\n"


def host_group_names(gids: Iterable[str]) -> dict[int, str]:
    """Host names of the device groups ("render", "video"), for readable `id` output inside."""
    names: dict[int, str] = {}
    for gid in gids:
        try:
            names[int(gid)] = getgrgid(int(gid)).gr_name
        except KeyError:
            names[int(gid)] = f"g{gid}"
    return names
