//go:build goexperiment.simd && amd64

package main

// matrix_simd_amd64.go: the AVX2/FMA micro-kernel, written with Go 1.26's
// experimental simd/archsimd package (build with GOEXPERIMENT=simd).
//
// It computes the same thing as kernelGo4x4 in matrix.go, for a 6×8 tile:
//
//	C[i, j] += α · Σ_{p<kc} a[p*6+i] · b[p*8+j]
//
// Each row of the tile lives in two 4-wide vector accumulators (12 of the 16
// YMM registers); each step p loads one 8-wide row of the B panel (two
// vectors), broadcasts each of the six A values in turn and issues 12 fused
// multiply-adds. The p loop still runs in increasing order, so the summation
// order per element is the same as the plain-Go kernel's; only the rounding
// differs (an FMA rounds once where a*b+c rounds twice).
//
// Performance note (Go 1.26.8): MulAdd compiles to VFMADD213PD, whose
// destination is the receiver, so a broadcast value used for two FMAs must be
// copied first, and the compiler hoists all six broadcasts ahead of the FMAs;
// together that costs register moves and one stack spill per step. Measured
// here: ~20 GFLOP/s per core on 1024³ against a 49 GFLOP/s peak. 4×8 tiles,
// broadcasting B instead of A, and single-use broadcasts were tried and were
// no faster (the compiler merges repeated broadcasts).

import "simd/archsimd"

func init() {
	if archsimd.X86.AVX2() && archsimd.X86.FMA() {
		simdKernel = &microKernel{name: "avx2-fma6x8", mr: 6, nr: 8, fn: kernelAVX2x6x8}
	}
}

func kernelAVX2x6x8(kc int, alpha float64, a, b, c []float64, ldc int) {
	var c00, c01, c10, c11, c20, c21 archsimd.Float64x4
	var c30, c31, c40, c41, c50, c51 archsimd.Float64x4
	a = a[:6*kc]
	b = b[:8*kc]
	for p := 0; p < kc; p++ {
		bp := b[8*p : 8*p+8 : 8*p+8]
		b0 := archsimd.LoadFloat64x4Slice(bp[0:4])
		b1 := archsimd.LoadFloat64x4Slice(bp[4:8])
		ap := a[6*p : 6*p+6 : 6*p+6]
		x := archsimd.BroadcastFloat64x4(ap[0])
		c00 = x.MulAdd(b0, c00)
		c01 = x.MulAdd(b1, c01)
		x = archsimd.BroadcastFloat64x4(ap[1])
		c10 = x.MulAdd(b0, c10)
		c11 = x.MulAdd(b1, c11)
		x = archsimd.BroadcastFloat64x4(ap[2])
		c20 = x.MulAdd(b0, c20)
		c21 = x.MulAdd(b1, c21)
		x = archsimd.BroadcastFloat64x4(ap[3])
		c30 = x.MulAdd(b0, c30)
		c31 = x.MulAdd(b1, c31)
		x = archsimd.BroadcastFloat64x4(ap[4])
		c40 = x.MulAdd(b0, c40)
		c41 = x.MulAdd(b1, c41)
		x = archsimd.BroadcastFloat64x4(ap[5])
		c50 = x.MulAdd(b0, c50)
		c51 = x.MulAdd(b1, c51)
	}
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
	addRow(c[4*ldc:], c40, c41)
	addRow(c[5*ldc:], c50, c51)
}
