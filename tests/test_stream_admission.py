"""StreamAdmission: how many live streams a node takes, from its measured cost of a stream or the operator's figure."""

from __future__ import annotations

import pytest

from scribe.streaming.admission import UNMEASURED_PER_WORKER, StreamAdmission


def test_before_any_measurement_a_few_streams_per_worker():
    admission = StreamAdmission(workers=2)
    assert admission.capacity == 2 * UNMEASURED_PER_WORKER
    assert all(admission.admit(resuming=False) for _ in range(admission.capacity))
    assert not admission.admit(resuming=False)
    assert admission.state().refused == 1 and admission.state().live == admission.capacity


def test_capacity_is_what_the_workers_can_serve_at_capacity_with_room_to_spare():
    admission = StreamAdmission(workers=2)
    admission.observe_pass(2.0, 10.0, final=True)  # a final costs 0.2 s of a worker per second of audio
    assert admission.capacity == 4  # partials under load not measured yet: taken to cost as much; 2 x 0.8 / 0.4
    admission.observe_pass(0.5, 5.0, final=False)  # they cost 0.1 s a second
    assert admission.capacity == 5  # 2 x 0.8 / 0.3
    for _ in range(20):  # the machine got slower (other load): the estimate follows, smoothed
        admission.observe_pass(4.0, 10.0, final=True)
    assert admission.capacity == 3 and admission.state().final_rtf == pytest.approx(0.4, abs=0.01)
    assert admission.state().loaded_partial_rtf == pytest.approx(0.1)


def test_short_or_empty_passes_do_not_count():
    admission = StreamAdmission(workers=1)
    admission.observe_pass(0.5, 0.6, final=True)  # mostly fixed cost: would understate the capacity
    admission.observe_pass(0.0, 5.0, final=True)
    admission.observe_pass(0.3, 0.5, final=False)
    assert admission.state().final_rtf is None and admission.state().loaded_partial_rtf is None


def test_a_resume_is_never_refused_and_release_frees_a_place():
    admission = StreamAdmission(workers=1, capacity=1)
    assert admission.admit(resuming=False)
    assert not admission.admit(resuming=False)
    assert admission.admit(resuming=True)  # above capacity: a clinician mid-recording is not cut off
    admission.release()
    admission.release()
    assert admission.admit(resuming=False)
    state = admission.state()
    assert (state.live, state.capacity, state.configured, state.refused) == (1, 1, True, 1)


def test_a_configured_capacity_wins_over_measurement():
    admission = StreamAdmission(workers=2, capacity=3)
    admission.observe_pass(0.1, 10.0, final=True)
    assert admission.capacity == 3
