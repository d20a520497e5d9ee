"""Tasks: task specs (``datasets/*.toml``) bound to mirdata loaders."""

from musicbench.tasks.loader import Clip, ClipSet, Task, get_task, parse_task_ref
from musicbench.tasks.parts import ClipData
from musicbench.tasks.spec import TaskSpec, get_spec, task_names

__all__ = [
    "Clip", "ClipData", "ClipSet", "Task", "TaskSpec", "get_spec", "get_task", "parse_task_ref", "task_names",
]
