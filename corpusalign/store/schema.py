"""The one explicit, versioned Arrow schema of corpusalign shards.

Every language version of a concept is one row keyed by (``concept_id``, ``lang``). A concept's text
lives in named fields; the set is fixed so that every shard has the same schema whatever the corpus:

* ``text`` for plain sentences and paragraphs,
* ``prompt`` / ``response`` for instruction data (SFT),
* ``prompt`` / ``chosen`` / ``rejected`` for preference data (DPO, ORPO).

Fields a corpus does not use are null. The writer casts every table to these schemas and refuses
anything that does not fit; nothing is inferred from data.
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = 3

#: Text fields a concept may carry, in schema order.
TEXT_FIELDS: tuple[str, ...] = ("text", "prompt", "response", "chosen", "rejected")

#: Values of the ``origin`` column.
ORIGINS: tuple[str, ...] = ("source", "human", "machine")

_text_struct = pa.struct([pa.field(f, pa.string()) for f in TEXT_FIELDS])

SHARD_SCHEMA = pa.schema(
    [
        pa.field("concept_id", pa.string(), nullable=False),
        pa.field("lang", pa.string(), nullable=False),
        *(pa.field(f, pa.string()) for f in TEXT_FIELDS),
        # The text as read, for the fields that normalisation changed; null when nothing changed.
        pa.field("original", _text_struct),
        pa.field("origin", pa.string()),  # null only for a target that nothing filled
        pa.field("translator", pa.string()),
        pa.field("model", pa.string()),
        # Generation parameters of a machine translation (canonical JSON), null otherwise. (v3)
        pa.field("translator_params", pa.string()),
        pa.field("source_file", pa.string(), nullable=False),
        pa.field("source_line", pa.int64(), nullable=False),
        pa.field("lid_lang", pa.string()),
        pa.field("lid_score", pa.float32()),
        pa.field("dup_of", pa.string()),
        # Language ID's probability for the row's own language (not only the top guess).
        pa.field("lid_expected", pa.float32()),
        # Verification of a target row against its concept's source row (null on source rows and
        # when verification is off). See corpusalign/verify/features.py for each score.
        pa.field("cos", pa.float32()),
        pa.field("margin", pa.float32()),
        pa.field("nn_pair", pa.bool_()),
        pa.field("len_log_ratio", pa.float32()),
        pa.field("num_agree", pa.float32()),
        pa.field("placeholder_ok", pa.bool_()),
        pa.field("copy_sim", pa.float32()),
        pa.field("script_ok", pa.float32()),
        # The calibrated gate's probability that the pair is a faithful translation.
        pa.field("verify_p", pa.float32()),
    ],
    metadata={b"corpusalign.schema_version": str(SCHEMA_VERSION).encode()},
)

#: Rows dropped by the select step: the shard columns plus why.
REJECTED_SCHEMA = pa.schema(
    [
        *SHARD_SCHEMA,
        pa.field("drop_reason", pa.string(), nullable=False),
        pa.field("drop_detail", pa.string()),
    ],
    metadata=SHARD_SCHEMA.metadata,
)

#: Input that could not be read as a record at all.
QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("source_file", pa.string(), nullable=False),
        pa.field("source_line", pa.int64(), nullable=False),
        pa.field("error", pa.string(), nullable=False),
        pa.field("raw", pa.string()),
    ],
    metadata=SHARD_SCHEMA.metadata,
)


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Select and cast ``table``'s columns to ``schema`` by name.

    Raises ``ValueError`` naming the problem when a column is missing, a non-nullable column holds
    nulls, or a cast is impossible. Extra columns are dropped (they are working columns).
    """
    if table.schema.equals(schema, check_metadata=True):  # conformed already (say, a slice of a conformed table)
        _check_nulls(table, schema)
        return table
    missing = [f.name for f in schema if f.name not in table.column_names]
    if missing:
        raise ValueError(f"table lacks columns required by the schema: {missing}")
    columns = []
    for field in schema:
        col = table.column(field.name)
        if not col.type.equals(field.type):
            try:
                col = col.cast(field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise ValueError(f"column {field.name!r}: cannot cast {col.type} to {field.type}") from exc
        columns.append(col)
    table = pa.Table.from_arrays(columns, schema=schema)
    _check_nulls(table, schema)
    return table


def _check_nulls(table: pa.Table, schema: pa.Schema) -> None:
    for field in schema:
        if not field.nullable and table.column(field.name).null_count:
            raise ValueError(f"column {field.name!r} holds {table.column(field.name).null_count} nulls but is not nullable")
