"""Parameter declarations, validation before any work, and recorded key figures."""

from __future__ import annotations

import json

import pytest

from mlkit import parameters
from mlkit.errors import ParameterError
from mlkit.parameters import parse_parameters_cell, record, recorded, validate

CELL = '''use_case: str = "finance-fraud"  # which industry example
seed: int = 0  # every random draw starts from this seed
smoke: bool = False  # tiny sizes
n_samples: int = 100  # rows
alpha: float = 0.5  # strength
data_path: str = ""  # your CSV
target: str = ""  # column to predict
task: str = ""  # classification or regression
output_dir: str = "build/test"  # where metrics go
'''


@pytest.fixture
def declared():
    return parse_parameters_cell(CELL)


def test_parse_reads_names_types_defaults_and_comments(declared):
    assert list(declared) == ["use_case", "seed", "smoke", "n_samples", "alpha", "data_path", "target", "task", "output_dir"]
    assert declared["seed"].type == "int" and declared["seed"].default == 0
    assert declared["use_case"].comment == "which industry example"


@pytest.mark.parametrize(
    "source, message",
    [
        ("seed = 0  # no annotation", "not of the form"),
        ("seed: list = []  # bad type", "annotated 'list'"),
        ("seed: int = compute()  # not literal", "literal default"),
        ("seed: int = (", "not valid Python"),
    ],
)
def test_parse_rejects_malformed_cells(source, message):
    with pytest.raises(ParameterError, match=message):
        parse_parameters_cell(source)


def test_unknown_injected_name_names_the_closest_and_all_valid(declared):
    with pytest.raises(ParameterError) as err:
        validate({"n_sampels": 5}, declared, injected=["n_sampels"])
    msg = str(err.value)
    assert "Unknown parameter 'n_sampels'" in msg and "did you mean 'n_samples'" in msg
    assert "use_case, seed, smoke" in msg


def test_unknown_use_case_lists_valid_choices(declared):
    with pytest.raises(ParameterError) as err:
        validate({"use_case": "nope"}, declared, injected=["use_case"])
    assert "Unknown use case 'nope'" in str(err.value)
    assert "healthcare-diagnosis" in str(err.value) and "data_path" in str(err.value)


def test_close_use_case_typo_gets_a_suggestion(declared):
    with pytest.raises(ParameterError, match="Did you mean 'retail-demand'"):
        validate({"use_case": "retail-demnd"}, declared)


def test_clustering_use_case_is_refused_where_a_target_is_needed(declared):
    with pytest.raises(ParameterError, match="needs a supervised one.*notebooks/usecases"):
        validate({"use_case": "marketing-segments"}, declared)
    assert validate({"use_case": "marketing-segments"}, declared, require_supervised=False).use_case == "marketing-segments"


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("seed", "abc", "'seed' must be int, got str 'abc'"),
        ("seed", 1.5, "'seed' must be int"),
        ("seed", True, "'seed' must be int"),
        ("smoke", "maybe", "'smoke' must be bool"),
        ("alpha", "x", "'alpha' must be float"),
        ("alpha", float("nan"), "'alpha' must be float"),
        ("use_case", [1], "'use_case' must be str"),
        ("seed", -1, "seed must be 0 or more"),
        ("task", "clustering", "task must be 'classification' or 'regression'"),
    ],
)
def test_wrong_types_and_values_are_refused(declared, name, value, message):
    with pytest.raises(ParameterError, match=message):
        validate({name: value}, declared)


@pytest.mark.parametrize(
    "name, value, expected",
    [("seed", "3", 3), ("seed", 4.0, 4), ("smoke", "true", True), ("smoke", "False", False), ("alpha", 2, 2.0), ("target", 7, "7")],
)
def test_lossless_conversions_are_accepted(declared, name, value, expected):
    out = validate({name: value}, declared)
    assert out[name] == expected and type(out[name]) is type(expected)


def test_data_path_needs_a_target(declared):
    with pytest.raises(ParameterError, match="target must name the column"):
        validate({"data_path": "x.csv"}, declared)
    # with a CSV, the use case is not looked up at all
    assert validate({"data_path": "x.csv", "target": "y", "use_case": "nope"}, declared).target == "y"


def test_defaults_fill_missing_values_and_attribute_access_works(declared):
    params = validate({}, declared)
    assert params.seed == 0 and params["use_case"] == "finance-fraud"
    assert "seed = 0" in params.format()


def test_check_parameters_reads_the_kernel_history(monkeypatch, declared):
    history = ["", CELL, '# Parameters\nuse_case = "retail-demand"\nn_samples = 7\n', "params = check(...)"]
    monkeypatch.setattr(parameters, "_history", lambda: history)
    ns = {"use_case": "retail-demand", "seed": "2", "n_samples": 7}
    params = parameters.check_parameters(ns)
    assert params.use_case == "retail-demand" and ns["seed"] == 2  # coerced value written back

    history[2] = "# Parameters\nn_sampels = 7\n"
    with pytest.raises(ParameterError, match="Unknown parameter 'n_sampels'"):
        parameters.check_parameters({"n_sampels": 7})


def test_check_parameters_without_a_parameters_cell_says_what_to_run(monkeypatch):
    monkeypatch.setattr(parameters, "_history", lambda: ["import mlkit"])
    with pytest.raises(ParameterError, match="run the cell tagged `parameters`"):
        parameters.check_parameters({})


def test_record_writes_metrics_json_and_starts_fresh_each_run(tmp_path, declared):
    out = tmp_path / "run"
    parameters.start_recording(out)
    record("recall", 0.91234567)
    record("verdict", "GO")
    assert json.loads((out / "metrics.json").read_text()) == {"recall": 0.912346, "verdict": "GO"}
    parameters.start_recording(out)  # a new run
    record("recall", 0.5)
    assert recorded(out) == {"recall": 0.5}


def test_record_refuses_objects_and_empty_names(tmp_path):
    with pytest.raises(ParameterError, match="takes a number, a string or a bool"):
        record("model", object(), output_dir=tmp_path)
    with pytest.raises(ParameterError, match="non-empty metric name"):
        record("", 1, output_dir=tmp_path)


def test_check_parameters_without_history_uses_the_annotations(monkeypatch):
    # nbval runs cells with store_history=False: the annotations are all that is left.
    monkeypatch.setattr(parameters, "_history", lambda: [])
    ns = {"__annotations__": {"seed": int, "use_case": str}, "seed": 1, "use_case": "retail-demand"}
    assert parameters.check_parameters(ns) == {"seed": 1, "use_case": "retail-demand"}
    ns["use_case"] = "nope"
    with pytest.raises(ParameterError, match="Unknown use case 'nope'"):
        parameters.check_parameters(ns)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"drift": "sudden"}, "drift must be 'covariate', 'label' or 'concept'"),
        ({"windows": 3}, "windows must be at least 4"),
        ({"windows": 12, "label_delay_windows": 6}, "less than half of windows"),
        ({"label_delay_windows": -1}, "label_delay_windows must be 0 or more"),
        ({"false_alarm_rate": 0.0}, "false_alarm_rate must be above 0"),
        ({"false_alarm_rate": 0.5}, "at most 0.2"),
    ],
)
def test_monitoring_parameters_are_checked(values, message):
    declared = parse_parameters_cell(
        'drift: str = "covariate"  # scenario\n'
        "windows: int = 12  # production windows\n"
        "label_delay_windows: int = 2  # late labels\n"
        "false_alarm_rate: float = 0.01  # per column\n"
    )
    assert validate({}, declared).windows == 12
    with pytest.raises(ParameterError, match=message):
        validate(values, declared)


GALLERY_CELL = '''seed: int = 0  # every random draw starts from this seed
smoke: bool = False  # fewer bootstrap resamples
output_dir: str = "build/usecases/x"  # where this run's key figures go
sensitivity_floor: float = 0.95  # share of cancers to flag
drift: str = "concept"  # what changes in production
'''


def test_a_gallery_notebook_without_use_case_or_data_path_is_checked(monkeypatch, tmp_path):
    """notebooks/usecases/* are fixed to one use case: no use_case, data_path or target parameter."""
    history = ["", GALLERY_CELL, f'# Parameters\nsmoke = True\noutput_dir = "{tmp_path}"\n', "check"]
    monkeypatch.setattr(parameters, "_history", lambda: history)
    ns = {"seed": 0, "smoke": True, "output_dir": str(tmp_path), "sensitivity_floor": "0.9", "drift": "concept"}
    params = parameters.check_parameters(ns)
    assert params == {"seed": 0, "smoke": True, "output_dir": str(tmp_path), "sensitivity_floor": 0.9, "drift": "concept"}
    record("threshold", 0.3)  # recording starts in the notebook's own output_dir
    assert recorded(tmp_path) == {"threshold": 0.3}

    history[2] = "# Parameters\nuse_case = 'finance-fraud'\n"  # the gallery notebook does not take one
    with pytest.raises(ParameterError, match="Unknown parameter 'use_case'. This notebook takes: seed, smoke"):
        parameters.check_parameters({**ns, "use_case": "finance-fraud"})
    history[2] = "# Parameters\ndrift = 'sudden'\n"
    with pytest.raises(ParameterError, match="drift must be 'covariate', 'label' or 'concept'"):
        parameters.check_parameters({**ns, "drift": "sudden"})

    monkeypatch.setattr(parameters, "_history", lambda: [])  # nbval: only the annotations are left
    annotated = {"__annotations__": {"seed": int, "smoke": bool, "output_dir": str}, "seed": 2, "smoke": False,
                 "output_dir": str(tmp_path)}
    assert parameters.check_parameters(annotated) == {"seed": 2, "smoke": False, "output_dir": str(tmp_path)}
