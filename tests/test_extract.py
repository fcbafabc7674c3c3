"""Code extraction from completions: which block wins, and offsets that map back into the completion."""

from __future__ import annotations

import pytest

from salv_trl.hdl.extract import ExtractedCode, extract_code

MODULE_A = "module a(input x, output y);\n  assign y = x;\nendmodule\n"
MODULE_B = "module b(input x, output y);\n  assign y = ~x;\nendmodule\n"


def _check(completion: str) -> ExtractedCode:
    found = extract_code(completion)
    assert found is not None
    assert completion[found.offset : found.end] == found.code
    return found


@pytest.mark.parametrize("tag", ["verilog", "Verilog", "systemverilog", "sv", "v", "verilog title=x.v"])
def test_tagged_fence(tag):
    completion = f"Sure.\n```{tag}\n{MODULE_A}```\nDone."
    found = _check(completion)
    assert found.code == MODULE_A and found.source == "verilog_fence"


def test_last_verilog_fence_wins_over_earlier_and_over_plain_fences():
    completion = (
        f"First try:\n```verilog\n{MODULE_A}```\nBetter:\n```verilog\n{MODULE_B}```\n```\nplain\n```\n"
    )
    found = _check(completion)
    assert found.code == MODULE_B and found.source == "verilog_fence"


def test_other_languages_are_not_verilog_fences():
    completion = f"```python\nprint(1)\n```\n```\n{MODULE_A}```\n"
    found = _check(completion)
    assert found.code == MODULE_A and found.source == "fence"


def test_last_plain_fence_then_raw_module():
    completion = f"```\n{MODULE_A}```\n```\n{MODULE_B}```"
    assert _check(completion).code == MODULE_B
    raw = f"The module below computes y.\n{MODULE_A}That is all."
    found = _check(raw)
    assert found.source == "raw" and found.code == MODULE_A.rstrip("\n")


def test_raw_spans_from_first_header_to_last_endmodule():
    completion = f"This module is simple.\n{MODULE_A}\n{MODULE_B}// end"
    found = _check(completion)
    assert found.code.startswith("module a(") and found.code.endswith("endmodule")
    assert "module b(" in found.code


def test_unterminated_fence_falls_back_to_raw_module():
    completion = f"```verilog\n{MODULE_A}"  # cut at max_new_tokens after endmodule
    found = _check(completion)
    assert found.source == "raw" and found.code == MODULE_A.rstrip("\n")
    assert extract_code("```verilog\nmodule a(input x, output y);\n  assign y =") is None


def test_empty_fences_are_skipped_and_indented_fences_accepted():
    completion = f"1. Code:\n   ```verilog\n{MODULE_A}   ```\n```verilog\n```\n"
    assert _check(completion).code == MODULE_A


def test_tilde_fences_and_longer_closing_fence():
    completion = f"~~~verilog\n{MODULE_A}~~~~\n"
    assert _check(completion).code == MODULE_A
    # A ``` line inside a ```` block does not close it.
    completion = f"````verilog\n{MODULE_A}```\n// still code\n````\n"
    assert _check(completion).code == MODULE_A + "```\n// still code\n"


@pytest.mark.parametrize(
    "completion", ["", "I cannot help with that.", "The module computes y = x.", "```\n  \n```"]
)
def test_no_code(completion):
    assert extract_code(completion) is None


def test_crlf_and_unicode_offsets_are_character_offsets():
    completion = "Voilà — le code :\r\n```verilog\r\n" + MODULE_A.replace("\n", "\r\n") + "```\r\n"
    found = _check(completion)
    assert found.code.startswith("module a(") and "\r" in found.code


def test_to_completion_shifts_spans():
    completion = f"Prose first.\n```verilog\n{MODULE_A}```"
    found = _check(completion)
    start = found.code.index("assign")
    end = found.code.index(";", start) + 1
    [[s, e]] = found.to_completion([(start, end)])
    assert completion[s:e] == "assign y = x;"


def test_rejects_non_text():
    with pytest.raises(TypeError):
        extract_code(None)  # type: ignore[arg-type]
