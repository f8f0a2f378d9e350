"""Erased subjects, as the syncs see them: hashes of every id an erasure removed.

The erasure log (written by the erasure job) keeps no id in the clear, only ``subject_hash``
of each; a sync, CDC tick or sweep drops a source row when any of its ids hashes into
``erased_hashes`` — a source that still holds an erased subject never brings it back.
"""

from __future__ import annotations

import hashlib

# Salted so that a hash in the log is not the hash of the bare UUID that other systems keep.
_SALT = "voyce-erasure/1:"


def subject_hash(value: object) -> str:
    """The hash the erasure log keeps of an id (a UUID, as text or uuid.UUID)."""
    return hashlib.sha256(f"{_SALT}{str(value).lower()}".encode()).hexdigest()


def subject_hash_sql(text, lowercase: bool = True):
    """``subject_hash`` in PostgreSQL, of a text expression (a ``psycopg.sql`` Composable), as
    the digest's 32 bytes (bytea): compared with ``bytes.fromhex`` of the tombstones, without
    spelling each row's digest in hex. ``lowercase`` False: the text is lowercase already (a
    uuid's), and ``lower()``, a third of the cost, is left out."""
    from psycopg import sql

    if lowercase:
        text = sql.SQL("lower({})").format(text)
    return sql.SQL("sha256(convert_to({} || {}, 'UTF8'))").format(sql.Literal(_SALT), text)


def erased_hashes(lakehouse) -> frozenset[str]:
    """Every id hash in the erasure log (empty before the first erasure)."""
    import pyarrow.compute as pc

    from voyce_assets.catalog import table

    # An empty table when the log was never written (Lakehouse.read asks once).
    log = lakehouse.read(table("raw_data/erasure_log"), None, ["erased_id_hashes"])
    return frozenset(pc.list_flatten(log.column("erased_id_hashes")).to_pylist())


def without_erased(lakehouse, rows: list[dict], key: str = "voice_feedback_id") -> list[dict]:
    """``rows`` less those of an erased feedback: a run that read them before an erasure
    finished must not write them back (the erasure cannot stop runs already under way)."""
    erased = erased_hashes(lakehouse) if rows else frozenset()
    if not erased:
        return rows
    return [r for r in rows if subject_hash(r[key]) not in erased]
