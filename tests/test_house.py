"""House rules that a linter cannot check: the import layers, typed public functions, module size."""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "seisgrid"

#: The archive/store layer of the detection half: miniSEED in, the waveform store out.
ARCHIVE_LAYER = {"archive", "mseed", "layout", "scan", "ingest", "store", "synth", "synthwaves", "channels",
                 "verify"}
#: The detection layer on top of it: windows, images, detectors, catalogs.
DETECTION_LAYER = {"labelled", "windowstore", "spectrogram", "stalta", "forest", "metrics", "evaluate", "models",
                   "train", "detect", "associate", "octo", "catalog", "attribution", "stationdata",
                   "peers", "eqt_convert", "watch", "windowgrid"}
#: Modules of the platform under both halves; they import neither half.
PLATFORM = {"config", "errors", "storage", "cluster", "figures", "checkpoint", "manifest", "versioned"}


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, path, ast.parse(path.read_text())


def _imports(tree: ast.Module, name: str, is_package: bool) -> set[str]:
    """Every seisgrid module a module imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[:len(base) - node.level + (1 if is_package else 0)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{a.name}" for a in node.names)
    return {m for m in found if m.split(".")[0] == "seisgrid"}


def _part(module: str, depth: int) -> str | None:
    parts = module.split(".")
    return parts[depth] if len(parts) > depth else None


def test_imports_flow_one_way():
    problems = []
    for name, path, tree in _modules():
        imported = _imports(tree, name, path.name == "__init__.py")
        top = _part(name, 1)
        for other in imported:
            other_top, other_sub = _part(other, 1), _part(other, 2)
            if other_top in ("cli",) and top != "cli":
                problems.append(f"{name} imports the command line ({other})")
            if other_top in ("pipeline", "steps") and top not in ("cli", "pipeline", "steps"):
                problems.append(f"{name} imports {other}: only cli/pipeline sit on the step table")
            if top in PLATFORM and other_top in ("seismic", "ghf"):
                problems.append(f"platform module {name} imports {other}")
            if {top, other_top} == {"seismic", "ghf"}:
                problems.append(f"{name} imports the other half ({other})")
            if top == "seismic" and _part(name, 2) in ARCHIVE_LAYER and other_top == "seismic" \
                    and other_sub in DETECTION_LAYER:
                problems.append(f"archive-layer module {name} imports detection-layer {other}")
    assert not problems, "\n".join(sorted(set(problems)))


def test_every_seismic_module_is_in_one_layer():
    modules = {p.stem if p.name != "__init__.py" else p.parent.name
               for p in (PACKAGE / "seismic").glob("*") if p.suffix == ".py" or (p / "__init__.py").exists()}
    modules.discard("seismic")
    assert modules == ARCHIVE_LAYER | DETECTION_LAYER, "put a new seismic module in a layer of tests/test_house.py"


def _public_functions(tree: ast.Module):
    def visit(body, owner=""):
        for node in body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                yield from visit(node.body, node.name + ".")
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
                yield owner + node.name, node

    yield from visit(tree.body)


def test_public_functions_have_type_hints():
    """Parameters and return of every public function and method of every public module (ruff's ANN
    rules cannot tell a public function's parameters from a private one's)."""
    missing = []
    for name, path, tree in _modules():
        if any(part.startswith("_") for part in name.split(".")):
            continue
        for qualname, node in _public_functions(tree):
            args = node.args
            params = [a for a in args.posonlyargs + args.args + args.kwonlyargs if a.arg not in ("self", "cls")]
            untyped = [a.arg for a in params if a.annotation is None]
            if node.returns is None and node.name != "__init__":
                untyped.append("return")
            if untyped:
                missing.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {qualname}: {', '.join(untyped)}")
    assert not missing, f"{len(missing)} public functions lack type hints:\n" + "\n".join(missing)


@pytest.mark.parametrize("limit", [1000])
def test_no_module_does_several_jobs(limit):
    long = [f"{p.relative_to(PACKAGE.parent)}: {n} lines" for _, p, _ in _modules()
            if (n := len(p.read_text().splitlines())) > limit]
    assert not long, "split these (one module per thing):\n" + "\n".join(long)
