"""``envoi profiles import`` and ``envoi profiles count`` as a user runs them: what they print, their exit codes,
and clear refusals (no file, a directory, the wrong encoding, an unusable header)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner, Result

from envoi.campaigns.models import Profile
from envoi.cli.profiles import profiles_app
from envoi.runtime import Runtime
from envoi.settings import Settings

CSV = (
    "\ufeffemail,first_name,lastName,externalId,plan\n"
    'ada@example.com,Ada,"Lovelace, Countess",C-1,pro\n'
    "oops@,Bad,,,\n"
    "Zoë@Example.com,Zoë,Ørsted,,free\n"
)


@pytest.fixture
def envoi(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> CliRunnerFor:
    # In-process, the command would point the process's logs at CliRunner's stream, closed once it returns:
    # every later test that logs would fail. Logging is not what these tests are about.
    monkeypatch.setattr("envoi.cli.common.configure_logging", lambda *args, **kwargs: None)
    return CliRunnerFor(settings)


class CliRunnerFor:
    """Runs the profiles commands against the test's database, as a wide terminal would show them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.env = {
            "ENVOI_DATABASE_URL": settings.database_url,
            "ENVOI_DATA_DIR": str(settings.data_dir),
            "COLUMNS": "200",
        }

    def __call__(self, *args: str) -> Result:
        return CliRunner().invoke(profiles_app, list(args), env=self.env)

    def profiles(self) -> dict[str, Profile]:
        async def load() -> dict[str, Profile]:
            runtime = Runtime.create(self.settings)
            try:
                async with runtime.transaction() as session:
                    return {str(p.email): p for p in (await session.scalars(select(Profile))).all()}
            finally:
                await runtime.aclose()

        return asyncio.run(load())


def test_import_prints_what_it_created_and_the_lines_it_skipped(envoi: CliRunnerFor, tmp_path: Path) -> None:
    file = tmp_path / "people.csv"
    file.write_text(CSV, encoding="utf-8")

    first = envoi("import", str(file))
    assert first.exit_code == 0, first.output
    assert "Created 2, updated 0, unchanged 0, skipped 1." in first.output
    skipped_line = next(line for line in first.output.splitlines() if "oops@" in line)
    assert skipped_line.split()[:3] == ["│", "3", "│"] and "email" in skipped_line
    found = envoi.profiles()
    assert set(found) == {"ada@example.com", "zoë@example.com"}
    assert (found["ada@example.com"].last_name, found["ada@example.com"].external_id) == ("Lovelace, Countess", "C-1")
    assert found["zoë@example.com"].attributes == {"plan": "free"}

    file.write_text(CSV + "ada@example.com,Ada,,,team\n", encoding="utf-8")
    second = envoi("import", str(file))
    assert second.exit_code == 0, second.output
    assert "Created 0, updated 1, unchanged 2, skipped 1." in second.output  # only the new line changes Ada
    assert envoi.profiles()["ada@example.com"].attributes == {"plan": "team"}


def test_import_reads_other_delimiters_and_encodings(envoi: CliRunnerFor, tmp_path: Path) -> None:
    file = tmp_path / "export.csv"
    file.write_bytes("email;first_name\nzoe@example.com;Zoë\n".encode("latin-1"))

    wrong = envoi("import", str(file), "--delimiter", ";")
    assert wrong.exit_code == 1
    assert f"{file} is not utf-8 text: try --encoding latin-1" in wrong.output and "Traceback" not in wrong.output

    right = envoi("import", str(file), "--delimiter", ";", "--encoding", "latin-1")
    assert right.exit_code == 0, right.output
    assert "Created 1," in right.output
    assert envoi.profiles()["zoe@example.com"].first_name == "Zoë"


def test_import_refuses_what_it_cannot_read(envoi: CliRunnerFor, tmp_path: Path) -> None:
    missing = envoi("import", str(tmp_path / "nope.csv"))
    assert (missing.exit_code, missing.output.strip()) == (1, f"No file at {tmp_path / 'nope.csv'}.")

    folder = envoi("import", str(tmp_path))
    assert folder.exit_code == 1 and "is a directory" in folder.output

    headless = tmp_path / "names.csv"
    headless.write_text("first_name\nAda\n")
    unusable = envoi("import", str(headless))
    assert unusable.exit_code == 1
    assert f"{headless}: the header needs an email or an external_id column" in unusable.output

    assert envoi("import", str(headless), "--encoding", "klingon").exit_code == 1
    assert envoi("import", str(headless), "--delimiter", ";;").exit_code == 1
    assert envoi.profiles() == {}


def test_count_says_how_many_a_marketing_email_reaches(envoi: CliRunnerFor, tmp_path: Path) -> None:
    file = tmp_path / "people.csv"
    file.write_text("email,external_id,subscribed\na@example.com,,\nb@example.com,,no\n,C-3,\n")
    assert envoi("import", str(file)).exit_code == 0

    counted = envoi("count")
    assert counted.exit_code == 0, counted.output
    assert "3 profiles, 2 subscribed, 1 reachable by a marketing email" in counted.output
    unknown = envoi("count", "--audience", "nobody")
    assert unknown.exit_code == 1 and "no audience is named 'nobody'" in unknown.output
