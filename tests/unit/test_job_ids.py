"""Job ids drawn for a batch are random UUIDs (version 4) as hex, like a single submit's."""

from __future__ import annotations

import uuid

from jobengine.jobdata import JOB_ID_PATTERN, new_job_id, new_job_ids


def test_batch_ids_are_distinct_version_4_uuids_in_hex() -> None:
    ids = new_job_ids(2000)
    assert len(set(ids)) == 2000
    for job_id in ids:
        parsed = uuid.UUID(job_id)
        assert parsed.hex == job_id and parsed.version == 4 and parsed.variant == uuid.RFC_4122
        assert JOB_ID_PATTERN.match(job_id)
    assert len(new_job_id()) == len(ids[0]) and new_job_ids(0) == []
