"""Every setting litebert runs with, in one package.

    model.py     AlbertConfig: the architecture (Hugging Face field names), the released presets
    pretrain.py  PretrainConfig and its sections (model, data, batch, optim, schedule, train, checkpoint,
                 guard, parallel); `plan`: the values derived from them (accumulation, decay horizon, ...)
    finetune.py  FinetuneConfig (None fields take the task row's value)
    demo.py      DemoConfig: the demo's small-budget recipe
    data.py      CreateOptions (`data create`), with ExampleOptions and MaskingOptions
    tokenizer.py TokenizerTrainConfig (`tokenizer train`)
    fields.py    the one override syntax: --config FILE (JSON/TOML) and --SECTION.FIELD=VALUE flags, derived
                 from the dataclass fields, with nearest-name errors for unknown keys
    reference.py docs/configuration.md, generated from the dataclasses (every setting, default and docstring)
"""
from litebert.config import fields  # noqa: F401  (first: the run configs below use it)
from litebert.config.model import ACTIVATIONS, NORM_POSITIONS, PRESETS, SHARE_CHOICES, AlbertConfig  # noqa: F401
from litebert.config.pretrain import PretrainConfig, plan  # noqa: F401
from litebert.config.finetune import FinetuneConfig  # noqa: F401
from litebert.config.demo import DemoConfig  # noqa: F401
from litebert.config.data import CreateOptions  # noqa: F401
from litebert.config.tokenizer import TokenizerTrainConfig  # noqa: F401
