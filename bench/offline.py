"""3. Carrying an update to an offline server: delta bundle vs full bundle vs `docker save | gzip`.

The server already has the previous image (it was carried there before). After a one-line change
to the training code and a rebuild, three ways to carry the new image:

- bakery delta bundle: `python build.py save --image NEW -o D --since OLD_BUNDLE`
- bakery full bundle:  `python build.py save --image NEW -o F`
- baseline:            `docker save NEW | gzip > new.tar.gz`, loaded with `gunzip -c | docker load`

Bytes are the files to carry (a bundle's archive + manifest.json + load.sh). Load time is measured
on a second, isolated Docker daemon playing the offline server (tests/support/offline_daemon.py:
own data root, exec root, socket and network namespace, `--bridge=none --iptables=false
--ip-masq=false`): bakery's side is `python build.py load DIR --no-probe` (which verifies the
archive's size and sha256 before loading), the baseline's `gunzip -c | docker load`. Before each
timed load the server holds exactly the old image (the new one is removed after each load); the
three ways are interleaved.
"""

from __future__ import annotations

import contextlib
import importlib.util
import shlex
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from bench import rebuild, tools
from bench.harness import STATUS_PENDING, BenchResult, Comparison, Sample, run_interleaved
from bench.tools import CPU_VARIANT, Context

NAME = "offline"
TITLE = "Carrying a code change to an offline server"
GZIP, DELTA, FULL = "docker save | gzip", "bakery delta bundle", "bakery full bundle"
DAEMON_HELPER = Path("tests") / "support" / "offline_daemon.py"


def bundle_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.iterdir() if p.is_file())


def load_helper(root: Path) -> ModuleType | None:
    """tests/support/offline_daemon.py, loaded by path (tests/ is not a package)."""
    path = root / DAEMON_HELPER
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location("bakery_bench_offline_daemon", path)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building the class
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def offline_server(ctx: Context) -> Iterator[Any]:
    helper = load_helper(ctx.root)
    if helper is None:
        raise tools.BenchError(f"{DAEMON_HELPER} is missing")
    root: Path | None = None
    try:
        with helper.offline_daemon() as server:
            root = Path(server.root)
            yield server
    finally:
        if root is not None and root.exists():  # seen once: stop() left the data root behind
            shutil.rmtree(root, ignore_errors=True)
            ctx.log(f"offline: removed the server's leftover {root}")


def save(image: str, out: Path, since: Path | None = None) -> float:
    args = ["save", "--image", image, "-o", str(out)]
    if since is not None:
        args += ["--since", str(since)]
    seconds, _ = tools.timed(tools.bakery_command(*args))
    return seconds


@dataclass(frozen=True)
class Carried:
    """The old and new image and the three ways of carrying the new one."""

    ref: str
    old_id: str
    new_id: str
    old_bundle: Path
    paths: dict[str, Path]  # label -> bundle directory or .tar.gz
    write_seconds: dict[str, float]

    def nbytes(self, label: str) -> int:
        path = self.paths[label]
        return bundle_bytes(path) if path.is_dir() else path.stat().st_size


def prepare(ctx: Context, work: Path) -> Carried:
    project = tools.copy_project(ctx.project_dir("bakery"))
    repository = ctx.name("offline")
    ref = f"{repository}:{CPU_VARIANT}"
    ctx.on_cleanup(f"tag {ref}", lambda: tools.remove_tag(ref))
    ctx.log("offline: old image, its full bundle (what the server already has)")
    old = rebuild.build_bakery(ctx, project, repository)
    old_bundle = work / "old-bundle"
    save(ref, old_bundle)
    tools.edit_training_code(project, ctx.run_id)
    new = rebuild.build_bakery(ctx, project, repository)
    ctx.log("offline: the three ways to carry the new image")
    paths = {DELTA: work / "delta", FULL: work / "full", GZIP: work / "new.tar.gz"}
    seconds = {
        DELTA: save(ref, paths[DELTA], since=old_bundle),
        FULL: save(ref, paths[FULL]),
        GZIP: tools.timed_shell(
            f"docker save {shlex.quote(ref)} | gzip -c > {shlex.quote(str(paths[GZIP]))}"
        ),
    }
    return Carried(ref, str(old["image_id"]), str(new["image_id"]), old_bundle, paths, seconds)


def run(ctx: Context) -> BenchResult:
    reps = ctx.reps(quick=2, full=3)
    result = BenchResult(NAME, TITLE, method=__doc__ or "")
    from bakery import bundle  # noqa: PLC0415

    if not hasattr(bundle, "save_bundle") or not (ctx.root / DAEMON_HELPER).is_file():
        result.status = STATUS_PENDING
        result.reason = (
            "pending bundle support (bakery/bundle save/load or the offline daemon helper)"
        )
        return result
    work = ctx.work / "offline"
    work.mkdir(parents=True, exist_ok=True)
    carried = prepare(ctx, work)
    result.params = {
        "image": carried.ref,
        "old_image_id": carried.old_id,
        "new_image_id": carried.new_id,
        "edited_file": str(tools.EDITED_FILE),
        "repetitions": reps,
    }
    for label in (DELTA, FULL, GZIP):
        result.add_value(
            f"{label}: time to write", carried.write_seconds[label], "s", "build machine"
        )
    for name, label in (("bytes to carry", DELTA), ("bytes to carry (full bundle)", FULL)):
        c = result.compare(name, "B", GZIP, label)
        c.baseline.samples.append(Sample(carried.nbytes(GZIP)))
        c.bakery.samples.append(Sample(carried.nbytes(label)))
    loads = {
        DELTA: result.compare("load time on the server", "s", GZIP, DELTA),
        FULL: result.compare("load time on the server (full bundle)", "s", GZIP, FULL),
    }
    measure_loads(ctx, carried, loads, reps)
    result.notes.append(
        "The gzip samples serve both load comparisons (one gzip load per repetition)."
    )
    return result


def measure_loads(ctx: Context, carried: Carried, loads: dict[str, Comparison], reps: int) -> None:
    with offline_server(ctx) as server:
        env = server.env()
        ctx.log("offline: the server gets the old image (untimed)")
        tools.run(tools.bakery_command("load", str(carried.old_bundle), "--no-probe"), env=env)

        def bakery_load(label: str) -> Callable[[int], None]:
            def one(rep: int) -> None:
                command = tools.bakery_command("load", str(carried.paths[label]), "--no-probe")
                seconds, _ = tools.timed(command, env=env)
                loads[label].bakery.samples.append(Sample(seconds))
                forget(server, carried.new_id)

            return one

        def gzip_load(rep: int) -> None:
            script = f"gzip -dc {shlex.quote(str(carried.paths[GZIP]))} | docker load -q"
            seconds = tools.timed_shell(script, env=env)
            for c in loads.values():
                c.baseline.samples.append(Sample(seconds))
            forget(server, carried.new_id)

        run_interleaved(
            {GZIP: gzip_load, DELTA: bakery_load(DELTA), FULL: bakery_load(FULL)}, reps, ctx.log
        )


def forget(server: Any, image_id: str) -> None:
    """Remove the new image from the server so the next load starts from the old one only."""
    server.docker("image", "rm", "-f", image_id, check=False)
    if image_id in server.image_ids():
        raise tools.BenchError(f"could not remove {image_id} from the offline server")
