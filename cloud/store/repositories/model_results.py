"""What the cloud's hosted models said about a window (keyed by window, model and version, so a
result is stored once however often it is computed)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, or_, select

from cloud.store.checks import canonical_uuid
from cloud.store.database import Database
from cloud.store.records import ModelResult, StoredAlert
from cloud.store.schema import AlertRow, ModelResultRow, WindowRow


def model_result(r: ModelResultRow) -> ModelResult:
    return ModelResult(id=r.id, window_id=r.window_id, alert_id=r.alert_id, patient_id=r.patient_id, model=r.model,
                       version=r.version, outputs=dict(r.outputs), created_us=r.created_us)


class ModelResultRepository:
    """Model results (``store.results``)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def store_model_result(self, window_id: str, model: str, version: str, outputs: Mapping[str, Any], *,
                                 patient_id: str, alert_id: str | None = None) -> bool:
        """Store what ``model`` ``version`` said about a window; False if that model version's result
        for the window is already stored (unchanged)."""
        stmt = self.db.insert(ModelResultRow).values(
            window_id=canonical_uuid(window_id, "window_id"),
            alert_id=None if alert_id is None else canonical_uuid(alert_id, "alert_id"),
            patient_id=patient_id, model=model, version=version, outputs=dict(outputs), created_us=self.db.clock(),
        ).on_conflict_do_nothing(index_elements=["window_id", "model", "version"]).returning(ModelResultRow.id)
        async with self.db.sessions.begin() as s:
            return (await s.execute(stmt)).first() is not None

    async def results_for_window(self, window_id: str) -> list[ModelResult]:
        q = (select(ModelResultRow).where(ModelResultRow.window_id == canonical_uuid(window_id, "window_id"))
             .order_by(ModelResultRow.id))
        async with self.db.sessions() as s:
            return [model_result(r) for r in (await s.scalars(q)).all()]

    async def results_for_alert(self, alert_id: str) -> list[ModelResult]:
        """Results run for this alert, or for the window it points at."""
        aid = canonical_uuid(alert_id, "alert_id")
        window = select(AlertRow.window_id).where(AlertRow.alert_id == aid).scalar_subquery()
        q = (select(ModelResultRow).where(or_(ModelResultRow.alert_id == aid, ModelResultRow.window_id == window))
             .order_by(ModelResultRow.id))
        async with self.db.sessions() as s:
            return [model_result(r) for r in (await s.scalars(q)).all()]

    async def results_for_alerts(self, alerts: Sequence[StoredAlert]) -> dict[str, list[ModelResult]]:
        """:meth:`results_for_alert` of many alerts in one query: ``{alert_id: [results]}``."""
        alert_ids = sorted({canonical_uuid(a.alert.alert_id, "alert_id") for a in alerts})
        window_ids = sorted({canonical_uuid(a.alert.window_id, "window_id") for a in alerts if a.alert.window_id})
        if not alert_ids:
            return {}
        cond: ColumnElement[bool] = ModelResultRow.alert_id.in_(alert_ids)
        if window_ids:
            cond = or_(cond, ModelResultRow.window_id.in_(window_ids))
        async with self.db.sessions() as s:
            rows = [model_result(r) for r in (await s.scalars(select(ModelResultRow).where(cond)
                                                              .order_by(ModelResultRow.id))).all()]
        out: dict[str, list[ModelResult]] = {}
        for a in alerts:
            aid = str(uuid.UUID(a.alert.alert_id))
            wid = str(uuid.UUID(a.alert.window_id)) if a.alert.window_id else None
            out[aid] = [r for r in rows if r.alert_id == aid or (wid is not None and r.window_id == wid)]
        return out

    async def results_for_patient(self, patient_id: str, model: str, since_us: int | None = None,
                                  until_us: int | None = None, *, limit: int = 10_000
                                  ) -> list[tuple[int, ModelResult]]:
        """``model``'s results on a patient's windows with ``since_us <= t0_us < until_us``, as
        ``(window t0_us, result)`` in time order (a trend: the patient timeline's stress estimate)."""
        q = (select(WindowRow.t0_us, ModelResultRow).join(WindowRow, WindowRow.window_id == ModelResultRow.window_id)
             .where(ModelResultRow.patient_id == patient_id, ModelResultRow.model == model))
        if since_us is not None:
            q = q.where(WindowRow.t0_us >= since_us)
        if until_us is not None:
            q = q.where(WindowRow.t0_us < until_us)
        q = q.order_by(WindowRow.t0_us, ModelResultRow.id).limit(limit)
        async with self.db.sessions() as s:
            return [(int(t0), model_result(r)) for t0, r in (await s.execute(q)).all()]


__all__ = ["ModelResultRepository", "model_result"]
