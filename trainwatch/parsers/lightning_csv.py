"""PyTorch Lightning's ``CSVLogger`` ``metrics.csv`` (and its ``hparams.yaml``).

A header with the union of all logged metric names (sorted, including
``epoch`` and ``step``), then sparse rows: each row fills only the columns
logged at that moment, e.g. ``train_loss_step`` every ``log_every_n_steps``,
``val_loss`` once per validation, ``*_epoch`` columns once per epoch. Rows end
in CRLF on Windows-made files. No wall-clock column unless the user logged one.
When a new metric name appears, CSVLogger rewrites the file with a wider
header: a header line met mid-stream replaces the current one.

Lightning logs no step time. A run that logs its epoch's duration
(``epoch_time`` in seconds on the end-of-epoch row, as in this corpus) gets
that epoch's mean step time on the iteration of its last step: the only pace
such a log gives, and without it the run has no s/iter and no ETA. That
iteration is held back one row (``flush`` at the end) so that the
end-of-epoch row, which follows the last train or val row of the same step,
can still time it. The epoch's time is training only as far as the user's
timer says: evals are taken as outside it (``eval_timing="excluded"``).

``step`` is the 0-based index of the optimizer step just taken (the first row
of a ``log_every_n_steps=50`` run says 49; a 14074-batch epoch ends at 14073).
``Iteration.iter`` is that step as printed (METRICS.md: the framework's own
counter, never shifted), so a target derived here is the step the last row
prints, ``steps per epoch × epochs - 1``.

CSVLogger writes ``hparams.yaml`` beside ``metrics.csv``; the parser does no
I/O, so the caller reads it (``sidecar_names``), turns it into a ``RunInfo``
with ``parse_hparams`` and hands that to ``LightningCsvParser``. With the
number of epochs from there, the end of the first epoch gives the target.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from dataclasses import replace

from trainwatch.core.records import Eval, Iteration, Record, RunInfo
from trainwatch.parsers.base import ParserSpec

FORMAT = "lightning_csv"

#: Column names read as the train loss of a step, most specific first. Epoch
#: means (``train_loss_epoch``) are not a step's loss and are left out.
LOSS_COLUMNS = ("train_loss_step", "train_loss", "loss", "train/loss", "train_loss_iter")
VAL_COLUMNS = ("val_loss", "val/loss", "val_loss_epoch", "validation_loss", "valid_loss", "eval_loss")
LR_COLUMNS = ("lr", "learning_rate", "lr-AdamW", "lr-Adam", "lr-SGD", "train/lr")
GRAD_NORM_COLUMNS = ("grad_norm", "train/grad_norm", "grad_2.0_norm_total")
#: Seconds an epoch took, where the user logs it.
EPOCH_TIME_COLUMNS = ("epoch_time", "train/epoch_time", "epoch_duration", "time/epoch")
_EPOCHS_KEYS = ("max_epochs", "num_epochs", "epochs", "n_epochs")
_VAL_PREFIXES = ("val_", "val/", "valid", "validation")


def sniff(head: str, filename: str) -> bool:
    """A CSV header naming ``step`` and an ``epoch`` or loss column."""
    first = head.lstrip("\ufeff").split("\n", 1)[0].strip()
    if "," not in first or " " in first.replace(", ", ","):
        return False
    names = [name.strip().strip('"') for name in first.split(",")]
    return "step" in names and ("epoch" in names or any("loss" in name for name in names))


#: CSVLogger's hyperparameters file, beside metrics.csv.
HPARAMS = "hparams.yaml"


def sidecar_names(csv_filename: str) -> list[str]:
    """Candidate ``hparams.yaml`` names beside ``csv_filename``, best first.

    CSVLogger's own layout is ``version_N/{metrics.csv,hparams.yaml}``. Copies
    renamed with a prefix (``X_metrics.csv``) keep it on the yaml, sometimes
    shortened (``run_10epochs_140739steps_metrics.csv`` beside
    ``run_10epochs_hparams.yaml``): try the prefix, then shorter ``_``-cut
    prefixes, then the plain name.
    """
    name = csv_filename.replace("\\", "/").rsplit("/", 1)[-1]
    stem = name[: -len(".csv")] if name.endswith(".csv") else name
    names: list[str] = []
    if stem.endswith("metrics") and stem != "metrics":
        prefix = stem[: -len("metrics")].rstrip("_-.")
        parts = prefix.split("_")
        for cut in range(len(parts), 0, -1):
            names.append("_".join(parts[:cut]) + "_" + HPARAMS)
    names.append(HPARAMS)
    return names


def parse_hparams(text: str) -> RunInfo:
    """The run settings in a flat ``key: value`` YAML file (``save_hyperparameters``).

    A tiny, safe reader: top-level scalars, plus one level of nesting as
    ``parent.child``; lists and anything fancier are skipped. No YAML library
    needed for what CSVLogger writes from plain hyperparameters.
    """
    config = _flat_yaml(text)

    def pick(*keys: str) -> int | None:
        for key in keys:
            for full, value in config.items():
                if full.rsplit(".", 1)[-1] == key and isinstance(value, int) and not isinstance(value, bool):
                    return value if value > 0 else None
        return None

    precision = next((v for k, v in config.items() if k.endswith("precision")), None)
    name = next((v for k, v in config.items() if k in ("name", "run_name", "experiment_name")), None)
    return RunInfo(
        name=name if isinstance(name, str) and name else None,
        config=config or None,
        target=pick("max_steps", "max_iters", "total_steps", "num_training_steps"),
        batch_size=pick("batch_size", "micro_batch_size", "per_device_train_batch_size"),
        # Lightning accumulates per process.
        grad_accum_per_gpu=pick("accumulate_grad_batches", "gradient_accumulation_steps"),
        block_size=pick("block_size", "max_seq_len", "seq_len", "sequence_length", "context_length"),
        n_layer=pick("n_layer", "num_layers", "n_layers", "num_hidden_layers", "depth"),
        n_head=pick("n_head", "num_heads", "n_heads", "num_attention_heads"),
        n_embd=pick("n_embd", "d_model", "hidden_size", "n_embed", "embed_dim"),
        params=pick("num_params", "n_params"),
        dtype=str(precision) if precision is not None else None,
    )


def _flat_yaml(text: str) -> dict[str, object]:
    config: dict[str, object] = {}
    parent: str | None = None
    for raw in text.splitlines():
        line = raw.rstrip("\r")
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", "-", "---")) or ":" not in stripped:
            continue
        indented = line[0] in " \t"
        if indented and parent is None:
            continue  # deeper than one level, or under a list
        key, _, value = stripped.partition(":")
        key = key.strip().strip("'\"")
        value = value.strip()
        if not indented:
            parent = None
        if not value:
            parent = None if indented else key  # a mapping starts here
            continue
        if value.startswith("!!") or value.startswith("&") or value.startswith("*"):
            continue  # tags and anchors: python objects, not settings
        config[f"{parent}.{key}" if indented else key] = _scalar(value)
    return config


def _scalar(text: str) -> object:
    if " #" in text:
        text = text.split(" #", 1)[0].rstrip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    lower = text.lower()
    if lower in ("true", "yes"):
        return True
    if lower in ("false", "no"):
        return False
    if lower in ("null", "~", "none"):
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


class LightningCsvParser:
    """Stateful parser of one ``metrics.csv``; ``hparams`` from ``parse_hparams``."""

    def __init__(self, hparams: RunInfo | None = None) -> None:
        self._hparams = hparams
        self._epochs = _epochs(hparams.config) if hparams is not None and hparams.config else None
        self._columns: list[str] = []
        self._step = -1
        self._epoch = -1
        self._loss: list[int] = []
        self._val: list[int] = []
        self._lr: list[int] = []
        self._norm: list[int] = []
        self._epoch_cols: list[int] = []
        self._last_iter: int | None = None
        self._first_epoch: int | None = None
        # Derive the target from the first epoch's length (hparams epochs known).
        self._want_target = self._epochs is not None
        self._ncols = 0
        self._time = -1  # the epoch-time column, if any
        self._epoch_end: int | None = -1  # the last step of the previous epoch (None: unknown)
        self._row_time: tuple[int, float] | None = None  # (step, mean step ms) of the row just read
        self._row_step: int | None = None  # the step of the data row just read
        self._held: Iteration | None = None
        self._told_timing = False

    def feed(self, line: str) -> list[Record]:
        """Records of one CSV line."""
        records = self._feed(line)
        if self._time < 0 and self._held is None:
            return records
        timed, self._row_time = self._row_time, None
        row, self._row_step = self._row_step, None
        out: list[Record] = []
        held = self._held
        if held is not None and row != held.iter:  # (a val row of the same step keeps it held)
            out.append(held)
            held = None
        for record in records:
            if isinstance(record, Iteration):
                if held is not None:
                    out.append(held)
                held = record
            else:
                out.append(record)
        if timed is not None and held is not None and held.iter == timed[0]:
            if not self._told_timing:
                out.append(RunInfo(eval_timing="excluded"))
                self._told_timing = True
            out.append(replace(held, time_ms=timed[1]))
            held = None
        self._held = held
        return out

    def flush(self) -> list[Record]:
        """End of input: the iteration held back for its epoch's time."""
        held, self._held = self._held, None
        return [held] if held is not None else []

    def _feed(self, line: str) -> list[Record]:
        if self._hparams is not None:
            info, self._hparams = self._hparams, None
            return [info, *self._feed(line)]
        if not line:
            return []
        first = line[0]
        if not (first.isdigit() or first in ",-."):
            text = line.strip().lstrip("\ufeff")
            if "step" in text:
                self._header(text)
            return []
        if self._step < 0:
            return []
        if line[-1] == "\r":
            line = line[:-1]
        fields = line.split(",") if '"' not in line else _split(line)
        if len(fields) != self._ncols:
            return []  # a row of another header, or cut short
        step = _int(fields[self._step])
        if step is None or step < 0:
            return []
        it = step
        last = self._last_iter
        # The epoch is needed only to find the end of the first epoch.
        epoch = None
        if self._epoch >= 0 and (self._first_epoch is None or self._want_target or (last is not None and it < last)):
            epoch = _int(fields[self._epoch])
            if self._first_epoch is None:
                self._first_epoch = epoch

        self._row_step = it
        if self._time >= 0 and fields[self._time]:
            self._epoch_time(it, _float(fields[self._time]), last)
        records: list[Record] = []
        val_at = -1
        val = None
        for i in self._val:
            if fields[i] and (val := _float(fields[i])) is not None:
                val_at = i
                break
        if val is not None:
            metrics = {
                self._columns[i]: number
                for i, field in enumerate(fields)
                if field and i != val_at and self._columns[i].startswith(_VAL_PREFIXES)
                if (number := _float(field)) is not None
            }
            records.append(Eval(iter=it, val_loss=val, metrics=metrics))

        loss = _first(fields, self._loss)
        if loss is not None:
            if it != last:
                if last is not None and it < last:
                    self._first_epoch = epoch  # a resumed run: its own epoch count
                self._last_iter = it
                lr = _first(fields, self._lr) if self._lr else None
                norm = _first(fields, self._norm) if self._norm else None
                records.append(Iteration(it, loss, lr=_finite(lr), grad_norm=norm))
            return records
        if last is None or it > last:
            # A val or end-of-epoch row past the last logged train step still
            # says how many steps are done (the last epoch ends at 140740 while
            # the last train row, every 50 steps, says 140700).
            self._last_iter = it
            records.append(Iteration(it))
        epochs = self._epochs
        if (
            self._want_target
            and epochs
            and val is None
            and epoch == 0
            and self._first_epoch == 0
            and any(fields[i] for i in self._epoch_cols)
        ):
            # The end-of-epoch row of a run that started at step 0 prints the
            # last step of that epoch, 0-based: (it + 1) steps per epoch, and
            # the last row of the run prints (it + 1) × epochs - 1, the target
            # in the log's own numbering (when hparams say how many epochs).
            self._want_target = False
            records.append(RunInfo(target=(it + 1) * epochs - 1))
        return records

    def _epoch_time(self, it: int, seconds: float | None, last: int | None) -> None:
        """An end-of-epoch row's duration: the mean step time of the epoch ending at ``it``."""
        if last is not None and it < last:
            self._epoch_end = None  # a resumed run: where its epoch began is not known
        start = self._epoch_end
        self._epoch_end = it
        if start is None or seconds is None or not 0 < seconds < 1e9 or it <= start:
            return
        self._row_time = (it, seconds * 1000 / (it - start))  # step ``start`` ended the previous epoch

    def _header(self, text: str) -> None:
        names = [name.strip() for name in _split(text)]
        if "step" not in names:
            return
        self._columns = names
        self._ncols = len(names)
        index = {name: i for i, name in enumerate(names)}
        self._step = index["step"]
        self._epoch = index.get("epoch", -1)
        self._loss = [index[name] for name in LOSS_COLUMNS if name in index]
        self._val = [index[name] for name in VAL_COLUMNS if name in index]
        self._lr = [index[name] for name in LR_COLUMNS if name in index]
        self._lr += [i for name, i in index.items() if name.startswith("lr-") and i not in self._lr]
        self._norm = [index[name] for name in GRAD_NORM_COLUMNS if name in index]
        self._epoch_cols = [i for name, i in index.items() if name.endswith("_epoch") or name == "epoch_time"]
        self._time = next((index[name] for name in EPOCH_TIME_COLUMNS if name in index), -1)


def _epochs(config: Mapping[str, object]) -> int | None:
    for key in _EPOCHS_KEYS:
        value = config.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _split(text: str) -> list[str]:
    # Metric names and numbers have no commas: quotes are rare, csv is slow.
    if '"' not in text:
        return text.split(",")
    try:
        return next(csv.reader([text]))
    except csv.Error:  # a bare CR, a field over csv's 128 KB limit: not a row of ours
        return []


def _float(field: str) -> float | None:
    try:
        return float(field)
    except ValueError:
        return None


def _int(field: str) -> int | None:
    try:
        return int(field)
    except ValueError:
        number = _float(field) if field else None
        return int(number) if number is not None and math.isfinite(number) else None


def _first(fields: list[str], columns: list[int]) -> float | None:
    for i in columns:
        if fields[i]:
            value = _float(fields[i])
            if value is not None:
                return value
    return None


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def new_parser() -> LightningCsvParser:
    """A parser without sidecar hparams."""
    return LightningCsvParser()


def new_parser_with_hparams(text: str) -> LightningCsvParser:
    """A parser that knows the run's hparams (epochs, batch size...)."""
    return LightningCsvParser(parse_hparams(text))


SPEC = ParserSpec(
    format=FORMAT,
    kind="lines",
    sniff=sniff,
    new_line_parser=new_parser,
    sidecar_names=sidecar_names,
    sidecar_suffix=HPARAMS,
    new_line_parser_with_sidecar=new_parser_with_hparams,
)
