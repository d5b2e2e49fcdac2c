"""``rack ct run``'s command line: what follows ``--`` is the container's command, verbatim."""

from __future__ import annotations

import pytest

from agent.cli.main import parse
from agent.lab.drill import nines


def test_options_after_the_double_dash_belong_to_the_container() -> None:
    args = parse(
        ["ct", "run", "web", "--volume", "v/w/", "--memory", "64", "--", "app", "--volume", "x"]
    )
    assert (args.name, args.volume, args.memory) == ("web", "v/w/", 64)
    assert args.cmd == ["app", "--volume", "x"]
    plain = parse(["ct", "run", "web", "sleep", "10"])
    assert plain.cmd == ["sleep", "10"]


def test_a_command_after_double_dash_elsewhere_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        parse(["status", "--", "x"])
    assert "only 'rack ct run' takes a command after --" in capsys.readouterr().err


def test_downtime_turns_into_nines() -> None:
    assert nines(31.5576) == 6.0  # a millionth of a year
    assert nines(3155.76) == 4.0
    assert nines(0.0) == float("inf")
