"""Architecture rules that keep the layers honest."""

import ast
import logging
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("api", "worker", "shared", "demo", "launcher")
HTTP_CLIENTS = {"requests", "urllib3", "httpx", "http.client", "urllib.request", "aiohttp"}


def imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_api_never_imports_an_http_client_or_the_worker():
    """The API reads Redis only: no module of api/ imports an HTTP client or worker/."""
    for path in (ROOT / "api").glob("*.py"):
        found = {n for n in imports(path)
                 if n in HTTP_CLIENTS or n.split(".")[0] in {"requests", "worker"}}
        assert not found, f"{path.name} imports {found}"


def test_every_redis_key_comes_from_shared_keys():
    """No module outside shared/store/keys.py spells a key of the deployment's prefix."""
    for path in [*ROOT.glob("api/*.py"), *ROOT.glob("worker/*.py"), *ROOT.glob("shared/**/*.py")]:
        if path.name == "keys.py":
            continue
        text = path.read_text()
        assert 'f"{prefix}:' not in text and "key_prefix}:" not in text, path


def modules() -> list[Path]:
    """Every module of the project's packages (tests and benchmarks aside)."""
    return [p for package in PACKAGES for p in (ROOT / package).rglob("*.py")]


RESERVED_LOG_FIELDS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def test_log_extra_fields_never_overwrite_log_record_attributes():
    """A log call whose ``extra`` names a LogRecord attribute ("process", "name", ...)
    raises KeyError at run time; no module makes one."""
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            for kw in node.keywords:
                if kw.arg == "extra" and isinstance(kw.value, ast.Dict):
                    names = {k.value for k in kw.value.keys if isinstance(k, ast.Constant)}
                    clash = names & RESERVED_LOG_FIELDS
                    assert not clash, f"{path.relative_to(ROOT)}:{node.lineno} uses {clash}"


SHIPPED = ("api", "worker", "shared", "demo")  # what the image copies


def test_shipped_code_never_imports_the_test_harness_or_dev_tools():
    """The image carries api/, worker/, shared/ and demo/ only: none of them may need
    tests/, the launcher of ``make run`` or the benchmarks."""
    for package in SHIPPED:
        for path in (ROOT / package).rglob("*.py"):
            found = {n for n in imports(path)
                     if n.split(".")[0] in {"tests", "launcher", "benchmarks", "pytest"}}
            assert not found, f"{path.relative_to(ROOT)} imports {found}"


def test_the_image_copies_only_the_shipped_packages():
    copied = {line.split()[1].rstrip("/") for line in (ROOT / "Dockerfile").read_text()
              .splitlines() if line.startswith("COPY ") and line.split()[1].endswith("/")}
    assert copied == set(SHIPPED)


CALENDAR42 = re.compile(r"c42|calendar\s*42", re.IGNORECASE)


def test_no_module_knows_calendar42():
    """Calendar42 is an entry of catalogue.toml: no module of the system names it, so
    any upstream is a catalogue edit (the demo upstream and the tests aside)."""
    paths = [*(p for package in ("api", "worker", "shared", "launcher")
               for p in (ROOT / package).rglob("*.py")),
             ROOT / "celeryconfig.py", ROOT / "flowerconfig.py"]
    mentions = [str(p.relative_to(ROOT)) for p in paths if CALENDAR42.search(p.read_text())]
    assert mentions == []


def test_the_caching_policy_does_no_io():
    """shared/policy/ decides from values: it imports no Redis, HTTP or task queue."""
    for path in (ROOT / "shared" / "policy").rglob("*.py"):
        found = {n for n in imports(path)
                 if n.split(".")[0] in {"redis", "requests", "celery", "kombu", "bottle"}
                 or n.startswith(("shared.store.entries", "shared.store.flights",
                                  "shared.store.schedule", "shared.store.breaker"))}
        assert not found, f"{path.relative_to(ROOT)} imports {found}"


def test_no_unit_test_starts_a_process_or_imports_another_test_module():
    """tests/unit runs without services: none of its modules starts a process; and no
    test module imports another (shared helpers live in tests/helpers.py and
    tests/harness.py)."""
    for path in (ROOT / "tests" / "unit").glob("*.py"):
        found = imports(path) & {"subprocess", "multiprocessing", "tests.harness"}
        assert not found, f"{path.name} imports {found}"
    test_module = re.compile(r"tests\.(unit|integration)\.(test_|conftest)")
    for path in (ROOT / "tests").rglob("test_*.py"):
        found = {n for n in imports(path) if test_module.match(n)}
        assert not found, f"{path.relative_to(ROOT)} imports {found}"


MAX_LINES = 300
# mutmut runs the tests on a copy of the tree whose modules it has instrumented.
INSTRUMENTED = pytest.mark.skipif(ROOT.name == "mutants",
                                  reason="the modules are mutmut's instrumented copies")


@INSTRUMENTED
def test_each_shipped_module_is_short_enough_to_read_whole():
    """No module of api/, worker/, shared/ or demo/ runs past 300 lines: one idea each."""
    long = {str(p.relative_to(ROOT)): n for package in SHIPPED
            for p in (ROOT / package).rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"over {MAX_LINES} lines: {long}"


def import_graph() -> dict[str, set[str]]:
    """Each module of the project's packages and the project modules it imports
    (anywhere in it: an import inside a function closes a circle too)."""
    names = {}
    for path in modules():
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        names[name] = path
    graph = {}
    for name, path in names.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                wanted = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                wanted = [a.name for a in node.names]
            else:
                continue
            found |= {w for w in wanted if w in names and w != name}
        graph[name] = found
    return graph


def circles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for dep in graph[node]:
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = set()
            while True:
                top = stack.pop()
                component.add(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(component)

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_no_import_circle():
    """Modules import one way: no two modules need each other, however indirectly."""
    assert circles(import_graph()) == []


def test_the_circle_finder_finds_a_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]


def public_definitions() -> list[tuple[str, bool]]:
    """Every public class, function and method of the shipped packages, and whether it
    has a docstring."""
    found = []

    def visit(nodes: list[ast.stmt], where: str) -> None:
        for node in nodes:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) \
                    and not node.name.startswith("_"):
                found.append((f"{where}{node.name}", ast.get_docstring(node) is not None))
                if isinstance(node, ast.ClassDef):
                    visit(node.body, f"{where}{node.name}.")

    for package in SHIPPED:
        for path in (ROOT / package).rglob("*.py"):
            visit(ast.parse(path.read_text()).body, f"{path.relative_to(ROOT)}:")
    return found


@INSTRUMENTED
def test_public_classes_and_functions_say_what_they_are_for():
    """At least 90 % of the public classes, functions and methods have a docstring."""
    found = public_definitions()
    missing = [name for name, documented in found if not documented]
    assert len(missing) <= 0.1 * len(found), f"no docstring: {missing}"
