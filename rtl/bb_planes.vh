// bb_planes.vh: one C-lane slice of a pixel's 8 plane words, cut out (docs/isa.md: lane l of slice s is bit
// s*C + l of a plane word); bb_outbuf places results back into a slice. Included inside the bodies of bb_pool and bb_requant_row, whose
// parameters C and W it uses, after bb_automatic.vh. bb_cut is called only in the units' clocked `en`
// branches, so a simulator shifts plane words only in the cycles that use them.

// bit i*C + l of the result: bit slice*C + l of plane word i (a W-bit shifter per plane)
function `BB_AUTOMATIC [8*C-1:0] bb_cut;
    input [8*W-1:0] words;
    input [3:0]     slice;
    integer i;
    reg [W-1:0] t;
    begin
        for (i = 0; i < 8; i = i + 1) begin
            t = words[i*W +: W] >> (slice * C);
            bb_cut[i*C +: C] = t[C-1:0];
        end
    end
endfunction

