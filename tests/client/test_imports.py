"""The client's modules import each other one way only: none imports, even for type hints, a module
that imports it back (a circle makes the import order matter and the modules impossible to read alone)."""

import graphlib

import grimp
import pytest


def test_no_module_of_the_client_imports_one_that_imports_it_back():
    graph = grimp.build_graph("broadcast_client", cache_dir=None)  # imports under TYPE_CHECKING count too
    imports = {module: graph.find_modules_directly_imported_by(module) for module in graph.modules}
    assert {"broadcast_client.errors", "broadcast_client.http_service"} <= imports.keys()

    try:
        graphlib.TopologicalSorter(imports).prepare()
    except graphlib.CycleError as error:
        pytest.fail(f"import circle: {' -> '.join(error.args[1])}")
