"""What the lines of an HF Trainer console say besides its progress bar.

* ``Trainer.log``'s dicts (``ProgressCallback.on_log`` writes ``str(logs)``
  through the bar, ``PrinterCallback`` prints them): a train log has
  ``loss`` (TRL adds ``entropy``, ``num_tokens``, ``mean_token_accuracy``,
  GRPO its reward keys), an evaluation ``eval_*`` keys, and ``train()``'s
  summary ``train_runtime``, ``train_samples_per_second``,
  ``train_steps_per_second``, ``train_loss``. Every dict logged during
  training also has ``epoch`` (rounded to 2 places for the console).
* The preamble ``_inner_training_loop`` logs at INFO: ``***** Running
  training *****``, ``  Num examples = 28,762``, ``  Num Epochs = 3``,
  ``  Instantaneous batch size per device = 2``, ``  Total train batch size
  (w. parallel, distributed & accumulation) = 112``, ``  Gradient
  Accumulation steps = 8``, ``  Total optimization steps = 768`` (``{:,}``),
  ``  Number of trainable parameters = 32,112,640``, and after a resume
  ``  Continuing training from global step 200``; at the end ``Training
  completed. Do not forget to share your model on huggingface.co/models =)``.
  ``Saving model checkpoint to <dir>/checkpoint-<step>`` at each save.
* ``TrainingArguments`` (and TRL's ``SFTConfig`` ...) printed by a script:
  ``__str__`` writes ``Name(`` then one ``key=value,`` line per field and
  ``)``; a command line may carry ``--logging_steps 10``.

The preamble lines come behind any logger format (``INFO:transformers...``,
``04/29/2025 14:31:39 - INFO - ...``, LLaMA-Factory's ``[INFO|2025-04-29
14:31:39] trainer.py:2422 >> ``): they are searched, not anchored.
"""

from __future__ import annotations

import math
import re
from datetime import datetime

from trainwatch.core.records import Eval, Outcome, RunInfo
from trainwatch.parsers.pydict import number
from trainwatch.parsers.text import to_int

BANNER = "***** Running training *****"
COMPLETED = "Training completed. Do not forget to share your model"
_PREAMBLE = re.compile(
    r"(Num examples|Num Epochs|Instantaneous batch size per device|Total train batch size \(w\. parallel, "
    r"distributed & accumulation\)|Gradient Accumulation steps|Total optimization steps|Number of trainable "
    r"parameters) = ([\d,]+)(?:\.0+)?\s*$"
)
_CONTINUING = re.compile(r"Continuing training from global step (\d+)")
_CHECKPOINT = re.compile(r"Saving model checkpoint to (\S*?checkpoint-(\d+))\b")
_ARGS_START = re.compile(r"^[A-Za-z]\w*(?:Arguments|Config)\($")
_ARG = re.compile(r"^(\w+)=(.*?),?$")
_CLI_ARG = re.compile(r"--(logging_steps|max_steps)[= ](\d+)\b")
_DS_WORLD = re.compile(r"\bdist_world_size=(\d+)")
# A logger's time near the start of a line: "2025-04-29 14:31:39,001 - ...",
# "[INFO|trainer.py:2414] 2025-04-29 14:31:39,001 >> ..." (transformers'
# explicit format), "04/29/2025 14:31:39 - INFO - ..." (HF examples).
_ISO_STAMP = re.compile(r"(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d)")
_US_STAMP = re.compile(r"(\d\d)/(\d\d)/(\d{4}) (\d\d:\d\d:\d\d)")
_STAMP_WITHIN = 64
#: TrainingArguments fields the run's figures use.
ARG_KEYS = frozenset(
    {
        "logging_steps",
        "max_steps",
        "per_device_train_batch_size",
        "gradient_accumulation_steps",
        "eval_steps",
        "eval_strategy",
        "evaluation_strategy",
        "num_train_epochs",
    }
)
#: A block of ``key=value,`` lines stops being read after this many lines.
MAX_ARG_LINES = 400


class RunFacts:
    """The run's metadata as the preamble and printed arguments state it."""

    def __init__(self) -> None:
        self.target: int | None = None
        self.logging_steps: int | None = None
        self.resumed_from: int | None = None
        self._config: dict[str, object] = {}
        self._batch: int | None = None
        self._total_batch: int | None = None
        self._accum: int | None = None
        self._args: dict[str, str] | None = None  # a printed arguments block being read
        self._args_lines = 0

    @property
    def in_arguments(self) -> bool:
        """Inside a printed ``TrainingArguments(`` block: feed its lines to ``argument``."""
        return self._args is not None

    def fact(self, text: str) -> tuple[bool, RunInfo | None]:
        """Whether ``text`` was a fact line, and what it says."""
        if " = " in text or "Continuing training" in text:
            info = self.preamble(text)
            if info is not None:
                return True, info
        if _ARGS_START.match(text) is not None:
            self._args, self._args_lines = {}, 0
            return True, None
        if "logging_steps" in text or "max_steps" in text:
            flags = {m.group(1): m.group(2) for m in _CLI_ARG.finditer(text)}
            if flags:
                return False, self.arguments(flags)  # a command line may say more (a traceback's, even)
        if "dist_world_size=" in text and (m := _DS_WORLD.search(text)) is not None:
            return True, RunInfo(world_size=to_int(m.group(1)))
        return False, None

    def argument(self, text: str) -> RunInfo | None:
        """A line inside a printed arguments block; the facts once it closes."""
        assert self._args is not None
        self._args_lines += 1
        if text == ")" or self._args_lines > MAX_ARG_LINES:
            args, self._args = self._args, None
            return self.arguments(args) if args else None
        m = _ARG.match(text)
        if m is not None and m.group(1) in ARG_KEYS:
            self._args[m.group(1)] = m.group(2)
        return None

    def preamble(self, text: str) -> RunInfo | None:
        """A preamble line's fact, or ``None`` if ``text`` is none."""
        m = _PREAMBLE.search(text)
        if m is not None:
            return self._preamble_value(m.group(1), to_int(m.group(2).replace(",", "")))
        m = _CONTINUING.search(text)
        if m is not None:
            self.resumed_from = to_int(m.group(1))
            self._config["resumed_from_step"] = self.resumed_from
            return RunInfo(config=dict(self._config))
        return None

    def _preamble_value(self, name: str, value: int | None) -> RunInfo | None:
        if value is None:
            return None
        key = name.split(" (")[0].lower().replace(" ", "_")
        self._config[key] = value
        if name.startswith("Total optimization"):
            if value <= 0:
                return None
            self.target = value
            return RunInfo(target=value, config=dict(self._config))
        if name.startswith("Instantaneous"):
            self._batch = value
        elif name.startswith("Total train batch"):
            self._total_batch = value
        elif name.startswith("Gradient"):
            self._accum = value
        return self._batch_info()

    def _batch_info(self) -> RunInfo:
        batch, total, accum = self._batch, self._total_batch, self._accum
        # HF's accumulation is per device: the global count of micro-batches
        # (batch_size x grad_accum = sequences per step, as the aggregator
        # reads it) is the total batch over the per-device batch.
        global_accum = total // batch if total and batch and total % batch == 0 else None
        world = total // (batch * accum) if total and batch and accum and total % (batch * accum) == 0 else None
        return RunInfo(
            batch_size=batch or None,
            grad_accum=global_accum or None,
            grad_accum_per_gpu=accum or None,
            world_size=world or None,
            config=dict(self._config),
        )

    def arguments(self, values: dict[str, str]) -> RunInfo:
        """Facts from printed ``TrainingArguments`` fields (or command-line flags)."""
        ints = {key: to_int(text.strip()) for key, text in values.items()}
        logging_steps = ints.get("logging_steps")
        if logging_steps:
            self.logging_steps = logging_steps
        max_steps = ints.get("max_steps")
        if max_steps and max_steps > 0 and self.target is None:
            self.target = max_steps
        strategy = values.get("eval_strategy") or values.get("evaluation_strategy") or ""
        eval_steps = ints.get("eval_steps") if strategy.lower().endswith("steps") else None
        if ints.get("per_device_train_batch_size"):
            self._batch = ints["per_device_train_batch_size"]
        if ints.get("gradient_accumulation_steps"):
            self._accum = ints["gradient_accumulation_steps"]
        self._config.update({key: value for key, value in ints.items() if value is not None})
        info = self._batch_info()
        return RunInfo(
            target=self.target,
            log_interval=logging_steps or None,
            eval_interval=eval_steps or None,
            batch_size=info.batch_size,
            grad_accum=info.grad_accum,
            grad_accum_per_gpu=info.grad_accum_per_gpu,
            world_size=info.world_size,
            config=info.config,
        )


def checkpoint(text: str) -> tuple[str, int] | None:
    """``Saving model checkpoint to <dir>/checkpoint-<step>``: the path and step."""
    m = _CHECKPOINT.search(text)
    if m is None:
        return None
    step = to_int(m.group(2))
    return (m.group(1), step) if step is not None else None


def line_time(text: str) -> datetime | None:
    """A logger's timestamp near the start of ``text`` (ISO or ``MM/DD/YYYY``)."""
    head = text[:_STAMP_WITHIN]
    m = _ISO_STAMP.search(head)
    try:
        if m is not None:
            return datetime.fromisoformat(f"{m.group(1)} {m.group(2)}")
        m = _US_STAMP.search(head)
        if m is not None:
            return datetime.fromisoformat(f"{m.group(3)}-{m.group(1)}-{m.group(2)} {m.group(4)}")
    except ValueError:
        return None
    return None


def log_kind(logs: dict[str, object]) -> str | None:
    """``"train"``, ``"eval"``, ``"end"`` for a Trainer log dict; ``None`` for any other dict."""
    if "train_runtime" in logs:
        return "end"
    if "loss" in logs:
        return "train"
    if any(key.startswith("eval_") for key in logs):
        return "eval"
    if "epoch" in logs:
        return "other"  # a Trainer log of other metrics (self.log({...})): written through the bar all the same
    return None


def train_values(logs: dict[str, object]) -> tuple[float | None, float | None, float | None, int | None]:
    """Loss (NaN kept), learning rate, grad norm and tokens seen of a train log."""
    lr = number(logs.get("learning_rate", logs.get("lr")))
    seen = number(logs.get("num_input_tokens_seen", logs.get("num_tokens")))
    tokens = int(seen) if seen is not None and math.isfinite(seen) and seen >= 0 and seen.is_integer() else None
    return (
        number(logs.get("loss")),
        lr if lr is not None and math.isfinite(lr) else None,
        number(logs.get("grad_norm")),
        tokens,
    )


def eval_record(step: int, logs: dict[str, object]) -> Eval:
    """An evaluation log at ``step``: ``eval_loss`` and every numeric ``eval_*`` value."""
    metrics: dict[str, float] = {}
    for key, value in logs.items():
        if key.startswith("eval_") and (n := number(value)) is not None:
            metrics[key] = n
    return Eval(iter=step, val_loss=number(logs.get("eval_loss")), metrics=metrics)


def end_records(logs: dict[str, object]) -> list[RunInfo | Outcome]:
    """``train()``'s summary: the runtime it states, and the clean end."""
    runtime = number(logs.get("train_runtime"))
    records: list[RunInfo | Outcome] = []
    if runtime is not None and math.isfinite(runtime) and runtime > 0:
        records.append(RunInfo(runtime_s=runtime))
    records.append(Outcome("finished", "training completed (train_runtime logged)"))
    return records
