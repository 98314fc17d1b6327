"""The worked example of docs/timing.md section 8, run by the simulator's and the RTL's timing tests."""

WORKED_EXAMPLE = """\
load  buf=wgt rows=1 len=2
store buf=acc dram=0x100 rows=1 len=1
load  buf=inp dram=0x40 rows=2 len=4 dstride=32 pad_left=2 push_next
bgemm kbits=2 mbits=1 oh=2 ow=2 kh=1 kw=2 stride=1 dil=1 cw=1 ctiles=1 irow=6 ipix=2 pop_prev
requant dest=out n=4 ostride=1 kout=1 hi=1 push_next
store buf=out dram=0x200 rows=1 len=4 pop_prev
finish
"""
