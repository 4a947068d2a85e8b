"""The ``pfa-module-api`` directive: one module's public names, as ``pfa.<name>``.

``.. pfa-module-api:: rdms`` shows the module's docstring and documents every
name of its ``__all__`` under the package namespace
(``pytorch_feature_analysis.get_rdms``), so the reference follows ``__all__``
with no list to keep in sync. Names the package does not export (the command
line's) keep their module's namespace. A name bound to a function documented
under another name of the module (``my_mds = rdm_mds``) is listed as an alias.
"""

import importlib
import inspect

from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective

PACKAGE = "pytorch_feature_analysis"


def _entry(name, obj, module_names):
    """Directives documenting ``name`` in the current module (set just before)."""
    if inspect.isclass(obj):
        return [f".. autoclass:: {name}", ""]
    if callable(obj):
        original = getattr(obj, "__name__", name)
        if original != name and original in module_names:
            return [
                f".. py:function:: {name}",
                "",
                f"   The original library's name of :func:`{original}` (the same function).",
                "",
            ]
        return [f".. autofunction:: {name}", ""]
    return [f".. py:data:: {name}", f"   :value: {obj!r}", ""]


class ModuleAPI(SphinxDirective):
    required_arguments = 1
    has_content = False

    def run(self):
        module_name = self.arguments[0]
        module = importlib.import_module(f"{PACKAGE}.{module_name}")
        lines = [f".. automodule:: {PACKAGE}.{module_name}", ""]
        package = importlib.import_module(PACKAGE)
        names = list(module.__all__)
        for name in names:
            obj = getattr(module, name)
            exported = getattr(package, name, None) is obj
            namespace = PACKAGE if exported else module.__name__
            lines += [f".. py:currentmodule:: {namespace}", ""]
            lines += _entry(name, obj, names)
        source = self.get_source_info()[0]
        self.state_machine.insert_input(StringList(lines, source=source), source)
        return []


def setup(app):
    app.add_directive("pfa-module-api", ModuleAPI)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
