package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
)

// ---------------------------------------------------------------------------
// matrix.go

func randMatrix(rng *rand.Rand, rows, cols int) *Matrix {
	m := NewMatrix(rows, cols)
	for i := range m.Data {
		m.Data[i] = rng.NormFloat64()
	}
	return m
}

// operands returns A and B stored so that op(A) is m×k and op(B) is k×n.
func operands(rng *rand.Rand, transA, transB bool, m, k, n int) (a, b *Matrix) {
	if transA {
		a = randMatrix(rng, k, m)
	} else {
		a = randMatrix(rng, m, k)
	}
	if transB {
		b = randMatrix(rng, n, k)
	} else {
		b = randMatrix(rng, k, n)
	}
	return a, b
}

// maxRelErr is max |got-want| / max(1, |want|) over all elements.
func maxRelErr(got, want []float64) float64 {
	var worst float64
	for i := range got {
		d := math.Abs(got[i]-want[i]) / math.Max(1, math.Abs(want[i]))
		if d > worst || math.IsNaN(d) {
			worst = d
		}
	}
	return worst
}

// testKernels lists every micro-kernel this binary has.
func testKernels() []microKernel {
	ks := []microKernel{kernelGo}
	if simdKernel != nil {
		ks = append(ks, *simdKernel)
	}
	return ks
}

func TestGemmMatchesNaive(t *testing.T) {
	// Shapes straddle every block edge: mr/nr (4, 6, 8), mc=96, kc=256,
	// and include primes, ones and empty dimensions.
	shapes := [][3]int{
		{1, 1, 1}, {3, 5, 7}, {4, 4, 4}, {6, 8, 8}, {7, 9, 5},
		{mc - 1, kc - 1, 7}, {mc, kc, 8}, {mc + 1, kc + 1, 9}, {2*mc + 5, 2*kc + 5, 17},
		{97, 131, 61}, {100, 3072 / 8, 50}, {50, 100, 307}, {13, 600, 3},
		{0, 5, 5}, {5, 0, 5}, {5, 5, 0},
	}
	scalars := []struct{ alpha, beta float64 }{{1, 0}, {1, 1}, {-0.7, 0.3}, {2.5, -1}, {0, 0.5}}
	for _, kern := range testKernels() {
		for _, workers := range []int{1, 3} {
			g := newGemmKernel(workers, kern)
			defer g.Close()
			for _, s := range shapes {
				for _, ta := range []bool{false, true} {
					for _, tb := range []bool{false, true} {
						for _, sc := range scalars {
							name := fmt.Sprintf("%s/w%d/%dx%dx%d/tA=%v,tB=%v/a=%g,b=%g", kern.name, workers, s[0], s[1], s[2], ta, tb, sc.alpha, sc.beta)
							rng := rand.New(rand.NewPCG(uint64(s[0]*1000+s[1]), uint64(s[2])))
							a, b := operands(rng, ta, tb, s[0], s[1], s[2])
							c0 := randMatrix(rng, s[0], s[2])
							aCopy, bCopy := a.Clone(), b.Clone()
							got, want := c0.Clone(), c0.Clone()
							g.Mul(ta, tb, sc.alpha, a, b, sc.beta, got)
							GemmNaive(ta, tb, sc.alpha, a, b, sc.beta, want)
							if e := maxRelErr(got.Data, want.Data); e > 1e-12 {
								t.Errorf("%s: max relative error %.3g, want ≤ 1e-12", name, e)
							}
							if maxRelErr(a.Data, aCopy.Data) != 0 || maxRelErr(b.Data, bCopy.Data) != 0 {
								t.Errorf("%s: inputs changed by the call", name)
							}
						}
					}
				}
			}
		}
	}
}

func TestGemmBetaZeroIgnoresNaN(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	a, b := randMatrix(rng, 9, 11), randMatrix(rng, 11, 13)
	got := NewMatrix(9, 13)
	for i := range got.Data {
		got.Data[i] = math.NaN()
	}
	want := NewMatrix(9, 13)
	g := NewGemm(2)
	defer g.Close()
	g.Mul(false, false, 1, a, b, 0, got)
	GemmNaive(false, false, 1, a, b, 0, want)
	if e := maxRelErr(got.Data, want.Data); e > 1e-12 {
		t.Errorf("β=0 over NaN: max relative error %g", e)
	}
}

func TestGemmShapeMismatchPanics(t *testing.T) {
	cases := []struct {
		name    string
		a, b, c *Matrix
	}{
		{"inner", NewMatrix(2, 3), NewMatrix(4, 5), NewMatrix(2, 5)},
		{"output rows", NewMatrix(2, 3), NewMatrix(3, 5), NewMatrix(3, 5)},
		{"output cols", NewMatrix(2, 3), NewMatrix(3, 5), NewMatrix(2, 4)},
	}
	g := NewGemm(1)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				r := recover()
				msg, _ := r.(string)
				if r == nil || len(msg) < 4 || msg[:4] != "mlp:" {
					t.Fatalf("got panic %v, want an mlp: shape message", r)
				}
			}()
			g.Mul(false, false, 1, tc.a, tc.b, 0, tc.c)
		})
	}
}

// TestGemmDeterministicAcrossWorkers: the same product with 1, 2 and 8
// workers (and GOMAXPROCS 1, 2, 8) must give the same bits.
func TestGemmDeterministicAcrossWorkers(t *testing.T) {
	shapes := [][3]int{{100, 3072, 50}, {50, 100, 3072}, {301, 517, 203}}
	for _, s := range shapes {
		rng := rand.New(rand.NewPCG(7, uint64(s[1])))
		a, b := operands(rng, false, true, s[0], s[1], s[2])
		var ref []float64
		for _, procs := range []int{1, 2, 8} {
			old := runtime.GOMAXPROCS(procs)
			g := NewGemm(procs)
			c := NewMatrix(s[0], s[2])
			g.Mul(false, true, 1, a, b, 0, c)
			g.Close()
			runtime.GOMAXPROCS(old)
			if ref == nil {
				ref = c.Data
				continue
			}
			for i := range ref {
				if math.Float64bits(ref[i]) != math.Float64bits(c.Data[i]) {
					t.Fatalf("%v: GOMAXPROCS=%d differs from 1 at element %d: %v vs %v", s, procs, i, c.Data[i], ref[i])
				}
			}
		}
	}
}

func TestGemmZeroAllocs(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	a, b := operands(rng, false, true, 100, 3072, 50)
	c := NewMatrix(100, 50)
	g := NewGemm(2)
	defer g.Close()
	allocs := testing.AllocsPerRun(20, func() { g.Mul(false, true, 1, a, b, 0, c) })
	if allocs != 0 {
		t.Errorf("got %v allocations per Mul, want 0", allocs)
	}
}

// The shapes of the MLP's products, for the benchmarks (M×K×N).
var benchShapes = []struct {
	name           string
	m, k, n        int
	transA, transB bool
}{
	{"100x3072x50", 100, 3072, 50, false, true}, // S = X·W₁ᵀ
	{"50x100x3072", 50, 100, 3072, true, false}, // dW₁ = dHᵀ·X
	{"10000x3072x50", 10000, 3072, 50, false, true},
	{"1024x1024x1024", 1024, 1024, 1024, false, false},
}

// BenchmarkGEMM/<impl>/<MxKxN> reports GFLOP/s (2·M·N·K per product).
func BenchmarkGEMM(b *testing.B) {
	type impl struct {
		name string
		mul  func(tA, tB bool, alpha float64, a, b *Matrix, beta float64, c *Matrix)
	}
	var impls []impl
	impls = append(impls, impl{"naive", GemmNaive})
	for _, k := range testKernels() {
		for _, w := range []int{1, 2} {
			g := newGemmKernel(w, k)
			defer g.Close()
			impls = append(impls, impl{fmt.Sprintf("%s-%dT", k.name, w), g.Mul})
		}
	}
	for _, im := range impls {
		for _, s := range benchShapes {
			if im.name == "naive" && s.m*s.n*s.k > 1e9/4 {
				continue // minutes per call; the blocked rows make the point
			}
			b.Run(im.name+"/"+s.name, func(b *testing.B) {
				rng := rand.New(rand.NewPCG(1, 1))
				x, y := operands(rng, s.transA, s.transB, s.m, s.k, s.n)
				c := NewMatrix(s.m, s.n)
				b.ResetTimer()
				for b.Loop() {
					im.mul(s.transA, s.transB, 1, x, y, 0, c)
				}
				flops := 2 * float64(s.m) * float64(s.k) * float64(s.n)
				b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}
