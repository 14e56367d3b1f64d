"""Finding a step's or pipeline's code by module name or file, in this or a fresh process.

A script loaded by file for the steps it defines stops where it starts a pipeline run, so it
needs no ``if __name__ == "__main__"`` guard.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import sys
import threading
from types import ModuleType

from loopwise.errors import InvalidArgumentError

__all__ = ["ScriptStopped", "import_module_at", "stop_if_loading_script"]


def _same_file(module: ModuleType, file: str | None) -> bool:
    found: str | None = getattr(module, "__file__", None)
    if file is None or found is None:
        return file is None
    return os.path.realpath(found) == os.path.realpath(file)


class ScriptStopped(BaseException):
    """Ends the loading of a user's script where it starts a pipeline run (see below)."""


_loading_script = threading.local()


def stop_if_loading_script() -> None:
    """Called where a pipeline run starts. A script loaded by file for the steps it defines
    (in a worker, or by ``load_pipeline``) stops there instead of running its pipeline again,
    so a script needs no ``if __name__ == "__main__"`` guard."""
    if getattr(_loading_script, "active", False):
        raise ScriptStopped


def import_module_at(module: str, file: str | None) -> ModuleType:
    """The module that defines a step: already loaded, importable by name, or read from its file."""
    loaded = sys.modules.get(module)
    if loaded is not None and _same_file(loaded, file):
        return loaded
    if module != "__main__":
        with contextlib.suppress(ImportError):
            imported = importlib.import_module(module)
            if _same_file(imported, file):
                return imported
    if file is None:
        raise InvalidArgumentError(
            f"Cannot import module {module!r} in the worker process. Define the pipeline's steps "
            "in a module or file that every worker can import.",
            parameter="module",
        )
    name = "__loopwise_main__" if module == "__main__" else module
    existing = sys.modules.get(name)
    if existing is not None and _same_file(existing, file):
        return existing
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise InvalidArgumentError(f"Cannot load Python code from {file!r}.", parameter="file")
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[name] = loaded
    was_loading = getattr(_loading_script, "active", False)
    _loading_script.active = True
    # The file's folder is on sys.path while it runs, so that its own `import helpers` works,
    # and only then: a folder left there would shadow modules for every later import.
    saved_path = list(sys.path)
    sys.path.insert(0, os.path.dirname(os.path.abspath(file)))
    try:
        spec.loader.exec_module(loaded)
    except ScriptStopped:
        pass  # every step the pipeline uses is defined above the call that runs it
    except BaseException:
        sys.modules.pop(name, None)
        raise
    finally:
        sys.path[:] = saved_path
        _loading_script.active = was_loading
    return loaded
