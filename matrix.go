package main

// matrix.go: the one matrix type and the GEMM engine every layer runs on.
//
//	C = α·op(A)·op(B) + β·C,   op(X) ∈ {X, Xᵀ}
//
// op(A) is M×K, op(B) is K×N, C is M×N. The products the MLP needs:
//
//	forward      s1  = x·W1ᵀ         (N×D)·(D×H)      NoTrans, Trans
//	dW1          dW1 = dHᵀ·x         (H×N)·(N×D)      Trans,   NoTrans
//	second layer dH  = G·W2          (N×C)·(C×H)      NoTrans, NoTrans
//	             dW2 = Gᵀ·h          (C×N)·(N×H)      Trans,   NoTrans
//
// (the names of network.go's header: x the input batch, h the hidden
// activations, G = ∂cost/∂scores, dH = ∂cost/∂s1)
//
// Three implementations live side by side:
//
//   - GemmNaive: the textbook triple loop. It is the reference and the test
//     oracle; read it first.
//   - the blocked engine (Gemm.Mul): cuts the operands into blocks sized for
//     the caches, packs the ones it should into contiguous panels, and runs a
//     register-blocked micro-kernel over them (the BLIS/GotoBLAS scheme, as
//     in gonum's dgemm). The micro-kernel is the only part that differs
//     between CPUs: on x86-64 it is assembly (matrix_amd64.s: AVX2/FMA 6×8
//     and AVX-512 8×24, found by CPUID at start-up; Gemm.plan picks one per
//     product), elsewhere and in -tags purego builds the plain-Go
//     kernelGo2x4 below, which is also the readable version of the others.
//   - the parallel engine: the same blocked algorithm, with the output C cut
//     into independent rectangles, one per worker goroutine.
//
// Determinism. Every element C[i,j] is summed in exactly the same order,
// whatever the number of workers and whichever kernel: the K dimension is
// always cut into the same kc-sized slices, processed in increasing order,
// and inside a slice the micro-kernel accumulates k = 0, 1, 2, … in a
// register with fused multiply-adds before adding α times the slice's total
// into C with one more. Workers only decide *which* elements of C they own,
// and kernels only how many at once, never how an element is summed, so
// results are bitwise identical for any GOMAXPROCS and on any CPU.
//
// Roundings. Go may fuse x*y + z (and, on arm64, x*y − z and z − x*y) into
// one fused multiply-add where the target has one (arm64; amd64 built with
// GOAMD64=v3), which rounds once instead of twice and so changes the bits
// from one build to another. Every product that is rounded before it is
// added is therefore written float64(x*y): the conversion rounds, and the
// Go spec forbids fusing across it. The only fused multiply-adds are the
// kernels' math.FMA and VFMADD, the same on every target; .ci/check-fma
// checks that no other one creeps in.

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ---------------------------------------------------------------------------
// The matrix type.

// Matrix is a dense row-major matrix: element (i, j) is Data[i*Cols+j].
type Matrix struct {
	Rows, Cols int
	Data       []float64
}

// NewMatrix returns a zeroed rows×cols matrix.
func NewMatrix(rows, cols int) *Matrix {
	if rows < 0 || cols < 0 {
		panic(fmt.Sprintf("mlp: NewMatrix: negative shape %dx%d", rows, cols))
	}
	return &Matrix{Rows: rows, Cols: cols, Data: make([]float64, rows*cols)}
}

// At returns element (i, j).
func (m *Matrix) At(i, j int) float64 { return m.Data[i*m.Cols+j] }

// Row returns row i as a slice sharing m's storage.
func (m *Matrix) Row(i int) []float64 { return m.Data[i*m.Cols : (i+1)*m.Cols] }

// RowsView returns rows [from, to) as a matrix sharing m's storage.
func (m *Matrix) RowsView(from, to int) *Matrix {
	return &Matrix{Rows: to - from, Cols: m.Cols, Data: m.Data[from*m.Cols : to*m.Cols]}
}

// Shape is "RxC", for messages.
func (m *Matrix) Shape() string { return fmt.Sprintf("%dx%d", m.Rows, m.Cols) }

// Clone returns a deep copy.
func (m *Matrix) Clone() *Matrix {
	c := &Matrix{Rows: m.Rows, Cols: m.Cols, Data: make([]float64, len(m.Data))}
	copy(c.Data, m.Data)
	return c
}

// gemmShape checks the operand shapes of C = α·op(A)·op(B) + β·C and returns
// M, K, N. A mismatch is a caller bug and panics naming every shape.
func gemmShape(transA, transB bool, a, b, c *Matrix) (m, k, n int) {
	m, k = a.Rows, a.Cols
	if transA {
		m, k = k, m
	}
	kb, n := b.Rows, b.Cols
	if transB {
		kb, n = n, kb
	}
	if k != kb || c.Rows != m || c.Cols != n {
		panic(fmt.Sprintf("mlp: gemm shape mismatch: op(A) is %dx%d (A %s, trans %v), op(B) is %dx%d (B %s, trans %v), C is %s",
			m, k, a.Shape(), transA, kb, n, b.Shape(), transB, c.Shape()))
	}
	if len(a.Data) != a.Rows*a.Cols || len(b.Data) != b.Rows*b.Cols || len(c.Data) != c.Rows*c.Cols {
		panic("mlp: gemm: a matrix's Data length does not match Rows*Cols")
	}
	return m, k, n
}

// strides returns how to step through op(X) stored row-major: element (r, c)
// of op(X) is X.Data[r*rs + c*cs].
func strides(x *Matrix, trans bool) (rs, cs int) {
	if trans {
		return 1, x.Cols
	}
	return x.Cols, 1
}

// ---------------------------------------------------------------------------
// The reference: GemmNaive, the textbook triple loop.

// GemmNaive is the reference: C = α·op(A)·op(B) + β·C by the definition
//
//	C[i,j] = α·Σ_k op(A)[i,k]·op(B)[k,j] + β·C[i,j]
//
// one dot product per element, k in increasing order. Slow and obviously right.
func GemmNaive(transA, transB bool, alpha float64, a, b *Matrix, beta float64, c *Matrix) {
	m, k, n := gemmShape(transA, transB, a, b, c)
	ars, acs := strides(a, transA)
	brs, bcs := strides(b, transB)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var sum float64
			for p := 0; p < k; p++ {
				sum += float64(a.Data[i*ars+p*acs] * b.Data[p*brs+j*bcs])
			}
			cij := &c.Data[i*c.Cols+j]
			if beta == 0 {
				*cij = alpha * sum // β = 0 overwrites, even a NaN already in C
			} else {
				*cij = float64(alpha*sum) + float64(beta*(*cij))
			}
		}
	}
}

// ---------------------------------------------------------------------------
// Tuning: the constants, the blocking, the micro-kernels and their choice.

// Tuning constants, in one place.
//
//	kc: depth of one packed slice of K, the same for every kernel. It fixes
//	    the summation order (each tile sums kc products in a register, then
//	    adds them to C), so every kernel that uses FMA gives the same bits:
//	    the AVX2 and AVX-512 kernels agree to the bit, on any CPU. 256 keeps
//	    the AVX2 kernel's B micro-panel (kc×8 doubles, 16 KiB) in a 32 KiB L1
//	    and makes the C update (load, FMA, store per accumulator) under 1 %
//	    of a tile's work; 128, which would fit the AVX-512 kernel's 24-wide
//	    panel in L1 too, measured slower at every MLP shape on AMD Zen 4
//	    (the 10000×3072×50 evaluation product: 30 → 23 GFLOP/s).
//	maxMC, maxNC: caps on mc and nc, for CPUs that report huge caches.
//	mc, nc: rows of A and columns of B packed at once; they do not change any
//	    result, only speed, so they come from the CPU's caches (blockingFor):
//	    the mc×kc block of A fills at most half of L2, the kc×nc block of B at
//	    most a quarter of L3. Blocks of C no wider than narrowN columns (B's
//	    K slice in a quarter of L2) take A one micro-panel at a time.
//	minPartFlops: a product is split over one worker per this many flops
//	    (2·M·N·K), at most all of them (partsFor): handing out a part and
//	    waiting for it costs a few µs, so a part must carry tens of µs of
//	    work. Measured on 2 cores of an Intel Xeon (AVX-512 with FP16 and
//	    AMX flags), 1 worker against 2, best of 7: 100×100×50 (1 MFLOP)
//	    18 → 27 µs and 100×300×50 (3 MFLOP) 51 → 66 µs, slower split;
//	    100×3072×10 (6.1 MFLOP) 286 → 221 µs and 10×100×3072 209 → 116 µs,
//	    faster. (It was a total of 200,000 flops for any worker count: the
//	    1–3 MFLOP products ran 1.3–1.5× slower on two cores, and on 16
//	    the step's two 30 MFLOP products went out in 13 and 16 parts.)
//	parallelMinElems: the same for ParallelFor's element-wise passes:
//	    one part per this many elements (about 10 µs of an update).
//	prepFlops: what preparing one element of an operand costs a worker, in
//	    flops of kernel work (splitByRows): normalising a pixel takes 0.12 ns
//	    in cache (BenchmarkPixelPanel) to 0.24 ns in a run (its profile),
//	    about as long as 16 flops at 100 GFLOP/s; packing a float costs
//	    less, but each worker reads the operand from the shared cache too.
//	chainFlops: what adding one sum apart into C costs after a product cut
//	    along K (splitByK, chainRows), in flops of kernel work. It was the
//	    scalar loop's 0.5 ns an element (the forward product's 30,000 in
//	    about 14 µs); fmaAdd's four lanes took the rest of that wait to
//	    within the noise of no chain at all on an AMD EPYC Zen 5, so 64 is
//	    an upper bound now, kept where it was measured to choose well.
//	pixelBCols: columns of a byte B (MulAddPixelsB) a worker normalises at
//	    once, a multiple of every nr: kc×240 doubles (480 KiB) stay in L2
//	    while every row panel of A passes over them, and each row of bytes is
//	    one run of 240 for the pixel kernels.
const (
	kc               = 256
	maxMC            = 512
	maxNC            = 4096
	minPartFlops     = 3_000_000
	parallelMinElems = 20_000
	pixelBCols       = 240
	prepFlops        = 16
	chainFlops       = 64
)

// blockingFor returns mc, nc and narrowN (see gemmKernel) for a kernel on
// a CPU with the given L2 and L3 sizes in bytes (0: unknown; then 512 KiB
// and 8 MiB are assumed, the smallest of the machines this was measured
// on). mc is a multiple of mr and nc of nr, so blocks split into whole tiles.
func blockingFor(k microKernel, l2, l3 int) (mc, nc, narrowN int) {
	if l2 <= 0 {
		l2 = assumedL2
	}
	if l3 <= 0 {
		l3 = assumedL3
	}
	mc = l2 / 2 / (8 * kc) / k.mr * k.mr
	nc = l3 / 4 / (8 * kc) / k.nr * k.nr
	narrowN = l2 / 4 / (8 * kc)
	return min(max(mc, k.mr), maxMC/k.mr*k.mr), min(max(nc, k.nr), maxNC/k.nr*k.nr), narrowN
}

// maxLegacyL3 caps the L3 of AMD's older cache leaf, which gives the whole
// socket's (508 MiB on the AMD EPYC Zen 5 guest of the README: 16 dies of
// 32 MiB) where a core shares only its own die's: 32 MiB on Zen 3–5 (16 on
// Zen 2, 96 with 3D V-Cache).
const maxLegacyL3 = 32 << 20

// legacyCacheSizes decodes AMD's older cache leaves, for CPUs whose
// hypervisor hides the newer one (cacheSizes): ecx5 is ECX of 0x80000005
// (bits 31–24: L1d in KiB), ecx6 and edx6 ECX and EDX of 0x80000006 (bits
// 31–16 of ECX: L2 in KiB; bits 31–18 of EDX: L3 in 512 KiB units, capped
// at maxLegacyL3).
func legacyCacheSizes(ecx5, ecx6, edx6 uint32) (l1d, l2, l3 int) {
	return int(ecx5>>24) << 10, int(ecx6>>16) << 10, min(int(edx6>>18)<<19, maxLegacyL3)
}

// assumedL2 and assumedL3 are the cache sizes taken when the CPU reports
// none (blockingFor).
const (
	assumedL2 = 512 << 10
	assumedL3 = 8 << 20
)

// microKernel computes one mr×nr tile:
//
//	C[i, j] = fma(α, Σ_{p<kc} a[p*csa + i*rsa] · b[p*csb + j], C[i, j])
//	                                          (0 ≤ i < mr, 0 ≤ j < nr)
//
// where a holds a kc×mr micro-panel of op(A) (element (i, p) of the tile's
// rows at a[p*csa + i*rsa]), b a kc×nr micro-panel of op(B) whose steps are
// runs of nr values csb apart, and C's tile starts at c[0] with row stride
// ldc. The sum runs over p in increasing order with one fused multiply-add
// per step, so every kernel gives the same bits.
type microKernel struct {
	name   string // what -kernel calls it: go, avx2, avx512
	tile   string // "6x8"
	mr, nr int
	// direct: the kernel reads A and B in place through the strides; the
	// engine packs only ragged edges and transposed B. Otherwise it packs
	// both operands (rsa = 1, csa = mr, csb = nr).
	direct bool
	fn     func(kc int, alpha float64, a []float64, rsa, csa int, b []float64, csb int, c []float64, ldc int)
	// inPlaceB, if not nil, is fn for B read in place (not packed): the
	// same sums, prefetching B a few steps ahead, since its steps are rows
	// of B far apart (dW1 = dHᵀ·x reads x's rows, 24 KiB apart), which no
	// hardware prefetcher follows. With packed B the prefetches only cost.
	inPlaceB func(kc int, alpha float64, a []float64, rsa, csa int, b []float64, csb int, c []float64, ldc int)
	// edge, if not nil, computes a tile of whole mr rows whose column panel
	// is ragged with at most edgeNR columns (cols of them), straight into C
	// and with fn's bits: the N×50 outputs' last 2 columns, which would
	// otherwise cost a whole nr-wide tile on a scratch copy of C. b's steps
	// hold at least edgeNR values (the packed ragged panel's nr).
	edge   func(kc int, alpha float64, a []float64, rsa, csa int, b []float64, csb int, c []float64, ldc, cols int)
	edgeNR int
	// rowEdge, if not nil, does the same for a tile of whole nr columns
	// whose row panel is ragged with at most rowEdgeMR rows (rows of them):
	// the 50 hidden units' last 2 rows in dW1 = dHᵀ·x.
	rowEdge   func(kc int, alpha float64, a []float64, rsa, csa int, b []float64, csb int, c []float64, ldc, rows int)
	rowEdgeMR int
	// wide, if not nil, computes a tile of mr rows and nr+cols columns
	// (1 ≤ cols ≤ wideNR) with fn's bits, A packed or in place: fn's tile
	// plus the columns of a ragged last panel (its own b, be, steps cse
	// apart) in one pass over A. The N×50 outputs' second panel
	// and last 2 columns, whose edge tile alone costs a fifth of the
	// product otherwise (see kernelAVX512x8x26).
	wide   func(kc int, alpha float64, a []float64, rsa, csa int, b []float64, csb int, be []float64, cse int, c []float64, ldc, cols int)
	wideNR int
	// fromD and rowFromD, if not nil, are fn (or inPlaceB, for inPlace)
	// and rowEdge starting the tile from β·D instead of C (a kernel with
	// fromD and rowEdge has rowFromD too):
	// C = fma(α, acc, β·d), d the tile of D (rows ldc apart), with the
	// bits of C set to β·D (startC) and then updated. A product of one K
	// slice with a D (dW1 = dHᵀ·x + 2λ·W1) then writes C once, not twice.
	// With γ ≠ 0 they then also take D ← D − γ·C (subTile's bits): the
	// SGD step W1 ← W1 − η·dW1 while dW1's tile is in registers; then
	// they take c = nil to mean that the caller keeps only D
	// (MulAddSub's keepC = false): the product never leaves the
	// registers, and C is neither read nor written.
	fromD    func(kc int, alpha float64, a []float64, rsa, csa int, b []float64, csb int, c []float64, ldc int, d []float64, beta, gamma float64, inPlace bool)
	rowFromD func(kc int, alpha float64, a []float64, rsa, csa int, b []float64, csb int, c []float64, ldc, rows int, d []float64, beta, gamma float64)
	// pixelPanel, if not nil, normalises the runs of bytes of mr = 8
	// images (rows) into one k-major micro-panel of packed A,
	// dst[p·8 + r] = normalised rows[r][p], with normalise's bits,
	// prefetching the runs of next. It does the longest multiple of its
	// step it can and returns how many steps that is. MulPixels then packs
	// its blocks of A (normPanels), so that wide can run on them.
	pixelPanel func(dst []float64, rows, next *[8][]uint8, mean, inv []float64) int
	// fmaAdd is fmaAddGo or its bits faster: c[j] = fma(α, s[j], c[j]),
	// how the sums apart of a product cut along K go into C (chainRows).
	fmaAdd func(alpha float64, s, c []float64)
}

// kernelGo is the portable micro-kernel: a 2×4 tile held in 8 scalar
// accumulators. This is the readable version of the fast kernels, and the
// one of -tags purego builds and of other architectures.
var kernelGo = microKernel{name: "go", tile: "2x4", mr: 2, nr: 4, fn: kernelGo2x4, fmaAdd: fmaAddGo}

// fmaAddGo adds α·s into c, c[j] = fma(α, s[j], c[j]) (len(s) = len(c)),
// rounded once, as the kernels' update of C after a K slice.
func fmaAddGo(alpha float64, s, c []float64) {
	if len(s) != len(c) {
		panic("mlp: fmaAdd: lengths differ")
	}
	for j, v := range s {
		c[j] = math.FMA(alpha, v, c[j])
	}
}

// cpuInfo is what the start-up probe learnt about the processor.
type cpuInfo struct {
	Model       string        // its name, as lscpu shows it
	Kernels     []microKernel // the assembly kernels it can run, widest first
	Speeds      []float64     // their GFLOP/s on cache-resident panels (calibrate)
	L1d, L2, L3 int           // data cache sizes in bytes, 0 if unknown
	// FMALoops are the register-only FMA loops this CPU runs (fmaLoop),
	// narrowest first.
	FMALoops []fmaLoop
	// Pixels are the pixel kernels (see normalise), widest first; none
	// on builds without assembly.
	Pixels []pixelKernel
	// Transpose8, if not nil, moves 8 runs of src (lds apart) into dst
	// as steps of 8 (step p at dst[p·ldd …]), the longest multiple of 8
	// steps of n it can, and returns how many (see packTransposed).
	Transpose8 func(dst []float64, ldd int, src []float64, lds, n int) int
	// Transpose4 and Transpose2 do the same for 4 and 2 runs, in steps
	// of 4.
	Transpose4, Transpose2 func(dst []float64, ldd int, src []float64, lds, n int) int
	// PackRuns, if not nil, is packRuns' loop for whole panels a multiple
	// of 8 wide, ps values apart: dst[q·ps + p·nr + j] = src[p·rs + q·nr + j]
	// for steps p < kcb, panels q < panels, j < nr.
	PackRuns func(dst []float64, ps int, src []float64, rs, kcb, panels, nr int)
}

// pixelKernel normalises pixel bytes as normaliseGo does, to the bit, a
// whole number of its steps from the start of pix (all it can), and
// returns how many inputs it did. It prefetches the bytes of next.
type pixelKernel struct {
	name string // "avx512", "avx2"
	fn   func(dst []float64, pix []uint8, mean, inv []float64, next []uint8) int
}

// cpu is filled once, before main runs, by matrix_amd64.go's init (the
// assembly build on x86-64) and never written afterwards; on other builds it
// stays empty and every engine runs kernelGo.
var cpu cpuInfo

// KernelNames lists the values -kernel accepts on this binary and CPU.
func KernelNames() []string {
	names := []string{"auto", kernelGo.name}
	for _, k := range cpu.Kernels {
		names = append(names, k.name)
	}
	return names
}

// kernelByName returns the micro-kernels -kernel names: "auto" (or "") is
// every kernel this CPU runs, among which the engine picks per product (see
// Gemm.plan); "go" the plain-Go one; "avx2" and "avx512" one assembly kernel,
// where the CPU (and this build) has it.
func kernelByName(name string) ([]microKernel, error) {
	switch name {
	case "", "auto":
		if len(cpu.Kernels) > 0 {
			return cpu.Kernels, nil
		}
		return []microKernel{kernelGo}, nil
	case kernelGo.name:
		return []microKernel{kernelGo}, nil
	}
	for _, k := range cpu.Kernels {
		if k.name == name {
			return []microKernel{k}, nil
		}
	}
	switch name {
	case "avx2", "avx512":
		return nil, fmt.Errorf("kernel %q: not available here (this binary and CPU run %s)", name, strings.Join(KernelNames(), ", "))
	}
	return nil, fmt.Errorf("kernel %q: unknown; want one of %s", name, strings.Join(KernelNames(), ", "))
}

// speed is kernel k's speed relative to the slowest kernel calibrate
// measured, coarsened: a ratio below 1.4 counts as 1. Where both kernels
// have the same arithmetic peak (AMD Zen 4 executes a 512-bit FMA as two
// 256-bit halves) their measured ratio wanders between 1.0 and 1.3 from one
// process to the next with where the panels happen to lie in memory, and
// only tile shapes should decide; where AVX-512 has twice the FMA width
// (Intel Cascade Lake: 1.8×) the ratio is kept. 1 when nothing was measured.
func (c *cpuInfo) speed(k microKernel) float64 {
	i := slices.IndexFunc(c.Kernels, func(x microKernel) bool { return x.name == k.name })
	if i < 0 || i >= len(c.Speeds) {
		return 1
	}
	ratio := c.Speeds[i] / slices.Min(c.Speeds)
	if ratio < 1.4 {
		return 1
	}
	return ratio
}

// calibrate measures each kernel's speed in GFLOP/s on packed panels of
// depth 64 that stay in L1 (the kernel's arithmetic, not the memory around
// it): the best of five rounds of 1024 calls, the kernels taking turns so
// that a busy moment of the machine hits all of them alike. About 5 ms in
// all, once per process. The figures only steer Gemm.plan between kernels
// that give the same bits, so noise costs speed, never correctness.
func calibrate(ks []microKernel) []float64 {
	const depth, calls = 64, 1024
	speeds := make([]float64, len(ks))
	for round := 0; round < 5; round++ {
		for i, k := range ks {
			a := make([]float64, depth*k.mr)
			b := make([]float64, depth*k.nr)
			c := make([]float64, k.mr*k.nr)
			start := time.Now()
			for range calls {
				k.fn(depth, 1, a, 1, k.mr, b, k.nr, c, k.nr)
			}
			gflops := 2 * float64(calls*depth*k.mr*k.nr) / float64(time.Since(start).Nanoseconds())
			speeds[i] = max(speeds[i], gflops)
		}
	}
	return speeds
}

// kernelGo2x4 is the plain-Go micro-kernel, on packed panels (rsa = 1,
// csa = 2, csb = 4; the engine always packs for it). Why 2×4: the Go
// compiler keeps scalars in the 15 usable XMM registers and does not
// vectorise, so the tile must fit there with its operands: 8 accumulators +
// 4 values of b + 2 of a. A 4×4 tile (16 accumulators) spills. Walking the
// panels by re-slicing (a = a[2:]) lets the compiler drop the bounds checks.
//
// It uses math.FMA (one rounding, as the assembly kernels' VFMADD231PD), in
// the same order, so every kernel gives the same bits: a purego build, or
// another architecture, reproduces an AVX-512 run exactly. On x86-64 with
// FMA the compiler turns math.FMA into that instruction; without FMA it is
// computed exactly in software (slow, but the same bits).
func kernelGo2x4(kc int, alpha float64, a []float64, rsa, csa int, b []float64, csb int, c []float64, ldc int) {
	if rsa != 1 || csa != 2 || csb != 4 {
		panic("mlp: kernelGo2x4 needs packed panels")
	}
	var c00, c01, c02, c03 float64
	var c10, c11, c12, c13 float64
	a = a[:2*kc]
	b = b[:4*kc]
	for len(a) >= 2 && len(b) >= 4 { // step p: the outer product a[0:2] ⊗ b[0:4]
		b0, b1, b2, b3 := b[0], b[1], b[2], b[3]
		a0, a1 := a[0], a[1]
		c00 = math.FMA(a0, b0, c00)
		c01 = math.FMA(a0, b1, c01)
		c02 = math.FMA(a0, b2, c02)
		c03 = math.FMA(a0, b3, c03)
		c10 = math.FMA(a1, b0, c10)
		c11 = math.FMA(a1, b1, c11)
		c12 = math.FMA(a1, b2, c12)
		c13 = math.FMA(a1, b3, c13)
		a, b = a[2:], b[4:]
	}
	r := c[0:4:4]
	r[0] = math.FMA(alpha, c00, r[0])
	r[1] = math.FMA(alpha, c01, r[1])
	r[2] = math.FMA(alpha, c02, r[2])
	r[3] = math.FMA(alpha, c03, r[3])
	r = c[ldc : ldc+4 : ldc+4]
	r[0] = math.FMA(alpha, c10, r[0])
	r[1] = math.FMA(alpha, c11, r[1])
	r[2] = math.FMA(alpha, c12, r[2])
	r[3] = math.FMA(alpha, c13, r[3])
}

// fmaLoop is a register-only loop of independent fused multiply-adds, with
// no loads or stores: the most arithmetic a core does with one register
// width, against which the benchmarks measure the kernels (BenchmarkPeak,
// and the "%peak" of every GEMM and step benchmark).
type fmaLoop struct {
	name  string // "ymm", "zmm" (assembly, matrix_amd64.s), "scalar" (Go)
	flops int    // per iteration
	fn    func(iters int)
}

// scalarFMALoop is the Go kernel's limit: 8 independent chains of
// math.FMA on scalars (the Go compiler does not vectorise), 16 flops an
// iteration. The chains' sum goes to a variable the closure keeps, so the
// compiler cannot drop the loop.
func scalarFMALoop() fmaLoop {
	var sink float64
	return fmaLoop{name: "scalar", flops: 16, fn: func(iters int) {
		var c0, c1, c2, c3, c4, c5, c6, c7 float64
		x, y := sink, sink // zero: no denormals, no overflow
		for range iters {
			c0 = math.FMA(x, y, c0)
			c1 = math.FMA(x, y, c1)
			c2 = math.FMA(x, y, c2)
			c3 = math.FMA(x, y, c3)
			c4 = math.FMA(x, y, c4)
			c5 = math.FMA(x, y, c5)
			c6 = math.FMA(x, y, c6)
			c7 = math.FMA(x, y, c7)
		}
		sink += c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7
	}}
}

// fmaLoops lists the peak loops of this binary and CPU, the scalar one
// first and the widest last.
func fmaLoops() []fmaLoop { return append([]fmaLoop{scalarFMALoop()}, cpu.FMALoops...) }

// measurePeak returns loop l's GFLOP/s on `threads` goroutines at once,
// each running the loop (threads should not exceed the cores, or it
// measures the scheduler): the best of five rounds of about 20 ms, since a
// busy moment of a shared machine only ever makes a round slower.
func measurePeak(l fmaLoop, threads int) float64 {
	iters := 1 << 10
	for { // size a round to about 20 ms on one thread
		start := time.Now()
		l.fn(iters)
		if time.Since(start) > 20*time.Millisecond || iters >= 1<<30 {
			break
		}
		iters *= 2
	}
	best := 0.0
	for range 5 {
		var wg sync.WaitGroup
		start := time.Now()
		for range threads {
			wg.Go(func() { l.fn(iters) })
		}
		wg.Wait()
		gflops := float64(threads) * float64(iters) * float64(l.flops) / float64(time.Since(start).Nanoseconds())
		best = max(best, gflops)
	}
	return best
}

// ---------------------------------------------------------------------------
// The engine: its workers and their jobs.

// Gemm is the blocked, parallel GEMM engine. It owns its packing buffers and
// a pool of long-lived worker goroutines, so a call allocates nothing once
// the buffers have grown to the largest product seen. A Gemm is not safe
// for concurrent calls of Mul; give each goroutine that multiplies its own
// engine (the λ search runs one serial engine per trial).
type Gemm struct {
	kerns   []gemmKernel     // the kernels it may use, the widest first
	workers int              // the workers a call may use now (see Limit)
	size    int              // the workers it has
	ws      []*gemmWorkspace // ws[w] belongs to worker w
	bpack   []float64        // op(B) packed for the current call, shared (see prepareB)
	jobs    chan gemmJob
	wg      sync.WaitGroup // the jobs handed out and not finished
	pending atomic.Int32   // the same count, polled before wg.Wait blocks
	prob    gemmProblem    // the current call's operands, read by every worker
	tbuf    []float64      // scratch Cᵀ for mulSwapped, grown as needed
	sums    []float64      // the K slices summed apart (splitK), m×n each, grown as needed
	chainFn func(lo, hi int)
}

// gemmKernel is a micro-kernel with its blocking on this CPU and its
// measured speed.
type gemmKernel struct {
	microKernel
	mc, nc int // see blockingFor
	// narrowN is the widest block of C (in columns) whose K slice of B,
	// kc×narrowN doubles, fits in a quarter of L2. A block that narrow is
	// computed one mr-tall panel of A at a time (mc = mr): the panel, read
	// from memory once, serves every column panel from L1, while B's slice
	// stays in L2. The MLP's N×50 outputs (a 106 KB slice) and the wide
	// net's forward product, computed as Cᵀ (100 columns): measured on the
	// Intel Xeon of the README, one thread, 10000×3072×50 40 → 50 GFLOP/s,
	// 1000×3072×50 47 → 56, 100×3072×1000 47 → 59; the forward product
	// (13 row panels of 8) unchanged.
	narrowN int
	speed   float64 // GFLOP/s on cache-resident panels (calibrate), 1 if unmeasured
}

// gemmWorkspace holds one worker's packed A (a whole mc×kc block for
// kernels that need packing, else only a ragged last panel) and a scratch
// tile for the ragged edges of C.
type gemmWorkspace struct {
	ap    []float64
	edge  []float64
	bx    []float64 // MulAddPixelsB and staged B: the worker's block of B, kcb × pixelBCols (see stageBlock)
	bxJ0  int       // its first column
	bpack []float64 // with privB: the worker's own packed K slice of op(B), kc × npad
	// normPanels: the runs of bytes of a panel's images and of the next
	// panel's (here, not on the stack: a function value's arguments escape)
	runs, next [8][]uint8
}

// A gemmJob asks a worker to compute rows [i0,i1) × columns [j0,j1) of C
// (jobBlock), to pack B panels [i0,i1) (jobPackB), or to call fn(i0, i1)
// (jobFunc, see ParallelFor).
type gemmJob struct {
	kind           int
	w              int
	i0, i1, j0, j1 int
	pc0, pc1       int // jobBlock: the K range [pc0, pc1), whole slices (see splitByK)
	fn             func(lo, hi int)
}

const (
	jobBlock = iota
	jobPackB
	jobFunc
)

// gemmProblem is one call's operands, as strides into op(A) and op(B).
type gemmProblem struct {
	alpha, beta float64
	a, b        []float64
	ars, acs    int
	brs, bcs    int
	c           []float64
	ldc         int
	pix         []uint8 // if not nil, op(A) is these bytes normalised by norm (MulPixels); a is nil
	pixB        []uint8 // if not nil, B is these bytes normalised by norm (MulAddPixelsB); b is nil
	rows        []int   // pix's or pixB's images, as Images.Rows
	norm        *Norm
	d           []float64   // if not nil, C starts as β·D (D has C's shape) instead of β·C
	m, n, k     int         // op(A) is m×k, op(B) k×n
	kern        *gemmKernel // the kernel plan chose for this call
	packedA     bool        // workers pack their blocks of op(A); else A is read in place
	packedB     bool        // every panel of op(B) is in bpack; else B is read in place
	lazyB       bool        // packedB, one K slice at a time, by the one worker (see prepareB)
	privB       bool        // lazyB, by every worker into its own ws.bpack: C split by rows or K (see prepareB)
	sumsFrom    int         // with splitK: the first K slice summed apart into g.sums (0: none)
	stageB      bool        // B is copied block by block into the workers' ws.bx, as pixB is normalised (see prepareB)
	npad        int         // n rounded up to whole panels (nr), the last one lastW wide
	lastW       int         // width of a ragged last panel of B: nr, or the edge kernel's edgeNR when that covers it
	fromD       bool        // C starts as β·D in the kernels' update of the first K slice (see startsInKernel), not in startC
	gamma       float64     // if not 0, D ← D − γ·C once C is done (MulAddSub, MulAddPixelsBSub)
	dropC       bool        // the fused kernels need not store C: the caller keeps only D (keepC = false)
}

// NewGemm returns an engine with the given number of workers (≤ 0 means
// GOMAXPROCS) that picks, for each product, the fastest of the kernels this
// binary and CPU run (-kernel auto).
func NewGemm(workers int) *Gemm { return NewGemmNamed(workers, "auto") }

// NewGemmNamed is NewGemm with the kernel chosen by name, as -kernel gives
// it (see kernelByName). An unknown or unsupported name is a caller bug
// here: main checks the flag first.
func NewGemmNamed(workers int, kernel string) *Gemm {
	ks, err := kernelByName(kernel)
	if err != nil {
		panic("mlp: " + err.Error())
	}
	return newGemmKernels(workers, ks...)
}

// newGemmKernels returns an engine that chooses among the given kernels
// (tests and benchmarks pass one to compare kernels).
func newGemmKernels(workers int, ks ...microKernel) *Gemm {
	var gks []gemmKernel
	for _, k := range ks {
		mc, nc, narrowN := blockingFor(k, cpu.L2, cpu.L3)
		gks = append(gks, gemmKernel{microKernel: k, mc: mc, nc: nc, narrowN: narrowN, speed: cpu.speed(k)})
	}
	return newGemm(workers, gks)
}

// newGemmBlocked returns an engine with one kernel and the blocking given
// (tests use tiny blocks so that small products cross many block edges).
func newGemmBlocked(workers int, k microKernel, mc, nc, narrowN int) *Gemm {
	return newGemm(workers, []gemmKernel{{microKernel: k, mc: mc, nc: nc, narrowN: narrowN, speed: 1}})
}

func newGemm(workers int, ks []gemmKernel) *Gemm {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	g := &Gemm{kerns: ks, workers: workers, size: workers}
	g.chainFn = g.chainRows // bound once: a method value made per call would allocate
	apSize, edgeSize := 0, 0
	for _, k := range ks {
		apSize, edgeSize = max(apSize, k.mc*kc), max(edgeSize, k.mr*k.nr)
	}
	for w := 0; w < workers; w++ {
		g.ws = append(g.ws, &gemmWorkspace{
			ap:   make([]float64, apSize),
			edge: make([]float64, edgeSize),
		})
	}
	if workers > 1 {
		jobs := make(chan gemmJob, workers)
		g.jobs = jobs
		spin := workers <= runtime.GOMAXPROCS(0)
		for w := 1; w < workers; w++ {
			go func() {
				for {
					j, ok := receive(jobs, spin)
					if !ok {
						return // Close closed the channel
					}
					g.do(j)
					g.pending.Add(-1)
					g.wg.Done()
				}
			}()
		}
	}
	return g
}

// spinTime is how long an idle worker polls for its next job, and the
// caller for the workers' results, before blocking. Blocking costs a wake-up
// through the OS (and, on a virtual machine, the hypervisor) that measured
// 30–50 µs here: more than a whole skinny GEMM's share of one worker. The
// MLP's step calls the engine every few tens of µs, so the workers stay
// awake through a step. Workers spin only when each can have a processor of
// its own (workers ≤ GOMAXPROCS).
const spinTime = 200 * time.Microsecond

// receive returns the next job, polling for up to spinTime before blocking
// (spin false: blocking at once). ok is false once the channel is closed.
func receive(jobs chan gemmJob, spin bool) (j gemmJob, ok bool) {
	if spin {
		deadline := time.Now().Add(spinTime)
		for time.Now().Before(deadline) {
			select {
			case j, ok = <-jobs:
				return j, ok
			default:
			}
		}
	}
	j, ok = <-jobs
	return j, ok
}

// do carries out one job.
func (g *Gemm) do(j gemmJob) {
	switch j.kind {
	case jobFunc:
		j.fn(j.i0, j.i1)
	case jobPackB:
		g.packBPanels(g.bpack, j.i0, j.i1, 0, g.prob.k)
	default:
		g.block(j.w, j.i0, j.i1, j.j0, j.j1, j.pc0, j.pc1)
	}
}

// fanOut runs parts jobs made by job(w) for w = 0 … parts-1, worker 0 being
// the caller, and returns when all are done.
func (g *Gemm) fanOut(parts int, job func(w int) gemmJob) {
	if parts <= 1 {
		g.do(job(0))
		return
	}
	g.wg.Add(parts - 1)
	g.pending.Add(int32(parts - 1))
	for w := parts - 1; w >= 1; w-- {
		g.jobs <- job(w)
	}
	g.do(job(0))
	if parts <= runtime.GOMAXPROCS(0) {
		for deadline := time.Now().Add(spinTime); g.pending.Load() > 0 && time.Now().Before(deadline); {
		}
	}
	g.wg.Wait()
}

// Close stops the engine's worker goroutines. The engine must not be used after.
func (g *Gemm) Close() {
	if g.jobs != nil {
		close(g.jobs)
		g.jobs = nil
	}
}

// KernelName names the micro-kernels the engine uses and their tiles
// ("go-2x4", "avx2-6x8", "avx512-8x24+avx2-6x8").
func (g *Gemm) KernelName() string {
	var names []string
	for _, k := range g.kerns {
		names = append(names, k.name+"-"+k.tile)
	}
	return strings.Join(names, "+")
}

// Mul computes C = α·op(A)·op(B) + β·C. A and B are read only; C must not
// share storage with A or B. With β = 0, C's previous contents (even NaN)
// are ignored.
//
// Parallel scheme. C is cut into at most `workers` strips of rows or of
// columns, whichever leaves the busiest worker the least to do: its share
// of the whole micro-tiles plus the operand every worker prepares whole
// (all of op(A) for strips of columns, all of op(B) for strips of rows;
// see splitByRows). Worker w computes strip w completely, every K slice in
// order, reading A in place or packing its own blocks of it. The panels
// of op(B) that must be packed (all of them when B is transposed or the
// kernel cannot read in place, else only a ragged last panel) are packed
// by each worker one K slice at a time into a buffer of its own, or, when
// B is too large to copy per worker, once up front into a shared buffer,
// each worker packing its own range of panels, before the strips start
// (see prepareB). Strips never overlap, so workers share nothing but
// read-only A, B and packed B.
//
// A narrow C (N×50) of several K slices may instead be cut along K, when
// the cost model says so (splitByK): every worker computes all of C over
// its own run of K slices, the first into C, the others into sums apart,
// which are then added into C in slice order with the kernels' own
// rounding (runSplitK), so the bits stay those of one worker.
//
// Narrow outputs (N much smaller than M, such as the MLP's N×50 layer
// outputs) may be computed transposed, Cᵀ = op(B)ᵀ·op(A)ᵀ, when that costs
// less (see plan). The bits are the same either way.
func (g *Gemm) Mul(transA, transB bool, alpha float64, a, b *Matrix, beta float64, c *Matrix) {
	g.MulAdd(transA, transB, alpha, a, b, beta, c, c)
}

// MulAdd computes C = α·op(A)·op(B) + β·D, where D has C's shape and may be
// C itself (that is Mul). It saves a pass over memory when the start value
// is another matrix, as in dW1 = dHᵀ·x + 2λ·W1: each worker scales its own
// block of D into C just before accumulating into it. The bits are those of
// C ← β·D followed by Mul with β = 1.
func (g *Gemm) MulAdd(transA, transB bool, alpha float64, a, b *Matrix, beta float64, d, c *Matrix) {
	g.MulAddSub(transA, transB, alpha, a, b, beta, d, c, 0, true)
}

// MulAddSub is MulAdd, C = α·op(A)·op(B) + β·D, and then, for γ ≠ 0,
// D ← D − γ·C element by element: dW = doutᵀ·x + 2λ·W and the SGD step
// W ← W − η·dW in one call (D = W, γ = η), as MulAddPixelsBSub does for
// a batch of bytes. The bits are those of the two apart. D must not be C.
// keepC = false (with γ ≠ 0) says that the caller keeps only D: C is then
// scratch, and the kernels that take the step in their update (fromD)
// leave it alone, which saves writing C (the trainer's dW) to memory;
// what C holds afterwards is unspecified.
func (g *Gemm) MulAddSub(transA, transB bool, alpha float64, a, b *Matrix, beta float64, d, c *Matrix, gamma float64, keepC bool) {
	m, k, n := gemmShape(transA, transB, a, b, c)
	if d.Rows != m || d.Cols != n || len(d.Data) != len(c.Data) {
		panic(fmt.Sprintf("mlp: gemm: D is %s, want C's shape %s", d.Shape(), c.Shape()))
	}
	if gamma != 0 && d == c {
		panic("mlp: MulAddSub: D is C")
	}
	ars, acs := strides(a, transA)
	brs, bcs := strides(b, transB)
	kern, swap := g.plan(m, n, k, acs, bcs, k >= 64 && m > 1 && n > 1)
	if swap {
		g.mulSwapped(kern, alpha, a.Data, ars, acs, b.Data, brs, bcs, beta, d, c, m, n, k)
		subAll(d.Data, c.Data, gamma)
		return
	}
	g.prob = gemmProblem{kern: kern, alpha: alpha, beta: beta, a: a.Data, b: b.Data, c: c.Data, ldc: c.Cols, k: k,
		ars: ars, acs: acs, brs: brs, bcs: bcs}
	if d != c {
		g.prob.d, g.prob.gamma, g.prob.dropC = d.Data, gamma, !keepC && gamma != 0
	}
	g.run(m, n)
	fused := g.prob.fromD
	g.prob = gemmProblem{} // drop references to the operands
	if !fused {
		subAll(d.Data, c.Data, gamma)
	}
}

// ---------------------------------------------------------------------------
// Pixels: the normalisation applied while packing image bytes.

// Norm is a per-input normalisation of pixel bytes,
//
//	x[j] = (p[j]/255 − Mean[j]) · (1/Std[j])
//
// with Mean and Std (D values each) measured on the training split.
type Norm struct {
	Mean, Std []float64
	inv       []float64 // 1/Std
}

// scale255[p] = p/255, exactly as the division gives.
var scale255 = func() (t [256]float64) {
	for p := range t {
		t[p] = float64(p) / 255
	}
	return t
}()

// NewNorm returns the normalisation with the given mean and std.
func NewNorm(mean, std []float64) *Norm {
	inv := make([]float64, len(std))
	for j, s := range std {
		inv[j] = 1 / s
	}
	return &Norm{Mean: mean, Std: std, inv: inv}
}

// identityNorm is x = p/255: mean 0 and std 1 for every input.
func identityNorm(d int) *Norm {
	return NewNorm(make([]float64, d), slices.Repeat([]float64{1}, d))
}

// apply writes the normalised inputs of one image's bytes pix into dst,
// prefetching next (see normalise). nil is identityNorm.
func (nm *Norm) apply(dst []float64, pix, next []uint8) {
	if nm == nil {
		for j, p := range pix {
			dst[j] = scale255[p]
		}
		return
	}
	normalise(dst, pix, nm.Mean, nm.inv, next)
}

// normalise writes dst[j] = (pix[j]/255 − mean[j]) · inv[j] for every byte
// of pix: with the CPU's pixel kernels where it has them, widest first
// (AVX-512: 16 inputs a step; AVX2: 4), the rest with normaliseGo. All give
// the same bits. next (may be nil) names the bytes the caller will
// normalise next, which the first pixel kernel prefetches: images lie
// 3 KiB apart in memory, too far for the hardware to guess.
func normalise(dst []float64, pix []uint8, mean, inv []float64, next []uint8) {
	n := len(pix)
	dst, mean, inv = dst[:n], mean[:n], inv[:n]
	done := 0
	for _, k := range cpu.Pixels {
		done += k.fn(dst[done:], pix[done:], mean[done:], inv[done:], next)
		if done == n {
			return // the usual case (runs of 16): one call, not three
		}
		next = nil
	}
	normaliseGo(dst[done:], pix[done:], mean[done:], inv[done:])
}

// normaliseGo is normalise in plain Go: the reference the pixel kernel is
// tested against, and what purego builds run.
func normaliseGo(dst []float64, pix []uint8, mean, inv []float64) {
	dst, mean, inv = dst[:len(pix)], mean[:len(pix)], inv[:len(pix)]
	for j, p := range pix {
		dst[j] = (scale255[p] - mean[j]) * inv[j]
	}
}

// value is input j of a pixel byte p.
func (nm *Norm) value(p uint8, j int) float64 {
	if nm == nil {
		return scale255[p]
	}
	return (scale255[p] - nm.Mean[j]) * nm.inv[j]
}

// Images is a list of images stored as bytes, K of them each: image i is
// the run Pix[r·K : (r+1)·K] with r = Rows[i], or r = i when Rows is nil.
// A chunk of a data set is its runs in order (Rows nil); a training batch
// is the batch's rows of the whole set, read where they lie (the runs are
// never gathered into a copy: the products' prefetches fetch them).
type Images struct {
	Pix  []uint8
	Rows []int
	K    int
}

// Len is the number of images.
func (x Images) Len() int {
	if x.Rows != nil {
		return len(x.Rows)
	}
	return len(x.Pix) / x.K
}

// Image is the bytes of image i.
func (x Images) Image(i int) []uint8 {
	if x.Rows != nil {
		i = x.Rows[i]
	}
	return x.Pix[i*x.K : (i+1)*x.K]
}

// check panics (a caller bug) unless the images are whole runs of K bytes
// that lie in Pix.
func (x Images) check(op string) {
	bad := x.K <= 0 || len(x.Pix)%x.K != 0
	for _, r := range x.Rows {
		bad = bad || r < 0 || r >= len(x.Pix)/max(x.K, 1)
	}
	if bad {
		panic(fmt.Sprintf("mlp: %s: images of %d bytes in %d bytes, rows %v", op, x.K, len(x.Pix), x.Rows))
	}
}

// MulPixels computes C = α·X·op(B) + β·C where X (m×k) is the network
// input of m images stored as bytes (x: m images of k bytes), one row
// each:
//
//	X[i, j] = (x.Image(i)[j]/255 − mean[j]) · (1/std[j])     (nm's mean and std; nm nil: pix/255)
//
// Each mc×kc block of X is normalised just before the micro-kernels use
// it, into the worker's packing buffer (row after row by the pixel kernel,
// read in place by the assembly kernels; interleaved into panels for the
// Go kernel), so no float64 copy of X is ever made; the bits are those of
// Mul on such a copy. Evaluation runs the first layer of every chunk of
// images so.
func (g *Gemm) MulPixels(alpha float64, x Images, nm *Norm, transB bool, b *Matrix, beta float64, c *Matrix) {
	x.check("MulPixels")
	m, k := x.Len(), x.K
	kb, n := b.Rows, b.Cols
	if transB {
		kb, n = n, kb
	}
	if kb != k || c.Rows != m || c.Cols != n || len(b.Data) != b.Rows*b.Cols || len(c.Data) != m*n {
		panic(fmt.Sprintf("mlp: MulPixels: %d images of %d inputs, op(B) is %dx%d (B %s, trans %v), C is %s",
			m, k, kb, n, b.Shape(), transB, c.Shape()))
	}
	brs, bcs := strides(b, transB)
	if m <= 1 || n <= 1 {
		// Too small to pack: normalise into a float64 copy and multiply.
		g.Mul(false, transB, alpha, normalisedCopy(x, nm), b, beta, c)
		return
	}
	if nm == nil {
		nm = identityNorm(k) // p/255, the same bits as Norm's nil case
	}
	kern, _ := g.plan(m, n, k, 1, bcs, false) // X is packed (and normalised) either way
	g.prob = gemmProblem{kern: kern, alpha: alpha, beta: beta, pix: x.Pix, rows: x.Rows, norm: nm, b: b.Data, c: c.Data, ldc: c.Cols, k: k,
		ars: k, acs: 1, brs: brs, bcs: bcs}
	g.run(m, n)
	g.prob = gemmProblem{}
}

// MulAddPixelsB computes C = α·op(A)·X + β·D, where X (k×n) is k images
// of n inputs kept as bytes (x, one row each), normalised by nm as they
// are read (nm nil: p/255): dW1 = dHᵀ·x + 2λ·W1 on a training batch of
// bytes, which then never needs a float64 copy (2.4 MB for the seed's
// batch of 100, written and read again every step). Each worker normalises
// its columns of X pixelBCols at a time, K slice by K slice, into a block
// of its own that the kernels read in place; the numbers, and so the
// bits, are those of MulAdd on the normalised copy.
func (g *Gemm) MulAddPixelsB(transA bool, alpha float64, a *Matrix, x Images, nm *Norm, beta float64, d, c *Matrix) {
	g.MulAddPixelsBSub(transA, alpha, a, x, nm, beta, d, c, 0, true)
}

// MulAddPixelsBSub is MulAddPixelsB, C = α·op(A)·X + β·D, and then, for
// γ ≠ 0, D ← D − γ·C element by element: dW1 = dHᵀ·x + 2λ·W1 and the SGD
// step W1 ← W1 − η·dW1 in one call (D = W1, γ = η). The kernels that start
// C from β·D (fromD) take the step while C's tile is in registers, so W1
// is read once and dW1 is not read back; elsewhere a pass over C follows.
// The bits are those of the two apart (the step as the optimiser's loop
// rounds it). D must not be C. keepC as MulAddSub's: false lets the
// kernels leave C, scratch then, alone.
func (g *Gemm) MulAddPixelsBSub(transA bool, alpha float64, a *Matrix, x Images, nm *Norm, beta float64, d, c *Matrix, gamma float64, keepC bool) {
	x.check("MulAddPixelsB")
	if gamma != 0 && d == c {
		panic("mlp: MulAddPixelsBSub: D is C")
	}
	k, n := x.Len(), x.K
	m, ka := a.Rows, a.Cols
	if transA {
		m, ka = ka, m
	}
	if ka != k || c.Rows != m || c.Cols != n || d.Rows != m || d.Cols != n || len(c.Data) != m*n || len(d.Data) != m*n {
		panic(fmt.Sprintf("mlp: MulAddPixelsB: op(A) is %dx%d (A %s, trans %v), %d images of %d inputs, C is %s, D %s",
			m, ka, a.Shape(), transA, k, n, c.Shape(), d.Shape()))
	}
	if m <= 1 || n <= 1 || k == 0 { // too small to block: a normalised copy
		g.MulAdd(transA, false, alpha, a, normalisedCopy(x, nm), beta, d, c)
		subAll(d.Data, c.Data, gamma)
		return
	}
	if nm == nil {
		nm = identityNorm(n)
	}
	ars, acs := strides(a, transA)
	kern, _ := g.plan(m, n, k, acs, 1, false)
	g.prob = gemmProblem{kern: kern, alpha: alpha, beta: beta, a: a.Data, ars: ars, acs: acs, pixB: x.Pix, rows: x.Rows, norm: nm,
		c: c.Data, ldc: c.Cols, k: k, brs: n, bcs: 1, gamma: gamma}
	if d != c {
		g.prob.d, g.prob.dropC = d.Data, !keepC && gamma != 0
	}
	g.run(m, n)
	fused := g.prob.fromD
	g.prob = gemmProblem{}
	if !fused {
		subAll(d.Data, c.Data, gamma)
	}
}

// subAll takes d ← d − γ·c element by element (nothing for γ = 0): the
// product rounded, then the difference, as the optimiser's loop.
func subAll(d, c []float64, gamma float64) {
	if gamma == 0 {
		return
	}
	d = d[:len(c)]
	for i, v := range c {
		d[i] -= float64(gamma * v)
	}
}

// normalisedCopy is the matrix of the images x (one row each) normalised
// by nm, for the products too small to block.
func normalisedCopy(x Images, nm *Norm) *Matrix {
	out := NewMatrix(x.Len(), x.K)
	for i := range out.Rows {
		nm.apply(out.Row(i), x.Image(i), nil)
	}
	return out
}

// stageBlock fills ws.bx with rows pc … pc+kcb−1, columns j0 … j0+ncb−1 of
// B, normalised from bytes (MulAddPixelsB) or copied (stageB, see Staging
// B), padded with zeros to whole panels of nr: row after row
// (pixelBCols apart) for the kernels that read B in place, in packed
// micro-panels (bPanel's layout) for the one that does not.
func (p *gemmProblem) stageBlock(ws *gemmWorkspace, pc, kcb, j0, ncb int) {
	nr, direct := p.kern.nr, p.kern.direct
	w := (ncb + nr - 1) / nr * nr
	if len(ws.bx) < (kc+1)*pixelBCols {
		ws.bx = make([]float64, (kc+1)*pixelBCols) // the last row: a scratch row for packing
	}
	var mean, inv []float64
	if p.norm != nil {
		mean, inv = p.norm.Mean[j0:j0+ncb], p.norm.inv[j0:j0+ncb]
	}
	for s := 0; s < kcb; s++ {
		row := ws.bx[s*pixelBCols : s*pixelBCols+w]
		if !direct {
			row = ws.bx[kc*pixelBCols:][:w]
		}
		if p.stageB {
			copy(row[:ncb], p.b[(pc+s)*p.brs+j0:][:ncb])
		} else {
			normalise(row[:ncb], p.image(p.pixB, pc+s, p.n)[j0:j0+ncb], mean, inv, nil)
		}
		clear(row[ncb:])
		for q := 0; !direct && q < w/nr; q++ {
			copy(ws.bx[q*nr*kcb+s*nr:][:nr], row[q*nr:])
		}
	}
	ws.bxJ0 = j0
}

// ---------------------------------------------------------------------------
// Element-wise work over the workers.

// EachWorker calls fn(w) for every worker w = 0 … workers−1 at once (the
// caller is worker 0) and returns when all have returned. It is for work
// shared out at a coarser grain than one product, such as evaluation's
// chunks of images, where each worker multiplies with its own serial
// engine (Serial) and nothing waits for the others between products.
func (g *Gemm) EachWorker(fn func(w int)) {
	g.fanOut(g.workers, func(w int) gemmJob {
		return gemmJob{kind: jobFunc, i0: w, i1: w + 1, fn: func(w, _ int) { fn(w) }}
	})
}

// Workers is the number of workers a call may use (Limit's, at first all
// the engine has): EachWorker's range.
func (g *Gemm) Workers() int { return g.workers }

// Limit lets the calls that follow use only the first n of the engine's
// workers (n < 1 or more than it has: all of them), leaving the others'
// processors to other goroutines: the trainer's steps, while evaluations
// run beside them (see evalQueue). The bits of every result stay the same.
func (g *Gemm) Limit(n int) {
	if n < 1 || n > g.size {
		n = g.size
	}
	g.workers = n
}

// Serial returns a new engine with g's kernels and a single worker (no
// goroutines of its own): what each worker of EachWorker multiplies with.
func (g *Gemm) Serial() *Gemm { return newGemm(1, g.kerns) }

// ParallelFor calls fn(lo, hi) on contiguous ranges that cover [0, n), one
// per worker (the caller runs the first) but at least parallelMinElems
// long, and returns when all are done.
// It is for element-wise passes such as parameter updates, whose results do
// not depend on how the range is cut. fn should be created once, not per
// call, or each call allocates a closure.
func (g *Gemm) ParallelFor(n int, fn func(lo, hi int)) {
	parts := max(1, min(g.workers, n/parallelMinElems))
	g.fanOut(parts, func(w int) gemmJob {
		return gemmJob{kind: jobFunc, i0: n * w / parts, i1: n * (w + 1) / parts, fn: fn}
	})
}

// ---------------------------------------------------------------------------
// Planning a product: which kernel, which operand order, how many parts.

// tiledArea is the number of elements kernel k computes for an m×n output:
// whole mr×nr tiles, the ragged ones included.
func tiledArea(k *gemmKernel, m, n int) int {
	rows, _ := padded(m, k.mr, k.rowEdgeMR)
	cols, _ := padded(n, k.nr, k.edgeNR)
	return rows * cols
}

// padded is how far a kernel's tiles of width w reach along a side of n
// elements, and the width of the last panel: n rounded up to whole panels,
// except that a ragged remainder of at most edge elements (the kernel's
// edge tile, 0 if none) takes a panel only edge wide.
func padded(n, w, edge int) (total, last int) {
	rest := n % w
	switch {
	case rest == 0:
		return n, w
	case rest <= edge:
		return n - rest + edge, edge
	default:
		return n - rest + w, w
	}
}

// packReuse: a kernel that can read operands in place still packs one when
// each packed element will be used by at least this many micro-tiles: then
// the copy costs little, and the packed panels are contiguous (no cache-set
// or TLB conflicts when the operand's rows are a multiple of 4 KiB apart, as
// X's 3072 doubles are). A is packed when N ≥ packReuse·nr (dW1 = dHᵀ·x, the
// 1024³ product), B when M ≥ packReuse·mr; the MLP's N×50 outputs read X in
// place. Measured on AMD Zen 4: dW1 29 → 36 GFLOP/s (AVX2), 1024³ 40 → 44
// (AVX-512).
//
// The N×50 outputs read X in place even on the AVX-512 kernel's wide tile
// (8×24 and 2 more columns), which needs each step's 8 values of a as one
// vector for the 2 columns: it merges them in pairs from the broadcasts
// its 24 columns take anyway (kernelAVX512x8x26). When it gathered them
// instead, it ran at half the 8×24 tile's speed, and an A that fits in
// half of L3 was packed for it (packWide, dropped): on 2 cores of an AMD
// EPYC (Zen 5), three rounds in turn, 1T / 2T, GFLOP/s, 100×3072×50 packed
// 76.5–79.8 / 111–142 against in place with pairs 78.8–87.0 / 104–151.
const packReuse = 16

// packFlops is what packing one element of B costs, in flops of kernel
// time (about 1 ns against ~40 GFLOP/s); it weighs packing against wasted
// tile elements in cost.
const packFlops = 40

// cost estimates the time of an m×k×n product with kernel kern, in flops
// over the kernel's relative speed: its work on whole tiles, plus the
// packing of op(B) when it cannot be read in place (bcs, op(B)'s column
// stride, is 1 when its rows are contiguous).
func cost(kern *gemmKernel, m, n, k, bcs int) float64 {
	work := float64(2 * float64(k) * float64(tiledArea(kern, m, n)))
	if bcs != 1 || !kern.direct {
		work += float64(packFlops * float64(k) * float64(n))
	}
	return work / kern.speed
}

// plan picks the kernel, and whether to compute C directly or as
// Cᵀ = op(B)ᵀ·op(A)ᵀ, with the lowest cost. Every kernel and both ways give
// the same bits, so the choice only changes speed.
//
// Why both choices matter: tiles waste the ragged edges. With the edge
// kernels (a ragged last column panel of at most 4 columns costs 4), the
// MLP's N×50 outputs take 52 columns of work with either kernel; without,
// 72 with 8×24 tiles and 56 with 6×8 ones. On a CPU whose two kernels run
// at the same speed (AMD Zen 4 executes a 512-bit FMA as two 256-bit
// halves) the tile areas decide, and near-ties go to AVX-512 (fewer
// instructions per flop hide memory stalls better: 17 % faster than the
// 6×8 kernel on the evaluation's first layer there); where AVX-512 runs
// 1.8× faster (Intel Cascade Lake) it wins nearly everything. Transposing
// helps when M is the narrow side: 10000×50 is 10000×72 in 8×24 tiles but
// 56×10008 as Cᵀ, though then X must be packed.
//
// acs and bcs are op(A)'s and op(B)'s column strides; the swapped product's
// op(B) is op(A)ᵀ, whose rows are contiguous when op(A) = Aᵀ (acs ≠ 1).
// canSwap false keeps C's orientation (tiny products, MulPixels).
// A kernel counts as 5 % slower per step down the list, so that near-ties
// go to the widest kernel.
func (g *Gemm) plan(m, n, k, acs, bcs int, canSwap bool) (kern *gemmKernel, swap bool) {
	swappedBcs := 1
	if acs == 1 {
		swappedBcs = 0 // op(A) = A: op(A)ᵀ must be packed
	}
	best := math.Inf(1)
	for i := range g.kerns {
		kr := &g.kerns[i]
		penalty := 1 + float64(0.05*float64(i))
		if c := penalty * cost(kr, m, n, k, bcs); c < best {
			best, kern, swap = c, kr, false
		}
		// Swapping must pay clearly (10 %): it costs two transpositions.
		if c := 1.1 * penalty * cost(kr, n, m, k, swappedBcs); canSwap && c < best {
			best, kern, swap = c, kr, true
		}
	}
	return kern, swap
}

// mulSwapped computes C = α·op(A)·op(B) + β·C as Cᵀ = α·op(B)ᵀ·op(A)ᵀ + β·Cᵀ
// into a scratch matrix T = Cᵀ, then transposes T into C. Every element is
// summed exactly as in the direct path (same K slices, and a·b = b·a in the
// FMA), so the two paths give the same bits.
func (g *Gemm) mulSwapped(kern *gemmKernel, alpha float64, a []float64, ars, acs int, b []float64, brs, bcs int, beta float64, d, c *Matrix, m, n, k int) {
	if cap(g.tbuf) < m*n {
		g.tbuf = make([]float64, m*n)
	}
	t := g.tbuf[:m*n] // n×m, row-major
	if beta != 0 {
		for i := 0; i < m; i++ {
			for j, v := range d.Row(i) {
				t[j*m+i] = v
			}
		}
	}
	// op(B)ᵀ(j, p) = op(B)(p, j) and op(A)ᵀ(p, i) = op(A)(i, p): swap the
	// operands and their strides.
	g.prob = gemmProblem{kern: kern, alpha: alpha, beta: beta, a: b, b: a, c: t, ldc: m, k: k,
		ars: bcs, acs: brs, brs: acs, bcs: ars}
	g.run(n, m)
	g.prob = gemmProblem{}
	for i := 0; i < m; i++ {
		row := c.Row(i)
		for j := range row {
			row[j] = t[j*m+i]
		}
	}
}

// ---------------------------------------------------------------------------
// Running a product: the split, the packing, the tiles.

// run computes the m×n product described by g.prob, split over the workers
// as the cost model says (splitByK, splitByRows).
func (g *Gemm) run(m, n int) { g.runSplit(m, n, splitAuto) }

// runSplit is run with C's work cut as split says (splitAuto: as the cost
// model says; tests force the others).
func (g *Gemm) runSplit(m, n, split int) {
	p := &g.prob
	p.m, p.n = m, n
	if m == 0 || n == 0 {
		return
	}
	if m == 1 || n == 1 {
		// A single row or column of output: packing would cost more than
		// the product itself. Dot products straight from the operands.
		gemmDot(p, m, n)
		return
	}
	parts := g.partsFor(2 * float64(m) * float64(n) * float64(p.k))
	p.fromD = p.startsInKernel()
	p.dropC = p.dropC && p.fromD // else C is read back (subAll)
	p.packedA = !p.kern.direct || n >= packReuse*p.kern.nr || p.pix != nil
	mr, nr := p.kern.mr, p.kern.nr
	rowTiles, colTiles := (m+mr-1)/mr, (n+nr-1)/nr
	if rest := n % nr; n > nr && rest > 0 && rest <= max(p.kern.wideNR, p.kern.edgeNR) {
		colTiles--
	}
	switch {
	case split != splitAuto:
	case p.alpha != 0 && n <= p.kern.narrowN && splitByK(m, n, p.k, rowTiles, colTiles, parts):
		split = splitK
	case splitByRows(m, n, p.k, rowTiles, colTiles, parts):
		split = splitRows
	default:
		split = splitCols
	}
	if p.alpha != 0 {
		g.prepareB(parts, split)
	}
	if split == splitK {
		g.runSplitK(parts)
		return
	}
	unit, extent, tiles := nr, n, colTiles
	if split == splitRows {
		unit, extent, tiles = mr, m, rowTiles
	}
	parts = balance(tiles, parts)
	g.fanOut(parts, func(w int) gemmJob {
		lo := tiles * w / parts * unit
		hi := min(tiles*(w+1)/parts*unit, extent)
		if w == parts-1 {
			hi = extent // the last part takes a merged wide tile's columns too
		}
		if split == splitRows {
			return gemmJob{kind: jobBlock, w: w, i0: lo, i1: hi, j0: 0, j1: n, pc1: p.k}
		}
		return gemmJob{kind: jobBlock, w: w, i0: 0, i1: m, j0: lo, j1: hi, pc1: p.k}
	})
}

// How C's work is cut among the workers (see splitByRows and splitByK).
const (
	splitAuto = iota - 1 // as the cost model says
	splitCols            // strips of columns, every K slice each
	splitRows            // strips of rows, every K slice each
	splitK               // all of C each, a run of K slices each (runSplitK)
)

// splitByRows reports whether an m×n C (depth k) of rowTiles × colTiles
// whole tiles is cut into `parts` strips of rows (else of columns). A
// ragged last panel narrow enough for the wide or the edge tile is not a
// tile of its own but goes with the one before it (the caller counts so):
// the N×50 outputs are two column tiles, 24 and 26 wide.
//
// Each way, the busiest worker's time, in flops of kernel work, is its
// share of the tiles plus the operand every worker prepares whole: cut by
// columns, every worker packs or normalises all of op(A) (m·k elements);
// cut by rows, all of op(B) (k·n):
//
//	rows:     ⌈rowTiles/parts⌉/rowTiles · 2mnk + k·n·prepFlops
//	columns:  ⌈colTiles/parts⌉/colTiles · 2mnk + m·k·prepFlops
//
// and the cheaper way wins (rows on a tie when m ≥ n). The MLP's products on
// two workers: the evaluation's 1000×3072×50 by rows (each worker
// normalising half of A, not all: 94–96 → 121–123 GFLOP/s on an Intel
// Xeon), dW1 50×100×3072 and the wide layers' 100×3072×1000 and
// 1000×100×3072 by columns, and the forward product 100×3072×50 by rows
// since the eighth sitting of 2026-12-05: 13 row tiles share out 7 | 6,
// but its 100×3072 A costs twice its 3072×50 B to prepare (with B shared,
// packed up front, rows had been slower: 92–94 → 80–83 GFLOP/s on the
// Xeon; see prepareB's privB for the way that pays), where splitByK does
// not cut it along K first (it does, since the later sitting).
func splitByRows(m, n, k, rowTiles, colTiles, parts int) bool {
	flops := 2 * float64(m) * float64(n) * float64(k)
	// Each product rounded on its own (float64(…)), never fused into an FMA.
	rows := float64(busiestShare(rowTiles, parts)*flops) + float64(float64(k)*float64(n)*prepFlops)
	cols := float64(busiestShare(colTiles, parts)*flops) + float64(float64(m)*float64(k)*prepFlops)
	if rows == cols {
		return m >= n
	}
	return rows < cols
}

// splitByK reports whether an m×n C (depth k, rowTiles × colTiles tiles
// as for splitByRows) is better cut along K: each of `parts` workers takes
// a run of whole K slices (kc deep) of all of C, and so prepares only its
// share of op(A) and op(B). The first run goes into C; the others are
// summed apart, each slice into its own m×n buffer, and added into C in
// slice order once all are done (runSplitK). The busiest worker's time,
// in flops of kernel work, each way, with every operand element it
// prepares (prepFlops):
//
//	rows:     r·2mnk + (k·n + r·m·k)·prepFlops        r = ⌈rowTiles/parts⌉/rowTiles
//	columns:  c·2mnk + (m·k + c·k·n)·prepFlops        c = ⌈colTiles/parts⌉/colTiles
//	K:        s·2mnk + s·(m·k + k·n)·prepFlops + (slices − ⌈slices/parts⌉)·m·n·chainFlops/parts
//	                                                  s = ⌈slices/parts⌉/slices
//
// and K wins when it is cheapest. The forward product 100×3072×50 on two
// workers: rows 21.6 M, columns 21.5 M, K (6 slices each) 20.0 M; on 16
// (10 parts of its 31 MFLOP): rows 7.9 M, K (2 slices each) 6.9 M; the
// evaluation's 1000 or 2000 rows stay cut by rows, whose sums apart would
// be as large as C. Timed alone, the forward product gains little from
// it on two cores of an AMD EPYC Zen 5 (from floats 241–246 → 231–237 µs,
// from bytes 239–247 → 230–248, three rounds of the builds in turn). In
// the training step it gains more: dW1 = dHᵀ·x before it was cut by
// columns, so each worker's SGD step wrote its own half of W1's columns,
// and cut by rows, the next forward product had each worker pack all of
// W1ᵀ, half of it from the other core's cache; cut along K, each worker
// reads the half of W1 it wrote itself. Four rounds in turn, medians:
// BenchmarkStep/2T 3072-50-10 680 → 583 µs (x-products 1.27–1.40 →
// 1.11–1.18), BenchmarkTrainerStep/2T 726 → 626 µs.
func splitByK(m, n, k, rowTiles, colTiles, parts int) bool {
	slices := (k + kc - 1) / kc
	if parts < 2 || slices < 2 {
		return false
	}
	flops := 2 * float64(m) * float64(n) * float64(k)
	a, b := float64(float64(m)*float64(k)), float64(float64(k)*float64(n)) // rounded: never fused into the sums below
	r, c, s := busiestShare(rowTiles, parts), busiestShare(colTiles, parts), busiestShare(slices, parts)
	// Each product rounded on its own (float64(…)), never fused into an FMA.
	rows := float64(r*flops) + float64((b+float64(r*a))*prepFlops)
	cols := float64(c*flops) + float64((a+float64(c*b))*prepFlops)
	apart := float64(slices - (slices+parts-1)/parts)
	byK := float64(s*flops) + float64(s*(a+b)*prepFlops) + float64(apart*float64(m)*float64(n)*chainFlops/float64(parts))
	return byK < min(rows, cols)
}

// runSplitK runs the product cut along K (see splitByK): worker w takes
// K slices [slices·w/parts, slices·(w+1)/parts) of all of C, worker 0 into
// C itself (after C's start value), the others each slice into its own
// buffer, S_s = Σ_{p in slice s} op(A)[i,p]·op(B)[p,j] (partialSums); then
// chainRows adds them in slice order, C = fma(α, S_s, C), the update a
// tile's kernel makes after each slice: the bits of one worker.
func (g *Gemm) runSplitK(parts int) {
	p := &g.prob
	m, n := p.m, p.n
	slices := (p.k + kc - 1) / kc
	parts = balance(slices, parts)
	p.sumsFrom = slices / parts            // worker 1's first slice
	elems := (slices - p.sumsFrom) * m * n // the sums apart
	if len(g.sums) < elems {
		g.sums = make([]float64, elems)
	}
	g.fanOut(parts, func(w int) gemmJob {
		return gemmJob{kind: jobBlock, w: w, i0: 0, i1: m, j0: 0, j1: n,
			pc0: slices * w / parts * kc, pc1: min(slices*(w+1)/parts*kc, p.k)}
	})
	// The chain is cut by rows among the workers, not the caller: it wrote
	// C, and none of the sums apart, which are in the other workers'
	// caches (on two, all of them in worker 1's L2). Read by the caller,
	// half of them were lines that worker 1 then had to take back from the
	// other core to write the next product's. On 2 cores of an AMD EPYC
	// Zen 5, the forward product 100×3072×50 on two workers (timers in a
	// throwaway build): worker 0's slices 178–185 µs, worker 1's 204–220
	// µs and the chain cut in two 11.5–14.2 µs, against worker 1's
	// 182–213 µs and the chain on worker 1 alone 7.3–8.0 µs; five rounds
	// in turn, medians, the product 247.6 → 216.3 µs, BenchmarkStep/2T
	// 3072-50-10 514.3 → 488.8 µs. (On more workers, which goroutine
	// takes which part is not fixed: there the caller only leaves its
	// share to the others.)
	chain := max(1, min(parts-1, elems/(parallelMinElems/4), m)) // a part per 5,000 sums: an FMA, a load and a store each
	g.fanOut(chain+1, func(w int) gemmJob {
		if w == 0 {
			return gemmJob{kind: jobFunc, fn: g.chainFn} // the caller's part: no rows
		}
		return gemmJob{kind: jobFunc, i0: m * (w - 1) / chain, i1: m * w / chain, fn: g.chainFn}
	})
}

// sliceSums is the buffer of K slice pc's sums apart (splitK): m×n, rows n apart.
func (g *Gemm) sliceSums(pc int) []float64 {
	mn := g.prob.m * g.prob.n
	at := (pc/kc - g.prob.sumsFrom) * mn
	return g.sums[at : at+mn]
}

// partialSums computes rows [i0,i1) × columns [j0,j1) of the sums apart of
// the K slices in [pc0, pc1), each into its own buffer (sliceSums),
// started at 0 with α = 1: the kernels' update fma(1, acc, 0) stores the
// slice's register sums exactly. Kernels with fromD variants start the
// buffer themselves (β = 0: not read), as in a product of one slice
// (startsInKernel), so it is not cleared first: on 2 cores of an AMD
// EPYC Zen 5 the clearing was 4.1 % of the forward product's profile on
// two workers (MulPixels 100×3072×50), 0.7 % after (what edge tiles
// still clear); six rounds in turn, medians, 279 → 271 µs from bytes,
// 250 → 248 from floats.
func (g *Gemm) partialSums(ws *gemmWorkspace, i0, i1, j0, j1, pc0, pc1 int) {
	for pc := pc0; pc < pc1; pc += kc {
		q := g.prob
		q.c, q.ldc, q.alpha, q.beta, q.d, q.gamma, q.dropC = g.sliceSums(pc), q.n, 1, 0, nil, 0, false
		q.fromD = q.startsInKernel()
		if !q.fromD {
			q.startC(i0, i1, j0, j1)
		}
		g.blockSlices(&q, ws, i0, i1, j0, j1, pc, min(pc+kc, q.k))
	}
}

// chainRows adds the sums apart (splitK) into rows [lo, hi) of C, slice
// by slice in order: C = fma(α, S_s, C), rounded once, as the kernels do
// (the kernel's fmaAdd), a row at a time, or the rows at once where C's
// rows are contiguous (ldc = n, as the forward product's 100×50).
func (g *Gemm) chainRows(lo, hi int) {
	if lo >= hi {
		return
	}
	p := &g.prob
	n, slices := p.n, (p.k+kc-1)/kc
	runs, width := hi-lo, n
	if p.ldc == n {
		runs, width = 1, (hi-lo)*n
	}
	for pc := p.sumsFrom * kc; pc < slices*kc; pc += kc {
		sums := g.sliceSums(pc)[lo*n:]
		for r := range runs {
			c := p.c[(lo+r)*p.ldc:]
			p.kern.fmaAdd(p.alpha, sums[r*n:r*n+width], c[:width])
		}
	}
}

// busiestShare is the fraction of `tiles` equal tiles the busiest of
// `parts` workers computes: ⌈tiles/parts⌉/tiles.
func busiestShare(tiles, parts int) float64 {
	return float64((tiles+parts-1)/parts) / float64(max(tiles, 1))
}

// balance is how many parts `tiles` equal tiles are cut into when at most
// `parts` may be used: as few as give the same longest part (13 tiles take
// 2 rounds on 7 workers as on 12, so 7, and 5 workers stay idle instead of
// waking for nothing).
func balance(tiles, parts int) int {
	if tiles <= 1 || parts <= 1 {
		return 1
	}
	parts = min(parts, tiles)
	perPart := (tiles + parts - 1) / parts
	return (tiles + perPart - 1) / perPart
}

// partsFor is how many workers a product of the given flops is split
// over: one per minPartFlops, at least one, at most all.
func (g *Gemm) partsFor(flops float64) int {
	return max(1, min(g.workers, int(flops/minPartFlops)))
}

// evenness is the fraction of `parts` workers' time spent working when
// `tiles` equal tiles are shared out among them: tiles / (parts·⌈tiles/parts⌉).
func evenness(tiles, parts int) float64 {
	return float64(tiles) / float64(parts*((tiles+parts-1)/parts))
}

// Staging B. A kernel reading B in place takes one step of its panel from
// each of kcb rows of B; when those rows are a multiple of pageBytes apart
// (dW1 = dHᵀ·x reads x's rows, 3072 doubles = 24 KiB apart), every step's
// lines of a panel fall in the same one to three sets of the L1 cache,
// whose 12 ways (48 KiB L1d) or 8 (32 KiB) cannot hold the panel for the
// next row panel of A, nor the prefetches ahead of the one reading it: a
// step costs an L2 round trip. So such products copy B block by block
// (pixelBCols columns, rows pixelBCols apart) into the worker's own
// workspace first, as MulAddPixelsB does with bytes (stageBlock): the same
// values in the same order, so the same bits. 50×100×3072 (dHᵀ·x from
// floats), GFLOP/s in place → staged, rounds of the two builds in turn:
//
//	                                   AVX2, 1T / 2T            AVX-512, 1T / 2T
//	Intel Xeon (FP16, AMX), 5 rounds   36.1→39.3 / 77.6→79.1    60.5→60.3 / 119.3→123.2
//	AMD EPYC Zen 5, 6 rounds           (staged already)         60.2→71.2 / 110.0→114.5
//
// (the AVX-512 kernel's 24-wide panel spreads over three sets: no loss on
// the Xeon, a sixth of its speed on Zen 5). Wider blocks (960 columns
// against 240) were slower on the Xeon: AVX2 37.4 against 40.9, AVX-512
// 58.8 against 61.1.
const pageBytes = 4096 // the L1 set stride: 64 sets of 64-byte lines

// prepareB decides which panels of op(B) the kernel reads in place and
// which are packed, and where: by the workers as they go, one K slice at a
// time (lazyB; each into its own ws.bpack when all of them need all panels,
// privB), or up front into g.bpack, split over `parts` workers by panel;
// or that the workers stage B (see Staging B). split: how C's work is cut
// (splitCols, splitRows, splitK).
//
// Layout of g.bpack when every panel is packed (p.packedB): the K slice that
// starts at pc takes kcb·npad elements from pc·npad on, and within it the
// panel of columns j…j+nr-1 starts at pc·npad + j·kcb (k-major: step p's nr
// values are contiguous); packed lazily, one slice at a time, panel j
// starts at j·kc (bOffset). A ragged last panel is lastW wide: edgeNR columns
// when the kernel's edge tile covers it (2 of 50 columns are packed 4 wide,
// not 8 or 24), else nr. When only a ragged last panel is packed, slice pc
// of that panel is at pc·lastW.
func (g *Gemm) prepareB(parts, split int) {
	p := &g.prob
	nr := p.kern.nr
	p.npad, p.lastW = padded(p.n, nr, p.kern.edgeNR)
	panels := (p.n + nr - 1) / nr
	if p.pixB != nil { // normalised block by block as the workers need it (stageBlock)
		p.packedB = false
		return
	}
	p.packedB = !p.kern.direct || p.bcs != 1 || p.m >= packReuse*p.kern.mr
	p.stageB = !p.packedB && p.m > p.kern.mr && p.brs*8%pageBytes == 0
	if p.stageB {
		return
	}
	first, size := 0, p.k*p.npad
	if !p.packedB {
		if p.n%nr == 0 {
			return // every panel is read in place
		}
		first, size = panels-1, p.k*p.lastW
	}
	// A worker packs each K slice of its panels just before its tiles read
	// it (block), into the same kc·npad doubles, which stay in L2 (the
	// forward product's W1ᵀ: 100 KB instead of 1.2 MB written to memory and
	// read back): one worker, or workers that split C by columns, whose
	// panels are their own (on two, the forward product from bytes then
	// takes 24 and 26 columns and packs them: the trainer's step on two
	// workers 856 / 855 / 824 → 789 / 777 / 817 µs). Workers that share
	// the panels (C split by rows) pack them all, each its own copy, the
	// same way (privB), when a K slice of them fits in a quarter of L2
	// (npad ≤ narrowN): copying a few hundred KB again costs less than
	// waiting for each other's halves, packed up front, and reading them
	// from the other core's cache. On 2 cores of an AMD EPYC (Zen 5), two
	// workers, medians of six rounds of the builds in turn (before: the
	// forward product cut by columns, the others by rows with B shared):
	// forward 100×3072×50 from floats 73 → 99 GFLOP/s, from bytes 77 →
	// 108; evaluation 10000×3072×50 93 → 112, 1000×3072×50 108 → 117, a
	// chunk from bytes 130 → 130; the trainer's step 892 → 831 µs. Larger
	// B are still packed up front, once. Workers that split K (splitK) each
	// pack only their own slices, each into its own ws.bpack too.
	p.privB = p.packedB && (split == splitRows && parts > 1 && p.npad <= p.kern.narrowN || split == splitK)
	p.lazyB = (parts == 1 || split == splitCols) && p.packedB && p.k > kc || p.privB
	if p.lazyB {
		size = kc * p.npad
	}
	for w, ws := range g.ws {
		if p.privB && w < parts && len(ws.bpack) < size {
			ws.bpack = make([]float64, size)
		}
	}
	if !p.privB && len(g.bpack) < size {
		g.bpack = make([]float64, size)
	}
	if p.lazyB {
		return
	}
	todo := panels - first
	if size < parallelMinElems {
		parts = 1
	}
	parts = max(1, min(parts, todo))
	g.fanOut(parts, func(w int) gemmJob {
		return gemmJob{kind: jobPackB, i0: first + todo*w/parts, i1: first + todo*(w+1)/parts}
	})
}

// packBPanels packs panels [q0, q1) of op(B) (columns q0·nr … q1·nr-1) for
// the K slices from pc0 up to pc1 into bpack (g.bpack, or a worker's own:
// see bpackOf), in prepareB's layout (see bOffset): its whole panels in
// one packB, a ragged last one lastW wide.
func (g *Gemm) packBPanels(bpack []float64, q0, q1, pc0, pc1 int) {
	p := &g.prob
	nr := p.kern.nr
	whole := min(q1, p.n/nr) // panels before it are whole
	for pc := pc0; pc < pc1; pc += kc {
		kcb := min(kc, p.k-pc)
		if p.packedB && q0 < whole {
			j := q0 * nr
			ps := p.bOffset(pc, kcb, 1) - p.bOffset(pc, kcb, 0) // kc with lazyB, else kcb
			packB(bpack[p.bOffset(pc, kcb, j):], p.b, p.brs, p.bcs, pc, kcb, j, whole*nr-j, nr, ps)
		}
		if j := whole * nr; whole < q1 && j < p.n { // the ragged last panel
			at := pc * p.lastW // only that panel is packed
			if p.packedB {
				at = p.bOffset(pc, kcb, j)
			}
			packB(bpack[at:], p.b, p.brs, p.bcs, pc, kcb, j, p.n-j, p.lastW, kcb)
		}
	}
}

// bOffset is where the packed micro-panel of op(B) for the K slice at pc
// and the columns from j on starts in g.bpack: slice pc at pc·npad, its
// panel j at j·kcb within it; with lazyB, every slice at the start, panel
// j at j·kc, a stride that does not depend on the slice's depth, so that
// workers packing their own panels at different slices (C split by
// columns) never write over each other's.
func (p *gemmProblem) bOffset(pc, kcb, j int) int {
	if p.lazyB {
		return j * kc
	}
	return pc*p.npad + j*kcb
}

// bpackOf is where the worker with workspace ws finds the packed panels of
// op(B): its own ws.bpack when each worker packs all of them (privB), else
// the engine's g.bpack.
func (g *Gemm) bpackOf(ws *gemmWorkspace) []float64 {
	if g.prob.privB {
		return ws.bpack
	}
	return g.bpack
}

// bPanel returns the kcb×nr micro-panel of op(B) for the K slice at pc and
// columns j…j+nr-1, with the distance between its steps, from bpack when
// it is packed (see bpackOf).
func (g *Gemm) bPanel(bpack []float64, pc, kcb, j int) (panel []float64, csb int) {
	p := &g.prob
	nr := p.kern.nr
	switch {
	case p.packedB:
		w := nr
		if j+nr > p.n {
			w = p.lastW
		}
		off := p.bOffset(pc, kcb, j)
		return bpack[off : off+kcb*w], w
	case j+nr <= p.n: // in place: op(B) = B, whose rows are brs apart
		return p.b[pc*p.brs+j:], p.brs
	default: // the ragged last panel, packed by prepareB
		return bpack[pc*p.lastW : (pc+kcb)*p.lastW], p.lastW
	}
}

// gemmDot computes C = α·op(A)·op(B) + β·C one dot product per element,
// four partial sums at a time (used when C is a single row or column).
func gemmDot(p *gemmProblem, m, n int) {
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s0, s1, s2, s3 float64
			ai, bj := i*p.ars, j*p.bcs
			k := 0
			for ; k+4 <= p.k; k += 4 {
				s0 += float64(p.a[ai+k*p.acs] * p.b[bj+k*p.brs])
				s1 += float64(p.a[ai+(k+1)*p.acs] * p.b[bj+(k+1)*p.brs])
				s2 += float64(p.a[ai+(k+2)*p.acs] * p.b[bj+(k+2)*p.brs])
				s3 += float64(p.a[ai+(k+3)*p.acs] * p.b[bj+(k+3)*p.brs])
			}
			for ; k < p.k; k++ {
				s0 += float64(p.a[ai+k*p.acs] * p.b[bj+k*p.brs])
			}
			sum := (s0 + s1) + (s2 + s3)
			c := &p.c[i*p.ldc+j]
			if p.beta == 0 {
				*c = p.alpha * sum
			} else if p.d != nil {
				*c = float64(p.alpha*sum) + float64(p.beta*p.d[i*p.ldc+j])
			} else {
				*c = float64(p.alpha*sum) + float64(p.beta*(*c))
			}
		}
	}
}

// block computes rows [i0,i1) × columns [j0,j1) of C with workspace w:
// the serial blocked algorithm, after prepareB.
//
//	scale C's block by β (or set it to β·D)
//	for each nc-wide column block of B (jc):
//	  for each kc-deep slice of K (pc), in order:
//	    for each mc-tall row block of A (ic):
//	      pack op(A)[ic:ic+mc, pc:pc+kc] into mr-tall micro-panels
//	          (kernels that read A in place: only a ragged last panel)
//	      for every nr-wide panel of B (jr), every mr-tall panel of A (ir):
//	        micro-kernel on the mr×nr tile of C
//
// C's block is scaled in one pass over whole rows, before any tile: doing
// it region by region just before each panel's first tile measured 6 %
// slower for dW₁ at H = 1000 (the regions are 24-wide column strips of
// rows 24 KiB apart, which share cache sets).
func (g *Gemm) block(w, i0, i1, j0, j1, pc0, pc1 int) {
	p := &g.prob
	ws := g.ws[w]
	if pc0 > 0 { // K slices summed apart (splitK)
		g.partialSums(ws, i0, i1, j0, j1, pc0, pc1)
		return
	}
	if !p.fromD {
		p.startC(i0, i1, j0, j1)
	}
	if p.alpha == 0 || p.k == 0 {
		return
	}
	g.blockSlices(p, ws, i0, i1, j0, j1, pc0, pc1)
}

// blockSlices runs block's loops over the K slices in [pc0, pc1) of
// problem p (g.prob, or a copy that writes a slice's sums apart).
func (g *Gemm) blockSlices(p *gemmProblem, ws *gemmWorkspace, i0, i1, j0, j1, pc0, pc1 int) {
	kern := p.kern
	mc := kern.mc
	if j1-j0 <= kern.narrowN {
		mc = kern.mr // A streamed one micro-panel at a time (see narrowN)
	}
	bBlock := kern.nc // columns of B prepared at once: pixelBCols where staged (stageBlock)
	if p.staged() {
		bBlock = pixelBCols
	}
	later := p // the problem of the range's later K slices: they add to C
	if p.fromD && pc1-pc0 > kc {
		rest := *p
		rest.fromD = false
		later = &rest
	}
	for jc := j0; jc < j1; jc += kern.nc {
		ncb := min(kern.nc, j1-jc)
		for pc := pc0; pc < pc1; pc += kc {
			kcb := min(kc, p.k-pc)
			sp := p // the first slice starts C where the kernels do (fromD)
			if pc > pc0 {
				sp = later
			}
			if p.lazyB {
				g.packBPanels(g.bpackOf(ws), jc/kern.nr, (jc+ncb+kern.nr-1)/kern.nr, pc, pc+1)
			}
			for ic := i0; ic < i1; ic += mc {
				mcb := min(mc, i1-ic)
				g.packABlock(ws, ic, mcb, pc, kcb)
				for jb := jc; jb < jc+ncb; jb += bBlock {
					nb := min(bBlock, jc+ncb-jb)
					if p.staged() {
						p.stageBlock(ws, pc, kcb, jb, nb)
					}
					for jr := 0; jr < nb; jr += kern.nr {
						w := min(kern.nr, nb-jr)
						if rest := nb - jr - kern.nr; rest > 0 && rest <= kern.wideNR {
							w = nb - jr // the last whole panel and the ragged one, in one wide tile
						}
						g.tiles(sp, ws, ic, mcb, pc, kcb, jb+jr, w)
						if w > kern.nr {
							break
						}
					}
				}
			}
		}
	}
}

// staged reports whether the workers copy B block by block into their
// own workspace (stageBlock) before the kernels read it: normalised from
// bytes (MulAddPixelsB) or copied (see Staging B).
func (p *gemmProblem) staged() bool { return p.pixB != nil || p.stageB }

// startsInKernel reports whether C's start value (β·D, β·C, or 0 for
// β = 0) is better left to the kernels' update (fromD) of the first K
// slice, whose tiles then write C rather than add to it (the later
// slices add, as ever): whenever the kernel has fromD variants. Tiles on
// other paths (edges, scratch) start their own region (startTile). With
// one K slice, dW1 = dHᵀ·x + 2λ·W1 then writes and reads its 1.2 MB
// once, not twice; so does any product of one slice with β = 0 (dW for
// λ = 0, the 1000×100×3072 benchmark's 24.6 MB). With several, it saves
// the pass that cleared or scaled C first (1.5 % of the AVX2 kernel's
// 1024³ profile: on 2 cores of an AMD EPYC Zen 5, five rounds in turn,
// medians, GFLOP/s, AVX2 47.6 → 48.8 on one worker and 94.8 → 95.6 on
// two, AVX-512 88.2 → 88.2 and 168.5 → 170.0: in the noise, never
// slower). The SGD step the kernels can take with it (γ ≠ 0) belongs
// after the last slice, so a product of several slices with one starts C
// in a pass of its own and takes the step after (subAll).
func (p *gemmProblem) startsInKernel() bool {
	return p.alpha != 0 && p.k > 0 && p.kern.fromD != nil && (p.k <= kc || p.gamma == 0)
}

// out is C from element ci on for the kernels' fromD variants, or nil
// where they need not store it (dropC: the caller keeps only D, after the
// SGD step they take).
func (p *gemmProblem) out(ci int) []float64 {
	if p.dropC {
		return nil
	}
	return p.c[ci:]
}

// start is the matrix the kernels' fromD variants start C from: D, or C
// itself (β·C; with β = 0 they do not read it).
func (p *gemmProblem) start() []float64 {
	if p.d != nil {
		return p.d
	}
	return p.c
}

// startTile starts the mrb×nrb region of C at element ci (startC) when the
// kernels start C (fromD) and this tile's does not.
func (p *gemmProblem) startTile(ci, mrb, nrb int) {
	if p.fromD {
		i, j := ci/p.ldc, ci%p.ldc
		p.startC(i, i+mrb, j, j+nrb)
	}
}

// subTile takes D ← D − γ·C (γ = p.gamma, if not 0) over the mrb×nrb
// region of C at element ci, once it is done: with the optimiser's
// roundings, the product and then the difference (as the fused kernels).
func (p *gemmProblem) subTile(ci, mrb, nrb int) {
	for i := 0; i < mrb && p.gamma != 0; i++ {
		at := ci + i*p.ldc
		subAll(p.d[at:at+nrb], p.c[at:at+nrb], p.gamma)
	}
}

// startC sets rows [i0,i1) × columns [j0,j1) of C to their start value
// before any product is added: β·D, 0 (β = 0, even over NaN), β·C. β is
// read into a local: as p.beta the loop reloaded it after every store (a
// store to a []float64 may alias a float64 field); the seed net's step
// (dW1's 2λ·W1 start) 805 → 784 µs, medians of four interleaved samples.
func (p *gemmProblem) startC(i0, i1, j0, j1 int) {
	for i := i0; i < i1; i++ {
		row := p.c[i*p.ldc+j0 : i*p.ldc+j1]
		switch {
		case p.d != nil && p.beta != 0:
			beta, d := p.beta, p.d[i*p.ldc+j0:i*p.ldc+j1]
			row = row[:len(d)]
			for j, v := range d {
				row[j] = beta * v
			}
		case p.beta == 0:
			clear(row)
		case p.beta != 1:
			beta := p.beta
			for j := range row {
				row[j] *= beta
			}
		}
	}
}

// packABlock prepares workspace ws's block of op(A), rows ic … ic+mcb−1
// of the K slice at pc: packed into mr-tall panels, normalised from bytes
// (MulPixels), or, for kernels that read A in place, only its ragged last
// panel.
func (g *Gemm) packABlock(ws *gemmWorkspace, ic, mcb, pc, kcb int) {
	p := &g.prob
	mr := p.kern.mr
	ragged := mcb - mcb%mr // offset in the block of a ragged last panel
	switch {
	case p.pix != nil && p.kern.pixelPanel != nil:
		p.normPanels(ws, ic, mcb, pc, kcb)
	case p.pix != nil && p.kern.direct:
		p.normBlock(ws.ap, ic, mcb, pc, kcb)
	case p.pix != nil:
		p.packPixels(ws.ap, ic, mcb, pc, kcb)
	case p.packedA:
		packA(ws.ap, p.a, p.ars, p.acs, ic, mcb, pc, kcb, mr)
	case ragged < mcb:
		packA(ws.ap, p.a, p.ars, p.acs, ic+ragged, mcb-ragged, pc, kcb, mr)
	}
}

// tiles runs the micro-kernel down one panel of B, columns j … j+nrb−1
// (nrb ≤ nr, or nr + at most wideNR for the wide tile), over the block of
// A at rows ic … ic+mcb−1, K slice pc: whole tiles with the kernel (or its
// wide tile), ragged ones with its edge tiles or on a scratch copy of C.
func (g *Gemm) tiles(p *gemmProblem, ws *gemmWorkspace, ic, mcb, pc, kcb, j, nrb int) {
	kern := p.kern
	mr, nr, ldc := kern.mr, kern.nr, p.ldc
	ragged := mcb - mcb%mr
	bpanel, csb := g.bPanelOf(ws, pc, kcb, j)
	var bedge []float64 // the wide tile's ragged panel
	var cse int
	if nrb > nr {
		bedge, cse = g.bPanelOf(ws, pc, kcb, j+nr)
	}
	// plain: whole tiles run kern.fn, called here, not through tile: on 2
	// cores of an AMD EPYC Zen 5, five rounds in turn, medians, 1024³
	// with the AVX2 kernel 50.2 → 51.0 GFLOP/s on one worker, 96.1 → 98.7
	// on two (the calls were 2–3 % of its profile).
	plain := !p.fromD && (p.packedB || kern.inPlaceB == nil || p.staged())
	for ir := 0; ir < mcb; ir += mr {
		mrb := min(mr, mcb-ir)
		// The A panel: packed, normalised rows, or in place.
		apanel, rsa, csa := ws.ap[ir*kcb:], 1, mr
		if p.pix != nil && kern.direct && kern.pixelPanel == nil {
			rsa, csa = kcb, 1 // normBlock's rows
		} else if !p.packedA {
			if ir < ragged {
				apanel, rsa, csa = p.a[(ic+ir)*p.ars+pc*p.acs:], p.ars, p.acs
			} else {
				apanel = ws.ap
			}
		}
		ci := (ic+ir)*ldc + j
		switch {
		case plain && mrb == mr && nrb == nr: // tile's commonest case, without its call
			kern.fn(kcb, p.alpha, apanel, rsa, csa, bpanel, csb, p.c[ci:], ldc)
		case nrb > nr && mrb == mr:
			p.startTile(ci, mrb, nrb)
			kern.wide(kcb, p.alpha, apanel, rsa, csa, bpanel, csb, bedge, cse, p.c[ci:], ldc, nrb-nr)
			if p.fromD {
				p.subTile(ci, mrb, nrb)
			}
		case nrb > nr: // a ragged row panel of the wide tile: its two panels apart
			g.tile(p, ws, kcb, apanel, rsa, csa, bpanel, csb, ci, mrb, nr)
			g.tile(p, ws, kcb, apanel, rsa, csa, bedge, cse, ci+nr, mrb, nrb-nr)
		default:
			g.tile(p, ws, kcb, apanel, rsa, csa, bpanel, csb, ci, mrb, nrb)
		}
	}
}

// bPanelOf is the kcb×nr micro-panel of op(B) for the K slice at pc and
// columns j…j+nr-1, and the distance between its steps: bPanel's, or in
// the block of B normalised from bytes (MulAddPixelsB).
func (g *Gemm) bPanelOf(ws *gemmWorkspace, pc, kcb, j int) (panel []float64, csb int) {
	p := &g.prob
	switch {
	case !p.staged():
		return g.bPanel(g.bpackOf(ws), pc, kcb, j)
	case p.kern.direct: // the staged block, read in place
		return ws.bx[j-ws.bxJ0:], pixelBCols
	default:
		return ws.bx[(j-ws.bxJ0)*kcb:], p.kern.nr
	}
}

// tile computes one tile of C, mrb ≤ mr rows and nrb ≤ nr columns from
// element ci on, over one K slice: whole with the kernel (or its variant
// for B read in place), ragged with the kernel's edge tiles or on a
// scratch copy of C.
func (g *Gemm) tile(p *gemmProblem, ws *gemmWorkspace, kcb int, apanel []float64, rsa, csa int, bpanel []float64, csb, ci, mrb, nrb int) {
	kern := p.kern
	mr, nr, ldc := kern.mr, kern.nr, p.ldc
	// A whole panel of B in place (bPanel) is prefetched by the kernel; a
	// staged block of B (normalised from bytes or copied: stageBlock) is
	// in L2 already, and prefetching it only took load slots: the
	// trainer's step, ten rounds in turn on one worker, 1.078 → 1.061 ms
	// (medians), five on two 0.699 → 0.686 ms.
	inPlace := !p.packedB && kern.inPlaceB != nil && !p.staged()
	switch narrow := nrb <= kern.edgeNR; {
	case mrb == mr && nrb == nr && p.fromD:
		kern.fromD(kcb, p.alpha, apanel, rsa, csa, bpanel, csb, p.out(ci), ldc, p.start()[ci:], p.beta, p.gamma, inPlace)
		return
	case mrb == mr && nrb == nr && inPlace:
		kern.inPlaceB(kcb, p.alpha, apanel, rsa, csa, bpanel, csb, p.c[ci:], ldc)
	case mrb == mr && nrb == nr:
		kern.fn(kcb, p.alpha, apanel, rsa, csa, bpanel, csb, p.c[ci:], ldc)
	case nrb == nr && mrb <= kern.rowEdgeMR && p.fromD:
		kern.rowFromD(kcb, p.alpha, apanel, rsa, csa, bpanel, csb, p.out(ci), ldc, mrb, p.start()[ci:], p.beta, p.gamma)
		return
	case nrb == nr && mrb <= kern.rowEdgeMR:
		kern.rowEdge(kcb, p.alpha, apanel, rsa, csa, bpanel, csb, p.c[ci:], ldc, mrb)
	case mrb == mr && narrow:
		p.startTile(ci, mrb, nrb)
		// A ragged panel of at most edgeNR columns is packed lastW =
		// edgeNR wide: only the edge kernel reads it, straight into C
		// when the rows are whole.
		kern.edge(kcb, p.alpha, apanel, rsa, csa, bpanel, csb, p.c[ci:], ldc, nrb)
	default:
		// Ragged edge: copy the valid part of C into a full scratch
		// tile, run the kernel on it, copy it back. Each element gets
		// the same arithmetic as in a full tile.
		p.startTile(ci, mrb, nrb)
		clear(ws.edge)
		for i := 0; i < mrb; i++ {
			copy(ws.edge[i*nr:i*nr+nrb], p.c[ci+i*ldc:ci+i*ldc+nrb])
		}
		if narrow {
			kern.edge(kcb, p.alpha, apanel, rsa, csa, bpanel, csb, ws.edge, nr, nrb)
		} else {
			kern.fn(kcb, p.alpha, apanel, rsa, csa, bpanel, csb, ws.edge, nr)
		}
		for i := 0; i < mrb; i++ {
			copy(p.c[ci+i*ldc:ci+i*ldc+nrb], ws.edge[i*nr:i*nr+nrb])
		}
	}
	if p.fromD {
		p.subTile(ci, mrb, nrb) // the fused kernels returned above
	}
}

// packA copies op(A)[i0:i0+mcb, p0:p0+kcb] into dst as mr-tall micro-panels:
// panel q holds rows i0+q·mr … i0+q·mr+mr-1, stored k-major
// (dst[q·mr·kcb + p·mr + i]). Rows past the edge are zero-filled, so the
// micro-kernel never needs to know about ragged edges.
func packA(dst, a []float64, rs, cs, i0, mcb, p0, kcb, mr int) {
	for ir := 0; ir < mcb; ir += mr {
		panel := dst[ir*kcb : (ir+mr)*kcb]
		rows := min(mr, mcb-ir)
		base := (i0+ir)*rs + p0*cs
		if rs == 1 {
			// op(A) = Aᵀ: the tile's rows are contiguous in memory for each p.
			// (Element loops, not copy: a call per 4 values costs more.)
			for p := 0; p < kcb; p++ {
				out := panel[p*mr : p*mr+mr]
				src := a[base+p*cs : base+p*cs+rows]
				for i, v := range src {
					out[i] = v
				}
				for i := rows; i < mr; i++ {
					out[i] = 0
				}
			}
			continue
		}
		if cs == 1 && rows == mr && mr == 2 {
			// The common case for the Go kernel, op(A) = A with a full
			// panel: interleave two contiguous rows.
			r0 := a[base : base+kcb]
			r1 := a[base+rs : base+rs+kcb]
			out := panel[:2*kcb]
			for p := range r0 {
				o := out[2*p : 2*p+2 : 2*p+2]
				o[0], o[1] = r0[p], r1[p]
			}
			continue
		}
		// op(A) = A (cs = 1, see strides): the panel's rows are contiguous
		// runs of A.
		packTransposed(panel, a, base, rs, kcb, mr, rows)
	}
}

// image is the bytes of image i of pix (pix or pixB), size bytes each: as
// Images.Image with the problem's rows.
func (p *gemmProblem) image(pix []uint8, i, size int) []uint8 {
	if p.rows != nil {
		i = p.rows[i]
	}
	return pix[i*size : (i+1)*size]
}

// packPixels is packA for MulPixels with the plain-Go kernel: it writes
// rows ic … ic+mcb−1, inputs pc … pc+kcb−1 of the images, normalised by
// p.norm, as mr-tall micro-panels (dst[q·mr·kcb + p·mr + i]), zero-filling
// rows past the edge (p.norm is never nil: MulPixels sees to that).
func (p *gemmProblem) packPixels(dst []float64, ic, mcb, pc, kcb int) {
	mr := p.kern.mr
	mean, inv := p.norm.Mean[pc:pc+kcb], p.norm.inv[pc:pc+kcb]
	for ir := 0; ir < mcb; ir += mr {
		panel := dst[ir*kcb : (ir+mr)*kcb]
		for i := 0; i < mr; i++ {
			if ir+i >= mcb {
				for s := 0; s < kcb; s++ {
					panel[s*mr+i] = 0
				}
				continue
			}
			row := p.image(p.pix, ic+ir+i, p.k)[pc : pc+kcb]
			for s, b := range row {
				panel[s*mr+i] = (scale255[b] - mean[s]) * inv[s]
			}
		}
	}
}

// prefetchRows is how many images ahead normBlock prefetches: a row's run
// of kc bytes takes about 90 ns to normalise, a miss to memory longer.
// Measured on AMD Zen 4 (MulPixels 2000×3072×50, one thread): 2 ahead
// 36 GFLOP/s, 4: 38, 8: 41, 16: 40, 32: 37.
const prefetchRows = 8

// normBlock is MulPixels' A block for the assembly kernels, which read A in
// place: rows ic … ic+mcb−1, inputs pc … pc+kcb−1 of the images,
// normalised by p.norm, row after row into dst (row i at dst[i·kcb …], so
// the kernel reads it with rsa = kcb, csa = 1), and rows of zeros up to
// the next multiple of mr, so the last panel is whole. Each row is one
// contiguous run for the pixel kernel (normalise), where interleaving rows
// into packed panels costs an input at a time: on AMD Zen 4 this made the
// evaluation's first layer 1.3× faster.
func (p *gemmProblem) normBlock(dst []float64, ic, mcb, pc, kcb int) {
	mr := p.kern.mr
	mean, inv := p.norm.Mean[pc:pc+kcb], p.norm.inv[pc:pc+kcb]
	row := func(i int) []uint8 { return p.image(p.pix, min(ic+i, p.m-1), p.k)[pc : pc+kcb] }
	for i := 0; i < mcb; i++ {
		normalise(dst[i*kcb:(i+1)*kcb], row(i), mean, inv, row(i+prefetchRows))
	}
	clear(dst[mcb*kcb : (mcb+mr-1)/mr*mr*kcb])
}

// normPanels is MulPixels' A block for kernels with a pixel panel kernel
// (8-row panels): rows ic … ic+mcb−1, inputs pc … pc+kcb−1 of the images,
// normalised by p.norm into k-major micro-panels in ws.ap (packA's layout, ap[q·8·kcb + p·8 + r]), which the kernels read as
// packed A and the wide tile needs. The rows of a ragged last panel past
// the block's end repeat its last image instead of zeros: a row of C
// depends on its own row of A only, and those rows of C are computed on
// scratch and never written back. Each panel prefetches the next one's
// runs, as normBlock does rows ahead.
func (p *gemmProblem) normPanels(ws *gemmWorkspace, ic, mcb, pc, kcb int) {
	const mr = 8
	mean, inv := p.norm.Mean[pc:pc+kcb], p.norm.inv[pc:pc+kcb]
	run := func(i int) []uint8 { return p.image(p.pix, min(i, p.m-1), p.k)[pc : pc+kcb] }
	rows, next := &ws.runs, &ws.next
	for ir := 0; ir < mcb; ir += mr {
		for r := range mr {
			rows[r], next[r] = run(ic+min(ir+r, mcb-1)), run(ic+ir+mr+r)
		}
		out := ws.ap[ir*kcb : (ir+mr)*kcb]
		for s := p.kern.pixelPanel(out, rows, next, mean, inv); s < kcb; s++ { // a tail shorter than the kernel's step
			for r, row := range rows {
				out[s*mr+r] = (scale255[row[s]] - mean[s]) * inv[s]
			}
		}
	}
}

// packB copies op(B)[p0:p0+kcb, j0:j0+ncb] into dst as nr-wide micro-panels:
// the panel of columns j0+jr … j0+jr+nr-1 starts at dst[jr·ps] (ps = kcb:
// panels back to back) and is stored k-major (step p's nr values from
// dst[jr·ps + p·nr] on). Columns past the edge are zero-filled.
func packB(dst, b []float64, rs, cs, p0, kcb, j0, ncb, nr, ps int) {
	if cs == 1 {
		packRuns(dst, b, rs, p0, kcb, j0, ncb, nr, ps)
		return
	}
	// op(B) = Bᵀ (rs = 1, see strides): the panel's columns are
	// contiguous runs of B.
	for jr := 0; jr < ncb; jr += nr {
		packTransposed(dst[jr*ps:], b, p0*rs+(j0+jr)*cs, cs, kcb, nr, min(nr, ncb-jr))
	}
}

// packRuns is packB for op(B) = B, whose rows are contiguous: step by
// step, for up to 8 panels at a time, so that a step's values are one run
// of a row of B (8 cache lines for AVX2's panels), where panel by panel
// each step reads one line of a row 8 KiB or more from the last, too many
// streams for the hardware prefetchers. Measured on the Intel Xeon of the
// README, medians of five interleaved runs of BenchmarkGEMM 1024³, AVX2
// kernel: 42.3 → 43.6 GFLOP/s on one worker, 83.9 → 87.1 on two (the
// packing 8 → 6 % of the profile); AVX-512: 69.4 → 70.1 and 135.3 → 135.1.
// The whole panels of a group go in assembly where the CPU has AVX2
// (cpu.PackRuns: two YMM moves per 8 values, where copy cost a call per
// panel and step): on 2 cores of an AMD EPYC Zen 5, two rounds in turn,
// BenchmarkPackB N_1024x1024 at 10.4–11.7 → 36.9–39.9 GB/s for nr = 8 and
// 20.8–21.8 → 39.4–42.7 for nr = 24, and 1024³ with the AVX2 kernel (A's
// panels transposed by cpu.Transpose4 and Transpose2 too) 47.2–47.7 →
// 48.7–49.7 GFLOP/s on one worker, 93.1–94.2 → 97.8–98.2 on two.
func packRuns(dst, b []float64, rs, p0, kcb, j0, ncb, nr, ps int) {
	const group = 8 // panels packed together
	for g0 := 0; g0 < ncb; g0 += group * nr {
		g1 := min(ncb, g0+group*nr)
		rest := g0 // the first column the Go loop packs
		if cpu.PackRuns != nil && nr%8 == 0 {
			whole := (g1 - g0) / nr // the group's whole panels, in assembly
			cpu.PackRuns(dst[g0*ps:], nr*ps, b[p0*rs+j0+g0:], rs, kcb, whole, nr)
			rest += whole * nr
		}
		for p := 0; p < kcb && rest < g1; p++ {
			row := b[(p0+p)*rs+j0:]
			for jr := rest; jr < g1; jr += nr {
				out := dst[jr*ps+p*nr:][:nr]
				if n := copy(out, row[jr:min(ncb, jr+nr)]); n < nr {
					clear(out[n:]) // past a ragged right edge
				}
			}
		}
	}
}

// packTransposed fills a w-wide k-major panel from n ≤ w
// contiguous runs of src: panel[p·w + j] = src[base + j·stride + p] for
// j < n and p < kcb, and 0 in columns n … w−1. It is both packings that
// transpose: op(B) = Bᵀ into B panels (the forward product's W1ᵀ; the runs
// are rows of W1) and op(A) = A into A panels (runs: rows of A). It moves
// 4×4 blocks (four runs, four steps) through registers: four runs read in
// step, 32 bytes each (streams the hardware prefetches well), and four
// adjacent values written to each of four panel steps. Measured on the
// Intel Xeon of the README (BenchmarkPackB, T_3072x100, nr = 24): 14.4–15.0
// GB/s one step at a time, 19.4–19.7 in 4×4 blocks; the forward product
// 100×3072×50 4 % faster on one thread, 7 % on two. Where the CPU has
// them, 8, 4 and 2 runs at a time go in assembly (cpu.Transpose8, 4, 2:
// the AVX2 kernel's 6-row A panels as 4 + 2), the rest in Go.
func packTransposed(panel, src []float64, base, stride, kcb, w, n int) {
	if n < w {
		clear(panel[:kcb*w])
	}
	j := 0
	// The assembly's blocks of 8, 4 and 2 runs, where the CPU has them,
	// each with the steps past its last whole block in Go.
	for _, t := range [...]struct {
		runs int
		fn   func(dst []float64, ldd int, src []float64, lds, n int) int
	}{{8, cpu.Transpose8}, {4, cpu.Transpose4}, {2, cpu.Transpose2}} {
		for ; t.fn != nil && j+t.runs <= n; j += t.runs {
			for p := t.fn(panel[j:], w, src[base+j*stride:], stride, kcb); p < kcb; p++ {
				for r := range t.runs {
					panel[p*w+j+r] = src[base+(j+r)*stride+p]
				}
			}
		}
	}
	for ; j+4 <= n; j += 4 {
		r0 := src[base+j*stride:][:kcb]
		r1 := src[base+(j+1)*stride:][:kcb]
		r2 := src[base+(j+2)*stride:][:kcb]
		r3 := src[base+(j+3)*stride:][:kcb]
		out := panel[j:]
		p := 0
		for ; p+4 <= kcb; p += 4 { // steps p … p+3 of columns j … j+3
			a0, a1, a2, a3 := r0[p:p+4:p+4], r1[p:p+4:p+4], r2[p:p+4:p+4], r3[p:p+4:p+4]
			o := out[p*w : p*w+3*w+4]
			o[0], o[1], o[2], o[3] = a0[0], a1[0], a2[0], a3[0]
			o[w], o[w+1], o[w+2], o[w+3] = a0[1], a1[1], a2[1], a3[1]
			o[2*w], o[2*w+1], o[2*w+2], o[2*w+3] = a0[2], a1[2], a2[2], a3[2]
			o[3*w], o[3*w+1], o[3*w+2], o[3*w+3] = a0[3], a1[3], a2[3], a3[3]
		}
		for ; p < kcb; p++ { // a slice whose depth is not a multiple of 4
			o := out[p*w : p*w+4 : p*w+4]
			o[0], o[1], o[2], o[3] = r0[p], r1[p], r2[p], r3[p]
		}
	}
	for ; j < n; j++ { // the last n mod 4 runs, one at a time
		for p, v := range src[base+j*stride:][:kcb] {
			panel[p*w+j] = v
		}
	}
}

// cpuModel names the processor ("unknown CPU" where the build cannot ask).
func cpuModel() string {
	if cpu.Model == "" {
		return "unknown CPU"
	}
	return cpu.Model
}

// ---------------------------------------------------------------------------
// Symmetric eigendecomposition (for input whitening).

// SymEig returns the eigenvalues of the symmetric n×n matrix a, largest
// first, and the unit eigenvectors as the rows of v:
//
//	a = vᵀ·diag(vals)·v,   v·vᵀ = I,   a·v[i]ᵀ = vals[i]·v[i]ᵀ
//
// a is overwritten. It is the textbook pair of steps (Golub & Van Loan,
// Matrix Computations, §8.3):
//
//  1. tridiagonalise: Householder reflections P_k = I − β_k·u_k·u_kᵀ, one
//     per row from the last up, give a = Q·T·Qᵀ with T tridiagonal;
//  2. qlImplicit: QL steps with implicit shifts, each a chain of plane
//     rotations, drive T's off-diagonal to zero: T = S·Λ·Sᵀ.
//
// The eigenvectors of a are the columns of Q·S, i.e. the rows of
// Sᵀ·Qᵀ: v starts as Qᵀ (buildQT) and every rotation of step 2 mixes two
// of its rows. The O(n³) loops (the rank-2 updates, Qᵀ, the rotations)
// are shared out over g's workers by rows or by columns; every element is
// computed the same way however they are cut, so the bits do not depend on
// the number of workers.
func SymEig(g *Gemm, a *Matrix) (vals []float64, v *Matrix, err error) {
	if a.Rows != a.Cols {
		panic(fmt.Sprintf("mlp: SymEig: a is %s, want a square matrix", a.Shape()))
	}
	d, e, beta := tridiagonalise(g, a)
	v = buildQT(g, a, beta)
	if err := qlImplicit(g, d, e, v); err != nil {
		return nil, nil, err
	}
	vals, v = sortEigen(d, v)
	return vals, v, nil
}

// eigMinPartFlops: a loop of SymEig is cut over the workers once it holds
// this many flops (a hand-off costs a few µs, see minPartFlops).
const eigMinPartFlops = 200_000

// splitRange calls fn(lo, hi) on the workers' shares of [0, n) when the
// loop holds at least eigMinPartFlops flops, else once on all of it.
func splitRange(g *Gemm, n int, flops float64, fn func(lo, hi int)) {
	parts := min(g.Workers(), n)
	if flops < eigMinPartFlops || parts <= 1 {
		fn(0, n)
		return
	}
	g.EachWorker(func(w int) {
		if w < parts {
			fn(n*w/parts, n*(w+1)/parts)
		}
	})
}

// tridiagonalise reduces the symmetric a in place to T = Qᵀ·a·Q and
// returns T's diagonal d and off-diagonal e (e[k] joins rows k−1 and k;
// e[0] = 0). For k = n−1 down to 2, with x = a[k, 0:k] (row k left of the
// diagonal, in the block that is still full):
//
//	α = −sign(x_{k−1})·‖x‖          (the sign that avoids cancellation)
//	u = x − α·e_{k−1},  β = 2/(uᵀu)  P = I − β·u·uᵀ maps x to α·e_{k−1}
//	B = a[0:k, 0:k] ← P·B·P:
//	  p = β·B·u,  K = (β/2)·uᵀp,  w = p − K·u,  B ← B − u·wᵀ − w·uᵀ
//
// and e[k] = α. u is kept in row k (a[k, 0:k]) and β in beta[k] for
// buildQT; a row already tridiagonal (x_0 … x_{k−2} all 0) gets β = 0.
//
// The block does not fit in any cache, so each step reads it once, not
// twice: row k−1 is updated first, the next step's u made from it, and
// then every other row gets this step's update and at once its term of
// the next step's p = β·B·u.
func tridiagonalise(g *Gemm, a *Matrix) (d, e, beta []float64) {
	n := a.Rows
	d, e, beta = make([]float64, n), make([]float64, n), make([]float64, n)
	p, w := make([]float64, n), make([]float64, n)
	if n > 1 {
		householder(a, n-1, d, e, beta)
		productRows(g, a, n-1, 0, nil, nil, beta[n-1], a.Row(n - 1)[:n-1], p)
	}
	for k := n - 1; k >= 2; k-- {
		u, b := a.Row(k)[:k], beta[k]
		if b != 0 {
			half := b / 2 * dot(u, p[:k])
			for i := range u {
				w[i] = p[i] - float64(half*u[i])
			}
			rank2(a.Row(k - 1)[:k], u, w[:k], u[k-1], w[k-1])
		}
		householder(a, k-1, d, e, beta)
		productRows(g, a, k-1, b, u, w[:k], beta[k-1], a.Row(k - 1)[:k-1], p)
	}
	d[0] = a.Data[0]
	return d, e, beta
}

// householder makes row k's reflector (see tridiagonalise): d[k], e[k],
// beta[k], and u in place of a[k, 0:k].
func householder(a *Matrix, k int, d, e, beta []float64) {
	d[k] = a.Data[k*a.Cols+k]
	x := a.Row(k)[:k]
	sigma := dot(x[:k-1], x[:k-1])
	if sigma == 0 {
		e[k] = x[k-1]
		return
	}
	xk := x[k-1]
	alpha := math.Sqrt(sigma + float64(xk*xk))
	if xk > 0 {
		alpha = -alpha
	}
	e[k] = alpha
	x[k-1] = xk - alpha                                      // u, in place of x
	beta[k] = 1 / (float64(alpha*alpha) - float64(alpha*xk)) // 2/(uᵀu), uᵀu = 2·(α² − α·x_{k−1})
}

// productRows runs over rows i < k of a: with b ≠ 0 it applies the rank-2
// update B ← B − u·wᵀ − w·uᵀ to a[i, 0:k+1], then with bNext ≠ 0 it sets
// p[i] = bNext·a[i, 0:k]·uNext (the next step's product). Rows are shared
// out over the workers.
func productRows(g *Gemm, a *Matrix, k int, b float64, u, w []float64, bNext float64, uNext, p []float64) {
	splitRange(g, k, 6*float64(k)*float64(k), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			row := a.Row(i)
			if b != 0 {
				rank2(row[:k+1], u, w, u[i], w[i])
			}
			if bNext != 0 {
				p[i] = bNext * dot(row[:k], uNext)
			}
		}
	})
}

// rank2 is row i of B ← B − u·wᵀ − w·uᵀ: row[j] −= ui·w[j] + wi·u[j].
func rank2(row, u, w []float64, ui, wi float64) {
	u, w = u[:len(row)], w[:len(row)]
	for j := range row {
		row[j] -= float64(ui*w[j]) + float64(wi*u[j])
	}
}

// dot is Σ_i x[i]·y[i], in four running sums (i mod 4) added at the end:
// one sum waits for each addition before the next, four keep the adder
// busy.
func dot(x, y []float64) float64 {
	y = y[:len(x)]
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(x); i += 4 {
		s0 += float64(x[i] * y[i])
		s1 += float64(x[i+1] * y[i+1])
		s2 += float64(x[i+2] * y[i+2])
		s3 += float64(x[i+3] * y[i+3])
	}
	for ; i < len(x); i++ {
		s0 += float64(x[i] * y[i])
	}
	return (s0 + s1) + (s2 + s3)
}

// qtBlock is how many reflections buildQT applies at once, as three GEMMs.
const qtBlock = 64

// buildQT returns Qᵀ = P_1·P_2⋯P_{n−1} from the reflections tridiagonalise
// left in a (u_k in a[k, 0:k], β_k in beta[k]), qtBlock at a time in the
// compact WY form (Schreiber & Van Loan 1989): a run of reflections is
//
//	P_k0⋯P_k1−1 = I − Yᵀ·T·Y    Y: the u_k as rows (b×n, zero beyond k),
//	                             T: b×b upper triangular, built column by
//	                             column: T[j,j] = β_j, T[0:j, j] = −β_j·T[0:j,0:j]·(Y[0:j]·u_j)
//
// and M ← M·(I − Yᵀ·T·Y) = M − ((M·Yᵀ)·T)·Y. Before the run, M = P_1⋯P_{k0−1}
// is the identity below row k0−1 and Y is zero beyond column k1−2, so only
// rows 0 … k1−2 of M change.
func buildQT(g *Gemm, a *Matrix, beta []float64) *Matrix {
	n := a.Rows
	m := NewMatrix(n, n)
	for i := range n {
		m.Data[i*n+i] = 1
	}
	y, t := NewMatrix(qtBlock, n), NewMatrix(qtBlock, qtBlock)
	yu := make([]float64, qtBlock)
	for k0 := 1; k0 < n; k0 += qtBlock {
		b := min(qtBlock, n-k0)
		yb, tb := y.RowsView(0, b), &Matrix{Rows: b, Cols: b, Data: t.Data[:b*b]}
		clear(yb.Data)
		clear(tb.Data)
		for j := range b {
			k := k0 + j
			u := yb.Row(j)
			copy(u, a.Row(k)[:k])
			for i := range j {
				yu[i] = dot(yb.Row(i)[:k], u[:k])
			}
			for i := range j { // T[0:j, j] = −β·T[0:j, 0:j]·yu[0:j] (T upper triangular)
				var s float64
				for l := i; l < j; l++ {
					s += float64(tb.Data[i*b+l] * yu[l])
				}
				tb.Data[i*b+j] = -beta[k] * s
			}
			tb.Data[j*b+j] = beta[k]
		}
		rows := m.RowsView(0, k0+b-1)
		my, myt := NewMatrix(rows.Rows, b), NewMatrix(rows.Rows, b)
		g.Mul(false, true, 1, rows, yb, 0, my)    // M·Yᵀ
		g.Mul(false, false, 1, my, tb, 0, myt)    // ·T
		g.Mul(false, false, -1, myt, yb, 1, rows) // M −= (M·Yᵀ·T)·Y
	}
	return m
}

// maxQLSteps bounds the QL steps spent on one eigenvalue; 2–3 is typical
// (the shifts converge cubically), 30 is the classic limit.
const maxQLSteps = 30

// errNoConvergence is SymEig's error when an eigenvalue needs more than
// maxQLSteps QL steps (a matrix with NaN or Inf entries).
var errNoConvergence = errors.New("the eigenvalue iteration did not converge")

// qlImplicit diagonalises the symmetric tridiagonal matrix with diagonal d
// and off-diagonal e (e[k] joins k−1 and k), leaving the eigenvalues in d
// and applying every rotation to the rows of v. For each l it repeats QL
// steps (qlStep) on the unreduced block l … m, where m is the first index
// whose coupling to the next row is negligible against the whole matrix's
// norm (not against its own diagonal, nor the rows met so far: at the
// many zero eigenvalues of a rank-deficient covariance such a test never
// passes), until m = l: then d[l] is an eigenvalue, to within 2⁻⁵²·‖T‖
// like every other.
func qlImplicit(g *Gemm, d, e []float64, v *Matrix) error {
	n := len(d)
	off := make([]float64, n) // off[i] joins i and i+1
	copy(off, e[1:])
	cs, sn := make([]float64, n), make([]float64, n)
	scale := 0.0 // ‖T‖ (the largest |d[i]| + |off[i]|): a coupling below 2⁻⁵²·‖T‖ is 0
	for i := range n {
		scale = math.Max(scale, math.Abs(d[i])+math.Abs(off[i]))
	}
	for l := 0; l < n; l++ {
		for steps := 0; ; steps++ {
			m := l
			for ; m < n-1; m++ {
				if math.Abs(off[m]) <= 0x1p-52*scale {
					break
				}
			}
			if m == l {
				break
			}
			if steps == maxQLSteps {
				return fmt.Errorf("%w: eigenvalue %d after %d steps", errNoConvergence, l, steps)
			}
			lo := qlStep(d, off, l, m, cs, sn)
			rotateRows(g, v, lo, m, cs, sn)
		}
	}
	return nil
}

// qlStep is one QL step with an implicit shift on the block l … m of the
// tridiagonal (d, off): the shift is the eigenvalue of the leading 2×2
// block nearer d[l], and the rotations (c, s) in the planes (i, i+1), i =
// m−1 down to l, chase the bulge up the block. It records rotation i in
// cs[i], sn[i] and returns the last i rotated: l, or more when a
// rotation's radius underflows to 0 (the block then splits, and the step
// ends there with d and off consistent).
func qlStep(d, off []float64, l, m int, cs, sn []float64) int {
	g := (d[l+1] - d[l]) / (2 * off[l])
	r := math.Hypot(g, 1)
	g = d[m] - d[l] + off[l]/(g+math.Copysign(r, g))
	s, c, p := 1.0, 1.0, 0.0
	for i := m - 1; i >= l; i-- {
		f, b := s*off[i], float64(c*off[i])
		r = math.Hypot(f, g)
		off[i+1] = r
		if r == 0 {
			d[i+1] -= p
			off[m] = 0
			return i + 1
		}
		s, c = f/r, g/r
		g = d[i+1] - p
		r = float64((d[i]-g)*s) + float64(2*c*b)
		p = float64(s * r)
		d[i+1] = g + p
		g = float64(c*r) - b
		cs[i], sn[i] = c, s
	}
	d[l] -= p
	off[l] = g
	off[m] = 0
	return l
}

// rotSlab is how many columns of v rotateRows carries through a whole chain
// of rotations at once: 512 doubles (4 KiB) per row keep the row each
// rotation shares with the next in L1.
const rotSlab = 512

// rotateRows applies the rotations i = hi−1 down to lo (cs[i], sn[i]) to
// rows i and i+1 of v:  v[i+1] ← s·v[i] + c·v[i+1],  v[i] ← c·v[i] − s·v[i+1].
// Columns are independent: the workers take column ranges, each carried
// through the chain rotSlab columns at a time.
func rotateRows(g *Gemm, v *Matrix, lo, hi int, cs, sn []float64) {
	n := v.Cols
	splitRange(g, n, 6*float64(n)*float64(hi-lo), func(c0, c1 int) {
		for s0 := c0; s0 < c1; s0 += rotSlab {
			s1 := min(s0+rotSlab, c1)
			for i := hi - 1; i >= lo; i-- {
				c, s := cs[i], sn[i]
				x, y := v.Row(i)[s0:s1], v.Row(i + 1)[s0:s1]
				for k, f := range y {
					y[k] = float64(s*x[k]) + float64(c*f)
					x[k] = float64(c*x[k]) - float64(s*f)
				}
			}
		}
	})
}

// sortEigen orders the eigenvalues d, largest first, with their rows of v.
func sortEigen(d []float64, v *Matrix) ([]float64, *Matrix) {
	order := make([]int, len(d))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(i, j int) int { return cmp.Compare(d[j], d[i]) })
	vals, out := make([]float64, len(d)), NewMatrix(v.Rows, v.Cols)
	for r, i := range order {
		vals[r] = d[i]
		copy(out.Row(r), v.Row(i))
	}
	return vals, out
}

// ---------------------------------------------------------------------------
// The top eigenpairs alone: subspace iteration.

// TopEigen returns the k largest eigenvalues of the symmetric n×n matrix a,
// in decreasing order, and their eigenvectors as the rows of v (k×n), for
// k much smaller than n, where SymEig's full decomposition would spend most
// of its time on eigenvectors nobody reads. Subspace iteration with a
// Rayleigh–Ritz step (Saad, "Numerical Methods for Large Eigenvalue
// Problems", ch. 5; Halko, Martinsson & Tropp 2011, alg. 4.4), on a block
// of m = k + k/4 rows (oversampling: the rows past k absorb the slowest
// directions):
//
//	Y = random m×n (start: rows of the standard normal, from rng)
//	Y ← orth(Y·a)                 topIters times: the rows turn towards
//	                              the top eigenvectors, eigenvalue i's
//	                              error shrinking like (λ_{m+1}/λ_i)^iters
//	H = Y·a·Yᵀ   (m×m)            a restricted to the rows' span
//	H = Sᵀ·Θ·S                    SymEig, m×m: cheap
//	v = (S·Y)[0:k],  vals = Θ[0:k] the Ritz pairs
//
// orth makes the rows orthonormal with Cholesky QR (orthonormaliseRows):
// one pass between power steps, two before the Rayleigh–Ritz step.
// Everything but the m×m factorisations is GEMM.
// If the block turns out rank-deficient (a has fewer than m eigenvalues
// clearly above 0, as a covariance of fewer images than inputs), TopEigen
// falls back to SymEig and returns its first k pairs.
func TopEigen(g *Gemm, a *Matrix, k int, rng *rand.Rand) (vals []float64, v *Matrix, err error) {
	return topEigen(g, a, k, rng, topIters)
}

// topEigen is TopEigen with `iters` power steps.
func topEigen(g *Gemm, a *Matrix, k int, rng *rand.Rand, iters int) (vals []float64, v *Matrix, err error) {
	n := a.Rows
	if a.Cols != n || k < 0 || k > n {
		panic(fmt.Sprintf("mlp: TopEigen: %d pairs of a %s matrix", k, a.Shape()))
	}
	if k == 0 {
		return nil, NewMatrix(0, n), nil
	}
	m := min(n, k+k/4)
	y, ya := NewMatrix(m, n), NewMatrix(m, n)
	for i := range y.Data {
		y.Data[i] = rng.NormFloat64()
	}
	ok := orthonormaliseRows(g, y, 1)
	for it := 0; it < iters && ok; it++ {
		g.Mul(false, false, 1, y, a, 0, ya) // Y·a = (a·Yᵀ)ᵀ, a symmetric
		y, ya = ya, y
		passes := 1 // orthonormal to about 2⁻⁵²·cond(Y)²: enough to go on with
		if it == iters-1 {
			passes = 2 // to rounding, for the Rayleigh–Ritz step
		}
		ok = orthonormaliseRows(g, y, passes)
	}
	if !ok {
		vals, v, err := SymEig(g, a.Clone())
		if err != nil {
			return nil, nil, err
		}
		return vals[:k], v.RowsView(0, k).Clone(), nil
	}
	h := NewMatrix(m, m)
	g.Mul(false, false, 1, y, a, 0, ya)
	g.Mul(false, true, 1, ya, y, 0, h)
	for i := range m { // H is symmetric up to rounding: make it exactly so
		for j := range i {
			s := (h.Data[i*m+j] + h.Data[j*m+i]) / 2
			h.Data[i*m+j], h.Data[j*m+i] = s, s
		}
	}
	theta, s, err := SymEig(g, h)
	if err != nil {
		return nil, nil, err
	}
	v = NewMatrix(k, n)
	g.Mul(false, false, 1, s.RowsView(0, k), y, 0, v)
	return theta[:k], v, nil
}

// topIters is TopEigen's number of power steps. Measured on the 3072×3072
// covariance of 49,000 CIFAR-10 training images with k = 800 (m = 1000)
// against SymEig (15 s on 2 cores): 4 steps take 2.9 s, miss 10⁻⁷ of the
// exact top 800's variance and get λ₈₀₀ to 7·10⁻⁵; 2 steps leave λ₈₀₀
// 0.4 % low, 6 steps cost 3.6 s (BenchmarkTopEigenCIFAR; the README has
// the table).
const topIters = 4

// orthonormaliseRows makes the rows of y (m×n, m ≤ n) orthonormal and
// spanning the same space, by `passes` passes of Cholesky QR:
//
//	G = y·yᵀ = L·Lᵀ      (m×m, Cholesky)
//	y ← L⁻¹·y            then y·yᵀ = L⁻¹·G·L⁻ᵀ = I
//
// One pass leaves y·yᵀ off I by about 2⁻⁵²·cond(y)²; a second mends that
// to rounding ("CholeskyQR2", Fukaya et al. 2014). It reports false,
// leaving y in an unspecified state, when G is not positive definite to
// working precision (y's rows nearly dependent).
func orthonormaliseRows(g *Gemm, y *Matrix, passes int) bool {
	m := y.Rows
	gram, tmp := NewMatrix(m, m), NewMatrix(m, y.Cols)
	for range passes {
		g.Mul(false, true, 1, y, y, 0, gram)
		if !cholesky(gram) {
			return false
		}
		g.Mul(false, false, 1, invertLower(gram), y, 0, tmp)
		copy(y.Data, tmp.Data)
	}
	return true
}

// cholesky replaces the lower triangle of the symmetric a with L, a = L·Lᵀ
// (row by row: L[i,j] = (a[i,j] − Σ_{p<j} L[i,p]·L[j,p]) / L[j,j]), and
// reports false if a pivot is not clearly positive (below 2⁻⁴⁰ of the
// largest diagonal element: a rank-deficient a). The upper triangle is
// left as it was.
func cholesky(a *Matrix) bool {
	n := a.Rows
	floor := 0.0
	for i := range n {
		floor = max(floor, a.Data[i*n+i])
	}
	floor *= 0x1p-40
	for i := range n {
		ri := a.Row(i)
		for j := 0; j <= i; j++ {
			s := ri[j] - dot(ri[:j], a.Row(j)[:j])
			if j < i {
				ri[j] = s / a.Data[j*n+j]
				continue
			}
			if !(s > floor) { // NaN too
				return false
			}
			ri[i] = math.Sqrt(s)
		}
	}
	return true
}

// invertLower returns L⁻¹ (lower triangular) for the lower triangle L of
// a, row by row from L·X = I: X_i = (e_i − Σ_{p<i} L[i,p]·X_p) / L[i,i],
// where row X_p is zero past column p.
func invertLower(a *Matrix) *Matrix {
	n := a.Rows
	x := NewMatrix(n, n)
	for i := range n {
		xi := x.Row(i)[:i+1]
		xi[i] = 1
		for p, l := range a.Row(i)[:i] {
			for j, v := range x.Row(p)[:p+1] {
				xi[j] -= float64(l * v)
			}
		}
		inv := 1 / a.Data[i*n+i]
		for j := range xi {
			xi[j] *= inv
		}
	}
	return x
}
