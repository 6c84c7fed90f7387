"""Helpers and fixtures shared by the test folders (tests/ is on sys.path: tests/conftest.py).

Imported as `support.<module>`; test folders hold only tests and their conftest.py.

- ci: `in_ci`, `skip_or_fail` (skip on a developer machine, fail under CI=true),
  `require_daemon`, `require_image`: the one rule for "Docker or image missing".
- wait: `wait_until`, a deadline-bound poll (no sleeps as synchronisation).
- dockercli: `docker()` (the CLI, optionally against another daemon), `run_container()` (a
  named throwaway container, force-removed even when the client times out), `BASE_TAG`.
- fixtures: pytest plugin (loaded by tests/conftest.py): `unique`, `forget_images`, `new_name`
  (container names force-removed when the test ends).
- offline_daemon: a second, isolated dockerd playing an offline server.
- registry: a real registry with htpasswd auth, and a bridge into the offline daemon's namespace.
- engine_tests: Dockerfiles on the local base, Ctrl+C at a condition, tar contents (tests/docker).
- bundles, images, devbox, slim: the helpers of the bundle, image, dev-container and slim suites.
- slim_env: stand-in host environments (and a slim plan over one) for tests/unit's slim tests.
- project_copy, standin_index: a copy of the project to build, a stand-in accelerator index.
"""
