"""End to end: planted personal data never leaves intake in plaintext (issue 6 item 3), and erasure
erases it (issue 16).

The test makes up a reporter (name, mobile, landline, 18-character ID number with a valid GB 11643
check digit, e-mail, bank card, exact address) unique to the run, plants it in reports of tenant
``demo-grid`` through every way in (``POST /v1/reports``, a jsonl import, Open311 POST), in the
free text (the name and address too), in identifier fields (``source_id``, a patrol's
``worker_ref``, a refused ``category_code``) and in the notes and evidence of every step of the API
case's closed loop up to its closure, erases that case (``gridcase pii anonymise --case``), waits
until reporting has counted the cases, and then searches everything the run left behind for it:

- every Kafka topic (the .dlq topics too), keys, values and headers, from the beginning;
- every service log file of the stack;
- each service's ``/metrics``;
- reporting's answers and exports (KPIs as JSON, CSV and the XML inside the XLSX, overdue and
  supervised case lists, the work summary, statistics by every grouping, patrols, the dashboard's
  tenants.json) and intake's case, audit and Open311 answers;
- every row of every table of the gridcase schemas, dumped as text (``SELECT t::text``), and the
  raw bytes of ``intake.reports.reporter_sealed``.

Each secret is looked for as written, digits only (for numbers), JSON-escaped, URL-encoded and
hex-encoded (a ``bytea`` column prints as hex). Nothing may be found. Positive controls keep the
test from passing vacuously: a marker word planted next to the secrets must be found in the
places the masked text does go (the reported topic, intake's tables and answers), the search must
find a secret in a blob known to hold it, intake must still decrypt the sealed part of each case
not erased and find the planted name and phone in it, and the erased case's pseudonymous
reference is found on Kafka (records there expire with retention) and nowhere else.
"""

from __future__ import annotations

import asyncio
import io
import json
import random
import time
import uuid
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests import api
from tests.e2e.secret_scan import (
    Haystack,
    read_database,
    read_kafka,
    read_logs,
    report_of,
)

pytestmark = pytest.mark.e2e

TENANT = "demo-grid"
GRID = "990102001002001"  # 和平社区第1网格 (deploy/tenants/demo-grid.yaml)
CATEGORY = "100401"  # 下水道堵塞
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = "10X98765432"


# --------------------------------------------------------------------------- the secrets


def id_check_digit(first17: str) -> str:
    """GB 11643-1999 check character of the first 17 digits of a resident ID number."""
    return ID_CHECK[sum(int(d) * w for d, w in zip(first17, ID_WEIGHTS, strict=True)) % 11]


def _hanzi(rng: random.Random, n: int) -> str:
    return "".join(chr(rng.randint(0x4E00, 0x9FA5)) for _ in range(n))


def _digits(rng: random.Random, n: int) -> str:
    return "".join(str(rng.randint(0, 9)) for _ in range(n))


@dataclass(frozen=True)
class Secrets:
    """One run's made-up reporter."""

    family: str
    given: str
    mobile: str
    landline: str
    id_number: str
    email: str
    card: str
    address: str
    marker: str = field(default="")  # not a secret: must be found wherever the masked text goes

    @property
    def name(self) -> str:
        return self.family + self.given

    @property
    def mobile_dashed(self) -> str:
        return f"{self.mobile[:3]}-{self.mobile[3:7]}-{self.mobile[7:]}"

    def items(self) -> dict[str, str]:
        """The secrets by what they are (the marker is not one)."""
        return {"name": self.name, "name_given": self.given, "mobile": self.mobile, "mobile_dashed": self.mobile_dashed,
                "landline": self.landline, "id_number": self.id_number, "email": self.email, "card": self.card,
                "address": self.address}

    @classmethod
    def generate(cls, seed: int | None = None) -> Secrets:
        rng = random.Random(seed)
        area = rng.choice(("110105", "350102", "310101", "440305"))
        born = f"{rng.randint(1950, 2004)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
        first17 = area + born + _digits(rng, 3)
        return cls(
            family="测",
            given="试员" + _hanzi(rng, 3),
            mobile="1" + str(rng.randint(3, 9)) + _digits(rng, 9),
            landline=f"0{rng.randint(10, 99)}-{rng.randint(2, 8)}{_digits(rng, 7)}",
            id_number=first17 + id_check_digit(first17),
            email=f"pii.{rng.getrandbits(40):010x}@example.com",
            card="6222" + _digits(rng, 15),
            address=f"幸福路{rng.randint(10, 99)}号{rng.randint(1, 30)}栋{rng.randint(1, 6)}单元"
                    f"{rng.randint(1, 30)}{rng.randint(1, 4):02d}室{_hanzi(rng, 2)}",
            marker=f"PIIMARK{rng.getrandbits(48):012x}",
        )

    @property
    def card_grouped(self) -> str:
        """The card as printed on it and usually written: groups of four, space-separated."""
        return " ".join(self.card[i:i + 4] for i in range(0, len(self.card), 4))

    @property
    def landline_bracketed(self) -> str:
        area, number = self.landline.split("-")
        return f"（{area}）{number[:4]} {number[4:]}"

    @property
    def id_grouped(self) -> str:
        return f"{self.id_number[:6]} {self.id_number[6:14]} {self.id_number[14:]}"

    @property
    def mobile_fullwidth(self) -> str:
        """Typed with a Chinese IME in full-width mode."""
        return self.mobile.translate({ord(d): 0xFF10 + int(d) for d in "0123456789"})

    def description(self, how: str) -> str:
        """Free text with every number and the e-mail planted in it (and the marker), each number
        also in the other ways people write it."""
        return (f"{self.marker} {how}：居民反映下水道堵塞，联系电话{self.mobile_dashed}，座机{self.landline}，"
                f"身份证号{self.id_number}，邮箱{self.email}，退款银行卡{self.card}，请尽快处理。"
                f"备用：手机{self.mobile_fullwidth}，座机{self.landline_bracketed}，"
                f"卡号{self.card_grouped}，身份证{self.id_grouped}。"
                f"联系人{self.name}（{self.given}），住{self.address}。")

    @property
    def tagged(self) -> str:
        """An identifier a source system made of the reporter's name and phone (issue 16)."""
        return f"{self.name}{self.mobile}"


# --------------------------------------------------------------------------- planting


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def plant(stack, s: Secrets) -> dict[str, str]:
    """Plant the secrets through each way in; return the case ids by channel."""
    intake = stack.url("intake")
    reporter = {"name": s.name, "phone": s.mobile, "id_number": s.id_number, "address": s.address}
    cases = {}

    body = {"tenant": TENANT, "category_code": CATEGORY, "place_code": GRID, "channel": "phone",
            "source_id": f"src-{s.mobile}-{uuid.uuid4().hex[:8]}", "description": s.description("api"),
            "reported_at": now_iso(), "reporter": reporter}
    # a category "code" made of the name and phone is no taxonomy code: refused, not echoed
    resp = api.post(f"{intake}/v1/reports", timeout=10, json=body | {"category_code": s.tagged})
    assert resp.status_code == 422 and resp.json()["error"] == "unknown_category", resp.text
    assert s.mobile not in resp.text and s.name not in resp.text
    resp = api.post(f"{intake}/v1/reports", timeout=10, json=body)
    assert resp.status_code == 202, resp.text
    cases["api"] = resp.json()["case_id"]

    # a patrol whose worker reference is a name and a phone
    resp = api.post(f"{intake}/v1/patrols", timeout=10, json={
        "tenant": TENANT, "place_code": GRID, "kind": "routine", "points": 3, "started_at": now_iso(),
        "worker_ref": s.tagged, "source_id": f"pii-patrol-{uuid.uuid4().hex}"})
    assert resp.status_code == 202, resp.text

    source_id = f"pii-{s.mobile}-{uuid.uuid4().hex}"
    line = json.dumps({"category_code": CATEGORY, "place_code": GRID, "channel": "12345", "source": "pii-import",
                       "source_id": source_id, "description": s.description("import"), "reported_at": now_iso(),
                       "reporter": reporter}, ensure_ascii=False)
    resp = api.post(f"{intake}/v1/imports", params={"format": "jsonl", "tenant": TENANT}, timeout=30,
                    content=(line + "\n").encode("utf-8"), headers={"Content-Type": "application/x-ndjson"})
    assert resp.status_code == 200, resp.text
    result = resp.json()
    assert (result["rows_read"], result["accepted"], result["rejected"], result["duplicates"]) == (1, 1, 0, 0), result
    from shared.contract.events import (
        derive_id,  # the import's case id derives from (tenant, source, source_id)
    )

    cases["import"] = str(derive_id(TENANT, "pii-import", source_id))

    resp = httpx.post(f"{intake}/open311/v2/requests.json", timeout=10, data={
        "api_key": api.ADMIN_KEY, "jurisdiction_id": TENANT, "service_code": CATEGORY, "address_id": GRID,
        "address_string": s.address, "first_name": s.given, "last_name": s.family, "phone": s.mobile,
        "email": s.email, "description": s.description("open311")})
    assert resp.status_code == 200, resp.text
    cases["open311"] = resp.json()[0]["service_request_id"]
    return cases


def case_view(stack, case_id: str) -> dict:
    resp = api.get(f"{stack.url('intake')}/v1/cases/{case_id}", timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()


def wait_for_state(stack, case_id: str, state: str, timeout_s: float = 60) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        view = case_view(stack, case_id)
        if view["state"] == state:
            return view
        if time.monotonic() > deadline:
            raise AssertionError(f"case {case_id} did not reach {state}: {view['state']}")
        time.sleep(0.3)


def progress(stack) -> tuple[dict, dict]:
    d = api.get(f"{stack.url('dispatch')}/v1/progress", params={"tenant": TENANT}, timeout=10).json()
    r = api.get(f"{stack.url('reporting')}/v1/progress", params={"tenant": TENANT}, timeout=10).json()
    return d, r


def wait_counted(stack, expected_cases: int, timeout_s: float = 120) -> tuple[dict, dict]:
    """Until dispatch has every case of the tenant and reporting every case and every event."""
    deadline = time.monotonic() + timeout_s
    while True:
        d, r = progress(stack)
        if (d["cases"] >= expected_cases and r["reported_cases"] >= expected_cases
                and r["events_applied"] >= d["cases"] + d["events_emitted"]):
            return d, r
        if time.monotonic() > deadline:
            raise AssertionError(f"not counted after {timeout_s}s: dispatch {d}, reporting {r}, want {expected_cases}")
        time.sleep(0.5)


# --------------------------------------------------------------------------- collecting


def read_http(stack, cases: dict[str, str], hay: Haystack) -> None:
    """Metrics, reporting's answers and exports, intake's case, audit and Open311 answers."""
    from services.reporting.kpis.catalogue import GROUP_BYS
    from services.reporting.stats import GROUPS

    reporting, intake = stack.url("reporting"), stack.url("intake")

    def fetch(url: str, kind: str, **params) -> httpx.Response:
        resp = api.get(url, params=params, timeout=30)
        assert resp.status_code == 200, f"{url} {params}: {resp.status_code} {resp.text[:300]}"
        hay.add(f"GET {url} {params}", resp.content, kind)
        return resp

    for name in stack.services:
        fetch(f"{stack.url(name)}/metrics", "metrics")
    t = {"tenant": TENANT}
    # the KPIs over the days of this test (by day over the tenant's whole history, which other tests
    # may have stretched back years, is refused as too many rows)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    window = {"start": (today - timedelta(days=1)).isoformat(), "end": (today + timedelta(days=2)).isoformat()}
    for group in (None, *GROUP_BYS):
        extra = {"group_by": group, **window} if group else dict(window)
        fetch(f"{reporting}/v1/kpis", "exports", **t, **extra)
        fetch(f"{reporting}/v1/kpis.csv", "exports", **t, **extra)
        xlsx = fetch(f"{reporting}/v1/kpis.xlsx", "exports", **t, **extra).content
        with zipfile.ZipFile(io.BytesIO(xlsx)) as book:
            for member in book.namelist():
                hay.add(f"kpis.xlsx group_by={group} {member}", book.read(member), "exports")
    for group in (None, *GROUPS):
        fetch(f"{reporting}/v1/stats", "exports", **t, **({"group_by": group} if group else {}))
    fetch(f"{reporting}/v1/cases/overdue", "exports", **t)
    fetch(f"{reporting}/v1/cases/supervised", "exports", **t, include_closed="true")
    fetch(f"{reporting}/v1/summary", "exports", **t)
    fetch(f"{reporting}/v1/patrols", "exports", **t)
    fetch(f"{reporting}/v1/progress", "exports", **t)
    fetch(f"{reporting}/dashboard/tenants.json", "exports")
    fetch(f"{stack.url('dispatch')}/v1/progress", "exports", **t)
    for case_id in cases.values():
        fetch(f"{intake}/v1/cases/{case_id}", "intake_answers")
        fetch(f"{intake}/v1/cases/{case_id}/audit", "intake_answers")
        for fmt in ("json", "xml"):
            fetch(f"{intake}/open311/v2/requests/{case_id}.{fmt}", "intake_answers", jurisdiction_id=TENANT)
    for fmt in ("json", "xml"):
        fetch(f"{intake}/open311/v2/requests.{fmt}", "intake_answers", jurisdiction_id=TENANT, page_size=1000)
        fetch(f"{intake}/open311/v2/tokens/{cases['open311']}.{fmt}", "intake_answers", jurisdiction_id=TENANT)


# --------------------------------------------------------------------------- the test


def test_planted_secrets_are_found_nowhere(stack, infra, capsys):
    from services.intake.domain.privacy import keyring_of
    from services.intake.settings import IntakeSettings
    from services.intake.store import reporter_contact
    from shared.domain.pii import pseudonym
    from shared.platform.crypto import Keyring, KeyringError, new_key
    from shared.platform.db import make_engine

    s = Secrets.generate()
    assert len(s.id_number) == 18 and s.id_number[-1] == id_check_digit(s.id_number[:17])
    baseline, _ = progress(stack)
    cases = plant(stack, s)

    wait_counted(stack, baseline["cases"] + len(cases))
    # the whole closed loop of the API case, each step's note or evidence carrying contact data
    view = wait_for_state(stack, cases["api"], "reported")
    assert view["report"]["description"].startswith(s.marker)
    note = f"{s.marker}-note 已电话回访{s.mobile}，座机{s.landline}，邮箱{s.email}，已联系{s.name}"
    steps = [("accept", "accepted", {"note": note, "evidence": [f"{s.marker}-evidence 回访录音_{s.mobile}.mp3"]}),
             ("file", "dispatched", {"note": f"立案，报告人{s.given}"}),
             ("acknowledge", "acknowledged", {"note": f"已签收，联系{s.name}"}),
             ("start", "in_progress", {"note": f"到{s.address}现场"}),
             ("resolve", "checking", {"note": f"已疏通，{s.name}确认", "evidence": [f"{s.address}_照片.jpg"]}),
             ("verify_pass", "closed", {"note": f"核查通过，回访{s.mobile_dashed}"})]
    for action, state, extra in steps:
        resp = api.post(f"{stack.url('intake')}/v1/cases/{cases['api']}/actions", timeout=20,
                        headers={"Prefer": "wait=10"}, json={"action": action, **extra})
        assert resp.status_code == 200 and resp.json()["state"] == state, (action, resp.text)
        wait_for_state(stack, cases["api"], state)
    for channel in ("import", "open311"):
        wait_for_state(stack, cases[channel], "reported")
    d, r = wait_counted(stack, baseline["cases"] + len(cases))

    # the erasure of the closed case, as an operator runs it (an erasure request: this case only)
    erased = erase(stack, infra, cases["api"])
    assert erased["anonymised"] == 1, erased
    time.sleep(1.0)  # let the services flush what they log about the last batch
    view = case_view(stack, cases["api"])

    hay = Haystack()
    per_topic = asyncio.run(read_kafka(infra.kafka_bootstrap, hay))
    log_sizes = read_logs(stack, hay)
    read_http(stack, cases, hay)
    rows_per_table, sealed = asyncio.run(read_database(infra.database_url, hay))

    with capsys.disabled():
        print(f"\n[planted-secrets] cases {cases}\n  kafka records per topic {per_topic}\n  logs {log_sizes}\n"
              f"  rows per table {rows_per_table}\n  scanned {hay.counts}")

    # -- positive controls: the searched places are the right ones and are really read
    assert _one("probe", f"…{s.email.upper()}…").search({"email": s.email}), "the search finds nothing at all"
    assert _one("probe", json.dumps({"n": s.name})).search({"name": s.name}), "misses \\u-escaped text"
    assert _one("probe", s.mobile_dashed).search({"mobile": s.mobile}), "misses a number with separators"
    assert _one("probe", "\\x" + s.address.encode().hex()).search({"address": s.address}), "misses bytea hex"
    marked = hay.where(s.marker)
    reported = {w for w in marked if w.startswith("kafka gridcase.case.reported[")}
    assert len(reported) == 3, f"the masked descriptions should be on the reported topic: {sorted(marked)}"
    assert any(w.startswith("kafka gridcase.case.actions[") for w in hay.where(f"{s.marker}-note")), "action note"
    assert any(w.startswith("kafka gridcase.case.actions[") for w in hay.where(f"{s.marker}-evidence")), "evidence"
    assert any(w.startswith("table intake.reports ") for w in marked), sorted(marked)
    assert any(w.startswith("table intake.audit_log ") for w in hay.where(f"{s.marker}-note")), sorted(marked)
    assert any(w.startswith("GET ") and "/open311/v2/requests/" in w for w in marked), sorted(marked)
    assert any(w.startswith("log ") for w in hay.where(f"/v1/cases/{cases['api']}/actions")), "intake's log not read"
    assert rows_per_table.get("intake.reports", 0) >= 3 and rows_per_table.get("reporting.case_facts", 0) >= 3
    assert sum(per_topic.values()) >= 3 + 1 + 1 and log_sizes and hay.counts.get("metrics") == len(stack.services)
    assert {cases["import"], cases["open311"]} <= set(sealed), "the cases not erased keep their sealed part"
    assert cases["api"] not in sealed, "the erased case has no sealed part"
    # masked text did arrive where it goes
    for placeholder in ("[电话]", "[身份证号]", "[邮箱]", "[卡号]", "[姓名]", "[地址]"):
        assert placeholder in view["report"]["description"], view["report"]["description"]
    assert view["report"]["source_id"].startswith("src-[电话]-"), view["report"]
    assert any("[姓名]" in e["detail"] for e in api.get(
        f"{stack.url('intake')}/v1/cases/{cases['api']}/audit", timeout=10).json()["entries"])
    # the erased case's pseudonymous reference: gone from every table and answer; still in the
    # records Kafka retains (they expire with the topic's retention, docs/domain.md §3(f)),
    # which shows the reference looked for is the right one
    ref = pseudonym(IntakeSettings().pseudonym_key.encode(), s.mobile, s.id_number, s.name)
    holding = hay.where(ref)
    assert holding and all(w.startswith("kafka gridcase.case.reported[") for w in holding), sorted(holding)

    # intake can still decrypt the sealed part: the planted contact and the unmasked text
    async def opened() -> dict:
        engine = make_engine(infra.database_url)
        try:
            keyring = keyring_of(IntakeSettings())
            out = {ch: await reporter_contact(engine, keyring, uuid.UUID(cid)) for ch, cid in cases.items()}
            with pytest.raises(KeyringError):
                await reporter_contact(engine, Keyring.parse(f"dev:{new_key()}"), uuid.UUID(cases["import"]))
            return out
        finally:
            await engine.dispose()

    contacts = asyncio.run(opened())
    assert contacts.pop("api") is None, "erased: nothing left to open"
    for channel, part in contacts.items():
        assert part and part["reporter"]["name"] == s.name and part["reporter"]["phone"] == s.mobile, (channel, part)
        assert part["reporter"]["address"] == s.address, (channel, part)
        assert s.email in part["description"] and s.card in part["description"], (channel, part)
    assert contacts["import"]["reporter"]["id_number"] == s.id_number
    assert s.mobile in contacts["import"]["original"]["source_id"], "the original source id is sealed"

    # -- the search itself
    hits = hay.search(s.items())
    assert not hits, f"planted personal data found in {len({h.where for h in hits})} places:\n{report_of(hits)}"


def erase(stack, infra, case_id: str) -> dict:
    """``gridcase pii anonymise --after-days D --case CASE`` against the stack's database, D such
    that the case counts as closed long enough: 0, less the time dispatch's test clock runs ahead
    (other tests move it forward, tests/e2e/test_closed_loop.py; the closure is dated by it, the
    erasure's age rule compares with real time), less one hour's margin."""
    import os

    from typer.testing import CliRunner

    from gridcase.cli import app

    after_days = -(max(api.dispatch_offset_h(stack), 0.0) + 1) / 24
    before = os.environ.get("DATABASE_URL")
    os.environ["DATABASE_URL"] = infra.database_url
    try:
        result = CliRunner().invoke(app, ["pii", "anonymise", f"--after-days={after_days}", "--case", case_id])
    finally:
        if before is None:
            os.environ.pop("DATABASE_URL", None)
        else:
            os.environ["DATABASE_URL"] = before
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.output.strip().splitlines()[-1])


def _one(where: str, text: str) -> Haystack:
    h = Haystack()
    h.add(where, text, "probe")
    return h
