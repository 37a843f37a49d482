"""Settings as users give them: a misspelt one is named with the closest setting, never silently ignored."""

from __future__ import annotations

from tikpay_source.config import configured_names, unknown_settings


def test_a_misspelt_setting_is_named_with_the_closest_one() -> None:
    assert unknown_settings(["report_type", "window", "start_time"]) == [
        "[sources.tikpay] report_type is not a setting and is ignored; did you mean report_types?"
    ]
    (line,) = unknown_settings(["colour"])
    assert line.startswith(
        "[sources.tikpay] colour is not a setting and is ignored; the settings are client_id, "
    )


def test_names_come_from_the_environment_and_the_toml_section_not_from_other_sections() -> None:
    environ = {"SOURCES__TIKPAY__REPORT_TYPE": "TRIPS", "SOURCES__OTHER__X": "1", "PATH": "/bin"}
    documents = [
        {"sources": {"tikpay": {"window": "P1D", "trips": {"some": "resource setting"}}}},
        {"destination": {"postgres": {"credentials": "never read"}}},
    ]
    assert sorted(configured_names(environ, documents)) == ["report_type", "window"]
