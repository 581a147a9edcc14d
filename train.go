package main

// train.go: mini-batch gradient descent with cyclical learning rates, the
// learning curves, the saved model (.npz) and the train / overfit / eval /
// predict modes.

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // -mode=predict reads JPEG
	_ "image/png"  // and PNG
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// cyclicalEta is the triangular schedule of Smith (2015) used by the
// assignment: over each cycle of 2·n_s steps, η climbs linearly from η_min to
// η_max in n_s steps and falls back in the next n_s.
//
//	t' = t mod 2n_s
//	η_t = η_min + (t'/n_s)·(η_max − η_min)          for 0 ≤ t' < n_s
//	η_t = η_max − ((t'−n_s)/n_s)·(η_max − η_min)     for n_s ≤ t' < 2n_s
func cyclicalEta(t, ns int, etaMin, etaMax float64) float64 {
	tc := t % (2 * ns)
	if tc < ns {
		return etaMin + float64(tc)/float64(ns)*(etaMax-etaMin)
	}
	return etaMax - float64(tc-ns)/float64(ns)*(etaMax-etaMin)
}

// HistoryRow is one evaluation during training.
type HistoryRow struct {
	Step  int
	Epoch float64
	Eta   float64
	Train Metrics
	Val   Metrics
}

// TrainResult is what Train returns.
type TrainResult struct {
	History     []HistoryRow
	Steps       int     // steps done
	EvalSeconds float64 // wall time spent evaluating (the rest is updates)
	Interrupted bool    // stopped early by an interrupt
	// Snapshots are copies of the net at the end of each learning-rate
	// cycle, taken when cfg.Ensemble is set (Huang et al. 2017).
	Snapshots []*MLP
}

// errDiverged is wrapped by Train's error when the cost became NaN or ±Inf.
var errDiverged = errors.New("training diverged")

// totalSteps is the length of the run: epochs × ⌊n/batch⌋ steps when -epochs
// is set, 2·n_s·cycles otherwise.
func totalSteps(cfg *Config, n int) int {
	if cfg.Epochs > 0 {
		return cfg.Epochs * (n / cfg.Batch)
	}
	return 2 * cfg.NS * cfg.Cycles
}

// etaAt is the learning rate of step t.
func etaAt(cfg *Config, t int) float64 {
	if cfg.Eta > 0 {
		return cfg.Eta
	}
	return cyclicalEta(t, cfg.NS, cfg.EtaMin, cfg.EtaMax)
}

// Train runs mini-batch gradient descent on train, evaluating on train and
// val at evenly spaced steps (cfg.Evals per cycle, and at the end; with
// evalTrain false, the training set only at the end). The
// training order is reshuffled every epoch from rng's stream. Progress goes
// to progress (nil: none); a value on stop ends the run after the current
// step.
func Train(cfg *Config, net *MLP, gemm *Gemm, train, val *Dataset, seed uint64, progress io.Writer, stop <-chan os.Signal, evalTrain bool) (*TrainResult, error) {
	return trainSteps(cfg, net, gemm, train, val, seed, progress, stop, evalTrain, 0)
}

// trainSteps is Train stopped after limit steps (limit ≤ 0: the whole run).
func trainSteps(cfg *Config, net *MLP, gemm *Gemm, train, val *Dataset, seed uint64, progress io.Writer, stop <-chan os.Signal, evalTrain bool, limit int) (*TrainResult, error) {
	n := train.Len()
	if cfg.Batch > n {
		return nil, usageErrorf("-batch %d is larger than the training set (%d images)", cfg.Batch, n)
	}
	total := totalSteps(cfg, n)
	if limit > 0 && limit < total {
		total = limit
	}
	perEpoch := n / cfg.Batch
	evalEvery := max(1, 2*cfg.NS/cfg.Evals)
	if cfg.Epochs > 0 {
		evalEvery = perEpoch // once per epoch
	}
	if cfg.Augment && train.Dim() != inputDim {
		return nil, usageErrorf("-augment needs 32×32 colour images (%d values), the data has %d", inputDim, train.Dim())
	}
	rng := newRNG(seed, 2)
	dropRNG, augRNG := newRNG(seed, 3), newRNG(seed, 4)
	ws := NewWorkspace(net, gemm, max(cfg.Batch, evalChunk))
	opt := NewOptimizer(cfg.Opt, cfg.Momentum, net, ws)
	xb := NewMatrix(cfg.Batch, net.Sizes[0])
	yb := make([]int, cfg.Batch)
	// The batch: images idx[i], moved by shifts[i] with -augment. The
	// shifts are drawn in order, then the rows filled over the workers.
	idx := make([]int, cfg.Batch)
	var shifts []imageShift
	if cfg.Augment {
		shifts = make([]imageShift, cfg.Batch)
	}
	fillBatch := func(lo, hi int) {
		for i := firstRow(lo, xb.Cols); i < firstRow(hi, xb.Cols); i++ {
			if shifts != nil {
				transformRow(xb.Row(i), train, idx[i], shifts[i])
			} else {
				train.Row(xb.Row(i), idx[i])
			}
		}
	}
	perm := make([]int, n)
	for i := range perm {
		perm[i] = i
	}
	res := &TrainResult{}
	start := time.Now()
	lastPrint := start
	for t := 0; t < total; t++ {
		b := t % perEpoch
		if b == 0 {
			rng.Shuffle(n, func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
		}
		for i := range idx {
			idx[i] = perm[b*cfg.Batch+i]
			yb[i] = train.Y[idx[i]]
			if shifts != nil {
				shifts[i] = drawShift(augRNG)
			}
		}
		gemm.ParallelFor(len(xb.Data), fillBatch)
		eta := etaAt(cfg, t)
		net.ForwardDropout(ws, xb, cfg.Dropout, dropRNG)
		loss := net.Backward(ws, yb, cfg.Lambda)
		if !finite(loss) {
			return res, fmt.Errorf("%w at step %d (η=%.3g): the batch loss is %v; try a smaller -eta-max (now %g) or -eta", errDiverged, t+1, eta, loss, cfg.EtaMax)
		}
		opt.Step(eta)
		res.Steps = t + 1
		if cfg.Ensemble && cfg.Eta == 0 && cfg.Epochs == 0 && (t+1)%(2*cfg.NS) == 0 {
			res.Snapshots = append(res.Snapshots, net.Clone())
		}
		interrupted := false
		select {
		case <-stop:
			interrupted = true
		default:
		}
		if (t+1)%evalEvery == 0 || t+1 == total || interrupted {
			evalStart := time.Now()
			row := HistoryRow{Step: t + 1, Epoch: float64(t+1) / float64(perEpoch), Eta: eta}
			row.Train = Metrics{math.NaN(), math.NaN(), math.NaN()}
			evalNow := evalTrain || t+1 == total || interrupted
			if evalNow {
				row.Train = net.Evaluate(ws, train, cfg.Lambda, nil)
			}
			if val != nil && val.Len() > 0 {
				row.Val = net.Evaluate(ws, val, cfg.Lambda, nil)
			} else {
				row.Val = Metrics{math.NaN(), math.NaN(), math.NaN()}
			}
			res.History = append(res.History, row)
			res.EvalSeconds += time.Since(evalStart).Seconds()
			if evalNow && !finite(row.Train.Cost) {
				return res, fmt.Errorf("%w at step %d: the training cost is %v; try a smaller -eta-max (now %g) or -eta", errDiverged, t+1, row.Train.Cost, cfg.EtaMax)
			}
		}
		if progress != nil && (time.Since(lastPrint) > time.Second || t+1 == total) {
			lastPrint = time.Now()
			rate := float64(t+1) / time.Since(start).Seconds()
			msg := fmt.Sprintf("step %d/%d epoch %.1f η=%.4f", t+1, total, float64(t+1)/float64(perEpoch), eta)
			if h := res.History; len(h) > 0 {
				last := h[len(h)-1]
				msg += fmt.Sprintf(" | train cost %.3f acc %.1f%% val cost %.3f acc %.1f%%", last.Train.Cost, 100*last.Train.Accuracy, last.Val.Cost, 100*last.Val.Accuracy)
			}
			msg += fmt.Sprintf(" | %.0f steps/s, %.0fs left", rate, float64(total-t-1)/rate)
			fmt.Fprintln(progress, msg)
		}
		if interrupted {
			res.Interrupted = true
			break
		}
	}
	return res, nil
}

// ---------------------------------------------------------------------------
// Writing results.

// writeFileAtomic writes a file by filling a temporary file in the same
// folder and renaming it over path, so readers never see half a file.
func writeFileAtomic(path string, fill func(w io.Writer) error) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(f.Name()) // after a successful rename this is a no-op
	if err := fill(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// writeBytesAtomic writes b to path atomically.
func writeBytesAtomic(path string, b []byte) error {
	return writeFileAtomic(path, func(w io.Writer) error { _, err := w.Write(b); return err })
}

// writeJSON writes v as indented JSON, atomically.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	return writeBytesAtomic(path, append(b, '\n'))
}

// fmtFloat prints a float for CSV with full precision.
func fmtFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// writeHistoryCSV writes the learning curves.
func writeHistoryCSV(path string, h []HistoryRow) error {
	return writeFileAtomic(path, func(w io.Writer) error {
		cw := csv.NewWriter(w)
		cw.Write([]string{"step", "epoch", "eta", "train_cost", "train_loss", "train_acc", "val_cost", "val_loss", "val_acc"})
		for _, r := range h {
			cw.Write([]string{strconv.Itoa(r.Step), fmtFloat(r.Epoch), fmtFloat(r.Eta),
				fmtFloat(r.Train.Cost), fmtFloat(r.Train.Loss), fmtFloat(r.Train.Accuracy),
				fmtFloat(r.Val.Cost), fmtFloat(r.Val.Loss), fmtFloat(r.Val.Accuracy)})
		}
		cw.Flush()
		return cw.Error()
	})
}

// writeCurves writes cost.svg, loss.svg, accuracy.svg and lr.svg.
func writeCurves(dir, title string, h []HistoryRow, cfg *Config) error {
	steps := make([]float64, len(h))
	get := func(f func(r HistoryRow) float64) []float64 {
		v := make([]float64, len(h))
		for i, r := range h {
			v[i] = f(r)
		}
		return v
	}
	for i, r := range h {
		steps[i] = float64(r.Step)
	}
	plots := map[string]*Plot{
		"cost.svg": {Title: title + ": cost", XLabel: "update step", YLabel: "cost (loss + λ·Σ‖W‖²)", Series: []Series{
			{Name: "training", X: steps, Y: get(func(r HistoryRow) float64 { return r.Train.Cost })},
			{Name: "validation", X: steps, Y: get(func(r HistoryRow) float64 { return r.Val.Cost })}}},
		"loss.svg": {Title: title + ": loss", XLabel: "update step", YLabel: "cross-entropy loss", Series: []Series{
			{Name: "training", X: steps, Y: get(func(r HistoryRow) float64 { return r.Train.Loss })},
			{Name: "validation", X: steps, Y: get(func(r HistoryRow) float64 { return r.Val.Loss })}}},
		"accuracy.svg": {Title: title + ": accuracy", XLabel: "update step", YLabel: "accuracy", Series: []Series{
			{Name: "training", X: steps, Y: get(func(r HistoryRow) float64 { return r.Train.Accuracy })},
			{Name: "validation", X: steps, Y: get(func(r HistoryRow) float64 { return r.Val.Accuracy })}}},
	}
	// The learning rate at every step (sampled so the file stays small).
	last := 0
	if len(h) > 0 {
		last = h[len(h)-1].Step
	}
	var ts, etas []float64
	stride := max(1, last/2000)
	for t := 0; t < last; t += stride {
		ts, etas = append(ts, float64(t)), append(etas, etaAt(cfg, t))
	}
	plots["lr.svg"] = &Plot{Title: title + ": learning rate", XLabel: "update step", YLabel: "η", Series: []Series{{Name: "η_t", X: ts, Y: etas}}}
	names := make([]string, 0, len(plots))
	for name := range plots {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := writeBytesAtomic(filepath.Join(dir, name), plots[name].SVG()); err != nil {
			return err
		}
	}
	return nil
}

// ---------------------------------------------------------------------------
// The model file: a NumPy .npz (a zip of .npy arrays) that numpy.load opens.

// npyBytes encodes m as a version 1.0 .npy file of little-endian float64.
// The header is a Python dict literal padded with spaces to a multiple of 64
// bytes and ended by a newline.
func npyBytes(m *Matrix) []byte {
	hdr := fmt.Sprintf("{'descr': '<f8', 'fortran_order': False, 'shape': (%d, %d), }", m.Rows, m.Cols)
	pad := 64 - (10+len(hdr)+1)%64
	if pad == 64 {
		pad = 0
	}
	hdr += strings.Repeat(" ", pad) + "\n"
	var b bytes.Buffer
	b.WriteString("\x93NUMPY\x01\x00")
	binary.Write(&b, binary.LittleEndian, uint16(len(hdr)))
	b.WriteString(hdr)
	buf := make([]byte, 8*len(m.Data))
	for i, v := range m.Data {
		binary.LittleEndian.PutUint64(buf[8*i:], math.Float64bits(v))
	}
	b.Write(buf)
	return b.Bytes()
}

var npyShape = regexp.MustCompile(`'shape':\s*\((\d+),\s*(\d*)\)`)

// parseNpy decodes a 2-D little-endian float64 .npy file (as npyBytes writes).
func parseNpy(name string, b []byte) (*Matrix, error) {
	if len(b) < 10 || string(b[:6]) != "\x93NUMPY" {
		return nil, fmt.Errorf("%s: not a .npy array", name)
	}
	var hlen, off int
	switch b[6] {
	case 1:
		hlen, off = int(binary.LittleEndian.Uint16(b[8:10])), 10
	case 2, 3:
		if len(b) < 12 {
			return nil, fmt.Errorf("%s: truncated header", name)
		}
		hlen, off = int(binary.LittleEndian.Uint32(b[8:12])), 12
	default:
		return nil, fmt.Errorf("%s: unknown .npy version %d", name, b[6])
	}
	if off+hlen > len(b) {
		return nil, fmt.Errorf("%s: truncated header", name)
	}
	hdr := string(b[off : off+hlen])
	if !strings.Contains(hdr, "'<f8'") || !strings.Contains(hdr, "'fortran_order': False") {
		return nil, fmt.Errorf("%s: want a C-ordered little-endian float64 array, header %q", name, hdr)
	}
	sm := npyShape.FindStringSubmatch(hdr)
	if sm == nil {
		return nil, fmt.Errorf("%s: want a 2-D array, header %q", name, hdr)
	}
	rows, _ := strconv.Atoi(sm[1])
	cols := 1
	if sm[2] != "" {
		cols, _ = strconv.Atoi(sm[2])
	}
	data := b[off+hlen:]
	if len(data) != 8*rows*cols {
		return nil, fmt.Errorf("%s: %d data bytes for shape (%d, %d)", name, len(data), rows, cols)
	}
	m := NewMatrix(rows, cols)
	for i := range m.Data {
		m.Data[i] = math.Float64frombits(binary.LittleEndian.Uint64(data[8*i:]))
	}
	return m, nil
}

// Model is a trained net with the normalisation it was trained with.
type Model struct {
	Net       *MLP
	Mean, Std []float64
}

// SaveModel writes W1, b1, W2, b2, …, mean, std as a .npz file, atomically.
func SaveModel(path string, m *Model) error {
	return writeFileAtomic(path, func(w io.Writer) error {
		zw := zip.NewWriter(w)
		add := func(name string, mat *Matrix) error {
			f, err := zw.Create(name + ".npy")
			if err != nil {
				return err
			}
			_, err = f.Write(npyBytes(mat))
			return err
		}
		for l := range m.Net.W {
			if err := add(fmt.Sprintf("W%d", l+1), m.Net.W[l]); err != nil {
				return err
			}
			if err := add(fmt.Sprintf("b%d", l+1), m.Net.B[l]); err != nil {
				return err
			}
		}
		if err := add("mean", &Matrix{Rows: 1, Cols: len(m.Mean), Data: m.Mean}); err != nil {
			return err
		}
		if err := add("std", &Matrix{Rows: 1, Cols: len(m.Std), Data: m.Std}); err != nil {
			return err
		}
		return zw.Close()
	})
}

// LoadModel reads a model written by SaveModel.
func LoadModel(path string) (*Model, error) {
	zr, err := zip.OpenReader(path)
	if err != nil {
		return nil, fmt.Errorf("read model %s: %w (train one with -mode=train, or pass -model)", path, err)
	}
	defer zr.Close()
	arrays := map[string]*Matrix{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			return nil, fmt.Errorf("read model %s: %s: %w", path, f.Name, err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("read model %s: %s: %w", path, f.Name, err)
		}
		m, err := parseNpy(f.Name, b)
		if err != nil {
			return nil, fmt.Errorf("read model %s: %w", path, err)
		}
		arrays[strings.TrimSuffix(f.Name, ".npy")] = m
	}
	model := &Model{Net: &MLP{}}
	for l := 1; ; l++ {
		w, okW := arrays[fmt.Sprintf("W%d", l)]
		b, okB := arrays[fmt.Sprintf("b%d", l)]
		if !okW {
			break
		}
		if !okB || b.Rows != 1 || b.Cols != w.Rows {
			return nil, fmt.Errorf("read model %s: b%d missing or not 1×%d", path, l, w.Rows)
		}
		if l == 1 {
			model.Net.Sizes = append(model.Net.Sizes, w.Cols)
		} else if w.Cols != model.Net.Sizes[l-1] {
			return nil, fmt.Errorf("read model %s: W%d is %s, want %d columns", path, l, w.Shape(), model.Net.Sizes[l-1])
		}
		model.Net.Sizes = append(model.Net.Sizes, w.Rows)
		model.Net.W = append(model.Net.W, w)
		model.Net.B = append(model.Net.B, b)
	}
	mean, std := arrays["mean"], arrays["std"]
	if len(model.Net.W) == 0 || mean == nil || std == nil {
		return nil, fmt.Errorf("read model %s: want arrays W1, b1, …, mean and std", path)
	}
	if d := model.Net.Sizes[0]; len(mean.Data) != d || len(std.Data) != d {
		return nil, fmt.Errorf("read model %s: mean/std have %d/%d values, want %d", path, len(mean.Data), len(std.Data), d)
	}
	model.Mean, model.Std = mean.Data, std.Data
	return model, nil
}

// ---------------------------------------------------------------------------
// Modes.

// RunSummary is summary.json.
type RunSummary struct {
	Config        *Config  `json:"config"`
	Kernel        string   `json:"gemm_kernel"`
	CPU           string   `json:"cpu"`
	Sizes         []int    `json:"sizes"`
	TrainImages   int      `json:"train_images"`
	ValImages     int      `json:"val_images"`
	TestImages    int      `json:"test_images"`
	Steps         int      `json:"steps"`
	Interrupted   bool     `json:"interrupted"`
	TrainAccuracy optFloat `json:"train_accuracy"`
	ValAccuracy   optFloat `json:"val_accuracy"`
	TestAccuracy  optFloat `json:"test_accuracy"`
	TrainCost     optFloat `json:"train_cost"`
	// the snapshot ensemble (-ensemble): members and accuracies
	EnsembleSize         int       `json:"ensemble_size,omitempty"`
	EnsembleValAccuracy  optFloat  `json:"ensemble_val_accuracy,omitempty"`
	EnsembleTestAccuracy optFloat  `json:"ensemble_test_accuracy,omitempty"`
	WallSeconds          float64   `json:"wall_seconds"`
	TrainSeconds         float64   `json:"train_seconds"` // the training loop, evaluations included
	EvalSeconds          float64   `json:"eval_seconds"`  // the evaluations during training
	Finished             time.Time `json:"finished"`
}

// netSizes is [D, hidden…, C].
func netSizes(cfg *Config, d int) []int {
	return append(append([]int{d}, cfg.Hidden...), numClasses)
}

// trainAndSave trains a fresh net on the splits and writes every output into
// cfg.Out. It returns the summary; a divergence still writes what it has.
func trainAndSave(cfg *Config, sp *Splits, title string, stderr io.Writer, stop <-chan os.Signal) (*RunSummary, error) {
	start := time.Now()
	gemm := NewGemmNamed(cfg.Workers, cfg.Kernel)
	defer gemm.Close()
	net := NewMLP(netSizes(cfg, sp.Train.Dim()), cfg.He, newRNG(cfg.Seed, 1))
	trainStart := time.Now()
	res, trainErr := Train(cfg, net, gemm, sp.Train, sp.Val, cfg.Seed, stderr, stop, true)
	if res == nil {
		return nil, trainErr
	}
	trainSeconds := time.Since(trainStart).Seconds()
	sum := &RunSummary{Config: cfg, Kernel: gemm.KernelName(), CPU: cpuModel(), Sizes: net.Sizes, TrainImages: sp.Train.Len(), ValImages: sp.Val.Len(),
		Steps: res.Steps, Interrupted: res.Interrupted, TestAccuracy: optFloat(math.NaN()), TrainAccuracy: optFloat(math.NaN()), ValAccuracy: optFloat(math.NaN()), TrainCost: optFloat(math.NaN())}
	if h := res.History; len(h) > 0 {
		last := h[len(h)-1]
		sum.TrainAccuracy, sum.ValAccuracy, sum.TrainCost = optFloat(last.Train.Accuracy), optFloat(last.Val.Accuracy), optFloat(last.Train.Cost)
	}
	if trainErr == nil && sp.Test != nil && sp.Test.Len() > 0 {
		sum.TestImages = sp.Test.Len()
		ws := NewWorkspace(net, gemm, evalChunk)
		sum.TestAccuracy = optFloat(net.Evaluate(ws, sp.Test, cfg.Lambda, nil).Accuracy)
	}
	if k := len(res.Snapshots); k > 0 && trainErr == nil {
		sum.EnsembleSize = k
		sum.EnsembleValAccuracy, sum.EnsembleTestAccuracy = optFloat(math.NaN()), optFloat(math.NaN())
		if sp.Val.Len() > 0 {
			sum.EnsembleValAccuracy = optFloat(accuracyOf(ensemblePredictions(res.Snapshots, gemm, sp.Val), sp.Val.Y))
		}
		if sp.Test != nil && sp.Test.Len() > 0 {
			sum.EnsembleTestAccuracy = optFloat(accuracyOf(ensemblePredictions(res.Snapshots, gemm, sp.Test), sp.Test.Y))
		}
		for i, snap := range res.Snapshots {
			name := filepath.Join(cfg.Out, fmt.Sprintf("snapshot-%d.npz", i+1))
			if err := SaveModel(name, &Model{Net: snap, Mean: sp.Norm.Mean, Std: sp.Norm.Std}); err != nil {
				return nil, err
			}
		}
	}
	sum.WallSeconds = time.Since(start).Seconds()
	sum.TrainSeconds, sum.EvalSeconds = trainSeconds, res.EvalSeconds
	sum.Finished = time.Now().UTC()
	if err := writeRun(cfg, title, res.History, &Model{Net: net, Mean: sp.Norm.Mean, Std: sp.Norm.Std}, sum); err != nil {
		return nil, err
	}
	return sum, trainErr
}

// EnsembleProbabilities is the snapshot ensemble's prediction for d's images:
// the mean of the members' softmax outputs, (1/K)·Σ_k softmax(s_k) (N×C).
func EnsembleProbabilities(nets []*MLP, gemm *Gemm, d *Dataset) *Matrix {
	var sum *Matrix
	for _, net := range nets {
		p := net.Probabilities(NewWorkspace(net, gemm, min(max(d.Len(), 1), evalChunk)), d)
		if sum == nil {
			sum = p
			continue
		}
		for i, v := range p.Data {
			sum.Data[i] += v
		}
	}
	inv := 1 / float64(len(nets))
	for i := range sum.Data {
		sum.Data[i] *= inv
	}
	return sum
}

// ensemblePredictions is each sample's arg-max class under the ensemble.
func ensemblePredictions(nets []*MLP, gemm *Gemm, d *Dataset) []int {
	probs := EnsembleProbabilities(nets, gemm, d)
	pred := make([]int, d.Len())
	for n := range pred {
		pred[n] = argmax(probs.Row(n))
	}
	return pred
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

// writeRun writes history.csv, the plots, model.npz and summary.json.
func writeRun(cfg *Config, title string, h []HistoryRow, model *Model, sum *RunSummary) error {
	if err := writeHistoryCSV(filepath.Join(cfg.Out, "history.csv"), h); err != nil {
		return err
	}
	if err := writeCurves(cfg.Out, title, h, cfg); err != nil {
		return err
	}
	if err := SaveModel(filepath.Join(cfg.Out, "model.npz"), model); err != nil {
		return err
	}
	return writeJSON(filepath.Join(cfg.Out, "summary.json"), sum)
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

// runTrain is -mode=train.
func runTrain(cfg *Config, stdout, stderr io.Writer, stop <-chan os.Signal) error {
	sp, err := LoadSplits(cfg, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "training %v on %d images, validating on %d; λ=%g, η∈[%g, %g], n_s=%d, %d cycles, batch %d; GEMM %s on %s\n",
		netSizes(cfg, inputDim), sp.Train.Len(), sp.Val.Len(), cfg.Lambda, cfg.EtaMin, cfg.EtaMax, cfg.NS, cfg.Cycles, cfg.Batch, kernelName(cfg.Kernel), cpuModel())
	sum, err := trainAndSave(cfg, sp, fmt.Sprintf("λ=%g, n_s=%d, %d cycles", cfg.Lambda, cfg.NS, cfg.Cycles), stderr, stop)
	if sum != nil {
		printSummary(stdout, sum, cfg.Out)
	}
	return err
}

func printSummary(w io.Writer, sum *RunSummary, out string) {
	state := ""
	if sum.Interrupted {
		state = " (interrupted)"
	}
	fmt.Fprintf(w, "steps %d%s in %.1f s (updates %.1f s, evaluations %.1f s), kernel %s\ntrain accuracy %.2f%%  validation accuracy %.2f%%  test accuracy %.2f%%\n",
		sum.Steps, state, sum.TrainSeconds, sum.TrainSeconds-sum.EvalSeconds, sum.EvalSeconds, sum.Kernel, 100*sum.TrainAccuracy, 100*sum.ValAccuracy, 100*sum.TestAccuracy)
	files := "history.csv,summary.json,cost.svg,loss.svg,accuracy.svg,lr.svg,model.npz"
	if k := sum.EnsembleSize; k > 0 {
		fmt.Fprintf(w, "snapshot ensemble of %d nets: validation accuracy %.2f%%  test accuracy %.2f%%\n", k, 100*sum.EnsembleValAccuracy, 100*sum.EnsembleTestAccuracy)
		files += fmt.Sprintf(",snapshot-{1..%d}.npz", k)
	}
	fmt.Fprintf(w, "wrote %s/{%s}\n", out, files)
}

// runOverfit is -mode=overfit: the first 100 training images, λ = 0, a
// constant η (default 0.01), batch 10 and 200 epochs unless the flags say
// otherwise; the net should memorise them.
func runOverfit(cfg *Config, stdout, stderr io.Writer, stop <-chan os.Signal) error {
	c := *cfg
	if c.N == 0 {
		c.N = 100
	}
	c.Lambda, c.Split, c.Val = 0, "batch1", 0
	if c.Eta == 0 {
		c.Eta = 0.01
	}
	if c.Epochs == 0 {
		c.Epochs = 200
	}
	if c.Batch == 100 {
		c.Batch = 10
	}
	var sp *Splits
	if dataPresent(c.Data) || c.Download {
		var err error
		if sp, err = LoadSplits(&c, stderr); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(stderr, "no CIFAR-10 data in %s: overfitting random images with random labels instead\n", c.Data)
		d := syntheticDataset(c.N, inputDim, numClasses, newRNG(c.Seed, 99))
		rng := newRNG(c.Seed, 98)
		for i := range d.Y { // nothing to learn but the samples themselves
			d.Y[i] = rng.IntN(numClasses)
		}
		sp = &Splits{Train: d, Val: &Dataset{X: NewMatrix(0, inputDim)}, Norm: identityNorm(inputDim)}
	}
	sp.Val = sp.Train // the curves show the memorised set itself
	sum, err := trainAndSave(&c, sp, fmt.Sprintf("overfit %d images", sp.Train.Len()), stderr, stop)
	if sum != nil {
		fmt.Fprintf(stdout, "overfit %d images for %d epochs (η=%g, batch %d, λ=0): train cost %.4f, train accuracy %.1f%%\n",
			sp.Train.Len(), c.Epochs, c.Eta, c.Batch, sum.TrainCost, 100*sum.TrainAccuracy)
	}
	return err
}

// loadTestFor reads test_batch.bin and normalises it with a model's numbers.
func loadTestFor(cfg *Config, m *Model, stderr io.Writer) (*Dataset, []string, error) {
	if err := ensureData(cfg, stderr); err != nil {
		return nil, nil, err
	}
	classes, err := readClassNames(cfg.Data)
	if err != nil {
		return nil, nil, err
	}
	test, err := readBatches(cfg.Data, batchFiles[5:], 0)
	if err != nil {
		return nil, nil, err
	}
	if test.Dim() != m.Net.Sizes[0] {
		return nil, nil, fmt.Errorf("model %s takes %d inputs, the data has %d", cfg.Model, m.Net.Sizes[0], test.Dim())
	}
	test.Norm = NewNorm(m.Mean, m.Std)
	return test, classes, nil
}

// runEval is -mode=eval: test accuracy, per-class accuracy and the confusion
// matrix of a saved model.
func runEval(cfg *Config, stdout, stderr io.Writer) error {
	paths := strings.Split(cfg.Model, ",")
	var models []*Model
	for _, p := range paths {
		m, err := LoadModel(p)
		if err != nil {
			return err
		}
		if len(models) > 0 && (!slices.Equal(m.Mean, models[0].Mean) || !slices.Equal(m.Std, models[0].Std) || m.Net.Sizes[0] != models[0].Net.Sizes[0]) {
			return fmt.Errorf("-model: %s normalises its inputs differently from %s; an ensemble needs models trained on the same data", p, paths[0])
		}
		models = append(models, m)
	}
	m := models[0]
	test, classes, err := loadTestFor(cfg, m, stderr)
	if err != nil {
		return err
	}
	gemm := NewGemmNamed(cfg.Workers, cfg.Kernel)
	defer gemm.Close()
	var pred []int
	if len(models) == 1 {
		pred = make([]int, test.Len())
		met := m.Net.Evaluate(NewWorkspace(m.Net, gemm, evalChunk), test, 0, pred)
		fmt.Fprintf(stdout, "model %s %v: test accuracy %.2f%% on %d images, loss %.4f\n\n", cfg.Model, m.Net.Sizes, 100*met.Accuracy, test.Len(), met.Loss)
	} else {
		nets := make([]*MLP, len(models))
		for i, mm := range models {
			nets[i] = mm.Net
		}
		pred = ensemblePredictions(nets, gemm, test)
		fmt.Fprintf(stdout, "ensemble of %d models (softmax outputs averaged): test accuracy %.2f%% on %d images\n\n", len(models), 100*accuracyOf(pred, test.Y), test.Len())
	}
	acc := accuracyOf(pred, test.Y)
	conf := confusion(test.Y, pred)
	fmt.Fprintf(stdout, "%-11s %8s\n", "class", "accuracy")
	for k, name := range classes {
		total := 0
		for _, v := range conf[k] {
			total += v
		}
		fmt.Fprintf(stdout, "%-11s %7.1f%%\n", name, 100*float64(conf[k][k])/math.Max(1, float64(total)))
	}
	fmt.Fprintf(stdout, "\nconfusion matrix (rows: true class, columns: predicted)\n%-11s", "")
	for _, name := range classes {
		fmt.Fprintf(stdout, " %5.5s", name)
	}
	fmt.Fprintln(stdout)
	for k, name := range classes {
		fmt.Fprintf(stdout, "%-11s", name)
		for _, v := range conf[k] {
			fmt.Fprintf(stdout, " %5d", v)
		}
		fmt.Fprintln(stdout)
	}
	out := filepath.Join(cfg.Out, "confusion.svg")
	svg := HeatmapSVG(fmt.Sprintf("Confusion matrix, test accuracy %.2f%%", 100*acc), classes, conf, "true class", "predicted class")
	if err := writeBytesAtomic(out, svg); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nwrote %s\n", out)
	return nil
}

// imagePixels reads a 32×32 PNG or JPEG into the CIFAR layout: the red
// plane, then green, then blue, one byte per pixel.
func imagePixels(path string) ([]uint8, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w (want a PNG or JPEG)", path, err)
	}
	b := img.Bounds()
	if b.Dx() != imageSide || b.Dy() != imageSide {
		return nil, fmt.Errorf("read %s: image is %dx%d, want 32x32 (resize it first)", path, b.Dx(), b.Dy())
	}
	v := make([]uint8, inputDim)
	for y := 0; y < imageSide; y++ {
		for x := 0; x < imageSide; x++ {
			r, g, bl, _ := img.At(b.Min.X+x, b.Min.Y+y).RGBA()
			i := y*imageSide + x
			v[i], v[1024+i], v[2048+i] = uint8(r>>8), uint8(g>>8), uint8(bl>>8)
		}
	}
	return v, nil
}

// runPredict is -mode=predict: top-3 classes for each image.
func runPredict(cfg *Config, stdout io.Writer) error {
	m, err := LoadModel(cfg.Model)
	if err != nil {
		return err
	}
	if m.Net.Sizes[0] != inputDim {
		return fmt.Errorf("model %s takes %d inputs, not 32×32×3 images", cfg.Model, m.Net.Sizes[0])
	}
	classes := defaultClassNames[:]
	if c, err := readClassNames(cfg.Data); err == nil {
		classes = c
	}
	images := &Dataset{Y: make([]int, len(cfg.Args)), Norm: NewNorm(m.Mean, m.Std)}
	for _, p := range cfg.Args {
		v, err := imagePixels(p)
		if err != nil {
			return err
		}
		images.Pix = append(images.Pix, v...)
	}
	gemm := NewGemmNamed(1, cfg.Kernel)
	defer gemm.Close()
	probs := m.Net.Probabilities(NewWorkspace(m.Net, gemm, max(1, images.Len())), images)
	for i, p := range cfg.Args {
		row := probs.Row(i)
		idx := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
		sort.SliceStable(idx, func(a, b int) bool { return row[idx[a]] > row[idx[b]] })
		fmt.Fprintf(stdout, "%s:", p)
		for _, k := range idx[:3] {
			fmt.Fprintf(stdout, "  %s %.1f%%", classes[k], 100*row[k])
		}
		fmt.Fprintln(stdout)
	}
	return nil
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

// LRTest trains net for steps updates while η rises linearly from etaMin to
// etaMax, η_t = η_min + (t/steps)·(η_max − η_min), and evaluates the
// validation set points times on the way. It is Train with a one-way ramp.
func LRTest(cfg *Config, net *MLP, gemm *Gemm, train, val *Dataset, steps, points int, progress io.Writer, stop <-chan os.Signal) ([]LRPoint, error) {
	c := *cfg
	c.Eta, c.Epochs, c.Ensemble = 0, 0, false
	// A cyclical schedule whose first half-cycle is the ramp: n_s = steps,
	// one cycle, stopped after n_s steps.
	c.NS, c.Cycles = steps, 1
	c.Evals = max(1, 2*points) // evaluations per cycle: points in the first half
	var pts []LRPoint
	res, err := trainSteps(&c, net, gemm, train, val, c.Seed, progress, stop, false, steps)
	if res != nil {
		for _, h := range res.History {
			pts = append(pts, LRPoint{Step: h.Step, Eta: h.Eta, ValAcc: h.Val.Accuracy, ValLoss: h.Val.Loss})
		}
	}
	for i := range pts {
		var s float64
		n := 0
		for j := max(0, i-2); j <= min(len(pts)-1, i+2); j++ {
			s += pts[j].ValAcc
			n++
		}
		pts[i].Smoothed = s / float64(n)
	}
	return pts, err
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
		if p.Smoothed >= start+0.1*rise {
			return p.Eta, pts[peak].Eta, true
		}
	}
	return pts[0].Eta, pts[peak].Eta, true
}

// runLRTest is -mode=lrtest: ramp η from -eta-min to -eta-max over -ns
// steps, then write lrtest.csv and lrtest.svg and print the suggested range.
func runLRTest(cfg *Config, stdout, stderr io.Writer, stop <-chan os.Signal) error {
	sp, err := LoadSplits(cfg, stderr)
	if err != nil {
		return err
	}
	if sp.Val.Len() == 0 {
		return usageErrorf("-mode=lrtest plots validation accuracy: give -val > 0")
	}
	gemm := NewGemmNamed(cfg.Workers, cfg.Kernel)
	defer gemm.Close()
	net := NewMLP(netSizes(cfg, sp.Train.Dim()), cfg.He, newRNG(cfg.Seed, 1))
	const points = 40
	fmt.Fprintf(stderr, "learning-rate range test: η from %g to %g over %d steps, %v, λ=%g\n", cfg.EtaMin, cfg.EtaMax, cfg.NS, net.Sizes, cfg.Lambda)
	pts, trainErr := LRTest(cfg, net, gemm, sp.Train, sp.Val, cfg.NS, points, stderr, stop)
	if errors.Is(trainErr, errDiverged) && len(pts) > 0 {
		// Expected near the top of a wide range: the ramp ends there.
		fmt.Fprintf(stdout, "the net diverged after η ≈ %.3g (%v); the plot ends there\n", pts[len(pts)-1].Eta, trainErr)
		trainErr = nil
	}
	if len(pts) == 0 {
		return trainErr
	}
	if err := writeFileAtomic(filepath.Join(cfg.Out, "lrtest.csv"), func(w io.Writer) error {
		cw := csv.NewWriter(w)
		cw.Write([]string{"step", "eta", "val_acc", "val_loss", "val_acc_smoothed"})
		for _, p := range pts {
			cw.Write([]string{strconv.Itoa(p.Step), fmtFloat(p.Eta), fmtFloat(p.ValAcc), fmtFloat(p.ValLoss), fmtFloat(p.Smoothed)})
		}
		cw.Flush()
		return cw.Error()
	}); err != nil {
		return err
	}
	acc := Series{Name: "validation", Scatter: true}
	smooth := Series{Name: "smoothed"}
	for _, p := range pts {
		acc.X, acc.Y = append(acc.X, p.Eta), append(acc.Y, 100*p.ValAcc)
		smooth.X, smooth.Y = append(smooth.X, p.Eta), append(smooth.Y, 100*p.Smoothed)
	}
	plot := &Plot{Title: fmt.Sprintf("LR range test: %d steps, λ=%g", cfg.NS, cfg.Lambda), XLabel: "learning rate η", YLabel: "validation accuracy (%)", Series: []Series{acc, smooth}}
	lo, hi, ok := suggestEtas(pts)
	if ok {
		plot.Series = append(plot.Series, Series{Name: "suggested η range", Scatter: true, Color: "#d62728",
			X: []float64{lo, hi}, Y: []float64{100 * valAt(pts, lo), 100 * valAt(pts, hi)}})
	}
	if err := writeBytesAtomic(filepath.Join(cfg.Out, "lrtest.svg"), plot.SVG()); err != nil {
		return err
	}
	if ok {
		fmt.Fprintf(stdout, "accuracy starts rising at η ≈ %.3g and peaks at η ≈ %.3g\nsuggested: -eta-min %.2g -eta-max %.2g\n", lo, hi, lo, hi)
	} else {
		fmt.Fprintln(stdout, "the validation accuracy never rose above its start: try a wider range (-eta-min, -eta-max) or more steps (-ns)")
	}
	fmt.Fprintf(stdout, "wrote %s/{lrtest.csv,lrtest.svg}\n", cfg.Out)
	return trainErr
}

// valAt is the smoothed accuracy of the point with learning rate eta.
func valAt(pts []LRPoint, eta float64) float64 {
	for _, p := range pts {
		if p.Eta == eta {
			return p.Smoothed
		}
	}
	return math.NaN()
}
