package main

// matrix.go: the one matrix type and the GEMM engine every layer runs on.
//
//	C = α·op(A)·op(B) + β·C,   op(X) ∈ {X, Xᵀ}
//
// op(A) is M×K, op(B) is K×N, C is M×N. The products the MLP needs:
//
//	forward      S  = X·W₁ᵀ          (N×D)·(D×H)      NoTrans, Trans
//	dW₁          dW = dHᵀ·X          (H×N)·(N×D)      Trans,   NoTrans
//	second layer dH = G·W₂           (N×C)·(C×H)      NoTrans, NoTrans
//	             dW₂ = Gᵀ·H          (C×N)·(N×H)      Trans,   NoTrans
//
// Three implementations live side by side:
//
//   - GemmNaive: the textbook triple loop. It is the reference and the test
//     oracle; read it first.
//   - the blocked engine (Gemm.Mul): packs panels of A and B into
//     contiguous buffers sized for the caches and runs a register-blocked
//     micro-kernel over them (the BLIS/GotoBLAS scheme, as in gonum's dgemm).
//     The default micro-kernel is plain Go (kernelGo below); when the binary
//     is built with GOEXPERIMENT=simd on amd64, matrix_simd_amd64.go supplies
//     an AVX2/FMA micro-kernel (CPUs with AVX2 and FMA) and an AVX-512 one
//     (CPUs with AVX-512), used instead.
//   - the parallel engine: the same blocked algorithm, with the output C cut
//     into independent rectangles, one per worker goroutine.
//
// Determinism. Every element C[i,j] is summed in exactly the same order,
// whatever the number of workers: the K dimension is always cut into the
// same KC-sized slices, processed in increasing order, and inside a slice the
// micro-kernel accumulates k = 0, 1, 2, … in a register before adding the
// slice's total into C. Workers only decide *which* elements of C they own,
// never how an element is summed, so results are bitwise identical for any
// GOMAXPROCS.

import (
	"fmt"
	"runtime"
	"sync"
)

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
				sum += a.Data[i*ars+p*acs] * b.Data[p*brs+j*bcs]
			}
			cij := &c.Data[i*c.Cols+j]
			if beta == 0 {
				*cij = alpha * sum // β = 0 overwrites, even a NaN already in C
			} else {
				*cij = alpha*sum + beta*(*cij)
			}
		}
	}
}

// Tuning constants, in one place (sized for AMD Zen 3: 32 KiB L1d and
// 512 KiB L2 per core, 32 MiB shared L3).
//
//	kc: depth of one packed slice of K. A micro-panel of B (kc×nr doubles,
//	    16 KiB for nr=8) stays in L1 while the kernel sweeps A panels.
//	mc: rows of A packed at once; the packed mc×kc block (192 KiB) lives in L2.
//	nc: columns of B packed at once; the kc×nc block (up to 8 MiB) lives in L3.
//	parallelMinFlops: below this many flops (2·M·N·K) one goroutine does the
//	    whole product; waking workers would cost more than it saves.
//	parallelMinElems: the same for ParallelFor's element-wise passes.
const (
	kc               = 256
	mc               = 96
	nc               = 4096
	parallelMinFlops = 200_000
	parallelMinElems = 20_000
)

// microKernel computes one mr×nr tile:
//
//	C[i, j] += α · Σ_{p<kc} a[p*mr+i] · b[p*nr+j]     (0 ≤ i < mr, 0 ≤ j < nr)
//
// where a is a packed kc×mr micro-panel of op(A) (column of the tile's rows
// for each p), b a packed kc×nr micro-panel of op(B), and C's tile starts at
// c[0] with row stride ldc. The sum over p runs in increasing order.
type microKernel struct {
	name   string
	mr, nr int
	fn     func(kc int, alpha float64, a, b, c []float64, ldc int)
}

// kernelGo is the portable micro-kernel: a 2×4 tile held in 8 scalar
// accumulators. This is the readable version of the fast kernel.
var kernelGo = microKernel{name: "go2x4", mr: 2, nr: 4, fn: kernelGo2x4}

// simdKernels is filled once, at package initialisation, by
// matrix_simd_amd64.go when the binary is built with GOEXPERIMENT=simd: the
// AVX-512 kernel if the CPU has AVX-512, the AVX2/FMA kernel if it has AVX2
// and FMA, fastest first. It is never written afterwards; empty otherwise.
var simdKernels []microKernel

// kernelGo2x4 is the plain-Go micro-kernel. Why 2×4: the Go compiler keeps
// scalars in the 15 usable XMM registers and does not vectorise, so the tile
// must fit there with its operands: 8 accumulators + 4 values of b + 2 of a.
// A 4×4 tile (16 accumulators) spills and ran 3.9 GFLOP/s per core here;
// 2×4 runs 6.1, and 7.0 with two steps per loop iteration as below.
// Walking the panels by re-slicing (a = a[4:]) lets the compiler drop the
// bounds checks.
func kernelGo2x4(kc int, alpha float64, a, b, c []float64, ldc int) {
	var c00, c01, c02, c03 float64
	var c10, c11, c12, c13 float64
	a = a[:2*kc]
	b = b[:4*kc]
	for len(a) >= 4 && len(b) >= 8 { // steps p and p+1
		b0, b1, b2, b3 := b[0], b[1], b[2], b[3]
		a0, a1 := a[0], a[1]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
		b0, b1, b2, b3 = b[4], b[5], b[6], b[7]
		a0, a1 = a[2], a[3]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
		a, b = a[4:], b[8:]
	}
	if len(a) >= 2 && len(b) >= 4 { // odd kc: the last step
		b0, b1, b2, b3 := b[0], b[1], b[2], b[3]
		a0, a1 := a[0], a[1]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
	}
	r := c[0:4:4]
	r[0] += alpha * c00
	r[1] += alpha * c01
	r[2] += alpha * c02
	r[3] += alpha * c03
	r = c[ldc : ldc+4 : ldc+4]
	r[0] += alpha * c10
	r[1] += alpha * c11
	r[2] += alpha * c12
	r[3] += alpha * c13
}

// Gemm is the blocked, parallel GEMM engine. It owns one set of packing
// buffers per worker and a pool of long-lived worker goroutines, so a call
// allocates nothing in steady state. A Gemm is not safe for concurrent calls
// of Mul; give each goroutine that multiplies its own engine (the λ search
// runs one serial engine per trial).
type Gemm struct {
	kern    microKernel
	workers int
	ws      []*gemmWorkspace // ws[w] belongs to worker w
	jobs    chan gemmJob
	wg      sync.WaitGroup
	prob    gemmProblem // the current call's operands, read by every worker
	tbuf    []float64   // scratch Cᵀ for mulSwapped, grown as needed
}

// gemmWorkspace holds one worker's packed panels plus a scratch tile for the
// ragged edges of C.
type gemmWorkspace struct {
	ap, bp []float64
	edge   []float64
}

// gemmJob asks a worker to compute rows [i0,i1) × columns [j0,j1) of C, or,
// when fn is set, to call fn(i0, i1) (see ParallelFor).
type gemmJob struct {
	w              int
	p              *gemmProblem
	i0, i1, j0, j1 int
	fn             func(lo, hi int)
}

// gemmProblem is one call's operands, as strides into op(A) and op(B).
type gemmProblem struct {
	alpha, beta float64
	a, b        []float64
	ars, acs    int
	brs, bcs    int
	c           []float64
	ldc         int
	d           []float64 // if not nil, C starts as β·D (D has C's shape) instead of β·C
	k           int       // the shared dimension of op(A) and op(B)
}

// NewGemm returns an engine with the given number of workers (≤ 0 means
// GOMAXPROCS) using the fastest micro-kernel this binary and CPU support.
func NewGemm(workers int) *Gemm {
	k := kernelGo
	if len(simdKernels) > 0 {
		k = simdKernels[0]
	}
	return newGemmKernel(workers, k)
}

// newGemmKernel returns an engine with a chosen micro-kernel (tests and
// benchmarks compare kernels with it).
func newGemmKernel(workers int, k microKernel) *Gemm {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	g := &Gemm{kern: k, workers: workers}
	for w := 0; w < workers; w++ {
		g.ws = append(g.ws, &gemmWorkspace{
			ap:   make([]float64, mc*kc),
			bp:   make([]float64, kc*nc),
			edge: make([]float64, k.mr*k.nr),
		})
	}
	if workers > 1 {
		jobs := make(chan gemmJob, workers)
		g.jobs = jobs
		for w := 1; w < workers; w++ {
			go func() {
				for j := range jobs { // ends when Close closes the channel
					if j.fn != nil {
						j.fn(j.i0, j.i1)
					} else {
						g.block(j.w, j.p, j.i0, j.i1, j.j0, j.j1)
					}
					g.wg.Done()
				}
			}()
		}
	}
	return g
}

// Close stops the engine's worker goroutines. The engine must not be used after.
func (g *Gemm) Close() {
	if g.jobs != nil {
		close(g.jobs)
		g.jobs = nil
	}
}

// KernelName names the micro-kernel in use ("go2x4", "avx2-fma4x8").
func (g *Gemm) KernelName() string { return g.kern.name }

// Mul computes C = α·op(A)·op(B) + β·C. A and B are read only; C must not
// share storage with A or B. With β = 0, C's previous contents (even NaN)
// are ignored.
//
// Parallel scheme: C is cut along its longer side into at most `workers`
// strips whose edges fall on micro-tile boundaries; worker w computes strip w
// completely (its own packing of the panels it needs, then every K slice in
// order). Strips never overlap, so workers share nothing but read-only A and B.
//
// Narrow outputs (N much smaller than M, such as the MLP's N×50 layer
// outputs) may be computed transposed, Cᵀ = op(B)ᵀ·op(A)ᵀ, when that leaves
// fewer wasted elements in ragged micro-tiles; see swapPays. The bits are
// the same either way.
func (g *Gemm) Mul(transA, transB bool, alpha float64, a, b *Matrix, beta float64, c *Matrix) {
	g.MulAdd(transA, transB, alpha, a, b, beta, c, c)
}

// MulAdd computes C = α·op(A)·op(B) + β·D, where D has C's shape and may be
// C itself (that is Mul). It saves a pass over memory when the start value
// is another matrix, as in dW₁ = dHᵀ·X + 2λ·W₁: each worker scales its own
// block of D into C just before accumulating into it. The bits are those of
// C ← β·D followed by Mul with β = 1.
func (g *Gemm) MulAdd(transA, transB bool, alpha float64, a, b *Matrix, beta float64, d, c *Matrix) {
	m, k, n := gemmShape(transA, transB, a, b, c)
	if d.Rows != m || d.Cols != n || len(d.Data) != len(c.Data) {
		panic(fmt.Sprintf("mlp: gemm: D is %s, want C's shape %s", d.Shape(), c.Shape()))
	}
	ars, acs := strides(a, transA)
	brs, bcs := strides(b, transB)
	if g.swapPays(m, n, k) {
		g.mulSwapped(alpha, a.Data, ars, acs, b.Data, brs, bcs, beta, d, c, m, n, k)
		return
	}
	g.prob = gemmProblem{alpha: alpha, beta: beta, a: a.Data, b: b.Data, c: c.Data, ldc: c.Cols, k: k,
		ars: ars, acs: acs, brs: brs, bcs: bcs}
	if d != c {
		g.prob.d = d.Data
	}
	g.run(m, n)
	g.prob = gemmProblem{} // drop references to the operands
}

// ParallelFor calls fn(lo, hi) on contiguous ranges that cover [0, n), one
// per worker (the caller runs the first), and returns when all are done.
// It is for element-wise passes such as parameter updates, whose results do
// not depend on how the range is cut. fn should be created once, not per
// call, or each call allocates a closure.
func (g *Gemm) ParallelFor(n int, fn func(lo, hi int)) {
	parts := g.workers
	if n < parallelMinElems {
		parts = 1
	}
	if parts <= 1 {
		fn(0, n)
		return
	}
	g.wg.Add(parts - 1)
	for w := parts - 1; w >= 1; w-- {
		g.jobs <- gemmJob{w: w, i0: n * w / parts, i1: n * (w + 1) / parts, fn: fn}
	}
	fn(0, n/parts)
	g.wg.Wait()
}

// tiledArea is the number of elements the micro-kernel computes for an m×n
// output: whole mr×nr tiles, the ragged ones included.
func (g *Gemm) tiledArea(m, n int) int {
	mr, nr := g.kern.mr, g.kern.nr
	return (m + mr - 1) / mr * mr * (n + nr - 1) / nr * nr
}

// swapPays reports whether computing Cᵀ = op(B)ᵀ·op(A)ᵀ wastes clearly
// fewer tile elements than C = op(A)·op(B). It does for the MLP's narrow
// outputs: with 3×16 tiles, a 1000×50 product is 1002×64 tiles (28 % wasted)
// but its transpose 51×1008 (3 %). Only worth the two transpositions when K
// is long.
func (g *Gemm) swapPays(m, n, k int) bool {
	return k >= 64 && m > 1 && n > 1 && 10*g.tiledArea(n, m) < 9*g.tiledArea(m, n)
}

// mulSwapped computes C = α·op(A)·op(B) + β·C as Cᵀ = α·op(B)ᵀ·op(A)ᵀ + β·Cᵀ
// into a scratch matrix T = Cᵀ, then transposes T into C. Every element is
// summed exactly as in the direct path (same K slices, and a·b = b·a in the
// FMA), so the two paths give the same bits.
func (g *Gemm) mulSwapped(alpha float64, a []float64, ars, acs int, b []float64, brs, bcs int, beta float64, d, c *Matrix, m, n, k int) {
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
	g.prob = gemmProblem{alpha: alpha, beta: beta, a: b, b: a, c: t, ldc: m, k: k,
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

// run computes the m×n product described by g.prob, split over the workers.
func (g *Gemm) run(m, n int) {
	p := &g.prob
	parts := g.workers
	if 2*float64(m)*float64(n)*float64(p.k) < parallelMinFlops {
		parts = 1
	}
	// Split the longer side of C, in whole micro-tiles.
	splitRows := m >= n
	unit, extent := g.kern.nr, n
	if splitRows {
		unit, extent = g.kern.mr, m
	}
	tiles := (extent + unit - 1) / unit
	if parts > tiles {
		parts = tiles
	}
	if m == 1 || n == 1 {
		// A single row or column of output: packing would cost more than
		// the product itself. Dot products straight from the operands.
		gemmDot(p, m, n)
		return
	}
	if parts <= 1 {
		g.block(0, p, 0, m, 0, n)
		return
	}
	g.wg.Add(parts - 1)
	for w := parts - 1; w >= 0; w-- {
		lo := tiles * w / parts * unit
		hi := min(tiles*(w+1)/parts*unit, extent)
		j := gemmJob{w: w, p: p, i0: 0, i1: m, j0: lo, j1: hi}
		if splitRows {
			j = gemmJob{w: w, p: p, i0: lo, i1: hi, j0: 0, j1: n}
		}
		if w == 0 {
			g.block(0, p, j.i0, j.i1, j.j0, j.j1) // the caller is worker 0
		} else {
			g.jobs <- j
		}
	}
	g.wg.Wait()
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
				s0 += p.a[ai+k*p.acs] * p.b[bj+k*p.brs]
				s1 += p.a[ai+(k+1)*p.acs] * p.b[bj+(k+1)*p.brs]
				s2 += p.a[ai+(k+2)*p.acs] * p.b[bj+(k+2)*p.brs]
				s3 += p.a[ai+(k+3)*p.acs] * p.b[bj+(k+3)*p.brs]
			}
			for ; k < p.k; k++ {
				s0 += p.a[ai+k*p.acs] * p.b[bj+k*p.brs]
			}
			sum := (s0 + s1) + (s2 + s3)
			c := &p.c[i*p.ldc+j]
			if p.beta == 0 {
				*c = p.alpha * sum
			} else if p.d != nil {
				*c = p.alpha*sum + p.beta*p.d[i*p.ldc+j]
			} else {
				*c = p.alpha*sum + p.beta*(*c)
			}
		}
	}
}

// block computes rows [i0,i1) × columns [j0,j1) of C with workspace w:
// the serial blocked algorithm.
//
//	scale C's block by β
//	for each nc-wide column block of B (jc):
//	  for each kc-deep slice of K (pc), in order:
//	    pack op(B)[pc:pc+kc, jc:jc+nc] into nr-wide micro-panels
//	    for each mc-tall row block of A (ic):
//	      pack op(A)[ic:ic+mc, pc:pc+kc] into mr-tall micro-panels
//	      for every mr×nr tile: micro-kernel
func (g *Gemm) block(w int, p *gemmProblem, i0, i1, j0, j1 int) {
	ws := g.ws[w]
	mr, nr := g.kern.mr, g.kern.nr
	ldc := p.ldc
	for i := i0; i < i1; i++ {
		row := p.c[i*ldc+j0 : i*ldc+j1]
		if p.d != nil && p.beta != 0 {
			for j, v := range p.d[i*ldc+j0 : i*ldc+j1] {
				row[j] = p.beta * v
			}
		} else if p.beta == 0 {
			clear(row)
		} else if p.beta != 1 {
			for j := range row {
				row[j] *= p.beta
			}
		}
	}
	k := p.k
	if p.alpha == 0 || k == 0 {
		return
	}
	for jc := j0; jc < j1; jc += nc {
		ncb := min(nc, j1-jc)
		for pc := 0; pc < k; pc += kc {
			kcb := min(kc, k-pc)
			packB(ws.bp, p.b, p.brs, p.bcs, pc, kcb, jc, ncb, nr)
			for ic := i0; ic < i1; ic += mc {
				mcb := min(mc, i1-ic)
				packA(ws.ap, p.a, p.ars, p.acs, ic, mcb, pc, kcb, mr)
				for jr := 0; jr < ncb; jr += nr {
					nrb := min(nr, ncb-jr)
					bpanel := ws.bp[jr*kcb : (jr+nr)*kcb]
					for ir := 0; ir < mcb; ir += mr {
						mrb := min(mr, mcb-ir)
						apanel := ws.ap[ir*kcb : (ir+mr)*kcb]
						ci := (ic+ir)*ldc + jc + jr
						if mrb == mr && nrb == nr {
							g.kern.fn(kcb, p.alpha, apanel, bpanel, p.c[ci:], ldc)
							continue
						}
						// Ragged edge: copy the valid part of C into a
						// full scratch tile, run the kernel on it, copy it
						// back. Each element gets the same arithmetic as in
						// a full tile.
						clear(ws.edge)
						for i := 0; i < mrb; i++ {
							copy(ws.edge[i*nr:i*nr+nrb], p.c[ci+i*ldc:ci+i*ldc+nrb])
						}
						g.kern.fn(kcb, p.alpha, apanel, bpanel, ws.edge, nr)
						for i := 0; i < mrb; i++ {
							copy(p.c[ci+i*ldc:ci+i*ldc+nrb], ws.edge[i*nr:i*nr+nrb])
						}
					}
				}
			}
		}
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
		if cs == 1 && rows == mr && mr == 3 {
			// The same for the AVX-512 kernel's three rows.
			r0 := a[base : base+kcb]
			r1 := a[base+rs : base+rs+kcb]
			r2 := a[base+2*rs : base+2*rs+kcb]
			out := panel[:3*kcb]
			for p := range r0 {
				o := out[3*p : 3*p+3 : 3*p+3]
				o[0], o[1], o[2] = r0[p], r1[p], r2[p]
			}
			continue
		}
		if cs == 1 && rows == mr && mr == 4 {
			// The same for the AVX2 kernel's four rows.
			r0 := a[base : base+kcb]
			r1 := a[base+rs : base+rs+kcb]
			r2 := a[base+2*rs : base+2*rs+kcb]
			r3 := a[base+3*rs : base+3*rs+kcb]
			out := panel[:4*kcb]
			for p := range r0 {
				o := out[4*p : 4*p+4 : 4*p+4]
				o[0], o[1], o[2], o[3] = r0[p], r1[p], r2[p], r3[p]
			}
			continue
		}
		for i := 0; i < mr; i++ {
			if i >= rows {
				for p := 0; p < kcb; p++ {
					panel[p*mr+i] = 0
				}
				continue
			}
			src := a[base+i*rs : base+i*rs+(kcb-1)*cs+1]
			for p := 0; p < kcb; p++ {
				panel[p*mr+i] = src[p*cs]
			}
		}
	}
}

// packB copies op(B)[p0:p0+kcb, j0:j0+ncb] into dst as nr-wide micro-panels:
// panel q holds columns j0+q·nr … j0+q·nr+nr-1, stored k-major
// (dst[q·nr·kcb + p·nr + j]). Columns past the edge are zero-filled.
func packB(dst, b []float64, rs, cs, p0, kcb, j0, ncb, nr int) {
	for jr := 0; jr < ncb; jr += nr {
		panel := dst[jr*kcb : (jr+nr)*kcb]
		cols := min(nr, ncb-jr)
		base := p0*rs + (j0+jr)*cs
		switch {
		case cs == 1 && cols == nr && nr == 16:
			// op(B) = B, full panel: each panel row is a contiguous run
			// (unrolled for the AVX-512 kernel; a copy call costs more).
			for p := 0; p < kcb; p++ {
				o := panel[p*16 : p*16+16 : p*16+16]
				s := b[base+p*rs : base+p*rs+16 : base+p*rs+16]
				o[0], o[1], o[2], o[3] = s[0], s[1], s[2], s[3]
				o[4], o[5], o[6], o[7] = s[4], s[5], s[6], s[7]
				o[8], o[9], o[10], o[11] = s[8], s[9], s[10], s[11]
				o[12], o[13], o[14], o[15] = s[12], s[13], s[14], s[15]
			}
		case cs == 1:
			// op(B) = B: each panel row is a contiguous run, zero-filled
			// past a ragged right edge.
			for p := 0; p < kcb; p++ {
				out := panel[p*nr : p*nr+nr]
				n := copy(out[:cols], b[base+p*rs:])
				clear(out[n:])
			}
		case rs == 1 && cols == nr && nr%4 == 0:
			// op(B) = Bᵀ, full panel: the panel's columns are stored rows
			// of B. Transpose 4×4 blocks through registers, so that both
			// the reads and the writes are runs of four.
			packBTransposed4(panel, b, base, cs, kcb, nr)
		default:
			// op(B) = Bᵀ at the edge: element by element, zero-filled.
			clear(panel)
			for j := 0; j < cols; j++ {
				src := b[base+j*cs : base+j*cs+(kcb-1)*rs+1]
				for p := 0; p < kcb; p++ {
					panel[p*nr+j] = src[p*rs]
				}
			}
		}
	}
}

// packBTransposed4 fills a full nr-wide panel (nr a multiple of 4) from
// op(B) = Bᵀ, where panel column j is the contiguous run b[base+j·cs …]:
// panel[p·nr + j] = b[base + j·cs + p].
func packBTransposed4(panel, b []float64, base, cs, kcb, nr int) {
	p := 0
	for ; p+4 <= kcb; p += 4 {
		o0 := panel[p*nr : p*nr+nr]
		o1 := panel[(p+1)*nr : (p+1)*nr+nr]
		o2 := panel[(p+2)*nr : (p+2)*nr+nr]
		o3 := panel[(p+3)*nr : (p+3)*nr+nr]
		for j := 0; j < nr; j += 4 {
			s0 := b[base+j*cs+p : base+j*cs+p+4 : base+j*cs+p+4]
			s1 := b[base+(j+1)*cs+p : base+(j+1)*cs+p+4 : base+(j+1)*cs+p+4]
			s2 := b[base+(j+2)*cs+p : base+(j+2)*cs+p+4 : base+(j+2)*cs+p+4]
			s3 := b[base+(j+3)*cs+p : base+(j+3)*cs+p+4 : base+(j+3)*cs+p+4]
			r0 := o0[j : j+4 : j+4]
			r1 := o1[j : j+4 : j+4]
			r2 := o2[j : j+4 : j+4]
			r3 := o3[j : j+4 : j+4]
			r0[0], r0[1], r0[2], r0[3] = s0[0], s1[0], s2[0], s3[0]
			r1[0], r1[1], r1[2], r1[3] = s0[1], s1[1], s2[1], s3[1]
			r2[0], r2[1], r2[2], r2[3] = s0[2], s1[2], s2[2], s3[2]
			r3[0], r3[1], r3[2], r3[3] = s0[3], s1[3], s2[3], s3[3]
		}
	}
	for ; p < kcb; p++ {
		out := panel[p*nr : p*nr+nr]
		for j := range out {
			out[j] = b[base+j*cs+p]
		}
	}
}
