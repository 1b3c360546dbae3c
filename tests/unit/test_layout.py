"""Architecture rules that keep the layers honest."""

import ast
import logging
from pathlib import Path

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
