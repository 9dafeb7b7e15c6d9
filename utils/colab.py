"""The one call of every notebook's Colab setup cell: is this runtime ready for the course?

The cell installs the course's pinned release with ``%pip`` and then calls :func:`setup`. pip
may replace packages Colab had preinstalled (gradio, huggingface_hub, ...) while their old
versions are still loaded in memory; the notebook would then run on a mix of old and new
code and fail far from the cause. :func:`setup` raises instead, which also stops "Run all".
Standard library only (plus ``config``): it runs before anything heavy is imported.
"""

from __future__ import annotations

import importlib.machinery
import importlib.metadata
import re
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path

from . import __version__, config

COURSE_DISTRIBUTION = config.PROJECT_NAME
SHOWN = ("torch", "onnxruntime", "gradio")  # the versions the summary line names
RESTART = "Restart the runtime (Runtime > Restart session) and run this notebook from the top"


class ColabSetupError(RuntimeError):
    """The runtime is not ready for the course; the message says what to do."""


class RestartRequired(ColabSetupError):
    """pip replaced a package whose old version is still loaded in this Python process."""


class UtilsShadowed(ColabSetupError):
    """``import utils`` would find a learner's own utils.py or utils/ folder, not the course."""


def release(version: str) -> tuple[int, ...]:
    """The leading numbers of a version: '2.5.1+cu121' -> (2, 5, 1); () when there are none."""
    match = re.match(r"\d+(?:\.\d+)*", version.strip())
    return tuple(int(part) for part in match.group().split(".")) if match else ()


def same_release(loaded: str, installed: str) -> bool:
    """True unless the numbers differ where both have them.

    Lenient on purpose: a module's ``__version__`` is not always its distribution's version
    ('2.14.1+cu130' vs '2.14.1' for torch, '2026.4.1-22982-...' for openvino, a '.post1' for
    certifi), and a false alarm here would ask for a restart after every restart.
    """
    a, b = release(loaded), release(installed)
    common = min(len(a), len(b))
    return not common or a[:common] == b[:common]


def _loaded_version(module: object) -> str | None:
    """The module's own ``__version__``, read quietly (some packages warn when it is read)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            version = getattr(module, "__version__", None)
        except Exception:  # a module-level __getattr__ may raise anything
            return None
    return version if isinstance(version, str) else None


def replaced_packages(modules: Mapping[str, object] | None = None) -> list[str]:
    """'gradio 5.49.1 -> 6.31.0' for each loaded top-level module whose files pip replaced.

    Every loaded module counts, not a fixed list: pip may replace anything in the course's
    dependency tree, and only the loaded ones need a restart. The course's own distribution is
    left out: the cell pins it, and an editable checkout's metadata lags behind its source.
    """
    modules = dict(sys.modules if modules is None else modules)
    owners = importlib.metadata.packages_distributions()
    replaced = []
    for name in sorted(modules):
        distributions = set(owners.get(name, ()))
        if "." in name or len(distributions) != 1:
            continue  # a submodule, or a name no single distribution owns
        (distribution,) = distributions
        loaded = _loaded_version(modules[name])
        if loaded is None or re.sub(r"[-_.]+", "-", distribution).lower() == COURSE_DISTRIBUTION:
            continue
        try:
            installed = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
        if not same_release(loaded, installed):
            replaced.append(f"{distribution} {loaded} -> {installed}")
    return replaced


def fresh_import_finds() -> str | None:
    """The file or folder a fresh ``import utils`` (after a restart) would find on sys.path."""
    spec = importlib.machinery.PathFinder.find_spec("utils", sys.path)
    if spec is None:
        return None  # not on a sys.path folder (an editable install's own finder serves it)
    if spec.origin and spec.has_location:
        return spec.origin
    return next(iter(spec.submodule_search_locations or []), None)  # a folder with no __init__


def shadowing_message(found: str | None, course: Path | None = None) -> str | None:
    """None when ``import utils`` finds the course package, else one sentence saying what to do."""
    course = course or Path(__file__).resolve().parent / "__init__.py"
    if found is None or Path(found).resolve() == course.resolve():
        return None
    shown = Path(found).parent if Path(found).name == "__init__.py" else Path(found)
    return (
        f"`import utils` finds {config.display_path(shown)}, not the course package: rename your"
        " own utils.py (or utils/ folder) in the working folder, then restart the runtime"
        " (Runtime > Restart session) and run this notebook from the top."
    )


def _installed(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def summary() -> str:
    """One line: what was checked, the versions that matter, and the mode."""
    versions = ", ".join(f"{name} {_installed(name)}" for name in SHOWN)
    mode = (
        f"fast mode ON ({config.FAST_ENV}=1)"
        if config.fast_mode(verbose=False)
        else f"full mode (`%env {config.FAST_ENV}=1` for a quick run)"
    )
    return f"Course {__version__} ready ({versions}); no loaded package was replaced; {mode}."


def setup() -> None:
    """Check the runtime after the course's install; raise when it must restart first."""
    if problem := shadowing_message(fresh_import_finds()):
        raise UtilsShadowed(problem)
    if replaced := replaced_packages():
        raise RestartRequired(
            f"{RESTART}: pip replaced packages that are still loaded in their old versions"
            f" ({'; '.join(replaced)})."
        )
    print(summary())
