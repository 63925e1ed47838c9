"""The session's Prefect server keeps its state in PostgreSQL, the production setup."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

pytestmark = pytest.mark.integration


def test_flow_runs_are_stored_in_postgres(prefect_server, prefect_database_url):
    from prefect import flow  # imported once PREFECT_API_URL names the session's server

    @flow(name="defectflow-postgres-probe")
    def probe(x: int) -> int:
        return x + 1

    assert probe(41) == 42
    engine = sa.create_engine(prefect_database_url)
    try:
        with engine.connect() as conn:
            states = conn.execute(sa.text(
                "select fr.state_type from flow_run fr join flow f on f.id = fr.flow_id "
                "where f.name = 'defectflow-postgres-probe'")).scalars().all()
    finally:
        engine.dispose()
    assert states and set(states) == {"COMPLETED"}
