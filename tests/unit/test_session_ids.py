from collections import Counter

import pytest

from session_core import session_ids


def test_ids_have_the_documented_shape_and_come_from_the_lists():
    for _ in range(2000):
        sid = session_ids.new_session_id()
        assert session_ids.is_valid_session_id(sid)
        adjective, noun, number = sid.split("-")
        assert adjective in session_ids.ADJECTIVES and noun in session_ids.NOUNS
        assert 100 <= int(number) <= 999
        assert not session_ids.is_blocked(adjective, noun, int(number))


def test_word_lists_are_clean():
    for words in (session_ids.ADJECTIVES, session_ids.NOUNS):
        assert len(words) >= 150
        assert not [w for w, n in Counter(words).items() if n > 1]
        assert all(w.isalpha() and w.islower() and 2 <= len(w) <= 20 for w in words)


def test_id_space_is_large_enough_for_a_million_live_sessions():
    # Ten draws in a row all hitting a live ID must be vanishingly rare.
    assert session_ids.ID_SPACE > 20_000_000
    assert (1_000_000 / session_ids.ID_SPACE) ** 10 < 1e-12


def test_blocked_draws_are_skipped(monkeypatch):
    # Per draw: adjective, noun, number. First a blocked pair, then a blocked number.
    words = iter(["icy", "river", "calm", "river", "calm", "river"])
    numbers = iter([427, 666, 427])
    monkeypatch.setattr(session_ids.secrets, "choice", lambda _: next(words))
    monkeypatch.setattr(session_ids.secrets, "randbelow", lambda _: next(numbers) - session_ids.NUMBER_MIN)
    assert session_ids.new_session_id() == "calm-river-427"


@pytest.mark.parametrize("value", ["golden-eagle-427", "ab-cd-100"])
def test_valid_ids(value):
    assert session_ids.is_valid_session_id(value)


@pytest.mark.parametrize("value", [None, 427, "", "golden-eagle", "Golden-eagle-427", "golden-eagle-4270",
                                   "golden_eagle_427", "golden-eagle-427/../x", "golden-eagle-42a",
                                   "a-eagle-427", "x" * 30 + "-eagle-427", "golden-eagle-427\n"])
def test_invalid_ids(value):
    assert not session_ids.is_valid_session_id(value)
