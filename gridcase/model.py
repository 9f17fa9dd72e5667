"""``gridcase model train|evaluate`` (issue 15; docs/classifier.md §2): learn the text classifier
from import files or from a tenant's cases, and measure it.

- ``gridcase model train --data FORMAT:FILE [--data …] --out MODEL [--folds 5]``: read the files
  with the importers (services/intake/importers/formats.py), label = the category code the importer
  assigns; keep one copy of each message (shared/domain/textclass.py ``dedupe``); cross-validate,
  fit, save (shared/platform/textmodel.py). ``--tenant T`` learns from the cases in the database
  instead (``DATABASE_URL``): the stored, masked description and the category now (a correction
  by ``recategorize`` wins over the reported one); unclassified cases are left out.
- ``gridcase model evaluate --model MODEL --data FORMAT:FILE``: the model's figures on the file,
  ``macro_f1=0.NNNN accuracy=0.NNNN n=N`` and the confusion table; ``--cv K`` cross-validates the
  model's configuration on the file instead (the figure of issue 15's "Done when").
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterable
from pathlib import Path

import typer

from shared.domain.textclass import UNCLASSIFIED, dedupe, first_level

model_app = typer.Typer(add_completion=False, help="The text classifier (文本分类): train and evaluate (docs/classifier.md).")


def _echo(line: str) -> None:
    typer.echo(line)
    sys.stdout.flush()


def parse_data(spec: str) -> tuple[str, Path]:
    """``FORMAT:FILE`` -> (format, path)."""
    from services.intake.importers.formats import FORMATS  # noqa: PLC0415

    fmt, sep, file = spec.partition(":")
    if not sep or fmt not in FORMATS or fmt == "csv":
        raise typer.BadParameter(f"{spec!r}: expected FORMAT:FILE with FORMAT one of "
                                 f"{', '.join(f for f in FORMATS if f != 'csv')}", param_hint="--data")
    path = Path(file)
    if not path.is_file():
        raise typer.BadParameter(f"{file}: no such file", param_hint="--data")
    return fmt, path


def read_labelled(specs: Iterable[tuple[str, Path]], *, first: bool = False, tenant: str = "model") -> list[tuple[str, str]]:
    """``(text, label)`` of every readable record of the files (rows the importer rejects and
    records without a category are skipped), one copy per message. ``first``: first-level labels."""
    from services.intake.importers.formats import iter_records  # noqa: PLC0415
    from services.intake.schemas import ReportIn  # noqa: PLC0415

    pairs: list[tuple[str, str]] = []
    for fmt, path in specs:
        with path.open(encoding="utf-8", newline="") as stream:
            for _, record in iter_records(fmt, stream, tenant):
                if not isinstance(record, ReportIn) or not record.description.strip():
                    continue
                label = first_level(record.category_code) if first else record.category_code
                if label != UNCLASSIFIED:
                    pairs.append((record.description, label))
    return dedupe(pairs)


async def _tenant_pairs(tenant: str) -> list[tuple[str, str]]:
    import sqlalchemy as sa  # noqa: PLC0415

    from services.intake import db  # noqa: PLC0415
    from shared.platform.db import make_engine  # noqa: PLC0415
    from shared.platform.settings import ServiceSettings  # noqa: PLC0415

    engine = make_engine(ServiceSettings().database_url)
    r, v = db.reports, db.case_view
    label = sa.case((v.c.category_seq.is_not(None), v.c.category_code), else_=r.c.category_code)
    query = (sa.select(r.c.report["description"].astext, label)
             .select_from(r.outerjoin(v, v.c.case_id == r.c.case_id))
             .where(r.c.tenant == tenant).order_by(r.c.reported_at, r.c.case_id))
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(query)).all()
    finally:
        await engine.dispose()
    return dedupe((text or "", code) for text, code in rows if code and code != UNCLASSIFIED)


def tenant_pairs(tenant: str) -> list[tuple[str, str]]:
    """``(masked description, category now)`` of the tenant's cases (see the module docstring)."""
    return asyncio.run(_tenant_pairs(tenant))


@model_app.command("train")
def train_cmd(
    data: list[str] = typer.Option(None, "--data", help="FORMAT:FILE, repeatable (importer formats)"),
    tenant: str = typer.Option(None, "--tenant", help="learn from this tenant's cases in the database (DATABASE_URL)"),
    out: Path = typer.Option(..., "--out", dir_okay=False, help="where to write the model (joblib)"),
    folds: int = typer.Option(5, "--folds", help="cross-validation folds for the figures kept in the model; 0: none"),
    first: bool = typer.Option(False, "--first-level", help="train on first-level labels (一级/二级/… -> 一级)"),
) -> None:
    """Train the classifier and write it; print its cross-validated figures."""
    from shared.platform import textmodel  # noqa: PLC0415

    if bool(data) == bool(tenant):
        raise typer.BadParameter("give --data FORMAT:FILE (one or more) or --tenant T, not both")
    if data:
        specs = [parse_data(d) for d in data]
        pairs = read_labelled(specs, first=first)
        sources = [f"{fmt}:{path.name}" for fmt, path in specs]
    else:
        pairs = tenant_pairs(tenant)
        sources = [f"tenant:{tenant}"]
    try:
        model = textmodel.train([t for t, _ in pairs], [label for _, label in pairs], sources=sources,
                                folds=folds or None)
    except ValueError as exc:
        _echo(f"cannot train: {exc} ({len(pairs)} labelled texts)")
        raise typer.Exit(1) from None
    model.save(out)
    info = model.info
    cv = (f" cv{info.cv_folds}: macro_f1={info.macro_f1:.4f} accuracy={info.accuracy:.4f}"
          if info.macro_f1 is not None else "")
    _echo(f"model {info.version} n={info.n} labels={len(info.labels)} train_seconds={info.train_seconds}{cv} -> {out}")


@model_app.command("evaluate")
def evaluate_cmd(
    model: Path = typer.Option(..., "--model", exists=True, dir_okay=False),
    data: list[str] = typer.Option(..., "--data", help="FORMAT:FILE, repeatable"),
    cv: int = typer.Option(0, "--cv", help="K>1: cross-validate the model's configuration on the data instead"),
    first: bool = typer.Option(False, "--first-level", help="compare first-level labels"),
) -> None:
    """Print ``macro_f1=… accuracy=… n=…`` and the confusion table of the model on the data."""
    from shared.platform import textmodel  # noqa: PLC0415

    loaded = textmodel.load(model)
    pairs = read_labelled([parse_data(d) for d in data], first=first)
    if not pairs:
        _echo("no labelled records in the data")
        raise typer.Exit(1)
    texts, labels = [t for t, _ in pairs], [label for _, label in pairs]
    if cv > 1:
        result = textmodel.cross_validate(texts, labels, cv)
        _echo(f"cross-validated ({cv} folds) on the data, configuration of model {loaded.version}")
    else:
        predicted = loaded.predict(texts)
        if first:
            predicted = [first_level(p) for p in predicted]
        result = textmodel.figures(labels, predicted)
        _echo(f"model {loaded.version} (trained on n={loaded.info.n}) on the data")
    _echo(result.line())
    _echo(result.table())
    for i, label in enumerate(result.labels):
        _echo(f"  c{i} = {label}")
