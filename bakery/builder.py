"""The old home of `bakery.build` (issue 16): its public names, for callers not yet moved there."""

from __future__ import annotations

from bakery.build import *  # noqa: F403 - every name in bakery.build.__all__, as before the split
