"""The package's layout, checked: rooms import only downwards, no circles, no role imports
another role, only kafka/compat.py patches a library, modules stay small, and the public API
is what it says."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import stream_aimass

PACKAGE = Path(stream_aimass.__file__).parent

# Rooms from the bottom up: a module imports only from its own room or from a lower layer.
LAYERS: list[set[str]] = [
    {"settings", "records"},
    {"retry", "observability", "batching", "decode", "files"},
    {"kafka", "clickhouse", "models"},
    {"entities", "privacy", "summaries"},
    {"training", "evaluation", "enrich", "sink", "recs", "jobs"},
    {"pipeline", "web"},
    {"app"},
    {"cli", "tools", "testing", "__init__"},
]
ROLES = {"enrich", "sink", "recs"}
# Data modules (vocabularies, templates) and the settings tree (field declarations) may be long.
LONG_MODULES = {"tools/corpus/vocabulary.py", "settings.py"}
MAX_LINES = 530


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    return ".".join(rel.parts).removesuffix(".__init__")


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path, *, top_level_only: bool) -> set[str]:
    """The stream_aimass modules ``path`` imports (``from a import b`` counts ``a.b`` when
    that is a module)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] != "stream_aimass":
                continue
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in MODULES else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "stream_aimass"}
    return {m for m in found if m in MODULES}


def layer(module: str) -> int:
    r = room(module)
    for n, rooms in enumerate(LAYERS):
        if r in rooms:
            return n
    raise AssertionError(f"room {r!r} of {module} is in no layer: add it to LAYERS")


def test_every_room_is_in_a_layer() -> None:
    for module in MODULES:
        layer(module)


def test_rooms_import_only_their_own_or_lower_layers() -> None:
    upward = []
    for module, path in MODULES.items():
        for target in imports(path, top_level_only=False):
            if room(target) != room(module) and layer(target) > layer(module):
                upward.append(f"{module} imports {target}")
    assert not upward, "a lower room imports a higher one: " + "; ".join(upward)


def test_no_role_imports_another_role() -> None:
    crossing = [
        f"{module} imports {target}"
        for module, path in MODULES.items()
        for target in imports(path, top_level_only=False)
        if room(module) in ROLES and room(target) in ROLES and room(target) != room(module)
    ]
    assert not crossing, "; ".join(crossing)


def test_models_never_import_the_enrich_role() -> None:
    for module, path in MODULES.items():
        if room(module) == "models":
            assert not {t for t in imports(path, top_level_only=False) if room(t) == "enrich"}


def test_records_and_settings_import_nothing_of_ours_but_each_other() -> None:
    for name in ("stream_aimass.records", "stream_aimass.settings"):
        assert imports(MODULES[name], top_level_only=False) <= {
            "stream_aimass.records",
            "stream_aimass.settings",
        }, name


def test_no_import_circles() -> None:
    graph = {m: imports(p, top_level_only=True) - {m} for m, p in MODULES.items()}
    state: dict[str, int] = defaultdict(int)  # 0 new, 1 on the stack, 2 done
    stack: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for target in sorted(graph[module]):
            if state[target] == 1:
                cycle = [*stack[stack.index(target) :], target]
                raise AssertionError("import circle: " + " -> ".join(cycle))
            if state[target] == 0:
                visit(target)
        stack.pop()
        state[module] = 2

    for module in sorted(graph):
        if state[module] == 0:
            visit(module)


def third_party_names(tree: ast.AST) -> set[str]:
    """Local names bound to something imported from outside the package."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] != "stream_aimass":
                    names.add((a.asname or a.name).split(".")[0])
        elif (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.level == 0
            and node.module.split(".")[0] != "stream_aimass"
        ):
            names |= {a.asname or a.name for a in node.names}
    return names


def patches(source: str) -> list[str]:
    """Assignments to attributes of third-party modules and classes, and setattr on them."""
    tree = ast.parse(source)
    foreign = third_party_names(tree)
    # Names assigned from a foreign attribute (``rebalance = module.Class``) are foreign too.
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Attribute | ast.Call):
            base = node.value.func if isinstance(node.value, ast.Call) else node.value
            while isinstance(base, ast.Attribute):
                base = base.value
            if (
                isinstance(base, ast.Name)
                and base.id in foreign
                and isinstance(node.value, ast.Attribute)
            ):
                foreign |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    found = []
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else []
        for target in targets:
            if isinstance(target, ast.Attribute):
                base = target.value
                while isinstance(base, ast.Attribute):
                    base = base.value
                if isinstance(base, ast.Name) and base.id in foreign:
                    found.append(f"line {node.lineno}: {ast.unparse(target)} = ...")
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "setattr"
            and node.args
            and isinstance(node.args[0], ast.Name)
            and node.args[0].id in foreign
        ):
            found.append(f"line {node.lineno}: setattr({node.args[0].id}, ...)")
    return found


def test_the_patch_scan_finds_patches() -> None:
    source = (
        "from aiokafka.consumer import fetcher\nimport faust\n"
        "def install():\n    fetcher.MemoryRecords = object\n"
        "    rebalance = fetcher.PartitionRecords\n    rebalance.x = 1\n"
        "    setattr(faust, 'y', 2)\n"
    )
    assert len(patches(source)) == 3


def test_nothing_outside_kafka_compat_patches_a_library() -> None:
    outside = {
        str(path.relative_to(PACKAGE)): found
        for path in MODULES.values()
        if path.relative_to(PACKAGE).as_posix() != "kafka/compat.py"
        and (found := patches(path.read_text()))
    }
    assert not outside, f"patch libraries in stream_aimass/kafka/compat.py only: {outside}"
    assert patches((PACKAGE / "kafka" / "compat.py").read_text())  # the scan sees its patches


def test_no_module_is_over_about_500_lines() -> None:
    long = {
        rel: n
        for path in MODULES.values()
        if (rel := path.relative_to(PACKAGE).as_posix()) not in LONG_MODULES
        and (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"split these modules: {long}"


def test_the_public_api_is_pinned() -> None:
    assert stream_aimass.__all__ == [
        "Batch",
        "Category",
        "DeadLetter",
        "Document",
        "DocumentDecoder",
        "EnrichedDocument",
        "ModelRef",
        "Settings",
        "Source",
        "TokenBudgetBatcher",
        "__version__",
        "load_settings",
    ]
    for name in stream_aimass.__all__:
        assert hasattr(stream_aimass, name), name
