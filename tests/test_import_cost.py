"""`import loopwise` stays cheap: the SDK's names load on first use, not with the package.

Each check runs in a fresh interpreter, since this test process has long since imported everything.
The speed itself is measured by benchmarks/import_time.py, never asserted here.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys

import pytest

HEAVY = ("sqlalchemy", "pandas", "httpx", "numpy", "pyarrow")


def _loaded_after(code: str) -> dict[str, object]:
    """Run ``code`` in a fresh interpreter; report which heavy modules it left loaded."""
    probe = (
        f"import sys\n{code}\n"
        "import json\n"
        f"print(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_import_loopwise_loads_no_store_dataframes_or_http_client() -> None:
    loaded = _loaded_after("import loopwise")
    assert loaded == {m: False for m in HEAVY}


def test_the_store_package_loads_its_backends_on_first_use() -> None:
    # The entities and the Store interface are cheap; SQLAlchemy and httpx come with a backend.
    assert _loaded_after("import loopwise.store") == {m: False for m in HEAVY}
    assert _loaded_after("from loopwise.store import RemoteStore")["httpx"] is True


def test_the_cli_command_tree_loads_no_heavy_library() -> None:
    # `loopwise --help` needs the whole command tree, so every command module is imported.
    assert _loaded_after("import loopwise.cli") == {m: False for m in HEAVY}


def test_the_api_server_loads_no_dataframes_or_model_loaders() -> None:
    # The control plane streams blobs and rows; pandas and pyarrow would add ~60 MiB to every
    # server process (the 1 GB upload test bounds the server's whole resident memory).
    loaded = _loaded_after("from loopwise.server import create_app\nimport loopwise.cli.server")
    assert loaded["pandas"] is False and loaded["pyarrow"] is False


def test_logging_to_a_run_needs_no_dataframes() -> None:
    # Searching runs returns pandas frames; starting a run and logging to it does not need them.
    loaded = _loaded_after("import loopwise as lw\nlw.start_run, lw.active_run")
    assert loaded == {m: False for m in HEAVY}


def test_a_tracking_search_name_is_the_real_function() -> None:
    import loopwise.tracking
    from loopwise.tracking import search

    assert loopwise.tracking.runs_frame is search.runs_frame
    assert set(loopwise.tracking.__all__) <= set(dir(loopwise.tracking))


def test_remote_store_is_the_backend_class() -> None:
    import loopwise.store
    from loopwise.store.remote import RemoteStore

    assert loopwise.store.RemoteStore is RemoteStore
    assert "RemoteStore" in dir(loopwise.store)


def test_version_needs_no_store() -> None:
    loaded = _loaded_after("from loopwise import __version__; assert __version__")
    assert loaded["sqlalchemy"] is False


def test_version_is_the_installed_distribution() -> None:
    import loopwise
    from loopwise.store.migrate import loopwise_version

    assert loopwise.__version__ == importlib.metadata.version("loopwise")
    assert loopwise_version() == loopwise.__version__


@pytest.mark.parametrize(
    ("name", "module"),
    [("start_run", "loopwise.tracking"), ("Run", "loopwise.store"), ("init", "loopwise.context")],
)
def test_a_lazy_name_is_the_real_object(name: str, module: str) -> None:
    import loopwise

    assert getattr(loopwise, name) is getattr(importlib.import_module(module), name)


def test_a_subpackage_name_is_the_subpackage() -> None:
    import loopwise
    import loopwise.deployments

    assert loopwise.deployments is sys.modules["loopwise.deployments"]


def test_an_unknown_name_is_an_attribute_error() -> None:
    import loopwise

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        loopwise.nope  # noqa: B018


def test_dir_lists_the_lazy_names() -> None:
    import loopwise

    assert set(loopwise.__all__) <= set(dir(loopwise))
