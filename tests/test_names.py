"""Object names: any UTF-8 key of 1-1024 bytes without NUL; pool paths POOL/NAME."""

from __future__ import annotations

import pytest

from agent.names import BadName, check_object_name, split_object_path


@pytest.mark.parametrize(
    "name", ["a", "dir/sub/file.txt", "ünï cødé ☃", "a b.c", "../../etc/passwd", "x" * 1024]
)
def test_any_utf8_key_is_an_object_name(name: str) -> None:
    assert check_object_name(name) == name


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("", "1 to 1024 bytes"),
        ("x" * 1025, "not 1025 bytes"),
        ("é" * 513, "not 1026 bytes"),
        ("a\0b", "NUL"),
        ("\udcff", "UTF-8"),
    ],
)
def test_bad_object_names_are_refused_in_plain_words(name: str, words: str) -> None:
    with pytest.raises(BadName, match=words):
        check_object_name(name)


def test_an_object_path_splits_at_the_first_slash() -> None:
    assert split_object_path("pool/a/b/c") == ("pool", "a/b/c")
    with pytest.raises(BadName, match="POOL/NAME"):
        split_object_path("justapool")
    with pytest.raises(BadName, match="pool name"):
        split_object_path("Bad_Pool/x")
    with pytest.raises(BadName, match="1 to 1024"):
        split_object_path("pool/")
