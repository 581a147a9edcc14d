//go:build amd64 && !purego

package main

// matrix_amd64.go: the Go side of the assembly micro-kernels in
// matrix_amd64.s, and the CPU probe that decides which of them may run.
//
// The kernels need instructions and register state that not every x86-64
// CPU (or OS) has, so they are chosen at start-up:
//
//	avx2-6x8     CPUID.1:ECX FMA and AVX, CPUID.7:EBX AVX2, and XCR0 bits 1–2
//	             (the OS saves XMM and YMM state)
//	avx512-8x24  CPUID.7:EBX AVX512F, and XCR0 bits 1–2 and 5–7 (opmask and
//	             the upper halves of ZMM0–15 and ZMM16–31: XCR0 & 0xe6 == 0xe6)
//
// Both have a variant for B read in place (prefetchB: it prefetches B 8
// steps ahead), the same function with a flag.
//
// The 6×4 and 8×4 edge tiles, the 4×8 row-edge tile and the AVX2 pixel
// kernel use AVX2 and FMA only, so they run wherever avx2-6x8 does; the
// 4×24 row-edge tile, the 8×26 tile and the AVX-512 pixel kernel run where
// avx512-8x24 does, the pixel panel kernel where AVX-512BW is there too.
//
// The standard library's internal/cpu knows all this but is not importable,
// hence the two small probes cpuid and xgetbv.

import (
	"fmt"
	"math"
	"strings"
)

// Implemented in matrix_amd64.s.

//go:noescape
func cpuid(eaxArg, ecxArg uint32) (eax, ebx, ecx, edx uint32)

func xgetbv() (eax, edx uint32)

//go:noescape
func kernelAVX2x6x8(kc int, alpha float64, a *float64, rsa, csa int, b *float64, csb int, c *float64, ldc int, prefetchB bool, d *float64, beta, gamma float64)

//go:noescape
func kernelAVX2x4x8(kc int, alpha float64, a *float64, rsa, csa int, b *float64, csb int, c *float64, ldc int, rows int, d *float64, beta, gamma float64)

//go:noescape
func kernelAVX2x6x4(kc int, alpha float64, a *float64, rsa, csa int, b *float64, csb int, c *float64, ldc int, m *int64)

//go:noescape
func kernelAVX2x8x4(kc int, alpha float64, a *float64, rsa, csa int, b *float64, csb int, c *float64, ldc int, m *int64)

//go:noescape
func kernelAVX512x4x24(kc int, alpha float64, a *float64, rsa, csa int, b *float64, csb int, c *float64, ldc int, rows int, d *float64, beta, gamma float64)

//go:noescape
func kernelAVX512x8x24(kc int, alpha float64, a *float64, rsa, csa int, b *float64, csb int, c *float64, ldc int, prefetchB bool, d *float64, beta, gamma float64)

//go:noescape
func kernelAVX512x8x26(kc int, alpha float64, a *float64, rsa, csa int, b *float64, csb int, c *float64, ldc int, be *float64, cse int, ev *float64, inPlace bool)

func fmaPeakYMM(iters int)

func fmaPeakZMM(iters int)

//go:noescape
func normPixelsAVX2(dst *float64, pix *uint8, mean, inv *float64, n int, rhi, rlo float64, next *uint8)

//go:noescape
func normPixelsAVX512(dst *float64, pix *uint8, mean, inv *float64, n int, rhi, rlo float64, next *uint8)

//go:noescape
func normPanelBW(dst *float64, rows *[8]*uint8, mean, inv *float64, n int, rhi, rlo float64, tmp *[8][64]uint8, next *[8]*uint8)

//go:noescape
func fmaAddAVX2(alpha float64, s, c *float64, n int)

//go:noescape
func transpose8AVX512(dst *float64, ldd int, src *float64, lds int, n int)

//go:noescape
func transpose4AVX2(dst *float64, ldd int, src *float64, lds int, n int)

//go:noescape
func transpose2AVX2(dst *float64, ldd int, src *float64, lds int, n int)

//go:noescape
func packRunsAVX2(dst *float64, ps int, src *float64, rs, kcb, panels, nr int)

// The slice adapters check that the panels and the tile of C are really
// there (the assembly does not check; a failure is a caller bug), then pass
// pointers to the assembly.

func avx2x6x8(kc int, alpha float64, a []float64, rsa, csa int, b []float64, csb int, c []float64, ldc int) {
	_, _, _ = a[5*rsa+(kc-1)*csa], b[(kc-1)*csb+7], c[5*ldc+7]
	kernelAVX2x6x8(kc, alpha, &a[0], rsa, csa, &b[0], csb, &c[0], ldc, false, nil, 0, 0)
}

// avx2x6x8InPlace is avx2x6x8 for B read in place: it prefetches B 8 steps
// ahead (as avx512x8x24InPlace).
func avx2x6x8InPlace(kc int, alpha float64, a []float64, rsa, csa int, b []float64, csb int, c []float64, ldc int) {
	_, _, _ = a[5*rsa+(kc-1)*csa], b[(kc-1)*csb+7], c[5*ldc+7]
	kernelAVX2x6x8(kc, alpha, &a[0], rsa, csa, &b[0], csb, &c[0], ldc, true, nil, 0, 0)
}

// avx2x6x8FromD is avx2x6x8 (or, inPlace, avx2x6x8InPlace) starting C from
// β·D (0 for β = 0, D not read): C = fma(α, acc, β·d), d the tile of D
// (rows ldc apart), the bits of C set to β·D and then updated; then, for
// γ ≠ 0, D −= γ·C.
func avx2x6x8FromD(kc int, alpha float64, a []float64, rsa, csa int, b []float64, csb int, c []float64, ldc int, d []float64, beta, gamma float64, inPlace bool) {
	_, _, _ = a[5*rsa+(kc-1)*csa], b[(kc-1)*csb+7], d[5*ldc+7]
	kernelAVX2x6x8(kc, alpha, &a[0], rsa, csa, &b[0], csb, tileOut(c, 5*ldc+7, gamma), ldc, inPlace, &d[0], beta, gamma)
}

func avx2x4x8(kc int, alpha float64, a []float64, rsa, csa int, b []float64, csb int, c []float64, ldc, rows int) {
	if rows < 1 || rows > 4 {
		panic("mlp: avx2x4x8: rows out of 1…4")
	}
	_, _, _ = a[3*rsa+(kc-1)*csa], b[(kc-1)*csb+7], c[(rows-1)*ldc+7]
	kernelAVX2x4x8(kc, alpha, &a[0], rsa, csa, &b[0], csb, &c[0], ldc, rows, nil, 0, 0)
}

// avx2x4x8FromD is avx2x4x8 starting C from β·D (0 for β = 0, D not
// read), then, for γ ≠ 0, D −= γ·C.
func avx2x4x8FromD(kc int, alpha float64, a []float64, rsa, csa int, b []float64, csb int, c []float64, ldc, rows int, d []float64, beta, gamma float64) {
	if rows < 1 || rows > 4 {
		panic("mlp: avx2x4x8: rows out of 1…4")
	}
	_, _, _ = a[3*rsa+(kc-1)*csa], b[(kc-1)*csb+7], d[(rows-1)*ldc+7]
	kernelAVX2x4x8(kc, alpha, &a[0], rsa, csa, &b[0], csb, tileOut(c, (rows-1)*ldc+7, gamma), ldc, rows, &d[0], beta, gamma)
}

// edgeMasks[cols] selects the first cols of four columns (VMASKMOVPD uses
// each lane's top bit). A constant table, never written.
var edgeMasks = [5][4]int64{{}, {-1}, {-1, -1}, {-1, -1, -1}, {-1, -1, -1, -1}}

func avx2x6x4(kc int, alpha float64, a []float64, rsa, csa int, b []float64, csb int, c []float64, ldc, cols int) {
	_, _, _ = a[5*rsa+(kc-1)*csa], b[(kc-1)*csb+3], c[5*ldc+cols-1]
	kernelAVX2x6x4(kc, alpha, &a[0], rsa, csa, &b[0], csb, &c[0], ldc, &edgeMasks[cols][0])
}

func avx2x8x4(kc int, alpha float64, a []float64, rsa, csa int, b []float64, csb int, c []float64, ldc, cols int) {
	_, _, _ = a[7*rsa+(kc-1)*csa], b[(kc-1)*csb+3], c[7*ldc+cols-1]
	kernelAVX2x8x4(kc, alpha, &a[0], rsa, csa, &b[0], csb, &c[0], ldc, &edgeMasks[cols][0])
}

func avx512x4x24(kc int, alpha float64, a []float64, rsa, csa int, b []float64, csb int, c []float64, ldc, rows int) {
	if rows < 1 || rows > 4 {
		panic("mlp: avx512x4x24: rows out of 1…4")
	}
	_, _, _ = a[3*rsa+(kc-1)*csa], b[(kc-1)*csb+23], c[(rows-1)*ldc+23]
	kernelAVX512x4x24(kc, alpha, &a[0], rsa, csa, &b[0], csb, &c[0], ldc, rows, nil, 0, 0)
}

// avx512x4x24FromD is avx512x4x24 starting C from β·D (rows of d ldc apart),
// then, for γ ≠ 0, D −= γ·C (with c nil, C is not stored: see tileOut).
func avx512x4x24FromD(kc int, alpha float64, a []float64, rsa, csa int, b []float64, csb int, c []float64, ldc, rows int, d []float64, beta, gamma float64) {
	if rows < 1 || rows > 4 {
		panic("mlp: avx512x4x24: rows out of 1…4")
	}
	_, _, _ = a[3*rsa+(kc-1)*csa], b[(kc-1)*csb+23], d[(rows-1)*ldc+23]
	kernelAVX512x4x24(kc, alpha, &a[0], rsa, csa, &b[0], csb, tileOut(c, (rows-1)*ldc+23, gamma), ldc, rows, &d[0], beta, gamma)
}

// tileOut is the fromD kernels' C: &c[0], once c[last] is checked, or nil
// for c nil, which they take to mean that the caller keeps only D after
// the SGD step (γ ≠ 0): they do not store C, and the product never leaves
// the registers.
func tileOut(c []float64, last int, gamma float64) *float64 {
	if c == nil {
		if gamma == 0 {
			panic("mlp: a product that is neither stored nor stepped")
		}
		return nil
	}
	_ = c[last]
	return &c[0]
}

func avx512x8x24(kc int, alpha float64, a []float64, rsa, csa int, b []float64, csb int, c []float64, ldc int) {
	_, _, _ = a[7*rsa+(kc-1)*csa], b[(kc-1)*csb+23], c[7*ldc+23]
	kernelAVX512x8x24(kc, alpha, &a[0], rsa, csa, &b[0], csb, &c[0], ldc, false, nil, 0, 0)
}

// avx512x8x24InPlace is avx512x8x24 for B read in place: it prefetches B
// 8 steps ahead (the prefetches may reach past b's end; they never fault).
func avx512x8x24InPlace(kc int, alpha float64, a []float64, rsa, csa int, b []float64, csb int, c []float64, ldc int) {
	_, _, _ = a[7*rsa+(kc-1)*csa], b[(kc-1)*csb+23], c[7*ldc+23]
	kernelAVX512x8x24(kc, alpha, &a[0], rsa, csa, &b[0], csb, &c[0], ldc, true, nil, 0, 0)
}

// avx512x8x24FromD is avx512x8x24 (or, inPlace, avx512x8x24InPlace)
// starting C from β·D: C = fma(α, acc, β·d), d the tile of D (rows ldc
// apart), the bits of C set to β·D and then updated; then, for γ ≠ 0,
// D −= γ·C.
func avx512x8x24FromD(kc int, alpha float64, a []float64, rsa, csa int, b []float64, csb int, c []float64, ldc int, d []float64, beta, gamma float64, inPlace bool) {
	_, _, _ = a[7*rsa+(kc-1)*csa], b[(kc-1)*csb+23], d[7*ldc+23]
	kernelAVX512x8x24(kc, alpha, &a[0], rsa, csa, &b[0], csb, tileOut(c, 7*ldc+23, gamma), ldc, inPlace, &d[0], beta, gamma)
}

// avx512x8x26 is the 8×24 tile and cols ≤ 2 more columns, C[0…7][24…23+cols],
// whose b is the panel be (steps cse apart): the wide tile of kernelAVX512,
// on A packed k-major (rsa = 1, csa = 8) or read in place. The assembly
// returns the extra columns' sums in ev (packed: column by column; in
// place: row by row); they go into C here, C += α·acc fused, as the
// assembly does for the others (math.FMA rounds once, like VFMADD).
func avx512x8x26(kc int, alpha float64, a []float64, rsa, csa int, b []float64, csb int, be []float64, cse int, c []float64, ldc, cols int) {
	if cols < 1 || cols > 2 {
		panic("mlp: avx512x8x26: cols out of 1…2")
	}
	_, _, _, _ = a[7*rsa+(kc-1)*csa], b[(kc-1)*csb+23], be[(kc-1)*cse+1], c[7*ldc+23+cols]
	var ev [16]float64
	inPlace := rsa != 1 || csa != 8
	kernelAVX512x8x26(kc, alpha, &a[0], rsa, csa, &b[0], csb, &c[0], ldc, &be[0], cse, &ev[0], inPlace)
	colStride, rowStride := 8, 1 // ev column by column (A packed) …
	if inPlace {
		colStride, rowStride = 1, 2 // … or row by row (A in place)
	}
	for i := range 8 {
		for j := range cols {
			e := &c[i*ldc+24+j]
			*e = math.FMA(alpha, ev[j*colStride+i*rowStride], *e)
		}
	}
}

// fmaAdd is fmaAddGo in AVX2 (fmaAddAVX2): c[j] = fma(α, s[j], c[j]), the
// same bits four values at a time. The AVX-512 kernel uses it too: a pass
// over memory, not over the FMA units.
func fmaAdd(alpha float64, s, c []float64) {
	if len(s) != len(c) {
		panic("mlp: fmaAdd: lengths differ")
	}
	if len(c) > 0 {
		fmaAddAVX2(alpha, &s[0], &c[0], len(c))
	}
}

// pixelPanelBW is normPanelBW as a pixel panel kernel: the longest
// multiple of 64 of the rows' runs, which must be as long as rows[0].
func pixelPanelBW(dst []float64, rows, next *[8][]uint8, mean, inv []float64) int {
	n := len(rows[0]) / 64 * 64
	if n == 0 {
		return 0
	}
	_, _, _ = dst[8*n-1], mean[n-1], inv[n-1]
	var rp, np [8]*uint8
	for r := range 8 {
		_ = rows[r][n-1]
		rp[r], np[r] = &rows[r][0], &next[r][0]
	}
	var tmp [8][64]uint8
	normPanelBW(&dst[0], &rp, &mean[0], &inv[0], n, inv255Hi, inv255Lo, &tmp, &np)
	return n
}

// transposer makes a cpuInfo transposition (Transpose8, 4, 2) of fn, an
// assembly routine that moves `runs` runs of src (lds apart) into dst as
// steps (step p at dst[p·ldd …]) in blocks of `block` steps: the hook does
// the longest multiple of block steps of n, after checking that dst and
// src hold them, and returns how many steps it did.
func transposer(fn func(dst *float64, ldd int, src *float64, lds int, n int), runs, block int) func(dst []float64, ldd int, src []float64, lds, n int) int {
	return func(dst []float64, ldd int, src []float64, lds, n int) int {
		nb := n / block * block
		if nb == 0 {
			return 0
		}
		_, _ = dst[(nb-1)*ldd+runs-1], src[(runs-1)*lds+nb-1]
		fn(&dst[0], ldd, &src[0], lds, nb)
		return nb
	}
}

// packRunsFull is packRunsAVX2 on slices: kcb steps of `panels` whole
// panels nr (a multiple of 8) wide, panel q of dst at q·ps (cpu.PackRuns).
func packRunsFull(dst []float64, ps int, src []float64, rs, kcb, panels, nr int) {
	if kcb == 0 || panels == 0 {
		return
	}
	if nr%8 != 0 {
		panic("mlp: packRunsFull: panels must be a multiple of 8 wide")
	}
	_, _ = dst[(panels-1)*ps+kcb*nr-1], src[(kcb-1)*rs+panels*nr-1]
	packRunsAVX2(&dst[0], ps, &src[0], rs, kcb, panels, nr)
}

// 1/255 as the unevaluated sum inv255Hi + inv255Lo (the pixel kernel's
// division by 255): inv255Hi = RN(1/255), inv255Lo = RN(1/255 − inv255Hi),
// where the residual 1/255 − inv255Hi = (1 − 255·inv255Hi)/255 and
// 1 − 255·inv255Hi is exact in one fused multiply-add.
var inv255Hi, inv255Lo = 1.0 / 255, math.FMA(-1.0/255, 255, 1) / 255

// pixelAdapter wraps a pixel kernel of the assembly, which normalises n
// inputs, n a multiple of step, into a pixelKernel's function: it takes
// the longest multiple of step inputs of pix (dst, mean and inv at least
// as long), prefetching as many bytes of next (a prefetch never faults, so
// only its start matters), and returns how many it did.
func pixelAdapter(step int, kernel func(dst *float64, pix *uint8, mean, inv *float64, n int, rhi, rlo float64, next *uint8)) func(dst []float64, pix []uint8, mean, inv []float64, next []uint8) int {
	return func(dst []float64, pix []uint8, mean, inv []float64, next []uint8) int {
		n := len(pix) / step * step
		if n == 0 {
			return 0
		}
		_, _, _ = dst[n-1], mean[n-1], inv[n-1]
		if len(next) == 0 {
			next = pix
		}
		kernel(&dst[0], &pix[0], &mean[0], &inv[0], n, inv255Hi, inv255Lo, &next[0])
		return n
	}
}

var (
	kernelAVX2 = microKernel{name: "avx2", tile: "6x8", mr: 6, nr: 8, direct: true, fn: avx2x6x8, inPlaceB: avx2x6x8InPlace, edge: avx2x6x4, edgeNR: 4,
		rowEdge: avx2x4x8, rowEdgeMR: 4, fromD: avx2x6x8FromD, rowFromD: avx2x4x8FromD, fmaAdd: fmaAdd}
	kernelAVX512 = microKernel{name: "avx512", tile: "8x24", mr: 8, nr: 24, direct: true, fn: avx512x8x24, inPlaceB: avx512x8x24InPlace, edge: avx2x8x4, edgeNR: 4, rowEdge: avx512x4x24, rowEdgeMR: 4,
		fromD: avx512x8x24FromD, rowFromD: avx512x4x24FromD, fmaAdd: fmaAdd}
)

func init() {
	cpu = probeCPU()
	if len(cpu.Kernels) > 1 {
		cpu.Speeds = calibrate(cpu.Kernels)
	}
}

// probeCPU reads the CPU's name, features and data caches.
func probeCPU() cpuInfo {
	var info cpuInfo
	maxLeaf, vb, vc, vd := cpuid(0, 0)
	vendor := string(le32(vb)) + string(le32(vd)) + string(le32(vc))
	info.Model = brandString()
	if info.Model == "" {
		info.Model = vendor
	}
	if maxLeaf < 7 {
		return info
	}
	_, _, ecx1, _ := cpuid(1, 0)
	_, ebx7, _, _ := cpuid(7, 0)
	const (
		fma      = 1 << 12 // CPUID.1:ECX
		osxsave  = 1 << 27
		avx      = 1 << 28
		avx2     = 1 << 5 // CPUID.7:EBX
		avx512f  = 1 << 16
		avx512bw = 1 << 30 // CPUID.7:EBX
	)
	if ecx1&osxsave == 0 {
		return info // the OS does not let us read XCR0, so no AVX state either
	}
	xcr0, _ := xgetbv()
	osYMM := xcr0&0x6 == 0x6
	osZMM := xcr0&0xe6 == 0xe6
	hasAVX2 := osYMM && ecx1&fma != 0 && ecx1&avx != 0 && ebx7&avx2 != 0
	if hasAVX2 {
		info.FMALoops = append(info.FMALoops, fmaLoop{name: "ymm", flops: 24 * 4 * 2, fn: fmaPeakYMM})
	}
	if hasAVX2 && osZMM && ebx7&avx512f != 0 {
		k := kernelAVX512
		if ebx7&avx512bw != 0 {
			k.wide, k.wideNR, k.pixelPanel = avx512x8x26, 2, pixelPanelBW
		}
		info.Kernels = append(info.Kernels, k)
		info.Transpose8 = transposer(transpose8AVX512, 8, 8)
		info.Pixels = append(info.Pixels, pixelKernel{"avx512", pixelAdapter(16, normPixelsAVX512)})
		info.FMALoops = append(info.FMALoops, fmaLoop{name: "zmm", flops: 24 * 8 * 2, fn: fmaPeakZMM})
	}
	if hasAVX2 {
		info.Kernels = append(info.Kernels, kernelAVX2)
		info.Transpose4, info.Transpose2 = transposer(transpose4AVX2, 4, 4), transposer(transpose2AVX2, 2, 4)
		info.PackRuns = packRunsFull
		info.Pixels = append(info.Pixels, pixelKernel{"avx2", pixelAdapter(4, normPixelsAVX2)})
	}
	info.L1d, info.L2, info.L3 = cacheSizes(vendor)
	return info
}

// cacheSizes walks the deterministic cache parameters leaf (4 on Intel,
// 0x8000001D on AMD): one sub-leaf per cache until type 0, each giving
// ways × partitions × line size × sets bytes. AMD CPUs whose hypervisor
// hides that leaf (no TOPOEXT: the AMD EPYC Zen 5 guests of the README
// return zeros there) still answer the older leaves (amdLegacyCaches).
func cacheSizes(vendor string) (l1d, l2, l3 int) {
	leaf := uint32(4)
	if vendor == "AuthenticAMD" || vendor == "HygonGenuine" {
		if maxExt, _, _, _ := cpuid(0x80000000, 0); maxExt < 0x8000001D {
			return amdLegacyCaches()
		}
		leaf = 0x8000001D
	}
	for sub := uint32(0); sub < 16; sub++ {
		eax, ebx, ecx, _ := cpuid(leaf, sub)
		typ := eax & 0x1f // 1 data, 2 instruction, 3 unified
		if typ == 0 {
			break
		}
		if typ == 2 {
			continue
		}
		level := (eax >> 5) & 0x7
		size := int((ebx>>22)+1) * int((ebx>>12)&0x3ff+1) * int(ebx&0xfff+1) * int(ecx+1)
		switch level {
		case 1:
			l1d = size
		case 2:
			l2 = size
		case 3:
			l3 = size
		}
	}
	if leaf == 0x8000001D && l2 == 0 {
		return amdLegacyCaches()
	}
	return l1d, l2, l3
}

// amdLegacyCaches reads AMD's older cache leaves, 0x80000005 and
// 0x80000006 (see legacyCacheSizes), 0 where a leaf is missing.
func amdLegacyCaches() (l1d, l2, l3 int) {
	var ecx5, ecx6, edx6 uint32
	maxExt, _, _, _ := cpuid(0x80000000, 0)
	if maxExt >= 0x80000005 {
		_, _, ecx5, _ = cpuid(0x80000005, 0)
	}
	if maxExt >= 0x80000006 {
		_, _, ecx6, edx6 = cpuid(0x80000006, 0)
	}
	return legacyCacheSizes(ecx5, ecx6, edx6)
}

// brandString is the processor's name from CPUID 0x80000002–4, as lscpu
// shows it ("AMD EPYC 9B14", "Intel(R) Xeon(R) …").
func brandString() string {
	if maxExt, _, _, _ := cpuid(0x80000000, 0); maxExt < 0x80000004 {
		return ""
	}
	var b []byte
	for leaf := uint32(0x80000002); leaf <= 0x80000004; leaf++ {
		a, bb, c, d := cpuid(leaf, 0)
		b = fmt.Appendf(b, "%s%s%s%s", le32(a), le32(bb), le32(c), le32(d))
	}
	return strings.Join(strings.Fields(strings.TrimRight(string(b), "\x00")), " ")
}

// le32 is a register's four bytes in memory order (CPUID strings are stored so).
func le32(v uint32) []byte { return []byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)} }
