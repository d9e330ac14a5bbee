"""Every setting is documented in the README, and the README table is the generated one."""

from pathlib import Path

import pytest

from app.settings import END, START, settings_markdown
from tools.config import SETTINGS, load_settings

README = Path(__file__).resolve().parent.parent / "README.md"


def test_every_setting_is_in_the_readme():
    text = README.read_text()
    missing = [s.name for s in SETTINGS if f"`{s.name}`" not in text]
    assert missing == [], f"undocumented settings: {missing}; run python -m app.settings --write-readme"


def test_readme_settings_table_is_current():
    block = README.read_text().split(START, 1)[1].split(END, 1)[0].strip()
    assert block == settings_markdown().strip()


def test_readme_shows_the_two_commands():
    text = README.read_text()
    assert "make demo" in text and "make test" in text


def test_settings_come_from_env_then_dotenv(tmp_path):
    (tmp_path / ".env").write_text("HOMEPOT_AI_OLLAMA_NUM_CTX=4096\nHOMEPOT_AI_MODEL=offline\n")
    s = load_settings(env={"HOMEPOT_AI_MODEL": "ollama"}, dotenv=tmp_path / ".env")
    assert s.get("HOMEPOT_AI_MODEL") == "ollama"  # the environment wins
    assert s.get("HOMEPOT_AI_OLLAMA_NUM_CTX") == 4096  # typed from the default's type


def test_a_bad_number_is_one_clear_sentence():
    with pytest.raises(ValueError, match="HOMEPOT_AI_SQL_MAX_ROWS must be a whole number"):
        load_settings(env={"HOMEPOT_AI_SQL_MAX_ROWS": "lots"}, dotenv=Path("/nonexistent"))


def test_pinned_clock_is_naive_utc():
    s = load_settings(env={"HOMEPOT_AI_NOW": "2026-03-01T12:00:00+01:00"}, dotenv=Path("/nonexistent"))
    assert s.now().isoformat() == "2026-03-01T11:00:00"
