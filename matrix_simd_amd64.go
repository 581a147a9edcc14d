//go:build goexperiment.simd && amd64

package main

// matrix_simd_amd64.go: the AVX2/FMA micro-kernel (and an AVX-512 one), written with Go 1.26's
// experimental simd/archsimd package (build with GOEXPERIMENT=simd).
//
// It computes the same thing as kernelGo2x4 in matrix.go, for a 4×8 tile:
//
//	C[i, j] += α · Σ_{p<kc} a[p*4+i] · b[p*8+j]
//
// Each row of the tile lives in two 4-wide vector accumulators (8 of the 16
// YMM registers); each step p loads one 8-wide row of the B panel (two
// vectors), broadcasts each of the four A values in turn and issues 8 fused
// multiply-adds. The p loop still runs in increasing order, so the summation
// order per element is the same as the plain-Go kernel's; only the rounding
// differs (an FMA rounds once where a*b+c rounds twice).
//
// Performance notes (Go 1.26.8, measured on this machine with the kernel
// alone on L1-resident panels, kc=256):
//   - The register allocator uses only 16 vector registers (15: X15 is the
//     ABI's zero register), even for AVX-512 code, and hoists every load and
//     broadcast of a step ahead of the FMAs. MulAdd compiles to VFMADD213PD,
//     whose destination is the receiver, so a broadcast used twice is copied
//     first. Bigger tiles therefore spill: 6×8 ran 22 GFLOP/s, an AVX-512
//     8×16 no faster; 4×8 spills one register and runs 25.
//   - Walking the panels by re-slicing (a = a[4:]) instead of indexing
//     a[4*p+i] lets the compiler drop the bounds checks and address
//     arithmetic: 20 → 25 GFLOP/s for the same 4×8 tile; two steps per loop
//     iteration: 30 (four: 29, eight: 24; 3×8 and 2×12 tiles: the same 30).
//   - Mul followed by Add (non-fused) was slower: the scheduler hoists all
//     products, and they spill.
//   - A spill is worse than it looks: Go stack frames are only 8-byte
//     aligned, so a 64-byte ZMM spill often straddles two cache lines and
//     its reload cannot be forwarded from the store. An AVX-512 4×16 tile
//     (one spill) ran anywhere from 14 to 54 GFLOP/s depending on where the
//     goroutine's stack happened to sit; the 3×16 tile below does not spill
//     and runs 48–49 every time.

import "simd/archsimd"

func init() {
	// Fastest first: NewGemm takes simdKernels[0]; the tests run them all.
	if archsimd.X86.AVX512() {
		simdKernels = append(simdKernels, microKernel{name: "avx512-3x16", mr: 3, nr: 16, fn: kernelAVX512x3x16})
	}
	if archsimd.X86.AVX2() && archsimd.X86.FMA() {
		simdKernels = append(simdKernels, microKernel{name: "avx2-fma4x8", mr: 4, nr: 8, fn: kernelAVX2x4x8})
	}
}

func kernelAVX2x4x8(kc int, alpha float64, a, b, c []float64, ldc int) {
	var c00, c01, c10, c11, c20, c21, c30, c31 archsimd.Float64x4
	var b0, b1, x archsimd.Float64x4
	a = a[:4*kc]
	b = b[:8*kc]
	// One step p adds the outer product a[0:4] ⊗ b[0:8] to the tile; the
	// loop does two steps per iteration, which halves its overhead.
	for len(a) >= 8 && len(b) >= 16 {
		b0 = archsimd.LoadFloat64x4((*[4]float64)(b[0:4]))
		b1 = archsimd.LoadFloat64x4((*[4]float64)(b[4:8]))
		x = archsimd.BroadcastFloat64x4(a[0])
		c00 = x.MulAdd(b0, c00)
		c01 = x.MulAdd(b1, c01)
		x = archsimd.BroadcastFloat64x4(a[1])
		c10 = x.MulAdd(b0, c10)
		c11 = x.MulAdd(b1, c11)
		x = archsimd.BroadcastFloat64x4(a[2])
		c20 = x.MulAdd(b0, c20)
		c21 = x.MulAdd(b1, c21)
		x = archsimd.BroadcastFloat64x4(a[3])
		c30 = x.MulAdd(b0, c30)
		c31 = x.MulAdd(b1, c31)

		b0 = archsimd.LoadFloat64x4((*[4]float64)(b[8:12]))
		b1 = archsimd.LoadFloat64x4((*[4]float64)(b[12:16]))
		x = archsimd.BroadcastFloat64x4(a[4])
		c00 = x.MulAdd(b0, c00)
		c01 = x.MulAdd(b1, c01)
		x = archsimd.BroadcastFloat64x4(a[5])
		c10 = x.MulAdd(b0, c10)
		c11 = x.MulAdd(b1, c11)
		x = archsimd.BroadcastFloat64x4(a[6])
		c20 = x.MulAdd(b0, c20)
		c21 = x.MulAdd(b1, c21)
		x = archsimd.BroadcastFloat64x4(a[7])
		c30 = x.MulAdd(b0, c30)
		c31 = x.MulAdd(b1, c31)
		a, b = a[8:], b[16:]
	}
	if len(a) >= 4 && len(b) >= 8 { // odd kc: the last step
		b0 = archsimd.LoadFloat64x4((*[4]float64)(b[0:4]))
		b1 = archsimd.LoadFloat64x4((*[4]float64)(b[4:8]))
		x = archsimd.BroadcastFloat64x4(a[0])
		c00 = x.MulAdd(b0, c00)
		c01 = x.MulAdd(b1, c01)
		x = archsimd.BroadcastFloat64x4(a[1])
		c10 = x.MulAdd(b0, c10)
		c11 = x.MulAdd(b1, c11)
		x = archsimd.BroadcastFloat64x4(a[2])
		c20 = x.MulAdd(b0, c20)
		c21 = x.MulAdd(b1, c21)
		x = archsimd.BroadcastFloat64x4(a[3])
		c30 = x.MulAdd(b0, c30)
		c31 = x.MulAdd(b1, c31)
	}
	// C += α·acc, one row (two vectors) at a time.
	al := archsimd.BroadcastFloat64x4(alpha)
	addRow := func(row []float64, v0, v1 archsimd.Float64x4) {
		row = row[:8:8]
		al.MulAdd(v0, archsimd.LoadFloat64x4Slice(row[0:4])).StoreSlice(row[0:4])
		al.MulAdd(v1, archsimd.LoadFloat64x4Slice(row[4:8])).StoreSlice(row[4:8])
	}
	addRow(c[0:], c00, c01)
	addRow(c[ldc:], c10, c11)
	addRow(c[2*ldc:], c20, c21)
	addRow(c[3*ldc:], c30, c31)
}

// kernelAVX512x3x16 is the AVX-512 micro-kernel, used when the CPU has
// AVX-512 (F, CD, BW, DQ, VL): a 3×16 tile, each row in two 8-wide
// accumulators. A step loads one 16-wide row of the B panel, broadcasts the
// three A values and issues 6 FMAs of 8 doubles — 96 flops for about the
// instruction count of the AVX2 kernel's 64. Three rows, not four: with four
// the tile needs one register more than the allocator has and spills (see
// the notes at the top). Measured alone on L1-resident panels: 48 GFLOP/s
// per core, against 30 for kernelAVX2x4x8.
func kernelAVX512x3x16(kc int, alpha float64, a, b, c []float64, ldc int) {
	var c00, c01, c10, c11, c20, c21 archsimd.Float64x8
	var b0, b1, x archsimd.Float64x8
	a = a[:3*kc]
	b = b[:16*kc]
	for len(a) >= 3 && len(b) >= 16 { // one step p per iteration
		b0 = archsimd.LoadFloat64x8((*[8]float64)(b[0:8]))
		b1 = archsimd.LoadFloat64x8((*[8]float64)(b[8:16]))
		x = archsimd.BroadcastFloat64x8(a[0])
		c00 = x.MulAdd(b0, c00)
		c01 = x.MulAdd(b1, c01)
		x = archsimd.BroadcastFloat64x8(a[1])
		c10 = x.MulAdd(b0, c10)
		c11 = x.MulAdd(b1, c11)
		x = archsimd.BroadcastFloat64x8(a[2])
		c20 = x.MulAdd(b0, c20)
		c21 = x.MulAdd(b1, c21)
		a, b = a[3:], b[16:]
	}
	// C += α·acc, one row (two vectors) at a time.
	al := archsimd.BroadcastFloat64x8(alpha)
	addRow := func(row []float64, v0, v1 archsimd.Float64x8) {
		row = row[:16:16]
		al.MulAdd(v0, archsimd.LoadFloat64x8Slice(row[0:8])).StoreSlice(row[0:8])
		al.MulAdd(v1, archsimd.LoadFloat64x8Slice(row[8:16])).StoreSlice(row[8:16])
	}
	addRow(c[0:], c00, c01)
	addRow(c[ldc:], c10, c11)
	addRow(c[2*ldc:], c20, c21)
}
