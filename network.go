package main

// network.go: the multi-layer perceptron, one forward/backward pair per layer.
//
// Shape legend (samples are rows, so a whole batch goes through one GEMM):
//
//	N  samples in the batch
//	D  input dimensions (3072 = 32·32·3 for CIFAR-10)
//	H  hidden units of a layer (50 in the seed's net)
//	C  classes (10)
//
// For the seed's two-layer net (sizes D, H, C):
//
//	x                     N×D   input batch (normalised pixels)
//	s1 = x·W1ᵀ + 1_N·b1   N×H   W1 is H×D, b1 is 1×H, 1_N the N×1 column of ones
//	h  = max(0, s1)       N×H   ReLU (training with dropout: ⊙ M, see ForwardDropout)
//	s  = h·W2ᵀ + 1_N·b2   N×C   W2 is C×H, b2 is 1×C ("scores")
//	p  = softmax(s)       N×C   row-wise ("probs")
//
//	loss = −(1/N)·Σ_n log p[n, y_n]          (mean cross-entropy)
//	cost = loss + λ·Σ_l ‖W_l‖²               (biases are not regularised)
//
// and the gradients of the cost, layer by layer from the top:
//
//	G   = (p − Y)/N                N×C   Y is the one-hot label matrix     (from p = softmax(s))
//	dW2 = Gᵀ·h + 2λ·W2             C×H                                     (from s = h·W2ᵀ + 1_N·b2)
//	db2 = 1_Nᵀ·G = Σ_n G[n,:]      1×C
//	dH  = G·W2  ⊙ 1[s1 > 0]        N×H   back through the ReLU (and ⊙ M with dropout)
//	dW1 = dHᵀ·x + 2λ·W1            H×D                                     (from s1 = x·W1ᵀ + 1_N·b1)
//	db1 = 1_Nᵀ·dH = Σ_n dH[n,:]    1×H
//
// Deeper nets repeat the hidden (linear + ReLU) block; the formulas are the
// same with h_{l−1} in place of x. A net with an input transform P (MLP.In,
// see FitWhitening) sees z = x·Pᵀ in place of x; label smoothing
// (BackwardSmoothed) puts Y_ε = (1−ε)·Y + ε/C in place of Y. matrix.go's
// table of products and the README quote these lines. The code is
// layer-generic (Workspace): layer l's input act[l] (x, or h_l), weights
// W[l] and b[l], the gradient delta[l] of its output (G on top, dH below)
// and dW[l], dB[l]; scores and probs are s and p, and G is G. (W1 of the
// formulas is W[0] in the code, as model.npz's "W1" is.) A *Gemm is always
// called gemm or g.

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync/atomic"
)

// ---------------------------------------------------------------------------
// Randomness: the seeded streams.

// Randomness. Every random choice of the program draws from newRNG(seed,
// stream), passed explicitly: seed is -seed (a search trial i trains with
// seed + trialSeedStride·i), and the stream says what the numbers are for,
// so turning one feature on never shifts another's draws. These are all the
// streams; "the same seed gives the same bits" can be audited here.
const (
	streamInit      = 1     // NewMLP's weights (train, overfit, lrtest, report)
	streamShuffle   = 2     // the order of the training images, every epoch
	streamDropout   = 3     // dropout masks
	streamAugment   = 4     // -augment's flips and shifts
	streamGradCheck = 0     // gradcheck problem i's net: stream 0+i
	streamGradMask  = 50    // gradcheck problem i's dropout masks: 50+i
	streamLabels    = 98    // overfit without data: the random labels
	streamSynthetic = 99    // synthetic data (no CIFAR-10 at hand)
	streamCoarse    = 1000  // search: coarse log10 λ; +1000 the width, +2000 the dropout
	streamFine      = 1001  // search: fine phase, the same offsets
	streamTrialInit = 10000 // search: trial i's net, 10000+i
	trialSeedStride = 7919  // search: trial i trains with seed + 7919·i
)

// newRNG returns the generator of one stream of a seed (PCG).
func newRNG(seed, stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, stream))
}

// ---------------------------------------------------------------------------
// The MLP: its parameters, their initialisation, the workspace of a pass.

// MLP holds the parameters of the network: layer l maps Sizes[l] inputs to
// Sizes[l+1] outputs with W[l] (Sizes[l+1]×Sizes[l]) and b[l] (1×Sizes[l+1]).
//
// In, when not nil, is a fixed input transform P (Sizes[0]×D, see
// FitWhitening): the layers see z = x·Pᵀ (N×Sizes[0]) instead of the
// normalised images x (N×D). It is fitted once, never trained, and shared
// by Clone's copies.
type MLP struct {
	Sizes []int
	W     []*Matrix
	B     []*Matrix
	In    *Matrix
}

// InputDim is D, the number of values per image the net takes.
func (net *MLP) InputDim() int {
	if net.In != nil {
		return net.In.Cols
	}
	return net.Sizes[0]
}

// Layers is the number of linear layers (hidden layers + 1).
func (net *MLP) Layers() int { return len(net.W) }

// NewMLP builds a net with the given layer sizes [D, H1, …, C] and draws the
// weights from rng: W_l ~ N(0, σ²) with σ = 1/√fan_in as in the assignment, or
// σ = √(2/fan_in) (He) when he is true; biases start at 0.
func NewMLP(sizes []int, he bool, rng *rand.Rand) *MLP {
	if len(sizes) < 2 {
		panic(fmt.Sprintf("mlp: NewMLP needs at least input and output sizes, got %v", sizes))
	}
	net := &MLP{Sizes: append([]int(nil), sizes...)}
	for l := 0; l+1 < len(sizes); l++ {
		in, out := sizes[l], sizes[l+1]
		if in <= 0 || out <= 0 {
			panic(fmt.Sprintf("mlp: NewMLP: layer sizes must be positive, got %v", sizes))
		}
		sigma := 1 / math.Sqrt(float64(in))
		if he {
			sigma = math.Sqrt(2 / float64(in))
		}
		w := NewMatrix(out, in)
		for i := range w.Data {
			w.Data[i] = sigma * rng.NormFloat64()
		}
		net.W = append(net.W, w)
		net.B = append(net.B, NewMatrix(1, out))
	}
	return net
}

// InputWeights is the first layer as it weighs the normalised images x:
// W1 (H×D), or W1·P for a net with an input transform (z = x·Pᵀ, so
// z·W1ᵀ = x·(W1·P)ᵀ).
func (net *MLP) InputWeights(g *Gemm) *Matrix {
	if net.In == nil {
		return net.W[0]
	}
	w := NewMatrix(net.Sizes[1], net.In.Cols)
	g.Mul(false, false, 1, net.W[0], net.In, 0, w)
	return w
}

// Clone returns a deep copy of the parameters.
func (net *MLP) Clone() *MLP {
	c := &MLP{Sizes: append([]int(nil), net.Sizes...), In: net.In}
	for l := range net.W {
		c.W = append(c.W, net.W[l].Clone())
		c.B = append(c.B, net.B[l].Clone())
	}
	return c
}

// Param is one named parameter tensor with its gradient, for optimisers and
// the gradient check.
type Param struct {
	Name string // "W1", "b1", "W2", …
	Val  *Matrix
	Grad *Matrix
}

// Params lists W1, b1, W2, b2, … paired with the gradients in ws.
func (net *MLP) Params(ws *Workspace) []Param {
	var ps []Param
	for l := range net.W {
		ps = append(ps,
			Param{fmt.Sprintf("W%d", l+1), net.W[l], ws.dW[l]},
			Param{fmt.Sprintf("b%d", l+1), net.B[l], ws.dB[l]})
	}
	return ps
}

// RegTerm is Σ_l ‖W_l‖², the sum of squares of every weight.
func (net *MLP) RegTerm() float64 {
	var r float64
	for _, w := range net.W {
		for _, v := range w.Data {
			r += float64(v * v)
		}
	}
	return r
}

// Workspace holds everything one forward/backward pass writes, sized for up
// to maxN samples, so steady-state training allocates nothing. Activation
// matrices are re-sliced to the batch's N on every call.
type Workspace struct {
	gemm *Gemm
	maxN int
	// act[l] is the input of layer l (N×Sizes[l]); act[0] is the batch x
	// itself (not copied), or z = x·Pᵀ for a net with an input transform,
	// act[l] for l ≥ 1 is the ReLU output h_l.
	act []*Matrix
	// z holds x·Pᵀ (N×Sizes[0]) for a net with an input transform.
	z    *Matrix
	zBuf []float64
	// pix is the batch x as bytes when the last forward pass took it so
	// (forwardPixels) and act[0] is empty: Backward takes dW1 from them.
	pix pixelBatch
	// SGDEta, if not 0, asks the next Backward to take the SGD step
	// W ← W − η·dW of every layer itself, inside dW's product
	// (Gemm.MulAddSub, MulAddPixelsBSub), if the loss is finite; it sets
	// WStepped when it did, and the Optimizer then leaves the weights alone
	// (it still steps the biases). Backward clears SGDEta. Each W is read
	// once instead of twice and dW is not read back, nor, where the
	// kernels take the step with dW's tile in registers (AVX-512, AVX2),
	// written: after such a step dW is scratch, and what it holds is
	// unspecified. The bits of W are those of the Optimizer's step.
	SGDEta   float64
	WStepped bool
	// scores is the top layer's output s (N×C); probs its softmax p (N×C).
	scores, probs *Matrix
	// delta[l] is the gradient of the cost with respect to layer l's output
	// (N×Sizes[l+1]): G for the top layer, dH below it.
	delta []*Matrix
	// dW[l], dB[l]: gradients of the cost with respect to W[l], b[l].
	dW, dB []*Matrix
	// mask[l] is the dropout mask of hidden layer l+1's output (N×Sizes[l+1]:
	// 0 for a dropped unit, 1/(1−p) for a kept one); masked is the set of
	// masks the last forward pass applied (nil: none), for Backward.
	mask   []*Matrix
	masked []*Matrix
	// buffers behind the re-sliced matrices above
	actBuf, deltaBuf [][]float64
	maskBuf          [][]float64
	scoresBuf        []float64
	probsBuf         []float64
	// perWorker[w] is worker w's forward-only workspace, with a serial
	// engine of its own, for chunk-parallel evaluation (forEachChunk); made
	// by the first evaluation on an engine with more than one worker.
	perWorker []*Workspace
}

// NewWorkspace allocates the buffers for batches of up to maxN samples of net,
// multiplying with gemm.
func NewWorkspace(net *MLP, gemm *Gemm, maxN int) *Workspace {
	ws := newInputWorkspace(net, gemm, maxN)
	L := net.Layers()
	c := net.Sizes[L]
	ws.act = make([]*Matrix, L)
	ws.actBuf = make([][]float64, L)
	ws.delta = make([]*Matrix, L)
	ws.deltaBuf = make([][]float64, L)
	for l := 0; l < L; l++ {
		if l > 0 {
			ws.actBuf[l] = make([]float64, maxN*net.Sizes[l])
		}
		if l+1 < L {
			ws.mask = append(ws.mask, &Matrix{})
			ws.maskBuf = append(ws.maskBuf, nil) // allocated by the first ForwardDropout
		}
		ws.act[l] = &Matrix{}
		ws.deltaBuf[l] = make([]float64, maxN*net.Sizes[l+1])
		ws.delta[l] = &Matrix{}
		ws.dW = append(ws.dW, NewMatrix(net.Sizes[l+1], net.Sizes[l]))
		ws.dB = append(ws.dB, NewMatrix(1, net.Sizes[l+1]))
	}
	ws.scoresBuf = make([]float64, maxN*c)
	ws.probsBuf = make([]float64, maxN*c)
	ws.scores, ws.probs = &Matrix{}, &Matrix{}
	return ws
}

// newForwardWorkspace is a workspace for forward passes only (no
// gradients, no dropout), for batches of up to maxN samples of net.
func newForwardWorkspace(net *MLP, gemm *Gemm, maxN int) *Workspace {
	ws := newInputWorkspace(net, gemm, maxN)
	L := net.Layers()
	ws.act = make([]*Matrix, L)
	ws.actBuf = make([][]float64, L)
	for l := 0; l < L; l++ {
		if l > 0 {
			ws.actBuf[l] = make([]float64, maxN*net.Sizes[l])
		}
		ws.act[l] = &Matrix{}
	}
	ws.scoresBuf = make([]float64, maxN*net.Sizes[L])
	ws.probsBuf = make([]float64, maxN*net.Sizes[L])
	ws.scores, ws.probs = &Matrix{}, &Matrix{}
	return ws
}

// newInputWorkspace is a workspace with the input transform's buffer (if
// the net has one), for NewWorkspace and newForwardWorkspace to fill.
func newInputWorkspace(net *MLP, gemm *Gemm, maxN int) *Workspace {
	ws := &Workspace{gemm: gemm, maxN: maxN, z: &Matrix{}}
	if net.In != nil {
		ws.zBuf = make([]float64, maxN*net.Sizes[0])
	}
	return ws
}

// view points m at the first rows×cols elements of buf.
func view(m *Matrix, buf []float64, rows, cols int) *Matrix {
	m.Rows, m.Cols, m.Data = rows, cols, buf[:rows*cols]
	return m
}

// ---------------------------------------------------------------------------
// Layers: one forward/backward pair each (linear, ReLU, dropout, softmax
// with cross-entropy).

// linearForward computes out = x·wᵀ + 1_N·b (s1 = x·W1ᵀ + 1_N·b1 for the
// first layer).
//
//	x    N×in     layer input
//	w    out×in   weights
//	b    1×out    bias, added to every row
//	out  N×out    result (overwritten)
func linearForward(g *Gemm, x, w, b, out *Matrix) {
	g.Mul(false, true, 1, x, w, 0, out)
	addBias(out, b)
}

// addBias adds b (1×out) to every row of out (N×out).
func addBias(out, b *Matrix) {
	for n := 0; n < out.Rows; n++ {
		row := out.Row(n)
		for j, bj := range b.Data {
			row[j] += bj
		}
	}
}

// linearBackward is the backward pass of linearForward's out = x·wᵀ + 1_N·b:
// from dout = ∂cost/∂out it computes, including the L2 term of the cost,
//
//	dw = doutᵀ·x + 2λ·w      out×in   (dW1 = dHᵀ·x + 2λ·W1)
//	db = 1_Nᵀ·dout           1×out    (db1 = Σ_n dH[n,:])
//	dx = dout·w              N×in   (skipped when dx is nil: the input layer)
//
// and, for eta ≠ 0, the SGD step w ← w − η·dw (Workspace.SGDEta), after
// which dw is scratch (MulAddSub's keepC = false). dout is N×out, x is
// N×in, w is out×in.
func linearBackward(g *Gemm, dout, x, w *Matrix, lambda, eta float64, dx, dw, db *Matrix) {
	if dx != nil {
		g.Mul(false, false, 1, dout, w, 0, dx) // first: it needs w before the step
	}
	// One GEMM: dw = 1·doutᵀ·x + (2λ)·w, the 2λ·w term written by each
	// worker into its own block of dw just before it accumulates there,
	// and w ← w − η·dw while dw's tile is still in registers.
	g.MulAddSub(true, false, 1, dout, x, 2*lambda, w, dw, eta, eta == 0)
	biasBackward(dout, db)
}

// biasBackward is db = 1_Nᵀ·dout (1×out): the column sums of dout (N×out).
func biasBackward(dout, db *Matrix) {
	clear(db.Data)
	for n := 0; n < dout.Rows; n++ {
		for j, v := range dout.Row(n) {
			db.Data[j] += v
		}
	}
}

// reluForward applies h = max(0, s) in place: s[i] < 0 becomes 0 (a NaN
// stays NaN, so that a diverging net still shows it).
//
// Both ReLU loops choose between two bit patterns, not between two paths:
// half the units of a layer are off, in no order a branch predictor can
// learn, and as `if v < 0 { s[i] = 0 }` the loop mispredicted every other
// element (4 ns an element; 1.4 ms of each 3072-1000-1000-10 step on the
// Intel Xeon of the README). Written as a select of integers the compiler
// emits a conditional move: 0.8 ns, the same bits.
func reluForward(s *Matrix) {
	for i, v := range s.Data {
		b := math.Float64bits(v)
		if v < 0 {
			b = 0
		}
		s.Data[i] = math.Float64frombits(b)
	}
}

// reluBackward turns ∂cost/∂h into ∂cost/∂s in place: dh[i] = 0 where the
// unit was off (h[i] = max(0, s[i]) = 0, so the gradient does not pass).
func reluBackward(dh, h *Matrix) {
	d := dh.Data[:len(h.Data)]
	for i, v := range h.Data {
		b := math.Float64bits(d[i])
		if v <= 0 {
			b = 0
		}
		d[i] = math.Float64frombits(b)
	}
}

// applyDropout multiplies x by the mask in place, x ← x ⊙ mask (both N×H;
// the mask holds 0 or 1/(1−p), see ForwardDropout). It is the forward pass,
// h ← h ⊙ M, and, since the layer is linear in h, its own backward pass,
// dh ← dh ⊙ M: a dropped unit passes no gradient, a kept one passes it
// scaled by 1/(1−p).
func applyDropout(x, mask *Matrix) {
	for i, m := range mask.Data {
		x.Data[i] *= m
	}
}

// softmaxForward writes p = softmax(s) row by row, subtracting each row's
// maximum first so that exp never overflows (scores of ±1000 are fine).
//
//	s, p   N×C
func softmaxForward(s, p *Matrix) {
	for n := 0; n < s.Rows; n++ {
		srow, prow := s.Row(n), p.Row(n)
		mx := math.Inf(-1)
		for _, v := range srow {
			mx = math.Max(mx, v)
		}
		var sum float64
		for j, v := range srow {
			e := math.Exp(v - mx)
			prow[j] = e
			sum += e
		}
		for j := range prow {
			prow[j] /= sum
		}
	}
}

// crossEntropy is the mean cross-entropy −(1/N)·Σ_n log p[n, y_n], computed
// from the scores with log-sum-exp so that it stays finite even when p
// underflows to 0:  −log p[n,y] = log Σ_j exp(s[n,j] − m) − (s[n,y] − m),
// m = max_j s[n,j].
//
//	s  N×C scores;  y  N labels in [0, C)
func crossEntropy(s *Matrix, y []int) float64 { return smoothedCrossEntropy(s, y, 0) }

// smoothedCrossEntropy is the mean cross-entropy against smoothed labels
// (label smoothing, Szegedy et al. 2016): the target of image n is
//
//	Y_ε[n,:] = (1−ε)·Y[n,:] + ε/C      (Y one-hot; ε = 0 is crossEntropy)
//	loss = −(1/N)·Σ_n Σ_j Y_ε[n,j]·log p[n,j]
//	     = (1/N)·Σ_n [ lse_n − (1−ε)·(s[n,y_n] − m) − (ε/C)·Σ_j (s[n,j] − m) ]
//
// with lse_n = log Σ_j exp(s[n,j] − m), m = max_j s[n,j].
//
//	s  N×C scores;  y  N labels in [0, C)
func smoothedCrossEntropy(s *Matrix, y []int, eps float64) float64 {
	var total float64
	for n := 0; n < s.Rows; n++ {
		row := s.Row(n)
		mx := math.Inf(-1)
		for _, v := range row {
			mx = math.Max(mx, v)
		}
		var sum, all float64
		for _, v := range row {
			sum += math.Exp(v - mx)
			all += v - mx
		}
		if eps == 0 {
			total += math.Log(sum) - (row[y[n]] - mx)
		} else {
			total += math.Log(sum) - float64((1-eps)*(row[y[n]]-mx)) - float64(eps/float64(len(row))*all)
		}
	}
	return total / float64(s.Rows)
}

// softmaxCrossEntropyBackward writes G = ∂loss/∂s = (p − Y_ε)/N, where Y_ε
// is the one-hot matrix of the labels y, smoothed by ε (see
// smoothedCrossEntropy; ε = 0: Y itself).
//
//	p, G  N×C;  y  N labels
func softmaxCrossEntropyBackward(p *Matrix, y []int, eps float64, G *Matrix) {
	inv := 1 / float64(p.Rows)
	spread := eps / float64(p.Cols) // ε/C, on every class
	for n := 0; n < p.Rows; n++ {
		prow, grow := p.Row(n), G.Row(n)
		for j, v := range prow {
			grow[j] = (v - spread) * inv
		}
		grow[y[n]] -= float64((1 - eps) * inv)
	}
}

// ---------------------------------------------------------------------------
// The net: the forward pass and the backward pass.

// Forward runs the batch x (N×D, N ≤ the workspace's maxN) through the net
// and returns the scores s (N×C). The intermediate activations stay in ws
// for Backward. The returned matrix belongs to ws. This is the evaluation
// pass: no dropout.
func (net *MLP) Forward(ws *Workspace, x *Matrix) *Matrix {
	return net.ForwardMasked(ws, x, nil)
}

// ForwardDropout is the training pass with inverted dropout (Srivastava et
// al. 2014): every hidden unit's output is kept with probability 1−p and
// then scaled by 1/(1−p), so that its expected value is what Forward (the
// evaluation pass, no dropout) computes:
//
//	h_l = max(0, s_l) ⊙ M_l,   M_l[n,j] = 1/(1−p) with probability 1−p, else 0
//
// The masks M_l (N×H_l) are drawn from rng and kept in ws; Backward routes
// the gradient through them. p = 0 is Forward.
func (net *MLP) ForwardDropout(ws *Workspace, x *Matrix, p float64, rng *rand.Rand) *Matrix {
	return net.ForwardMasked(ws, x, net.drawMasks(ws, x.Rows, p, rng))
}

// ForwardPixelsDropout is ForwardDropout on a batch of images kept as
// bytes (x: N images of D bytes, such as a training batch's rows of the
// whole set, normalised by nm as they are read; nm nil: p/255): the first
// layer's product takes them straight from the bytes (Gemm.MulPixels),
// and Backward the gradient dW1 (Gemm.MulAddPixelsB), so the batch is
// never copied, into floats or bytes. Same scores, same gradients, same
// bits as ForwardDropout on the normalised rows.
func (net *MLP) ForwardPixelsDropout(ws *Workspace, x Images, nm *Norm, p float64, rng *rand.Rand) *Matrix {
	return net.forwardPixels(ws, pixelBatch{x, nm}, net.drawMasks(ws, x.Len(), p, rng))
}

// drawMasks draws ForwardDropout's masks M_l for a batch of n into ws and
// returns them (nil for p = 0: no dropout).
func (net *MLP) drawMasks(ws *Workspace, n int, p float64, rng *rand.Rand) []*Matrix {
	if p == 0 {
		return nil
	}
	if p < 0 || p >= 1 {
		panic(fmt.Sprintf("mlp: ForwardDropout: p = %g, want 0 ≤ p < 1", p))
	}
	keep := 1 / (1 - p)
	for l, m := range ws.mask {
		if ws.maskBuf[l] == nil {
			ws.maskBuf[l] = make([]float64, ws.maxN*net.Sizes[l+1])
		}
		view(m, ws.maskBuf[l], n, net.Sizes[l+1])
		for i := range m.Data {
			if rng.Float64() < p {
				m.Data[i] = 0
			} else {
				m.Data[i] = keep
			}
		}
	}
	return ws.mask
}

// DropoutMasks returns copies of the masks the last ForwardDropout drew
// (one N×H_l matrix per hidden layer), for ForwardMasked.
func (ws *Workspace) DropoutMasks() []*Matrix {
	var out []*Matrix
	for _, m := range ws.mask {
		out = append(out, m.Clone())
	}
	return out
}

// ForwardMasked is Forward with given dropout masks (nil: none), one per
// hidden layer, each N×H_l with entries 0 or 1/(1−p): the gradient check
// holds the masks fixed with it while it nudges the weights.
func (net *MLP) ForwardMasked(ws *Workspace, x *Matrix, masks []*Matrix) *Matrix {
	if x.Cols != net.InputDim() || x.Rows > ws.maxN {
		panic(fmt.Sprintf("mlp: Forward: batch is %s, net wants N×%d with N ≤ %d", x.Shape(), net.InputDim(), ws.maxN))
	}
	if masks != nil && len(masks) != net.Layers()-1 {
		panic(fmt.Sprintf("mlp: Forward: %d dropout masks for %d hidden layers", len(masks), net.Layers()-1))
	}
	for l, m := range masks {
		if m.Rows != x.Rows || m.Cols != net.Sizes[l+1] {
			panic(fmt.Sprintf("mlp: Forward: dropout mask %d is %s, want %dx%d", l+1, m.Shape(), x.Rows, net.Sizes[l+1]))
		}
	}
	if net.In != nil {
		z := view(ws.z, ws.zBuf, x.Rows, net.Sizes[0])
		ws.gemm.Mul(false, true, 1, x, net.In, 0, z) // z = x·Pᵀ
		x = z
	}
	*ws.act[0], ws.pix = *x, pixelBatch{}
	for l := range net.Layers() {
		out := net.layerOutput(ws, l, x.Rows)
		linearForward(ws.gemm, ws.act[l], net.W[l], net.B[l], out)
		net.activate(out, l, masks)
	}
	ws.masked = masks
	return ws.scores
}

// layerOutput is the workspace matrix that receives layer l's output for a
// batch of n: h_{l+1} (N×H), or the scores s (N×C) for the top layer.
func (net *MLP) layerOutput(ws *Workspace, l, n int) *Matrix {
	if l+1 < net.Layers() {
		return view(ws.act[l+1], ws.actBuf[l+1], n, net.Sizes[l+1])
	}
	return view(ws.scores, ws.scoresBuf, n, net.Sizes[l+1])
}

// activate applies a hidden layer's ReLU (and dropout mask, if any) to its
// output in place; the top layer's scores are left as they are.
func (net *MLP) activate(out *Matrix, l int, masks []*Matrix) {
	if l+1 < net.Layers() {
		reluForward(out)
		if masks != nil {
			applyDropout(out, masks[l])
		}
	}
}

// pixelBatch is a batch of images kept as bytes, normalised by norm as
// the products read them (nil: p/255).
type pixelBatch struct {
	Images
	norm *Norm
}

// forwardImages is Forward on images [from, to) of d, for evaluation.
// Images stored as bytes go into the first layer's product directly
// (forwardPixels), so no float64 copy of the chunk is made; the scores
// have the same bits.
func (net *MLP) forwardImages(ws *Workspace, d *Dataset, from, to int) *Matrix {
	if d.X != nil {
		return net.Forward(ws, d.X.RowsView(from, to))
	}
	dim := d.Dim()
	return net.forwardPixels(ws, pixelBatch{Images{Pix: d.Pix[from*dim : to*dim], K: dim}, d.Norm}, nil)
}

// forwardPixels is ForwardMasked on a batch of bytes: the first product,
// s1 = x·W1ᵀ (or z = x·Pᵀ with an input transform), is Gemm.MulPixels,
// which normalises x block by block as it multiplies. Without an input
// transform, Backward then takes dW1 from the bytes too (ws.pix).
func (net *MLP) forwardPixels(ws *Workspace, x pixelBatch, masks []*Matrix) *Matrix {
	n, dim := x.Len(), net.InputDim()
	if x.K != dim || n > ws.maxN {
		panic(fmt.Sprintf("mlp: Forward: a batch of %d images of %d bytes, net wants N×%d with N ≤ %d", n, x.K, dim, ws.maxN))
	}
	*ws.act[0], ws.pix = Matrix{}, x
	if net.In != nil {
		z := view(ws.z, ws.zBuf, n, net.Sizes[0])
		ws.gemm.MulPixels(1, x.Images, x.norm, true, net.In, 0, z) // z = x·Pᵀ
		*ws.act[0], ws.pix = *z, pixelBatch{}
	}
	for l := range net.Layers() {
		out := net.layerOutput(ws, l, n)
		if l == 0 && net.In == nil {
			ws.gemm.MulPixels(1, x.Images, x.norm, true, net.W[0], 0, out)
			addBias(out, net.B[0])
		} else {
			linearForward(ws.gemm, ws.act[l], net.W[l], net.B[l], out)
		}
		net.activate(out, l, masks)
	}
	ws.masked = masks
	return ws.scores
}

// Backward computes the gradients of the cost for the batch last passed to
// Forward (or ForwardDropout / ForwardMasked, through the same masks), with
// labels y (N), into ws.dW and ws.dB, and returns the batch's mean
// cross-entropy loss (the cost is loss + λ·RegTerm()).
func (net *MLP) Backward(ws *Workspace, y []int, lambda float64) float64 {
	return net.BackwardSmoothed(ws, y, lambda, 0)
}

// BackwardSmoothed is Backward against labels smoothed by ε (see
// smoothedCrossEntropy): only G changes, G = (p − Y_ε)/N, and the loss it
// returns is the smoothed one.
func (net *MLP) BackwardSmoothed(ws *Workspace, y []int, lambda, eps float64) float64 {
	n := ws.scores.Rows
	if len(y) != n {
		panic(fmt.Sprintf("mlp: Backward: %d labels for a batch of %d", len(y), n))
	}
	L := net.Layers()
	// In the forward pass this was p = softmax(s), loss = −(1/N)·Σ_n Σ_j
	// Y_ε[n,j]·log p[n,j]; so now we have G = ∂loss/∂s = (p − Y_ε)/N.
	probs := view(ws.probs, ws.probsBuf, n, ws.scores.Cols)
	softmaxForward(ws.scores, probs)
	loss := smoothedCrossEntropy(ws.scores, y, eps)
	sgdEta := ws.SGDEta // the weights' SGD step in dW's products, on a finite loss only
	ws.SGDEta, ws.WStepped = 0, false
	if !finite(loss) {
		sgdEta = 0
	}
	G := view(ws.delta[L-1], ws.deltaBuf[L-1], n, net.Sizes[L])
	softmaxCrossEntropyBackward(probs, y, eps, G)
	for l := L - 1; l >= 0; l-- {
		// In the forward pass this was out = act[l]·W[l]ᵀ + 1_N·b[l]
		// (s = h·W2ᵀ + 1_N·b2 on top, s1 = x·W1ᵀ + 1_N·b1 at the bottom),
		// and delta[l] = ∂cost/∂out; so now we have dW[l] = delta[l]ᵀ·act[l]
		// + 2λ·W[l], dB[l] = 1_Nᵀ·delta[l], and ∂cost/∂act[l] =
		// delta[l]·W[l] (not needed for the input).
		var dx *Matrix
		if l > 0 {
			dx = view(ws.delta[l-1], ws.deltaBuf[l-1], n, net.Sizes[l])
		}
		if l == 0 && ws.pix.Pix != nil {
			// x is the batch's bytes: dW1 = dHᵀ·x + 2λ·W1 straight from
			// them (and W1 ← W1 − η·dW1 with it, if asked: SGDEta).
			ws.gemm.MulAddPixelsBSub(true, 1, ws.delta[0], ws.pix.Images, ws.pix.norm, 2*lambda, net.W[0], ws.dW[0], sgdEta, sgdEta == 0)
			biasBackward(ws.delta[0], ws.dB[0])
			continue
		}
		linearBackward(ws.gemm, ws.delta[l], ws.act[l], net.W[l], lambda, sgdEta, dx, ws.dW[l], ws.dB[l])
		if dx != nil {
			// In the forward pass this was act[l] = max(0, s_l) ⊙ M_l; so
			// now delta[l−1] = ∂cost/∂act[l] ⊙ 1[s_l > 0] ⊙ M_l (dH).
			reluBackward(dx, ws.act[l])
			if ws.masked != nil {
				applyDropout(dx, ws.masked[l-1])
			}
		}
	}
	ws.WStepped = sgdEta != 0
	return loss
}

// ---------------------------------------------------------------------------
// Optimisers: the update rules.

// Optimizer updates a net's parameters from the gradients in a Workspace.
// Every rule is element-wise, so the passes are cut over the GEMM engine's
// workers with ParallelFor (the bits do not depend on the cut). With g_t the
// gradient ∂cost/∂θ at step t and η_t the step's learning rate:
//
//	sgd:       θ ← θ − η_t·g_t
//	momentum:  v ← μ·v − η_t·g_t;   θ ← θ + v
//	nesterov:  v ← μ·v − η_t·g_t;   θ ← θ + μ·v − η_t·g_t
//	           (the look-ahead form of Sutskever et al. 2013, as in cs231n)
//	adam:      m ← β₁·m + (1−β₁)·g_t;   v ← β₂·v + (1−β₂)·g_t²
//	           θ ← θ − η_t·m̂/(√v̂ + ε),  m̂ = m/(1−β₁ᵗ), v̂ = v/(1−β₂ᵗ)
//
// (Kingma & Ba 2015, with β₁ = 0.9, β₂ = 0.999, ε = 1e-8.) The cyclical
// schedule sets η_t for all of them.
type Optimizer struct {
	Kind         string  // "sgd", "momentum", "nesterov" or "adam"
	Momentum     float64 // μ for momentum and nesterov
	beta1, beta2 float64 // Adam's decay rates β₁, β₂
	params       []Param
	m, v         [][]float64 // per parameter: velocity (v) or Adam's moments (m, v)
	gemm         *Gemm       // its workers run the passes
	ws           *Workspace  // the gradients' workspace (WStepped: the weights' steps already taken)
	t            int         // steps taken (Adam's bias correction)

	// The pass in progress, read by rangeFn on every worker: parameter cur,
	// learning rate eta, Adam's 1/(1−β₁ᵗ) and 1/(1−β₂ᵗ).
	cur         int
	eta, c1, c2 float64
	rangeFn     func(lo, hi int) // o.updateRange, bound once
}

// Optimizers lists the -opt values.
var Optimizers = []string{"sgd", "momentum", "nesterov", "adam"}

// NewOptimizer returns an optimiser of the given kind ("" means sgd) for
// net's parameters, whose gradients ws holds. It panics on an unknown kind
// (flags are checked in main).
func NewOptimizer(kind string, momentum float64, net *MLP, ws *Workspace) *Optimizer {
	o := &Optimizer{Kind: kind, Momentum: momentum, params: net.Params(ws), gemm: ws.gemm, ws: ws, beta1: 0.9, beta2: 0.999}
	switch kind {
	case "", "sgd":
		o.Kind = "sgd"
	case "momentum", "nesterov":
		for _, p := range o.params {
			o.v = append(o.v, make([]float64, len(p.Val.Data)))
		}
	case "adam":
		for _, p := range o.params {
			o.m = append(o.m, make([]float64, len(p.Val.Data)))
			o.v = append(o.v, make([]float64, len(p.Val.Data)))
		}
	default:
		panic(fmt.Sprintf("mlp: NewOptimizer: unknown kind %q (want one of %v)", kind, Optimizers))
	}
	o.rangeFn = o.updateRange // bound once: ParallelFor then allocates nothing
	return o
}

// State returns what the optimiser carries from step to step: the number
// of steps taken and its buffers (momentum's velocity; Adam's m, then v).
func (o *Optimizer) State() (t int, bufs [][]float64) {
	return o.t, append(slices.Clone(o.m), o.v...)
}

// SetState restores a State (of an optimiser of the same kind and net). A
// state that does not fit (it may come from a file) is an error, and then
// nothing is changed.
func (o *Optimizer) SetState(t int, bufs [][]float64) error {
	if len(bufs) != len(o.m)+len(o.v) || t < 0 {
		return fmt.Errorf("optimiser state: %d buffers after %d steps for %s, want %d", len(bufs), t, o.Kind, len(o.m)+len(o.v))
	}
	dst := append(slices.Clone(o.m), o.v...)
	for i, b := range bufs {
		if len(b) != len(dst[i]) {
			return fmt.Errorf("optimiser state: buffer %d has %d values, want %d", i, len(b), len(dst[i]))
		}
	}
	o.t = t
	for i, b := range bufs {
		copy(dst[i], b)
	}
	return nil
}

// Step applies one update with learning rate eta.
func (o *Optimizer) Step(eta float64) {
	o.t++
	o.eta = eta
	if o.Kind == "adam" {
		o.c1 = 1 / (1 - math.Pow(o.beta1, float64(o.t)))
		o.c2 = 1 / (1 - math.Pow(o.beta2, float64(o.t)))
	}
	for i, p := range o.params {
		if o.ws.WStepped && slices.Contains(o.ws.dW, p.Grad) {
			continue // Backward took this W's step in dW's product (Workspace.SGDEta)
		}
		o.cur = i
		o.gemm.ParallelFor(len(p.Val.Data), o.rangeFn)
	}
	o.ws.WStepped = false
}

// updateRange updates elements [lo, hi) of parameter o.cur.
func (o *Optimizer) updateRange(lo, hi int) {
	p := o.params[o.cur]
	theta, grad := p.Val.Data[lo:hi], p.Grad.Data[lo:hi]
	eta, mu := o.eta, o.Momentum
	switch o.Kind {
	case "sgd":
		for i, gt := range grad {
			theta[i] -= float64(eta * gt)
		}
	case "momentum":
		v := o.v[o.cur][lo:hi]
		for i, gt := range grad {
			v[i] = float64(mu*v[i]) - float64(eta*gt)
			theta[i] += v[i]
		}
	case "nesterov":
		v := o.v[o.cur][lo:hi]
		for i, gt := range grad {
			v[i] = float64(mu*v[i]) - float64(eta*gt)
			theta[i] += float64(mu*v[i]) - float64(eta*gt)
		}
	case "adam":
		m, v := o.m[o.cur][lo:hi], o.v[o.cur][lo:hi]
		beta1, beta2, c1, c2 := o.beta1, o.beta2, o.c1, o.c2
		for i, gt := range grad {
			m[i] = float64(beta1*m[i]) + float64((1-beta1)*gt)
			v[i] = float64(beta2*v[i]) + float64((1-beta2)*gt*gt)
			theta[i] -= eta * (m[i] * c1) / (math.Sqrt(v[i]*c2) + 1e-8)
		}
	}
}

// ---------------------------------------------------------------------------
// Input whitening.

// WhitenSpec names an input transform to fit (main's -whiten flags).
type WhitenSpec struct {
	Kind string  // "" (none), "pca" or "zca"
	Dims int     // pca: the components kept, k (0: all D)
	Eps  float64 // ε, added to every eigenvalue
}

// Outputs is k, the number of values the transform makes of d inputs (d
// when there is none, or for zca and pca with Dims 0).
func (w WhitenSpec) Outputs(d int) int {
	if w.Kind == "pca" && w.Dims > 0 {
		return w.Dims
	}
	return d
}

// FitWhitening returns the input transform P of spec for the images of d
// (the training split, normalised by its own Norm, so every input has mean
// 0 and variance 1 over d):
//
//	C = (1/N)·Σ_n x_nᵀ·x_n              D×D   the inputs' covariance
//	C = Uᵀ·Λ·U                                 SymEig: rows of U are the
//	                                           eigenvectors, λ_1 ≥ … ≥ λ_D
//	                                           (pca with k ≤ D/3: TopEigen,
//	                                           the first k only)
//	pca: P = (Λ_k + ε·I)^(−½)·U_k       k×D   the first k principal
//	                                           components, scaled to variance λ/(λ+ε)
//	zca: P = Uᵀ·(Λ + ε·I)^(−½)·U        D×D   the same for k = D, turned
//	                                           back into pixel space
//
// and the net sees z = x·Pᵀ. ε (in units of the mean eigenvalue, 1 for
// normalised inputs) damps the directions of small variance, mostly noise,
// that whitening would otherwise blow up. For a dense first layer, zca and
// pca with k = D are the same model up to a rotation of W1's rows (and
// W1's Gaussian start and its L2 penalty do not see rotations); pca with
// k < D also makes the first layer D/k times cheaper, and with k ≤ D/3
// the fit itself (TopEigen; see the README for its time and what it does
// to accuracy).
func FitWhitening(g *Gemm, d *Dataset, spec WhitenSpec) (*Matrix, error) {
	dim := d.Dim()
	k := spec.Outputs(dim)
	if k > dim || spec.Eps < 0 || (spec.Kind != "pca" && spec.Kind != "zca") {
		panic(fmt.Sprintf("mlp: FitWhitening: %+v for %d inputs", spec, dim))
	}
	var vals []float64
	var u *Matrix
	var err error
	if c := covariance(g, d); k <= dim/3 {
		vals, u, err = TopEigen(g, c, k, newRNG(whitenSeed, whitenSeed))
	} else {
		vals, u, err = SymEig(g, c)
	}
	if err != nil {
		return nil, fmt.Errorf("whitening: %w", err)
	}
	scaled := NewMatrix(k, dim) // (Λ_k + ε·I)^(−½)·U_k
	for i := range k {
		f := 1 / math.Sqrt(max(vals[i], 0)+spec.Eps)
		for j, v := range u.Row(i) {
			scaled.Data[i*dim+j] = f * v
		}
	}
	if spec.Kind == "pca" {
		return scaled, nil
	}
	p := NewMatrix(dim, dim)
	g.Mul(true, false, 1, u, scaled, 0, p)
	return p, nil
}

// whitenSeed seeds TopEigen's random start block: the transform is a
// function of the training images alone.
const whitenSeed = 1

// covariance is C = (1/N)·Σ_n x_nᵀ·x_n (D×D) over the images of d, summed
// chunk by chunk (evalChunk images at a time, in order) with the GEMM.
//
// C is symmetric, so only its blocks on and below the diagonal are
// computed, covBlock columns of x at a time (78 of the 144 blocks for
// D = 3072), and mirrored. Every element is summed as the full product
// g.Mul(true, false, 1/N, x, x, 1, C) sums it (the same images, the same K
// slices, and x_i·x_j = x_j·x_i in each FMA), so C has that product's bits
// in half its time (49,000 images on the Intel Xeon of the README: 8.1 →
// 4.4 s).
func covariance(g *Gemm, d *Dataset) *Matrix {
	dim, n := d.Dim(), d.Len()
	nb := (dim + covBlock - 1) / covBlock
	width := func(b int) int { return min(covBlock, dim-b*covBlock) }
	cols := make([]*Matrix, nb) // the chunk's inputs, covBlock columns at a time
	for b := range cols {
		cols[b] = NewMatrix(min(n, evalChunk), width(b))
	}
	blocks := make([]*Matrix, nb*nb) // blocks[I·nb+J], J ≤ I: rows I, columns J of C
	for bi := range nb {
		for bj := range bi + 1 {
			blocks[bi*nb+bj] = NewMatrix(width(bi), width(bj))
		}
	}
	x := make([]float64, dim)
	for from := 0; from < n; from += evalChunk {
		to := min(from+evalChunk, n)
		for i := from; i < to; i++ {
			d.Row(x, i)
			for b, cb := range cols {
				copy(cb.Row(i-from), x[b*covBlock:])
			}
		}
		for bi := range nb {
			for bj := range bi + 1 {
				xi, xj := cols[bi].RowsView(0, to-from), cols[bj].RowsView(0, to-from)
				g.Mul(true, false, 1/float64(n), xi, xj, 1, blocks[bi*nb+bj])
			}
		}
	}
	c := NewMatrix(dim, dim)
	for bi := range nb {
		for bj := range bi + 1 {
			blk := blocks[bi*nb+bj]
			for r := range blk.Rows {
				for q, v := range blk.Row(r) {
					i, j := bi*covBlock+r, bj*covBlock+q
					c.Data[i*dim+j], c.Data[j*dim+i] = v, v
				}
			}
		}
	}
	return c
}

// covBlock is the width of covariance's blocks: 256 columns make products
// of 256×2000×256 (a quarter of a GFLOP, both cores busy) and waste 6 % on
// the diagonal blocks' upper halves.
const covBlock = 256

// ---------------------------------------------------------------------------
// Datasets and evaluation: accuracy, probabilities, ensembles.

// Dataset is a set of N images with labels Y (N), stored one of two ways:
//
//   - Pix holds the files' bytes, N×D (one byte per input: the 60,000
//     CIFAR-10 images take 184 MB where float64 rows would take 1.47 GB).
//     They become network inputs only when they are read (Row, augmentRow,
//     and Gemm.MulPixels, which normalises while it packs): x = (p/255 −
//     mean)·(1/std) with Norm's mean and std, computed exactly as a float64
//     copy normalised in place would be, so the bits are the same.
//   - X holds N×D float64 inputs used as they are (synthetic data, tests).
type Dataset struct {
	Pix  []uint8
	X    *Matrix
	Y    []int
	Norm *Norm // for Pix; nil means p/255
}

// Len is the number of images.
func (d *Dataset) Len() int { return len(d.Y) }

// Dim is D, the number of inputs per image (0 for an empty byte set).
func (d *Dataset) Dim() int {
	if d.X != nil {
		return d.X.Cols
	}
	if len(d.Y) == 0 {
		return 0
	}
	return len(d.Pix) / len(d.Y)
}

// Subset returns images [from, to) as a dataset sharing d's storage.
func (d *Dataset) Subset(from, to int) *Dataset {
	s := &Dataset{Y: d.Y[from:to], Norm: d.Norm}
	if d.X != nil {
		s.X = d.X.RowsView(from, to)
	} else {
		s.Pix = d.Pix[from*d.Dim() : to*d.Dim()]
	}
	return s
}

// Row writes image i's network input (D values) into dst.
func (d *Dataset) Row(dst []float64, i int) { d.RowThen(dst, i, -1) }

// RowThen is Row when image next (if ≥ 0) is the next one to be read: its
// bytes are fetched from memory meanwhile.
func (d *Dataset) RowThen(dst []float64, i, next int) {
	if d.X != nil {
		copy(dst, d.X.Row(i))
		return
	}
	dim := d.Dim()
	var nextPix []uint8
	if next >= 0 {
		nextPix = d.Pix[next*dim : (next+1)*dim]
	}
	d.Norm.apply(dst, d.Pix[i*dim:(i+1)*dim], nextPix)
}

// firstRow is the first row of a cols-wide matrix that starts at or after
// element e: ParallelFor cuts a matrix's elements into ranges [lo, hi), and
// rows firstRow(lo) … firstRow(hi)−1 start in the range, so each row is
// done once.
func firstRow(e, cols int) int { return (e + cols - 1) / cols }

// evalChunk is how many images Evaluate and Probabilities push through the
// net at once (the size of the workspaces made for them). Larger chunks
// pack W1 and hand out work to the GEMM's goroutines less often; 2000 ran
// evaluation 8 % faster than 1000 on AMD Zen 4 (and 5000 no faster), at
// 2000·H doubles per activation buffer.
const evalChunk = 2000

// Metrics are the figures the seed's plots show for one data set.
type Metrics struct {
	Cost, Loss, Accuracy float64
}

// Evaluate computes loss, cost and accuracy of net on every image of d
// (N×D inputs, labels d.Y), in chunks of the workspace's size. If pred is
// not nil, it receives each sample's arg-max class.
func (net *MLP) Evaluate(ws *Workspace, d *Dataset, lambda float64, pred []int) Metrics {
	if d.Len() == 0 {
		return Metrics{Cost: math.NaN(), Loss: math.NaN(), Accuracy: math.NaN()}
	}
	chunks := (d.Len() + ws.maxN - 1) / ws.maxN
	lossSums, corrects := make([]float64, chunks), make([]int, chunks)
	net.forEachChunk(ws, d, func(c, from, to int, s *Matrix) {
		var p []int
		if pred != nil {
			p = pred[from:to]
		}
		lossSums[c], corrects[c] = chunkTally(s, d.Y[from:to], p)
	})
	return net.metricsOf(lossSums, corrects, d.Len(), lambda)
}

// chunkTally is one chunk's share of Evaluate: the summed loss of its
// images (scores s, N×C; labels y) and how many were classified right. If
// pred is not nil, pred[n] receives image n's arg-max class.
func chunkTally(s *Matrix, y, pred []int) (lossSum float64, correct int) {
	lossSum = crossEntropy(s, y) * float64(len(y))
	for n := 0; n < s.Rows; n++ {
		k := argmax(s.Row(n))
		if k == y[n] {
			correct++
		}
		if pred != nil {
			pred[n] = k
		}
	}
	return lossSum, correct
}

// metricsOf sums the chunks' tallies of one data set in chunk order,
// however the chunks were shared out (so the bits do not depend on it):
//
//	loss = Σ_c lossSum_c / N,   cost = loss + λ·Σ‖W‖²,   accuracy = Σ_c correct_c / N
func (net *MLP) metricsOf(lossSums []float64, corrects []int, n int, lambda float64) Metrics {
	var lossSum float64
	correct := 0
	for c := range lossSums {
		lossSum += lossSums[c]
		correct += corrects[c]
	}
	loss := lossSum / float64(n)
	return Metrics{
		Loss:     loss,
		Cost:     loss + float64(lambda*net.RegTerm()),
		Accuracy: float64(correct) / float64(n),
	}
}

// Probabilities returns softmax(scores) for every image of d, as a new N×C
// matrix.
func (net *MLP) Probabilities(ws *Workspace, d *Dataset) *Matrix {
	out := NewMatrix(d.Len(), net.Sizes[len(net.Sizes)-1])
	net.forEachChunk(ws, d, func(_, from, to int, s *Matrix) {
		softmaxForward(s, out.RowsView(from, to))
	})
	return out
}

// forEachChunk runs the images of d through the net in chunks of ws.maxN
// (chunk c holds images c·maxN … to−1) and calls fn with each chunk's
// scores s (rows from … to−1 of d). The chunks are shared out over the
// engine's workers, each worker taking the next chunk nobody has taken
// (the 23 chunks of 45,000 images split 12 : 11 and 5,000 images' 3 split
// 2 : 1 when handed out in turn, and a worker slowed by the machine falls
// behind), each with its own workspace and serial engine: a chunk is a large product on its own,
// and workers that never wait for each other between the first layer's
// product, the small top layer and the softmax keep both cores busy (AMD
// Zen 4, 45,000 images: 71 GFLOP/s against 64 for each product split over
// two workers). fn runs concurrently for different chunks, so it must
// write only what belongs to its chunk. The chunks, and each chunk's
// arithmetic, do not depend on the number of workers: neither do the bits.
func (net *MLP) forEachChunk(ws *Workspace, d *Dataset, fn func(c, from, to int, s *Matrix)) {
	chunks := (d.Len() + ws.maxN - 1) / ws.maxN
	workers := min(ws.gemm.Workers(), chunks)
	if workers <= 1 {
		for c := range chunks {
			from, to := c*ws.maxN, min((c+1)*ws.maxN, d.Len())
			fn(c, from, to, net.forwardImages(ws, d, from, to))
		}
		return
	}
	for len(ws.perWorker) < ws.gemm.Workers() {
		ws.perWorker = append(ws.perWorker, newForwardWorkspace(net, ws.gemm.Serial(), ws.maxN))
	}
	var next atomic.Int64 // chunks handed out
	ws.gemm.EachWorker(func(w int) {
		if w >= workers {
			return
		}
		sub := ws.perWorker[w]
		for c := int(next.Add(1)) - 1; c < chunks; c = int(next.Add(1)) - 1 {
			from, to := c*ws.maxN, min((c+1)*ws.maxN, d.Len())
			fn(c, from, to, net.forwardImages(sub, d, from, to))
		}
	})
}

// argmax returns the index of the largest element (the first on ties).
func argmax(v []float64) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

// finite reports whether v is a real number: the divergence guard of
// training (a NaN or ±Inf cost stops it) and of the figures it reports.
func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// EnsembleProbabilities is the ensemble's prediction for d's images: the
// mean of the members' softmax outputs, (1/K)·Σ_k softmax(s_k) (N×C).
func EnsembleProbabilities(nets []*MLP, gemm *Gemm, d *Dataset) *Matrix {
	return meanProbabilities(nets, gemm, []*Dataset{d})
}

// meanProbabilities is the mean of the softmax outputs of every net on
// every view of the same images (views[v] holds image n, transformed, in
// row n; see ttaViews), (1/(K·V))·Σ_k Σ_v softmax(s_kv), N×C, summed net by
// net and view by view in order.
func meanProbabilities(nets []*MLP, gemm *Gemm, views []*Dataset) *Matrix {
	var sum *Matrix
	var ws *Workspace // shared by members of one shape (snapshots are)
	for i, net := range nets {
		if i == 0 || !slices.Equal(net.Sizes, nets[i-1].Sizes) {
			ws = newForwardWorkspace(net, gemm, min(max(views[0].Len(), 1), evalChunk))
		}
		for _, d := range views {
			p := net.Probabilities(ws, d)
			if sum == nil {
				sum = p
				continue
			}
			for i, v := range p.Data {
				sum.Data[i] += v
			}
		}
	}
	inv := 1 / float64(len(nets)*len(views))
	for i := range sum.Data {
		sum.Data[i] *= inv
	}
	return sum
}

// Assessment is how a net (or an ensemble) does on a labelled set.
type Assessment struct {
	Pred      []int   // each sample's arg-max class (N)
	Accuracy  float64 // fraction of Pred equal to the labels
	Loss      float64 // mean cross-entropy; NaN for an ensemble of several nets
	Confusion [][]int // C×C counts: row = true class, column = predicted
}

// Assess evaluates one net, or the ensemble of several (softmax outputs
// averaged, see EnsembleProbabilities), on every image of d: what -mode=eval
// prints and the report's confusion matrix shows.
func Assess(nets []*MLP, gemm *Gemm, d *Dataset) Assessment {
	return AssessViews(nets, gemm, []*Dataset{d})
}

// AssessViews is Assess on the mean prediction over several views of the
// images (test-time augmentation: the images and their mirrors, ttaViews);
// the labels are views[0].Y.
func AssessViews(nets []*MLP, gemm *Gemm, views []*Dataset) Assessment {
	d := views[0]
	c := nets[0].Sizes[len(nets[0].Sizes)-1]
	a := Assessment{Pred: make([]int, d.Len()), Loss: math.NaN()}
	if len(nets) == 1 && len(views) == 1 {
		met := nets[0].Evaluate(newForwardWorkspace(nets[0], gemm, evalChunk), d, 0, a.Pred)
		a.Loss = met.Loss
	} else {
		probs := meanProbabilities(nets, gemm, views)
		for n := range a.Pred {
			a.Pred[n] = argmax(probs.Row(n))
		}
	}
	a.Accuracy = accuracyOf(a.Pred, d.Y)
	a.Confusion = confusion(c, d.Y, a.Pred)
	return a
}

// accuracyOf is the fraction of predictions that equal the labels.
func accuracyOf(pred, y []int) float64 {
	correct := 0
	for n, label := range y {
		if pred[n] == label {
			correct++
		}
	}
	return float64(correct) / float64(len(y))
}

// confusion counts (true class, predicted class) pairs of c classes.
func confusion(c int, y, pred []int) [][]int {
	conf := make([][]int, c)
	for i := range conf {
		conf[i] = make([]int, c)
	}
	for i, p := range pred {
		conf[y[i]][p]++
	}
	return conf
}
