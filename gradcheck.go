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
	"context"
	"errors"
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

// costOf is J = mean cross-entropy (against labels smoothed by ε) +
// λ·Σ‖W‖² for the batch x, y, with the given dropout masks held fixed (nil:
// no dropout).
func costOf(net *MLP, ws *Workspace, x *Matrix, y []int, lambda, eps float64, masks []*Matrix) float64 {
	return smoothedCrossEntropy(net.ForwardMasked(ws, x, masks), y, eps) + float64(lambda*net.RegTerm())
}

// NumericalGrads returns the numerical gradient of the cost (λ its L2
// strength, ε its label smoothing) with respect to every parameter (in the order of net.Params), by forward differences or,
// when centred is true, by centred differences with step h. Each
// parameter's entries are shared out among workers goroutines, each nudging
// its own copy of the net; net itself is not changed. masks (nil: none) are
// dropout masks held fixed. announce (nil: none) is called before each
// parameter. Cancelling ctx stops it (with ctx's cause as the error).
func NumericalGrads(ctx context.Context, net *MLP, x *Matrix, y []int, lambda, eps, h float64, centred bool, workers int, masks []*Matrix, announce func(p Param)) ([]*Matrix, error) {
	workers = max(1, workers)
	type copyOf struct {
		net *MLP
		ws  *Workspace
		j0  float64
	}
	copies := make([]copyOf, workers)
	for w := range copies {
		gemm := NewGemm(1)
		defer gemm.Close()
		mine := net.Clone()
		ws := NewWorkspace(mine, gemm, x.Rows)
		copies[w] = copyOf{mine, ws, costOf(mine, ws, x, y, lambda, eps, masks)}
	}
	var grads []*Matrix
	for pi, p := range net.Params(copies[0].ws) {
		if announce != nil {
			announce(p)
		}
		g := NewMatrix(p.Val.Rows, p.Val.Cols)
		grads = append(grads, g)
		var wg sync.WaitGroup
		for w, c := range copies {
			val := c.net.Params(c.ws)[pi].Val
			wg.Go(func() {
				for i := w; i < len(val.Data); i += workers {
					if ctx.Err() != nil {
						return
					}
					old := val.Data[i]
					val.Data[i] = old + h
					jPlus := costOf(c.net, c.ws, x, y, lambda, eps, masks)
					if centred {
						val.Data[i] = old - h
						jMinus := costOf(c.net, c.ws, x, y, lambda, eps, masks)
						g.Data[i] = (jPlus - jMinus) / (2 * h)
					} else {
						g.Data[i] = (jPlus - c.j0) / h
					}
					val.Data[i] = old
				}
			})
		}
		wg.Wait()
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
	}
	return grads, nil
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
// approximations and returns one row per parameter; the cost has L2
// strength λ and label smoothing ε. masks (nil: none) are dropout masks
// held fixed in every pass.
//
// progress (nil: none) hears which parameter is being checked.
func GradCheck(ctx context.Context, net *MLP, ws *Workspace, x *Matrix, y []int, lambda, eps, h float64, masks []*Matrix, progress io.Writer) ([]GradCheckRow, error) {
	net.ForwardMasked(ws, x, masks)
	net.BackwardSmoothed(ws, y, lambda, eps)
	params := net.Params(ws)
	analytic := make([]*Matrix, len(params))
	for i, p := range params {
		analytic[i] = p.Grad.Clone() // the numerical passes reuse ws
	}
	workers := runtime.GOMAXPROCS(0)
	say := func(kind string) func(p Param) {
		if progress == nil {
			return nil
		}
		return func(p Param) {
			fmt.Fprintf(progress, "  %s differences: %s (%d entries)\n", kind, p.Name, len(p.Val.Data))
		}
	}
	fwd, err := NumericalGrads(ctx, net, x, y, lambda, eps, h, false, workers, masks, say("forward"))
	if err != nil {
		return nil, err
	}
	cent, err := NumericalGrads(ctx, net, x, y, lambda, eps, h, true, workers, masks, say("centred"))
	if err != nil {
		return nil, err
	}
	rows := make([]GradCheckRow, len(params))
	for i, p := range params {
		r := GradCheckRow{Name: p.Name, Count: len(p.Val.Data)}
		r.FwdMaxAbs, r.FwdMaxRel = errorStats(analytic[i].Data, fwd[i].Data)
		r.CentMaxAbs, r.CentMaxRel = errorStats(analytic[i].Data, cent[i].Data)
		rows[i] = r
	}
	return rows, nil
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

// GradCheckOptions are the settings of RunGradChecks.
type GradCheckOptions struct {
	Hidden  []int   // hidden layer sizes of the fresh nets
	He      bool    // He initialisation
	Lambda  float64 // λ of the cost
	Smooth  float64 // label smoothing ε of the loss
	Step    float64 // the finite-difference step h
	Dims    int     // input dimensions of check (a)
	Dropout float64 // > 0: check through one draw of dropout masks, held fixed
	Seed    uint64
	Kernel  string // GEMM micro-kernel
}

// RunGradChecks runs the gradient check on (a) the first o.Dims input
// dimensions of the first 5 samples of data and (b) all dimensions of
// sample 100 (the seed's two checks, except that (a) takes 5 images, not
// one: a batch exercises the 1/N of the mean loss, which a single image
// cannot tell from 1), each with a fresh net, and prints a table per check.
//
// It ends with a verdict: PASS when every centred relative error is below
// gradCheckPass, else FAIL (errGradCheckFailed). progress (nil: none) hears
// each problem and parameter as it is checked.
func RunGradChecks(ctx context.Context, w, progress io.Writer, data *Dataset, o GradCheckOptions) error {
	const samples = 5
	dims := min(o.Dims, data.Dim())
	xa := NewMatrix(samples, dims)
	row := make([]float64, data.Dim())
	for n := 0; n < samples; n++ {
		data.Row(row, n)
		copy(xa.Row(n), row[:dims])
	}
	// (b) is the seed's second check: every input of image 100.
	nb := min(100, data.Len()-1)
	xb := NewMatrix(1, data.Dim())
	data.Row(xb.Row(0), nb)
	problems := []gradCheckProblem{
		{fmt.Sprintf("(a) first %d dimensions of the first %d samples", dims, samples), xa, data.Y[:samples]},
		{fmt.Sprintf("(b) all %d dimensions of sample %d", xb.Cols, nb), xb, data.Y[nb : nb+1]},
	}
	gemm := NewGemmNamed(1, o.Kernel)
	defer gemm.Close()
	var all []GradCheckRow
	for i, p := range problems {
		net := NewMLP(netSizes(p.x.Cols, o.Hidden), o.He, newRNG(o.Seed, streamGradCheck+uint64(i)))
		ws := NewWorkspace(net, gemm, p.x.Rows)
		var masks []*Matrix // with dropout: one draw of the masks, held fixed
		title := p.title
		if o.Dropout > 0 {
			net.ForwardDropout(ws, p.x, o.Dropout, newRNG(o.Seed, streamGradMask+uint64(i)))
			masks = ws.DropoutMasks()
			title += fmt.Sprintf(", dropout masks (p=%g) held fixed", o.Dropout)
		}
		if o.Smooth > 0 {
			title += fmt.Sprintf(", labels smoothed by ε=%g", o.Smooth)
		}
		if progress != nil {
			fmt.Fprintf(progress, "checking %s\n", title)
		}
		rows, err := GradCheck(ctx, net, ws, p.x, p.y, o.Lambda, o.Smooth, o.Step, masks, progress)
		if err != nil {
			return err
		}
		writeGradCheckTable(w, title, rows)
		all = append(all, rows...)
	}
	ok, worst := gradCheckVerdict(all)
	if !ok {
		fmt.Fprintf(w, "\nFAIL: the largest centred relative error, %.3g (%s), is not below %g: the analytic gradient is wrong\n", worst.CentMaxRel, worst.Name, gradCheckPass)
		return errGradCheckFailed
	}
	fmt.Fprintf(w, "\nPASS: every centred relative error is below %g (the largest: %.3g, %s)\n", gradCheckPass, worst.CentMaxRel, worst.Name)
	return nil
}

// gradCheckPass is the verdict's threshold on the centred relative error.
// cs231n's rule of thumb: below 1e-7 is excellent for smooth functions;
// with ReLU kinks (a nudge can cross one) errors up to 1e-4 are normal,
// and a wrong gradient gives 1e-2 or more.
const gradCheckPass = 1e-4

// errGradCheckFailed is RunGradChecks' error when the verdict is FAIL.
var errGradCheckFailed = errors.New("gradient check failed")

// gradCheckVerdict reports whether every row passes and returns the row
// with the largest centred relative error.
func gradCheckVerdict(rows []GradCheckRow) (ok bool, worst GradCheckRow) {
	for _, r := range rows {
		if r.CentMaxRel >= worst.CentMaxRel {
			worst = r
		}
	}
	return worst.CentMaxRel < gradCheckPass, worst
}
