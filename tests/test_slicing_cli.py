"""`salv-trl slice` on the shipped example: plain and JSON output, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

from salv_trl.cli import main

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "two_outputs.v"


def test_slice_prints_each_output(capsys):
    assert main(["slice", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert out.count("// ===== slice of output") == 3
    sum_part = out.split("// ===== slice of output count")[0]
    assert "assign sum = total;" in sum_part and "count <=" not in sum_part


def test_slice_json_spans_index_the_file(capsys):
    assert main(["slice", str(EXAMPLE), "--top", "two_outputs", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    text = EXAMPLE.read_text(encoding="utf-8")
    assert list(payload) == ["sum", "count", "even"]
    assert [text[s:e] for s, e in payload["sum"]["core_spans"]] == [
        "wire [4:0] total = a + b;\n  assign sum = total;"
    ]
    assert payload["even"]["depends_on"] == ["a", "clk", "count", "rst"]
    assert "module parity" in payload["even"]["render"] and "module parity" not in payload["count"]["render"]


def test_slice_bad_input_is_a_clear_error(tmp_path, capsys):
    empty = tmp_path / "empty.v"
    empty.write_text("")
    assert main(["slice", str(empty)]) == 2
    assert "empty Verilog text" in capsys.readouterr().err
    assert main(["slice", str(EXAMPLE), "--top", "nope"]) == 2
    assert "not found" in capsys.readouterr().err
