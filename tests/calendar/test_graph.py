"""The milestone graph's algorithms on plain data, no database: exact dates, each worked out
by hand in the comment beside it.

Calendars used: December 2026 has Thursday the 17th, Monday the 21st, Friday the 25th
(Christmas, a US and DE holiday) and Friday 1 January 2027 (New Year, a holiday); March 2027
starts on a Monday and has no US holiday, while in DE Friday the 26th is followed by Easter
Monday the 29th (a holiday)."""
import doctest
from datetime import date

import pytest

from services.calendar.graph import (
    Link,
    MilestoneGraph,
    MilestoneNode,
    Move,
    PinnedMilestoneInTheWay,
    anchors,
    cascade,
    earliest,
    find_cycle,
    lay_out,
    required_date,
    reviews,
    schedule,
    slack_days,
    templates,
    violations,
    window_days,
)


def chain(market: str = "US", **pinned: bool) -> MilestoneGraph:
    """kickoff → creative (lag 2) → launch (lag 1), on Thu 17, Mon 21 and Tue 22 Dec 2026."""
    return MilestoneGraph.of(market, [
        MilestoneNode("k", "Kickoff", date(2026, 12, 17), pinned.get("k", False)),
        MilestoneNode("c", "Creative", date(2026, 12, 21), pinned.get("c", False)),
        MilestoneNode("l", "Launch", date(2026, 12, 22), pinned.get("l", False)),
    ], [Link("k", "c", 2), Link("c", "l", 1)])


def test_required_date_counts_working_days_after_the_predecessor():
    graph = chain()
    # Thu 17 + 2 working days: Fri 18, Mon 21.
    assert required_date(graph, Link("k", "c", 2)) == date(2026, 12, 21)
    # Tue 22 + 3: Wed 23, Thu 24, (Fri 25 Christmas, weekend) Mon 28.
    assert required_date(graph, Link("l", "x", 3)) == date(2026, 12, 28)
    # A lag of 0 allows the same day.
    assert required_date(graph, Link("k", "c", 0)) == date(2026, 12, 17)


def test_earliest_is_set_by_the_latest_predecessor_and_slack_is_what_is_left():
    graph = chain().with_milestone(MilestoneNode("t", "Test", date(2026, 12, 15))) \
        .with_link(Link("t", "c", 5))
    requirement = earliest(graph, "c")
    # From k: Thu 17 + 2 = Mon 21; from t: Tue 15 + 5 = Wed 16, Thu 17, Fri 18, Mon 21, Tue 22.
    assert (requirement.earliest, requirement.link) == (date(2026, 12, 22), Link("t", "c", 5))
    assert requirement.predecessor.name == "Test"
    assert slack_days(graph, "c") == -1          # due Mon 21, one day before Tue 22
    assert slack_days(chain(), "c") == 0          # due Mon 21, allowed Mon 21
    assert slack_days(chain(), "k") is None       # depends on nothing
    assert earliest(chain(), "k") is None


def test_on_a_tie_the_smallest_predecessor_id_sets_the_requirement():
    graph = MilestoneGraph.of("US", [MilestoneNode("b", "B", date(2027, 3, 1)),
                                     MilestoneNode("a", "A", date(2027, 3, 2)),
                                     MilestoneNode("s", "S", date(2027, 3, 3))],
                              [Link("b", "s", 1), Link("a", "s", 0)])
    # Mon 1 + 1 = Tue 2 and Tue 2 + 0 = Tue 2: a tie, "a" < "b".
    requirement = earliest(graph, "s")
    assert (requirement.earliest, requirement.link.predecessor_id) == (date(2027, 3, 2), "a")


def test_a_move_pushes_dependents_across_weekends_and_holidays():
    graph = chain()
    # creative: Tue 22 + 2 = Thu 24; launch: Thu 24 + 1 = (Fri 25, weekend) Mon 28.
    assert cascade(graph, "k", date(2026, 12, 22)) == (
        Move("k", date(2026, 12, 17), date(2026, 12, 22)),
        Move("c", date(2026, 12, 21), date(2026, 12, 24)),
        Move("l", date(2026, 12, 22), date(2026, 12, 28)))
    assert graph.milestones["c"].due_date == date(2026, 12, 21)   # the input is untouched


def test_moving_earlier_or_nowhere_leaves_dependents_where_they_are():
    assert cascade(chain(), "k", date(2026, 12, 10)) == (
        Move("k", date(2026, 12, 17), date(2026, 12, 10)),)
    assert cascade(chain(), "k", date(2026, 12, 17)) == ()


def test_slack_absorbs_part_of_a_slip():
    graph = chain().with_milestone(MilestoneNode("l", "Launch", date(2026, 12, 30)))
    # creative: Fri 18 + 2 = Tue 22 (it was Mon 21); launch needs Tue 22 + 1 = Wed 23, is Wed 30.
    assert cascade(graph, "k", date(2026, 12, 18)) == (
        Move("k", date(2026, 12, 17), date(2026, 12, 18)),
        Move("c", date(2026, 12, 21), date(2026, 12, 22)))


def test_a_pinned_dependent_in_the_way_refuses_the_cascade_naming_why():
    with pytest.raises(PinnedMilestoneInTheWay) as refused:
        cascade(chain(l=True), "k", date(2026, 12, 22))
    # The launch must follow the creative, now Thu 24, by 1 working day: Mon 28.
    assert refused.value.milestone.id == "l"
    requirement = refused.value.requirement
    assert (requirement.earliest, requirement.link) == (date(2026, 12, 28), Link("c", "l", 1))
    assert (requirement.predecessor.id, requirement.predecessor.due_date) == \
        ("c", date(2026, 12, 24))
    # A slip the pinned launch can absorb: creative Fri 18 + 2 = Tue 22, launch Tue 22 + 1 = Wed 23.
    assert [m.milestone_id for m in cascade(chain(l=True), "k", date(2026, 12, 16))] == ["k"]


def test_a_milestone_reached_twice_is_listed_once_with_its_final_date():
    # a → b → d (lags 1, 5) and a → c → e → d (lags 1, 1, 5), March 2027 (Mon 1 to Mon 15).
    graph = MilestoneGraph.of("US", [
        MilestoneNode("a", "A", date(2027, 3, 1)), MilestoneNode("b", "B", date(2027, 3, 2)),
        MilestoneNode("c", "C", date(2027, 3, 2)), MilestoneNode("e", "E", date(2027, 3, 3)),
        MilestoneNode("d", "D", date(2027, 3, 10)),
    ], [Link("a", "b", 1), Link("a", "c", 1), Link("b", "d", 5), Link("c", "e", 1),
        Link("e", "d", 5)])
    assert violations(graph) == ()
    # a to Thu 4: b and c to Fri 5. From b, d needs Fri 5 + 5 = Fri 12 (e still Wed 3 + 5 =
    # Wed 10); then e needs Fri 5 + 1 = Mon 8, and d Mon 8 + 5 = Mon 15. d moved twice,
    # 10 → 12 → 15: one entry, in its first place.
    assert cascade(graph, "a", date(2027, 3, 4)) == (
        Move("a", date(2027, 3, 1), date(2027, 3, 4)),
        Move("b", date(2027, 3, 2), date(2027, 3, 5)),
        Move("c", date(2027, 3, 2), date(2027, 3, 5)),
        Move("d", date(2027, 3, 10), date(2027, 3, 15)),
        Move("e", date(2027, 3, 3), date(2027, 3, 8)))


def test_a_cycle_is_named_along_the_existing_links():
    graph = chain()
    # Launch → Kickoff would close Kickoff → Creative → Launch.
    assert find_cycle(graph, "l", "k") == ("k", "c", "l")
    assert find_cycle(graph, "k", "l") is None          # a shortcut, not a cycle
    # The shortest path is named: with the shortcut k → l, it is k → l.
    assert find_cycle(graph.with_link(Link("k", "l", 0)), "l", "k") == ("k", "l")


def test_with_link_replaces_the_lag_of_an_existing_link():
    graph = chain().with_link(Link("k", "c", 4))
    assert graph.incoming("c") == [Link("k", "c", 4)]
    # Thu 17 + 4: Fri 18, Mon 21, Tue 22, Wed 23.
    assert earliest(graph, "c").earliest == date(2026, 12, 23)


def test_violations_follow_the_market():
    milestones = [MilestoneNode("f", "First", date(2027, 3, 26)),
                  MilestoneNode("s", "Second", date(2027, 3, 29))]
    links = [Link("f", "s", 1)]
    # US: Fri 26 + 1 = Mon 29, kept. DE: Mon 29 is Easter Monday, so Tue 30: broken.
    assert violations(MilestoneGraph.of("US", milestones, links)) == ()
    broken, = violations(MilestoneGraph.of("DE", milestones, links))
    assert (broken.link, broken.required) == (links[0], date(2027, 3, 30))


@pytest.mark.parametrize("hours, days", [(1, 1), (24, 1), (25, 2), (48, 2), (49, 3)])
def test_a_window_covers_whole_days_rounded_up(hours, days):
    assert window_days(hours) == days


def test_the_standard_template_lays_milestones_back_from_launch():
    # The same answer as the HTTP test of the template (test_campaigns.py), without a database:
    # launch Mon 4 Jan 2027; 3 working days back over New Year is Tue 29 Dec, 2 more over
    # Christmas Thu 24 Dec, 3 more Mon 21, 2 more Thu 17, 10 more Thu 3 Dec.
    layout = lay_out("standard", date(2027, 1, 4), "US")
    assert [(m.kind, m.due_date.isoformat(), m.lag_days, m.window_hours)
            for m in layout.milestones] == [
        ("kickoff", "2026-12-03", 0, None), ("creative_final", "2026-12-17", 10, None),
        ("review_gate", "2026-12-21", 2, None), ("channel_test", "2026-12-24", 3, None),
        ("review_gate", "2026-12-29", 2, None), ("launch", "2027-01-04", 3, None),
        ("contingency", "2027-01-04", 0, 48)]
    # Phases: 7 days of warm-up before the launch, then 14, 21 and 7 days.
    assert [(p.kind, p.start_date.isoformat(), p.end_date.isoformat()) for p in layout.phases] == [
        ("warmup", "2026-12-28", "2027-01-03"), ("burst", "2027-01-04", "2027-01-17"),
        ("sustain", "2027-01-18", "2027-02-07"), ("wrapup", "2027-02-08", "2027-02-14")]
    assert (layout.start_date, layout.end_date) == (date(2026, 12, 3), date(2027, 2, 14))


@pytest.mark.parametrize("module", [anchors, reviews, schedule, templates])
def test_the_documented_examples_hold(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
