#include "textflag.h"

// func insw(port uint16, buf *byte, words int)
// Reads words 16-bit values from port into buf: REP INSW (Intel SDM Vol. 2B, "INS/INSB/INSW/INSD").
TEXT ·insw(SB),NOSPLIT,$0-24
	MOVW	port+0(FP), DX
	MOVQ	buf+8(FP), DI
	MOVQ	words+16(FP), CX
	CLD
	REP; INSW
	RET

// func outsw(port uint16, buf *byte, words int)
// Writes words 16-bit values from buf to port: REP OUTSW (Intel SDM Vol. 2B, "OUTS/OUTSB/OUTSW/OUTSD").
TEXT ·outsw(SB),NOSPLIT,$0-24
	MOVW	port+0(FP), DX
	MOVQ	buf+8(FP), SI
	MOVQ	words+16(FP), CX
	CLD
	REP; OUTSW
	RET
