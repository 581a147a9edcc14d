package main

// gradcheck.go: analytic gradients against numerical ones (-mode=gradcheck).
//
// For every parameter θ_i the cost J is evaluated with θ_i nudged by h:
//
//	forward difference ("fast", ComputeGradsNum):     g_i ≈ (J(θ + h·e_i) − J(θ)) / h
//	centred difference ("slow", ComputeGradsNumSlow): g_i ≈ (J(θ + h·e_i) − J(θ − h·e_i)) / 2h
//
// The forward difference has error O(h), the centred one O(h²). Each is
// compared with the analytic gradient g_a from Backward:
//
//	absolute error  |g_a − g_n|
//	relative error  |g_a − g_n| / max(ε, |g_a| + |g_n|)

import (
	"fmt"
	"io"
	"math"
	"runtime"
	"sync"
)

// gradCheckEps is the ε that keeps the relative error meaningful where both
// gradients are (nearly) zero: a forward difference cannot resolve a
// gradient much below 1e-10 (J's rounding, ~1e-16, divided by h), so a
// relative error against a vanishing gradient would only measure noise.
const gradCheckEps = 1e-6

// GradCheckRow is one parameter's comparison.
type GradCheckRow struct {
	Name                   string
	Count                  int // number of entries compared
	FwdMaxAbs, FwdMaxRel   float64
	CentMaxAbs, CentMaxRel float64
}

// costOf is J = mean cross-entropy + λ·Σ‖W‖² for the batch x, y, with the
// given dropout masks held fixed (nil: no dropout).
func costOf(net *MLP, ws *Workspace, x *Matrix, y []int, lambda float64, masks []*Matrix) float64 {
	return crossEntropy(net.ForwardMasked(ws, x, masks), y) + lambda*net.RegTerm()
}

// NumericalGrads returns the numerical gradient of the cost with respect to
// every parameter (in the order of net.Params), by forward differences or,
// when centred is true, by centred differences with step h. The entries are
// shared out among workers goroutines, each nudging its own copy of the net;
// net itself is not changed. masks (nil: none) are dropout masks held fixed.
func NumericalGrads(net *MLP, x *Matrix, y []int, lambda, h float64, centred bool, workers int, masks []*Matrix) []*Matrix {
	workers = max(1, workers)
	var out []*Matrix
	for _, w := range net.W {
		out = append(out, NewMatrix(w.Rows, w.Cols))
	}
	grads := make([]*Matrix, 0, 2*len(net.W))
	for l := range net.W {
		grads = append(grads, out[l], NewMatrix(1, net.B[l].Cols))
	}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			gemm := NewGemm(1)
			defer gemm.Close()
			mine := net.Clone()
			ws := NewWorkspace(mine, gemm, x.Rows)
			j0 := costOf(mine, ws, x, y, lambda, masks)
			for pi, p := range mine.Params(ws) {
				g := grads[pi]
				for i := w; i < len(p.Val.Data); i += workers {
					old := p.Val.Data[i]
					p.Val.Data[i] = old + h
					jPlus := costOf(mine, ws, x, y, lambda, masks)
					if centred {
						p.Val.Data[i] = old - h
						jMinus := costOf(mine, ws, x, y, lambda, masks)
						g.Data[i] = (jPlus - jMinus) / (2 * h)
					} else {
						g.Data[i] = (jPlus - j0) / h
					}
					p.Val.Data[i] = old
				}
			}
		}()
	}
	wg.Wait()
	return grads
}

// errorStats returns max |a−n| and max |a−n| / max(ε, |a|+|n|).
func errorStats(analytic, numeric []float64) (maxAbs, maxRel float64) {
	for i := range analytic {
		d := math.Abs(analytic[i] - numeric[i])
		rel := d / math.Max(gradCheckEps, math.Abs(analytic[i])+math.Abs(numeric[i]))
		maxAbs = math.Max(maxAbs, d)
		maxRel = math.Max(maxRel, rel)
	}
	return maxAbs, maxRel
}

// GradCheck compares Backward's gradients on (x, y) with both numerical
// approximations and returns one row per parameter. masks (nil: none) are
// dropout masks held fixed in every pass.
func GradCheck(net *MLP, ws *Workspace, x *Matrix, y []int, lambda, h float64, masks []*Matrix) []GradCheckRow {
	net.ForwardMasked(ws, x, masks)
	net.Backward(ws, y, lambda)
	params := net.Params(ws)
	analytic := make([]*Matrix, len(params))
	for i, p := range params {
		analytic[i] = p.Grad.Clone() // the numerical passes reuse ws
	}
	workers := runtime.GOMAXPROCS(0)
	fwd := NumericalGrads(net, x, y, lambda, h, false, workers, masks)
	cent := NumericalGrads(net, x, y, lambda, h, true, workers, masks)
	rows := make([]GradCheckRow, len(params))
	for i, p := range params {
		r := GradCheckRow{Name: p.Name, Count: len(p.Val.Data)}
		r.FwdMaxAbs, r.FwdMaxRel = errorStats(analytic[i].Data, fwd[i].Data)
		r.CentMaxAbs, r.CentMaxRel = errorStats(analytic[i].Data, cent[i].Data)
		rows[i] = r
	}
	return rows
}

// writeGradCheckTable prints rows as an aligned table under a title.
func writeGradCheckTable(w io.Writer, title string, rows []GradCheckRow) {
	fmt.Fprintf(w, "\n%s\n", title)
	fmt.Fprintf(w, "%-6s %8s  %12s %12s  %12s %12s\n", "param", "entries", "fwd max abs", "fwd max rel", "cent max abs", "cent max rel")
	for _, r := range rows {
		fmt.Fprintf(w, "%-6s %8d  %12.3e %12.3e  %12.3e %12.3e\n", r.Name, r.Count, r.FwdMaxAbs, r.FwdMaxRel, r.CentMaxAbs, r.CentMaxRel)
	}
}

// gradCheckProblem is one configuration the gradcheck mode runs.
type gradCheckProblem struct {
	title string
	x     *Matrix
	y     []int
}

// runGradCheck is -mode=gradcheck: the gradient check on (a) the first dims
// input dimensions of the first few samples and (b) all dimensions of one
// sample, each with a fresh net of the configured hidden sizes.
func runGradCheck(cfg *Config, stdout, stderr io.Writer) error {
	data, source, err := gradCheckData(cfg, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "gradient check on %s, λ=%g, h=%g, hidden %v\n", source, cfg.Lambda, cfg.H, cfg.Hidden)
	const samples = 5
	dims := min(cfg.Dims, data.Dim())
	xa := NewMatrix(samples, dims)
	row := make([]float64, data.Dim())
	for n := 0; n < samples; n++ {
		data.Row(row, n)
		copy(xa.Row(n), row[:dims])
	}
	xb := NewMatrix(1, data.Dim())
	data.Row(xb.Row(0), 0)
	problems := []gradCheckProblem{
		{fmt.Sprintf("(a) first %d dimensions of the first %d samples", dims, samples), xa, data.Y[:samples]},
		{fmt.Sprintf("(b) all %d dimensions of sample 0", xb.Cols), xb, data.Y[:1]},
	}
	gemm := NewGemmNamed(1, cfg.Kernel)
	defer gemm.Close()
	for i, p := range problems {
		sizes := append(append([]int{p.x.Cols}, cfg.Hidden...), numClasses)
		net := NewMLP(sizes, cfg.He, newRNG(cfg.Seed, uint64(i)))
		ws := NewWorkspace(net, gemm, p.x.Rows)
		var masks []*Matrix // with -dropout: one draw of the masks, held fixed
		title := p.title
		if cfg.Dropout > 0 {
			net.ForwardDropout(ws, p.x, cfg.Dropout, newRNG(cfg.Seed, 50+uint64(i)))
			masks = ws.DropoutMasks()
			title += fmt.Sprintf(", dropout masks (p=%g) held fixed", cfg.Dropout)
		}
		writeGradCheckTable(stdout, title, GradCheck(net, ws, p.x, p.y, cfg.Lambda, cfg.H, masks))
	}
	return nil
}

// gradCheckData returns normalised training images: the real CIFAR-10
// training split when the data folder exists, a synthetic problem otherwise.
func gradCheckData(cfg *Config, stderr io.Writer) (*Dataset, string, error) {
	if dataPresent(cfg.Data) {
		c := *cfg
		c.N, c.Val = 10, 0
		c.Split = "batch1"
		sp, err := LoadSplits(&c, stderr)
		if err != nil {
			return nil, "", err
		}
		return sp.Train, "CIFAR-10 (" + cfg.Data + ")", nil
	}
	d := syntheticDataset(10, inputDim, numClasses, newRNG(cfg.Seed, 99))
	return d, "a synthetic problem (no CIFAR-10 data in " + cfg.Data + ")", nil
}
