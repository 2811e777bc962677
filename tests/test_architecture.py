"""The package is in layers: imports run one way, no module uses another's
private names, and the pieces of the run engine exist once.

Read from the source with `ast` (imports inside functions count too), so
these fail on the change that breaks the rule, wherever it is.
"""

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "tf_sparse")

# Bottom up: a module may import its own layer and the layers below it.
LAYERS = (
    ("ground", ("backend", "masking", "registry", "distributions", "topk",
                "patterns", "files",
                "schedules",
                "sparsification", "saving", "cloning", "model_report",
                "models", "data", "version", "channel_graph",
                "channel_constants", "sparse_compute")),
    ("algorithms", ("algorithms",)),
    ("analysis", ("diagnostics", "flops", "speedup", "undertraining")),
    ("training", ("training", "callbacks", "checkpoints", "distribute",
                  "distillation", "teacher_cache", "optimizers")),
    ("export", ("export", "sparse_inference", "shrinking")),
    ("engine", ("runs",)),
    ("kinds", ("lottery", "recipes")),
    ("binaries", ("cli",)),
)

# What the four runners each had a copy of; the engine has one of each.
ENGINE_PIECES = (
    "default_config", "check_workdir", "RunMismatchError", "make_optimizer",
    "make_loss", "learning_rate", "learning_rate_schedule", "make_algorithm",
    "build_algorithm", "build_model", "load_arrays", "load_data", "make_data",
    "build_session", "Session", "Progress", "write_json", "read_json",
    "compose", "total_epochs", "final_report", "launch", "data_seed",
)


def modules():
    """{dotted name: path} of every module of the package."""
    found = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                dotted = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                if dotted.endswith(".__init__"):
                    dotted = dotted[:-len(".__init__")]
                found[dotted] = path
    return found


MODULES = modules()
TREES = {name: ast.parse(open(path).read(), path)
         for name, path in MODULES.items()}


def imports(name):
    """(imported module, imported names or None, line) of every tf_sparse
    import in module `name`, at any depth."""
    found = []
    for node in ast.walk(TREES[name]):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("tf_sparse"):
                    found.append((alias.name, None, node.lineno))
        elif isinstance(node, ast.ImportFrom) and node.module and (
                node.module.startswith("tf_sparse")):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                if full in MODULES:
                    found.append((full, None, node.lineno))
                else:
                    found.append((node.module, alias.name, node.lineno))
    return found


def layer(name):
    short = name[len("tf_sparse."):]
    for index, (_, members) in enumerate(LAYERS):
        if any(short == m or short.startswith(m + ".") for m in members):
            return index
    return None


def test_every_module_has_a_layer():
    unplaced = [m for m in MODULES if m != "tf_sparse" and layer(m) is None]
    assert unplaced == [], "add these modules to LAYERS"


def test_imports_only_go_down_the_layers():
    upward = []
    for name in MODULES:
        if name == "tf_sparse":
            continue                      # the public facade imports all
        for target, _, line in imports(name):
            if target == "tf_sparse" or layer(target) > layer(name):
                upward.append(f"{MODULES[name]}:{line} imports {target}")
    assert upward == []


def _cycles(graph):
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_circles():
    graph = {name: sorted({t for t, _, _ in imports(name) if t in MODULES})
             for name in MODULES}
    assert _cycles(graph) == []


def test_no_module_uses_another_modules_private_names():
    found = []
    for name in MODULES:
        aliases = {}
        for node in ast.walk(TREES[name]):
            if isinstance(node, ast.ImportFrom) and node.module and (
                    node.module.startswith("tf_sparse")):
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    if alias.name.startswith("_") and not (
                            alias.name.startswith("__")):
                        found.append(f"{name} imports {full}")
                    if full in MODULES:
                        aliases[alias.asname or alias.name] = full
        for node in ast.walk(TREES[name]):
            if (isinstance(node, ast.Attribute)
                    and isinstance(node.value, ast.Name)
                    and node.value.id in aliases
                    and node.attr.startswith("_")
                    and not node.attr.startswith("__")):
                found.append(f"{name} uses {aliases[node.value.id]}."
                             f"{node.attr}")
    assert found == []


def _definitions():
    found = {}
    for name, tree in TREES.items():
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                found.setdefault(node.name, []).append(name)
    return found


@pytest.mark.parametrize("piece", ENGINE_PIECES)
def test_each_piece_of_the_engine_is_defined_once(piece):
    where = _definitions().get(piece, [])
    if piece == "default_config":
        # A kind's default_config composes the one schema (runs.config).
        for name in where:
            node = next(n for n in TREES[name].body if isinstance(
                n, ast.FunctionDef) and n.name == "default_config")
            calls = {getattr(c.func, "attr", getattr(c.func, "id", None))
                     for c in ast.walk(node) if isinstance(c, ast.Call)}
            assert "compose" in calls, f"{name}.default_config"
        return
    assert len(where) <= 1, f"{piece} is defined in {where}"


def _calls(attribute):
    return sorted({name for name, tree in TREES.items()
                   for node in ast.walk(tree)
                   if isinstance(node, ast.Call)
                   and isinstance(node.func, ast.Attribute)
                   and node.func.attr == attribute})


def test_one_runner_loop_trains_and_one_schema_makes_configs():
    assert _calls("fit") == ["tf_sparse.runs.runner"]
    assert _calls("ConfigDict") == ["tf_sparse.runs.config"]
