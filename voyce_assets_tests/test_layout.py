"""The code's layout: one package per stage, stages meet only through tables, honest deps.

Walks the imports of every module (top-level and inside functions) rather than trusting a
list, and loads the code location in a clean process to see it change nothing global.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from dagster import AssetKey, AssetsDefinition

from voyce_assets.catalog import STAGES, TABLES, VOLUMES
from voyce_assets.definitions import build_definitions, stage_modules
from voyce_assets_tests.conftest import subprocess_env

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "voyce_assets"
# Modules above the stages that may import them: the code location, the resources of each
# environment, and the programs on top.
ENTRY_POINTS = {"definitions.py", "environments.py", "cli.py", "demo"}


def _imports(path: Path, root: Path = REPO) -> set[str]:
    """Every module name ``path`` imports, absolute, wherever the import statement is."""
    names: set[str] = set()
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base]) if base else ".".join(parent)
            names.add(base)
            names |= {f"{base}.{alias.name}" for alias in node.names}
    return names


def _stage_of(module: str) -> str | None:
    parts = module.split(".")
    if len(parts) > 1 and parts[0] == "voyce_assets" and parts[1] in STAGES:
        return parts[1]
    return None


def _modules(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.py"))


def test_every_stage_is_a_package_with_its_definitions():
    for stage in STAGES:
        assert (PACKAGE / stage / "__init__.py").is_file(), stage
        assert (PACKAGE / stage / "definitions.py").is_file(), stage


@pytest.mark.parametrize("stage", STAGES)
def test_a_stage_never_imports_another_stage(stage):
    offenders = {}
    for path in _modules(PACKAGE / stage):
        others = {m for m in _imports(path) if _stage_of(m) not in (None, stage)}
        if others:
            offenders[str(path.relative_to(REPO))] = sorted(others)
    assert not offenders, f"stages meet only through tables: {offenders}"


def test_the_core_never_imports_a_stage():
    offenders = {}
    for path in _modules(PACKAGE):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] in STAGES or relative.parts[0] in ENTRY_POINTS:
            continue
        stages = {m for m in _imports(path) if _stage_of(m)}
        if stages:
            offenders[str(relative)] = sorted(stages)
    assert not offenders, f"the core sits below every stage: {offenders}"


def _module_names(folder: Path, root: Path) -> dict[str, Path]:
    names = {}
    for path in _modules(folder):
        parts = path.relative_to(root).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def _circles(modules: dict[str, Path], root: Path) -> list[list[str]]:
    """Modules that import one another round a circle, imports inside functions included
    (a function-level import hides a circle from Python, not from a reader): the strongly
    connected components of more than one module (Tarjan), each sorted."""
    graph = {
        name: sorted(m for m in _imports(path, root) if m in modules and m != name)
        for name, path in modules.items()
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(name: str) -> None:
        index[name] = low[name] = len(index)
        stack.append(name)
        for other in graph[name]:
            if other not in index:
                visit(other)
                low[name] = min(low[name], low[other])
            elif other in stack:
                low[name] = min(low[name], index[other])
        if low[name] == index[name]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == name:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for name in sorted(graph):
        if name not in index:
            visit(name)
    return sorted(found)


def test_no_modules_import_each_other_round_a_circle():
    circles = _circles(_module_names(PACKAGE, REPO), REPO)
    assert not circles, f"import circles (function-level imports included): {circles}"


def test_the_circle_finder_sees_a_circle_behind_a_function_import(tmp_path):
    package = tmp_path / "voyce_assets"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from voyce_assets.b import x\n")
    (package / "b.py").write_text("def f():\n    from voyce_assets.a import y\n")
    (package / "c.py").write_text("import voyce_assets.a\n")
    modules = _module_names(package, tmp_path)
    assert _circles(modules, tmp_path) == [["voyce_assets.a", "voyce_assets.b"]]


def test_the_import_walker_sees_nested_and_relative_imports(tmp_path):
    # The layout tests are only as good as this walker: it must see what a sneaky import does.
    module = tmp_path / "voyce_assets" / "voice" / "probe.py"
    module.parent.mkdir(parents=True)
    module.write_text(
        "def f():\n    from voyce_assets.text import tables\n"
        "from ..ingestion import mirrors\nimport voyce_assets.training.tables\n"
        "from . import paths\n"
    )
    found = {_stage_of(m) for m in _imports(module, root=tmp_path)} - {None}
    assert found == {"text", "ingestion", "training", "voice"}


def test_each_table_is_written_by_the_stage_the_catalog_names(voyce_home):
    defs = build_definitions("local")
    graph = defs.resolve_asset_graph()
    by_key = {AssetKey(list(t.key)): t for t in TABLES}
    by_key |= {AssetKey(list(v.key)): v for v in VOLUMES if v.stage}
    for stage, module in stage_modules().items():
        for asset in module.defs.assets or []:
            for key in asset.keys if isinstance(asset, AssetsDefinition) else [asset.key]:
                if key in by_key:
                    assert by_key.pop(key).stage == stage, key
                assert graph.get(key).group_name == stage, key
            if isinstance(asset, AssetsDefinition) and asset.is_executable:
                # The function that writes the table lives in its stage's package.
                fn = asset.op.compute_fn.decorated_fn
                assert fn.__module__.startswith(f"voyce_assets.{stage}."), (key, fn.__module__)
    undeclared = sorted(k.to_user_string() for k, spec in by_key.items() if spec in TABLES)
    assert not undeclared, f"tables no stage declares: {undeclared}"


def test_assets_link_to_their_code(voyce_home):
    graph = build_definitions("local").resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if not node.is_executable:
            continue
        refs = node.metadata["dagster/code_references"].code_references
        assert refs and all(Path(r.file_path).is_file() for r in refs), key
        stage = node.group_name
        assert any(f"/voyce_assets/{stage}/" in r.file_path for r in refs), (key, refs)


# Runs in a clean interpreter: records the warnings filters that voyce_assets code installs
# (libraries' own filters, and ours inside catch_warnings blocks, do not count) and every
# environment variable that changes while the code location and the CLI are imported.
IMPORT_PROBE = """
import os, sys, warnings
ours = []
def spy(original):
    def install(*args, **kwargs):
        caller = sys._getframe(1).f_globals.get("__name__", "")
        before = list(warnings.filters)
        original(*args, **kwargs)
        if caller.startswith("voyce_assets"):
            ours.extend(f for f in warnings.filters if f not in before)
    return install
warnings.filterwarnings = spy(warnings.filterwarnings)
warnings.simplefilter = spy(warnings.simplefilter)
before_env = dict(os.environ)
import voyce_assets.definitions, voyce_assets.cli
changed = sorted(k for k in set(os.environ) | set(before_env) if os.environ.get(k) != before_env.get(k))
left = [f for f in warnings.filters if f in ours]
assert not changed, f"environment written at import: {changed}"
assert not left, f"process-wide warnings filters installed at import: {left}"
print("clean")
"""


def test_loading_the_code_location_changes_nothing_global(voyce_home):
    env = subprocess_env(VOYCE_HOME=str(voyce_home), DAGSTER_HOME=str(voyce_home / "dagster"))
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "NUMBA_CACHE_DIR"):
        env.pop(key, None)
    proc = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0 and "clean" in proc.stdout, proc.stderr[-2000:]


def _imported_top_levels() -> set[str]:
    tops = set()
    for path in _modules(PACKAGE):
        tops |= {m.split(".")[0] for m in _imports(path) if m}
    return tops


def _distribution(requirement: str) -> str:
    return re.split(r"[\s<>=!~\[;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_every_runtime_dependency_is_imported_or_explained():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    imported = _imported_top_levels()
    providers: dict[str, set[str]] = {}
    for module, dists in importlib.metadata.packages_distributions().items():
        for dist in dists:
            providers.setdefault(dist.lower().replace("_", "-"), set()).add(module)
    testing = (REPO / "docs" / "testing.md").read_text()
    section = testing[testing.index("## Dependencies") :]
    end = section.find("\n## ", 1)  # only this section counts, not a later one
    explained = section if end < 0 else section[:end]
    unexplained = []
    for requirement in project["dependencies"]:
        dist = _distribution(requirement)
        modules = providers.get(dist, set())
        if modules & imported:
            continue
        if f"`{dist}`" not in explained:
            unexplained.append(dist)
    assert not unexplained, (
        f"neither imported by voyce_assets nor explained in docs/testing.md: {unexplained}"
    )


def test_the_wheel_carries_every_data_file_of_the_package():
    """The wheel is what a GPU job cluster installs: a data file outside package-data (a new
    SQL folder, say) would be missing there and nowhere else."""
    import fnmatch

    data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]
    files = [
        p.relative_to(REPO)
        for p in PACKAGE.rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts
    ]
    assert files, "the package has data files (SQL, examples)"
    for path in files:
        package = ".".join(path.parent.parts)
        covered = any(
            package.startswith(pkg)
            and fnmatch.fnmatch(str(path.relative_to(Path(*pkg.split(".")))), pattern)
            for pkg, patterns in data.items()
            for pattern in patterns
        )
        assert covered, f"{path} is not in [tool.setuptools.package-data]"


# Distributions the code imports that a declared one brings and must keep bringing (checked
# below); openai-whisper is installed by the Makefile (--no-deps, see pyproject.toml). Any
# other distribution the code imports is declared itself: one only another's requirement
# (Pillow under matplotlib, say) leaves when that other one is dropped.
BROUGHT_BY = {
    "pydantic": "dagster",
    "requests": "dagster",
    "dagster-pipes": "dagster",
    "dagster-pyspark": "dagster-databricks",
    "ctranslate2": "faster-whisper",
}
INSTALLED_APART = {"openai-whisper", "voyce-assets"}


def _requirements(dist: str) -> set[str]:
    """``dist``'s requirements, theirs and so on (extras left out)."""
    seen: set[str] = set()
    todo = [dist]
    while todo:
        try:
            requirements = importlib.metadata.requires(todo.pop()) or []
        except importlib.metadata.PackageNotFoundError:  # another platform's (colorama)
            continue
        for requirement in requirements:
            name = _distribution(requirement)
            if "extra ==" not in requirement and name not in seen:
                seen.add(name)
                todo.append(name)
    return seen


def test_every_imported_distribution_is_declared():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = {_distribution(r) for r in project["dependencies"]}
    for extra in project.get("optional-dependencies", {}).values():
        declared |= {_distribution(r) for r in extra}
    providers = importlib.metadata.packages_distributions()
    undeclared = {}
    for module in sorted(_imported_top_levels()):
        dists = {d.lower().replace("_", "-") for d in providers.get(module, [])}
        if not dists or dists & (declared | INSTALLED_APART):
            continue
        if any(d in BROUGHT_BY and d in _requirements(BROUGHT_BY[d]) for d in dists):
            continue
        undeclared[module] = sorted(dists)
    assert not undeclared, f"imported by voyce_assets, not in pyproject.toml: {undeclared}"
