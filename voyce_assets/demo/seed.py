"""``voyce demo seed``: a deterministic Voyce app database with real spoken feedback.

Creates the app-owned tables in PostgreSQL (DDL from the catalog spec) and fills them with
organizations across industries and tiers, their users, ``per_day`` voice feedback for each
of the last ``days`` complete UTC days, tags, feedback tags and action items. Every feedback
has a real recording in the ``raw_data.audio_files`` volume: eSpeak NG speaking a script with
a known intended sentiment and topic, as WAV, MP3 or M4A at varied rates and channel counts.
Three bad cases are included on purpose: a corrupt file, a silent clip and a missing file.

Everything derives from ``random.Random(seed)`` and the end date, so the same arguments give
the same rows and the same audio bytes.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import shutil
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from voyce_assets.catalog import APP_TABLES, JSON, Table
from voyce_assets.checks import MAX_FAILURE_RATE
from voyce_assets.ddl import postgres_ddl
from voyce_assets.demo import speech
from voyce_assets.demo.texts import ACTION_TEMPLATES, SENTIMENTS, TOPICS, feedback_script

UTC = dt.UTC

ORGANIZATIONS = (
    # name, industry, company_size, tier, email domain, weight of feedback volume
    ("Northwind Outfitters", "retail", "201-1000", "enterprise", "northwind.example", 3),
    ("Bluefin Payments", "fintech", "51-200", "professional", "bluefin.example", 2),
    ("Cedar Health Clinics", "healthcare", "1000+", "enterprise", "cedarhealth.example", 2),
    ("Harbor Hotels", "hospitality", "201-1000", "starter", "harborhotels.example", 1),
    ("Swift Freight", "logistics", "11-50", "free", "swiftfreight.example", 1),
    ("Lumen Analytics", "saas", "1-10", "starter", "lumen.example", 0),  # inactive, no feedback
)
FIRST_NAMES = (
    "Ava", "Liam", "Maya", "Noah", "Zoe", "Ethan", "Priya", "Lucas", "Sofia", "Omar",
    "Hana", "Mateo", "Chloe", "Kenji", "Amara", "Felix", "Ines", "Ravi", "Elena", "Samuel",
)  # fmt: skip
LAST_NAMES = (
    "Garcia", "Chen", "Okafor", "Smith", "Nakamura", "Rossi", "Patel", "Kowalski", "Dubois",
    "Silva", "Andersen", "Haddad", "Murphy", "Kim", "Novak", "Alvarez",
)  # fmt: skip
DEPARTMENTS = ("Customer Experience", "Operations", "Product", "Support", "Sales", "Marketing")
TAGS = (
    # name, category, description
    ("checkout", "topic", "Payment and checkout flow."),
    ("delivery", "topic", "Shipping, couriers and tracking."),
    ("support", "topic", "Customer support interactions."),
    ("pricing", "topic", "Prices, plans, fees and billing."),
    ("app_performance", "topic", "Speed, crashes and reliability of the app."),
    ("product_quality", "topic", "Quality of the product itself."),
    ("praise", "sentiment", "Customer is happy."),
    ("complaint", "sentiment", "Customer is unhappy."),
    ("urgent", "priority", "Needs attention today."),
    ("follow_up", "priority", "Someone should get back to the customer."),
    ("mobile", "product", "Mentions the mobile app."),
    ("feature_request", "custom", "Customer asks for something new."),
)
DEVICES = {
    "ios": ("iPhone 15", "iPhone 13 mini", "iPad Air"),
    "android": ("Pixel 8", "Galaxy S23", "OnePlus 12"),
    "web": ("Chrome 131", "Safari 18", "Firefox 133"),
}
VOICES = ("en-us+m3", "en-us+f2", "en+m1", "en-gb-x-rp+f3", "en-us+m7", "en+f4", "en-us-nyc+m2")
# (format, sample rate, channels, weight): what phones and browsers upload.
ENCODINGS = (
    ("wav", 22050, 1, 2),
    ("wav", 16000, 1, 2),
    ("mp3", 22050, 1, 2),
    ("mp3", 44100, 2, 2),
    ("m4a", 44100, 2, 2),
    ("m4a", 22050, 1, 1),
)
BAD_CASES = ("corrupt", "silent", "missing")


@dataclass(frozen=True)
class DemoConfig:
    days: int = 7
    per_day: int = 20
    seed: int = 42
    # Exclusive: the demo covers [end_date - days, end_date). Default: today (UTC), so the
    # demo holds the last `days` complete days and nothing in the future.
    end_date: dt.date | None = None
    pg_schema: str = "public"

    def resolved_end(self) -> dt.date:
        return self.end_date or dt.datetime.now(UTC).date()

    def partition_dates(self) -> list[dt.date]:
        end = self.resolved_end()
        return [end - dt.timedelta(days=self.days - i) for i in range(self.days)]


@dataclass
class AudioJob:
    relative_path: str
    text: str
    speaker: speech.Speaker
    fmt: str
    sample_rate: int
    channels: int
    case: str  # ok | corrupt | silent | missing


@dataclass
class DemoData:
    rows: dict[str, list[dict[str, Any]]]
    audio: dict[str, AudioJob] = field(default_factory=dict)  # feedback id -> job


@dataclass
class DemoSummary:
    database: str
    audio_root: Path
    partitions: list[dt.date]
    row_counts: dict[str, int]
    formats: dict[str, int]
    bad_cases: dict[str, str]  # case -> feedback id
    audio_seconds: float
    per_day: int
    bad_days: dict[str, dt.date] = field(default_factory=dict)  # case -> its day

    def alert_days(self, max_rate: float = MAX_FAILURE_RATE) -> list[dt.date]:
        """Days whose bad cases are more than ``max_rate`` of their recordings: their
        failure checks fail (the alert, shown on purpose)."""
        counts = Counter(self.bad_days.values())
        return sorted(day for day, n in counts.items() if n > max_rate * self.per_day)

    def lines(self) -> list[str]:
        first, last = self.partitions[0], self.partitions[-1]
        out = [
            f"database {self.database}",
            f"partitions {first} .. {last} ({len(self.partitions)} days)",
        ]
        out += [f"  {name}: {n} rows" for name, n in self.row_counts.items()]
        fmts = ", ".join(f"{k} {v}" for k, v in sorted(self.formats.items()))
        out.append(f"audio {self.audio_root}: {fmts}; {self.audio_seconds:.0f} s of speech")
        counts = Counter(self.bad_days.values())
        for case, fid in self.bad_cases.items():
            day = self.bad_days.get(case)
            share = f" on {day} ({counts[day]} of {self.per_day} that day)" if day else ""
            out.append(f"  bad case {case}: voice_feedback {fid}{share}")
        if self.bad_cases:
            alert = self.alert_days()
            limit = f"the {MAX_FAILURE_RATE:.0%} failure alert"
            out.append(
                "  the bad cases become error rows, "
                + (
                    f"over {limit} on {', '.join(map(str, alert))}: that day's failure_rate "
                    "checks fail on purpose (the alert demonstration)"
                    if alert
                    else f"within {limit} of their day"
                )
            )
        return out


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _at(day: dt.date, seconds: float) -> dt.datetime:
    # Microsecond-free timestamps survive any round trip (JSON, CSV, Spark) unchanged.
    base = dt.datetime.combine(day, dt.time(), tzinfo=UTC)
    return base + dt.timedelta(seconds=int(seconds))


def generate(config: DemoConfig) -> DemoData:
    """All rows and audio jobs of the demo, without touching the database or disk."""
    if config.days < 1 or config.per_day < 1:
        raise ValueError("days and per_day must be at least 1")
    rng = random.Random(config.seed)
    dates = config.partition_dates()
    day0 = dates[0]
    now = _at(config.resolved_end(), 0)  # nothing happens at or after the end of the demo

    def cap(ts: dt.datetime) -> dt.datetime:
        return min(ts, now - dt.timedelta(minutes=1))

    rows: dict[str, list[dict[str, Any]]] = {t.name: [] for t in APP_TABLES}

    orgs, users_by_org = [], {}
    for name, industry, size, tier, domain, weight in ORGANIZATIONS:
        created = _at(day0, rng.uniform(300, 3600))
        org = {
            "id": _uuid(rng),
            "name": name,
            "industry": industry,
            "company_size": size,
            "subscription_tier": tier,
            "settings": json.dumps(
                {
                    "language": "en",
                    "retention_days": rng.choice([90, 180, 365]),
                    "sentiment_provider": rng.choice(["claude", "openai", "local"]),
                    "notify_on_negative": rng.random() < 0.7,
                },
                sort_keys=True,
            ),
            "created_at": created,
            "updated_at": created,
            "is_active": weight > 0,
        }
        rows["organizations"].append(org)
        orgs.append((org, domain, weight))
        users = []
        for i in range(rng.randint(3, 6)):
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            role = (
                "admin"
                if i == 0
                else "manager"
                if i == 1
                else rng.choice(["member", "member", "viewer"])
            )
            u_created = created + dt.timedelta(seconds=rng.uniform(600, 7200))
            user = {
                "id": _uuid(rng),
                "organization_id": org["id"],
                "email": f"{first}.{last}{i}@{domain}".lower(),
                "full_name": f"{first} {last}",
                "role": role,
                "department": rng.choice(DEPARTMENTS),
                "phone_number": f"+1-555-{rng.randint(100, 999)}-{rng.randint(1000, 9999)}",
                "preferences": json.dumps(
                    {
                        "email_digest": rng.choice(["daily", "weekly", "off"]),
                        "theme": rng.choice(["light", "dark"]),
                    },
                    sort_keys=True,
                ),
                "last_login": cap(_at(rng.choice(dates), rng.uniform(0, 86400)))
                if weight
                else None,
                "created_at": u_created,
                "updated_at": u_created,
                "is_active": weight > 0 and rng.random() > 0.1,
            }
            rows["users"].append(user)
            users.append(user)
        users_by_org[org["id"]] = users

    tags = []
    for name, category, description in TAGS:
        tag = {
            "id": _uuid(rng),
            "name": name,
            "category": category,
            "description": description,
            "created_at": _at(day0, rng.uniform(0, 300)),
        }
        rows["tags"].append(tag)
        tags.append(tag)
    tag_by_name = {t["name"]: t for t in tags}

    active = [(o, w) for o, _, w in orgs if w > 0]
    bad_slots = _bad_slots(rng, config.days, config.per_day)
    data = DemoData(rows=rows)
    for d, day in enumerate(dates):
        times = sorted(rng.uniform(6 * 3600, 23 * 3600) for _ in range(config.per_day))
        for i, seconds in enumerate(times):
            case = bad_slots.get((d, i), "ok")
            org = rng.choices([o for o, _ in active], weights=[w for _, w in active])[0]
            user = rng.choice(users_by_org[org["id"]])
            topic, sentiment = rng.choice(TOPICS), rng.choice(SENTIMENTS)
            text = feedback_script(rng, topic, sentiment)
            fmt, rate, channels = rng.choices(
                [e[:3] for e in ENCODINGS], weights=[e[3] for e in ENCODINGS]
            )[0]
            if case == "corrupt":
                fmt, rate, channels = "m4a", 44100, 2
            elif case == "silent":
                fmt, rate, channels = "wav", 16000, 1
            speaker = speech.Speaker(rng.choice(VOICES), rng.randint(140, 185), rng.randint(35, 65))
            source = rng.choice(list(DEVICES))
            created = _at(day, seconds)
            fid = _uuid(rng)
            completed = created < now - dt.timedelta(days=1)
            spoken = case not in ("silent",)
            feedback = {
                "id": fid,
                "organization_id": org["id"],
                "user_id": user["id"],
                "audio_file_path": f"{org['id']}/{day:%Y/%m/%d}/{fid}.{fmt}",
                "audio_duration_seconds": None,  # filled once the audio exists
                "audio_format": fmt,
                "file_size_bytes": None,
                "upload_source": source,
                "metadata": {
                    "demo_case": case,
                    "intended_sentiment": sentiment if spoken else None,
                    "topic": topic if spoken else None,
                    "script": text if spoken else "",
                    "speaker": {
                        "voice": speaker.voice,
                        "rate_wpm": speaker.rate_wpm,
                        "pitch": speaker.pitch,
                    },
                    "encoding": {"format": fmt, "sample_rate": rate, "channels": channels},
                    "device": rng.choice(DEVICES[source]),
                    "app_version": rng.choice(["3.4.1", "3.5.0", "3.5.2"]),
                },
                "status": "completed" if completed else "pending",
                "created_at": created,
                "updated_at": cap(created + dt.timedelta(minutes=rng.uniform(1, 20)))
                if completed
                else created,
            }
            rows["voice_feedback"].append(feedback)
            data.audio[fid] = AudioJob(
                feedback["audio_file_path"], text, speaker, fmt, rate, channels, case
            )

            if not spoken:
                continue
            _tag(rows, rng, fid, tag_by_name[topic], "auto", created, rng.uniform(0.6, 0.99), cap)
            if sentiment != "neutral":
                mood = "praise" if sentiment == "positive" else "complaint"
                _tag(
                    rows, rng, fid, tag_by_name[mood], "auto", created, rng.uniform(0.55, 0.95), cap
                )
            if rng.random() < 0.3:
                tagger = rng.choice(users_by_org[org["id"]])
                extra = rng.choice(["follow_up", "mobile", "feature_request", "urgent"])
                _tag(rows, rng, fid, tag_by_name[extra], tagger["id"], created, 1.0, cap)
            if sentiment == "negative" and rng.random() < 0.7:
                _action_item(rows, rng, fid, topic, users_by_org[org["id"]], created, cap)

    for feedback in rows["voice_feedback"]:
        feedback["metadata"] = json.dumps(feedback["metadata"], sort_keys=True)
    return data


def _bad_slots(rng: random.Random, days: int, per_day: int) -> dict[tuple[int, int], str]:
    """(day index, recording index) -> bad case: one of each, on different days while there
    are enough. The failure checks judge each day on its own, so a bad case is one recording
    in ``per_day`` of its day: at 20 a day exactly the 5% the checks still pass (they alert
    above it), so one more failure on such a day is a real alert."""
    if days >= len(BAD_CASES):
        on = rng.sample(range(days), len(BAD_CASES))
    else:
        on = [i % days for i in range(len(BAD_CASES))]
    slots: dict[tuple[int, int], str] = {}
    for case, day in zip(BAD_CASES, on, strict=True):
        free = [i for i in range(per_day) if (day, i) not in slots]
        if free:
            slots[(day, rng.choice(free))] = case
    return slots


def _tag(rows, rng, feedback_id, tag, assigned_by, created, confidence, cap) -> None:
    rows["feedback_tags"].append(
        {
            "id": _uuid(rng),
            "voice_feedback_id": feedback_id,
            "tag_id": tag["id"],
            "assigned_by": assigned_by,
            "confidence_score": round(confidence, 3),
            "created_at": cap(created + dt.timedelta(seconds=int(rng.uniform(30, 300)))),
        }
    )


def _action_item(rows, rng, feedback_id, topic, users, created, cap) -> None:
    owners = [u for u in users if u["role"] in ("admin", "manager")] or users
    item_created = cap(created + dt.timedelta(seconds=int(rng.uniform(600, 7200))))
    completed_at, status = None, rng.choice(["open", "open", "in_progress", "completed"])
    updated = item_created
    if status == "completed":
        completed_at = cap(item_created + dt.timedelta(hours=rng.uniform(2, 48)))
        updated = completed_at
    elif status == "in_progress":
        updated = cap(item_created + dt.timedelta(hours=rng.uniform(1, 12)))
    rows["action_items"].append(
        {
            "id": _uuid(rng),
            "voice_feedback_id": feedback_id,
            "description": ACTION_TEMPLATES[topic],
            "priority": rng.choice(["low", "medium", "high", "urgent"]),
            "assigned_to": rng.choice(owners)["id"],
            "due_date": (item_created + dt.timedelta(days=rng.randint(3, 10))).date(),
            "status": status,
            "completed_at": completed_at,
            "created_at": item_created,
            "updated_at": max(updated, item_created),
        }
    )


def render_audio(job: AudioJob, rng: random.Random) -> bytes | None:
    """The bytes the app stored for this feedback (None: the file went missing)."""
    if job.case == "missing":
        return None
    if job.case == "silent":
        # Room tone: near-silence with faint noise, 6 seconds.
        noise = np.random.default_rng(rng.getrandbits(32)).normal(0, 3e-4, 6 * job.sample_rate)
        return speech.encode(noise.astype(np.float32).reshape(-1, 1), job.sample_rate, "wav")
    samples, rate = speech.synthesize(job.text, job.speaker)
    audio = speech.resample(samples, rate, job.sample_rate, job.channels)
    encoded = speech.encode(audio, job.sample_rate, job.fmt)
    if job.case == "corrupt":
        # An upload cut short and overwritten with junk: a valid-looking start, garbage after.
        junk = bytes(rng.getrandbits(8) for _ in range(len(encoded) // 2))
        return encoded[:64] + junk
    return encoded


# eSpeak keeps hidden state (pitch flutter phase, noise) from one utterance to the next, even
# across re-initialization. Each chunk of clips is therefore rendered in a fresh process, so
# the same seed always gives the same bytes; two chunks also use both cores of a laptop.
RENDER_CHUNKS = 2


def _render_chunk(jobs: list[AudioJob], seed: int) -> list[bytes | None]:
    return [render_audio(job, random.Random(f"{seed}:{job.relative_path}")) for job in jobs]


def _render_all(jobs: list[AudioJob], seed: int) -> list[bytes | None]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    size = -(-len(jobs) // RENDER_CHUNKS)
    chunks = [jobs[i : i + size] for i in range(0, len(jobs), size)]
    with ProcessPoolExecutor(
        max_workers=len(chunks),
        mp_context=multiprocessing.get_context("spawn"),
        max_tasks_per_child=1,
    ) as pool:
        results = pool.map(_render_chunk, chunks, [seed] * len(chunks))
        return [payload for chunk in results for payload in chunk]


def write_audio(data: DemoData, audio_root: Path, seed: int) -> tuple[Counter, float]:
    """Write every recording below ``audio_root``; fill size and duration into the rows."""
    formats: Counter = Counter()
    seconds = 0.0
    by_id = {row["id"]: row for row in data.rows["voice_feedback"]}
    jobs = list(data.audio.items())
    payloads = _render_all([job for _, job in jobs], seed)
    for (fid, job), payload in zip(jobs, payloads, strict=True):
        row = by_id[fid]
        if payload is None:
            # The app knew size and duration at upload; the file is gone since.
            rng = random.Random(f"{seed}:{job.relative_path}")
            row["file_size_bytes"] = 48_000 + rng.randint(0, 20_000)
            row["audio_duration_seconds"] = round(rng.uniform(3, 8), 2)
            continue
        path = audio_root / job.relative_path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(payload)
        formats[job.fmt] += 1
        row["file_size_bytes"] = len(payload)
        # The app could not read the corrupt upload either: no duration.
        duration = None if job.case == "corrupt" else _probe_duration(path)
        row["audio_duration_seconds"] = duration
        seconds += duration or 0.0
    return formats, seconds


def _probe_duration(path: Path) -> float:
    import av

    with av.open(str(path)) as container:
        return round(container.duration / 1_000_000, 2)


def _insert_sql(table: Table, pg_schema: str) -> sa.TextClause:
    cols = table.source_columns
    names = ", ".join(f'"{c.name}"' for c in cols)
    values = ", ".join(
        f"CAST(:{c.name} AS JSONB)" if c.type is JSON else f":{c.name}" for c in cols
    )
    return sa.text(f'INSERT INTO "{pg_schema}"."{table.name}" ({names}) VALUES ({values})')


def create_app_schema(conn: sa.Connection, pg_schema: str = "public", drop: bool = False) -> None:
    """The app-owned tables (from the catalog spec); ``drop`` recreates them empty."""
    if drop:
        for table in reversed(APP_TABLES):
            conn.execute(sa.text(f'DROP TABLE IF EXISTS "{pg_schema}"."{table.name}" CASCADE'))
    for statement in postgres_ddl(pg_schema):
        conn.execute(sa.text(statement))


def load_rows(engine: Engine, data: DemoData, pg_schema: str = "public") -> None:
    """Recreate the app tables holding exactly ``data``'s rows.

    One transaction (PostgreSQL DDL is transactional): a failure leaves the previous database
    as it was, and readers never see a half-loaded one.
    """
    with engine.begin() as conn:
        create_app_schema(conn, pg_schema, drop=True)
        for table in APP_TABLES:
            if data.rows[table.name]:
                conn.execute(_insert_sql(table, pg_schema), data.rows[table.name])


def seed(engine: Engine, audio_root: Path, config: DemoConfig) -> DemoSummary:
    """Replace the demo: recreate the app tables, write the audio, insert every row."""
    data = generate(config)
    if audio_root.exists():
        shutil.rmtree(audio_root)
    audio_root.mkdir(parents=True)
    formats, seconds = write_audio(data, audio_root, config.seed)
    load_rows(engine, data, config.pg_schema)
    bad = {job.case: fid for fid, job in data.audio.items() if job.case != "ok"}
    created = {row["id"]: row["created_at"].date() for row in data.rows["voice_feedback"]}
    return DemoSummary(
        database=engine.url.set(drivername="postgresql").render_as_string(hide_password=True),
        audio_root=audio_root,
        partitions=config.partition_dates(),
        row_counts={t.name: len(data.rows[t.name]) for t in APP_TABLES},
        formats=dict(formats),
        bad_cases=bad,
        audio_seconds=seconds,
        bad_days={case: created[fid] for case, fid in bad.items()},
        per_day=config.per_day,
    )
