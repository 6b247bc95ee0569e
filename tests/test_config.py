"""The one config system: --config FILE (JSON or TOML), --SECTION.FIELD flags derived from the dataclasses, short
aliases, nearest-name errors, and values derived by `plan` instead of written back into the config."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from litebert.cli import build_parser, main
from litebert.config import DemoConfig, FinetuneConfig, PretrainConfig, fields, plan
from litebert.config.pretrain import PAPER_TOTAL_STEPS, config_differences


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def test_every_field_is_a_flag_and_aliases_share_its_destination(tmp_path):
    from litebert.pretrain import config_from_args

    paths = fields.leaves(PretrainConfig)
    assert {"optim.lr", "schedule.total_steps", "guard.window", "parallel.backend", "model.overrides"} <= set(paths)
    args = parse("pretrain", "--output", "O", "--guard.window=7", "--optim.beta2", "0.98", "--lr", "1e-3",
                 "--train.bf16=false", "--data.seq_length", "none", "--model.overrides", "num_hidden_layers=2",
                 "--model-override", "hidden_size=64", "--optim.exclude", "bias,LayerNorm")
    config = config_from_args(args)
    assert config.guard.window == 7 and config.optim.beta2 == 0.98 and config.optim.lr == 1e-3
    assert config.train.bf16 is False and config.data.seq_length is None
    assert config.model.overrides == {"num_hidden_layers": 2, "hidden_size": 64}
    assert config.optim.exclude == ["bias", "LayerNorm"]
    # alias and generic flag write one destination: the later one wins
    assert config_from_args(parse("pretrain", "--output", "O", "--lr", "1e-3", "--optim.lr=2e-3")).optim.lr == 2e-3
    assert config_from_args(parse("pretrain", "--output", "O", "--optim.lr=2e-3", "--lr", "1e-3")).optim.lr == 1e-3
    # untouched fields keep their defaults
    assert config.schedule == PretrainConfig().schedule and config.batch == PretrainConfig().batch


def test_toml_and_json_files_then_flags(tmp_path):
    from litebert.pretrain import config_from_args

    (tmp_path / "run.toml").write_text('output = "runs/x"\n[optim]\nname = "adamw"\nlr = 1\n'
                                       '[model]\npreset = "albert-tiny"\n[model.overrides]\nvocab_size = 500\n')
    (tmp_path / "run.json").write_text(json.dumps({"optim": {"name": "adamw", "lr": 1}, "output": "runs/x",
                                                   "model": {"preset": "albert-tiny",
                                                             "overrides": {"vocab_size": 500}}}))
    from_toml = config_from_args(parse("pretrain", "--output", "runs/x", "--config", str(tmp_path / "run.toml")))
    from_json = config_from_args(parse("pretrain", "--output", "runs/x", "--config", str(tmp_path / "run.json")))
    assert from_toml == from_json
    assert from_toml.optim.lr == 1.0 and isinstance(from_toml.optim.lr, float)  # TOML/JSON ints become floats
    assert from_toml.model.overrides == {"vocab_size": 500}
    flagged = config_from_args(parse("pretrain", "--output", "o", "--config", str(tmp_path / "run.toml"),
                                     "--lr", "3e-4", "--model-override", "hidden_size=64"))
    assert flagged.optim.lr == 3e-4 and flagged.optim.name == "adamw"  # the flag beats the file, the rest stays
    assert flagged.model.overrides == {"vocab_size": 500, "hidden_size": 64}  # dicts merge
    (tmp_path / "bad.toml").write_text("[optim\n")
    with pytest.raises(ValueError, match=r"bad.toml: not valid TOML"):
        config_from_args(parse("pretrain", "--output", "o", "--config", str(tmp_path / "bad.toml")))


def test_unknown_keys_name_the_nearest_valid_one(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"unknown config key TrainConfig.max_step; did you mean 'max_steps'\?"):
        fields.from_dict(PretrainConfig, {"train": {"max_step": 3}})
    with pytest.raises(ValueError, match=r"unknown config key PretrainConfig.optimizer; did you mean 'optim'\?"):
        fields.from_dict(PretrainConfig, {"optimizer": {"lr": 3}})
    with pytest.raises(SystemExit) as exit_:
        main(["pretrain", "--output", "o", "--train.max_stesp=3"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "unknown option --train.max_stesp; did you mean '--train.max_steps'?" in err
    assert len(err.splitlines()) <= 3  # a short usage line, not every field
    with pytest.raises(SystemExit):
        main(["finetune", "--task", "sst-2", "--data-dir", "d", "--model", "m", "--output", "o", "--lerning_rate=1"])
    assert "did you mean '--learning_rate'?" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["pretrain", "--output", "o", "--train.max_steps=many"])
    assert "argument --train.max_steps/--train.max-steps: expected an integer, got 'many'" in capsys.readouterr().err


def test_version_names_what_a_bug_report_needs(capsys):
    import platform

    import litebert

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == (f"litebert {litebert.__version__} (torch {torch.__version__}, "
                                               f"Python {platform.python_version()})")


def test_finetune_and_demo_take_the_same_syntax(tmp_path):
    from litebert.finetune.run import _config_from_args

    (tmp_path / "ft.toml").write_text("learning_rate = 2e-5\nbatch_size = 16\nsquad2_head = \"answerability\"\n")
    args = parse("finetune", "--task", "sst-2", "--data-dir", "d", "--model", "m", "--output", "o",
                 "--config", str(tmp_path / "ft.toml"), "--batch-size", "8", "--max_answer_length=17",
                 "--n-best-size", "5")
    config = _config_from_args(args)
    assert (config.learning_rate, config.batch_size, config.squad2_head) == (2e-5, 8, "answerability")
    assert (config.max_answer_length, config.n_best_size) == (17, 5)
    assert config.progress is True and config.weight_decay == FinetuneConfig().weight_decay
    with pytest.raises(SystemExit):  # a Literal field only takes its choices
        parse("finetune", "--task", "t", "--data-dir", "d", "--model", "m", "--output", "o", "--padding=ragged")

    demo = fields.config_from_args(DemoConfig, parse(
        "demo", "--seeds", "4,5", "--budget", "2m", "--model-override", "num_hidden_layers=2", "--no-minilm",
        "--finetune_lrs=1e-3", "--output", str(tmp_path / "d")))
    assert demo.seeds == (4, 5) and demo.budget_s == 120 and demo.minilm is False
    assert demo.finetune_lrs == (1e-3,) and demo.output == tmp_path / "d"
    assert demo.model_overrides == {**DemoConfig().model_overrides, "num_hidden_layers": 2}
    assert fields.from_dict(DemoConfig, fields.to_dict(demo)) == demo  # what a report saves reads back


def test_plan_derives_without_writing_back():
    config = PretrainConfig()
    p = plan(config, world_size=1)
    assert (p.accumulate, p.global_batch, p.max_steps, p.horizon, p.warmup_steps) == (128, 4096, 125_000,
                                                                                    PAPER_TOTAL_STEPS, 3125)
    config.train.max_steps = 1000
    p = plan(config, world_size=4)
    assert (p.accumulate, p.max_steps, p.horizon, p.warmup_steps) == (32, 1000, 1000, 1000)  # warmup clamped
    assert config.schedule.total_steps is None and config.schedule.warmup_steps == 3125  # nothing written back
    config.schedule.total_steps = 5000
    assert plan(config, 1).horizon == 5000 and plan(config, 1).max_steps == 1000
    config.schedule.budget_s = 60.0
    p = plan(config, 1)
    assert p.horizon is None and p.max_steps == 1000
    assert config.schedule.progress(10, 30.0, p.max_steps) == (0.5, 0.025)  # the clock, not steps


def test_extending_a_run_is_no_configuration_change():
    saved = fields.to_dict(PretrainConfig())
    saved["train"]["max_steps"] = 100
    longer = PretrainConfig()
    longer.train.max_steps = 150
    assert config_differences(saved, longer) == []  # the horizon follows max_steps
    longer.schedule.total_steps = 100  # the saved run's derived horizon, given explicitly
    assert config_differences(saved, longer) == []
    longer.schedule.total_steps = 120
    assert config_differences(saved, longer) == ["schedule.total_steps: None -> 120"]


def test_config_file_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="--config .*missing.json: no such file"):
        fields.load_file(tmp_path / "missing.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="list.json: expected a JSON object"):
        fields.load_file(tmp_path / "list.json")
    with pytest.raises(ValueError, match=r"optim: expected a table of fields, got float"):
        fields.from_dict(PretrainConfig, {"optim": 0.1})
    # a byte-order mark (Windows editors write one) is not JSON's business; a file in another encoding is named
    (tmp_path / "bom.json").write_text('{"optim": {"lr": 0.002}}', encoding="utf-8-sig")
    assert fields.load_file(tmp_path / "bom.json") == {"optim": {"lr": 0.002}}
    (tmp_path / "latin1.toml").write_bytes('[train]\nname = "\u00e9t\u00e9"\n'.encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1.toml:2: byte 0xe9 at column 9 is not UTF-8"):
        fields.load_file(tmp_path / "latin1.toml")


def test_data_create_and_tokenizer_train_take_files_and_dotted_flags(tmp_path):
    from litebert.config import CreateOptions, TokenizerTrainConfig

    (tmp_path / "data.toml").write_text('max_seq_length = 64\nmasking = "dynamic"\nngram = 1\n')
    args = parse("data", "create", "--input", "x", "--tokenizer", "t", "--output", "o",
                 "--config", str(tmp_path / "data.toml"), "--ngram", "2", "--eval_fraction=0.05")
    options = fields.config_from_args(CreateOptions, args)
    assert (options.max_seq_length, options.masking, options.ngram, options.eval_fraction) == (64, "dynamic", 2, 0.05)
    assert options.dupes == 1  # derived from dynamic masking, not written back
    with pytest.raises(ValueError, match="masking must be one of"):
        fields.from_dict(CreateOptions, {"masking": "sometimes"})

    args = parse("tokenizer", "train", "--input", "x", "--output", "o", "--vocab-size", "8000", "--cased",
                 "--character_coverage=1.0")
    tok = fields.config_from_args(TokenizerTrainConfig, args)
    assert (tok.vocab_size, tok.do_lower_case, tok.character_coverage, tok.seed) == (8000, False, 1.0, 12345)


def test_configuration_reference_is_current_and_documents_every_field():
    """docs/configuration.md (which every command's --help points to) is what the dataclasses generate, and
    every setting has its meaning written; regenerate with `python -m litebert.config.reference`."""
    from litebert.config import reference
    page = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
    assert page.read_text(encoding="utf-8") == reference.markdown(), "regenerate docs/configuration.md"
    for command, cls in reference.COMMANDS:
        rows = reference.rows(cls, cls())
        assert {path for path, *_ in rows} == set(fields.leaves(cls)), command
        assert [path for path, _, _, doc in rows if not doc] == [], f"{command}: fields without a docstring"
