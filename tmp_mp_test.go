package main

import "testing"

func BenchmarkTmpMulPixelsAVX2(b *testing.B) {
	const m, k, n = evalChunk, inputDim, 50
	rng := newRNG(21, 21)
	nm := randomNorm(rng, k)
	pix := make([]uint8, m*k)
	for i := range pix {
		pix[i] = uint8(rng.IntN(256))
	}
	w := randMatrix(rng, n, k)
	c := NewMatrix(m, n)
	g := newGemmKernels(1, kernelAVX2)
	defer g.Close()
	for b.Loop() {
		g.MulPixels(1, Images{Pix: pix, K: k}, nm, true, w, 0, c)
	}
	reportSpeed(b, 2*m*k*n, "avx2", 1)
}
