"""Password rules, change and reset in the domain, and the session version they raise."""
from __future__ import annotations

import pytest

from pointsapp.domain import people
from pointsapp.domain.errors import Forbidden, InvalidInput, NotFound
from pointsapp.extensions import db
from pointsapp.models import User
from tests.factories import PASSWORD, person


def test_the_common_password_list_ships_with_the_app():
    common = people.common_passwords()
    assert len(common) > 19_000
    assert {"password", "123456", "qwertyuiop", "1q2w3e4r5t"} <= common


@pytest.mark.parametrize(
    "password, why",
    [
        ("short-pw1", "at least 10"),
        ("x" * 257, "at most 256"),
        ("1234567890", "most common"),
        ("Password123", "most common"),  # the list is compared without case
        ("aaaaaaaaaaaa", "most common"),
        ("abababababab", "most common"),
        ("my-vol_a-password", "username"),
    ],
)
def test_weak_passwords_are_refused_with_the_reason(app, password, why):
    with pytest.raises(InvalidInput) as exc:
        people.check_password_strength(password, "vol_a")
    assert why in exc.value.message
    assert exc.value.field == "password"


@pytest.mark.parametrize("password", ["correct-horse-1", "楼长的密码又长又好记呀", "youyi-demo", "a" * 9 + "b" + "c"])
def test_long_uncommon_passwords_of_any_characters_are_accepted(app, password):
    people.check_password_strength(password, "vol_a")


def test_changing_ones_password_needs_the_current_one_and_ends_every_session(street):
    user = street.vol_a
    version = user.session_version
    with pytest.raises(InvalidInput):
        people.change_password(user, "not-my-password", "a-quiet-garden-7")
    db.session.rollback()
    people.change_password(user, PASSWORD, "a-quiet-garden-7")
    db.session.commit()
    user = db.session.get(User, street.vol_a.id)
    assert user.session_version == version + 1
    assert user.password_changed_at is not None and not user.must_change_password
    assert people.authenticate("vol_a", "a-quiet-garden-7") is not None


def test_a_reset_gives_a_random_temporary_password_that_must_be_changed(street):
    user, first = people.reset_password(street.admin_a, street.vol_a.id)
    db.session.commit()
    _, second = people.reset_password(street.admin_a, street.vol_a.id)
    db.session.commit()
    assert first != second and len(second) == 14
    user = db.session.get(User, street.vol_a.id)
    assert user.must_change_password and user.session_version == 2
    assert people.authenticate("vol_a", second) is not None
    assert people.authenticate("vol_a", first) is None


def test_only_an_admin_over_the_person_and_all_their_roles_may_reset(street):
    with pytest.raises(NotFound):
        people.reset_password(street.admin_a, street.vol_b.id)  # another community
    db.session.rollback()
    with pytest.raises(NotFound):
        people.reset_password(street.admin_a, street.street_admin.id)  # above their subtree
    db.session.rollback()
    boss = person("boss", street.community_a, roles=("street_admin",))
    db.session.commit()
    with pytest.raises(Forbidden):
        people.reset_password(street.admin_a, boss.id)  # in their subtree, but a role above theirs
    db.session.rollback()
    with pytest.raises(InvalidInput):
        people.reset_password(street.admin_a, street.admin_a.id)  # one's own: the change page
    db.session.rollback()
    with pytest.raises(NotFound):
        people.reset_password(street.staff_a, street.vol_a.id)  # not an admin at all
    db.session.rollback()
    assert not db.session.get(User, street.vol_b.id).must_change_password


def test_deactivation_ends_the_persons_sessions(street):
    people.set_active(street.admin_a, street.vol_a.id, False)
    db.session.commit()
    assert db.session.get(User, street.vol_a.id).session_version == 1


def test_temporary_passwords_and_activation_codes_are_groups_of_the_whole_alphabet():
    import re
    from collections import Counter

    shapes = {3: r"(?:[a-z2-9]{4}-){2}[a-z2-9]{4}", 4: r"(?:[a-z2-9]{4}-){3}[a-z2-9]{4}"}
    drawn = {3: [people.generate_temporary_password() for _ in range(2000)],
             4: [people._random_groups(4) for _ in range(2000)]}
    for groups, codes in drawn.items():
        assert all(re.fullmatch(shapes[groups], c) for c in codes)
        assert len(set(codes)) == len(codes)  # 59 and 79 bits: no repeat in 2,000 draws
        for position in range(5 * groups - 1):
            if position % 5 == 4:
                continue
            seen = Counter(c[position] for c in codes)
            # Every character can come at every position; none is favoured (each is expected
            # 2000 / 31 ≈ 65 times; a character seen 130 times would be a bias, not chance).
            assert set(seen) <= set(people.TEMP_PASSWORD_ALPHABET) and len(seen) >= 28
            assert max(seen.values()) < 130
