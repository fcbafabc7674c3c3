"""A hostile corpus: wrong candidates written to be judged correct or to leave the sandbox, on every path.

Every candidate here is wrong (it computes a wrong function, or none) and tries one attack on top: ending the
run early, printing or gluing verdict text, naming the harness, reaching host files, hiding a call from the
screen. Each must fail on every path (`verify()` random and with a given testbench, the VerilogEval v2, v1 and
RTLLM metric flows, per sample and batched), write nothing outside its sandbox, bring no host file's content
into a detail, and leave no process behind. A separate test shows that an attacker running beside a normal run
changes none of its verdicts, and one shows isolation holding where the screen is bypassed on purpose.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from salv_trl.evaluation.benchmarks import load_benchmark
from salv_trl.evaluation.official import OPT_IN_ENV, reference_code
from salv_trl.evaluation.scoring import score
from salv_trl.hdl.sandbox import Sandbox
from salv_trl.hdl.simulators import simulate
from salv_trl.hdl.verify import Status, VerifyJob, verify, verify_many

CANARY = Path(os.environ.get("TMPDIR", "/tmp")) / f"salv-hostile-canary-{os.getpid()}"
SITE = CANARY / "venv" / "lib" / "python3.11" / "site-packages"
SECRET = "host-secret-5c1e"  # the content of a host file no detail may ever show

ADDER = "module m(input [7:0] a, b, output [7:0] s, output c); assign s = a + b; assign c = a < b; endmodule"
WRONG = "module m(input [7:0] a, b, output [7:0] s, output c); assign s = a - b; assign c = a > b; endmodule"

# name -> an attack put inside a wrong module (`{canary}`, `{site}`, `{secret}` filled in)
ATTACKS = {
    "finish": "initial #1 $finish;",
    "escaped finish": "initial #1 \\$finish ;",
    "finish_and_return": "initial #1 $finish_and_return(0);",
    "stop": "initial #1 $stop;",
    "fatal": "initial #1 $fatal;",
    "finish at time 0": "initial $finish;",
    "fopen write": 'integer f; initial begin f = $fopen("{canary}/fopen.txt", "w"); $fdisplay(f, "x"); end',
    "escaped fopen": 'integer f; initial begin f = \\$fopen ("{canary}/esc.txt", "w"); '
    '\\$fdisplay (f, "x"); end',
    "fopenw": 'integer f; initial f = $fopenw("{canary}/w.txt");',
    "fopena": 'integer f; initial f = $fopena("{canary}/a.txt");',
    "fopenr": 'integer f; initial f = $fopenr("{secret_file}");',
    "fputc": 'integer f; initial begin f = $fopen("{site}/evil.pth", "w"); $fputc(65, f); end',
    "pth file": 'integer f; initial begin f = $fopen("{site}/evil.pth", "w"); $fwrite(f, "import os"); end',
    "relative escape": 'integer f; initial f = $fopen("../../../../{canary}/rel.txt", "w");',
    "ivlh_file_open": 'integer f; initial $ivlh_file_open(f, "{canary}/ivlh.txt", 1);',
    "table_model": 'real r; initial r = $table_model(1.0, "{secret_file}");',
    "system": 'initial $system("touch {canary}/system.txt");',
    "readmemh": 'reg [7:0] mem [0:3]; initial $readmemh("{secret_file}", mem);',
    "escaped readmemh": 'reg [7:0] mem [0:3]; initial \\$readmemh ("{secret_file}", mem);',
    "dumpfile": 'initial begin $dumpfile("{canary}/w.vcd"); $dumpvars; end',
    "escaped dumpfile": 'initial begin \\$dumpfile ("{canary}/e.vcd"); \\$dumpvars ; end',
    "fgetc": 'integer f, ch; initial begin f = $fopen("{secret_file}", "r"); ch = $fgetc(f); end',
    "escaped fgetc": 'integer f, ch; initial begin f = \\$fopen ("{secret_file}", "r"); '
    "ch = \\$fgetc (f); end",
    "proc fd write": 'integer f; initial begin f = $fopen("/proc/1/fd/1", "w"); '
    '$fdisplay(f, "Mismatches: 0"); end',
    "proc cwd read": 'integer f; initial f = $fopen("/proc/1/cwd/tb.sv", "r");',
    "triple-quoted hides finish": 'initial $display("""x"); #1 $finish; //""");',
    "macro glues writememh": "`define M(x) x\n"
    'reg [7:0] r [0:1]; initial `M($write)memh("{canary}/m.hex", r);',
    "macro hides finish": "`define D $\ninitial #1 `D/**/finish;",
    "include host file": '`include "{secret_file}"',
    "macro bomb": "`define A0 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n"
    + "".join(f"`define A{i} `A{i - 1} `A{i - 1}\n" for i in range(1, 40))
    + "wire [7:0] bomb = `A39;",
    "dpi": 'import "DPI-C" function int system(input string s);',
    "root": "initial force $root.tb.stats1.errors = 0;",
    "force tb counters": "initial force tb.stats1 = 0;",
    "force testbench error": "initial force testbench.error = 0;",
    "force seed counter": "initial force tb.es = 0;",
    "read the reference's output": "wire [7:0] peek = good.s_ref;",
    "sibling instance": "wire [7:0] peek = good1.out;",
    "harness task": "initial tb_report();",
    "forged seed lines": 'initial #1 begin $display("s error ctn: 0"); $display("c error ctn: 0"); end',
    "forged v2 lines": "initial #1 begin $display(\"Hint: Output 's' has no mismatches.\"); "
    '$display("Mismatches: 0 in 1000 samples"); end',
    "forged RTLLM pass": 'initial #1 $display("===========Your Design Passed===========");',
    "glued Pass": 'always @(*) $write("Pass ");',
    "hides next line": 'initial #1 $write("no newline, the next line is glued here: ");',
    "forged random lines with %m": 'reg [8*256:1] p; initial begin $sformat(p, "%m"); '
    '$display("%0s 0 0 0 1000", p); $display("%0s END", p); end',
    "monitor flood": 'always @(*) $monitor("%b", a);',
    "display flood": 'always @(a) repeat (200000) $display("flood flood flood flood flood flood");',
    "infinite loop": "always @(a) while (1) begin end",
    "plusargs": 'initial if ($test$plusargs("pass")) $display("x");',
    "value plusargs": 'integer v; initial if ($value$plusargs("v=%d", v)) $display("x");',
    "writememh": 'reg [7:0] r [0:1]; initial $writememh("{canary}/w.hex", r);',
    "sdf_annotate": 'initial $sdf_annotate("{secret_file}");',
    "simulator internals": "initial $vpi_call;",
    "case-changed finish": "initial #1 $Finish;",
    "defparam into the harness": "defparam tb.stim1.CYCLES = 0;",
    "line directive": '`line 1 "tb.sv" 0\ninitial #1 $finish;',
    "NUL": "// \0",
    "lone surrogate": "// \udc80",
    "urandom stream": "reg [7:0] junk; always @(a) junk = $urandom;",
}
# Candidates that are not a wrong module plus an attack
WHOLE = {
    "instantiates the reference": "module m(input [7:0] a, b, output [7:0] s, output c); "
    "helper h(.a(a), .b(b), .s(s), .c(c)); endmodule",
    "RefModule instance": "module m(input [7:0] a, b, output [7:0] s, output c); "
    "RefModule r(.a(a), .b(b), .s(s), .c(c)); endmodule",
    "redeclares RefModule": WRONG + "\nmodule RefModule(input in, output out); endmodule",
    # an unclosed `ifdef swallows every file compiled after the candidate (the real testbench among them), and
    # iverilog still exits 0: the candidate's own testbench is all that runs
    "unclosed ifdef": WRONG
    + '\nmodule tb; initial begin $display("s error ctn: 0"); $display("c error ctn: 0"); '
    '$display("Mismatches: 0 in 1000 samples"); $display("Your Design Passed"); end endmodule\n'
    "`ifdef SALV_NEVER\n",
    # a directive inside a module the top does not reach: blanking that module changes how the rest
    # preprocesses, showing the simulator code the checks never saw (an upward reference to the reference's
    # instance; a second, un-renamed top module)
    "directive in an unreached module unhides a peek": "module unused(input a, output y);\n`define HIDE\n"
    "assign y = a;\nendmodule\n"
    + WRONG.replace(
        "assign s = a - b; assign c = a > b;",
        "\n`ifdef HIDE\nassign s = a - b; assign c = a > b;\n"
        "`else\nassign s = good.s; assign c = good.c;\n`endif\n",
    ),
    "directive in an unreached module unhides a module": "module unused(input a, output y);\n`define OFF\n"
    "assign y = a;\nendmodule\n`ifndef OFF\n"
    'module m(input [7:0] a, b, output [7:0] s, output c); initial $display("s error ctn: 0"); endmodule\n'
    "`endif\n" + WRONG,
    "empty": "",
    "prose only": "I cannot write this module.",
    "huge": "module m; endmodule\n" + "// x\n" * 300_000,
}

# A reference with a helper module (so that "instantiates the reference" has a name to try).
ADDER_WITH_HELPER = (
    "module helper(input [7:0] a, b, output [7:0] s, output c);\n"
    "  assign s = a + b; assign c = a < b;\nendmodule\n"
    "module m(input [7:0] a, b, output [7:0] s, output c); helper h(.a(a), .b(b), .s(s), .c(c)); endmodule"
)
SEED_TESTBENCH = """module tb; reg [7:0] a, b; wire [7:0] s_ref, s_dut; wire c_ref, c_dut; integer i, es, ec;
m good(a, b, s_ref, c_ref); top_module dut(a, b, s_dut, c_dut);
task tb_report; $display("report"); endtask
initial begin es = 0; ec = 0; for (i = 0; i < 50; i = i + 1) begin a = $random; b = $random; #1;
if (s_ref !== s_dut) es = es + 1; if (c_ref !== c_dut) ec = ec + 1; end
$display("s error ctn: %0d", es); $display("c error ctn: %0d", ec); $finish; end endmodule"""


def _fill(text: str) -> str:
    for key, value in {"{canary}": CANARY, "{site}": SITE, "{secret_file}": CANARY / "secret.txt"}.items():
        text = text.replace(key, str(value))
    return text


def _inside(module: str, attack: str) -> str:
    """`module` (ending in `endmodule`) with the attack put before its `endmodule`."""
    head, _, _ = module.rpartition("endmodule")
    return f"{head}\n{_fill(attack)}\nendmodule"


def corpus() -> dict[str, str]:
    return {**{name: _inside(WRONG, attack) for name, attack in ATTACKS.items()}, **WHOLE}


@pytest.fixture(scope="module", autouse=True)
def canary():
    SITE.mkdir(parents=True, exist_ok=True)
    (CANARY / "secret.txt").write_text(SECRET + "\n")
    before = sorted(str(p) for p in CANARY.rglob("*"))
    yield
    after = sorted(str(p) for p in CANARY.rglob("*"))
    assert after == before, f"files appeared outside the sandbox: {sorted(set(after) - set(before))}"
    assert (CANARY / "secret.txt").read_text() == SECRET + "\n"


@pytest.fixture(autouse=True)
def _opt_in(monkeypatch, tmp_path_factory):
    monkeypatch.setenv(OPT_IN_ENV, "1")
    monkeypatch.setenv("SALV_TRL_CACHE", str(tmp_path_factory.getbasetemp() / "salv_cache"))


def _orphans() -> list[str]:
    """Live processes of the sandbox's uid whose parent is gone (re-parented to init). Zombies are dead
    already (a container's init may never reap them), so they do not count."""
    found = subprocess.run(["ps", "-eo", "ppid=,user=,stat=,args="], capture_output=True, text=True).stdout
    rows = [line.split(maxsplit=3) for line in found.splitlines()]
    return [" ".join(r) for r in rows if r[:2] == ["1", "nobody"] and not r[2].startswith("Z")]


def _assert_clean(details: list[str]) -> None:
    assert not any(SECRET in detail for detail in details)
    deadline = time.monotonic() + 5
    while _orphans() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _orphans()


def test_the_corpus_is_large_enough():
    assert len(corpus()) >= 60, len(corpus())


def _forged(names: list[str], jobs: list[VerifyJob]) -> list[str]:
    """The names whose wrong output `s` was judged correct; the run left nothing behind."""
    verdicts = verify_many(jobs, workers=2, progress=False, timeout=3)
    _assert_clean([v.detail for v in verdicts])
    judged = zip(names, verdicts, strict=True)
    return [name for name, v in judged if v.status == Status.ok and v.signals["s"].correct]


def test_verify_random_route_judges_no_attack_correct():
    texts = corpus()
    jobs = [VerifyJob(text, ADDER_WITH_HELPER, vectors=200) for text in texts.values()]
    assert _forged(list(texts), jobs) == []
    # one at a time too (batch size 1), as `verify()` does
    alone = {
        name: verify(text, ADDER_WITH_HELPER, vectors=200, timeout=3)
        for name, text in list(texts.items())[:12]
    }
    assert not any(v.passed for v in alone.values())


def test_verify_with_a_given_testbench_judges_no_attack_correct():
    texts = {name: text.replace("module m(", "module top_module(") for name, text in corpus().items()}
    jobs = [VerifyJob(t, ADDER, testbench=SEED_TESTBENCH, top="top_module") for t in texts.values()]
    assert _forged(list(texts), jobs) == []
    honest = verify(
        ADDER.replace("module m(", "module top_module("), ADDER, testbench=SEED_TESTBENCH, top="top_module"
    )
    assert honest.passed  # the harness still passes what is right


def _metric_candidates(problem, wrong_body: tuple[str, str]) -> list[str]:
    """The corpus for a benchmark problem: every attack inside a wrong module with the problem's ports."""
    wrong = reference_code(problem)
    assert wrong_body[0] in wrong
    wrong = wrong.replace(*wrong_body)
    out = [_inside(wrong, attack) for attack in ATTACKS.values()]
    interface = wrong[: wrong.index(";") + 1]
    out += [
        interface + "\n  RefModule r(.in(in), .out(out));\nendmodule",
        interface + "\n  assign out = tb.out_ref;\nendmodule",
        interface + "\n  assign out = good1.out;\nendmodule",
        wrong + "\nmodule RefModule(input in, output out); assign out = ~in; endmodule",
        wrong + "\nmodule tb; endmodule",
        wrong
        + '\nmodule tb; initial $display("Mismatches: 0 in 20 samples"); endmodule\n`ifdef SALV_NEVER\n',
    ]
    return [f"```verilog\n{text}\n```" for text in out]


@pytest.mark.parametrize("batch_size", [1, 32])
def test_verilog_eval_v2_metric_passes_no_attack(benchmarks_dir, batch_size):
    problems = {p.task_id: p for p in load_benchmark("verilog-eval-v2-spec-to-rtl", benchmarks_dir)}
    problem = problems["Prob005_notgate"]
    candidates = _metric_candidates(problem, ("assign out = ~in;", "assign out = in;"))
    honest = f"```verilog\n{reference_code(problem)}\n```"
    results = score(
        [problem], [candidates + [honest] * 3], batch_size=batch_size, reuse=False, progress=False
    )[0]
    passed = [i for i, r in enumerate(results[: len(candidates)]) if r.passed]
    assert passed == [], [results[i] for i in passed]
    assert all(r.passed for r in results[len(candidates) :])
    _assert_clean([r.verdict.detail for r in results])


def test_verilog_eval_v1_metric_passes_no_attack(benchmarks_dir):
    problems = {p.task_id: p for p in load_benchmark("verilog-eval-v1-human", benchmarks_dir)}
    problem = problems["notgate"]
    candidates = _metric_candidates(problem, ("assign out = ~in;", "assign out = in;"))
    results = score([problem], [candidates], batch_size=32, reuse=False, progress=False)[0]
    assert not [r for r in results if r.passed]
    _assert_clean([r.verdict.detail for r in results])


def test_rtllm_metric_passes_no_attack(benchmarks_dir):
    problems = {p.task_id: p for p in load_benchmark("rtllm-v1.1", benchmarks_dir)}
    problem = problems["adder_8bit"]
    wrong = reference_code(problem).replace("module adder_8bit", "module adder_8bit_unused", 1)
    interface = "module adder_8bit(input [7:0] a, b, input cin, output [7:0] sum, output cout);"
    body = "assign {cout, sum} = a - b;"
    module = f"{interface}\n{body}\nendmodule"
    candidates = [f"```verilog\n{_inside(module, attack)}\n```" for attack in ATTACKS.values()]
    candidates.append(
        f'```verilog\n{module}\nmodule tb; initial $display("Your Design Passed"); endmodule\n`ifdef N\n```'
    )
    instance = "verified_adder_8bit r(.a(a), .b(b), .cin(cin), .sum(sum), .cout(cout));"
    candidates.append(f"```verilog\n{wrong}\n{interface}\n  {instance}\nendmodule\n```")
    results = score([problem], [candidates], reuse=False, progress=False)[0]
    assert not [r for r in results if r.passed], [r for r in results if r.passed]
    _assert_clean([r.verdict.detail for r in results])


def test_isolation_holds_where_the_screen_is_bypassed():
    """The screen refuses file access; this testbench goes straight to the simulator, as a bug could."""
    tb = _fill(
        "module tb; integer f, ch, i; reg [8*64:1] path; initial begin\n"
        '  f = $fopen("{site}/evil.pth", "w"); $fdisplay(f, "import os");\n'
        '  f = $fopen("../../../../{canary}/rel.txt", "w"); $fdisplay(f, "x");\n'
        '  f = $fopen("/tmp/salv-escape.txt", "w"); $fdisplay(f, "x");\n'
        '  f = $fopen("{secret_file}", "r"); ch = $fgetc(f); $display("read %0d", ch);\n'
        "  for (i = 2; i < 4000; i = i + 1) begin\n"
        '    $sformat(path, "/proc/%0d/fd/1", i); f = $fopen(path, "w");\n'
        '    if (f) $fdisplay(f, "Mismatches: 0 in 1 samples"); end\n'
        "  $finish; end endmodule"
    )
    sim = simulate({"tb.v": tb})
    assert sim.compiled and "read -1" in sim.run.stdout  # the secret's file does not exist in there
    assert not Path("/tmp/salv-escape.txt").exists()


def test_an_attacker_beside_a_normal_run_changes_no_verdict():
    jobs = [VerifyJob(t, ADDER, vectors=300) for t in [ADDER, WRONG, ADDER.replace("a < b", "a <= b")] * 6]
    baseline = [v.to_dict() for v in verify_many(jobs, workers=2, progress=False, batch_size=4)]
    attack = (
        "while :; do for p in /proc/[0-9]*; do "
        "echo 'Mismatches: 0 in 1 samples' > $p/fd/1; echo forged > $p/fd/2; cat $p/cwd/*.v; "
        "done 2>/dev/null; done"
    )
    stop = threading.Event()
    seen: list[str] = []

    def attacker() -> None:
        while not stop.is_set():
            with Sandbox() as box:
                seen.append(box.run(["sh", "-c", attack], timeout=1).stdout)

    thread = threading.Thread(target=attacker)
    thread.start()
    try:
        beside = [v.to_dict() for v in verify_many(jobs, workers=2, progress=False, batch_size=4)]
    finally:
        stop.set()
        thread.join()
    assert beside == baseline
    assert not any("module" in out for out in seen)  # no other run's sources were readable


def test_a_directive_in_a_blanked_module_is_refused():
    """Unreached modules are blanked before simulation while every check reads the text as written: a
    directive among them would change what the simulator compiles, so the candidate is refused whatever it
    does."""
    for name in (
        "directive in an unreached module unhides a peek",
        "directive in an unreached module unhides a module",
    ):
        candidate = WHOLE[name].replace("module m(", "module top_module(")
        verdict = verify(candidate, ADDER, testbench=SEED_TESTBENCH, top="top_module")
        assert verdict.status == Status.refused and "does not reach (line 2)" in verdict.detail, name
    # the same directive where the simulator compiles it anyway changes nothing
    honest = "`define HIDE\n" + ADDER.replace("module m(", "module top_module(")
    assert verify(honest, ADDER, testbench=SEED_TESTBENCH, top="top_module").passed
