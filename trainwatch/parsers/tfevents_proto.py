"""The parts of TensorBoard's ``Event`` protobuf that trainwatch reads, decoded
with the ``protobuf`` runtime.

No generated ``*_pb2`` module and no TensorBoard install: the schema below
declares, with TensorBoard's own field numbers (``tensorboard/compat/proto/
event.proto``, ``summary.proto``, ``tensor.proto``), only the fields read;
protobuf skips the others (graphs, histograms, images) as unknown fields. Tags
and texts are declared ``bytes`` rather than ``string``, so a tag that is not
UTF-8 is read leniently instead of failing its whole record.

Speed: a scalar event file is millions of tiny records. A record is not
parsed on its own (~2 µs each) but as one element of a batch message
(``Events``, a repeated ``Event``): one C call per chunk. ``Event.summary`` is
declared ``bytes``, so reading it builds no wrapper objects; and a summary
holding one ``simple_value`` is, for a given tag, always the same bytes but
for its last four (the float), so once protobuf has decoded one such summary
its prefix is remembered (``_templates``) and later ones with that prefix are
read with one dict look-up and one ``struct`` unpack. Anything else (text,
tensors, several values) goes through the full ``Summary`` message.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

#: One summary value: step, wall time (epoch seconds), tag, and the value, a
#: float for a scalar and a str for a text summary.
Point = tuple[int, float, bytes, float | str]

_PACKAGE = "trainwatch_tfevents"
_F = descriptor_pb2.FieldDescriptorProto
_ONE, _MANY = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
# (name, number, type, label, message type) per field, as in TensorBoard's protos.
_MESSAGES: dict[str, list[tuple[str, int, int, int, str | None]]] = {
    "PluginData": [("plugin_name", 1, _F.TYPE_BYTES, _ONE, None)],
    "SummaryMetadata": [("plugin_data", 1, _F.TYPE_MESSAGE, _ONE, "PluginData")],
    "TensorProto": [
        ("dtype", 1, _F.TYPE_INT32, _ONE, None),  # an enum on the wire: a varint
        ("tensor_content", 4, _F.TYPE_BYTES, _ONE, None),
        ("float_val", 5, _F.TYPE_FLOAT, _MANY, None),
        ("double_val", 6, _F.TYPE_DOUBLE, _MANY, None),
        ("int_val", 7, _F.TYPE_INT32, _MANY, None),
        ("string_val", 8, _F.TYPE_BYTES, _MANY, None),
        ("int64_val", 10, _F.TYPE_INT64, _MANY, None),
        ("half_val", 13, _F.TYPE_INT32, _MANY, None),
    ],
    "Value": [
        ("tag", 1, _F.TYPE_BYTES, _ONE, None),
        ("simple_value", 2, _F.TYPE_FLOAT, _ONE, None),
        ("tensor", 8, _F.TYPE_MESSAGE, _ONE, "TensorProto"),
        ("metadata", 9, _F.TYPE_MESSAGE, _ONE, "SummaryMetadata"),
    ],
    "Summary": [("value", 1, _F.TYPE_MESSAGE, _MANY, "Value")],
    "Event": [
        ("wall_time", 1, _F.TYPE_DOUBLE, _ONE, None),
        ("step", 2, _F.TYPE_INT64, _ONE, None),
        ("file_version", 3, _F.TYPE_BYTES, _ONE, None),
        ("summary", 5, _F.TYPE_BYTES, _ONE, None),  # a Summary, kept as bytes (see above)
    ],
    "Events": [("event", 1, _F.TYPE_MESSAGE, _MANY, "Event")],
    # Events, summaries and values glued end to end (see ``EventDecoder._flat``).
    "FlatEvents": [
        ("wall_time", 1, _F.TYPE_DOUBLE, _MANY, None),
        ("step", 2, _F.TYPE_INT64, _MANY, None),
        ("summary", 5, _F.TYPE_BYTES, _MANY, None),
    ],
    "FlatSummaries": [("value", 1, _F.TYPE_BYTES, _MANY, None)],
    "FlatValues": [
        ("tag", 1, _F.TYPE_BYTES, _MANY, None),
        ("simple_value", 2, _F.TYPE_FLOAT, _MANY, None),
    ],
}
# ``Value.value`` is a oneof: only a oneof member has presence in proto3, and
# a simple_value of 0.0 must not read as "no value".
_ONEOF = {"Value": ("value", ("simple_value", "tensor"))}


def _message_classes() -> dict[str, Any]:
    schema = descriptor_pb2.FileDescriptorProto(name="trainwatch_tfevents.proto", package=_PACKAGE, syntax="proto3")
    for name, fields in _MESSAGES.items():
        message = schema.message_type.add(name=name)
        oneof_name, members = _ONEOF.get(name, ("", ()))
        if oneof_name:
            message.oneof_decl.add(name=oneof_name)
        for field_name, number, kind, label, type_name in fields:
            field = message.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name is not None:
                field.type_name = f".{_PACKAGE}.{type_name}"
            if field_name in members:
                field.oneof_index = 0
    pool = descriptor_pool.DescriptorPool()  # our own: no clash with TensorBoard's if it is loaded too
    pool.Add(schema)
    find = pool.FindMessageTypeByName
    return {name: message_factory.GetMessageClass(find(f"{_PACKAGE}.{name}")) for name in _MESSAGES}


_CLASSES = _message_classes()
Event = _CLASSES["Event"]
Events = _CLASSES["Events"]
Summary = _CLASSES["Summary"]
Value = _CLASSES["Value"]
FlatEvents = _CLASSES["FlatEvents"]
FlatSummaries = _CLASSES["FlatSummaries"]
FlatValues = _CLASSES["FlatValues"]

# TensorFlow DataType numbers (types.proto) of the scalar tensors read.
_DT_FLOAT, _DT_DOUBLE, _DT_INT32, _DT_STRING, _DT_INT64, _DT_BFLOAT16, _DT_HALF = 1, 2, 3, 7, 9, 14, 19
_CONTENT = {_DT_FLOAT: "<f", _DT_DOUBLE: "<d", _DT_INT32: "<i", _DT_INT64: "<q", _DT_HALF: "<e"}
#: Plugins whose values are scalars or text; histograms, images and the like are skipped.
_READ_PLUGINS = frozenset({b"", b"scalars", b"text"})
_MAX_TEMPLATES = 4096
_float = struct.Struct("<f")


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


class EventDecoder:
    """Summary values of event records, with what it learnt of the file's tags kept between calls."""

    def __init__(self) -> None:
        self._templates: dict[bytes, bytes] = {}  # summary bytes less the float -> tag
        self._prefixes: dict[int, bytes] = {}  # record length -> its field header in ``Events``
        self._plugins: dict[bytes, bytes] = {}  # tag -> plugin, from the first value that said
        #: ``brain.Event:2`` from the file's first record, once read, and its
        #: wall time: when the writer opened the file.
        self.file_version: str | None = None
        self.opened_at: float | None = None
        #: Records that were CRC-valid but not an ``Event``.
        self.bad_events = 0

    def decode(self, records: Sequence[bytes]) -> list[Point]:
        """The summary values of ``records`` (serialised ``Event`` messages), in order."""
        flat = self._flat(records)
        if flat is not None:
            return flat
        out: list[Point] = []
        for event in self._events(records):
            summary = event.summary
            if not summary:
                if event.file_version:
                    self.file_version = event.file_version.decode("utf-8", "replace")
                    self.opened_at = event.wall_time
                continue
            tag = self._templates.get(summary[:-4])
            if tag is not None:
                out.append((event.step, event.wall_time, tag, _float.unpack_from(summary, len(summary) - 4)[0]))
            else:
                self._summary(event.step, event.wall_time, summary, out)
        return out

    def _flat(self, records: Sequence[bytes]) -> list[Point] | None:
        """The values of a run of plain scalar events, decoded without a Python step per record.

        Protobuf merges a message's bytes glued end to end, and a repeated
        field then collects the values of every part, in order. So the
        records glued together parse as one ``FlatEvents`` whose lists hold
        each record's wall time, step and summary; the summaries glued
        together give one value each; the values glued together give the
        tags and floats. Every list has one entry per record only if every
        record has exactly one step, wall time and summary of one tag and
        one float: otherwise (the version record, step 0, texts, tensors,
        two values in a summary, a DecodeError) ``None``, and the records are
        read one by one.
        """
        n = len(records)
        try:
            events = FlatEvents.FromString(b"".join(records))
            steps, walls, summaries = events.step, events.wall_time, events.summary
            if not n == len(steps) == len(walls) == len(summaries):
                return None
            values = FlatSummaries.FromString(b"".join(summaries)).value
            if len(values) != n:
                return None
            flat = FlatValues.FromString(b"".join(values))
        except DecodeError:
            return None
        if not n == len(flat.tag) == len(flat.simple_value):
            return None
        plugins = self._plugins
        if plugins and any(plugins.get(tag, b"") not in _READ_PLUGINS for tag in set(flat.tag)):
            return None  # a tag of a plugin that is not read: let the full decode skip it
        return list(zip(steps, walls, flat.tag, flat.simple_value, strict=True))

    def _events(self, records: Sequence[bytes]) -> Sequence[Any]:
        prefixes = self._prefixes
        parts: list[bytes] = []
        for record in records:
            prefix = prefixes.get(len(record))
            if prefix is None:
                prefix = prefixes[len(record)] = b"\x0a" + _varint(len(record))  # field 1, length-delimited
            parts += (prefix, record)
        try:
            return Events.FromString(b"".join(parts)).event
        except DecodeError:
            pass  # one bad record spoils the batch: take them one by one
        events = []
        for record in records:
            try:
                events.append(Event.FromString(record))
            except DecodeError:
                self.bad_events += 1
        return events

    def _summary(self, step: int, wall: float, data: bytes, out: list[Point]) -> None:
        try:
            summary = Summary.FromString(data)
        except DecodeError:
            self.bad_events += 1
            return
        for value in summary.value:
            tag = value.tag
            if value.HasField("metadata"):
                self._plugins[tag] = value.metadata.plugin_data.plugin_name
            if self._plugins.get(tag, b"") not in _READ_PLUGINS:
                continue
            kind = value.WhichOneof("value")
            if kind == "simple_value":
                out.append((step, wall, tag, value.simple_value))
                if len(summary.value) == 1:
                    self._learn(data, tag, value)
            elif kind == "tensor":
                scalar = _tensor_scalar(value.tensor)
                if scalar is not None:
                    out.append((step, wall, tag, scalar))

    def _learn(self, data: bytes, tag: bytes, value: Any) -> None:
        """Remember ``data``'s prefix if the summary is exactly one tag and a float, encoded plainly."""
        if value.HasField("metadata") or len(self._templates) >= _MAX_TEMPLATES:
            return
        plain = Summary(value=[Value(tag=tag, simple_value=value.simple_value)]).SerializeToString()
        if plain == data:  # (so the float is its last four bytes)
            self._templates[data[:-4]] = tag


def _tensor_scalar(tensor: Any) -> float | str | None:
    """The first element of a tensor summary: a number, or the text of a string tensor."""
    dtype = tensor.dtype
    if dtype == _DT_STRING:
        return tensor.string_val[0].decode("utf-8", "replace") if tensor.string_val else None
    for values in (tensor.float_val, tensor.double_val, tensor.int_val, tensor.int64_val):
        if values:
            return float(values[0])
    if tensor.half_val:
        bits = tensor.half_val[0] & 0xFFFF
        if dtype == _DT_BFLOAT16:
            return float(_float.unpack((bits << 16).to_bytes(4, "little"))[0])
        return float(struct.unpack("<e", bits.to_bytes(2, "little"))[0])
    content = tensor.tensor_content
    if dtype == _DT_BFLOAT16 and len(content) >= 2:
        return float(_float.unpack(b"\0\0" + content[:2])[0])
    fmt = _CONTENT.get(dtype)
    if fmt is not None and len(content) >= struct.calcsize(fmt):
        return float(struct.unpack_from(fmt, content)[0])
    return None
