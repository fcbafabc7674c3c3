// A small module with three outputs: `sum` is combinational, `count` is registered, and `even`
// is read from an instance. `salv-trl slice examples/two_outputs.v` prints one slice per output.
module two_outputs (
    input            clk,
    input            rst,
    input      [3:0] a,
    input      [3:0] b,
    output     [4:0] sum,
    output reg [3:0] count,
    output           even
);
  wire [4:0] total = a + b;
  assign sum = total;

  always @(posedge clk) begin
    if (rst)
      count <= 4'd0;
    else if (a[0])
      count <= count + 4'd1;
  end

  parity p (.value(count), .even(even));
endmodule

module parity (
    input  [3:0] value,
    output       even
);
  assign even = ~^value;
endmodule
