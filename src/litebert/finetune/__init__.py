"""Fine-tuning on GLUE, SQuAD and RACE.

Modules, one per stage:
  * `tasks`: the task table (`TASKS`, `Task`), file layout, metrics and official hyper-parameters.
  * `readers`: official files -> typed examples (+ `ReadReport`), and GLUE / RACE encoders.
  * `squad`: SQuAD windows/features and n-best answer decoding from logits.
  * `evaluate`: offline scoring of saved prediction files.
Metrics live in `litebert.metrics`.
"""
from litebert.finetune.tasks import TASKS, HParams, Task, get_task

__all__ = ["TASKS", "HParams", "Task", "get_task"]
