"""cnnzoo in a Jupyter notebook, run headless by a real kernel: progress while it trains, the
curves drawn inline, results shown as tables and pictures, and the notebook's own matplotlib
figures untouched by cnnzoo."""

import base64

import pytest

nbclient = pytest.importorskip("nbclient", reason="the test extra installs nbclient")
nbformat = pytest.importorskip("nbformat")
pytest.importorskip("ipykernel")

CELLS = [
    # 0: cnnzoo's pictures imported before the user's own matplotlib
    "import cnnzoo\nfrom cnnzoo.show import draw_architecture\nimport matplotlib.pyplot as plt",
    # 1: a short run, as a student would start it
    "result = cnnzoo.train('lenet5_d2l', data='synthetic', epochs=2, train_subset=256,\n"
    "                      test_subset=64, batch_size=64, device='cpu', out='run')",
    # 2: the summary as the cell's value
    "cnnzoo.summary(result.model, input_size=(1, 1, 28, 28))",
    # 3: the user's own figure
    "plt.plot([1, 3, 2])\nplt.title('mine')\nplt.show()",
    # 4: a picture of cnnzoo's as the cell's value
    "draw_architecture(result.model, (1, 28, 28))",
    # 5: the result, and the name that stays a function
    "print(type(cnnzoo.train).__name__, result.model_name, len(result.history))\nresult",
    # 6: silence when asked
    "quiet = cnnzoo.train('lenet5_d2l', data='synthetic', epochs=1, train_subset=128,\n"
    "                     test_subset=64, device='cpu', out='quiet', progress=False)",
]


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """The notebook of ``CELLS``, executed in a fresh Python kernel."""
    folder = tmp_path_factory.mktemp("notebook")
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in CELLS]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    with pytest.MonkeyPatch.context() as patch:
        # the kernel's own inline backend, not one a command run in this process chose
        patch.delenv("MPLBACKEND", raising=False)
        client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                         resources={"metadata": {"path": str(folder)}})
        client.execute()
    return notebook


def outputs(notebook, index):
    return notebook.cells[index].outputs


def mime(output, kind):
    return output.get("data", {}).get(kind)


def test_training_shows_progress_and_the_curves_inline(executed):
    cell = outputs(executed, 1)
    text = "".join(o.get("text", "") for o in cell if o["output_type"] == "stream")
    assert "training lenet5_d2l" in text and "epoch   2/2" in text and "run directory" in text
    bars = [o for o in cell if mime(o, "application/vnd.jupyter.widget-view+json")]
    assert len(bars) == 2  # a notebook progress bar per epoch
    images = [o for o in cell if o["output_type"] == "display_data" and mime(o, "image/png")]
    assert len(images) == 1  # one picture, redrawn in place after each epoch
    assert base64.b64decode(mime(images[0], "image/png")).startswith(b"\x89PNG")


def test_the_summary_is_an_html_table(executed):
    (result,) = [o for o in outputs(executed, 2) if o["output_type"] == "execute_result"]
    assert "<table" in mime(result, "text/html") and "61,706" in mime(result, "text/html")
    assert "Total params: 61,706" in mime(result, "text/plain")  # not a dataclass dump


def test_a_users_figure_still_displays_after_cnnzoo_is_imported(executed):
    images = [o for o in outputs(executed, 3) if mime(o, "image/png")]
    assert len(images) == 1, outputs(executed, 3)


def test_cnnzoos_pictures_display_as_images(executed):
    (result,) = [o for o in outputs(executed, 4) if o["output_type"] == "execute_result"]
    assert mime(result, "image/png") and "<Figure" not in mime(result, "text/plain")


def test_results_are_short_and_train_stays_a_function(executed):
    cell = outputs(executed, 5)
    assert cell[0]["text"] == "function lenet5_d2l 2\n"
    (result,) = [o for o in cell if o["output_type"] == "execute_result"]
    assert mime(result, "text/plain").startswith("TrainResult(lenet5_d2l on synthetic, 2 epochs")
    assert "<table" in mime(result, "text/html")


def test_progress_false_is_silent(executed):
    cell = outputs(executed, 6)
    assert not [o for o in cell if o["output_type"] in ("stream", "display_data")
                and "warning" not in o.get("text", "").lower()], cell
