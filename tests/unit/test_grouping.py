"""Grouping: ordering, cards, runs, review flags and corrections (pure, no app needed)."""

import random
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from engine.grouping import (
    DEFAULT_CARD_PATTERN,
    Assignment,
    Correction,
    Frame,
    card_code,
    group_batch,
    order_frames,
    settled,
)

START = datetime(2024, 5, 4, 9, 0, 0)
REGISTERED = {"ANNA": "ANNA", "BEN": "BEN", "CARL": "CARL"}
resolve = REGISTERED.get


def shot(photo_id, *qr_texts, camera="CAM-1", at=None, name=None, usable=True):
    """A frame shot `photo_id` seconds into the day unless told otherwise."""
    return Frame(
        photo_id=photo_id,
        filename=name or f"100CANON/IMG_{photo_id:04d}.JPG",
        camera=camera,
        captured_at=START + timedelta(seconds=photo_id) if at is None else at,
        qr_texts=qr_texts,
        usable=usable,
    )


def untimed(photo_id, name, *qr_texts):
    """A frame without EXIF camera or capture time."""
    return Frame(photo_id, name, None, None, qr_texts)


def groups(assignments):
    """{photo_id: (role, group)} — the short view most tests assert on."""
    return {a.photo_id: (a.role, a.group) for a in assignments}


def by_id(assignments):
    return {a.photo_id: a for a in assignments}


def ids(frames):
    return [frame.photo_id for frame in frames]


# --- card pattern -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "code"),
    [("ANNA", "ANNA"), ("INTAKE:P-0012_b", "P-0012_b"), ("  INTAKE:K123\n", "K123"), ("x" * 64, "x" * 64)],
)
def test_card_code_reads_bare_and_prefixed_ids(text, code):
    """The default pattern accepts an optional INTAKE: prefix and strips whitespace."""
    assert card_code(text) == code


@pytest.mark.parametrize(
    "text", ["https://example.org/poster", "WIFI:S:x;T:WPA;P:y;;", "x" * 65, "", "INTAKE:", "ANNA SMITH", "OTHER:ANNA"]
)
def test_card_code_rejects_other_qr_texts(text):
    """URLs, wifi signs, oversized or spaced texts are not cards."""
    assert card_code(text) is None


def test_card_code_with_a_custom_pattern():
    """A custom pattern's first group is the code; without a group the whole text is."""
    assert card_code("EVT/42", r"EVT/(\d+)") == "42"
    assert card_code("42", r"\d+") == "42"
    assert card_code("ANNA", r"\d+") is None
    assert DEFAULT_CARD_PATTERN == r"(?:INTAKE:)?([A-Za-z0-9_-]{1,64})"


# --- order --------------------------------------------------------------------------


def test_order_uses_sub_second_capture_time():
    """Frames of one second are ordered by their microseconds, not by filename."""
    later = shot(1, at=START.replace(microsecond=900_000), name="IMG_0001.JPG")
    earlier = shot(2, at=START.replace(microsecond=100_000), name="IMG_0002.JPG")
    assert ids(order_frames([later, earlier])["CAM-1"]) == [2, 1]


def test_order_breaks_time_ties_by_natural_filename():
    """Same capture time: IMG_2 comes before IMG_10."""
    ten, two = (shot(1, at=START, name="d/IMG_10.JPG"), shot(2, at=START, name="d/IMG_2.JPG"))
    assert ids(order_frames([ten, two])["CAM-1"]) == [2, 1]


def test_order_survives_a_wrapping_file_counter():
    """After IMG_9999 the counter restarts at IMG_0001 in a new folder: capture time wins."""
    before = shot(1, name="100CANON/IMG_9999.JPG", at=START)
    after = shot(2, name="101CANON/IMG_0001.JPG", at=START + timedelta(seconds=1))
    wrapped_same_folder = shot(3, name="101CANON/IMG_0000.JPG", at=START + timedelta(seconds=2))
    assert ids(order_frames([wrapped_same_folder, after, before])["CAM-1"]) == [1, 2, 3]


def test_order_without_capture_time_is_natural_path_folder_first():
    """Untimed frames go by path, folder by folder, numbers compared as numbers."""
    frames = [untimed(1, "101CANON/IMG_0001.JPG"), untimed(2, "100CANON/IMG_10.JPG"), untimed(3, "100CANON/IMG_9.JPG")]
    assert ids(order_frames(frames)[None]) == [3, 2, 1]


def test_times_without_a_camera_are_not_used_for_order():
    """Clocks of unknown devices are not comparable, so the None sequence goes by path."""
    late = Frame(1, "phone/IMG_1.JPG", None, START + timedelta(hours=1))
    early = Frame(2, "phone/IMG_2.JPG", None, START)
    assert ids(order_frames([early, late])[None]) == [1, 2]


def test_frames_without_camera_or_time_form_their_own_sequence():
    """No EXIF camera, or a camera but no time: the None sequence, listed after cameras."""
    no_time = replace(shot(3), captured_at=None)
    sequences = order_frames([untimed(1, "phone/IMG_1.JPG"), shot(2), no_time])
    assert list(sequences) == ["CAM-1", None]
    assert ids(sequences[None]) == [3, 1]  # 100CANON/IMG_0003.JPG < phone/IMG_1.JPG


def test_two_cameras_interleaved_in_time_are_independent_runs():
    """Runs of two cameras shooting at once never mix."""
    frames = [
        shot(1, "ANNA", camera="CAM-1"),
        shot(2, "BEN", camera="CAM-2"),
        shot(3, camera="CAM-1"),
        shot(4, camera="CAM-2"),
    ]
    result = groups(group_batch(frames, resolve=resolve))
    assert result[3] == ("photo", "ANNA")
    assert result[4] == ("photo", "BEN")


def test_no_exif_frames_do_not_continue_a_cameras_run():
    """A photo without EXIF before any no-EXIF card is unassigned, not the camera's person."""
    frames = [shot(1, "ANNA"), shot(2), untimed(3, "phone/IMG_1.JPG")]
    result = by_id(group_batch(frames, resolve=resolve))
    assert result[3].role == "unassigned"
    assert result[3].reason == "before the first card of the photos without camera or capture time"


# --- cards and runs -----------------------------------------------------------------


def test_a_card_starts_a_run_until_the_next_card():
    """Photos after a card belong to its person until the next card."""
    frames = [shot(1, "ANNA"), shot(2), shot(3), shot(4, "INTAKE:BEN"), shot(5)]
    assert groups(group_batch(frames, resolve=resolve)) == {
        1: ("separator", "ANNA"),
        2: ("photo", "ANNA"),
        3: ("photo", "ANNA"),
        4: ("separator", "BEN"),
        5: ("photo", "BEN"),
    }


def test_separators_keep_their_card_people():
    """A card frame is a separator carrying its person and group, without review."""
    [card] = group_batch([shot(1, "ANNA")], resolve=resolve)
    assert card == Assignment(1, "separator", ("ANNA",), "ANNA")


@pytest.mark.parametrize("text", ["https://example.org/poster", "WIFI:S:x;T:WPA;P:y;;", "ANNA" * 20])
def test_other_qr_texts_are_normal_photos(text):
    """A poster, wifi sign or oversized QR text does not start a run."""
    frames = [shot(1, "ANNA"), shot(2, text)]
    assert by_id(group_batch(frames, resolve=resolve))[2] == Assignment(2, "photo", ("ANNA",), "ANNA")


def test_a_registered_code_outside_the_pattern_is_a_card():
    """A QR text that resolve() knows is a card even if the pattern does not match it."""
    frames = [shot(1, "ANNA"), shot(2, "Ben Smith"), shot(3)]
    result = groups(group_batch(frames, resolve={"ANNA": "ANNA", "Ben Smith": "BEN"}.get))
    assert result[2] == ("separator", "BEN")
    assert result[3] == ("photo", "BEN")


def test_a_card_shot_twice_in_a_row_is_one_run():
    """Both card frames are separators of the same group."""
    frames = [shot(1, "ANNA"), shot(2, "ANNA"), shot(3)]
    assert groups(group_batch(frames, resolve=resolve)) == {
        1: ("separator", "ANNA"),
        2: ("separator", "ANNA"),
        3: ("photo", "ANNA"),
    }


def test_a_reshoot_later_in_the_day_resumes_the_same_group():
    """The same card after someone else gives the same group key."""
    frames = [shot(1, "ANNA"), shot(2), shot(3, "BEN"), shot(4), shot(5, "ANNA"), shot(6)]
    result = groups(group_batch(frames, resolve=resolve))
    assert result[2] == result[6] == ("photo", "ANNA")


def test_an_alias_card_joins_its_persons_group():
    """A card with an alias code lands in the person's group."""
    frames = [shot(1, "ANNA"), shot(2), shot(3, "ANNIE"), shot(4)]
    result = by_id(group_batch(frames, resolve={**REGISTERED, "ANNIE": "ANNA"}.get))
    assert result[4] == Assignment(4, "photo", ("ANNA",), "ANNA")


def test_several_cards_in_one_frame_share_the_run():
    """People are all registered codes; the group key is the sorted codes joined by '+'."""
    frames = [shot(1, "INTAKE:CARL", "ANNA"), shot(2)]
    result = by_id(group_batch(frames, resolve=resolve))
    assert result[2] == Assignment(2, "photo", ("ANNA", "CARL"), "ANNA+CARL")


def test_photos_before_the_first_card_are_unassigned():
    """They need review, have no group, and the reason names the camera."""
    frames = [shot(1), shot(2, "ANNA")]
    assert by_id(group_batch(frames, resolve=resolve))[1] == Assignment(
        1, "unassigned", needs_review=True, reason="before the first card of camera CAM-1"
    )


def test_an_unknown_card_starts_its_own_group_for_review():
    """Photos after an unknown code never land on the previous person."""
    frames = [shot(1, "ANNA"), shot(2), shot(3, "K123"), shot(4)]
    result = by_id(group_batch(frames, resolve=resolve))
    assert result[3] == Assignment(3, "separator", (), "K123", True, "unknown code K123")
    assert result[4] == Assignment(4, "photo", (), "K123", True, "unknown code K123")


def test_a_mixed_known_and_unknown_card_keeps_both_codes():
    """The known person is kept, the unknown code is in the key and flagged."""
    [card] = group_batch([shot(1, "ANNA", "K9", "K1")], resolve=resolve)
    assert card == Assignment(1, "separator", ("ANNA",), "ANNA+K1+K9", True, "unknown codes K1, K9")


def test_an_unknown_card_resolves_once_registered():
    """The same input, once resolve() knows the code, needs no review."""
    frames = [shot(1, "K123"), shot(2)]
    result = by_id(group_batch(frames, resolve={"K123": "DORA"}.get))
    assert result[2] == Assignment(2, "photo", ("DORA",), "DORA")


def unreadable(photo_id, **options):
    """A frame the scanner saw a card-like object in, but read no code from."""
    return replace(shot(photo_id, **options), unreadable_card=True)


def test_an_unreadable_card_flags_it_and_the_photos_after_it_until_the_next_card():
    """The frame and its followers are unassigned for review, never the previous person's; a card ends it."""
    frames = [shot(1, "ANNA"), shot(2), unreadable(3), shot(4), shot(5), shot(6, "BEN"), shot(7)]
    result = by_id(group_batch(frames, resolve=resolve))
    after = "after an unreadable card? (100CANON/IMG_0003.JPG)"
    assert result[2] == Assignment(2, "photo", ("ANNA",), "ANNA")
    assert result[3] == Assignment(3, "unassigned", needs_review=True, reason="unreadable card?")
    for photo_id in (4, 5):
        assert result[photo_id] == Assignment(photo_id, "unassigned", needs_review=True, reason=after)
    assert result[7] == Assignment(7, "photo", ("BEN",), "BEN")


def test_an_unreadable_card_only_affects_its_own_camera():
    """Another camera's run continues untouched."""
    frames = [shot(1, "ANNA"), shot(2, "BEN", camera="CAM-2"), unreadable(3), shot(4, camera="CAM-2")]
    result = by_id(group_batch(frames, resolve=resolve))
    assert result[4] == Assignment(4, "photo", ("BEN",), "BEN")
    assert result[3].reason == "unreadable card?"


def test_a_card_correction_on_an_unreadable_card_starts_that_persons_run():
    """Review reads the card by eye: "card" makes it a separator, "not_card" lets the run go on."""
    frames = [shot(1, "ANNA"), unreadable(2), shot(3)]
    as_card = by_id(group_batch(frames, resolve=resolve, corrections=[Correction("card", 2, "BEN")]))
    assert groups(as_card.values()) == {1: ("separator", "ANNA"), 2: ("separator", "BEN"), 3: ("photo", "BEN")}
    not_card = by_id(group_batch(frames, resolve=resolve, corrections=[Correction("not_card", 2)]))
    assert not_card[3] == Assignment(3, "photo", ("ANNA",), "ANNA")
    assert not_card[2] == Assignment(2, "photo", ("ANNA",), "ANNA")


def test_a_readable_card_in_an_unreadable_frame_wins():
    """A sibling's card read in the same frame starts a run: the frame is a separator, not a review case."""
    frames = [shot(1, "ANNA"), replace(shot(2, "BEN"), unreadable_card=True), shot(3)]
    assert groups(group_batch(frames, resolve=resolve))[3] == ("photo", "BEN")


def test_unusable_frames_get_no_assignment_and_are_not_cards():
    """Rejected or duplicate frames are skipped; a duplicate card does not start a run."""
    frames = [shot(1, "ANNA"), shot(2, "BEN", usable=False), shot(3)]
    result = groups(group_batch(frames, resolve=resolve))
    assert result == {1: ("separator", "ANNA"), 3: ("photo", "ANNA")}


# --- while files arrive --------------------------------------------------------------


def test_nothing_waiting_settles_every_frame():
    frames = [shot(1, "ANNA"), shot(2), shot(3)]
    assert settled(frames, []) == frames


def test_a_file_waiting_for_its_scan_holds_back_the_later_files_of_its_folder_only():
    """IMG_0009 waits: IMG_0008 (before it, in natural order) and the other folder's files are settled,
    IMG_0010 is not (the waiting file may be its card)."""
    frames = [
        shot(8, name="100CANON/IMG_0008.JPG"),
        shot(10, name="100CANON/IMG_10.JPG"),
        shot(11, name="101CANON/IMG_0001.JPG"),
    ]
    assert [f.photo_id for f in settled(frames, ["100CANON/IMG_9.JPG", "100CANON/IMG_0012.JPG"])] == [8, 11]


def test_a_card_not_scanned_yet_keeps_the_photos_after_it_from_the_previous_person():
    """BEN's card is stored but not scanned: the photo after it is not grouped (with ANNA) until it is."""
    frames = [shot(1, "ANNA"), shot(2), shot(4)]
    grouped = groups(group_batch(settled(frames, [shot(3).filename]), resolve=resolve))
    assert grouped == {1: ("separator", "ANNA"), 2: ("photo", "ANNA")}


# --- corrections --------------------------------------------------------------------

DAY = [shot(1), shot(2, "ANNA"), shot(3), shot(4), shot(5, "BEN"), shot(6)]


def test_a_card_correction_regroups_the_frames_after_it():
    """Marking a frame as a card moves it and the following photos to that person."""
    result = groups(group_batch(DAY, resolve=resolve, corrections=[Correction("card", 3, "CARL")]))
    assert [result[i] for i in (2, 3, 4, 5)] == [
        ("separator", "ANNA"),
        ("separator", "CARL"),
        ("photo", "CARL"),
        ("separator", "BEN"),
    ]


def test_a_not_card_correction_ignores_the_frames_qr():
    """The frame becomes a photo of the previous run, and so do the photos after it."""
    result = groups(group_batch(DAY, resolve=resolve, corrections=[Correction("not_card", 5)]))
    assert [result[i] for i in (4, 5, 6)] == [("photo", "ANNA")] * 3


def test_an_assign_correction_overrides_one_photo_only():
    """The photo goes to the person with review cleared; its neighbours stay as they were."""
    plain = by_id(group_batch(DAY, resolve=resolve))
    fixed = by_id(group_batch(DAY, resolve=resolve, corrections=[Correction("assign", 1, "CARL")]))
    assert fixed[1] == Assignment(1, "photo", ("CARL",), "CARL")
    assert {i: a for i, a in fixed.items() if i != 1} == {i: a for i, a in plain.items() if i != 1}


def test_an_exclude_correction_only_marks_the_photo():
    """Excluded keeps role, people and group."""
    plain = by_id(group_batch(DAY, resolve=resolve))
    fixed = by_id(group_batch(DAY, resolve=resolve, corrections=[Correction("exclude", 3)]))
    assert fixed[3] == replace(plain[3], excluded=True)
    assert {i: a for i, a in fixed.items() if i != 3} == {i: a for i, a in plain.items() if i != 3}


def test_the_later_correction_wins():
    """A card correction followed by not_card on the same frame leaves it a photo."""
    corrections = [Correction("card", 3, "CARL"), Correction("not_card", 3)]
    assert group_batch(DAY, resolve=resolve, corrections=corrections) == group_batch(DAY, resolve=resolve)


def test_corrections_for_unknown_or_unusable_frames_are_ignored():
    """A correction pointing at no usable frame changes nothing."""
    frames = [*DAY, shot(7, usable=False)]
    corrections = [Correction("exclude", 7), Correction("assign", 99, "ANNA")]
    assert group_batch(frames, resolve=resolve, corrections=corrections) == group_batch(DAY, resolve=resolve)


@pytest.mark.parametrize(("kind", "code"), [("rename", "ANNA"), ("assign", None), ("card", "")])
def test_invalid_corrections_are_refused(kind, code):
    """Unknown kinds, and assign/card without a code, raise ValueError."""
    with pytest.raises(ValueError):
        Correction(kind, 1, code)


def test_rerunning_gives_the_same_output():
    """Grouping is deterministic, corrections included."""
    corrections = [Correction("card", 3, "K5"), Correction("exclude", 6)]
    first = group_batch(DAY, resolve=resolve, corrections=corrections)
    assert group_batch(DAY, resolve=resolve, corrections=corrections) == first


# --- properties ---------------------------------------------------------------------


def random_batch(rng):
    """Two cameras and some untimed files with random cards, QR noise and rejects."""
    texts = [(), (), (), ("ANNA",), ("INTAKE:BEN",), ("K7",), ("https://x.org",), ("ANNA", "CARL")]
    frames = []
    for photo_id in range(1, 60):
        camera = rng.choice(["CAM-1", "CAM-2", None])
        at = START + timedelta(seconds=rng.randint(0, 30), microseconds=rng.randint(0, 2)) if camera else None
        name = f"{rng.choice(['100CANON', '101CANON'])}/IMG_{rng.randint(1, 20)}.JPG"
        frames.append(Frame(photo_id, name, camera, at, rng.choice(texts), usable=rng.random() > 0.1))
    return frames


@pytest.mark.parametrize("seed", range(20))
def test_shuffling_the_input_does_not_change_the_output(seed):
    """Output depends on the frames, never on the order they are given in."""
    rng = random.Random(seed)
    frames = random_batch(rng)
    corrections = [Correction("card", 5, "CARL"), Correction("not_card", 9), Correction("exclude", 11)]
    expected = group_batch(frames, resolve=resolve, corrections=corrections)
    shuffled = rng.sample(frames, len(frames))
    assert group_batch(shuffled, resolve=resolve, corrections=corrections) == expected


@pytest.mark.parametrize("seed", range(20))
def test_every_usable_frame_gets_exactly_one_assignment(seed):
    """No usable frame is lost or doubled, and no unusable one appears."""
    frames = random_batch(random.Random(seed))
    assigned_ids = [a.photo_id for a in group_batch(frames, resolve=resolve)]
    assert sorted(assigned_ids) == sorted(f.photo_id for f in frames if f.usable)


@pytest.mark.parametrize("seed", range(20))
def test_only_card_frames_change_the_group(seed):
    """Within a sequence a photo's group is the previous frame's group; separators start groups."""
    frames = random_batch(random.Random(seed))
    sequence_of = {f.photo_id: (f.camera if f.captured_at else None) for f in frames}
    previous = {}
    for a in group_batch(frames, resolve=resolve):
        if a.role != "separator":
            assert a.group == previous.get(sequence_of[a.photo_id])
        assert (a.role == "unassigned") == (a.group is None)
        previous[sequence_of[a.photo_id]] = a.group
