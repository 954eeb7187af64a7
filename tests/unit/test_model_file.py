"""Invalid model YAML fails at load with the file, the key and what is wrong."""

from pathlib import Path

import pytest
import yaml

from health.scoring.model import ModelError, load_model
from health.settings import DEFAULT_MODEL_PATH


def write(tmp_path: Path, edit) -> Path:
    data = yaml.safe_load(DEFAULT_MODEL_PATH.read_text())
    edit(data)
    path = tmp_path / "model.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_default_model_loads():
    model = load_model(DEFAULT_MODEL_PATH)
    assert model.total_weight == 100
    assert set(model.components) == {
        "product_usage",
        "adoption_depth",
        "support_sentiment",
        "relationship",
        "commercial",
    }


@pytest.mark.parametrize(
    ("edit", "key", "message"),
    [
        (
            lambda d: d["components"]["product_usage"].update(weight=-3),
            "components.product_usage.weight",
            "greater than 0",
        ),
        (
            lambda d: d["components"]["commercial"]["metrics"]["payment_failed"].update(
                signal="nope"
            ),
            "components.commercial.metrics.payment_failed.signal",
            "unknown signal 'nope'",
        ),
        (
            lambda d: d["components"]["product_usage"]["metrics"]["usage_vs_baseline"].update(
                points=[[0.8, 100], [0.4, 0]]
            ),
            "usage_vs_baseline.points",
            "strictly ascending",
        ),
        (
            lambda d: d["components"]["support_sentiment"]["metrics"]["sev1_tickets"].update(
                points=[[0, 0], [2, 100]]
            ),
            "sev1_tickets.points",
            "scores rise as sev1_ticket",
        ),
        (lambda d: d["tiers"]["bands"].update(monitor=90), "tiers.bands", "at_risk < monitor"),
        (
            lambda d: d["components"]["product_usage"]["metrics"]["usage_vs_baseline"].update(
                stat="median"
            ),
            "usage_vs_baseline.stat",
            "Input should be",
        ),
        (lambda d: d.pop("version"), "version", "Field required"),
        (
            lambda d: d["components"]["commercial"].update(metrics={}),
            "components.commercial.metrics",
            "at least 1 item",
        ),
    ],
)
def test_invalid_model_names_file_key_and_problem(tmp_path, edit, key, message):
    path = write(tmp_path, edit)
    with pytest.raises(ModelError) as exc:
        load_model(path)
    text = str(exc.value)
    assert text.startswith(str(path)) and key in text and message in text


def test_unreadable_and_unparsable_files(tmp_path):
    with pytest.raises(ModelError, match="cannot read"):
        load_model(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("components: [unclosed")
    with pytest.raises(ModelError, match="not valid YAML"):
        load_model(bad)
