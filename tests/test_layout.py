"""The layering rules, checked on the code's own imports (every import counts: module level,
inside functions and under TYPE_CHECKING alike, since each is still a dependency)."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("shared", "services", "gateway", "marketplan")
PURE = ("services.budget.optimizer", "services.planner.engine", "services.calendar.graph")
# Web, HTTP and database libraries: none may be reached from a pure package, even through shared/.
IMPURE = {"fastapi", "starlette", "pydantic", "pydantic_settings", "sqlmodel", "sqlalchemy",
          "alembic", "httpx", "aiohttp", "uvicorn", "psycopg"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for package in PACKAGES
            for path in (ROOT / package).rglob("*.py") if "migrations" not in path.parts}


def _imports(name: str, path: Path) -> set[str]:
    """Every module `name` imports, absolute, as written (relative imports resolved)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(project module -> project modules it imports, project module -> outside top-level names)."""
    modules = _modules()
    inside, outside = {}, {}
    for name, path in modules.items():
        imported = _imports(name, path)
        inside[name] = {m for m in imported if m in modules and m != name}
        outside[name] = {m.split(".")[0] for m in imported if m.split(".")[0] not in PACKAGES}
    return inside, outside


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], [0]
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def _ancestors_are_packages(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    # A package's __init__ re-exporting its modules is not a cycle with them.
    return {name: {m for m in deps if not name.startswith(m + ".")} for name, deps in graph.items()}


def test_the_project_has_no_import_cycle():
    inside, _ = _graph()
    assert _cycles(_ancestors_are_packages(inside)) == []


def test_the_pure_packages_reach_no_web_or_database_library():
    inside, outside = _graph()
    assert set(PURE) <= set(inside), "every pure package exists"
    pure = [m for m in inside if m.startswith(PURE)]
    for start in pure:
        seen, todo = set(), [start]
        while todo:
            module = todo.pop()
            if module in seen:
                continue
            seen.add(module)
            bad = outside[module] & IMPURE
            assert not bad, f"{start} reaches {sorted(bad)} through {module}"
            todo.extend(inside[module])


def test_no_service_imports_another_service():
    inside, _ = _graph()
    for name, deps in inside.items():
        if name.startswith("services."):
            own = ".".join(name.split(".")[:2])
            foreign = {d for d in deps if d.startswith("services.") and not d.startswith(own)}
            assert not foreign, f"{name} imports {sorted(foreign)}"


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
