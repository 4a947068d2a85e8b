"""The example notebooks run from top to bottom without an error.

They run in a kernel of this very interpreter (a kernel spec written to a
temporary folder, so no installed kernel is needed), in a temporary working
folder, so the files they write go there.
"""

import json
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


@pytest.fixture
def kernel_name(tmp_path, monkeypatch):
    name = "pfa-tests-python"
    spec_dir = tmp_path / "jupyter" / "kernels" / name
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python (pytorch_feature_analysis tests)",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    return name


def test_the_notebooks_are_found():
    names = [path.name for path in NOTEBOOKS]
    assert names == ["01_rsa_walkthrough.ipynb", "02_anova_and_svm.ipynb",
                     "03_models_vs_brain.ipynb", "04_encoding_models.ipynb",
                     "05_what_units_see.ipynb",
                     "06_moving_stimuli.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_the_notebook_is_stored_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code_cells
    assert all(not cell.outputs and cell.execution_count is None for cell in code_cells)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_the_notebook_runs(path, kernel_name, tmp_path):
    notebook = nbformat.read(path, as_version=4)
    work_dir = tmp_path / "work"
    work_dir.mkdir()
    client = NotebookClient(
        notebook,
        kernel_name=kernel_name,
        timeout=300,
        resources={"metadata": {"path": str(work_dir)}},
    )
    client.execute()  # raises CellExecutionError, with the cell and traceback, on an error
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.execution_count is not None for cell in code_cells)
    outputs = [output for cell in code_cells for output in cell.outputs]
    errors = [output for output in outputs if output.output_type == "error"]
    assert errors == []
