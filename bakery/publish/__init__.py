"""Publishing tested images: `python build.py push | release | promote` (see bakery.cli.publish).

push      pushes the selected variants' tested images under their full and moving tags, reads
          every tag back from the registry and writes a report (tag -> digest, size).
release   builds, tests and pushes the selection in one go.
promote   copies tested images from one registry to another by digest (skopeo), rebuilding nothing.

The package, one module per concept (arrows point down; none imports this package's __init__):

    promote      copy each variant's tested digest to another registry, verify every tag
    push         tag, push, read back and verify every tag of the planned images
    plan         options from the request, each variant's image, tested or not, its tags
    report       the JSON report (atomic, also after a failure) and the results table
    registry     registry calls with retries, login/logout, the error naming a failed tag
    tags         moving tags from matrix.toml, and every tag a variant gets
    credentials  BAKERY_REGISTRY_USER/PASSWORD, and errors scrubbed of the password
    model        the types: PublishRequest, Destination, Credentials, RetryPolicy, PushStep,
                 TagRecord, options
"""

from __future__ import annotations

from bakery.publish.credentials import (
    scrubbed,
    take_credentials,
)
from bakery.publish.model import (
    ENV_PASSWORD,
    ENV_USER,
    MAX_RETRY_DELAY,
    REGISTRY_RE,
    REPORT_DIR,
    Credentials,
    Destination,
    PublishOptions,
    PublishRequest,
    PushStep,
    RetryPolicy,
    TagHook,
    TagRecord,
)
from bakery.publish.plan import (
    check_registry,
    check_tested,
    for_each_tag,
    load_tested,
    plan_push,
    print_plan,
    publish_options,
    push_steps,
    tag_records,
    was_tested,
)
from bakery.publish.promote import (
    copy_tag,
    plan_promote,
    read_push_reports,
    run_promote,
    verify_copy,
)
from bakery.publish.push import (
    manifest_size,
    push_tag,
    run_push,
    verify_push,
)
from bakery.publish.registry import (
    failure,
    is_transient,
    log_in,
    logged_in,
    registry_message,
    scrub,
    with_retries,
)
from bakery.publish.report import (
    print_table,
    reporting,
    write_report,
)
from bakery.publish.tags import (
    default_pythons,
    moving_tags,
    tags_for,
)

__all__ = [
    "ENV_PASSWORD",
    "ENV_USER",
    "MAX_RETRY_DELAY",
    "REGISTRY_RE",
    "REPORT_DIR",
    "Credentials",
    "Destination",
    "PublishOptions",
    "PublishRequest",
    "PushStep",
    "RetryPolicy",
    "TagHook",
    "TagRecord",
    "check_registry",
    "check_tested",
    "copy_tag",
    "default_pythons",
    "failure",
    "for_each_tag",
    "is_transient",
    "load_tested",
    "log_in",
    "logged_in",
    "manifest_size",
    "moving_tags",
    "plan_promote",
    "plan_push",
    "print_plan",
    "print_table",
    "publish_options",
    "push_steps",
    "push_tag",
    "read_push_reports",
    "registry_message",
    "reporting",
    "run_promote",
    "run_push",
    "scrub",
    "scrubbed",
    "tag_records",
    "tags_for",
    "take_credentials",
    "verify_copy",
    "verify_push",
    "was_tested",
    "with_retries",
    "write_report",
]
