"""The site's shape, checked: deny by default in one place, and no database call on the event loop."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from fastapi.routing import APIRoute, iter_route_contexts

from radpath.web import api, audit, auth, case_ops, db, deps, jobs, login, pages, uploads

PUBLIC = {"/", "/login", "/api/token", "/healthz", "/vendor/niivue.js", "/demo/brain.nii.gz"}
ROUTING_MODULES = (api, pages, deps, login, case_ops)


def _dependency_calls(dependant) -> set:
    found = set()
    for d in dependant.dependencies:
        found.add(d.call)
        found |= _dependency_calls(d)
    return found


def test_every_route_but_the_public_ones_declares_the_session_gate(client):
    routes = [r for r in iter_route_contexts(client.app.routes) if isinstance(r.original_route, APIRoute)]
    assert {r.path for r in routes} >= PUBLIC
    for r in routes:
        gated = deps.current_session in _dependency_calls(r.original_route.dependant)
        assert gated == (r.path not in PUBLIC), r.path
    # the gate is declared on the protected routers, not route by route
    for router in (pages.router, api.router):
        assert [d.dependency for d in router.dependencies] == [deps.current_session]


def _blocking_functions() -> set:
    """Plain functions that touch the database or the disk: a parameter named engine, settings or staged."""
    import shutil

    found = {shutil.rmtree}
    for module in (auth, jobs, audit, db, uploads, case_ops, deps, login):
        for _, fn in inspect.getmembers(module, inspect.isfunction):
            if fn.__module__ == module.__name__ and not inspect.iscoroutinefunction(fn):
                if {"engine", "settings", "staged", "url", "folder"} & set(inspect.signature(fn).parameters):
                    found.add(fn)
    return found


def _callee(module, func: ast.expr):
    """The object a call's `f(...)` or `m.f(...)` names in `module`'s namespace (None if neither form)."""
    if isinstance(func, ast.Name):
        return getattr(module, func.id, None)
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        return getattr(getattr(module, func.value.id, None), func.attr, None)
    return None


def test_async_handlers_never_call_the_database_directly():
    """One rule: inside `async def`, blocking functions are handed to asyncio.to_thread, never called."""
    blocking = _blocking_functions()
    assert {auth.lookup_session, jobs.list_for, audit.record, auth.authenticate, uploads.check} <= blocking
    assert {case_ops.remove, case_ops.case_file} <= blocking
    offences = []
    for module in ROUTING_MODULES:
        tree = ast.parse(Path(module.__file__).read_text())
        for fn in (n for n in ast.walk(tree) if isinstance(n, ast.AsyncFunctionDef)):
            for call in (n for n in ast.walk(fn) if isinstance(n, ast.Call)):
                if _callee(module, call.func) in blocking:
                    offences.append(f"{module.__name__}.{fn.name}: {ast.unparse(call)[:80]} on the event loop")
    assert not offences, offences
    # and the test can fail: a direct call is found
    bad = ast.parse("async def f(engine):\n    audit.record(engine, 'x', 'y')\n").body[0]
    assert any(_callee(pages, c.func) in blocking for c in ast.walk(bad) if isinstance(c, ast.Call))
