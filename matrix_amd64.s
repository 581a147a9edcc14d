//go:build amd64 && !purego

#include "textflag.h"

// matrix_amd64.s: the GEMM micro-kernels (6×8 and 8×24, with their 6×4,
// 8×4 and 4×24 edge tiles and the 8×26 wide tile), the pixel kernels that
// normalise image bytes, the FMA peak loops that measure the machine's
// limit, the 8×8, 4×4 and 2×4 transpositions and the copy of B's rows
// into panels (packing), the vector FMA that adds a product's sums apart
// into C (splitting along K), and the CPU feature probes: the only
// assembly in the program. Everything
// around them (packing, blocking, the goroutine split) is Go;
// see matrix.go and matrix_amd64.go. Each kernel computes one mr×nr tile of
//
//	C[i, j] += α · Σ_{p<kc} a[p*mr+i] · b[p*nr+j]     (0 ≤ i < mr, 0 ≤ j < nr)
//
// where step p of the A panel holds a[p*csa + i*rsa] (0 ≤ i < mr) and step p
// of the B panel the nr contiguous values b[p*csb …]. A packed panel has
// rsa = 1, csa = mr, csb = nr; the strides let the kernels also read A in
// place (row-major A: rsa = lda, csa = 1; transposed: rsa = 1, csa = lda)
// and B in place when its rows are contiguous (csb = ldb), which saves the
// packing passes that dominate the MLP's skinny products.
// Row i of the tile is held in nr/4 YMM (or nr/8 ZMM)
// accumulators; one step p loads the step's nr values of b into registers,
// broadcasts each of the mr values of a in turn and issues one fused
// multiply-add per accumulator. After the last step, C += α·acc, also fused.
// The p loop runs in increasing order, so both kernels sum every element in
// the same order with the same roundings: they give the same bits.
//
// Go assembler notes: operands are in reverse Intel order, so
// VFMADD231PD Y12, Y14, Y0 is Y0 += Y14·Y12. Z registers select the EVEX
// (AVX-512) encoding of the same mnemonics; VPXORQ zeroes them (VXORPD on
// ZMM needs AVX512DQ). VZEROUPPER before returning avoids the AVX–SSE
// transition penalty in the Go code that follows.

// The GEMM kernels' registers, named once. Every kernel keeps its
// arguments in the same registers (strides in bytes); the accumulators and
// the scratch registers R9, R10 are given in each kernel's register map.
#define KC    CX  // steps p left to do
#define A_PTR AX  // → step p of A, row 0; rows 1, 2 (and 3) at +RSA, +2·RSA (+R9)
#define A_HI  R13 // → step p of A, the tile's second group of rows (3–5 on AVX2, 4–7 on AVX-512)
#define RSA   R11 // bytes between rows of A (rsa·8)
#define CSA   R12 // bytes between steps of A (csa·8)
#define B_PTR BX  // → step p of B
#define CSB   SI  // bytes between steps of B (csb·8)
#define C_PTR DX  // → the next row of the tile of C
#define LDC   R8  // bytes between rows of C (ldc·8)

// GEMM_ARGS is every GEMM kernel's start: the arguments they share (kc,
// a, rsa, csa, b, csb, c, ldc; alpha is read at the end) into the
// registers above, strides turned into bytes, and R9 = 3·RSA.
#define GEMM_ARGS \
	MOVQ kc+0(FP), KC;     \
	MOVQ a+16(FP), A_PTR;  \
	MOVQ rsa+24(FP), RSA;  \
	SHLQ $3, RSA;          \
	MOVQ csa+32(FP), CSA;  \
	SHLQ $3, CSA;          \
	MOVQ b+40(FP), B_PTR;  \
	MOVQ csb+48(FP), CSB;  \
	SHLQ $3, CSB;          \
	MOVQ c+56(FP), C_PTR;  \
	MOVQ ldc+64(FP), LDC;  \
	SHLQ $3, LDC;          \
	LEAQ (RSA)(RSA*2), R9

// The transpositions' start (transpose8AVX512, transpose4AVX2,
// transpose2AVX2, below): CX = the blocks of 2^shift steps in n (to done
// if none), DI → dst, R11 = ldd and R12 = 3·ldd, SI → src, R8 = lds and
// R9 = 3·lds (strides in bytes). (Here for go vet, as the next.)
#define TRANSPOSE_ARGS(shift, done) \
	MOVQ n+32(FP), CX;      \
	SHRQ $shift, CX;        \
	JE   done;              \
	MOVQ dst+0(FP), DI;     \
	MOVQ ldd+8(FP), R11;    \
	SHLQ $3, R11;           \
	LEAQ (R11)(R11*2), R12; \
	MOVQ src+16(FP), SI;    \
	MOVQ lds+24(FP), R8;    \
	SHLQ $3, R8;            \
	LEAQ (R8)(R8*2), R9

// The edge kernels' (6×4, 8×4, below) start: their arguments, as the 6×8
// kernel's plus the mask (into Y15); A_HI → row 3 of A; accumulators Y0–Y7
// zeroed. (Here, before any TEXT, because go vet checks a macro's
// argument names against the function it follows.)
#define AVX2_EDGE_START \
	GEMM_ARGS;                 \
	MOVQ    m+72(FP), R10;     \
	VMOVDQU (R10), Y15;        \
	LEAQ    (A_PTR)(R9*1), A_HI; \
	VXORPD  Y0, Y0, Y0;        \
	VXORPD  Y1, Y1, Y1;        \
	VXORPD  Y2, Y2, Y2;        \
	VXORPD  Y3, Y3, Y3;        \
	VXORPD  Y4, Y4, Y4;        \
	VXORPD  Y5, Y5, Y5;        \
	VXORPD  Y6, Y6, Y6;        \
	VXORPD  Y7, Y7, Y7

// The AVX-512 kernels' start from D (their update when d is not nil):
// β into Z30 and K2 = the lanes where β ≠ 0 (all of them or none: with
// β = 0, AVX512_FROM_D starts from 0 without reading D, which may be C
// itself holding anything, NaN included, as startC clears it), then on to
// label sub when γ is not 0 (the SGD step too).
#define AVX512_FROM_D_BRANCH(sub) \
	VBROADCASTSD beta+88(FP), Z30; \
	VPXORQ       Z27, Z27, Z27;     \
	VCMPPD       $4, Z27, Z30, K2;  \
	MOVQ         gamma+96(FP), R11; \
	TESTQ        R11, R11;          \
	JNE          sub

// The AVX2 6×8 kernel's start from D (its update when d is not nil): the
// row's start value into Y12, Y13, either β (Y14) · D row (at R14), or 0
// for β = 0, when D is not read (it may be C itself holding anything, NaN
// included, as startC clears it).
#define AVX2_BETA_D \
	VMULPD (R14), Y14, Y12;   \
	VMULPD 32(R14), Y14, Y13
#define AVX2_ZERO \
	VXORPD Y12, Y12, Y12; \
	VXORPD Y13, Y13, Y13

// C row (two YMM at DX) = α (Y15) · acc (lo, hi) + the start value FROM
// (AVX2_BETA_D or AVX2_ZERO), fused as AVX2_UPDATE_ROW with it in C's
// place; the row stays in Y12, Y13 (AVX2_VALUE computes it, AVX2_FROM
// also stores it).
#define AVX2_VALUE(FROM, lo, hi) \
	FROM;                     \
	VFMADD231PD lo, Y15, Y12; \
	VFMADD231PD hi, Y15, Y13

#define AVX2_FROM(FROM, lo, hi) \
	AVX2_VALUE(FROM, lo, hi); \
	VMOVUPD     Y12, (C_PTR); \
	VMOVUPD     Y13, 32(C_PTR)

// AVX2_FROM, then DX and R14 move one row down.
#define AVX2_START_ROW(FROM, lo, hi) \
	AVX2_FROM(FROM, lo, hi); \
	ADDQ LDC, C_PTR;         \
	ADDQ LDC, R14

// AVX2_FROM, then D row ← D row − γ · C row (the SGD step, as
// AVX512_START_SUB_ROW), then DX and R14 move one row down. The row's
// accumulators are spent, so lo takes γ and hi is scratch.
// AVX2_START_SUB_ROW_NOC does the same without storing C (c nil: the
// caller keeps only D).
#define AVX2_START_SUB_ROW(FROM, lo, hi) \
	AVX2_STEP_D(AVX2_FROM, FROM, lo, hi)

#define AVX2_START_SUB_ROW_NOC(FROM, lo, hi) \
	AVX2_STEP_D(AVX2_VALUE, FROM, lo, hi)

#define AVX2_STEP_D(ROW, FROM, lo, hi) \
	ROW(FROM, lo, hi);             \
	VBROADCASTSD gamma+96(FP), lo; \
	VMULPD       lo, Y12, Y12;     \
	VMULPD       lo, Y13, Y13;     \
	VMOVUPD      (R14), hi;        \
	VSUBPD       Y12, hi, hi;      \
	VMOVUPD      hi, (R14);        \
	VMOVUPD      32(R14), lo;      \
	VSUBPD       Y13, lo, lo;      \
	VMOVUPD      lo, 32(R14);      \
	ADDQ         LDC, C_PTR;       \
	ADDQ         LDC, R14

// The six ways a row of an AVX2 tile starts from D: from β·D or from 0,
// without the SGD step, with it, or with it and C not kept.
#define AVX2_BETA_ROW(lo, hi) AVX2_START_ROW(AVX2_BETA_D, lo, hi)
#define AVX2_ZERO_ROW(lo, hi) AVX2_START_ROW(AVX2_ZERO, lo, hi)
#define AVX2_BETA_SUB_ROW(lo, hi) AVX2_START_SUB_ROW(AVX2_BETA_D, lo, hi)
#define AVX2_ZERO_SUB_ROW(lo, hi) AVX2_START_SUB_ROW(AVX2_ZERO, lo, hi)
#define AVX2_BETA_SUB_ROW_NOC(lo, hi) AVX2_START_SUB_ROW_NOC(AVX2_BETA_D, lo, hi)
#define AVX2_ZERO_SUB_ROW_NOC(lo, hi) AVX2_START_SUB_ROW_NOC(AVX2_ZERO, lo, hi)

// AVX2_EACH_ROW applies ROW (one of the four above) to the 6×8 tile's
// rows, top to bottom.
#define AVX2_EACH_ROW(ROW) \
	ROW(Y0, Y1); \
	ROW(Y2, Y3); \
	ROW(Y4, Y5); \
	ROW(Y6, Y7); \
	ROW(Y8, Y9); \
	ROW(Y10, Y11)

// AVX2_ROW_EDGE_ROWS applies ROW (AVX2_UPDATE_ROW or one of the four
// above) to the first R10 rows of the 4×8 row-edge tile, then jumps to
// avx2rowedgedone.
#define AVX2_ROW_EDGE_ROWS(ROW) \
	ROW(Y0, Y1);          \
	DECQ R10;             \
	JE   avx2rowedgedone; \
	ROW(Y2, Y3);          \
	DECQ R10;             \
	JE   avx2rowedgedone; \
	ROW(Y4, Y5);          \
	DECQ R10;             \
	JE   avx2rowedgedone; \
	ROW(Y6, Y7);          \
	JMP  avx2rowedgedone

// AVX2_START_BRANCH is the AVX2 kernels' start from D (their update when
// d is not nil): β into Y14, R11 = γ's bits, then on to label beta when
// β ≠ 0 (or NaN); falling through, β = 0.
#define AVX2_START_BRANCH(beta) \
	VBROADCASTSD beta+88(FP), Y14; \
	MOVQ     gamma+96(FP), R11;   \
	VXORPD   X13, X13, X13;       \
	VUCOMISD X13, X14;            \
	JNE      beta;                \
	JP       beta

// AVX2_START is the AVX2 kernels' whole update from D: C = α·acc + β·D
// (0 for β = 0), then, for γ ≠ 0, D −= γ·C (without storing C when c is
// nil), each of the six ways by EACH (AVX2_EACH_ROW_RET,
// AVX2_ROW_EDGE_ROWS) applied to its row macro; EACH must not fall
// through. The other five arguments are the function's own labels for
// the other five ways.
#define AVX2_START(EACH, beta, zerosub, betasub, zerosubnoc, betasubnoc) \
	AVX2_START_BRANCH(beta);     \
	TESTQ R11, R11;              \
	JNE   zerosub;               \
	EACH(AVX2_ZERO_ROW);         \
zerosub:                         \
	TESTQ C_PTR, C_PTR;          \
	JE    zerosubnoc;            \
	EACH(AVX2_ZERO_SUB_ROW);     \
zerosubnoc:                      \
	EACH(AVX2_ZERO_SUB_ROW_NOC); \
beta:                            \
	TESTQ R11, R11;              \
	JNE   betasub;               \
	EACH(AVX2_BETA_ROW);         \
betasub:                         \
	TESTQ C_PTR, C_PTR;          \
	JE    betasubnoc;            \
	EACH(AVX2_BETA_SUB_ROW);     \
betasubnoc:                      \
	EACH(AVX2_BETA_SUB_ROW_NOC)

// AVX2_EACH_ROW_RET is AVX2_EACH_ROW, then the 6×8 kernel's return.
#define AVX2_EACH_ROW_RET(ROW) \
	AVX2_EACH_ROW(ROW); \
	VZEROUPPER;         \
	RET

// The pixel kernels' (normPixelsAVX2, normPixelsAVX512, at the end) start:
// prefetch the n bytes at next, then SI → pix, DI → dst, R8 → mean,
// R9 → inv, DX = n.
#define NORM_PIXELS_START \
	MOVQ next+56(FP), R10;  \
	MOVQ n+32(FP), DX;      \
	LEAQ (R10)(DX*1), R11;  \
prefetchloop:               \
	PREFETCHT0 (R10);       \
	ADDQ       $64, R10;    \
	CMPQ       R10, R11;    \
	JB         prefetchloop; \
	MOVQ dst+0(FP), DI;     \
	MOVQ pix+8(FP), SI;     \
	MOVQ mean+16(FP), R8;   \
	MOVQ inv+24(FP), R9

// func cpuid(eaxArg, ecxArg uint32) (eax, ebx, ecx, edx uint32)
TEXT ·cpuid(SB), NOSPLIT, $0-24
	MOVL eaxArg+0(FP), A_PTR
	MOVL ecxArg+4(FP), KC
	CPUID
	MOVL A_PTR, eax+8(FP)
	MOVL B_PTR, ebx+12(FP)
	MOVL KC, ecx+16(FP)
	MOVL C_PTR, edx+20(FP)
	RET

// func xgetbv() (eax, edx uint32)
// XCR0: which register states the OS saves on a context switch.
TEXT ·xgetbv(SB), NOSPLIT, $0-8
	MOVL $0, KC
	XGETBV
	MOVL A_PTR, eax+0(FP)
	MOVL C_PTR, edx+4(FP)
	RET

// ---------------------------------------------------------------------------
// AVX2/FMA, 6×8 tile: 12 YMM accumulators (Y0–Y11, row i in Y(2i), Y(2i+1)),
// two for the step's row of b (Y12, Y13), two for broadcasts (Y14, Y15).
// 12 independent FMA chains keep two FMA ports with 4–5 cycle latency busy;
// 8 loads (2 vector + 6 broadcast) feed 12 FMAs.
//
// Register map: A_PTR → rows 0–2 of step p of A ((A_PTR), (A_PTR)(RSA*1),
// (A_PTR)(RSA*2)), A_HI → rows 3–5; B_PTR → step p of B; C_PTR → row i of
// the tile of C; KC counts the steps; R9 = 3·RSA; R10 the prefetch pointer,
// then the count of 4-step iterations; Y0–Y11 the accumulators, Y12–Y13
// b, Y14–Y15 the broadcasts (Y15: α at the end).

#define AVX2_STEP \
	VMOVUPD      (B_PTR), Y12;             \
	VMOVUPD      32(B_PTR), Y13;           \
	VBROADCASTSD (A_PTR), Y14;             \
	VFMADD231PD  Y12, Y14, Y0;          \
	VFMADD231PD  Y13, Y14, Y1;          \
	VBROADCASTSD (A_PTR)(RSA*1), Y15;      \
	VFMADD231PD  Y12, Y15, Y2;          \
	VFMADD231PD  Y13, Y15, Y3;          \
	VBROADCASTSD (A_PTR)(RSA*2), Y14;      \
	VFMADD231PD  Y12, Y14, Y4;          \
	VFMADD231PD  Y13, Y14, Y5;          \
	VBROADCASTSD (A_HI), Y15;            \
	VFMADD231PD  Y12, Y15, Y6;          \
	VFMADD231PD  Y13, Y15, Y7;          \
	VBROADCASTSD (A_HI)(RSA*1), Y14;     \
	VFMADD231PD  Y12, Y14, Y8;          \
	VFMADD231PD  Y13, Y14, Y9;          \
	VBROADCASTSD (A_HI)(RSA*2), Y15;     \
	VFMADD231PD  Y12, Y15, Y10;         \
	VFMADD231PD  Y13, Y15, Y11;         \
	ADDQ         CSA, A_PTR;               \
	ADDQ         CSA, A_HI;              \
	ADDQ         CSB, B_PTR

// AVX2_STEP_PF is a step that first touches the 8 values of b 8 steps
// ahead (64 bytes at any 8-byte boundary: their first byte and their last
// double), for B read in place (see AVX512_STEP_PF).
#define AVX2_STEP_PF \
	PREFETCHT0 (B_PTR)(CSB*8);    \
	PREFETCHT0 56(B_PTR)(CSB*8);  \
	AVX2_STEP

// C row (two YMM at DX) += α (Y15) · acc (lo, hi); then DX moves one row down.
#define AVX2_UPDATE_ROW(lo, hi) \
	VMOVUPD     (C_PTR), Y12;      \
	VMOVUPD     32(C_PTR), Y13;    \
	VFMADD231PD lo, Y15, Y12;   \
	VFMADD231PD hi, Y15, Y13;   \
	VMOVUPD     Y12, (C_PTR);      \
	VMOVUPD     Y13, 32(C_PTR);    \
	ADDQ        LDC, C_PTR

// func kernelAVX2x6x8(kc int, alpha float64, a *float64, rsa, csa int, b *float64, csb int, c *float64, ldc int, prefetchB bool, d *float64, beta, gamma float64)
TEXT ·kernelAVX2x6x8(SB), NOSPLIT, $0-104
	GEMM_ARGS
	LEAQ (A_PTR)(R9*1), A_HI

	// Touch the tile of C (or of D, which the update reads instead) now,
	// so that its lines arrive during the loop (measured on AMD Zen 4,
	// both kernels: 1024³ 7–8 % faster, the MLP's products unchanged). A
	// row of the tile is 8 doubles, 64 bytes, at any 8-byte boundary: it
	// may straddle two cache lines, so its first byte (0) and its last
	// double (56) are touched.
	MOVQ  d+80(FP), R10
	TESTQ R10, R10
	JNE   avx2prefetch
	MOVQ  C_PTR, R10

avx2prefetch:
	PREFETCHT0 (R10)
	PREFETCHT0 56(R10)
	ADDQ LDC, R10
	PREFETCHT0 (R10)
	PREFETCHT0 56(R10)
	ADDQ LDC, R10
	PREFETCHT0 (R10)
	PREFETCHT0 56(R10)
	ADDQ LDC, R10
	PREFETCHT0 (R10)
	PREFETCHT0 56(R10)
	ADDQ LDC, R10
	PREFETCHT0 (R10)
	PREFETCHT0 56(R10)
	ADDQ LDC, R10
	PREFETCHT0 (R10)
	PREFETCHT0 56(R10)

	VXORPD Y0, Y0, Y0
	VXORPD Y1, Y1, Y1
	VXORPD Y2, Y2, Y2
	VXORPD Y3, Y3, Y3
	VXORPD Y4, Y4, Y4
	VXORPD Y5, Y5, Y5
	VXORPD Y6, Y6, Y6
	VXORPD Y7, Y7, Y7
	VXORPD Y8, Y8, Y8
	VXORPD Y9, Y9, Y9
	VXORPD Y10, Y10, Y10
	VXORPD Y11, Y11, Y11

	// Four steps per iteration, then the remaining kc mod 4 one at a time.
	MOVQ KC, R10
	SHRQ $2, R10
	ANDQ $3, KC
	TESTQ R10, R10
	JE   avx2tail
	CMPB prefetchB+72(FP), $0
	JNE  avx2pfloop4

avx2loop4:
	AVX2_STEP
	AVX2_STEP
	AVX2_STEP
	AVX2_STEP
	DECQ R10
	JNZ  avx2loop4
	JMP  avx2tail

avx2pfloop4: // the same steps, prefetching B (prefetchB)
	AVX2_STEP_PF
	AVX2_STEP_PF
	AVX2_STEP_PF
	AVX2_STEP_PF
	DECQ R10
	JNZ  avx2pfloop4

avx2tail:
	TESTQ KC, KC
	JE    avx2update

avx2loop1:
	AVX2_STEP
	DECQ KC
	JNZ  avx2loop1

avx2update:
	VBROADCASTSD alpha+8(FP), Y15
	MOVQ d+80(FP), R14
	TESTQ R14, R14
	JNE  avx2start
	AVX2_UPDATE_ROW(Y0, Y1)
	AVX2_UPDATE_ROW(Y2, Y3)
	AVX2_UPDATE_ROW(Y4, Y5)
	AVX2_UPDATE_ROW(Y6, Y7)
	AVX2_UPDATE_ROW(Y8, Y9)
	AVX2_UPDATE_ROW(Y10, Y11)
	VZEROUPPER
	RET

avx2start: // C = α·acc + β·D (0 for β = 0); then, for γ ≠ 0, D −= γ·C
	AVX2_START(AVX2_EACH_ROW_RET, avx2beta, avx2zerosub, avx2betasub, avx2zerosubnoc, avx2betasubnoc)

// ---------------------------------------------------------------------------
// AVX2/FMA, 4×8 row-edge tile: the 6×8 kernel's ragged last row panel of
// 1–4 rows (the MLP's 50 hidden units are eight 6-row panels and 2 rows; a
// batch of 100, sixteen and 4), which otherwise runs the whole 6×8 tile on
// a scratch copy of C. 8 YMM accumulators (Y0–Y7, row i in Y(2i),
// Y(2i+1)), the same sums in the same order as the 6×8 kernel; four rows
// are computed (A's ragged panel is packed with zero rows) and the first
// `rows` written, updated as the 6×8 kernel's are (C += α·acc, or from D).
//
// Register map: as the 6×8 kernel's rows 0–3 (A_PTR with RSA and R9 =
// 3·RSA), without A_HI; R10 the count of 4-step iterations, then of the
// rows to write; Y12–Y13 b, Y14–Y15 the broadcasts (Y15: α at the end).

#define AVX2_ROW_EDGE_STEP \
	VMOVUPD      (B_PTR), Y12;        \
	VMOVUPD      32(B_PTR), Y13;      \
	VBROADCASTSD (A_PTR), Y14;        \
	VFMADD231PD  Y12, Y14, Y0;        \
	VFMADD231PD  Y13, Y14, Y1;        \
	VBROADCASTSD (A_PTR)(RSA*1), Y15; \
	VFMADD231PD  Y12, Y15, Y2;        \
	VFMADD231PD  Y13, Y15, Y3;        \
	VBROADCASTSD (A_PTR)(RSA*2), Y14; \
	VFMADD231PD  Y12, Y14, Y4;        \
	VFMADD231PD  Y13, Y14, Y5;        \
	VBROADCASTSD (A_PTR)(R9*1), Y15;  \
	VFMADD231PD  Y12, Y15, Y6;        \
	VFMADD231PD  Y13, Y15, Y7;        \
	ADDQ         CSA, A_PTR;          \
	ADDQ         CSB, B_PTR

// func kernelAVX2x4x8(kc int, alpha float64, a *float64, rsa, csa int, b *float64, csb int, c *float64, ldc int, rows int, d *float64, beta, gamma float64)
TEXT ·kernelAVX2x4x8(SB), NOSPLIT, $0-104
	GEMM_ARGS
	VXORPD Y0, Y0, Y0
	VXORPD Y1, Y1, Y1
	VXORPD Y2, Y2, Y2
	VXORPD Y3, Y3, Y3
	VXORPD Y4, Y4, Y4
	VXORPD Y5, Y5, Y5
	VXORPD Y6, Y6, Y6
	VXORPD Y7, Y7, Y7

	// Four steps per iteration, then the remaining kc mod 4 one at a time.
	MOVQ KC, R10
	SHRQ $2, R10
	ANDQ $3, KC
	TESTQ R10, R10
	JE   avx2rowedgetail

avx2rowedgeloop4:
	AVX2_ROW_EDGE_STEP
	AVX2_ROW_EDGE_STEP
	AVX2_ROW_EDGE_STEP
	AVX2_ROW_EDGE_STEP
	DECQ R10
	JNZ  avx2rowedgeloop4

avx2rowedgetail:
	TESTQ KC, KC
	JE    avx2rowedgeupdate

avx2rowedgeloop1:
	AVX2_ROW_EDGE_STEP
	DECQ KC
	JNZ  avx2rowedgeloop1

avx2rowedgeupdate:
	VBROADCASTSD alpha+8(FP), Y15
	MOVQ rows+72(FP), R10
	MOVQ d+80(FP), R14
	TESTQ R14, R14
	JNE  avx2rowedgestart
	AVX2_ROW_EDGE_ROWS(AVX2_UPDATE_ROW)

avx2rowedgestart: // C = α·acc + β·D (0 for β = 0); then, for γ ≠ 0, D −= γ·C
	AVX2_START(AVX2_ROW_EDGE_ROWS, avx2rowedgebeta, avx2rowedgezerosub, avx2rowedgebetasub, avx2rowedgezerosubnoc, avx2rowedgebetasubnoc)

avx2rowedgedone:
	VZEROUPPER
	RET

// ---------------------------------------------------------------------------
// AVX2/FMA, 6×4 edge tile for a ragged last column panel of 1–4 columns (an
// N×50 output is six 6×8 panels and 2 columns): 6 YMM accumulators (Y0–Y5,
// row i in Yi), the step's 4 values of b in Y12, broadcasts in Y13, Y14.
// The same sums, in the same order, as the 6×8 kernel, so the same bits;
// only the first `cols` columns of C are read and written (VMASKMOVPD with
// the mask at m), so C needs no scratch copy. Six FMA chains cannot fill
// two FMA ports of 4-cycle latency: a step takes about 4 cycles against
// the full tile's 6, but the full tile on a scratch copy of C cost more
// than a whole panel. Registers as in the 6×8 kernel; Y15 holds the mask.

// Rows 0–5 of an edge step: the step's 4 values of b, then one broadcast
// and one FMA a row.
#define AVX2_EDGE_ROWS6 \
	VMOVUPD      (B_PTR), Y12;             \
	VBROADCASTSD (A_PTR), Y13;             \
	VFMADD231PD  Y12, Y13, Y0;          \
	VBROADCASTSD (A_PTR)(RSA*1), Y14;      \
	VFMADD231PD  Y12, Y14, Y1;          \
	VBROADCASTSD (A_PTR)(RSA*2), Y13;      \
	VFMADD231PD  Y12, Y13, Y2;          \
	VBROADCASTSD (A_HI), Y14;            \
	VFMADD231PD  Y12, Y14, Y3;          \
	VBROADCASTSD (A_HI)(RSA*1), Y13;     \
	VFMADD231PD  Y12, Y13, Y4;          \
	VBROADCASTSD (A_HI)(RSA*2), Y14;     \
	VFMADD231PD  Y12, Y14, Y5

#define AVX2_EDGE_STEP \
	AVX2_EDGE_ROWS6;                    \
	ADDQ         CSA, A_PTR;               \
	ADDQ         CSA, A_HI;              \
	ADDQ         CSB, B_PTR


// C row's first cols values (mask Y15) += α (Y14) · acc; DX moves one row down.
#define AVX2_EDGE_UPDATE_ROW(acc) \
	VMASKMOVPD  (C_PTR), Y15, Y12; \
	VFMADD231PD acc, Y14, Y12;  \
	VMASKMOVPD  Y12, Y15, (C_PTR); \
	ADDQ        LDC, C_PTR

// func kernelAVX2x6x4(kc int, alpha float64, a *float64, rsa, csa int, b *float64, csb int, c *float64, ldc int, m *int64)
TEXT ·kernelAVX2x6x4(SB), NOSPLIT, $0-80
	AVX2_EDGE_START

	MOVQ KC, R10
	SHRQ $2, R10
	ANDQ $3, KC
	TESTQ R10, R10
	JE   edgetail

edgeloop4:
	AVX2_EDGE_STEP
	AVX2_EDGE_STEP
	AVX2_EDGE_STEP
	AVX2_EDGE_STEP
	DECQ R10
	JNZ  edgeloop4

edgetail:
	TESTQ KC, KC
	JE    edgeupdate

edgeloop1:
	AVX2_EDGE_STEP
	DECQ KC
	JNZ  edgeloop1

edgeupdate:
	VBROADCASTSD alpha+8(FP), Y14
	AVX2_EDGE_UPDATE_ROW(Y0)
	AVX2_EDGE_UPDATE_ROW(Y1)
	AVX2_EDGE_UPDATE_ROW(Y2)
	AVX2_EDGE_UPDATE_ROW(Y3)
	AVX2_EDGE_UPDATE_ROW(Y4)
	AVX2_EDGE_UPDATE_ROW(Y5)
	VZEROUPPER
	RET

// AVX2/FMA, 8×4 edge tile: the 8×24 kernel's ragged last column panel of
// 1–4 columns, as the 6×4 edge tile with two more rows (Y6, Y7; rows 6–7
// at R10). Eight FMA chains keep both ports busy, so its columns cost no
// more than the wide kernel's: an N×50 output is two 24-wide panels and
// 4 columns of this (52 computed for 50) instead of three (72).

#define AVX2_EDGE8_STEP \
	AVX2_EDGE_ROWS6;                    \
	VBROADCASTSD (R10), Y13;            \
	VFMADD231PD  Y12, Y13, Y6;          \
	VBROADCASTSD (R10)(RSA*1), Y14;     \
	VFMADD231PD  Y12, Y14, Y7;          \
	ADDQ         CSA, A_PTR;               \
	ADDQ         CSA, A_HI;              \
	ADDQ         CSA, R10;              \
	ADDQ         CSB, B_PTR

// func kernelAVX2x8x4(kc int, alpha float64, a *float64, rsa, csa int, b *float64, csb int, c *float64, ldc int, m *int64)
TEXT ·kernelAVX2x8x4(SB), NOSPLIT, $0-80
	AVX2_EDGE_START
	LEAQ (A_HI)(R9*1), R10 // row 6

	MOVQ KC, R9
	SHRQ $2, R9
	ANDQ $3, KC
	TESTQ R9, R9
	JE   edge8tail

edge8loop4:
	AVX2_EDGE8_STEP
	AVX2_EDGE8_STEP
	AVX2_EDGE8_STEP
	AVX2_EDGE8_STEP
	DECQ R9
	JNZ  edge8loop4

edge8tail:
	TESTQ KC, KC
	JE    edge8update

edge8loop1:
	AVX2_EDGE8_STEP
	DECQ KC
	JNZ  edge8loop1

edge8update:
	VBROADCASTSD alpha+8(FP), Y14
	AVX2_EDGE_UPDATE_ROW(Y0)
	AVX2_EDGE_UPDATE_ROW(Y1)
	AVX2_EDGE_UPDATE_ROW(Y2)
	AVX2_EDGE_UPDATE_ROW(Y3)
	AVX2_EDGE_UPDATE_ROW(Y4)
	AVX2_EDGE_UPDATE_ROW(Y5)
	AVX2_EDGE_UPDATE_ROW(Y6)
	AVX2_EDGE_UPDATE_ROW(Y7)
	VZEROUPPER
	RET

// ---------------------------------------------------------------------------
// AVX-512, 8×24 tile: 24 ZMM accumulators (Z0–Z23, row i in Z(3i) … Z(3i+2)),
// three for the step's row of b (Z24–Z26), two for broadcasts (Z27, Z28).
// 11 loads (3 vector + 8 broadcast) feed 24 FMAs of 8 doubles. With
// prefetchB set (B read in place) it runs the same steps in a second loop
// that also prefetches B 8 steps ahead (AVX512_STEP_PF).
//
// Register map: as the AVX2 kernel's, with A_PTR → rows 0–3 of step p of A
// ((A_PTR), (A_PTR)(RSA*1), (A_PTR)(RSA*2), (A_PTR)(R9*1)) and A_HI → rows
// 4–7; R10 the prefetch pointer, then the count of 2-step iterations;
// Z0–Z23 the accumulators, Z24–Z26 b, Z27–Z28 the broadcasts, Z31 α.

// The 24 accumulators Z0–Z23 of the 8×24 kernel (and of the ZMM peak
// loop) set to zero.
#define ZERO_Z0_Z23 \
	VPXORQ Z0, Z0, Z0; \
	VPXORQ Z1, Z1, Z1; \
	VPXORQ Z2, Z2, Z2; \
	VPXORQ Z3, Z3, Z3; \
	VPXORQ Z4, Z4, Z4; \
	VPXORQ Z5, Z5, Z5; \
	VPXORQ Z6, Z6, Z6; \
	VPXORQ Z7, Z7, Z7; \
	VPXORQ Z8, Z8, Z8; \
	VPXORQ Z9, Z9, Z9; \
	VPXORQ Z10, Z10, Z10; \
	VPXORQ Z11, Z11, Z11; \
	VPXORQ Z12, Z12, Z12; \
	VPXORQ Z13, Z13, Z13; \
	VPXORQ Z14, Z14, Z14; \
	VPXORQ Z15, Z15, Z15; \
	VPXORQ Z16, Z16, Z16; \
	VPXORQ Z17, Z17, Z17; \
	VPXORQ Z18, Z18, Z18; \
	VPXORQ Z19, Z19, Z19; \
	VPXORQ Z20, Z20, Z20; \
	VPXORQ Z21, Z21, Z21; \
	VPXORQ Z22, Z22, Z22; \
	VPXORQ Z23, Z23, Z23

// Rows 0–3 of a step (after loading the step's 24 values of b) and rows
// 4–7: the 8×24 kernel runs both, its 4×24 row-edge tile the first. t0 and
// t1 take the broadcasts of a in turn (Z27 and Z28; the same register
// twice where Z28 is taken: renaming keeps the broadcasts independent).
#define AVX512_ROWS0_3(t0, t1) \
	VMOVUPD      (B_PTR), Z24; \
	VMOVUPD      64(B_PTR), Z25; \
	VMOVUPD      128(B_PTR), Z26; \
	VBROADCASTSD (A_PTR), t0; \
	VFMADD231PD  Z24, t0, Z0; \
	VFMADD231PD  Z25, t0, Z1; \
	VFMADD231PD  Z26, t0, Z2; \
	VBROADCASTSD (A_PTR)(RSA*1), t1; \
	VFMADD231PD  Z24, t1, Z3; \
	VFMADD231PD  Z25, t1, Z4; \
	VFMADD231PD  Z26, t1, Z5; \
	VBROADCASTSD (A_PTR)(RSA*2), t0; \
	VFMADD231PD  Z24, t0, Z6; \
	VFMADD231PD  Z25, t0, Z7; \
	VFMADD231PD  Z26, t0, Z8; \
	VBROADCASTSD (A_PTR)(R9*1), t1; \
	VFMADD231PD  Z24, t1, Z9; \
	VFMADD231PD  Z25, t1, Z10; \
	VFMADD231PD  Z26, t1, Z11

#define AVX512_ROWS4_7(t0, t1) \
	VBROADCASTSD (A_HI), t0; \
	VFMADD231PD  Z24, t0, Z12; \
	VFMADD231PD  Z25, t0, Z13; \
	VFMADD231PD  Z26, t0, Z14; \
	VBROADCASTSD (A_HI)(RSA*1), t1; \
	VFMADD231PD  Z24, t1, Z15; \
	VFMADD231PD  Z25, t1, Z16; \
	VFMADD231PD  Z26, t1, Z17; \
	VBROADCASTSD (A_HI)(RSA*2), t0; \
	VFMADD231PD  Z24, t0, Z18; \
	VFMADD231PD  Z25, t0, Z19; \
	VFMADD231PD  Z26, t0, Z20; \
	VBROADCASTSD (A_HI)(R9*1), t1; \
	VFMADD231PD  Z24, t1, Z21; \
	VFMADD231PD  Z25, t1, Z22; \
	VFMADD231PD  Z26, t1, Z23

#define AVX512_STEP \
	AVX512_ROWS0_3(Z27, Z28); \
	AVX512_ROWS4_7(Z27, Z28); \
	ADDQ CSA, A_PTR;   \
	ADDQ CSA, A_HI;  \
	ADDQ CSB, B_PTR

// AVX512_STEP_PF is a step that first touches the 24 values of b 8 steps
// ahead (their 192 bytes span at most four cache lines: bytes 0, 64, 128
// and the last double, 184): for B read in place, whose steps are rows of
// B far apart (X's rows, 24 KiB), which no hardware prefetcher follows.
#define AVX512_STEP_PF \
	PREFETCHT0 (B_PTR)(CSB*8);     \
	PREFETCHT0 64(B_PTR)(CSB*8);   \
	PREFETCHT0 128(B_PTR)(CSB*8);  \
	PREFETCHT0 184(B_PTR)(CSB*8);  \
	AVX512_STEP

// C row (three ZMM at DX) += α (Z31) · acc (r0, r1, r2); DX moves one row down.
#define AVX512_UPDATE_ROW(r0, r1, r2) \
	VMOVUPD     (C_PTR), Z24;        \
	VMOVUPD     64(C_PTR), Z25;      \
	VMOVUPD     128(C_PTR), Z26;     \
	VFMADD231PD r0, Z31, Z24;     \
	VFMADD231PD r1, Z31, Z25;     \
	VFMADD231PD r2, Z31, Z26;     \
	VMOVUPD     Z24, (C_PTR);        \
	VMOVUPD     Z25, 64(C_PTR);      \
	VMOVUPD     Z26, 128(C_PTR);     \
	ADDQ        LDC, C_PTR

// C row (three ZMM at DX) = α (Z31) · acc (r0, r1, r2) + β (Z30) · D row
// (at R14; 0 where K2 is clear), fused as AVX512_UPDATE_ROW with β·D in
// C's place: the bits of C set to β·D, then updated; the row stays in
// Z24–Z26 (AVX512_D_ROW computes it, AVX512_FROM_D also stores it).
#define AVX512_D_ROW(r0, r1, r2) \
	VMULPD.Z    (R14), Z30, K2, Z24;   \
	VMULPD.Z    64(R14), Z30, K2, Z25; \
	VMULPD.Z    128(R14), Z30, K2, Z26; \
	VFMADD231PD r0, Z31, Z24;     \
	VFMADD231PD r1, Z31, Z25;     \
	VFMADD231PD r2, Z31, Z26

#define AVX512_FROM_D(r0, r1, r2) \
	AVX512_D_ROW(r0, r1, r2);        \
	VMOVUPD     Z24, (C_PTR);        \
	VMOVUPD     Z25, 64(C_PTR);      \
	VMOVUPD     Z26, 128(C_PTR)

// AVX512_FROM_D, then DX and R14 move one row down.
#define AVX512_START_ROW(r0, r1, r2) \
	AVX512_FROM_D(r0, r1, r2); \
	ADDQ LDC, C_PTR;           \
	ADDQ LDC, R14

// AVX512_FROM_D (FROM), then D row ← D row − γ (Z29) · C row: an SGD
// step θ ← θ − η·∇ with D = θ and C = ∇, fused into the product that
// computes ∇ (the optimiser's own pass, with its roundings: the product,
// then the difference); then DX and R14 move one row down. Z27 and Z28
// (the loop's broadcasts) are scratch here. AVX512_START_SUB_ROW_NOC does
// the same without storing C (FROM = AVX512_D_ROW), for a caller that
// keeps only D (c nil): the product never leaves the registers.
#define AVX512_START_SUB_ROW(r0, r1, r2) \
	AVX512_STEP_D(AVX512_FROM_D, r0, r1, r2)

#define AVX512_START_SUB_ROW_NOC(r0, r1, r2) \
	AVX512_STEP_D(AVX512_D_ROW, r0, r1, r2)

#define AVX512_STEP_D(FROM, r0, r1, r2) \
	FROM(r0, r1, r2);              \
	VMULPD      Z29, Z24, Z24;     \
	VMULPD      Z29, Z25, Z25;     \
	VMULPD      Z29, Z26, Z26;     \
	VMOVUPD     (R14), Z27;        \
	VSUBPD      Z24, Z27, Z27;     \
	VMOVUPD     Z27, (R14);        \
	VMOVUPD     64(R14), Z28;      \
	VSUBPD      Z25, Z28, Z28;     \
	VMOVUPD     Z28, 64(R14);      \
	VMOVUPD     128(R14), Z27;     \
	VSUBPD      Z26, Z27, Z27;     \
	VMOVUPD     Z27, 128(R14);     \
	ADDQ        LDC, C_PTR;        \
	ADDQ        LDC, R14

// AVX512_EACH_ROW applies ROW (AVX512_UPDATE_ROW, _START_ROW or
// _START_SUB_ROW) to the 8×24 tile's rows, top to bottom.
#define AVX512_EACH_ROW(ROW) \
	ROW(Z0, Z1, Z2);    \
	ROW(Z3, Z4, Z5);    \
	ROW(Z6, Z7, Z8);    \
	ROW(Z9, Z10, Z11);  \
	ROW(Z12, Z13, Z14); \
	ROW(Z15, Z16, Z17); \
	ROW(Z18, Z19, Z20); \
	ROW(Z21, Z22, Z23)

// PREFETCH_C_ROW touches one row of the tile of C at R10 and moves R10 one
// row down: 24 doubles, 192 bytes at any 8-byte boundary, span at most four
// cache lines, reached from its bytes 0, 64, 128 and its last double (184).
#define PREFETCH_C_ROW \
	PREFETCHT0 (R10);      \
	PREFETCHT0 64(R10);    \
	PREFETCHT0 128(R10);   \
	PREFETCHT0 184(R10);   \
	ADDQ       LDC, R10

// PREFETCH_C_TILE touches the 8 rows of the tile of C (or D) at R10.
#define PREFETCH_C_TILE \
	PREFETCH_C_ROW; \
	PREFETCH_C_ROW; \
	PREFETCH_C_ROW; \
	PREFETCH_C_ROW; \
	PREFETCH_C_ROW; \
	PREFETCH_C_ROW; \
	PREFETCH_C_ROW; \
	PREFETCH_C_ROW

// AVX-512, 4×24 row-edge tile: the 8×24 kernel's ragged last row panel of
// 1–4 rows (the MLP's 50 hidden units are six 8-row panels and 2 rows; a
// batch of 100, twelve and 4). 12 ZMM accumulators (Z0–Z11), the same sums
// in the same order as the 8×24 kernel; four rows are computed (A's ragged
// panel is packed with zero rows) and the first `rows` are written.
//
// Register map: as the 8×24 kernel's rows 0–3 (A_PTR, RSA, R9), without
// A_HI; R10 the count of 2-step iterations, then of the rows to write;
// Z0–Z11 the accumulators, Z24–Z26 b, Z27–Z28 the broadcasts, Z31 α.

// AVX512_ROW_EDGE_ROWS applies ROW (as AVX512_EACH_ROW) to the first R10
// rows of the 4×24 tile, then jumps to rowedgedone.
#define AVX512_ROW_EDGE_ROWS(ROW) \
	ROW(Z0, Z1, Z2);   \
	DECQ R10;          \
	JE   rowedgedone;  \
	ROW(Z3, Z4, Z5);   \
	DECQ R10;          \
	JE   rowedgedone;  \
	ROW(Z6, Z7, Z8);   \
	DECQ R10;          \
	JE   rowedgedone;  \
	ROW(Z9, Z10, Z11); \
	JMP  rowedgedone

#define AVX512_EDGE_STEP \
	AVX512_ROWS0_3(Z27, Z28); \
	ADDQ CSA, A_PTR;   \
	ADDQ CSB, B_PTR

// func kernelAVX512x4x24(kc int, alpha float64, a *float64, rsa, csa int, b *float64, csb int, c *float64, ldc int, rows int, d *float64, beta, gamma float64)
TEXT ·kernelAVX512x4x24(SB), NOSPLIT, $0-104
	GEMM_ARGS

	VPXORQ Z0, Z0, Z0
	VPXORQ Z1, Z1, Z1
	VPXORQ Z2, Z2, Z2
	VPXORQ Z3, Z3, Z3
	VPXORQ Z4, Z4, Z4
	VPXORQ Z5, Z5, Z5
	VPXORQ Z6, Z6, Z6
	VPXORQ Z7, Z7, Z7
	VPXORQ Z8, Z8, Z8
	VPXORQ Z9, Z9, Z9
	VPXORQ Z10, Z10, Z10
	VPXORQ Z11, Z11, Z11

	MOVQ KC, R10
	SHRQ $1, R10
	ANDQ $1, KC
	TESTQ R10, R10
	JE   rowedgetail

rowedgeloop2:
	AVX512_EDGE_STEP
	AVX512_EDGE_STEP
	DECQ R10
	JNZ  rowedgeloop2

rowedgetail:
	TESTQ KC, KC
	JE    rowedgeupdate
	AVX512_EDGE_STEP

rowedgeupdate:
	VBROADCASTSD alpha+8(FP), Z31
	MOVQ rows+72(FP), R10
	MOVQ d+80(FP), R14
	TESTQ R14, R14
	JNE  rowedgestart
	AVX512_ROW_EDGE_ROWS(AVX512_UPDATE_ROW)

rowedgestart: // C = α·acc + β·D
	AVX512_FROM_D_BRANCH(rowedgesub)
	AVX512_ROW_EDGE_ROWS(AVX512_START_ROW)

rowedgesub: // and D −= γ·C
	VBROADCASTSD gamma+96(FP), Z29
	TESTQ C_PTR, C_PTR
	JE    rowedgesubnoc
	AVX512_ROW_EDGE_ROWS(AVX512_START_SUB_ROW)

rowedgesubnoc: // C not kept (c nil)
	AVX512_ROW_EDGE_ROWS(AVX512_START_SUB_ROW_NOC)

rowedgedone:
	VZEROUPPER
	RET

// func kernelAVX512x8x24(kc int, alpha float64, a *float64, rsa, csa int, b *float64, csb int, c *float64, ldc int, prefetchB bool, d *float64, beta, gamma float64)
TEXT ·kernelAVX512x8x24(SB), NOSPLIT, $0-104
	GEMM_ARGS
	LEAQ (A_PTR)(RSA*4), A_HI

	MOVQ  d+80(FP), R10 // the rows the update will read: D's, or C's
	TESTQ R10, R10
	JNE   avx512prefetch
	MOVQ  C_PTR, R10

avx512prefetch:
	PREFETCH_C_TILE

	ZERO_Z0_Z23

	// Two steps per iteration, then the last one if kc is odd.
	MOVQ KC, R10
	SHRQ $1, R10
	ANDQ $1, KC
	TESTQ R10, R10
	JE   avx512tail
	CMPB prefetchB+72(FP), $0
	JNE  avx512pfloop2

avx512loop2:
	AVX512_STEP
	AVX512_STEP
	DECQ R10
	JNZ  avx512loop2
	JMP  avx512tail

avx512pfloop2: // the same steps, prefetching B (prefetchB)
	AVX512_STEP_PF
	AVX512_STEP_PF
	DECQ R10
	JNZ  avx512pfloop2

avx512tail:
	TESTQ KC, KC
	JE    avx512update
	AVX512_STEP

avx512update:
	VBROADCASTSD alpha+8(FP), Z31
	MOVQ d+80(FP), R14
	TESTQ R14, R14
	JNE  avx512start
	AVX512_EACH_ROW(AVX512_UPDATE_ROW)
	VZEROUPPER
	RET

avx512start: // C = α·acc + β·D
	AVX512_FROM_D_BRANCH(avx512sub)
	AVX512_EACH_ROW(AVX512_START_ROW)
	VZEROUPPER
	RET

avx512sub: // and D −= γ·C
	VBROADCASTSD gamma+96(FP), Z29
	TESTQ C_PTR, C_PTR
	JE    avx512subnoc
	AVX512_EACH_ROW(AVX512_START_SUB_ROW)
	VZEROUPPER
	RET

avx512subnoc: // C not kept (c nil)
	AVX512_EACH_ROW(AVX512_START_SUB_ROW_NOC)
	VZEROUPPER
	RET

// ---------------------------------------------------------------------------
// AVX-512, 8×24 tile and up to 2 more columns: the 8×24 kernel's steps on
// columns 0–23 and, in the same loop, columns 24 and 25 (the MLP's N×50
// outputs are two 24-wide panels and 2 columns: the second panel and the
// 2 columns are one call). With A packed in k-major micro-panels (rsa = 1,
// csa = 8: step p's 8 values of a contiguous) one load gives the 8 rows of
// a step as a vector; the 2 columns are then 2 FMAs (Z29 = a₀…a₇ times
// the step's b[24] or b[25] broadcast from memory) into accumulators that
// hold a column each, Z30 and Z31. With A read in place (rows rsa apart)
// the rows' broadcasts are merged into pairs instead (see
// AVX512_WIDE_INPLACE_STEP). An 8×4 edge tile
// (kernelAVX2x8x4) spends 8 broadcast loads and 8 FMAs per step on them,
// and its accumulator chains are too few to hide the FMA latency; here they
// ride on the 24 FMAs of the main tile. Each element is still summed over p
// in order, one fused multiply-add a step (a·b = b·a exactly): the bits of
// the other kernels.
//
// The two extra columns' b is its own panel (be, cse: the ragged panel the
// engine packs 4 wide, or B's rows in place); their sums are stored raw
// into ev for the caller to add into C (C += α·acc, fused, as here), which
// keeps the transposition out of the assembly: with A packed, column 24 in
// ev[0…7] and column 25 in ev[8…15]; read in place, row i's two in
// ev[2i], ev[2i+1].
//
// Register map: as the 8×24 kernel's, plus DI → step p of be, R14 = cse
// in bytes, R15 the prefetch pointer (with A in place); Z29 the step's
// column of a (or pairs of it, in place: Z28 the pair of b, K3–K5 the
// masks); Z30, Z31 the two columns' accumulators (Z31 then α).
#define E_PTR DI
#define CSE   R14

#define AVX512_WIDE_STEP \
	AVX512_ROWS0_3(Z27, Z28);           \
	VMOVUPD          (A_PTR), Z29;      \
	VFMADD231PD.BCST (E_PTR), Z29, Z30; \
	VFMADD231PD.BCST 8(E_PTR), Z29, Z31; \
	AVX512_ROWS4_7(Z27, Z28);           \
	ADDQ CSA, A_PTR;                    \
	ADDQ CSA, A_HI;                     \
	ADDQ CSB, B_PTR;                    \
	ADDQ CSE, E_PTR

// AVX512_PAIRS_ROWS4(rows, c0 … c11, acc) is one step of 4 rows of the
// tile read in place (at rows, rows RSA apart): their 12 accumulators
// c0 … c11 of the 24 columns (b in Z24–Z26), and acc += their pairs of a
// (merged into Z29) times the pair of b in Z28. It is AVX512_ROWS0_3's
// steps with a masked move after each broadcast, while the broadcast is
// still in its register.
#define AVX512_PAIRS_ROWS4(rows, c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, acc) \
	VBROADCASTSD (rows), Z29;         \
	VFMADD231PD  Z24, Z29, c0;        \
	VFMADD231PD  Z25, Z29, c1;        \
	VFMADD231PD  Z26, Z29, c2;        \
	VBROADCASTSD (rows)(RSA*1), Z27;  \
	VFMADD231PD  Z24, Z27, c3;        \
	VFMADD231PD  Z25, Z27, c4;        \
	VFMADD231PD  Z26, Z27, c5;        \
	VMOVAPD      Z27, K3, Z29;        \
	VBROADCASTSD (rows)(RSA*2), Z27;  \
	VFMADD231PD  Z24, Z27, c6;        \
	VFMADD231PD  Z25, Z27, c7;        \
	VFMADD231PD  Z26, Z27, c8;        \
	VMOVAPD      Z27, K4, Z29;        \
	VBROADCASTSD (rows)(R9*1), Z27;   \
	VFMADD231PD  Z24, Z27, c9;        \
	VFMADD231PD  Z25, Z27, c10;       \
	VFMADD231PD  Z26, Z27, c11;       \
	VMOVAPD      Z27, K5, Z29;        \
	VFMADD231PD  Z28, Z29, acc

// AVX512_WIDE_INPLACE_STEP is AVX512_WIDE_STEP for A read in place (rows
// RSA apart, not a packed panel), where no load gives the step's 8 values
// of a as one vector. The 2 columns' accumulators then hold 4 rows each,
// a row's two columns side by side (Z30: rows 0–3, Z31: rows 4–7, lanes
// 2i and 2i+1 = row i's columns 24 and 25), and step p adds
//
//	Z30 += (a₀ a₀ a₁ a₁ a₂ a₂ a₃ a₃) · (b₂₄ b₂₅ b₂₄ b₂₅ b₂₄ b₂₅ b₂₄ b₂₅)
//
// (the same for rows 4–7 into Z31): the pair of b broadcast from memory
// into Z28 (VBROADCASTF32X4: the 16 bytes of two doubles, four times), the
// pairs of a merged into Z29 from the broadcasts the 24-wide rows take
// anyway (row 0 broadcast into Z29 itself, rows 1–3 copied into lanes
// 2–3, 4–5, 6–7 under the masks K3, K4, K5). Six masked moves a step
// replace the gather of 8 values, which cost this tile twice the 8×24
// tile's time.
#define AVX512_WIDE_INPLACE_STEP \
	VMOVUPD         (B_PTR), Z24;   \
	VMOVUPD         64(B_PTR), Z25; \
	VMOVUPD         128(B_PTR), Z26; \
	VBROADCASTF32X4 (E_PTR), Z28;   \
	AVX512_PAIRS_ROWS4(A_PTR, Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7, Z8, Z9, Z10, Z11, Z30); \
	AVX512_PAIRS_ROWS4(A_HI, Z12, Z13, Z14, Z15, Z16, Z17, Z18, Z19, Z20, Z21, Z22, Z23, Z31); \
	ADDQ CSA, A_PTR;                \
	ADDQ CSA, A_HI;                 \
	ADDQ CSB, B_PTR;                \
	ADDQ CSE, E_PTR

// AVX512_INPLACE_STEPS_PF(rows) is 4 steps of AVX512_WIDE_INPLACE_STEP,
// each after touching, 8 rows below rows (A_PTR: the tile's rows 0–3;
// A_HI: 4–7), one of 4 rows' line of this step: there the next row panel
// of A read in place begins. Twice per 8 steps, it brings the next panel's
// rows in while this tile reads its own from L1, so that the next panel's
// first tile (8×24) does not wait on memory for them. Prefetches never
// fault: past A's last row they touch nothing that matters.
#define AVX512_INPLACE_STEPS_PF(rows) \
	LEAQ       (rows)(RSA*8), R15; \
	PREFETCHT0 (R15);              \
	AVX512_WIDE_INPLACE_STEP;      \
	PREFETCHT0 (R15)(RSA*1);       \
	AVX512_WIDE_INPLACE_STEP;      \
	PREFETCHT0 (R15)(RSA*2);       \
	AVX512_WIDE_INPLACE_STEP;      \
	PREFETCHT0 (R15)(R9*1);        \
	AVX512_WIDE_INPLACE_STEP

// func kernelAVX512x8x26(kc int, alpha float64, a *float64, rsa, csa int, b *float64, csb int, c *float64, ldc int, be *float64, cse int, ev *float64, inPlace bool)
TEXT ·kernelAVX512x8x26(SB), NOSPLIT, $0-97
	GEMM_ARGS
	LEAQ (A_PTR)(RSA*4), A_HI
	MOVQ be+72(FP), E_PTR
	MOVQ cse+80(FP), CSE
	SHLQ $3, CSE

	MOVQ C_PTR, R10
	PREFETCH_C_TILE

	ZERO_Z0_Z23
	VPXORQ Z30, Z30, Z30
	VPXORQ Z31, Z31, Z31

	MOVBQZX inPlace+96(FP), R15 // false: A packed; true: A read in place
	TESTQ   R15, R15
	JNE     wideinplace

	// A packed: two steps per iteration, then the last one if kc is odd.
	MOVQ KC, R10
	SHRQ $1, R10
	ANDQ $1, KC
	TESTQ R10, R10
	JE   widetail

wideloop2:
	AVX512_WIDE_STEP
	AVX512_WIDE_STEP
	DECQ R10
	JNZ  wideloop2

widetail:
	TESTQ KC, KC
	JE    wideupdate
	AVX512_WIDE_STEP
	JMP   wideupdate

wideinplace: // A in place: the same steps, the 2 columns' a merged from the rows' broadcasts
	MOVQ  $0x0c, R15 // the masks of rows 1, 2, 3 (4 … 7): lanes 2–3, 4–5, 6–7
	KMOVW R15, K3
	MOVQ  $0x30, R15
	KMOVW R15, K4
	MOVQ  $0xc0, R15
	KMOVW R15, K5
	MOVQ  KC, R10
	SHRQ  $3, R10
	ANDQ  $7, KC
	TESTQ R10, R10
	JE    wideinplacetail

wideinplaceloop8: // 8 steps, touching the next panel's 8 rows
	AVX512_INPLACE_STEPS_PF(A_PTR)
	AVX512_INPLACE_STEPS_PF(A_HI)
	DECQ R10
	JNZ  wideinplaceloop8

wideinplacetail:
	TESTQ KC, KC
	JE    wideupdate
	AVX512_WIDE_INPLACE_STEP
	DECQ KC
	JMP  wideinplacetail

wideupdate:
	MOVQ    ev+88(FP), R10
	VMOVUPD Z30, (R10)
	VMOVUPD Z31, 64(R10)
	VBROADCASTSD alpha+8(FP), Z31
	AVX512_EACH_ROW(AVX512_UPDATE_ROW)
	VZEROUPPER
	RET

#undef E_PTR
#undef CSE

// ---------------------------------------------------------------------------
// The FMA peak: register-only loops of independent fused multiply-adds,
// with no loads or stores, so that nothing but the FMA units can limit
// them. Each of the 12 (YMM) or 24 (ZMM) accumulators is its own chain;
// at least latency × ports (4 × 2 = 8) chains are needed to keep two FMA
// pipes busy, and 12 or 24 leave room on CPUs with longer latencies. The
// multiplicands are zero, so every value stays zero (no denormals, no
// overflow). One iteration is 24 FMAs: 24·4·2 = 192 flops with YMM,
// 24·8·2 = 384 with ZMM. BenchmarkPeak times them; the GEMM benchmarks
// report their share of it.

#define ITERS CX // iterations left

#define FMA12_YMM \
	VFMADD231PD Y14, Y15, Y0;  \
	VFMADD231PD Y14, Y15, Y1;  \
	VFMADD231PD Y14, Y15, Y2;  \
	VFMADD231PD Y14, Y15, Y3;  \
	VFMADD231PD Y14, Y15, Y4;  \
	VFMADD231PD Y14, Y15, Y5;  \
	VFMADD231PD Y14, Y15, Y6;  \
	VFMADD231PD Y14, Y15, Y7;  \
	VFMADD231PD Y14, Y15, Y8;  \
	VFMADD231PD Y14, Y15, Y9;  \
	VFMADD231PD Y14, Y15, Y10; \
	VFMADD231PD Y14, Y15, Y11

// func fmaPeakYMM(iters int)
TEXT ·fmaPeakYMM(SB), NOSPLIT, $0-8
	MOVQ   iters+0(FP), ITERS
	VXORPD Y14, Y14, Y14 // multiplicands: 0
	VXORPD Y15, Y15, Y15
	VXORPD Y0, Y0, Y0 // the 12 chains
	VXORPD Y1, Y1, Y1
	VXORPD Y2, Y2, Y2
	VXORPD Y3, Y3, Y3
	VXORPD Y4, Y4, Y4
	VXORPD Y5, Y5, Y5
	VXORPD Y6, Y6, Y6
	VXORPD Y7, Y7, Y7
	VXORPD Y8, Y8, Y8
	VXORPD Y9, Y9, Y9
	VXORPD Y10, Y10, Y10
	VXORPD Y11, Y11, Y11
	TESTQ  ITERS, ITERS
	JE     peakymmdone

peakymmloop:
	FMA12_YMM
	FMA12_YMM
	DECQ ITERS
	JNZ  peakymmloop

peakymmdone:
	VZEROUPPER
	RET

#define FMA24_ZMM \
	VFMADD231PD Z30, Z31, Z0;  \
	VFMADD231PD Z30, Z31, Z1;  \
	VFMADD231PD Z30, Z31, Z2;  \
	VFMADD231PD Z30, Z31, Z3;  \
	VFMADD231PD Z30, Z31, Z4;  \
	VFMADD231PD Z30, Z31, Z5;  \
	VFMADD231PD Z30, Z31, Z6;  \
	VFMADD231PD Z30, Z31, Z7;  \
	VFMADD231PD Z30, Z31, Z8;  \
	VFMADD231PD Z30, Z31, Z9;  \
	VFMADD231PD Z30, Z31, Z10; \
	VFMADD231PD Z30, Z31, Z11; \
	VFMADD231PD Z30, Z31, Z12; \
	VFMADD231PD Z30, Z31, Z13; \
	VFMADD231PD Z30, Z31, Z14; \
	VFMADD231PD Z30, Z31, Z15; \
	VFMADD231PD Z30, Z31, Z16; \
	VFMADD231PD Z30, Z31, Z17; \
	VFMADD231PD Z30, Z31, Z18; \
	VFMADD231PD Z30, Z31, Z19; \
	VFMADD231PD Z30, Z31, Z20; \
	VFMADD231PD Z30, Z31, Z21; \
	VFMADD231PD Z30, Z31, Z22; \
	VFMADD231PD Z30, Z31, Z23

// func fmaPeakZMM(iters int)
TEXT ·fmaPeakZMM(SB), NOSPLIT, $0-8
	MOVQ   iters+0(FP), ITERS
	VPXORQ Z30, Z30, Z30 // multiplicands: 0
	VPXORQ Z31, Z31, Z31
	ZERO_Z0_Z23 // the 24 chains
	TESTQ  ITERS, ITERS
	JE     peakzmmdone

peakzmmloop:
	FMA24_ZMM
	DECQ ITERS
	JNZ  peakzmmloop

peakzmmdone:
	VZEROUPPER
	RET

#undef ITERS

// ---------------------------------------------------------------------------
// AVX2/FMA pixel normalisation, four inputs per step:
//
//	dst[j] = (pix[j]/255 − mean[j]) · inv[j]     (0 ≤ j < n, n a multiple of 4)
//
// The quotient must be the correctly rounded p/255 that Go's division gives
// (scale255), not p·(1/255), which differs for 24 of the 256 bytes. With
// 1/255 split into rhi = RN(1/255) and rlo = RN(1/255 − rhi), one fused
// multiply-add rounds p·rhi + p·rlo (within 2⁻¹⁰⁶ of p/255) once:
//
//	q = fma(p, rhi, p·rlo)
//
// which is p/255 correctly rounded for every byte (TestNormPixelsSameBits
// checks all 256). Then the subtraction and the product round as Go's do.
//
// First it prefetches the n bytes at next, the ones the caller will
// normalise later (another image's, 3 KiB away or more): their cache misses
// then overlap this run's arithmetic instead of stalling a later run.
//
// Registers: SI → pix, DI → dst, R8 → mean, R9 → inv, CX = j, DX = n;
// Y14 = rhi, Y15 = rlo.

// func normPixelsAVX2(dst *float64, pix *uint8, mean, inv *float64, n int, rhi, rlo float64, next *uint8)
TEXT ·normPixelsAVX2(SB), NOSPLIT, $0-64
	NORM_PIXELS_START
	VBROADCASTSD rhi+40(FP), Y14
	VBROADCASTSD rlo+48(FP), Y15
	XORQ CX, CX
	TESTQ DX, DX
	JE   normdone

normloop:
	VPMOVZXBD    (SI)(CX*1), X0   // four bytes → four int32
	VCVTDQ2PD    X0, Y0           // → four float64 p (exact)
	VMULPD       Y15, Y0, Y1      // p·rlo
	VFMADD231PD  Y14, Y0, Y1      // q = fma(p, rhi, p·rlo) = p/255
	VSUBPD       (R8)(CX*8), Y1, Y1 // q − mean
	VMULPD       (R9)(CX*8), Y1, Y1 // · inv
	VMOVUPD      Y1, (DI)(CX*8)
	ADDQ         $4, CX
	CMPQ         CX, DX
	JB           normloop
	VZEROUPPER

normdone:
	RET

// ---------------------------------------------------------------------------
// AVX-512 pixel normalisation: normPixelsAVX2's arithmetic on eight inputs
// per step, two steps per iteration (n a multiple of 16).
//
// Registers as normPixelsAVX2's, with Z14 = rhi, Z15 = rlo.

// func normPixelsAVX512(dst *float64, pix *uint8, mean, inv *float64, n int, rhi, rlo float64, next *uint8)
TEXT ·normPixelsAVX512(SB), NOSPLIT, $0-64
	NORM_PIXELS_START
	VBROADCASTSD rhi+40(FP), Z14
	VBROADCASTSD rlo+48(FP), Z15
	XORQ CX, CX
	TESTQ DX, DX
	JE   norm512done

norm512loop:
	VPMOVZXBD    (SI)(CX*1), Y0     // eight bytes → eight int32
	VPMOVZXBD    8(SI)(CX*1), Y2
	VCVTDQ2PD    Y0, Z0             // → eight float64 p (exact)
	VCVTDQ2PD    Y2, Z2
	VMULPD       Z15, Z0, Z1        // p·rlo
	VMULPD       Z15, Z2, Z3
	VFMADD231PD  Z14, Z0, Z1        // q = fma(p, rhi, p·rlo) = p/255
	VFMADD231PD  Z14, Z2, Z3
	VSUBPD       (R8)(CX*8), Z1, Z1 // q − mean
	VSUBPD       64(R8)(CX*8), Z3, Z3
	VMULPD       (R9)(CX*8), Z1, Z1 // · inv
	VMULPD       64(R9)(CX*8), Z3, Z3
	VMOVUPD      Z1, (DI)(CX*8)
	VMOVUPD      Z3, 64(DI)(CX*8)
	ADDQ         $16, CX
	CMPQ         CX, DX
	JB           norm512loop
	VZEROUPPER

norm512done:
	RET

// ---------------------------------------------------------------------------
// AVX-512BW pixel panel: eight images' runs of bytes normalised into one
// k-major micro-panel, as the 8×24 kernels read packed A (and the 8×26 one
// must):
//
//	dst[p·8 + r] = (rows[r][p]/255 − mean[p]) · inv[p]   (r < 8, p < n, n a multiple of 64)
//
// with normPixelsAVX2's arithmetic, so the bits of normalise. Each
// iteration loads 64 bytes of each of the 8 rows (Z16–Z23) and transposes
// them with byte, word and dword unpacks. Unpacks work within 128-bit
// lanes, so lane k of every register is its own 8 rows × 16 steps (steps
// 16k … 16k+15 of the iteration), and three rounds turn them step-major:
//
//	bytes:  rows r, r+1 interleaved          steps 0–7 (L), 8–15 (H)
//	words:  rows 0–3 of a step in a dword    steps 0–3, 4–7, 8–11, 12–15
//	dwords: rows 0–7 of a step in a qword    steps 0–1, 2–3, …, 14–15
//
// 24 unpacks for 512 bytes. Register i of the last round holds steps 2i
// and 2i+1 of each lane, 16 bytes: it goes to tmp (row i, lane k at byte
// 16k), and VPMOVZXBD reads each lane back as 16 zero-extended int32, the
// 8 rows of two steps, for PIXEL_NORM, as normPixelsAVX512 zero-extends a
// row's bytes. mean[p] and inv[p] are broadcast from memory. First it
// prefetches the n bytes of each of the 8 rows at next.
//
// Registers: AX, BX, SI, R10–R13, R15 → the 8 rows (CX = p), DI → dst (the
// iteration's 64 steps), R8 → mean, R9 → inv, R14 → tmp, DX = n; Z14 = rhi,
// Z15 = rlo; Z16–Z31 the rounds; Z2–Z6 scratch.

// PIXEL_NORM normalises steps p+s and p+s+1 from Z2, their 16 bytes
// zero-extended to int32 in step-major order (mean and inv at byte offsets
// m0, m1 from p's, dst at d0, d1 from the iteration's).
#define PIXEL_NORM(m0, m1, d0, d1) \
	VCVTDQ2PD        Y2, Z3;              \
	VEXTRACTI64X4    $1, Z2, Y4;          \
	VCVTDQ2PD        Y4, Z4;              \
	VMULPD           Z15, Z3, Z5;         \
	VMULPD           Z15, Z4, Z6;         \
	VFMADD231PD      Z14, Z3, Z5;         \
	VFMADD231PD      Z14, Z4, Z6;         \
	VSUBPD.BCST      m0(R8)(CX*8), Z5, Z5; \
	VSUBPD.BCST      m1(R8)(CX*8), Z6, Z6; \
	VMULPD.BCST      m0(R9)(CX*8), Z5, Z5; \
	VMULPD.BCST      m1(R9)(CX*8), Z6, Z6; \
	VMOVUPD          Z5, d0(DI);          \
	VMOVUPD          Z6, d1(DI)

// PIXEL_PANEL_PAIR normalises steps 16k+2i and 16k+2i+1 of the iteration.
#define PIXEL_PANEL_PAIR(k, i) \
	VPMOVZXBD (i*64+k*16)(R14), Z2; \
	PIXEL_NORM((16*k+2*i)*8, (16*k+2*i+1)*8, (16*k+2*i)*64, (16*k+2*i+1)*64)

// PIXEL_PANEL_LANE normalises lane k's 16 steps.
#define PIXEL_PANEL_LANE(k) \
	PIXEL_PANEL_PAIR(k, 0); \
	PIXEL_PANEL_PAIR(k, 1); \
	PIXEL_PANEL_PAIR(k, 2); \
	PIXEL_PANEL_PAIR(k, 3); \
	PIXEL_PANEL_PAIR(k, 4); \
	PIXEL_PANEL_PAIR(k, 5); \
	PIXEL_PANEL_PAIR(k, 6); \
	PIXEL_PANEL_PAIR(k, 7)

// func normPanelBW(dst *float64, rows *[8]*uint8, mean, inv *float64, n int, rhi, rlo float64, tmp *[8][64]uint8, next *[8]*uint8)
TEXT ·normPanelBW(SB), NOSPLIT, $0-72
	MOVQ n+32(FP), DX
	TESTQ DX, DX
	JE   paneldone

	MOVQ next+64(FP), R14 // prefetch the next panel's 8 runs
	XORQ R11, R11

panelpfrows:
	MOVQ (R14)(R11*8), R15
	LEAQ (R15)(DX*1), R13

panelpfbytes:
	PREFETCHT0 (R15)
	ADDQ       $64, R15
	CMPQ       R15, R13
	JB         panelpfbytes
	INCQ       R11
	CMPQ       R11, $8
	JB         panelpfrows

	MOVQ rows+8(FP), R14
	MOVQ 0(R14), AX
	MOVQ 8(R14), BX
	MOVQ 16(R14), SI
	MOVQ 24(R14), R10
	MOVQ 32(R14), R11
	MOVQ 40(R14), R12
	MOVQ 48(R14), R13
	MOVQ 56(R14), R15
	VBROADCASTSD rhi+40(FP), Z14
	VBROADCASTSD rlo+48(FP), Z15
	MOVQ dst+0(FP), DI
	MOVQ mean+16(FP), R8
	MOVQ inv+24(FP), R9
	MOVQ tmp+56(FP), R14
	XORQ CX, CX

panelloop:
	VMOVDQU64 (AX)(CX*1), Z16 // rows 0–7, 64 bytes each
	VMOVDQU64 (BX)(CX*1), Z17
	VMOVDQU64 (SI)(CX*1), Z18
	VMOVDQU64 (R10)(CX*1), Z19
	VMOVDQU64 (R11)(CX*1), Z20
	VMOVDQU64 (R12)(CX*1), Z21
	VMOVDQU64 (R13)(CX*1), Z22
	VMOVDQU64 (R15)(CX*1), Z23
	VPUNPCKLBW Z17, Z16, Z24 // bytes: rows 0, 1
	VPUNPCKHBW Z17, Z16, Z25
	VPUNPCKLBW Z19, Z18, Z26 // rows 2, 3
	VPUNPCKHBW Z19, Z18, Z27
	VPUNPCKLBW Z21, Z20, Z28 // rows 4, 5
	VPUNPCKHBW Z21, Z20, Z29
	VPUNPCKLBW Z23, Z22, Z30 // rows 6, 7
	VPUNPCKHBW Z23, Z22, Z31
	VPUNPCKLWD Z26, Z24, Z16 // words: rows 0–3, steps 0–3
	VPUNPCKHWD Z26, Z24, Z17 // steps 4–7
	VPUNPCKLWD Z27, Z25, Z18 // steps 8–11
	VPUNPCKHWD Z27, Z25, Z19 // steps 12–15
	VPUNPCKLWD Z30, Z28, Z20 // rows 4–7, steps 0–3
	VPUNPCKHWD Z30, Z28, Z21
	VPUNPCKLWD Z31, Z29, Z22
	VPUNPCKHWD Z31, Z29, Z23
	VPUNPCKLDQ Z20, Z16, Z24 // dwords: rows 0–7, steps 0–1
	VPUNPCKHDQ Z20, Z16, Z25 // steps 2–3
	VPUNPCKLDQ Z21, Z17, Z26 // steps 4–5
	VPUNPCKHDQ Z21, Z17, Z27 // steps 6–7
	VPUNPCKLDQ Z22, Z18, Z28 // steps 8–9
	VPUNPCKHDQ Z22, Z18, Z29 // steps 10–11
	VPUNPCKLDQ Z23, Z19, Z30 // steps 12–13
	VPUNPCKHDQ Z23, Z19, Z31 // steps 14–15
	VMOVDQU64 Z24, 0(R14)
	VMOVDQU64 Z25, 64(R14)
	VMOVDQU64 Z26, 128(R14)
	VMOVDQU64 Z27, 192(R14)
	VMOVDQU64 Z28, 256(R14)
	VMOVDQU64 Z29, 320(R14)
	VMOVDQU64 Z30, 384(R14)
	VMOVDQU64 Z31, 448(R14)
	PIXEL_PANEL_LANE(0)
	PIXEL_PANEL_LANE(1)
	PIXEL_PANEL_LANE(2)
	PIXEL_PANEL_LANE(3)
	ADDQ $4096, DI
	ADDQ $64, CX
	CMPQ CX, DX
	JB   panelloop
	VZEROUPPER

paneldone:
	RET

// ---------------------------------------------------------------------------
// AVX-512 transposition of 8×8 blocks, for packing the operands that must
// be transposed (packTransposed: the forward product's W1ᵀ, every step):
//
//	dst[(p+q)·ldd + r] = src[r·lds + p + q]     (r, q < 8; p = 0, 8, … < n)
//
// Each block is 8 loads, 24 shuffles and 8 stores: the rows' pairs
// interleaved (VUNPCKLPD/HPD: rows r, r+1 at even or odd steps), then
// 128-bit lanes gathered twice (VSHUFF64X2 0x88 takes lanes 0 and 2 of
// each source, 0xDD lanes 1 and 3), which leaves step q's 8 rows in one
// register. The plain-Go packing moves a value at a time.
//
// Registers: SI → the block's row 0 of src, R10 → row 4; R8 = lds, R9 =
// 3·lds (bytes); DI → its row 0 of dst, R13 → row 4; R11 = ldd, R12 =
// 3·ldd; CX the blocks left. Z0–Z7 the rows, then the steps; Z8–Z23 scratch.

// func transpose8AVX512(dst *float64, ldd int, src *float64, lds int, n int)
TEXT ·transpose8AVX512(SB), NOSPLIT, $0-40
	TRANSPOSE_ARGS(3, transdone)

transloop:
	LEAQ    (SI)(R8*4), R10
	LEAQ    (DI)(R11*4), R13
	VMOVUPD (SI), Z0
	VMOVUPD (SI)(R8*1), Z1
	VMOVUPD (SI)(R8*2), Z2
	VMOVUPD (SI)(R9*1), Z3
	VMOVUPD (R10), Z4
	VMOVUPD (R10)(R8*1), Z5
	VMOVUPD (R10)(R8*2), Z6
	VMOVUPD (R10)(R9*1), Z7
	VUNPCKLPD Z1, Z0, Z8 // rows 0, 1 at steps 0, 2, 4, 6
	VUNPCKHPD Z1, Z0, Z9 // … at steps 1, 3, 5, 7
	VUNPCKLPD Z3, Z2, Z10
	VUNPCKHPD Z3, Z2, Z11
	VUNPCKLPD Z5, Z4, Z12
	VUNPCKHPD Z5, Z4, Z13
	VUNPCKLPD Z7, Z6, Z14
	VUNPCKHPD Z7, Z6, Z15
	VSHUFF64X2 $0x88, Z10, Z8, Z16 // rows 0–3 at steps 0, 4
	VSHUFF64X2 $0xDD, Z10, Z8, Z17 // … 2, 6
	VSHUFF64X2 $0x88, Z11, Z9, Z18 // … 1, 5
	VSHUFF64X2 $0xDD, Z11, Z9, Z19 // … 3, 7
	VSHUFF64X2 $0x88, Z14, Z12, Z20 // rows 4–7 at steps 0, 4
	VSHUFF64X2 $0xDD, Z14, Z12, Z21
	VSHUFF64X2 $0x88, Z15, Z13, Z22
	VSHUFF64X2 $0xDD, Z15, Z13, Z23
	VSHUFF64X2 $0x88, Z20, Z16, Z0 // step 0, rows 0–7
	VSHUFF64X2 $0xDD, Z20, Z16, Z4 // step 4
	VSHUFF64X2 $0x88, Z21, Z17, Z2
	VSHUFF64X2 $0xDD, Z21, Z17, Z6
	VSHUFF64X2 $0x88, Z22, Z18, Z1
	VSHUFF64X2 $0xDD, Z22, Z18, Z5
	VSHUFF64X2 $0x88, Z23, Z19, Z3
	VSHUFF64X2 $0xDD, Z23, Z19, Z7
	VMOVUPD Z0, (DI)
	VMOVUPD Z1, (DI)(R11*1)
	VMOVUPD Z2, (DI)(R11*2)
	VMOVUPD Z3, (DI)(R12*1)
	VMOVUPD Z4, (R13)
	VMOVUPD Z5, (R13)(R11*1)
	VMOVUPD Z6, (R13)(R11*2)
	VMOVUPD Z7, (R13)(R12*1)
	ADDQ $64, SI
	LEAQ (DI)(R11*8), DI
	DECQ CX
	JNZ  transloop
	VZEROUPPER

transdone:
	RET

// ---------------------------------------------------------------------------
// AVX2 transposition of 4×4 and 2×4 blocks, the packings that transpose
// on CPUs without AVX-512 and the runs that transpose8AVX512 leaves
// (packTransposed: the 6×8 kernel's A panels from the rows of A, 4 and 2
// of their 6 runs; B panels of 8 from the rows of W1):
//
//	dst[(p+q)·ldd + r] = src[r·lds + p + q]     (r < 4 or 2, q < 4; p = 0, 4, … < n)
//
// A 4×4 block is 4 loads, 4 VUNPCKLPD/HPD (rows r, r+1 at even or odd
// steps) and 4 VPERM2F128 (the 128-bit halves: steps 0, 1 from the low
// halves, 2, 3 from the high ones), then 4 stores. A 2×4 block is 2 loads,
// 2 unpacks and 4 stores of 128 bits.
//
// Registers: SI → the block's row 0 of src, R8 = lds, R9 = 3·lds (bytes);
// DI → its step 0 of dst, R11 = ldd, R12 = 3·ldd; CX the blocks left.

// func transpose4AVX2(dst *float64, ldd int, src *float64, lds int, n int)
TEXT ·transpose4AVX2(SB), NOSPLIT, $0-40
	TRANSPOSE_ARGS(2, t4done)

t4loop:
	VMOVUPD    (SI), Y0
	VMOVUPD    (SI)(R8*1), Y1
	VMOVUPD    (SI)(R8*2), Y2
	VMOVUPD    (SI)(R9*1), Y3
	VUNPCKLPD  Y1, Y0, Y4      // rows 0, 1 at steps 0 | 2
	VUNPCKHPD  Y1, Y0, Y5      // … at steps 1 | 3
	VUNPCKLPD  Y3, Y2, Y6      // rows 2, 3 at steps 0 | 2
	VUNPCKHPD  Y3, Y2, Y7      // … at steps 1 | 3
	VPERM2F128 $0x20, Y6, Y4, Y0 // step 0, rows 0–3
	VPERM2F128 $0x20, Y7, Y5, Y1 // step 1
	VPERM2F128 $0x31, Y6, Y4, Y2 // step 2
	VPERM2F128 $0x31, Y7, Y5, Y3 // step 3
	VMOVUPD    Y0, (DI)
	VMOVUPD    Y1, (DI)(R11*1)
	VMOVUPD    Y2, (DI)(R11*2)
	VMOVUPD    Y3, (DI)(R12*1)
	ADDQ       $32, SI
	LEAQ       (DI)(R11*4), DI
	DECQ       CX
	JNZ        t4loop
	VZEROUPPER

t4done:
	RET

// func transpose2AVX2(dst *float64, ldd int, src *float64, lds int, n int)
TEXT ·transpose2AVX2(SB), NOSPLIT, $0-40
	TRANSPOSE_ARGS(2, t2done)

t2loop:
	VMOVUPD      (SI), Y0
	VMOVUPD      (SI)(R8*1), Y1
	VUNPCKLPD    Y1, Y0, Y2        // rows 0, 1 at steps 0 | 2
	VUNPCKHPD    Y1, Y0, Y3        // … at steps 1 | 3
	VMOVUPD      X2, (DI)
	VMOVUPD      X3, (DI)(R11*1)
	VEXTRACTF128 $1, Y2, (DI)(R11*2)
	VEXTRACTF128 $1, Y3, (DI)(R12*1)
	ADDQ         $32, SI
	LEAQ         (DI)(R11*4), DI
	DECQ         CX
	JNZ          t2loop
	VZEROUPPER

t2done:
	RET

// ---------------------------------------------------------------------------
// AVX2 copy of B's rows into packed panels (packRuns, op(B) = B), for
// panels a multiple of 8 wide (the 6×8 and 8×24 kernels'):
//
//	dst[q·ps + p·nr + j] = src[p·rs + q·nr + j]   (p < kcb, q < panels, j < nr)
//
// Step p copies one run of panels·nr values of a row of B, 64 bytes (two
// YMM) at a time, to the same step of each panel: one pass over every
// row, where copy would cost a call per panel and step.
//
// Registers: SI → row p of src, DI → step p of panel 0, R9 = rs, R8 = ps,
// R12 = nr (bytes); AX → the run, BX → the panel being filled, R13 the
// offset in the panel's step; CX the steps left, R10 the panels, DX those
// left in this step.

// func packRunsAVX2(dst *float64, ps int, src *float64, rs, kcb, panels, nr int)
TEXT ·packRunsAVX2(SB), NOSPLIT, $0-56
	MOVQ kcb+32(FP), CX
	TESTQ CX, CX
	JE   prdone
	MOVQ dst+0(FP), DI
	MOVQ ps+8(FP), R8
	SHLQ $3, R8
	MOVQ src+16(FP), SI
	MOVQ rs+24(FP), R9
	SHLQ $3, R9
	MOVQ panels+40(FP), R10
	MOVQ nr+48(FP), R12
	SHLQ $3, R12

prstep:
	MOVQ SI, AX
	MOVQ DI, BX
	MOVQ R10, DX

prpanel:
	XORQ R13, R13

prchunk:
	VMOVUPD (AX)(R13*1), Y0
	VMOVUPD 32(AX)(R13*1), Y1
	VMOVUPD Y0, (BX)(R13*1)
	VMOVUPD Y1, 32(BX)(R13*1)
	ADDQ    $64, R13
	CMPQ    R13, R12
	JLT     prchunk
	ADDQ    R12, AX
	ADDQ    R8, BX
	DECQ    DX
	JNZ     prpanel
	ADDQ    R9, SI
	ADDQ    R12, DI
	DECQ    CX
	JNZ     prstep
	VZEROUPPER

prdone:
	RET

// ---------------------------------------------------------------------------
// The sums apart of a product cut along K added into C (chainRows), AVX2:
//
//	c[j] = fma(α, s[j], c[j])     (0 ≤ j < n)
//
// 16 values an iteration (four YMM), then 4, then one (VFMADD231SD): every
// element rounded once, as math.FMA does, so the bits of the Go loop
// (fmaAddGo).
//
// Registers: SI → s, DI → c, CX = values left; Y15 = α.

// func fmaAddAVX2(alpha float64, s, c *float64, n int)
TEXT ·fmaAddAVX2(SB), NOSPLIT, $0-32
	VBROADCASTSD alpha+0(FP), Y15
	MOVQ         s+8(FP), SI
	MOVQ         c+16(FP), DI
	MOVQ         n+24(FP), CX

fmaadd16:
	CMPQ        CX, $16
	JLT         fmaadd4
	VMOVUPD     (DI), Y0
	VMOVUPD     32(DI), Y1
	VMOVUPD     64(DI), Y2
	VMOVUPD     96(DI), Y3
	VFMADD231PD (SI), Y15, Y0
	VFMADD231PD 32(SI), Y15, Y1
	VFMADD231PD 64(SI), Y15, Y2
	VFMADD231PD 96(SI), Y15, Y3
	VMOVUPD     Y0, (DI)
	VMOVUPD     Y1, 32(DI)
	VMOVUPD     Y2, 64(DI)
	VMOVUPD     Y3, 96(DI)
	ADDQ        $128, SI
	ADDQ        $128, DI
	SUBQ        $16, CX
	JMP         fmaadd16

fmaadd4:
	CMPQ        CX, $4
	JLT         fmaadd1
	VMOVUPD     (DI), Y0
	VFMADD231PD (SI), Y15, Y0
	VMOVUPD     Y0, (DI)
	ADDQ        $32, SI
	ADDQ        $32, DI
	SUBQ        $4, CX
	JMP         fmaadd4

fmaadd1:
	TESTQ       CX, CX
	JE          fmaadddone
	VMOVSD      (DI), X0
	VFMADD231SD (SI), X15, X0
	VMOVSD      X0, (DI)
	ADDQ        $8, SI
	ADDQ        $8, DI
	DECQ        CX
	JMP         fmaadd1

fmaadddone:
	VZEROUPPER
	RET
