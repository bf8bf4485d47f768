"""The one markdown-table renderer (nasframe/markdown.py)."""

import pytest

from nasframe.markdown import markdown_table


def test_plain_table_left_aligned_by_default():
    assert markdown_table(["a", "b"], [[1, "x"], [2, "y"]]) == (
        "| a | b |\n"
        "| --- | --- |\n"
        "| 1 | x |\n"
        "| 2 | y |"
    )


def test_alignment_string_and_sequence():
    expected = "| a | b | c |\n| --- | ---: | :---: |\n| 1 | 2 | 3 |"
    assert markdown_table(["a", "b", "c"], [[1, 2, 3]], "lrc") == expected
    assert markdown_table(["a", "b", "c"], [[1, 2, 3]], ["l", "r", "c"]) == expected


def test_no_rows_gives_header_only():
    assert markdown_table(["x"], [], "r") == "| x |\n| ---: |"


def test_none_is_a_dash_or_the_given_placeholder():
    assert markdown_table(["a", "b"], [[None, 1.5]], formats=[".2f", ".2f"]) == (
        "| a | b |\n| --- | --- |\n| - | 1.50 |")
    assert markdown_table(["a"], [[None]], missing="n/a") == "| a |\n| --- |\n| n/a |"


def test_float_format_applies_to_floats_only():
    out = markdown_table(["name", "n", "value"], [["x", 3, 0.123456], ["y", 10, 2.0]], "lrr", float_format=".3f")
    assert out == (
        "| name | n | value |\n"
        "| --- | ---: | ---: |\n"
        "| x | 3 | 0.123 |\n"
        "| y | 10 | 2.000 |"
    )


def test_float_without_format_uses_str():
    assert markdown_table(["v"], [[0.1]]) == "| v |\n| --- |\n| 0.1 |"


def test_per_column_formats_by_index_header_and_callable():
    rows = [["a", 1234567, 0.98765, 12.0]]
    out = markdown_table(["arch", "params", "tau", "time"], rows, "lrrr",
                         formats={"params": ",", 2: ".3f", "time": lambda s: f"{s:.0f} s"}, float_format=".1f")
    assert out == (
        "| arch | params | tau | time |\n"
        "| --- | ---: | ---: | ---: |\n"
        "| a | 1,234,567 | 0.988 | 12 s |"
    )
    assert markdown_table(["a", "b"], [[1.0, 2.0]], formats=[None, ".2f"], float_format=".1f") == (
        "| a | b |\n| --- | --- |\n| 1.0 | 2.00 |")


def test_pipes_escaped_in_cells_and_headers_but_not_twice():
    arch = "|nor_conv_3x3~0|+|skip_connect~0|none~1|"
    out = markdown_table(["a|b", "arch", "escaped"], [["x", f"`{arch}`", "p\\|q"]])
    assert out == (
        "| a\\|b | arch | escaped |\n"
        "| --- | --- | --- |\n"
        "| x | `\\|nor_conv_3x3~0\\|+\\|skip_connect~0\\|none~1\\|` | p\\|q |"
    )


def test_line_breaks_become_spaces():
    assert markdown_table(["m"], [["one\ntwo\r\nthree"]]) == "| m |\n| --- |\n| one two three |"


def test_formatter_output_is_escaped_too():
    assert markdown_table(["a"], [["x"]], formats=[lambda v: f"{v}|{v}"]) == "| a |\n| --- |\n| x\\|x |"


@pytest.mark.parametrize("kwargs", [
    {"align": "lr"},  # too short
    {"align": "lxl"},  # unknown letter
    {"formats": [None]},  # too few formats
    {"formats": {"nope": ".2f"}},  # no such column
    {"formats": {3: ".2f"}},  # index out of range
])
def test_bad_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        markdown_table(["a", "b", "c"], [[1, 2, 3]], **kwargs)


def test_row_of_wrong_length_raises():
    with pytest.raises(ValueError, match="row 1 has 1 cells for 2 columns"):
        markdown_table(["a", "b"], [[1, 2], [3]])
