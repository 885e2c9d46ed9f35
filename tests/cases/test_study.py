"""The case scaffold: flags generated from Settings dataclasses, presets, one output place."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Literal

import pytest
import xarray as xr

from cases import CASES, load_case
from cases.study import (
    Output,
    case_parser,
    make_settings,
    prepare_output_directory,
    run_case,
    settings_from_arguments,
)


class ToyCase:
    """A minimal case module, as a namespace."""

    DESCRIPTION = "toy case"

    @dataclass(frozen=True)
    class Settings:
        members: int = field(default=10, metadata={"help": "ensemble size"})
        scheme: Literal["rk2", "rk4"] = field(default="rk4", metadata={"help": "time scheme"})
        window: tuple[int, int] = field(default=(1, 5), metadata={"help": "steps"})
        verbose: bool = field(default=False, metadata={"help": "talk"})

        @classmethod
        def quick(cls):
            """Small and fast."""
            return cls(members=2)

        def validate(self):
            if self.members < 2:
                raise ValueError(f"--members: expected at least 2, got {self.members}")

    @staticmethod
    def run(settings, output):
        with output.step("work"):
            output.write_dataset(xr.Dataset({"a": ("x", [1.0, 2.0])}), "toy.nc")
        return {"members_used": settings.members}


def parse(*argv):
    return settings_from_arguments(ToyCase, case_parser("toy", ToyCase).parse_args(list(argv)))


def test_flags_are_generated_from_the_settings_fields():
    assert parse() == ToyCase.Settings()
    assert parse("--quick") == ToyCase.Settings(members=2)
    assert parse("--quick", "--members", "7") == ToyCase.Settings(members=7)
    settings = parse("--scheme", "rk2", "--window", "2", "9", "--verbose")
    assert settings == ToyCase.Settings(scheme="rk2", window=(2, 9), verbose=True)
    assert isinstance(settings.window, tuple)


@pytest.mark.parametrize(
    "argv",
    [["--paper"], ["--dtype", "float32"], ["--scheme", "rk3"], ["--members", "2.5"]],
)
def test_a_flag_the_case_does_not_have_is_an_error(argv, capsys):
    with pytest.raises(SystemExit) as info:
        case_parser("toy", ToyCase).parse_args(argv)
    assert info.value.code == 2
    assert "pkfnet run toy" in capsys.readouterr().err


def test_invalid_settings_are_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match="--members: expected at least 2, got 1"):
        parse("--members", "1")
    with pytest.raises(ValueError, match="no --paper setting for this case"):
        make_settings(ToyCase, "paper")
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['colour'\]"):
        make_settings(ToyCase, None, colour="red")
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ValueError, match="cannot create output directory .*Not a directory"):
        prepare_output_directory(blocker / "out")
    assert prepare_output_directory(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"


def test_run_case_writes_the_summary_with_settings_timings_and_files(tmp_path):
    output = Output(tmp_path / "toy", quiet=True)
    summary = run_case("toy", ToyCase, parse("--quick"), output)
    written = json.loads((tmp_path / "toy" / "summary.json").read_text())
    assert written == summary
    assert written["settings"] == {
        "members": 2,
        "scheme": "rk4",
        "window": [1, 5],
        "verbose": False,
    }
    assert written["members_used"] == 2
    assert set(written["seconds"]) == {"work", "total"}
    assert written["files"] == [str(tmp_path / "toy" / "toy.nc")]
    with xr.open_dataset(tmp_path / "toy" / "toy.nc") as ds:
        assert ds["a"].encoding["zlib"]


@pytest.mark.parametrize("name", list(CASES))
def test_every_registered_case_follows_the_scaffold(name):
    case = load_case(name)
    assert isinstance(case.DESCRIPTION, str) and case.DESCRIPTION
    parser = case_parser(name, case)
    default = settings_from_arguments(case, parser.parse_args([]))
    assert default == make_settings(case)
    if hasattr(case.Settings, "quick"):
        assert settings_from_arguments(case, parser.parse_args(["--quick"])) == (
            case.Settings.quick()
        )
    assert "--out" in parser.format_help()
