package main

// train.go: training a net and keeping what it learned, in the order a run
// uses them:
//
//   - the learning-rate schedule (cyclical, Smith 2015);
//   - Train and the trainer: mini-batch gradient descent, one named step
//     after another;
//   - checkpoints: the state of a stopped run, its writer and its file;
//   - the learning-rate range test;
//   - the run folder: TrainAndSave and summary.json;
//   - files: written together, the learning curves, the model (.npz).
//
// Nothing here reads flags: main.go turns them into a TrainOptions and a
// RunSpec.

import (
	"archive/zip"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ---------------------------------------------------------------------------
// The learning-rate schedule.

// Schedule is the learning rate η_t of every step t, and the run's length.
// The default is the triangular cyclical schedule of Smith (2015) used by
// the assignment: over each cycle of 2·n_s steps, η climbs linearly from
// η_min to η_max in n_s steps and falls back in the next n_s.
//
//	t' = t mod 2n_s
//	η_t = η_min + (t'/n_s)·(η_max − η_min)          for 0 ≤ t' < n_s
//	η_t = η_max − ((t'−n_s)/n_s)·(η_max − η_min)     for n_s ≤ t' < 2n_s
//
// A run lasts 2·n_s·cycles steps, or Epochs·⌊n/batch⌋ when Epochs > 0; Eta
// > 0 replaces the cycles by a constant rate.
type Schedule struct {
	EtaMin, EtaMax float64 // the cyclical range
	Eta            float64 // > 0: constant η instead of the cycles
	NS, Cycles     int     // n_s, steps per half cycle; the number of cycles
	Epochs         int     // > 0: train this many epochs instead of the cycles
}

// At is the learning rate of step t (counted from 0).
func (s Schedule) At(t int) float64 {
	if s.Eta > 0 {
		return s.Eta
	}
	return cyclicalEta(t, s.NS, s.EtaMin, s.EtaMax)
}

// Steps is the length of the run on n training images in batches of batch.
func (s Schedule) Steps(n, batch int) int {
	if s.Epochs > 0 {
		return s.Epochs * (n / batch)
	}
	return 2 * s.NS * s.Cycles
}

// Cyclical reports whether the run is made of whole learning-rate cycles
// (no constant η, no epoch count), which the snapshot ensemble needs.
func (s Schedule) Cyclical() bool { return s.Eta == 0 && s.Epochs == 0 }

// cyclicalEta is Schedule's formula for step t.
func cyclicalEta(t, ns int, etaMin, etaMax float64) float64 {
	tc := t % (2 * ns)
	if tc < ns {
		return etaMin + float64(float64(tc)/float64(ns)*(etaMax-etaMin))
	}
	return etaMax - float64(float64(tc-ns)/float64(ns)*(etaMax-etaMin))
}

// ---------------------------------------------------------------------------
// Train and the trainer.

// TrainOptions are the settings of one training run, after the net is built.
type TrainOptions struct {
	Schedule
	Batch     int
	Lambda    float64 // λ of the cost's L2 term
	Smooth    float64 // label smoothing ε of the training loss (0: none)
	Opt       string  // one of Optimizers
	Momentum  float64 // μ of momentum and nesterov
	Dropout   float64 // inverted dropout on hidden units, 0 ≤ p < 1
	Augment   bool    // random flips and ±3 px shifts of every batch
	Ensemble  bool    // keep a copy of the net at the end of each cycle
	EMA       float64 // β of the weights' exponential moving average (0: none), see averageWeights
	Evals     int     // evaluations per cycle (one per epoch with Epochs)
	Seed      uint64  // the shuffle, dropout and augment streams
	EvalTrain bool    // evaluate the training set at every evaluation (false: at the end only)
	// Test (nil: none) is also evaluated at every evaluation, for the time
	// to accuracy only: nothing is chosen from it. Clock is when the run
	// started (the zero of HistoryRow.Seconds; the zero time: Train's start).
	Test  *Dataset
	Clock time.Time
	Limit int // > 0: stop after this many steps (the range test)

	// Checkpoint (nil: none) receives the run's state after every
	// evaluation and when it is interrupted; Resume (nil: a fresh start)
	// continues from one, on the net it holds, as if the run had never
	// stopped: the same steps give the same bits.
	Checkpoint func(*Checkpoint) error
	Resume     *Checkpoint
}

// HistoryRow is one evaluation during training.
type HistoryRow struct {
	Step  int
	Epoch float64
	Eta   float64
	Train Metrics
	Val   Metrics
	Test  Metrics // NaN without TrainOptions.Test
	// Seconds is the wall time from TrainOptions.Clock to this evaluation,
	// less the time spent in evaluations (they only watch the run): the
	// time it took to train the net evaluated here.
	Seconds float64
}

// TrainResult is what Train returns.
type TrainResult struct {
	History     []HistoryRow
	Steps       int     // steps done
	EvalSeconds float64 // wall time the steps waited for evaluations (the rest is updates; see evalQueue)
	Interrupted bool    // stopped early by an interrupt
	// Snapshots are copies of the net at the end of each learning-rate
	// cycle, taken with Ensemble (Huang et al. 2017).
	Snapshots []*MLP
	// Averaged is the moving average of the weights (EMA; nil without).
	Averaged *MLP
}

// DivergedError is Train's error when the cost became NaN or ±Inf or
// exploded (see exploded); main adds the advice, which names flags.
type DivergedError struct {
	Step int     // the step (from 1) after which it was seen
	Eta  float64 // that step's learning rate (0: not known here)
	What string  // the cost that was seen, in words
	Hint string  // why the step may be larger than η ("": nothing to add)
}

func (e *DivergedError) Error() string {
	eta := ""
	if e.Eta > 0 {
		eta = fmt.Sprintf(" (η=%.3g)", e.Eta)
	}
	return fmt.Sprintf("training diverged at step %d%s: %s%s", e.Step, eta, e.What, e.Hint)
}

// diverged reports whether err is (or wraps) a DivergedError.
func diverged(err error) bool {
	var de *DivergedError
	return errors.As(err, &de)
}

// Train runs mini-batch gradient descent on train, one step t at a time:
//
//	pace → batch → forward → backward → check → step → snapshot → evaluate → print
//
// The training order is reshuffled every epoch; train and val are
// evaluated at evenly spaced steps (o.Evals per cycle, and at the end),
// on two or more workers beside the steps (evalQueue; pace gives the
// steps their share of the workers).
// Progress goes to progress (nil: none). When ctx is cancelled (a signal)
// the run ends after the current step, evaluated, with Interrupted set.
func Train(ctx context.Context, net *MLP, gemm *Gemm, train, val *Dataset, o TrainOptions, progress io.Writer) (*TrainResult, error) {
	tr, err := newTrainer(net, gemm, train, val, o, progress)
	if err != nil {
		return &TrainResult{}, err
	}
	defer tr.stop()
	if tr.res.Steps == 0 && tr.total > 0 {
		// Step 0: the untrained net, so the curves start where training does.
		if err := tr.evaluate(-1, o.At(0), false, true); err != nil {
			return tr.res, err
		}
	}
	for t := tr.res.Steps; t < tr.total; t++ {
		if err := tr.pace(); err != nil {
			return tr.res, err
		}
		tr.loadBatch(t)
		eta := o.At(t)
		if err := tr.step(t, eta); err != nil {
			return tr.res, err
		}
		tr.snapshot(t)
		interrupted := ctx.Err() != nil
		if interrupted && progress != nil {
			if tr.tty {
				fmt.Fprintln(progress)
			}
			fmt.Fprintf(progress, "stopping after step %d: evaluating the net and writing its outputs\n", t+1)
		}
		if scheduled := (t+1)%tr.evalEvery == 0 || t+1 == tr.total; scheduled || interrupted {
			if err := tr.evaluate(t, eta, t+1 == tr.total || interrupted, scheduled); err != nil {
				return tr.res, err
			}
		}
		tr.print(t, eta)
		if interrupted {
			tr.res.Interrupted = true
			break
		}
	}
	return tr.res, nil
}

// trainer is Train's state between steps.
type trainer struct {
	net        *MLP
	gemm       *Gemm
	train, val *Dataset
	o          TrainOptions
	ws         *Workspace
	opt        *Optimizer
	progress   io.Writer

	total, perEpoch, evalEvery int
	evals                      *evalQueue // the evaluations not finished, run beside the steps
	stepWorkers                int        // the engine's workers a step uses while evaluations run
	// The batch: images idx[i], labels yb[i], moved by shifts[i] with
	// Augment; perm is the epoch's order of the training images. Images
	// stored as bytes and not moved are read where they lie (bytes: the
	// rows idx of the set), by the step's products, which normalise them
	// as they read them (ForwardPixelsDropout); the others are normalised
	// (and moved) into the floats xb.
	xb                          *Matrix
	bytes                       bool
	fill                        func(lo, hi int) // tr.fillRows, bound once: no allocation per step
	yb, idx, perm               []int
	next                        []int // xb's: the next batch's images (−1: not known yet), fetched into cache while this batch is filled
	shifts                      []imageShift
	shuffleRNG, dropRNG, augRNG *rand.Rand
	pcgs                        map[string]*rand.PCG // their sources, by name, for checkpoints

	res              *TrainResult
	start, lastPrint time.Time
	clock            time.Time // HistoryRow.Seconds counts from here (less evalTime)
	// EMA: (average, net) arrays in parameter order, their total length,
	// and averageRange bound once (no allocation per step)
	averaged    [][2][]float64
	averagedLen int
	average     func(lo, hi int)
	evalTime    float64 // seconds this session spent evaluating
	tty         bool    // progress is a terminal
	evalCost    float64 // estimated seconds per evaluation (probeEvalCost)
}

func newTrainer(net *MLP, gemm *Gemm, train, val *Dataset, o TrainOptions, progress io.Writer) (*trainer, error) {
	n := train.Len()
	if o.Batch <= 0 || o.Batch > n {
		panic(fmt.Sprintf("mlp: Train: batch %d for %d training images", o.Batch, n))
	}
	if o.Augment && train.Dim() != inputDim {
		panic(fmt.Sprintf("mlp: Train: augmentation needs 32×32 colour images (%d values), the data has %d", inputDim, train.Dim()))
	}
	tr := &trainer{net: net, gemm: gemm, train: train, val: val, o: o, progress: progress,
		total: o.Steps(n, o.Batch), perEpoch: n / o.Batch,
		res: &TrainResult{}, start: time.Now()}
	tr.pcgs = map[string]*rand.PCG{"shuffle": rand.NewPCG(o.Seed, streamShuffle), "dropout": rand.NewPCG(o.Seed, streamDropout), "augment": rand.NewPCG(o.Seed, streamAugment)}
	tr.shuffleRNG, tr.dropRNG, tr.augRNG = rand.New(tr.pcgs["shuffle"]), rand.New(tr.pcgs["dropout"]), rand.New(tr.pcgs["augment"])
	if o.Limit > 0 && o.Limit < tr.total {
		tr.total = o.Limit
	}
	tr.evalEvery = max(1, 2*o.NS/max(1, o.Evals))
	if o.Epochs > 0 {
		tr.evalEvery = tr.perEpoch // once per epoch
	}
	tr.ws = NewWorkspace(net, gemm, o.Batch)
	tr.opt = NewOptimizer(o.Opt, o.Momentum, net, tr.ws)
	if train.Pix != nil && !o.Augment {
		tr.bytes = true
	} else {
		tr.xb = NewMatrix(o.Batch, net.InputDim())
		tr.fill, tr.next = tr.fillRows, make([]int, o.Batch)
	}
	tr.yb, tr.idx = make([]int, o.Batch), make([]int, o.Batch)
	if o.Augment {
		tr.shifts = make([]imageShift, o.Batch)
	}
	tr.perm = make([]int, n)
	for i := range tr.perm {
		tr.perm[i] = i
	}
	if o.EMA > 0 {
		tr.res.Averaged = net.Clone() // restore replaces it with the checkpoint's
	}
	if cp := o.Resume; cp != nil {
		if err := tr.restore(cp); err != nil {
			return nil, err
		}
	}
	if progress != nil {
		tr.tty = isTerminal(progress)
		tr.evalCost = tr.probeEvalCost()
	}
	// The split counts the workers that can run at once: more than
	// GOMAXPROCS (-workers 4 on 2 cores) would only take turns.
	w := min(gemm.Workers(), runtime.GOMAXPROCS(0))
	tr.stepWorkers = w // evaluations at once, on all the workers
	if float64(o.Batch)*flopsPerImage(net, true) <= besideMaxFlops {
		tr.stepWorkers = (w + 1) / 2
	}
	// Evaluations go in chunks of evalChunk images, or of a batch if that
	// is larger (the chunks fix the order the loss is summed in).
	tr.evals = newEvalQueue(net, gemm, max(o.Batch, evalChunk), w-1, w-tr.stepWorkers, tr.finishEval)
	tr.lastPrint = tr.start
	tr.clock = o.Clock
	if tr.clock.IsZero() {
		tr.clock = tr.start
	}
	if h := tr.res.History; len(h) > 0 { // resumed: count on from the last evaluation
		tr.clock = tr.start.Add(-time.Duration(h[len(h)-1].Seconds * float64(time.Second)))
	}
	return tr, nil
}

// loadBatch picks batch t of the epoch (reshuffling at the start of each
// epoch): its images idx and labels yb, and, for a float batch, the rows
// of xb, filled over the GEMM's workers after the shifts are drawn in
// order. A batch of bytes is read where it lies (step).
func (tr *trainer) loadBatch(t int) {
	b := t % tr.perEpoch
	if b == 0 {
		tr.shuffleRNG.Shuffle(len(tr.perm), func(i, j int) { tr.perm[i], tr.perm[j] = tr.perm[j], tr.perm[i] })
	}
	for i := range tr.idx {
		tr.idx[i] = tr.perm[b*tr.o.Batch+i]
		tr.yb[i] = tr.train.Y[tr.idx[i]]
		if tr.shifts != nil {
			tr.shifts[i] = drawShift(tr.augRNG)
		}
		if tr.next == nil {
			continue
		}
		tr.next[i] = -1 // unknown until the next epoch's shuffle
		if b+1 < tr.perEpoch {
			tr.next[i] = tr.perm[(b+1)*tr.o.Batch+i]
		}
	}
	if tr.bytes {
		return
	}
	tr.gemm.ParallelFor(len(tr.xb.Data), tr.fill)
}

// fillRows writes the rows of xb whose first element lies in [lo, hi).
func (tr *trainer) fillRows(lo, hi int) {
	end := firstRow(hi, tr.xb.Cols)
	for i := firstRow(lo, tr.xb.Cols); i < end; i++ {
		if tr.shifts != nil {
			transformRow(tr.xb.Row(i), tr.train, tr.idx[i], tr.shifts[i])
		} else {
			tr.train.RowThen(tr.xb.Row(i), tr.idx[i], tr.next[i])
		}
	}
}

// step is forward, backward, the divergence check and the update.
func (tr *trainer) step(t int, eta float64) error {
	if tr.bytes {
		x := Images{Pix: tr.train.Pix, Rows: tr.idx, K: tr.train.Dim()}
		tr.net.ForwardPixelsDropout(tr.ws, x, tr.train.Norm, tr.o.Dropout, tr.dropRNG)
	} else {
		tr.net.ForwardDropout(tr.ws, tr.xb, tr.o.Dropout, tr.dropRNG)
	}
	if tr.opt.Kind == "sgd" {
		tr.ws.SGDEta = eta // the weights' steps inside dW's products (same bits)
	}
	loss := tr.net.BackwardSmoothed(tr.ws, tr.yb, tr.o.Lambda, tr.o.Smooth)
	if !finite(loss) {
		return &DivergedError{Step: t + 1, Eta: eta, What: fmt.Sprintf("the batch loss is %v", loss)}
	}
	tr.opt.Step(eta)
	if tr.res.Averaged != nil {
		tr.averageWeights()
	}
	tr.res.Steps = t + 1
	return nil
}

// averageWeights updates the exponential moving average of the weights
// after a step (Polyak & Juditsky 1992; as in the EMA of modern trainers):
//
//	θ̄ ← β·θ̄ + (1−β)·θ      for every W and b;  θ̄ starts as the initial net
//
// θ̄ follows the weights over the last ~1/(1−β) steps, which smooths out
// the noise of the last steps of SGD. It is element-wise, cut over the
// workers like the optimiser's update.
func (tr *trainer) averageWeights() {
	if tr.averaged == nil { // the first step: pair the average's arrays with the net's
		avg, total := tr.res.Averaged, 0
		for l := range tr.net.W {
			tr.averaged = append(tr.averaged, [2][]float64{avg.W[l].Data, tr.net.W[l].Data}, [2][]float64{avg.B[l].Data, tr.net.B[l].Data})
			total += len(avg.W[l].Data) + len(avg.B[l].Data)
		}
		tr.averagedLen, tr.average = total, tr.averageRange
	}
	tr.gemm.ParallelFor(tr.averagedLen, tr.average)
}

// averageRange is averageWeights on elements [lo, hi) of the parameters
// counted through W1, b1, W2, b2, … in order.
func (tr *trainer) averageRange(lo, hi int) {
	beta, off := tr.o.EMA, 0
	for _, pair := range tr.averaged {
		a, th := pair[0], pair[1]
		for i := max(lo-off, 0); i < min(hi-off, len(a)); i++ {
			a[i] = float64(beta*a[i]) + float64((1-beta)*th[i])
		}
		off += len(a)
	}
}

// snapshot keeps a copy of the net at the end of each cycle (Ensemble).
func (tr *trainer) snapshot(t int) {
	if tr.o.Ensemble && tr.o.Cyclical() && (t+1)%(2*tr.o.NS) == 0 {
		tr.res.Snapshots = append(tr.res.Snapshots, tr.net.Clone())
	}
}

// evaluate queues the evaluation of the net after step t (t = −1: before
// the first step; final: the training set too), with the checkpoint its row
// completes, and lets the steps go on: it helps with the queue's chunks
// only while more than evalBacklog evaluations are unfinished, and at the
// end of the run (or when it stops) until all are. The row's Seconds is
// the run's time so far less the time its steps waited for evaluations.
// It returns the error of an evaluation that failed (the run diverged).
func (tr *trainer) evaluate(t int, eta float64, final, scheduled bool) error {
	start := time.Now()
	nan := Metrics{math.NaN(), math.NaN(), math.NaN()}
	j := &evalJob{row: HistoryRow{Step: t + 1, Epoch: float64(t+1) / float64(tr.perEpoch), Eta: eta,
		Train: nan, Val: nan, Test: nan, Seconds: start.Sub(tr.clock).Seconds() - tr.evalTime},
		evalTrain: tr.o.EvalTrain || final, offSchedule: !scheduled}
	switch {
	case tr.o.Checkpoint != nil && t >= 0 && t+1 < tr.total:
		j.cp = tr.checkpoint()
		j.net = j.cp.Net // read only, by the checkpoint's writer too
	case tr.evals.stepping == 0:
		j.net = tr.net // evaluated at once, before the next step changes it
	default:
		j.net, j.pooled = tr.evals.copyOf(tr.net), true
	}
	if j.evalTrain {
		j.add(tr.train, &j.row.Train, tr.evals.maxN)
	}
	if tr.val != nil && tr.val.Len() > 0 {
		j.add(tr.val, &j.row.Val, tr.evals.maxN)
	}
	if tr.o.Test != nil && tr.o.Test.Len() > 0 {
		j.add(tr.o.Test, &j.row.Test, tr.evals.maxN)
	}
	backlog := evalBacklog
	if final {
		backlog = 0
	}
	err := tr.evals.push(j, backlog)
	spent := time.Since(start).Seconds()
	tr.res.EvalSeconds += spent
	tr.evalTime += spent
	return err
}

// finishEval completes an evaluation whose chunks are all in (called in
// step order, under the queue's lock, by whichever goroutine finished the
// last chunk): the row's figures, the history, the divergence checks, and
// the checkpoint.
func (tr *trainer) finishEval(j *evalJob) error {
	for _, s := range j.sets {
		*s.into = j.net.metricsOf(s.lossSums, s.corrects, s.d.Len(), tr.o.Lambda)
	}
	row := j.row
	tr.res.History = append(tr.res.History, row)
	if j.evalTrain && !finite(row.Train.Cost) {
		return &DivergedError{Step: row.Step, What: fmt.Sprintf("the training cost is %v", row.Train.Cost)}
	}
	if err := tr.exploded(row.Step-1, row); err != nil {
		return err
	}
	if j.cp == nil {
		return nil
	}
	history := tr.res.History
	if j.offSchedule {
		// The evaluation made because the run was stopped between two of
		// its evaluations is this session's, not the run's: the resumed run
		// writes the uninterrupted run's history.csv.
		history = history[:len(history)-1]
	}
	j.cp.History = slices.Clone(history)
	return tr.o.Checkpoint(j.cp)
}

// pace gives the next step the engine's workers that the evaluations
// beside it leave (all of them when none is unfinished), and returns the
// error of an evaluation that failed.
func (tr *trainer) pace() error {
	busy, err := tr.evals.busy()
	if busy {
		tr.gemm.Limit(tr.stepWorkers)
	} else {
		tr.gemm.Limit(0)
	}
	return err
}

// stop ends the evaluations' goroutines (what is still queued was dropped
// by an error) and gives the engine its workers back.
func (tr *trainer) stop() {
	tr.evals.close()
	tr.gemm.Limit(0)
}

// explodeFactor: a cost that grows to this many times its value at the
// first evaluation has diverged, even while it is finite. Momentum with
// the plain-SGD η range (μ = 0.9 makes each step about 10·η) reaches
// costs of 1e12 at 10–28 % accuracy; a run that learns stays within a few
// times its starting cost (ln 10 + λ·Σ‖W‖² ≈ 2.3–3 for the seed's net).
const explodeFactor = 100

// exploded is the divergence error when row's training or validation
// cost exceeds explodeFactor times the first evaluation's, nil otherwise.
func (tr *trainer) exploded(t int, row HistoryRow) error {
	first := tr.res.History[0] // restore refuses a checkpoint without the first evaluation
	for _, c := range [][2]float64{{first.Train.Cost, row.Train.Cost}, {first.Val.Cost, row.Val.Cost}} {
		if !finite(c[0]) || !finite(c[1]) || c[0] <= 0 || c[1] <= explodeFactor*c[0] {
			continue
		}
		hint := ""
		if tr.o.Opt == "momentum" || tr.o.Opt == "nesterov" {
			hint = fmt.Sprintf(" (with %s each step is about η/(1−μ) = %.3g·η)", tr.o.Opt, 1/(1-tr.o.Momentum))
		}
		return &DivergedError{Step: t + 1, What: fmt.Sprintf("the cost grew from %.4g to %.4g", c[0], c[1]), Hint: hint}
	}
	return nil
}

// print shows progress: on a terminal one line updated in place (at most 5
// times a second), elsewhere a plain line at most every 10 s; always the
// first and the last step. The time left counts the remaining updates at the measured
// step rate and the remaining evaluations at their measured cost (before
// the first one, at the cost of the probe chunk timed at the start).
func (tr *trainer) print(t int, eta float64) {
	last := t+1 == tr.total
	every := 10 * time.Second
	if tr.tty {
		every = 200 * time.Millisecond
	}
	if tr.progress == nil || (time.Since(tr.lastPrint) < every && !last && t > 0) {
		return
	}
	tr.lastPrint = time.Now()
	msg := fmt.Sprintf("step %d/%d epoch %.1f η=%.3g", t+1, tr.total, float64(t+1)/float64(tr.perEpoch), eta)
	latest, evaluated := tr.evals.lastRow(&tr.res.History)
	if evaluated > 0 {
		m := latest
		if finite(m.Train.Cost) {
			msg += fmt.Sprintf(" | train cost %.4g acc %.1f%%", m.Train.Cost, 100*m.Train.Accuracy)
		}
		if finite(m.Val.Cost) {
			msg += fmt.Sprintf(" | val cost %.4g acc %.1f%%", m.Val.Cost, 100*m.Val.Accuracy)
		}
	}
	elapsed := time.Since(tr.start)
	updates := elapsed.Seconds() - tr.res.EvalSeconds
	left := float64(tr.total-t-1) * updates / float64(t+1)
	evals := tr.evalsAfter(t)
	if n := evaluated; n > 0 {
		left += float64(evals) * tr.res.EvalSeconds / float64(n)
	} else {
		left += float64(float64(evals) * tr.evalCost)
	}
	msg += " | " + fmtDuration(elapsed) + " elapsed"
	if t > 0 { // the first step includes start-up costs: no estimate from it
		msg += ", " + fmtDuration(time.Duration(left*float64(time.Second))) + " left"
	}
	if tr.tty {
		fmt.Fprintf(tr.progress, "\r%s\x1b[K", msg) // \x1b[K clears the rest of the line
		if last {
			fmt.Fprintln(tr.progress)
		}
		return
	}
	fmt.Fprintln(tr.progress, msg)
}

// evalsAfter is the number of evaluations still to come after step t.
func (tr *trainer) evalsAfter(t int) int {
	n := tr.total/tr.evalEvery - (t+1)/tr.evalEvery
	if tr.total%tr.evalEvery != 0 && t+1 < tr.total {
		n++ // the one at the end
	}
	return n
}

// probeEvalCost times one chunk of evaluation (the forward pass of up to
// evalChunk validation or training images) and returns the estimated cost
// of one evaluation, in seconds, for the progress line's time left.
func (tr *trainer) probeEvalCost() float64 {
	d := tr.val
	if d == nil || d.Len() == 0 {
		d = tr.train
	}
	n := min(d.Len(), evalChunk)
	ws := newForwardWorkspace(tr.net, tr.gemm, n) // the step's workspace holds a batch
	start := time.Now()
	tr.net.forwardImages(ws, d, 0, n)
	perImage := time.Since(start).Seconds() / float64(n)
	images := 0
	if tr.val != nil {
		images += tr.val.Len()
	}
	if tr.o.EvalTrain {
		images += tr.train.Len()
	}
	return perImage * float64(images)
}

// ---------------------------------------------------------------------------
// Evaluations beside the steps.
//
// An evaluation reads a copy of the net as it was after its step and
// writes nothing a step reads, so the steps need not wait for it. On W ≥ 2
// workers, for a net with small steps (the seed's), the trainer queues each evaluation (the copy, and the chunks of
// images to run through it) and steps on with ⌈W/2⌉ workers while W − ⌈W/2⌉
// goroutines of the queue evaluate its chunks, each with a serial engine
// of its own; when nothing is left to evaluate, the steps take all W
// workers again. This pays because the two kinds of work split unequally:
// a step of the seed's net is a chain of small products, 1.6× faster on
// two workers than on one, while an evaluation is independent chunks,
// 1.9× faster (Intel Xeon of the README: updates 8.3 → 5.2 s, evaluations
// 8.0 → 4.3 s for the default run); side by side, each on one core, the
// whole run takes about the larger of the two one-core times.
//
// The queue holds at most evalBacklog unfinished evaluations while the
// steps go on: a run whose evaluations cost more than its steps then has
// its trainer evaluate chunks too (the steps wait, as they used to), and
// never piles up copies of the net. At the end of the run, or when it
// stops, the trainer helps until every evaluation is finished. With one
// worker, or a net whose steps split well themselves (besideMaxFlops), no
// goroutine evaluates beside the steps: the trainer and the W − 1
// goroutines evaluate each evaluation at once, all W workers on its
// chunks, as before.
//
// The bits: each chunk's tally goes to its own slot, an evaluation's
// figures are summed in chunk order (metricsOf, as Evaluate), and
// evaluations finish in step order, so history, checkpoints and the
// divergence checks are those of evaluating in place. A diverged
// evaluation is seen up to evalBacklog evaluations late: the steps after
// it are wasted, and the error names its step as before.

// evalBacklog is how many evaluations may be unfinished while the steps go
// on: one being evaluated and one waiting, so that the queue never runs
// dry between two evaluations of a balanced run.
//
// besideMaxFlops: evaluations go beside the steps only for nets whose step
// (forward and backward of a batch, flopsPerImage) costs at most this
// much. Larger steps split over the workers about as well as evaluations
// do, and then the shuffling of workers only costs. Measured on the 2-core
// Intel Xeon of the README: the seed's net (92 MFLOP a step) 10.99 /
// 11.15 / 10.87 → 9.65 / 9.72 / 9.53 s; -preset fast (850 MFLOP a step,
// two layers of 1000) 86.1 → 90.8 s. Nothing between was measured.
const (
	evalBacklog    = 2
	besideMaxFlops = 200e6
)

// evalJob is one queued evaluation: the row it fills, the net it reads, and
// its chunks, handed out in order (next) and counted in (left).
type evalJob struct {
	row         HistoryRow
	net         *MLP
	evalTrain   bool        // the training set is evaluated (else its figures stay NaN)
	offSchedule bool        // made because the run stopped between two evaluations
	cp          *Checkpoint // completed with the history and handed to Checkpoint (nil: none)
	pooled      bool        // net is the queue's copy, returned to it when the job is done
	sets        []*evalSet
	parts       []evalPart
	next, left  int
}

// evalSet is one data set of an evaluation: where its figures go, and
// its chunks' tallies (chunkTally), chunk c of maxN images in slot c.
type evalSet struct {
	d        *Dataset
	into     *Metrics
	maxN     int
	lossSums []float64
	corrects []int
}

// evalPart is one chunk of one set.
type evalPart struct {
	set   *evalSet
	chunk int
}

// add makes d, in chunks of maxN images, part of the evaluation; its
// figures go to into.
func (j *evalJob) add(d *Dataset, into *Metrics, maxN int) {
	chunks := (d.Len() + maxN - 1) / maxN
	s := &evalSet{d: d, into: into, maxN: maxN, lossSums: make([]float64, chunks), corrects: make([]int, chunks)}
	j.sets = append(j.sets, s)
	for c := range chunks {
		j.parts = append(j.parts, evalPart{s, c})
	}
	j.left += chunks
}

// run evaluates one chunk with the workspace ws (its own engine).
func (j *evalJob) run(ws *Workspace, p evalPart) {
	s := p.set
	from, to := p.chunk*s.maxN, min((p.chunk+1)*s.maxN, s.d.Len())
	scores := j.net.forwardImages(ws, s.d, from, to)
	s.lossSums[p.chunk], s.corrects[p.chunk] = chunkTally(scores, s.d.Y[from:to], nil)
}

// evalQueue is the trainer's queue of evaluations and the goroutines that
// work through it. Everything in it is guarded by mu.
type evalQueue struct {
	mu       sync.Mutex
	wake     *sync.Cond // broadcast when a job is queued or a chunk finished, the helpers change, or the queue closes
	jobs     []*evalJob // the unfinished evaluations, in step order
	helpers  int        // how many of the goroutines may take chunks now
	stepping int        // helpers while the steps go on (the rest: all)
	size     int        // the goroutines
	closed   bool
	err      error                // the first failed evaluation's error: the rest are dropped
	finish   func(*evalJob) error // completes a job (finishEval)
	own      func() *Workspace    // the trainer's workspace for helping, made when first needed
	maxN     int                  // images a chunk
	spare    []*MLP               // copies of the net that finished jobs gave back (copyOf)
	wg       sync.WaitGroup
}

// newEvalQueue starts size goroutines (each with a serial engine of gemm's
// kernels and a workspace for chunks of maxN images of net's shape), of
// which `stepping` take chunks while the steps run beside them and all
// while the trainer helps; none when size < 1.
func newEvalQueue(net *MLP, gemm *Gemm, maxN, size, stepping int, finish func(*evalJob) error) *evalQueue {
	q := &evalQueue{finish: finish, size: max(0, size), maxN: maxN, own: sync.OnceValue(func() *Workspace {
		if gemm.size == 1 { // the trainer's own engine is serial, and idle while it helps
			return newForwardWorkspace(net, gemm, maxN)
		}
		return newForwardWorkspace(net, gemm.Serial(), maxN)
	})}
	q.wake = sync.NewCond(&q.mu)
	q.stepping = min(q.size, max(0, stepping))
	q.helpers = q.stepping
	for i := range q.size {
		ws := newForwardWorkspace(net, gemm.Serial(), maxN)
		q.wg.Go(func() { q.serve(i, ws) })
	}
	return q
}

// serve is goroutine i's loop: take a chunk when allowed, run it, count it in.
func (q *evalQueue) serve(i int, ws *Workspace) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for !q.closed {
		var j *evalJob
		var p evalPart
		if i < q.helpers {
			j, p = q.take()
		}
		if j == nil {
			q.wake.Wait()
			continue
		}
		q.mu.Unlock()
		j.run(ws, p)
		q.mu.Lock()
		q.done(j)
	}
}

// take hands out the next chunk nobody has taken, oldest evaluation first
// (nil when every chunk is taken).
func (q *evalQueue) take() (*evalJob, evalPart) {
	for _, j := range q.jobs {
		if j.next < len(j.parts) {
			j.next++
			return j, j.parts[j.next-1]
		}
	}
	return nil, evalPart{}
}

// done counts a finished chunk of j in and finishes, in step order, every
// evaluation at the head of the queue whose chunks are all in.
func (q *evalQueue) done(j *evalJob) {
	j.left--
	for len(q.jobs) > 0 && q.jobs[0].left == 0 {
		first := q.jobs[0]
		q.jobs = q.jobs[1:]
		if err := q.finish(first); err != nil {
			q.err, q.jobs = err, nil
		}
		if first.pooled {
			q.spare = append(q.spare, first.net)
		}
	}
	q.wake.Broadcast()
}

// push queues j (dropped after a failure) and, on the trainer's goroutine,
// evaluates chunks itself, with every goroutine of the queue allowed to,
// until at most backlog evaluations are unfinished (none when no
// goroutine evaluates beside the steps). It returns the first failed
// evaluation's error.
func (q *evalQueue) push(j *evalJob, backlog int) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err == nil {
		q.jobs = append(q.jobs, j)
	}
	if q.stepping == 0 { // nothing evaluates beside the steps: all of it now
		backlog = 0
	}
	q.helpers = q.size
	q.wake.Broadcast()
	for len(q.jobs) > backlog {
		j, p := q.take()
		if j == nil { // every chunk taken: wait for the goroutines' last ones
			q.wake.Wait()
			continue
		}
		q.mu.Unlock()
		j.run(q.own(), p)
		q.mu.Lock()
		q.done(j)
	}
	q.helpers = q.stepping
	return q.err
}

// copyOf returns a copy of net's parameters in a net a finished job gave
// back (a new one when none has): a run's evaluations then allocate no
// garbage, which would grow the heap towards twice the training set's
// bytes between collections.
func (q *evalQueue) copyOf(net *MLP) *MLP {
	q.mu.Lock()
	var c *MLP
	if n := len(q.spare); n > 0 {
		c, q.spare = q.spare[n-1], q.spare[:n-1]
	}
	q.mu.Unlock()
	if c == nil {
		return net.Clone()
	}
	for l := range net.W {
		copy(c.W[l].Data, net.W[l].Data)
		copy(c.B[l].Data, net.B[l].Data)
	}
	c.In = net.In
	return c
}

// busy reports whether an evaluation is unfinished, and the first failed
// evaluation's error.
func (q *evalQueue) busy() (bool, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.jobs) > 0, q.err
}

// lastRow is the last row of the history *h (which finished evaluations
// append to) and its length.
func (q *evalQueue) lastRow(h *[]HistoryRow) (HistoryRow, int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(*h) == 0 {
		return HistoryRow{}, 0
	}
	return (*h)[len(*h)-1], len(*h)
}

// close stops the goroutines once they have finished their chunks.
func (q *evalQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.wake.Broadcast()
	q.mu.Unlock()
	q.wg.Wait()
}

// ---------------------------------------------------------------------------
// Checkpoints: the state of a stopped run (Checkpoint), its capture and
// restore, the writer that saves it in the background, and its file.

// Checkpoint is a training run stopped after Step steps: everything Train
// needs to go on exactly as if it had not stopped.
type Checkpoint struct {
	Step        int               // steps done
	Net         *MLP              // the parameters after them
	OptSteps    int               // the optimiser's state (Optimizer.State)
	OptBuffers  [][]float64       //
	Perm        []int             // the epoch's order of the training images
	RNG         map[string][]byte // the PCG states of the shuffle, dropout and augment streams
	History     []HistoryRow      // the evaluations so far
	EvalSeconds float64           // their time
	Snapshots   []*MLP            // the ensemble's snapshots so far
	Averaged    *MLP              // the weights' moving average (EMA; nil without)
	Args        []string          // the command line that started the run (for -resume)
}

// checkpoint captures the trainer's state after res.Steps steps (copies:
// the run goes on); its History is the evaluation's to fill in (finishEval).
func (tr *trainer) checkpoint() *Checkpoint {
	cp := &Checkpoint{Step: tr.res.Steps, Net: tr.net.Clone(), Perm: slices.Clone(tr.perm), RNG: map[string][]byte{},
		EvalSeconds: tr.res.EvalSeconds, Snapshots: slices.Clone(tr.res.Snapshots)}
	if tr.res.Averaged != nil {
		cp.Averaged = tr.res.Averaged.Clone()
	}
	t, bufs := tr.opt.State()
	cp.OptSteps = t
	for _, b := range bufs {
		cp.OptBuffers = append(cp.OptBuffers, slices.Clone(b))
	}
	for name, pcg := range tr.pcgs {
		b, _ := pcg.MarshalBinary()
		cp.RNG[name] = b
	}
	return cp
}

// restore puts the trainer where the checkpoint stopped (the net itself is
// the caller's, built from cp.Net).
//
// A checkpoint comes from a file, so one that does not fit the run (a
// damaged or foreign file that passed ReadCheckpoint's checks) is an error
// naming what does not fit, never a panic.
func (tr *trainer) restore(cp *Checkpoint) error {
	if len(cp.Perm) != len(tr.perm) || cp.Step < 0 || cp.Step > tr.total || len(cp.History) == 0 {
		return fmt.Errorf("%w: step %d of an order of %d images with %d evaluations, for a run of %d steps over %d images",
			errCheckpointMismatch, cp.Step, len(cp.Perm), len(cp.History), tr.total, len(tr.perm))
	}
	seen := make([]bool, len(cp.Perm))
	for _, i := range cp.Perm {
		if i < 0 || i >= len(seen) || seen[i] {
			return fmt.Errorf("%w: the training order is not a permutation of the %d images (%d)", errCheckpointMismatch, len(seen), i)
		}
		seen[i] = true
	}
	copy(tr.perm, cp.Perm)
	for name, pcg := range tr.pcgs {
		if err := pcg.UnmarshalBinary(cp.RNG[name]); err != nil {
			return fmt.Errorf("%w: random-number state %q: %v", errCheckpointMismatch, name, err)
		}
	}
	if err := tr.opt.SetState(cp.OptSteps, cp.OptBuffers); err != nil {
		return fmt.Errorf("%w: %v", errCheckpointMismatch, err)
	}
	tr.res.Steps = cp.Step
	tr.res.History = slices.Clone(cp.History)
	tr.res.EvalSeconds = cp.EvalSeconds
	tr.res.Snapshots = slices.Clone(cp.Snapshots)
	if tr.o.EMA > 0 {
		if cp.Averaged == nil || !slices.Equal(cp.Averaged.Sizes, tr.net.Sizes) {
			return fmt.Errorf("%w: the run averages its weights, the checkpoint holds no average of this net", errCheckpointMismatch)
		}
		tr.res.Averaged = cp.Averaged.Clone()
		tr.res.Averaged.In = tr.net.In
	}
	return nil
}

// errCheckpointMismatch is wrapped by Train's error when its Resume
// checkpoint does not fit the run.
var errCheckpointMismatch = errors.New("the checkpoint does not fit this run")

// checkpointWriter writes checkpoints in the background, so that training
// does not wait for the disk: submit hands over a checkpoint (a copy of the
// state), replacing one still waiting; flush waits until the last one is
// written and returns the first error.
type checkpointWriter struct {
	path    string
	mu      sync.Mutex
	pending *Checkpoint
	busy    bool
	err     error
	wg      sync.WaitGroup
}

func (w *checkpointWriter) submit(cp *Checkpoint) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pending = cp
	if !w.busy {
		w.busy = true
		w.wg.Go(w.drain)
	}
	return w.err
}

// drain writes pending checkpoints until none is left.
func (w *checkpointWriter) drain() {
	for {
		w.mu.Lock()
		cp := w.pending
		w.pending = nil
		if cp == nil {
			w.busy = false
			w.mu.Unlock()
			return
		}
		w.mu.Unlock()
		if err := writeCheckpoint(w.path, cp); err != nil {
			w.mu.Lock()
			w.err = cmp.Or(w.err, err)
			w.mu.Unlock()
		}
	}
}

func (w *checkpointWriter) flush() error {
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// The checkpoint file: checkpoint.npz in the run's folder, written after
// every evaluation and when the run is interrupted, removed when it ends.
// A zip of .npy arrays (the net W1, b1, …; the optimiser's buffers opt-0,
// opt-1, …; the snapshots snap1-W1, …) and state.json (the step, the
// training order, the RNG states, the history, the command line).

// checkpointState is state.json.
type checkpointState struct {
	Step        int               `json:"step"`
	Layers      int               `json:"layers"`
	OptSteps    int               `json:"opt_steps"`
	OptBuffers  int               `json:"opt_buffers"`
	Snapshots   int               `json:"snapshots"`
	Averaged    bool              `json:"averaged,omitempty"`
	Perm        []int             `json:"perm"`
	RNG         map[string][]byte `json:"rng"`
	History     [][]string        `json:"history"` // historyRecord's fields: exact, NaN included
	EvalSeconds float64           `json:"eval_seconds"`
	Args        []string          `json:"args"`
}

// historyRecord is a history row as text: every field, in history.csv's
// order (which writes the first 9 or all 13).
func historyRecord(r HistoryRow) []string {
	return []string{strconv.Itoa(r.Step), fmtFloat(r.Epoch), fmtFloat(r.Eta),
		fmtFloat(r.Train.Cost), fmtFloat(r.Train.Loss), fmtFloat(r.Train.Accuracy),
		fmtFloat(r.Val.Cost), fmtFloat(r.Val.Loss), fmtFloat(r.Val.Accuracy),
		fmtFloat(r.Test.Cost), fmtFloat(r.Test.Loss), fmtFloat(r.Test.Accuracy), fmtFloat(r.Seconds)}
}

// parseHistoryRecord reads historyRecord's fields back (9 of them from a
// checkpoint written before the test curve: Test NaN, Seconds 0).
func parseHistoryRecord(rec []string) (HistoryRow, error) {
	r := HistoryRow{Test: Metrics{math.NaN(), math.NaN(), math.NaN()}}
	if len(rec) != 9 && len(rec) != 13 {
		return r, fmt.Errorf("a history row of %d fields, want 13", len(rec))
	}
	var err error
	if r.Step, err = strconv.Atoi(rec[0]); err != nil {
		return r, err
	}
	dst := []*float64{&r.Epoch, &r.Eta, &r.Train.Cost, &r.Train.Loss, &r.Train.Accuracy, &r.Val.Cost, &r.Val.Loss, &r.Val.Accuracy,
		&r.Test.Cost, &r.Test.Loss, &r.Test.Accuracy, &r.Seconds}[:len(rec)-1]
	for i, p := range dst {
		if *p, err = strconv.ParseFloat(rec[i+1], 64); err != nil {
			return r, err
		}
	}
	return r, nil
}

// writeCheckpoint writes cp to path atomically.
func writeCheckpoint(path string, cp *Checkpoint) error {
	st := checkpointState{Step: cp.Step, Layers: cp.Net.Layers(), OptSteps: cp.OptSteps, OptBuffers: len(cp.OptBuffers),
		Snapshots: len(cp.Snapshots), Averaged: cp.Averaged != nil, Perm: cp.Perm, RNG: cp.RNG, EvalSeconds: cp.EvalSeconds, Args: cp.Args}
	for _, r := range cp.History {
		st.History = append(st.History, historyRecord(r))
	}
	state, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	return writeFileAtomic(path, func(w io.Writer) error {
		z := npzWriter{zip.NewWriter(w)}
		if err := z.raw("state.json", state); err != nil {
			return err
		}
		if err := z.net("", cp.Net); err != nil {
			return err
		}
		if err := z.inputTransform(cp.Net); err != nil { // the snapshots share it
			return err
		}
		for i, b := range cp.OptBuffers {
			if err := z.array(fmt.Sprintf("opt-%d", i), &Matrix{Rows: 1, Cols: len(b), Data: b}); err != nil {
				return err
			}
		}
		if cp.Averaged != nil {
			if err := z.net("ema-", cp.Averaged); err != nil {
				return err
			}
		}
		for k, snap := range cp.Snapshots {
			if err := z.net(fmt.Sprintf("snap%d-", k+1), snap); err != nil {
				return err
			}
		}
		return z.zw.Close()
	})
}

// ReadCheckpoint reads a checkpoint written by writeCheckpoint.
func ReadCheckpoint(path string) (*Checkpoint, error) {
	fail := func(format string, args ...any) (*Checkpoint, error) {
		return nil, fmt.Errorf("read checkpoint %s: %s", path, fmt.Sprintf(format, args...))
	}
	var st checkpointState
	readState := func(name string, r io.Reader) error {
		if name != "state.json" {
			return fmt.Errorf("unexpected member %q", name)
		}
		return json.NewDecoder(io.LimitReader(r, 64<<20)).Decode(&st)
	}
	arrays, err := readNpz(path, 10*maxModelLayers, func(string) bool { return true }, readState)
	if err != nil {
		return fail("%v", err)
	}
	// net is a stored net of st.Layers layers.
	net := func(prefix string) (*MLP, error) {
		n, err := netFrom(arrays, prefix)
		if err == nil && n.Layers() != st.Layers {
			err = fmt.Errorf("%sW1, … hold %d layers, state.json says %d", prefix, n.Layers(), st.Layers)
		}
		return n, err
	}
	cp := &Checkpoint{Step: st.Step, OptSteps: st.OptSteps, Perm: st.Perm, RNG: st.RNG, EvalSeconds: st.EvalSeconds, Args: st.Args}
	if st.Layers <= 0 || st.Layers > maxModelLayers {
		return fail("state.json: %d layers", st.Layers)
	}
	if cp.Net, err = net(""); err != nil {
		return fail("%v", err)
	}
	if err := attachInputTransform(cp.Net, arrays["whiten"]); err != nil {
		return fail("%v", err)
	}
	for i := range st.OptBuffers {
		b := arrays[fmt.Sprintf("opt-%d", i)]
		if b == nil {
			return fail("opt-%d missing", i)
		}
		cp.OptBuffers = append(cp.OptBuffers, b.Data)
	}
	if st.Averaged {
		if cp.Averaged, err = net("ema-"); err != nil {
			return fail("%v", err)
		}
		cp.Averaged.In = cp.Net.In
	}
	for k := 1; k <= st.Snapshots; k++ {
		snap, err := net(fmt.Sprintf("snap%d-", k))
		if err != nil {
			return fail("%v", err)
		}
		snap.In = cp.Net.In
		cp.Snapshots = append(cp.Snapshots, snap)
	}
	for _, rec := range st.History {
		r, err := parseHistoryRecord(rec)
		if err != nil {
			return fail("history: %v", err)
		}
		cp.History = append(cp.History, r)
	}
	return cp, nil
}

// step is the checkpoint's step (0 for none).
func (cp *Checkpoint) step() int {
	if cp == nil {
		return 0
	}
	return cp.Step
}

// evalSeconds is the evaluation time the checkpoint's run had spent (0 for none).
func (cp *Checkpoint) evalSeconds() float64 {
	if cp == nil {
		return 0
	}
	return cp.EvalSeconds
}

// ---------------------------------------------------------------------------
// The learning-rate range test (Smith 2015, section 3.3).

// LRPoint is one evaluation of the range test.
type LRPoint struct {
	Step     int
	Eta      float64
	ValAcc   float64
	ValLoss  float64
	Smoothed float64 // ValAcc averaged over its neighbours (window 5)
}

// LRTest trains net for steps updates while η rises linearly from
// o.EtaMin to o.EtaMax, η_t = η_min + (t/steps)·(η_max − η_min), and
// evaluates the validation set points times on the way. It is Train with a
// one-way ramp: the first half of a cycle with n_s = steps.
func LRTest(ctx context.Context, net *MLP, gemm *Gemm, train, val *Dataset, o TrainOptions, steps, points int, progress io.Writer) ([]LRPoint, error) {
	o.Schedule = Schedule{EtaMin: o.EtaMin, EtaMax: o.EtaMax, NS: steps, Cycles: 1}
	o.Ensemble, o.EvalTrain, o.Limit = false, false, steps
	o.Evals = max(1, 2*points) // evaluations per cycle: points in the first half
	var pts []LRPoint
	res, err := Train(ctx, net, gemm, train, val, o, progress)
	for _, h := range res.History {
		pts = append(pts, LRPoint{Step: h.Step, Eta: h.Eta, ValAcc: h.Val.Accuracy, ValLoss: h.Val.Loss})
	}
	smoothPoints(pts)
	return pts, err
}

// smoothPoints sets each point's Smoothed to the mean validation accuracy
// of the points at most 2 away on either side, the window shrinking
// symmetrically at the ends (the first and last points stand alone; the
// second is the mean of the first three). A one-sided window would average
// the untrained net's first point with later ones and make the curve start
// higher than it does.
func smoothPoints(pts []LRPoint) {
	for i := range pts {
		h := min(2, i, len(pts)-1-i)
		var s float64
		for j := i - h; j <= i+h; j++ {
			s += pts[j].ValAcc
		}
		pts[i].Smoothed = s / float64(2*h+1)
	}
}

// suggestEtas reads the range test as Smith suggests: η_min where the
// (smoothed) validation accuracy starts to rise — the first point that has
// gained a tenth of the total rise — and η_max where it stops rising, the
// peak of the smoothed curve.
func suggestEtas(pts []LRPoint) (etaMin, etaMax float64, ok bool) {
	if len(pts) < 3 {
		return 0, 0, false
	}
	peak := 0
	for i, p := range pts {
		if p.Smoothed > pts[peak].Smoothed {
			peak = i
		}
	}
	start := pts[0].Smoothed
	rise := pts[peak].Smoothed - start
	if rise <= 0 {
		return 0, 0, false
	}
	for _, p := range pts[:peak+1] {
		if p.Smoothed >= start+float64(0.1*rise) {
			return p.Eta, pts[peak].Eta, true
		}
	}
	return pts[0].Eta, pts[peak].Eta, true
}

// writeLRTest writes lrtest.csv and lrtest.svg (validation accuracy against
// η, with the suggested range marked) and returns the suggestion.
func writeLRTest(dir string, pts []LRPoint, steps int, lambda float64) (etaMin, etaMax float64, ok bool, err error) {
	rows := make([][]string, len(pts))
	for i, p := range pts {
		rows[i] = []string{strconv.Itoa(p.Step), fmtFloat(p.Eta), fmtFloat(p.ValAcc), fmtFloat(p.ValLoss), fmtFloat(p.Smoothed)}
	}
	var o outputs
	o.addCSV(filepath.Join(dir, "lrtest.csv"), []string{"step", "eta", "val_acc", "val_loss", "val_acc_smoothed"}, rows)
	acc := Series{Name: "validation", Scatter: true}
	smooth := Series{Name: "smoothed"}
	for _, p := range pts {
		acc.X, acc.Y = append(acc.X, p.Eta), append(acc.Y, 100*p.ValAcc)
		smooth.X, smooth.Y = append(smooth.X, p.Eta), append(smooth.Y, 100*p.Smoothed)
	}
	plot := &Plot{Title: fmt.Sprintf("LR range test: %d steps, λ=%g", steps, lambda), XLabel: "learning rate η (log scale)", YLabel: "validation accuracy (%)",
		LogX: true, Series: []Series{acc, smooth}} // η spans decades
	etaMin, etaMax, ok = suggestEtas(pts)
	if ok {
		plot.Bands = []Band{{Lo: etaMin, Hi: etaMax, Label: fmt.Sprintf("suggested η: %.2g … %.2g", etaMin, etaMax)}}
	}
	o.addBytes(filepath.Join(dir, "lrtest.svg"), plot.SVG())
	return etaMin, etaMax, ok, o.commit()
}

// ---------------------------------------------------------------------------
// The run folder: TrainAndSave trains a fresh (or resumed) net and writes
// history.csv, the plots, model.npz and summary.json.

// RunSummary is summary.json.
type RunSummary struct {
	Config        map[string]string `json:"config"` // every flag's value (RunSpec.Settings)
	Kernel        string            `json:"gemm_kernel"`
	CPU           string            `json:"cpu"`
	Sizes         []int             `json:"sizes"`
	TrainImages   int               `json:"train_images"`
	ValImages     int               `json:"val_images"`
	TestImages    int               `json:"test_images"`
	Steps         int               `json:"steps"`
	ResumedAt     int               `json:"resumed_at_step,omitempty"` // -resume: the step this session started from
	Interrupted   bool              `json:"interrupted"`
	TrainAccuracy optFloat          `json:"train_accuracy"`
	ValAccuracy   optFloat          `json:"val_accuracy"`
	TestAccuracy  optFloat          `json:"test_accuracy"`
	TrainCost     optFloat          `json:"train_cost"`
	// the snapshot ensemble (-ensemble): members and accuracies
	EnsembleSize         int      `json:"ensemble_size,omitempty"`
	EnsembleValAccuracy  optFloat `json:"ensemble_val_accuracy,omitempty"`
	EnsembleTestAccuracy optFloat `json:"ensemble_test_accuracy,omitempty"`
	// test-time augmentation (-tta): the final net on the images and their mirrors
	TTAValAccuracy  optFloat `json:"tta_val_accuracy,omitempty"`
	TTATestAccuracy optFloat `json:"tta_test_accuracy,omitempty"`
	// the weights' moving average (-ema), plain and (-tta) with test-time augmentation
	EMAValAccuracy     optFloat `json:"ema_val_accuracy,omitempty"`
	EMATestAccuracy    optFloat `json:"ema_test_accuracy,omitempty"`
	EMATTAValAccuracy  optFloat `json:"ema_tta_val_accuracy,omitempty"`
	EMATTATestAccuracy optFloat `json:"ema_tta_test_accuracy,omitempty"`
	// time to accuracy: HistoryRow.Seconds of every evaluation (history.csv's
	// rows), and with a test curve the first at which the test accuracy
	// reached each of timeLevels; the training's multiply-adds ×2
	SecondsAtEvals []float64          `json:"seconds_at_evaluations"`
	TimeToTest     map[string]float64 `json:"seconds_to_test_accuracy,omitempty"`
	TrainFLOPs     float64            `json:"train_flops"`
	WallSeconds    float64            `json:"wall_seconds"`
	TrainSeconds   float64            `json:"train_seconds"` // the training loop, evaluations included
	EvalSeconds    float64            `json:"eval_seconds"`  // the time the steps waited for evaluations (most run beside them)
	Finished       time.Time          `json:"finished"`
}

// netSizes is [D, hidden…, C].
func netSizes(d int, hidden []int) []int {
	return append(append([]int{d}, hidden...), numClasses)
}

// RunSpec is one training run of a fresh net, written to a folder.
type RunSpec struct {
	Out      string     // the folder
	Title    string     // the plots' title
	Hidden   []int      // hidden layer sizes
	He       bool       // He initialisation instead of 1/√fan_in
	Whiten   WhitenSpec // the input transform to fit on the training images (Kind "": none)
	TTA      bool       // also assess the final net with test-time augmentation (ttaViews)
	Seed     uint64     // the weights' stream (the rest is in Options.Seed)
	Workers  int        // GEMM goroutines (0: GOMAXPROCS)
	Kernel   string     // GEMM micro-kernel name
	Options  TrainOptions
	Settings map[string]string // summary.json's "config": every flag's value, as the command line (with its mode's and preset's defaults) set it
	Args     []string          // the command line, kept in the checkpoint for -resume
	Resume   *Checkpoint       // continue this run (nil: a fresh net)
}

// TrainAndSave trains a fresh net on the splits and writes every output
// into spec.Out. It returns the summary; a divergence or an interruption
// (ctx cancelled during training) still writes what it has, but a context
// cancelled before the first step writes nothing and leaves the folder as
// it was.
func TrainAndSave(ctx context.Context, spec RunSpec, sp *Splits, progress io.Writer) (*RunSummary, error) {
	if ctx.Err() != nil { // interrupted before the first step: write nothing
		return nil, context.Cause(ctx)
	}
	start := time.Now()
	gemm := NewGemmNamed(spec.Workers, spec.Kernel)
	defer gemm.Close()
	net, err := newRunNet(spec, sp, gemm, progress)
	if err != nil {
		return nil, err
	}
	o := spec.Options
	if cp := spec.Resume; cp != nil {
		if !slices.Equal(cp.Net.Sizes, net.Sizes) || (cp.Net.In != nil) != (spec.Whiten.Kind != "") {
			return nil, fmt.Errorf("%w: its net is %v (input transform: %v), the run's %v (%v)",
				errCheckpointMismatch, cp.Net.Sizes, cp.Net.In != nil, net.Sizes, spec.Whiten.Kind != "")
		}
		net, o.Resume = cp.Net.Clone(), cp
	}
	checkpoint := filepath.Join(spec.Out, "checkpoint.npz")
	cw := &checkpointWriter{path: checkpoint}
	o.Checkpoint = func(cp *Checkpoint) error {
		cp.Args = spec.Args
		return cw.submit(cp)
	}
	trainStart := time.Now()
	res, trainErr := Train(ctx, net, gemm, sp.Train, sp.Val, o, progress)
	if err := cw.flush(); err != nil && trainErr == nil {
		trainErr = err
	}
	trainSeconds := time.Since(trainStart).Seconds()
	sum := &RunSummary{Config: spec.Settings, Kernel: gemm.KernelName(), CPU: cpuModel(), Sizes: net.Sizes, TrainImages: sp.Train.Len(), ValImages: sp.Val.Len(),
		Steps: res.Steps, Interrupted: res.Interrupted, ResumedAt: o.Resume.step(), TestAccuracy: optFloat(math.NaN()), TrainAccuracy: optFloat(math.NaN()), ValAccuracy: optFloat(math.NaN()), TrainCost: optFloat(math.NaN())}
	sum.SecondsAtEvals, sum.TimeToTest = timeToAccuracy(res.History, o.Test != nil)
	sum.TrainFLOPs = float64(res.Steps) * float64(o.Batch) * flopsPerImage(net, true)
	if h := res.History; len(h) > 0 {
		last := h[len(h)-1]
		sum.TrainAccuracy, sum.ValAccuracy, sum.TrainCost = optFloat(last.Train.Accuracy), optFloat(last.Val.Accuracy), optFloat(last.Train.Cost)
	}
	if trainErr == nil {
		assessFinal(sum, spec, net, res, gemm, sp)
	}
	sum.WallSeconds = time.Since(start).Seconds()
	sum.TrainSeconds, sum.EvalSeconds = trainSeconds, res.EvalSeconds-o.Resume.evalSeconds() // this session's
	sum.Finished = time.Now().UTC()
	models := []*Model{{Net: net, Mean: sp.Norm.Mean, Std: sp.Norm.Std}}
	var averaged *Model
	if trainErr == nil {
		for _, snap := range res.Snapshots {
			models = append(models, &Model{Net: snap, Mean: sp.Norm.Mean, Std: sp.Norm.Std})
		}
		if res.Averaged != nil {
			averaged = &Model{Net: res.Averaged, Mean: sp.Norm.Mean, Std: sp.Norm.Std}
		}
	}
	if err := writeRun(spec, res.History, models, averaged, sum); err != nil {
		return nil, err
	}
	if trainErr == nil && !res.Interrupted {
		os.Remove(checkpoint) // finished: nothing to resume
	}
	return sum, trainErr
}

// assessFinal fills in what a finished run's summary says of its nets on
// the test set (read here, once) and the validation set: the final net's
// test accuracy, and as asked for its accuracy with test-time
// augmentation, the moving average's, and the snapshot ensemble's.
func assessFinal(sum *RunSummary, spec RunSpec, net *MLP, res *TrainResult, gemm *Gemm, sp *Splits) {
	if sp.Test != nil && sp.Test.Len() > 0 {
		sum.TestImages = sp.Test.Len()
		ws := newForwardWorkspace(net, gemm, evalChunk)
		sum.TestAccuracy = optFloat(net.Evaluate(ws, sp.Test, spec.Options.Lambda, nil).Accuracy)
	}
	val, test := []*Dataset{sp.Val}, []*Dataset{sp.Test}
	var valTTA, testTTA []*Dataset // the mirrored copies, made once
	if spec.TTA {
		views := func(d *Dataset) []*Dataset {
			if d == nil || d.Len() == 0 {
				return []*Dataset{d} // nothing to mirror: accuracyOn says NaN
			}
			return ttaViews(d)
		}
		valTTA, testTTA = views(sp.Val), views(sp.Test)
		sum.TTAValAccuracy, sum.TTATestAccuracy = accuracyOn(net, gemm, valTTA), accuracyOn(net, gemm, testTTA)
	}
	if avg := res.Averaged; avg != nil {
		sum.EMAValAccuracy, sum.EMATestAccuracy = accuracyOn(avg, gemm, val), accuracyOn(avg, gemm, test)
		if spec.TTA {
			sum.EMATTAValAccuracy, sum.EMATTATestAccuracy = accuracyOn(avg, gemm, valTTA), accuracyOn(avg, gemm, testTTA)
		}
	}
	if k := len(res.Snapshots); k > 0 {
		sum.EnsembleSize = k
		sum.EnsembleValAccuracy, sum.EnsembleTestAccuracy = optFloat(math.NaN()), optFloat(math.NaN())
		if sp.Val.Len() > 0 {
			sum.EnsembleValAccuracy = optFloat(Assess(res.Snapshots, gemm, sp.Val).Accuracy)
		}
		if sp.Test != nil && sp.Test.Len() > 0 {
			sum.EnsembleTestAccuracy = optFloat(Assess(res.Snapshots, gemm, sp.Test).Accuracy)
		}
	}
}

// timeLevels are the test accuracies whose time a run with a test curve
// reports (summary.json's seconds_to_test_accuracy).
var timeLevels = []float64{0.50, 0.55, 0.60, 0.63, 0.65, 0.68, 0.70}

// timeToAccuracy lists the wall seconds of every evaluation and, with a
// test curve, the first evaluation's seconds at which the test accuracy
// reached each of timeLevels ("0.60": s; levels never reached are left out).
func timeToAccuracy(h []HistoryRow, testCurve bool) (seconds []float64, reached map[string]float64) {
	for _, r := range h {
		seconds = append(seconds, r.Seconds)
	}
	if !testCurve {
		return seconds, nil
	}
	reached = map[string]float64{}
	for _, level := range timeLevels {
		for _, r := range h {
			if r.Test.Accuracy >= level {
				reached[strconv.FormatFloat(level, 'f', 2, 64)] = r.Seconds
				break
			}
		}
	}
	return seconds, reached
}

// flopsPerImage counts the floating-point operations (a multiply-add is
// two) of one image through net's products: the input transform's x·Pᵀ,
// then 2·in·out per layer forward and, with backward, twice that again
// (dW = doutᵀ·x and dx = dout·W; the first layer needs no dx, counted
// anyway: a bound within a few per cent).
func flopsPerImage(net *MLP, backward bool) float64 {
	var f float64
	if net.In != nil {
		f += float64(2 * float64(net.In.Rows) * float64(net.In.Cols))
	}
	for l := range net.Layers() {
		mul := float64(2 * float64(net.Sizes[l]) * float64(net.Sizes[l+1]))
		if backward {
			mul = float64(mul * 3)
		}
		f += mul
	}
	return f
}

// accuracyOn is net's accuracy on the views of a set of images (one view,
// or ttaViews' two; NaN for no images).
func accuracyOn(net *MLP, gemm *Gemm, views []*Dataset) optFloat {
	if views[0] == nil || views[0].Len() == 0 {
		return optFloat(math.NaN())
	}
	return optFloat(AssessViews([]*MLP{net}, gemm, views).Accuracy)
}

// newRunNet is the run's fresh net: its input transform fitted on the
// training images (spec.Whiten; not on a resumed run, whose checkpoint
// holds it), then the layers drawn from the weights' stream.
func newRunNet(spec RunSpec, sp *Splits, gemm *Gemm, progress io.Writer) (*MLP, error) {
	inputs := spec.Whiten.Outputs(sp.Train.Dim())
	var in *Matrix
	if w := spec.Whiten; w.Kind != "" && spec.Resume == nil {
		start := time.Now()
		var err error
		if in, err = FitWhitening(gemm, sp.Train, w); err != nil {
			return nil, err
		}
		if progress != nil {
			fmt.Fprintf(progress, "input transform: %s to %d dimensions, fitted on %d images in %.1f s\n",
				w.Kind, inputs, sp.Train.Len(), time.Since(start).Seconds())
		}
	}
	net := NewMLP(netSizes(inputs, spec.Hidden), spec.He, newRNG(spec.Seed, streamInit))
	net.In = in
	return net, nil
}

// writeRun writes history.csv, the plots, model.npz (models[0]),
// snapshot-K.npz (models[K]), model-ema.npz (averaged, if not nil) and
// summary.json, together (see outputs): a failure leaves the previous
// run's files as they were.
func writeRun(spec RunSpec, h []HistoryRow, models []*Model, averaged *Model, sum *RunSummary) error {
	var o outputs
	historyCSV(&o, filepath.Join(spec.Out, "history.csv"), h, spec.Options.Test != nil)
	curves(&o, spec.Out, spec.Title, h, spec.Options.Schedule)
	o.add(filepath.Join(spec.Out, "model.npz"), models[0].write)
	for k, m := range models[1:] {
		o.add(filepath.Join(spec.Out, fmt.Sprintf("snapshot-%d.npz", k+1)), m.write)
	}
	if averaged != nil {
		o.add(filepath.Join(spec.Out, "model-ema.npz"), averaged.write)
	}
	o.addJSON(filepath.Join(spec.Out, "summary.json"), sum)
	return o.commit()
}

// optFloat is a figure that may not have been measured: NaN is written to
// JSON as null.
type optFloat float64

func (f optFloat) MarshalJSON() ([]byte, error) {
	if !finite(float64(f)) {
		return []byte("null"), nil
	}
	return json.Marshal(float64(f))
}

// ---------------------------------------------------------------------------
// Files: written together (outputs), the learning curves.

// outputs is a set of files written together, so that a folder never
// holds some files of one run and some of another: add fills each file into
// a new temporary file beside its place and fsyncs it; commit, once every
// file is ready, renames them all into place and fsyncs their folders. A
// failure before commit replaces nothing (the temporary files are removed).
// Files are created with mode 0644 less the umask.
type outputs struct {
	staged []stagedFile
	err    error // the first failure of add
}

// stagedFile is a file written to tmp, waiting to be renamed to path.
type stagedFile struct{ tmp, path string }

// add writes the file path with fill, into a temporary file.
func (o *outputs) add(path string, fill func(w io.Writer) error) {
	if o.err != nil {
		return
	}
	tmp, err := stageFile(path, fill)
	if err != nil {
		o.err = fmt.Errorf("write %s: %w", path, err)
		return
	}
	o.staged = append(o.staged, stagedFile{tmp, path})
}

// addBytes adds a file holding b.
func (o *outputs) addBytes(path string, b []byte) {
	o.add(path, func(w io.Writer) error { _, err := w.Write(b); return err })
}

// addJSON adds v as indented JSON.
func (o *outputs) addJSON(path string, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil && o.err == nil {
		o.err = fmt.Errorf("encode %s: %w", path, err)
	}
	o.addBytes(path, append(b, '\n'))
}

// addCSV adds a CSV file of a header and rows.
func (o *outputs) addCSV(path string, header []string, rows [][]string) {
	o.add(path, func(w io.Writer) error {
		cw := csv.NewWriter(w)
		cw.Write(header)
		cw.WriteAll(rows) // flushes
		return cw.Error()
	})
}

// commit moves every file into place, or, after a failed add, removes the
// temporary files and returns the failure.
func (o *outputs) commit() error {
	if o.err != nil {
		for _, s := range o.staged {
			os.Remove(s.tmp)
		}
		return o.err
	}
	dirs := map[string]bool{}
	for i, s := range o.staged {
		if err := os.Rename(s.tmp, s.path); err != nil {
			for _, rest := range o.staged[i:] {
				os.Remove(rest.tmp)
			}
			return fmt.Errorf("write %s: %w", s.path, err)
		}
		dirs[filepath.Dir(s.path)] = true
	}
	for dir := range dirs {
		syncDir(dir)
	}
	return nil
}

// stageFile creates the folder of path and a new file beside path, fills
// it and fsyncs it, and returns its name.
func stageFile(path string, fill func(w io.Writer) error) (string, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	sweepStale(dir)
	var f *os.File
	for i := 0; ; i++ {
		// os.CreateTemp would make the file 0600; O_EXCL with 0644 lets the
		// umask decide, as for any file a program writes.
		name := filepath.Join(dir, fmt.Sprintf(".%s.tmp%d-%d", filepath.Base(path), os.Getpid(), time.Now().UnixNano()+int64(i)))
		var err error
		f, err = os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err == nil {
			break
		}
		if !errors.Is(err, os.ErrExist) || i == 100 {
			return "", err
		}
	}
	err := fill(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// staleTemp: a temporary file of stageFile this old, whose process is gone
// from this host, was left by a process killed while writing (kill -9, a
// node's crash). A process on another node of a shared file system keeps
// its temporaries for seconds, from creation to rename, never minutes.
const staleTemp = 10 * time.Minute

// sweepStale removes from dir the temporary files (".<name>.tmp<pid>-<n>")
// that stageFile's killed callers left there (see staleTemp).
func sweepStale(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		name := e.Name()
		i := strings.LastIndex(name, ".tmp")
		if !strings.HasPrefix(name, ".") || i < 0 || !e.Type().IsRegular() {
			continue
		}
		pidText, _, ok := strings.Cut(name[i+len(".tmp"):], "-")
		pid, err := strconv.Atoi(pidText)
		info, ierr := e.Info()
		if !ok || err != nil || ierr != nil || time.Since(info.ModTime()) < staleTemp || !processGone(pid) {
			continue
		}
		os.Remove(filepath.Join(dir, name))
	}
}

// processGone reports whether no process with this pid exists on this
// host (false when it cannot tell: a pid of this process, or of another
// user's process, or where the system cannot check).
func processGone(pid int) bool {
	if pid <= 0 || pid == os.Getpid() {
		return false
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		return true // systems where finding a process fails when it is gone
	}
	return errors.Is(p.Signal(syscall.Signal(0)), os.ErrProcessDone)
}

// syncDir fsyncs a folder so that renames into it survive a power loss
// (best effort: not every system can sync a folder).
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// writeFileAtomic writes one file as an outputs set of one.
func writeFileAtomic(path string, fill func(w io.Writer) error) error {
	var o outputs
	o.add(path, fill)
	return o.commit()
}

// writeBytesAtomic writes b to path atomically.
func writeBytesAtomic(path string, b []byte) error {
	var o outputs
	o.addBytes(path, b)
	return o.commit()
}

// writeJSON writes v as indented JSON, atomically.
func writeJSON(path string, v any) error {
	var o outputs
	o.addJSON(path, v)
	return o.commit()
}

// fmtFloat prints a float for CSV with full precision.
func fmtFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// historyCSV adds history.csv, the learning curves, to o.
//
// The columns are the seed's (step … val_acc), the same bits on every
// machine; a run with a test curve (TrainOptions.Test) adds test_cost,
// test_loss, test_acc and seconds (HistoryRow.Seconds: wall time, which
// differs from run to run).
func historyCSV(o *outputs, path string, h []HistoryRow, testCurve bool) {
	header := []string{"step", "epoch", "eta", "train_cost", "train_loss", "train_acc", "val_cost", "val_loss", "val_acc"}
	if testCurve {
		header = append(header, "test_cost", "test_loss", "test_acc", "seconds")
	}
	rows := make([][]string, len(h))
	for i, r := range h {
		rows[i] = historyRecord(r)[:len(header)]
	}
	o.addCSV(path, header, rows)
}

// curves adds cost.svg, loss.svg, accuracy.svg (in %) and lr.svg to o.
// When the training and validation figures are the same (overfit: the
// validation set is the training set), one curve is drawn, named
// "train = val".
func curves(o *outputs, dir, title string, h []HistoryRow, sched Schedule) {
	steps := make([]float64, len(h))
	for i, r := range h {
		steps[i] = float64(r.Step)
	}
	pair := func(name, ylabel string, scale float64, train, val func(r HistoryRow) float64) *Plot {
		tr, va := make([]float64, len(h)), make([]float64, len(h))
		for i, r := range h {
			tr[i], va[i] = scale*train(r), scale*val(r)
		}
		p := &Plot{Title: title + ": " + name, XLabel: "update step", YLabel: ylabel}
		if slices.Equal(tr, va) {
			p.Series = []Series{{Name: "train = val", X: steps, Y: tr}}
			return p
		}
		p.Series = []Series{{Name: "training", X: steps, Y: tr}, {Name: "validation", X: steps, Y: va}}
		return p
	}
	plots := map[string]*Plot{
		"cost.svg": pair("cost", "cost (loss + λ·Σ‖W‖²)", 1,
			func(r HistoryRow) float64 { return r.Train.Cost }, func(r HistoryRow) float64 { return r.Val.Cost }),
		"loss.svg": pair("loss", "cross-entropy loss", 1,
			func(r HistoryRow) float64 { return r.Train.Loss }, func(r HistoryRow) float64 { return r.Val.Loss }),
		"accuracy.svg": pair("accuracy", "accuracy (%)", 100,
			func(r HistoryRow) float64 { return r.Train.Accuracy }, func(r HistoryRow) float64 { return r.Val.Accuracy }),
	}
	// The learning rate at every step (sampled so the file stays small).
	last := 0
	if len(h) > 0 {
		last = h[len(h)-1].Step
	}
	var ts, etas []float64
	stride := max(1, last/2000)
	for t := 0; t < last; t += stride {
		ts, etas = append(ts, float64(t)), append(etas, sched.At(t))
	}
	plots["lr.svg"] = &Plot{Title: title + ": learning rate", XLabel: "update step", YLabel: "η", Series: []Series{{Name: "η_t", X: ts, Y: etas}}}
	names := make([]string, 0, len(plots))
	for name := range plots {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		o.addBytes(filepath.Join(dir, name), plots[name].SVG())
	}
}

// ---------------------------------------------------------------------------
// The model file: a NumPy .npz (a zip of .npy arrays) that numpy.load opens.

// writeNpy writes m to w as a version 1.0 .npy file of little-endian
// float64: the magic, the header's length, the header (padded with spaces
// so that the data starts at a multiple of 64 bytes), then the values
// row-major, through a buffer of npyChunk values (a checkpoint writes its
// arrays straight into the zip member, not into a copy of each first).
func writeNpy(w io.Writer, m *Matrix) error {
	hdr := fmt.Sprintf("{'descr': '<f8', 'fortran_order': False, 'shape': (%d, %d), }", m.Rows, m.Cols)
	pad := 64 - (10+len(hdr)+1)%64
	if pad == 64 {
		pad = 0
	}
	hdr += strings.Repeat(" ", pad) + "\n"
	head := append([]byte("\x93NUMPY\x01\x00"), byte(len(hdr)), byte(len(hdr)>>8))
	if _, err := w.Write(append(head, hdr...)); err != nil {
		return err
	}
	const npyChunk = 4096
	buf := make([]byte, 8*min(npyChunk, len(m.Data)))
	for lo := 0; lo < len(m.Data); lo += npyChunk {
		vals := m.Data[lo:min(lo+npyChunk, len(m.Data))]
		for i, v := range vals {
			binary.LittleEndian.PutUint64(buf[8*i:], math.Float64bits(v))
		}
		if _, err := w.Write(buf[:8*len(vals)]); err != nil {
			return err
		}
	}
	return nil
}

// maxArrayElems bounds one array of a model file (2 GiB of float64): a
// larger declared shape is refused before anything is allocated.
const maxArrayElems = 1 << 28

// npyHeader is the dict at the start of a .npy file, e.g.
//
//	{'descr': '<f8', 'fortran_order': False, 'shape': (50, 3072), }
type npyHeader struct {
	descr   string
	fortran bool
	shape   []int
}

// parseNpyHeader parses the header dict: a Python literal whose keys are
// quoted strings and whose values are quoted strings, True/False or tuples
// of non-negative integers. Every key must be one of the three, once.
func parseNpyHeader(h string) (npyHeader, error) {
	var hdr npyHeader
	p := &literal{s: strings.TrimRight(h, " \n")}
	if !p.eat("{") {
		return hdr, errors.New("header does not start with {")
	}
	seen := map[string]bool{}
	for !p.eat("}") {
		key, ok := p.quoted()
		if !ok || !p.eat(":") {
			return hdr, fmt.Errorf("bad header entry at %q", p.rest())
		}
		if seen[key] {
			return hdr, fmt.Errorf("header key %q twice", key)
		}
		seen[key] = true
		switch key {
		case "descr":
			if hdr.descr, ok = p.quoted(); !ok {
				return hdr, errors.New("descr is not a string")
			}
		case "fortran_order":
			switch {
			case p.eat("True"):
				hdr.fortran = true
			case p.eat("False"):
			default:
				return hdr, errors.New("fortran_order is not True or False")
			}
		case "shape":
			if hdr.shape, ok = p.tuple(); !ok {
				return hdr, errors.New("shape is not a tuple of integers")
			}
		default:
			return hdr, fmt.Errorf("unknown header key %q", key)
		}
		if !p.eat(",") && !strings.HasPrefix(p.rest(), "}") {
			return hdr, fmt.Errorf("bad header after %q", key)
		}
	}
	if p.rest() != "" {
		return hdr, fmt.Errorf("text after the header dict: %q", p.rest())
	}
	if !seen["descr"] || !seen["fortran_order"] || !seen["shape"] {
		return hdr, errors.New("header lacks descr, fortran_order or shape")
	}
	return hdr, nil
}

// literal is a cursor over a Python literal.
type literal struct {
	s string
	i int
}

func (p *literal) skip() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

func (p *literal) rest() string { p.skip(); return p.s[p.i:] }

// eat consumes tok if it comes next.
func (p *literal) eat(tok string) bool {
	p.skip()
	if strings.HasPrefix(p.s[p.i:], tok) {
		p.i += len(tok)
		return true
	}
	return false
}

// quoted reads a '…' or "…" string without escapes.
func (p *literal) quoted() (string, bool) {
	p.skip()
	if p.i >= len(p.s) || (p.s[p.i] != '\'' && p.s[p.i] != '"') {
		return "", false
	}
	q := p.s[p.i]
	end := strings.IndexByte(p.s[p.i+1:], q)
	if end < 0 {
		return "", false
	}
	v := p.s[p.i+1 : p.i+1+end]
	p.i += end + 2
	return v, true
}

// tuple reads (a, b, …) of non-negative integers, each below maxArrayElems.
func (p *literal) tuple() ([]int, bool) {
	if !p.eat("(") {
		return nil, false
	}
	var v []int
	for !p.eat(")") {
		p.skip()
		j := p.i
		for j < len(p.s) && p.s[j] >= '0' && p.s[j] <= '9' {
			j++
		}
		n, err := strconv.Atoi(p.s[p.i:j])
		if err != nil || n > maxArrayElems {
			return nil, false
		}
		v = append(v, n)
		p.i = j
		if !p.eat(",") && !strings.HasPrefix(p.rest(), ")") {
			return nil, false
		}
	}
	return v, true
}

// readNpy reads one .npy member of a model file: the header first, then
// exactly the data it declares, after checking that the member's size (as
// the zip says) is what the header's shape needs. It returns a matrix of a
// 2-D array (a 1-D array of n values is n×1), little-endian float64, C order.
func readNpy(name string, r io.Reader, size uint64) (*Matrix, error) {
	pre := make([]byte, 12)
	if _, err := io.ReadFull(r, pre[:10]); err != nil || string(pre[:6]) != "\x93NUMPY" {
		return nil, fmt.Errorf("%s: not a .npy array", name)
	}
	var hlen, off int
	switch pre[6] {
	case 1:
		hlen, off = int(binary.LittleEndian.Uint16(pre[8:10])), 10
	case 2, 3:
		if _, err := io.ReadFull(r, pre[10:12]); err != nil {
			return nil, fmt.Errorf("%s: truncated header", name)
		}
		hlen, off = int(binary.LittleEndian.Uint32(pre[8:12])), 12
	default:
		return nil, fmt.Errorf("%s: unknown .npy version %d", name, pre[6])
	}
	if hlen > 1<<16 || uint64(off+hlen) > size {
		return nil, fmt.Errorf("%s: header of %d bytes in a member of %d", name, hlen, size)
	}
	hb := make([]byte, hlen)
	if _, err := io.ReadFull(r, hb); err != nil {
		return nil, fmt.Errorf("%s: truncated header", name)
	}
	hdr, err := parseNpyHeader(string(hb))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if hdr.descr != "<f8" || hdr.fortran {
		return nil, fmt.Errorf("%s: want a C-ordered little-endian float64 array ('<f8', fortran_order False), header %q", name, hb)
	}
	rows, cols := 0, 1
	switch len(hdr.shape) {
	case 1:
		rows = hdr.shape[0]
	case 2:
		rows, cols = hdr.shape[0], hdr.shape[1]
	default:
		return nil, fmt.Errorf("%s: want a 1-D or 2-D array, shape %v", name, hdr.shape)
	}
	if rows != 0 && cols > maxArrayElems/rows {
		return nil, fmt.Errorf("%s: shape %v: more than %d values", name, hdr.shape, maxArrayElems)
	}
	if want := uint64(off+hlen) + 8*uint64(rows*cols); size != want {
		return nil, fmt.Errorf("%s: %d bytes, but shape %v needs %d", name, size, hdr.shape, want)
	}
	// Straight into the matrix, 64 KiB at a time: one copy of the array in
	// memory, not two.
	m := NewMatrix(rows, cols)
	buf := make([]byte, 64<<10)
	for i := 0; i < len(m.Data); {
		chunk := buf[:8*min(len(buf)/8, len(m.Data)-i)]
		if _, err := io.ReadFull(r, chunk); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		for k := 0; k < len(chunk); k, i = k+8, i+1 {
			m.Data[i] = math.Float64frombits(binary.LittleEndian.Uint64(chunk[k:]))
		}
	}
	if n, _ := r.Read(buf[:1]); n != 0 {
		return nil, fmt.Errorf("%s: more data than shape %v holds", name, hdr.shape)
	}
	return m, nil
}

// Model is a trained net with the normalisation it was trained with.
type Model struct {
	Net       *MLP
	Mean, Std []float64
}

// SaveModel writes W1, b1, W2, b2, …, mean, std (and whiten, the net's
// input transform P, if it has one) as a .npz file, atomically.
func SaveModel(path string, m *Model) error {
	return writeFileAtomic(path, m.write)
}

// npzWriter adds uncompressed members to a zip (as numpy.savez stores them).
type npzWriter struct{ zw *zip.Writer }

// raw adds a member holding b.
func (z npzWriter) raw(name string, b []byte) error {
	f, err := z.member(name)
	if err == nil {
		_, err = f.Write(b)
	}
	return err
}

// array adds name.npy holding m.
func (z npzWriter) array(name string, m *Matrix) error {
	f, err := z.member(name + ".npy")
	if err != nil {
		return err
	}
	return writeNpy(f, m)
}

// member starts the stored (uncompressed) member name and returns its writer.
func (z npzWriter) member(name string) (io.Writer, error) {
	return z.zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store})
}

// net adds W1, b1, W2, b2, … of n, each name after prefix.
func (z npzWriter) net(prefix string, n *MLP) error {
	for l := range n.W {
		if err := z.array(fmt.Sprintf("%sW%d", prefix, l+1), n.W[l]); err != nil {
			return err
		}
		if err := z.array(fmt.Sprintf("%sb%d", prefix, l+1), n.B[l]); err != nil {
			return err
		}
	}
	return nil
}

// inputTransform adds whiten (P, k×D) if n has an input transform.
func (z npzWriter) inputTransform(n *MLP) error {
	if n.In == nil {
		return nil
	}
	return z.array("whiten", n.In)
}

// write writes the model as a .npz file to w.
func (m *Model) write(w io.Writer) error {
	z := npzWriter{zip.NewWriter(w)}
	if err := z.net("", m.Net); err != nil {
		return err
	}
	if err := z.inputTransform(m.Net); err != nil {
		return err
	}
	if err := z.array("mean", &Matrix{Rows: 1, Cols: len(m.Mean), Data: m.Mean}); err != nil {
		return err
	}
	if err := z.array("std", &Matrix{Rows: 1, Cols: len(m.Std), Data: m.Std}); err != nil {
		return err
	}
	return z.zw.Close()
}

// readNpz reads the .npy members of the zip at path into arrays by name
// (without ".npy"), refusing more than maxMembers members, a name twice, or
// a .npy name accept refuses; other members go to other (nil: refused).
func readNpz(path string, maxMembers int, accept func(name string) bool, other func(name string, r io.Reader) error) (map[string]*Matrix, error) {
	zr, err := zip.OpenReader(path)
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	if len(zr.File) > maxMembers {
		return nil, fmt.Errorf("%d members, at most %d", len(zr.File), maxMembers)
	}
	arrays := map[string]*Matrix{}
	for _, f := range zr.File {
		name, isNpy := strings.CutSuffix(f.Name, ".npy")
		if (isNpy && !accept(name)) || (!isNpy && other == nil) {
			return nil, fmt.Errorf("unexpected member %q", f.Name)
		}
		if arrays[name] != nil {
			return nil, fmt.Errorf("%s twice", f.Name)
		}
		if f.UncompressedSize64 > maxExpansionFrom && f.UncompressedSize64/maxExpansion > f.CompressedSize64 {
			return nil, fmt.Errorf("%s: %d bytes that expand to %d, more than %d-fold: not an array this program or numpy wrote (a zip bomb?)",
				f.Name, f.CompressedSize64, f.UncompressedSize64, maxExpansion)
		}
		rc, err := f.Open()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.Name, err)
		}
		if isNpy {
			arrays[name], err = readNpy(f.Name, rc, f.UncompressedSize64)
		} else {
			err = other(f.Name, rc)
		}
		if err == nil {
			// archive/zip compares a member's CRC-32 only once it is read to
			// its end.
			if _, derr := io.Copy(io.Discard, rc); derr != nil {
				err = fmt.Errorf("%s: %w (the file is damaged: cut short or changed since it was written)", f.Name, derr)
			}
		}
		rc.Close()
		if err != nil {
			return nil, err
		}
	}
	return arrays, nil
}

// A member of a model or checkpoint file that expands more than
// maxExpansion-fold (and to more than maxExpansionFrom bytes) is refused
// before it is read: this program stores arrays uncompressed, numpy's
// savez_compressed gets about 1.1-fold out of trained weights, but a
// crafted member of zeros expands 1000-fold, so that a 1 MB file would
// take gigabytes of memory.
const (
	maxExpansion     = 100
	maxExpansionFrom = 1 << 20
)

// netFrom assembles the net W1, b1, W2, b2, … (each name after prefix) from
// arrays, checking that the layers chain; it stops at the first W missing.
func netFrom(arrays map[string]*Matrix, prefix string) (*MLP, error) {
	n := &MLP{}
	for l := 1; ; l++ {
		w, b := arrays[fmt.Sprintf("%sW%d", prefix, l)], arrays[fmt.Sprintf("%sb%d", prefix, l)]
		if w == nil {
			if b != nil {
				return nil, fmt.Errorf("%sb%d without %sW%d", prefix, l, prefix, l)
			}
			return n, nil
		}
		if b == nil || b.Rows != 1 || b.Cols != w.Rows {
			return nil, fmt.Errorf("%sW%d is %s, so %sb%d must be 1x%d", prefix, l, w.Shape(), prefix, l, w.Rows)
		}
		if l == 1 {
			n.Sizes = append(n.Sizes, w.Cols)
		} else if w.Cols != n.Sizes[l-1] {
			return nil, fmt.Errorf("%sW%d is %s, want %d columns (the %d outputs of layer %d)", prefix, l, w.Shape(), n.Sizes[l-1], n.Sizes[l-1], l-1)
		}
		n.Sizes = append(n.Sizes, w.Rows)
		n.W, n.B = append(n.W, w), append(n.B, b)
	}
}

// modelArray matches the names of a model file's members.
var modelArray = regexp.MustCompile(`^(W[1-9][0-9]*|b[1-9][0-9]*|mean|std|whiten)\.npy$`)

// LoadModel reads a model written by SaveModel and checks it: the layers
// chain (W_l is H_l×H_{l−1}, b_l is 1×H_l), the output layer has 10 units,
// mean and std have one value per input, every number is finite and every
// std positive. An error names the array at fault.
func LoadModel(path string) (*Model, error) {
	fail := func(format string, args ...any) (*Model, error) {
		return nil, fmt.Errorf("%w %s: %s", errBadModel, path, fmt.Sprintf(format, args...))
	}
	arrays, err := readNpz(path, 2*maxModelLayers+2, func(name string) bool { return modelArray.MatchString(name + ".npy") }, nil)
	if err != nil {
		return fail("%v (want W1.npy, b1.npy, …, mean.npy, std.npy)", err)
	}
	for _, name := range slices.Sorted(maps.Keys(arrays)) {
		for _, v := range arrays[name].Data {
			if !finite(v) {
				return fail("%s holds %v; a trained model holds finite numbers only", name, v)
			}
		}
	}
	net, err := netFrom(arrays, "")
	if err != nil {
		return fail("%v", err)
	}
	model := &Model{Net: net}
	L := len(model.Net.W)
	if L == 0 || arrays["mean"] == nil || arrays["std"] == nil {
		return fail("want arrays W1, b1, …, mean and std")
	}
	if err := attachInputTransform(net, arrays["whiten"]); err != nil {
		return fail("%v", err)
	}
	if extra := len(arrays) - 2*L - 2; extra != 0 && (extra != 1 || net.In == nil) {
		return fail("arrays beyond W%d/b%d: the layers must be numbered 1, 2, … without gaps", L, L)
	}
	if c := model.Net.Sizes[L]; c != numClasses {
		return fail("W%d has %d rows: the output layer must have %d, one per CIFAR-10 class", L, c, numClasses)
	}
	mean, std := arrays["mean"].Data, arrays["std"].Data
	if d := model.Net.InputDim(); len(mean) != d || len(std) != d {
		return fail("mean/std have %d/%d values, want %d (one per input of W1, or of whiten)", len(mean), len(std), d)
	}
	for j, s := range std {
		if !(s > 0) {
			return fail("std[%d] is %v; a standard deviation used to divide must be positive", j, s)
		}
	}
	model.Mean, model.Std = mean, std
	return model, nil
}

// attachInputTransform makes p (nil: none) the net's input transform, if
// its rows match W1's columns.
func attachInputTransform(net *MLP, p *Matrix) error {
	if p == nil {
		return nil
	}
	if p.Rows != net.Sizes[0] {
		return fmt.Errorf("whiten is %s: want %d rows, one per column of W1", p.Shape(), net.Sizes[0])
	}
	net.In = p
	return nil
}

// errBadModel begins LoadModel's errors (main adds how to get a model).
var errBadModel = errors.New("read model")

// maxModelLayers bounds the layers a model file may hold.
const maxModelLayers = 1000
