"""Recorded deadlines of imported history (issue 12 item 7): the importers keep each record's own
due date (NYC ``Due Date``, Baltimore ``DueDate``, Boston ``TARGET_DT``) as
``RecordedOutcome.deadline``, and dispatch's history replay puts it on the ``case.dispatched``
event that reporting folds. No database, no broker.

Expected values come from the CSV files themselves, read here with the csv module and the
source's date format of /work/shared/data/README.md ("How the ground-truth figures were computed",
date formats), never from running the importers.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from services.dispatch.domain.reports import handle_report
from services.intake.importers.formats import iter_records
from services.intake.importers.mapping import compile_mapping
from shared.contract.events import CaseDispatched, CaseReported, RecordedOutcome
from shared.domain.taxonomy import load_taxonomy
from tests.conftest import shared_data

NY = ZoneInfo("America/New_York")
TENANT = "test-city"
#: README date formats: NYC ``%m/%d/%y %H:%M``; Baltimore and Boston ``%m/%d/%Y %I:%M:%S %p``.
NYC_FMT = "%m/%d/%y %H:%M"
US_FMT = "%m/%d/%Y %I:%M:%S %p"


def records(fmt: str, text: str, **kwargs) -> list:
    return [r for _, r in iter_records(fmt, io.StringIO(text, newline=""), TENANT, **kwargs)]


def csv_text(header: list[str], *rows: dict[str, str]) -> str:
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=header, lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k, "") for k in header})
    return out.getvalue()


# --- NYC ``Due Date`` ---------------------------------------------------------------------------

NYC_HEADER = ["Unique Key", "Created Date", "Closed Date", "Agency", "Complaint Type", "Descriptor", "Status",
              "Due Date", "Community Board", "Borough", "Open Data Channel Type"]


def nyc_row(key: str, status: str, due: str, closed: str = "") -> dict[str, str]:
    return {"Unique Key": key, "Created Date": "10/21/18 21:44", "Closed Date": closed, "Agency": "HPD",
            "Complaint Type": "HEAT/HOT WATER", "Descriptor": "ENTIRE BUILDING", "Status": status, "Due Date": due,
            "Community Board": "05 QUEENS", "Borough": "QUEENS", "Open Data Channel Type": "PHONE"}


def test_nyc_due_date_is_the_recorded_deadline_open_or_closed():
    text = csv_text(NYC_HEADER,
                    nyc_row("1", "Open", "11/20/18 21:44"),
                    nyc_row("2", "Closed", "10/22/18 6:57", closed="10/21/18 23:15"),
                    nyc_row("3", "Assigned", ""),
                    nyc_row("4", "Open", "soon"),
                    nyc_row("5", "Pending", "10/24/2018 12:00:00 AM"))  # NYC Open Data's native format
    open_, closed, blank, garbage, native = records("nyc311", text)
    # 11/20/18 is after the end of DST (2018-11-04): EST, UTC-5; October: EDT, UTC-4
    assert open_.history.deadline == datetime(2018, 11, 20, 21, 44, tzinfo=NY)
    assert open_.history.deadline.utcoffset().total_seconds() == -5 * 3600
    assert closed.history.deadline == datetime(2018, 10, 22, 6, 57, tzinfo=NY)
    assert closed.history.closed_at == datetime(2018, 10, 21, 23, 15, tzinfo=NY)
    # empty or unparseable: no deadline, as the close date (the row is still imported)
    assert blank.history.deadline is None and garbage.history.deadline is None
    assert native.history.deadline == datetime(2018, 10, 24, 0, 0, tzinfo=NY)


def test_nyc_without_a_due_date_column_is_refused_before_reading():
    header = [c for c in NYC_HEADER if c != "Due Date"]
    with pytest.raises(ValueError, match="Due Date"):
        iter_records("nyc311", io.StringIO(",".join(header) + "\r\n"), TENANT)


def test_nyc_sample_deadlines_equal_the_file():
    path = shared_data("nyc311_2018-10-21_sample.csv")
    with path.open(encoding="utf-8", newline="") as f:
        want = {r["Unique Key"]: datetime.strptime(r["Due Date"], NYC_FMT).replace(tzinfo=NY) if r["Due Date"] else None
                for r in csv.DictReader(f)}
    assert sum(v is not None for v in want.values()) == 1813  # rows with a Due Date in the file
    with path.open(encoding="utf-8", newline="") as f:
        got = {r.source_id: r.history.deadline for _, r in iter_records("nyc311", f, TENANT)}
    assert got == want


# --- Baltimore ``DueDate``, Boston ``TARGET_DT`` (built-in mappings) ----------------------------


@pytest.mark.parametrize(("fmt", "name", "key", "column"), [
    ("baltimore311", "baltimore311_2014-2019_sample.csv", "ServiceRequestNum", "DueDate"),
    ("boston311", "boston311_2015_sample.csv", "CASE_ENQUIRY_ID", "TARGET_DT"),
])
def test_mapped_sample_deadlines_equal_the_file(fmt, name, key, column):
    path = shared_data(name)
    with path.open(encoding="utf-8", newline="") as f:
        want = {r[key]: datetime.strptime(r[column], US_FMT).replace(tzinfo=NY) if r[column].strip() else None
                for r in csv.DictReader(f)}
    with path.open(encoding="utf-8", newline="") as f:
        got = {r.source_id: r.history.deadline for _, r in iter_records(fmt, f, TENANT)}
    assert got == want
    assert sum(v is not None for v in got.values()) > 0


def test_boston_row_keeps_target_dt_and_closed_dt():
    header = ["CASE_ENQUIRY_ID", "OPEN_DT", "TARGET_DT", "CLOSED_DT", "OnTime_Status", "CASE_STATUS", "CASE_TITLE",
              "SUBJECT", "REASON", "TYPE", "Source", "neighborhood"]
    base = {"OPEN_DT": "03/13/2015 04:28:33 PM", "SUBJECT": "Public Works Department", "REASON": "Street Lights",
            "TYPE": "Street Light Outages", "Source": "Constituent Call", "neighborhood": "Dorchester"}
    late = base | {"CASE_ENQUIRY_ID": "101001332873", "TARGET_DT": "03/27/2015 04:28:33 PM",
                   "CLOSED_DT": "04/01/2015 10:43:09 PM", "OnTime_Status": "OVERDUE", "CASE_STATUS": "Closed"}
    open_ = base | {"CASE_ENQUIRY_ID": "101001570724", "CASE_STATUS": "Open", "OnTime_Status": "ONTIME"}
    closed, still_open = records("boston311", csv_text(header, late, open_))
    assert closed.history.deadline == datetime(2015, 3, 27, 16, 28, 33, tzinfo=NY)
    assert closed.history.closed_at == datetime(2015, 4, 1, 22, 43, 9, tzinfo=NY)
    assert closed.history.closed_at > closed.history.deadline  # Boston: OVERDUE
    assert still_open.history.deadline is None and not still_open.history.closed


# --- the mapping language's ``deadline`` key ----------------------------------------------------

MAPPING = {"source": "city", "source_id": "id", "category": "type", "date_format": "%Y-%m-%d %H:%M",
           "reported_at": "opened"}


def test_mapping_deadline_has_the_time_forms_and_makes_history():
    spec = compile_mapping(MAPPING | {"deadline": {"column": "due", "format": "%d.%m.%Y"}})
    assert spec.history and spec.deadline.column == "due" and spec.deadline.fmt == "%d.%m.%Y"
    assert "due" in spec.columns
    text = "id,type,opened,due\na,roads,2024-03-01 08:00,05.03.2024\nb,roads,2024-03-01 08:00,\n"
    one, two = records("csv", text, mapping=MAPPING | {"deadline": {"column": "due", "format": "%d.%m.%Y"}},
                       tz="Europe/Berlin")
    assert one.history.deadline == datetime(2024, 3, 5, tzinfo=ZoneInfo("Europe/Berlin"))
    assert two.history.deadline is None and not two.history.closed


def test_mapping_deadline_takes_the_date_format_by_default():
    spec = compile_mapping(MAPPING | {"deadline": "due"})
    assert spec.deadline.fmt == "%Y-%m-%d %H:%M"


def test_mapping_deadline_is_an_outcome_column():
    with pytest.raises(ValueError, match="history: false, but outcome columns are mapped"):
        compile_mapping(MAPPING | {"deadline": "due", "history": False})
    with pytest.raises(ValueError, match="deadline"):
        compile_mapping(MAPPING | {"deadline": {"col": "due"}})


# --- jsonl and the schema -----------------------------------------------------------------------


def jsonl(history: dict) -> str:
    return json.dumps({"category_code": "100401", "place_code": "990102001001001", "source": "t",
                       "reported_at": "2024-05-01T09:00:00+08:00", "source_id": "x", "history": history}) + "\n"


def test_jsonl_naive_deadline_is_read_in_the_zone():
    [r] = records("jsonl", jsonl({"closed": False, "deadline": "2024-05-08T09:00:00"}), tz="Asia/Shanghai")
    assert r.history.deadline == datetime(2024, 5, 8, 9, tzinfo=ZoneInfo("Asia/Shanghai"))


def test_recorded_deadline_may_lie_ahead_but_not_before_1990():
    [ahead] = records("jsonl", jsonl({"deadline": "2099-01-01T00:00:00+08:00"}), tz="Asia/Shanghai")
    assert ahead.history.deadline.year == 2099
    [bad] = records("jsonl", jsonl({"deadline": "1989-12-31T00:00:00+08:00"}), tz="Asia/Shanghai")
    assert not hasattr(bad, "history") and "1990-01-01" in json.dumps(bad.errors)


# --- dispatch's history replay ------------------------------------------------------------------


def reported(history: RecordedOutcome | None) -> CaseReported:
    return CaseReported(event_id=uuid.uuid4(), occurred_at=datetime(2015, 3, 13, 20, 28, tzinfo=UTC),
                        case_id=uuid.uuid4(), tenant="boston", place_code="BOS08", category_code="Street Light Outages",
                        reported_at=datetime(2015, 3, 13, 16, 28, 33, tzinfo=NY), source="boston311",
                        history=history)


def test_history_replay_dispatches_with_the_recorded_deadline():
    due = datetime(2015, 3, 27, 16, 28, 33, tzinfo=NY)
    hist = RecordedOutcome(department="Public_Works_Department", status="Closed", closed=True,
                           closed_at=datetime(2015, 4, 1, 22, 43, 9, tzinfo=NY), deadline=due)
    state, events = handle_report(reported(hist), None, load_taxonomy(), datetime.now(UTC))
    dispatched = [e for e in events if isinstance(e, CaseDispatched)]
    assert len(dispatched) == 1 and dispatched[0].deadline == due and dispatched[0].history
    assert state.status == "closed"


def test_history_replay_without_a_recorded_deadline_sets_none():
    hist = RecordedOutcome(department="Public_Works_Department", status="Open")
    _, events = handle_report(reported(hist), None, load_taxonomy(), datetime.now(UTC))
    assert events[0].deadline is None
