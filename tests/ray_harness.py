"""A local Ray instance for tests: 2 CPUs, the smallest object store, no dashboard.

``with ray_local(): ...`` starts Ray in this process (never a cluster at ``RAY_ADDRESS``) and
shuts it down on exit; a ``RayExecutor`` created inside finds it running and uses it.
Starting takes 3 to 15 s on a 2-core machine, so share one instance per test module::

    @pytest.fixture(scope="module")
    def local_ray() -> Iterator[None]:
        with ray_local():
            yield

Workers keep the environment and working directory the driver had when Ray started: a later
``monkeypatch.setenv`` or ``chdir`` does not reach them, and a relative store path resolves
against the folder Ray was started in. Hand workers absolute paths.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import ray

__all__ = ["OBJECT_STORE_BYTES", "RAY_CPUS", "ray_local"]

RAY_CPUS = 2
OBJECT_STORE_BYTES = 75 * 1024 * 1024
"""Ray's minimum. The default, 30% of memory, is 7 GB here and larger than many a CI /dev/shm
(Ray then falls back to disk with a warning); tests pass references, not data, through Ray."""

_QUIET_ENV = {
    # Unset, a new local Ray turns on token auth: it writes ~/.ray/auth_token, sets
    # RAY_AUTH_MODE=token in this process's environment for good and prints a notice.
    "RAY_AUTH_MODE": "disabled",
    "RAY_USAGE_STATS_ENABLED": "0",
}


@contextlib.contextmanager
def ray_local(num_cpus: int = RAY_CPUS) -> Iterator[None]:
    """Run the block with a fresh local Ray of ``num_cpus`` CPUs, shut down afterwards."""
    if ray.is_initialized():
        raise RuntimeError(
            "Expected no Ray in this test process, found one already initialised (a test or "
            "fixture did not shut it down). Start Ray only through ray_local(), in a with-block "
            "or a fixture that yields inside it."
        )
    # RAY_ADDRESS would make ray.init join that cluster instead of starting a local one.
    names = [*_QUIET_ENV, "RAY_ADDRESS"]
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update(_QUIET_ENV)
    os.environ.pop("RAY_ADDRESS", None)
    try:
        ray.init(
            num_cpus=num_cpus,
            object_store_memory=OBJECT_STORE_BYTES,
            include_dashboard=False,
            log_to_driver=True,
            configure_logging=False,
        )
        yield
    finally:
        ray.shutdown()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
