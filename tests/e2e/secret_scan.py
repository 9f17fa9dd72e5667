"""The search of the planted-secrets test (tests/e2e/test_planted_secrets.py): the forms a secret
may take, the haystack of everything scanned, and the readers of Kafka, the database and the logs."""

from __future__ import annotations

import json
import re
import unicodedata
import uuid
from dataclasses import dataclass
from urllib.parse import quote, quote_plus

import sqlalchemy as sa

SCHEMAS = ("intake", "dispatch", "reporting", "auth")
SEPARATORS = re.compile(r"(?<=\d)[\s\-\u2013\u2014.()/]+(?=\d)")


def variants(secret: str) -> set[str]:
    """The forms a secret may take in the places searched."""
    forms = {secret}
    digits = "".join(ch for ch in secret if ch.isdigit())
    if len(digits) >= 7 and len(digits) >= len(secret) - 3:  # a number with separators
        forms.add(digits)
    forms.add(json.dumps(secret)[1:-1])  # \uXXXX escapes
    forms.add(quote(secret))
    forms.add(quote_plus(secret))
    encoded = secret.encode("utf-8")
    forms.add(encoded.hex())
    return {f for f in forms if f}


@dataclass
class Hit:
    where: str
    secret: str
    form: str
    context: str


class Haystack:
    """Texts searched, by where they came from; counts what was scanned."""

    def __init__(self) -> None:
        self.texts: list[tuple[str, str]] = []
        self.counts: dict[str, int] = {}

    def add(self, where: str, content: str | bytes, kind: str) -> None:
        text = content.decode("utf-8", "replace") if isinstance(content, bytes) else content
        self.texts.append((where, text))
        self.counts[kind] = self.counts.get(kind, 0) + 1
        self.counts[kind + "_chars"] = self.counts.get(kind + "_chars", 0) + len(text)

    def search(self, needles: dict[str, str]) -> list[Hit]:
        """Every (source, secret) where a form of the secret occurs; numbers are also looked for in
        the text with the separators between digits taken out (``138 1234-5678``)."""
        forms = [(name, form.lower()) for name, secret in needles.items() for form in variants(secret)]
        hits = []
        for where, text in self.texts:
            low = unicodedata.normalize("NFKC", text).lower()  # full-width digits and letters too
            joined = SEPARATORS.sub("", low)
            for name, form in forms:
                for haystack in (low, joined) if form.isdigit() else (low,):
                    at = haystack.find(form)
                    if at >= 0:
                        hits.append(Hit(where, name, form, haystack[max(0, at - 60):at + len(form) + 60]))
                        break
        return hits

    def where(self, needle: str) -> set[str]:
        """Sources holding ``needle`` verbatim (positive controls)."""
        return {where for where, text in self.texts if needle in text}


async def read_kafka(bootstrap: str, hay: Haystack) -> dict[str, int]:
    """Every record of every topic from the beginning (group-less, all partitions), read until the
    end offsets are reached and the log stays quiet for two polls (the embedded Tansu build can
    report a high watermark below records it already serves)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    from shared.contract.topics import ALL_TOPICS

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    await admin.start()
    try:
        topics = sorted(set(await admin.list_topics()) | set(ALL_TOPICS))
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", client_id=f"pii-scan-{uuid.uuid4().hex[:8]}")
    await consumer.start()
    per_topic = {t: 0 for t in topics}
    try:
        await consumer._client.force_metadata_update()  # noqa: SLF001 - fresh metadata for every topic
        tps = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        assert tps, f"no partitions for topics {topics}"
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        quiet = 0
        while quiet < 2:
            batch = await consumer.getmany(*tps, timeout_ms=1000, max_records=5000)
            fetched = [r for records in batch.values() for r in records]
            for r in fetched:
                per_topic[r.topic] += 1
                blob = b"\n".join([r.key or b"", r.value or b""]
                                  + [k.encode() + b"=" + (v or b"") for k, v in (r.headers or ())])
                hay.add(f"kafka {r.topic}[{r.partition}]@{r.offset}", blob, "kafka_records")
            behind = False
            for tp in tps:
                if await consumer.position(tp) < end[tp]:
                    behind = True
            quiet = 0 if (fetched or behind) else quiet + 1
    finally:
        await consumer.stop()
    return per_topic


async def read_database(url: str, hay: Haystack) -> tuple[dict[str, int], dict[str, bytes]]:
    """Every row of every table of the gridcase schemas as text, and the raw sealed bytes."""
    from shared.platform.db import make_engine

    engine = make_engine(url)
    rows_per_table: dict[str, int] = {}
    sealed: dict[str, bytes] = {}
    try:
        async with engine.connect() as conn:
            tables = (await conn.execute(sa.text(
                "SELECT table_schema, table_name FROM information_schema.tables "
                "WHERE table_type = 'BASE TABLE' AND table_schema = ANY(:schemas) ORDER BY 1, 2"),
                {"schemas": list(SCHEMAS)})).all()
            for schema, table in tables:
                name = f'"{schema}"."{table}"'
                rows = (await conn.execute(sa.text(f"SELECT t::text FROM {name} t"))).scalars().all()
                rows_per_table[f"{schema}.{table}"] = len(rows)
                for i, text in enumerate(rows):
                    hay.add(f"table {schema}.{table} row {i}", text, "db_rows")
            for case_id, blob in (await conn.execute(sa.text(
                    "SELECT case_id::text, reporter_sealed FROM intake.reports WHERE reporter_sealed IS NOT NULL"))).all():
                sealed[case_id] = bytes(blob)
                hay.add(f"intake.reports.reporter_sealed bytes of {case_id}", bytes(blob), "sealed_blobs")
    finally:
        await engine.dispose()
    return rows_per_table, sealed


def read_logs(stack, hay: Haystack) -> dict[str, int]:
    sizes = {}
    for path in sorted(stack.state_dir.rglob("*.log")):
        data = path.read_bytes()
        sizes[path.name] = len(data)
        hay.add(f"log {path}", data, "logs")
    return sizes


def report_of(hits: list[Hit]) -> str:
    return "\n".join(f"  {h.secret!r} (as {h.form!r}) in {h.where}: …{h.context}…" for h in hits[:80]) + (
        f"\n  … and {len(hits) - 80} more" if len(hits) > 80 else "")
