"""Every public function and class of the package documents each of its parameters the nbdev way (docments)."""
import importlib, inspect, pkgutil
import pytest
from fastcore.docments import docments
import gravityaudit

MODULES = sorted(m.name for m in pkgutil.iter_modules(gravityaudit.__path__) if not m.name.startswith("_"))


def undocumented(module_name: str) -> list[str]:
    "`name(param)` for every parameter of the module's public functions and classes that has no docments comment."
    module = importlib.import_module(f"gravityaudit.{module_name}")
    missing = []
    for name in getattr(module, "__all__", []):
        obj = getattr(module, name)
        if not (inspect.isfunction(obj) or inspect.isclass(obj)) or getattr(obj, "__module__", "") != module.__name__: continue
        init = obj.__init__ if inspect.isclass(obj) else obj
        if inspect.isclass(obj) and (obj.__init__ is object.__init__ or not inspect.isfunction(obj.__init__)): continue
        comments = docments(obj if inspect.isclass(obj) else obj, full=False)
        variadic = {n for n, p in inspect.signature(init).parameters.items() if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
        missing += [f"{name}({p})" for p, text in comments.items() if p not in ("return", "self", "cls") and p not in variadic and not text]
    return missing


@pytest.mark.parametrize("module_name", MODULES)
def test_every_parameter_is_documented(module_name):
    assert undocumented(module_name) == []
