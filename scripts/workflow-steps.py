#!/usr/bin/env python3
"""Replay .github/workflows/images.yml here: each job's steps, in order (issue 14).

    scripts/workflow-steps.py --registry 127.0.0.1:5000 [--variant ID] [--publish] [--dry-run]

Runs as a non-root user with passwordless sudo (as on GitHub's hosted runners), in a clean
clone, against a local registry: the workflow's REGISTRY variable is replaced by --registry. The
proof follows the file: jobs come in `needs` order, `run:` steps run with `bash -eo pipefail`
and the workflow's, job's and step's `env:`, `if:` conditions and `${{ }}` expressions are
evaluated. Of the `uses:` steps, checkout and setup-python are the clone and the host's python3;
upload-artifact/download-artifact copy folders under .workflow-artifacts/.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>\d+(?:\.\d+)?)|(?P<op>==|!=|&&|\|\||!|\(|\)|,)"
    r"|(?P<name>[A-Za-z_][\w-]*(?:\.[\w-]+|\[\d+\])*))"
)
_EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}")


def _lookup(context: Mapping[str, Any], path: str) -> Any:
    value: Any = context
    for part in path.split("."):
        value = value.get(part, "") if isinstance(value, Mapping) else ""
    return value


def _to_python(expression: str, context: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """GitHub's expression syntax as a Python expression over named values."""
    out: list[str] = []
    values: dict[str, Any] = {}
    position = 0
    while position < len(expression.rstrip()):
        match = _TOKEN.match(expression, position)
        if match is None:
            raise ValueError(f"cannot read expression at: {expression[position:]!r}")
        position = match.end()
        if match["str"] is not None:
            out.append(repr(match["str"][1:-1].replace("''", "'")))
        elif match["num"] is not None:
            out.append(match["num"])
        elif match["op"] is not None:
            out.append({"&&": " and ", "||": " or ", "!": " not "}.get(match["op"], match["op"]))
        elif match["name"] in ("true", "false", "null"):
            out.append({"true": "True", "false": "False", "null": "None"}[match["name"]])
        elif expression[position:].lstrip().startswith("("):
            out.append(f"f_{match['name']}")  # a function: format, startsWith, ...
        else:
            key = f"v{len(values)}"
            values[key] = _lookup(context, match["name"])
            out.append(key)
    return "".join(out), values


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "f_always": lambda: True,
    "f_success": lambda: True,
    "f_failure": lambda: False,
    "f_format": lambda text, *args: re.sub(r"\{(\d+)\}", lambda m: str(args[int(m[1])]), text),
    "f_startsWith": lambda text, prefix: str(text).startswith(str(prefix)),
    "f_fromJSON": json.loads,
    "f_toJSON": json.dumps,
}


def evaluate(expression: str, context: Mapping[str, Any]) -> Any:
    code, values = _to_python(expression, context)
    return eval(code, {"__builtins__": {}, **_FUNCTIONS}, values)  # noqa: S307 - tokens above


def substitute(text: str, context: Mapping[str, Any]) -> str:
    def one(match: re.Match[str]) -> str:
        value = evaluate(match[1], context)
        if isinstance(value, bool):
            return "true" if value else "false"
        return value if isinstance(value, str) else json.dumps(value)

    return _EXPRESSION.sub(one, text)


def condition(step_if: Any, context: Mapping[str, Any], failed: bool) -> bool:
    if step_if is None:
        return not failed
    text = str(step_if).strip()
    inner = _EXPRESSION.fullmatch(text)
    expression = inner[1] if inner else text
    if "always()" in expression:
        return bool(evaluate(expression, context))
    return not failed and bool(evaluate(expression, context))


def job_order(jobs: Mapping[str, Any]) -> list[str]:
    """Jobs in `needs` order (the file's order among independent jobs)."""
    done: list[str] = []
    while len(done) < len(jobs):
        ready = [
            name
            for name, job in jobs.items()
            if name not in done and all(n in done for n in _as_list(job.get("needs", [])))
        ]
        if not ready:
            raise ValueError("the jobs' needs form a cycle")
        done.append(ready[0])
    return done


def _as_list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


class Replay:
    """Runs the workflow's jobs in `root`, recording job outputs and artifacts."""

    def __init__(self, options: argparse.Namespace, root: Path) -> None:
        self.options = options
        self.root = root
        self.artifacts = root / ".workflow-artifacts"
        self.needs: dict[str, Any] = {}
        self.workflow: dict[str, Any] = yaml.safe_load(
            (root / options.workflow).read_text(encoding="utf-8")
        )

    def base_context(self) -> dict[str, Any]:
        event = "push" if self.options.publish else "pull_request"
        user = os.environ.get("BAKERY_REGISTRY_USER", "")
        password = os.environ.get("BAKERY_REGISTRY_PASSWORD", "")
        return {
            "github": {
                "event_name": event,
                "ref": "refs/heads/main",
                "repository_owner": "local",
                # the registry's user and password go together: an anonymous local registry
                # gets neither (a user without a password is refused by bakery)
                "actor": user if password else "",
                "event": {"repository": {"default_branch": "main"}},
            },
            "secrets": {"GITHUB_TOKEN": password if user else ""},
            "vars": dict(self.options.var),
            "needs": self.needs,
            "env": {**self.workflow.get("env", {}), "REGISTRY": self.options.registry},
        }

    def run(self) -> int:
        jobs: dict[str, Any] = self.workflow["jobs"]
        for name in job_order(jobs):
            if self.options.jobs and name not in self.options.jobs:
                continue
            job = jobs[name]
            context = self.base_context()
            if "if" in job and not condition(job["if"], context, failed=False):
                print(f"== job {name}: skipped ({job['if']})", flush=True)
                continue
            for variant in self.matrix(job, context):
                if not self.run_job(name, job, {**context, "matrix": variant}):
                    return 1
        return 0

    def matrix(self, job: Mapping[str, Any], context: Mapping[str, Any]) -> list[dict[str, Any]]:
        axes = job.get("strategy", {}).get("matrix")
        if not axes:
            return [{}]
        try:
            variants = evaluate(_EXPRESSION.fullmatch(axes["variant"])[1], context)  # type: ignore[index]
        except json.JSONDecodeError:  # --dry-run: the plan job did not run
            ids = self.options.variant or ["2.13.0-cpu-py3.11"]
            variants = [_planned(i, context["vars"].get("BAKERY_GPU_RUNNERS", "")) for i in ids]
        chosen = [v for v in variants if v["id"] in self.options.variant] or variants[:1]
        return [{"variant": v} for v in chosen]

    def run_job(self, name: str, job: Mapping[str, Any], context: dict[str, Any]) -> bool:
        label = f"{name} ({context['matrix']['variant']['id']})" if context["matrix"] else name
        print(f"== job {label}", flush=True)
        context["runner"] = {"name": label}
        env = {
            **context["env"],
            **{k: substitute(str(v), context) for k, v in job.get("env", {}).items()},
        }
        context["env"] = env
        context["steps"] = {}
        failed = False
        for index, step in enumerate(job["steps"]):
            title = step.get("name") or step.get("uses") or f"step {index}"
            if not condition(step.get("if"), context, failed):
                print(f"-- {title}: skipped", flush=True)
                continue
            ok = self.run_step(step, context, title)
            failed = failed or not ok
        outputs = {k: substitute(str(v), context) for k, v in job.get("outputs", {}).items()}
        self.needs[name] = {"outputs": outputs, "result": "failure" if failed else "success"}
        print(f"== job {label}: {'FAILED' if failed else 'passed'}", flush=True)
        return not failed

    def run_step(self, step: Mapping[str, Any], context: dict[str, Any], title: str) -> bool:
        if "uses" in step:
            return self.use_action(step, context, title)
        step_env = {k: substitute(str(v), context) for k, v in step.get("env", {}).items()}
        script = substitute(step["run"], context)
        print(f"-- {title}\n{script.rstrip()}", flush=True)
        if self.options.dry_run:
            return True
        with tempfile.NamedTemporaryFile("r", prefix="github-output-", delete=False) as out:
            output = Path(out.name)
        env = {
            **os.environ,
            **context["env"],
            **step_env,
            "GITHUB_OUTPUT": str(output),
            "CI": "true",
        }
        if "python_bin" in context:  # what setup-python puts first on PATH
            env["PATH"] = f"{context['python_bin']}:{env.get('PATH', '')}"
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
            cwd=self.root,
            env=env,
            check=False,
        )
        if "id" in step:
            context["steps"][step["id"]] = {"outputs": _read_outputs(output)}
        output.unlink()
        print(f"-- {title}: exit {done.returncode}", flush=True)
        return done.returncode == 0

    def use_action(self, step: Mapping[str, Any], context: dict[str, Any], title: str) -> bool:
        action = step["uses"].split("@")[0]
        given = {k: substitute(str(v), context) for k, v in step.get("with", {}).items()}
        print(f"-- {title} ({action})", flush=True)
        if action == "actions/checkout" or self.options.dry_run:
            return True  # the clean clone
        if action == "actions/setup-python":
            return self.setup_python(context)
        if action == "actions/upload-artifact":
            return _upload(self.root / given["path"], self.artifacts / given["name"], given)
        if action == "actions/download-artifact":
            for folder in sorted(self.artifacts.glob(given.get("pattern", "*"))):
                shutil.copytree(folder, self.root / given["path"], dirs_exist_ok=True)
            return True
        print(f"-- {title}: {action} is not replayed here", file=sys.stderr)
        return False

    def setup_python(self, context: dict[str, Any]) -> bool:
        context["python_bin"] = str(_setup_python_venv(self.root, context["runner"]["name"]))
        return True


def _planned(variant: str, gpu_runners: str) -> dict[str, Any]:
    """The plan job's entry for a variant id, for --dry-run (the plan job did not run)."""
    accelerator = re.sub(r"[\d.]+$", "", variant.split("-")[1])  # rocm6.3 -> rocm
    gpu = accelerator in [name.strip() for name in gpu_runners.split(",")]
    runs_on = ["self-hosted", "linux", accelerator] if gpu else ["ubuntu-24.04"]
    return {"id": variant, "accelerator": accelerator, "gpu_runner": gpu, "runs_on": runs_on}


def _setup_python_venv(root: Path, runner: str) -> Path:
    """setup-python's stand-in: a writable Python of its own, first on PATH (not the system's,
    which PEP 668 closes to pip). One per job, as each job gets a fresh runner on GitHub: what
    the plan job pip-installs must not be there for build-test."""
    venv = root / ".workflow-python" / re.sub(r"[^\w.-]+", "_", runner)
    if not (venv / "bin" / "python").exists():
        subprocess.run(["python3", "-m", "venv", str(venv)], check=True, timeout=600)
    return venv / "bin"


def _upload(source: Path, target: Path, given: Mapping[str, str]) -> bool:
    if not source.exists():
        return given.get("if-no-files-found", "warn") != "error"
    if source.is_dir():
        shutil.copytree(source, target, dirs_exist_ok=True)
    else:
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    return True


def _read_outputs(path: Path) -> dict[str, str]:
    return dict(
        line.split("=", 1) for line in path.read_text(encoding="utf-8").splitlines() if "=" in line
    )


def check_user() -> None:
    """Hosted runners run jobs as an unprivileged user with passwordless sudo: so must we."""
    if os.geteuid() == 0:
        sys.exit("error: run it as a non-root user with passwordless sudo, as on hosted runners")
    if subprocess.run(["sudo", "-n", "true"], capture_output=True, check=False).returncode != 0:
        sys.exit("error: this user needs passwordless sudo (as the runner user has)")


def _name_value(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not equals or not re.fullmatch(r"[A-Za-z_]\w*", name):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not NAME=VALUE (e.g. BAKERY_GPU_RUNNERS=cpu)"
        )
    return name, value


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workflow", default=".github/workflows/images.yml")
    parser.add_argument("--registry", default="127.0.0.1:5000", help="replaces REGISTRY")
    parser.add_argument("--variant", action="append", default=[], help="matrix variants to run")
    parser.add_argument("--jobs", action="append", default=[], help="only these jobs")
    parser.add_argument("--publish", action="store_true", help="as a push to the default branch")
    parser.add_argument("--dry-run", action="store_true", help="print the steps, run nothing")
    parser.add_argument(
        "--var",
        action="append",
        type=_name_value,
        default=[],
        metavar="NAME=VALUE",
        help="a repository variable (vars.NAME), e.g. BAKERY_GPU_RUNNERS=cpu: a self-hosted runner",
    )
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    options = parse_args(argv)
    if not options.dry_run:
        check_user()
    return Replay(options, options.root).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
