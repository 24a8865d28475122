"""Property-based run of the ranker's OpenAPI spec (schemathesis, bounded): no input gives a 5xx."""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, seed, settings
from hypothesis.database import DirectoryBasedExampleDatabase
from pydantic import SecretStr
from schemathesis.checks import not_a_server_error
from semrec.settings import redis_settings
from semrec.store import append_history, publish_bundle
from semrec_ranker.core.config import RankerSettings
from serving_helpers import ready_version, running_ranker, tiny_bundle, wait_until

REPO = Path(__file__).resolve().parents[3]
SEED = 20240611
EXAMPLES = DirectoryBasedExampleDatabase(REPO / ".hypothesis" / "schemathesis")


@pytest.fixture
def ranker_url(redis_server):
    client = redis_settings(redis_server.url).client()
    publish_bundle(client, "shop", tiny_bundle(300))
    append_history(client, "shop", "u1", ["i1", "i2"], cap=20)
    ranker = RankerSettings(redis_url=SecretStr(redis_server.url), catalog="shop", admin_token=SecretStr("tok"),
                            history_cap=20, poll_interval_s=5.0)  # fmt: skip
    with running_ranker(ranker) as (base, _):
        assert wait_until(lambda: ready_version(base) == "1")
        yield base


@pytest.mark.slow
def test_no_input_gives_a_server_error(ranker_url):
    schema = schemathesis.openapi.from_url(f"{ranker_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {f"{op.method.upper()} {op.path}" for op in operations} >= {
        "POST /recommend", "POST /events", "GET /items/{item_id}/similar", "GET /readyz", "POST /admin/reload",
    }  # fmt: skip
    for operation in operations:

        # a fixed seed (the same cases every run, whatever the test order) and a saved example database:
        # a failing case is written to .hypothesis/ and replayed first next time
        @seed(SEED)
        @given(case=operation.as_strategy())
        @settings(max_examples=15, deadline=None, database=EXAMPLES, suppress_health_check=list(HealthCheck))
        def run(case):
            case.call_and_validate(checks=[not_a_server_error])

        run()
