"""Fine-tuning on GLUE, SQuAD and RACE.

Modules, one per stage:
  * `tasks`: the task table (`TASKS`, `Task`), file layout, metrics and official hyper-parameters.
  * `readers`: official files -> typed examples (+ `ReadReport`), and GLUE / RACE encoders.
  * `squad`: SQuAD windows/features and n-best answer decoding from logits.
  * `evaluate`: offline scoring of saved prediction files.
  * `batching`: length-bucketed batches padded to their longest row.
  * `train`: the one fine-tuning loop (`finetune`, `FinetuneConfig`, `load_task_data`).
  * `run`: runs over seeds, output files, and the `finetune` / `evaluate` / `predict` commands.
Metrics live in `litebert.metrics`. Only `tasks` is re-exported here: `metrics` imports it, and the loop
imports `metrics`.
"""
from litebert.finetune.tasks import TASKS, HParams, Task, get_task

__all__ = ["TASKS", "HParams", "Task", "get_task"]
