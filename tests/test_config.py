import pytest

from transtailor.config import PRESETS, FinetuneConfig, resolve
from transtailor.errors import ConfigError


def test_precedence_default_preset_file_flags(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("preset: paper\nlr-backbone: 0.001\nepochs: 7\n")
    cfg = resolve(FinetuneConfig, flags={"epochs": "3"}, config_file=f)
    assert cfg.lr_head == PRESETS["paper"]["lr_head"]  # from the preset
    assert cfg.lr_backbone == 0.001  # the file beats the preset
    assert cfg.epochs == 3  # the flag beats the file
    assert cfg.mode == "full"  # untouched default


@pytest.mark.parametrize(
    "flags, words",
    [
        ({"epochs": "-1"}, "--epochs must not be negative"),
        ({"val_fraction": "1.5"}, "--val-fraction must be in [0, 1)"),
        ({"test_fraction": "0"}, "--test-fraction must be in (0, 1)"),
        ({"batch_size": "0"}, "--batch-size must be positive"),
        ({"epochs": "two"}, "expects int"),
        ({"mode": "half"}, "--mode must be one of head, full"),
        ({"lr_head": "-0.1"}, "--lr-head must not be negative"),
        ({"preset": "fast"}, "unknown preset"),
        ({"label_smoothing": "1"}, "--label-smoothing must be in [0, 1)"),
        ({"label_smoothing": "-0.1"}, "--label-smoothing must be in [0, 1)"),
    ],
)
def test_nonsense_values_are_refused(flags, words):
    with pytest.raises(ConfigError, match=words.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        resolve(FinetuneConfig, flags=flags)


def test_unknown_yaml_key_suggests_the_close_name(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("epocs: 3\n")
    with pytest.raises(ConfigError, match="did you mean 'epochs'"):
        resolve(FinetuneConfig, config_file=f)


def test_missing_and_malformed_config_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        resolve(FinetuneConfig, config_file=tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n- not a mapping\n")
    with pytest.raises(ConfigError, match="mapping"):
        resolve(FinetuneConfig, config_file=bad)


def test_bool_strings_from_yaml(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("cache: 'yes'\n")
    assert resolve(FinetuneConfig, config_file=f).cache is True


def test_a_recovery_of_its_own_takes_only_recovery_options_and_checks_their_values(tmp_path):
    from transtailor.config import SearchConfig
    from transtailor.cli.main import _config_fields

    f = tmp_path / "c.yaml"
    f.write_text("recovery_options: {lr-backbone: 0.0005, label_smoothing: 0.1}\n")
    cfg = resolve(SearchConfig, config_file=f)
    assert cfg.lr_backbone == 0.005 and cfg.for_recovery().lr_backbone == 0.0005  # the steps keep their own
    assert cfg.for_recovery().label_smoothing == 0.1 and cfg.label_smoothing == 0.0
    for text, words in [("recovery_options: {epochs: 3}\n", "epochs cannot differ between the steps and the recovery"),
                        ("recovery_options: {label_smoothing: 1.5}\n", "--label-smoothing must be in [0, 1)"),
                        ("recovery_options: 0.1\n", "'recovery_options' must be a mapping")]:
        f.write_text(text)
        with pytest.raises(ConfigError, match=words.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
            resolve(SearchConfig, config_file=f)
    names = [f.name for f in _config_fields(SearchConfig)]
    assert "recover_epochs" in names and "recovery_options" not in names  # recorded by a resumed run, not a flag
