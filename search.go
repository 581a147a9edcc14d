package main

// search.go: coarse-to-fine random search for λ (-mode=search).
//
//	coarse: l_i ~ U[lmin, lmax], λ_i = 10^l_i, i = 0 … trials−1
//	fine:   l_i ~ U[l* − w/8, l* + w/8] ∩ [lmin, lmax], w = lmax − lmin,
//	        l* = log10 λ of the best coarse trial (highest final validation
//	        accuracy), i = trials … 2·trials−1
//
// Each trial trains a fresh net for the given cycles (the command line's
// default is 2) with n_s = 2·⌊n/batch⌋ unless told otherwise, and records
// its final and best validation accuracy. Trial i draws its initialisation
// and shuffling from (seed, i) alone, so its result does not depend on
// which worker, process or machine runs it.
//
// Trials are appended to a CSV file as they finish (and flushed), and a
// rerun skips those already recorded. A run that is shard i of n does only
// the trials with index ≡ i (mod n) and records them in its own file,
// trials.shard-i-of-n.csv; trials recorded by other shards in the same
// folder count as done. MergeSearch combines the files of several folders.

import (
	"bytes"
	"cmp"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// SearchSpec is a whole search: the space, the trials' training and where
// the results go.
type SearchSpec struct {
	Out           string    // the results folder
	Trials        int       // trials per phase
	LMin, LMax    float64   // the coarse range of log10 λ
	Hidden        []int     // the hidden sizes (every layer's width drawn with SearchHidden)
	SearchHidden  []int     // nil, or the smallest and largest width tried
	SearchDropout []float64 // nil, or the dropout range tried (else Base.Dropout)
	He            bool
	Whiten        WhitenSpec // the input transform, fitted once on the training images for every trial
	Seed          uint64
	Base          TrainOptions  // every trial's training; NS = 0 means 2·⌊n/batch⌋
	Workers       int           // trials at once (0: GOMAXPROCS)
	Kernel        string        // GEMM micro-kernel
	Shard, Shards int           // this process runs trials i ≡ Shard (mod Shards)
	Wait          time.Duration // sharded: wait this long for the other shards' coarse trials
	Poll          time.Duration // how often to look while waiting (0: searchPoll)

	// Settings are what decides a trial's result besides its point, as
	// flag → value (the data split, the net, the training, the seed, the
	// ranges). They are stored in the folder's search.json before the first
	// trial; a rerun or a merge with other settings is refused.
	Settings map[string]string
}

// settingsFile holds a search folder's SearchSpec.Settings.
const settingsFile = "search.json"

// checkSettings compares the settings stored in dir (if any) with want and
// names the flags that differ; with store, it writes want when dir has
// none yet.
func checkSettings(dir string, want map[string]string, store bool) error {
	path := filepath.Join(dir, settingsFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		if !store {
			return nil
		}
		return writeJSON(path, want)
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	var have map[string]string
	if err := json.Unmarshal(b, &have); err != nil {
		return &SearchFileError{Path: path, Err: err}
	}
	var diffs []SettingDiff
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if have[k] != want[k] {
			diffs = append(diffs, SettingDiff{Key: k, Want: orNone(want[k]), Have: orNone(have[k])})
		}
	}
	for _, k := range slices.Sorted(maps.Keys(have)) {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, SettingDiff{Key: k, Have: orNone(have[k])})
		}
	}
	if len(diffs) > 0 {
		return &SettingsMismatchError{Dir: dir, Diffs: diffs}
	}
	return nil
}

// SettingsMismatchError is a search folder that holds a search with other
// settings than this command's: Diffs names each setting (a flag's name,
// see SearchSpec.Settings) that differs.
type SettingsMismatchError struct {
	Dir   string
	Diffs []SettingDiff
}

// SettingDiff is one setting of a SettingsMismatchError: this command's
// value and the folder's ("" Want: this command has no such setting).
type SettingDiff struct{ Key, Want, Have string }

func (e *SettingsMismatchError) Error() string {
	return fmt.Sprintf("%s holds a search with other settings: %s", e.Dir, e.list(func(key, want string) string { return key + "=" + orNone(want) }))
}

// list names every differing setting, each as setting(key, this command's
// value) and then the folder's value.
func (e *SettingsMismatchError) list(setting func(key, want string) string) string {
	var d []string
	for _, x := range e.Diffs {
		d = append(d, fmt.Sprintf("%s (the folder's: %s)", setting(x.Key, x.Want), x.Have))
	}
	return strings.Join(d, ", ")
}

// SearchFileError is a file of a search folder (its settings or a trials
// file) that is not this program's or cannot be read.
type SearchFileError struct {
	Path string
	Err  error
}

func (e *SearchFileError) Error() string { return fmt.Sprintf("read %s: %v", e.Path, e.Err) }
func (e *SearchFileError) Unwrap() error { return e.Err }

// orNone shows an empty setting.
func orNone(v string) string {
	if v == "" {
		return "none"
	}
	return v
}

// Trial is one λ tried and what it gave.
type Trial struct {
	Phase      string  `json:"phase"` // "coarse" or "fine"
	Index      int     `json:"index"` // 0 … 2·trials−1 across both phases
	LogLambda  float64 `json:"log10_lambda"`
	Lambda     float64 `json:"lambda"`
	ValAcc     float64 `json:"val_acc"`      // at the end of training
	BestValAcc float64 `json:"best_val_acc"` // best of the evaluations during training
	ValCost    float64 `json:"val_cost"`
	TrainAcc   float64 `json:"train_acc"`
	Seconds    float64 `json:"seconds"`
	Hidden     int     `json:"hidden"`  // width of every hidden layer (drawn with -search-hidden)
	Dropout    float64 `json:"dropout"` // dropout probability (drawn with -search-dropout)
}

// trialColumn is one column of trials.csv: its name and how a Trial's field
// is written to and read from it.
type trialColumn struct {
	name string
	get  func(t *Trial) string
	set  func(t *Trial, s string) error
}

func floatColumn(name string, field func(t *Trial) *float64) trialColumn {
	return trialColumn{name,
		func(t *Trial) string { return fmtFloat(*field(t)) },
		func(t *Trial, s string) (err error) { *field(t), err = strconv.ParseFloat(s, 64); return err }}
}

func intColumn(name string, field func(t *Trial) *int) trialColumn {
	return trialColumn{name,
		func(t *Trial) string { return strconv.Itoa(*field(t)) },
		func(t *Trial, s string) (err error) { *field(t), err = strconv.Atoi(s); return err }}
}

// trialColumns is trials.csv's schema, in file order: the header, the
// writer (record) and the reader (readTrials, which finds columns by name)
// all follow it.
var trialColumns = []trialColumn{
	{"phase", func(t *Trial) string { return t.Phase }, func(t *Trial, s string) error {
		if s != "coarse" && s != "fine" {
			return fmt.Errorf("%q is not a phase (want coarse or fine)", s)
		}
		t.Phase = s
		return nil
	}},
	intColumn("index", func(t *Trial) *int { return &t.Index }),
	floatColumn("log10_lambda", func(t *Trial) *float64 { return &t.LogLambda }),
	floatColumn("lambda", func(t *Trial) *float64 { return &t.Lambda }),
	floatColumn("val_acc", func(t *Trial) *float64 { return &t.ValAcc }),
	floatColumn("best_val_acc", func(t *Trial) *float64 { return &t.BestValAcc }),
	floatColumn("val_cost", func(t *Trial) *float64 { return &t.ValCost }),
	floatColumn("train_acc", func(t *Trial) *float64 { return &t.TrainAcc }),
	floatColumn("seconds", func(t *Trial) *float64 { return &t.Seconds }),
	intColumn("hidden", func(t *Trial) *int { return &t.Hidden }),
	floatColumn("dropout", func(t *Trial) *float64 { return &t.Dropout }),
}

// trialHeader is the first line of trials.csv.
func trialHeader() []string {
	h := make([]string, len(trialColumns))
	for i, c := range trialColumns {
		h[i] = c.name
	}
	return h
}

// record is t as a line of trials.csv.
func (t Trial) record() []string {
	rec := make([]string, len(trialColumns))
	for i, c := range trialColumns {
		rec[i] = c.get(&t)
	}
	return rec
}

// Diverged reports whether the trial's training diverged (NaN or ±Inf
// cost): its final accuracy is recorded as NaN, and it is never the best.
func (t Trial) Diverged() bool { return math.IsNaN(t.ValAcc) }

// sameTrial reports whether two records are the same point of the same
// search: phase, index, λ, width and dropout (λ and dropout to 1e-12, as
// they went through a decimal file). Timings and results may differ.
func sameTrial(a, b Trial) bool {
	return a.Phase == b.Phase && a.Index == b.Index && math.Abs(a.LogLambda-b.LogLambda) <= 1e-12 &&
		a.Hidden == b.Hidden && math.Abs(a.Dropout-b.Dropout) <= 1e-12
}

// trialPoint is where a trial samples the search space.
type trialPoint struct {
	LogLambda float64
	Hidden    int     // 0: the spec's hidden sizes
	Dropout   float64 // Base.Dropout unless searched
}

// trial is the record a trial at p will have (results not yet filled in).
func (p trialPoint) trial(spec *SearchSpec, phase string, index int) Trial {
	hidden := p.Hidden
	if hidden == 0 {
		hidden = spec.Hidden[0]
	}
	return Trial{Phase: phase, Index: index, LogLambda: p.LogLambda, Lambda: math.Pow(10, p.LogLambda), Hidden: hidden, Dropout: p.Dropout}
}

// readTrials reads a trials CSV; a file that is not one (missing columns,
// bad numbers) is an error naming the file and line, never silently
// replaced. The one exception is a torn last line (a write cut short by a
// full disk or a power loss: no final newline, and not a whole record): it
// is dropped, with torn set, and its trial runs again.
func readTrials(path string) (trials []Trial, torn bool, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, false, fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) == 0 {
		return nil, false, nil // an empty file holds no trials
	}
	body, tail := splitTail(b)
	if len(tail) > 0 {
		if t, err := parseTrialLine(tail); err == nil && len(body) > 0 {
			_ = t // a whole record that lost only its newline: keep it
			body = b
		} else {
			torn = true
		}
	}
	r := csv.NewReader(bytes.NewReader(body))
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil {
		return nil, false, &SearchFileError{Path: path, Err: err}
	}
	want := strings.Join(trialHeader(), ",")
	if len(recs) == 0 && torn {
		return nil, true, nil // only a torn header
	}
	if len(recs) == 0 || strings.Join(recs[0], ",") != want {
		return nil, false, &SearchFileError{Path: path, Err: fmt.Errorf("not a trials file of this program (want the header %s)", want)}
	}
	lineOf := map[int]int{} // trial index → its line
	for i, rec := range recs[1:] {
		t, err := parseTrial(rec)
		if err != nil {
			return nil, false, fmt.Errorf("read %s: line %d: %w; the file is damaged (delete that line to rerun the trial)", path, i+2, err)
		}
		if first, ok := lineOf[t.Index]; ok {
			if sameResults(rec, recs[first-1]) {
				continue // the same trial recorded twice: one is enough
			}
			return nil, false, fmt.Errorf("read %s: trial %d is on line %d and again, differently, on line %d; the file was edited or written by two searches (delete the wrong line)", path, t.Index, first, i+2)
		}
		lineOf[t.Index] = i + 2
		trials = append(trials, t)
	}
	return trials, torn, nil
}

// sameResults reports whether two records of trials.csv hold the same
// trial with the same results: every field but the wall time.
func sameResults(a, b []string) bool {
	for k, c := range trialColumns {
		if c.name != "seconds" && a[k] != b[k] {
			return false
		}
	}
	return true
}

// splitTail cuts a file after its last newline: body ends with a newline
// (or is empty), tail is what follows (empty for a well-ended file).
func splitTail(b []byte) (body, tail []byte) {
	i := bytes.LastIndexByte(b, '\n')
	return b[:i+1], b[i+1:]
}

// parseTrialLine parses one CSV line as a trial record.
func parseTrialLine(line []byte) (Trial, error) {
	rec, err := csv.NewReader(bytes.NewReader(line)).Read()
	if err != nil {
		return Trial{}, err
	}
	return parseTrial(rec)
}

// parseTrial reads a record in trialColumns' order.
func parseTrial(rec []string) (Trial, error) {
	var t Trial
	if len(rec) != len(trialColumns) {
		return t, fmt.Errorf("%d fields, want %d", len(rec), len(trialColumns))
	}
	for k, c := range trialColumns {
		if err := c.set(&t, rec[k]); err != nil {
			return t, fmt.Errorf("field %s: %w", c.name, err)
		}
	}
	return t, nil
}

// readTrialDir reads every trials*.csv in dir (missing dir: none), keyed by
// index, and says on warn which files had a torn last line. Two files
// disagreeing about one index is an error.
func readTrialDir(dir string, warn io.Writer) (map[int]Trial, error) {
	files, _ := filepath.Glob(filepath.Join(dir, "trials*.csv"))
	sort.Strings(files)
	done := map[int]Trial{}
	for _, f := range files {
		ts, torn, err := readTrials(f)
		if err != nil {
			return nil, err
		}
		if torn {
			fmt.Fprintf(warn, "warning: %s ends in a torn line (a write cut short); it is dropped and its trial runs again\n", f)
		}
		for _, t := range ts {
			if old, ok := done[t.Index]; ok && !sameTrial(old, t) {
				return nil, fmt.Errorf("read %s: trial %d has λ=%g here but λ=%g in another file of %s; these are different searches", f, t.Index, t.Lambda, old.Lambda, dir)
			}
			done[t.Index] = t
		}
	}
	return done, nil
}

// trialLog appends finished trials to a CSV file, one flushed line each.
type trialLog struct {
	mu sync.Mutex
	f  *os.File
	w  *csv.Writer
}

func openTrialLog(path string) (*trialLog, error) {
	if err := repairTail(path); err != nil {
		return nil, err
	}
	if st, err := os.Stat(path); err != nil || st.Size() == 0 {
		// A new file appears with its header already in it (written to a
		// temporary file, then renamed), so the other shards, which read
		// it at any moment, never see it empty or half a header.
		var header bytes.Buffer
		cw := csv.NewWriter(&header)
		cw.Write(trialHeader())
		cw.Flush()
		if err := writeBytesAtomic(path, header.Bytes()); err != nil {
			return nil, err
		}
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return &trialLog{f: f, w: csv.NewWriter(f)}, nil
}

// repairTail makes a trials file end with a newline before records are
// appended: a last record that lost only its newline gets it back, a torn
// one is cut off (readTrials has already dropped it).
func repairTail(path string) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	body, tail := splitTail(b)
	if len(tail) == 0 {
		return nil
	}
	if _, err := parseTrialLine(tail); err == nil && len(body) > 0 {
		f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			return fmt.Errorf("repair %s: %w", path, err)
		}
		_, err = f.Write([]byte("\n"))
		return errors.Join(err, f.Sync(), f.Close())
	}
	if err := os.Truncate(path, int64(len(body))); err != nil {
		return fmt.Errorf("cut the torn last line of %s: %w", path, err)
	}
	return nil
}

func (l *trialLog) write(rec []string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.w.Write(rec)
	l.w.Flush()
	if err := l.w.Error(); err != nil {
		return fmt.Errorf("write %s: %w", l.f.Name(), err)
	}
	return l.f.Sync()
}

// trialFile is this process's results file in out.
func trialFile(out string, shard, shards int) string {
	if shards == 1 {
		return filepath.Join(out, "trials.csv")
	}
	return filepath.Join(out, fmt.Sprintf("trials.shard-%d-of-%d.csv", shard, shards))
}

// searchSpace is the box the points are drawn from: log10 λ, log2 of the
// hidden width ({0, 0}: not searched) and the dropout ({p, p}: not searched).
type searchSpace [3][2]float64

// coarseSpace is the whole search space: log10 λ in [lmin, lmax]; with
// SearchHidden, log2 of the width between the two sizes; with
// SearchDropout, p in its range.
func (spec *SearchSpec) coarseSpace() searchSpace {
	s := searchSpace{{spec.LMin, spec.LMax}, {0, 0}, {spec.Base.Dropout, spec.Base.Dropout}}
	if h := spec.SearchHidden; h != nil {
		s[1] = [2]float64{math.Log2(float64(h[0])), math.Log2(float64(h[1]))}
	}
	if d := spec.SearchDropout; d != nil {
		s[2] = [2]float64{d[0], d[1]}
	}
	return s
}

// fineSpace is each searched dimension of the coarse space narrowed to the
// best coarse trial's value ± an eighth of its range, clipped to it.
func (spec *SearchSpec) fineSpace(best Trial) (s searchSpace) {
	centre := [3]float64{best.LogLambda, math.Log2(float64(max(1, best.Hidden))), best.Dropout}
	for d, r := range spec.coarseSpace() {
		half := float64((r[1] - r[0]) / 8)
		s[d] = [2]float64{math.Max(r[0], centre[d]-half), math.Min(r[1], centre[d]+half)}
	}
	return s
}

// drawPoints draws spec.Trials points uniformly from the space. Each
// dimension has its own random stream (stream, +1000, +2000), so searching
// the width or the dropout does not change the λ values drawn.
func (spec *SearchSpec) drawPoints(stream uint64, s searchSpace) []trialPoint {
	rl, rh, rd := newRNG(spec.Seed, stream), newRNG(spec.Seed, stream+1000), newRNG(spec.Seed, stream+2000)
	ps := make([]trialPoint, spec.Trials)
	for i := range ps {
		ps[i].LogLambda = s[0][0] + float64((s[0][1]-s[0][0])*rl.Float64())
		if spec.SearchHidden != nil {
			ps[i].Hidden = int(math.Round(math.Exp2(s[1][0] + float64((s[1][1]-s[1][0])*rh.Float64()))))
		}
		ps[i].Dropout = spec.Base.Dropout
		if spec.SearchDropout != nil {
			ps[i].Dropout = s[2][0] + float64((s[2][1]-s[2][0])*rd.Float64())
		}
	}
	return ps
}

// describe names the ranges of a space, for the progress lines.
func (spec *SearchSpec) describe(s searchSpace) string {
	what := fmt.Sprintf("log10 λ ∈ [%.3f, %.3f]", s[0][0], s[0][1])
	if spec.SearchHidden != nil {
		what += fmt.Sprintf(", width ∈ [%.0f, %.0f]", math.Exp2(s[1][0]), math.Exp2(s[1][1]))
	}
	if spec.SearchDropout != nil {
		what += fmt.Sprintf(", dropout ∈ [%.2f, %.2f]", s[2][0], s[2][1])
	}
	return what
}

// bestTrial is the trial with the highest final validation accuracy (ties:
// lower index), among those that did not diverge; ok is false when all did.
func bestTrial(ts []Trial) (best Trial, ok bool) {
	for _, t := range ts {
		if t.Diverged() {
			continue
		}
		if !ok || t.ValAcc > best.ValAcc || (t.ValAcc == best.ValAcc && t.Index < best.Index) {
			best, ok = t, true
		}
	}
	return best, ok
}

// phaseTrials returns the trials of one phase sorted by index.
func phaseTrials(done map[int]Trial, phase string) []Trial {
	var ts []Trial
	for _, t := range done {
		if t.Phase == phase {
			ts = append(ts, t)
		}
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].Index < ts[j].Index })
	return ts
}

// DifferentSearchError is a folder whose recorded trial Have is not the
// point this command draws for the same index (Want): another search.
type DifferentSearchError struct {
	Dir        string
	Have, Want Trial
}

func (e *DifferentSearchError) Error() string {
	h, w := e.Have, e.Want
	return fmt.Sprintf("%s holds a different search (%s trial %d has log10 λ=%g, hidden %d, dropout %g; this command draws %g, %d, %g)",
		e.Dir, h.Phase, h.Index, h.LogLambda, h.Hidden, h.Dropout, w.LogLambda, w.Hidden, w.Dropout)
}

// runTrial trains the trial t (its point filled in) and returns it with its
// results.
//
// in (nil: none) is the input transform every trial shares.
func runTrial(ctx context.Context, spec *SearchSpec, sp *Splits, in *Matrix, t Trial, gemmWorkers int) (Trial, error) {
	o := spec.Base
	o.Lambda, o.Dropout = t.Lambda, t.Dropout
	o.Seed = spec.Seed + uint64(t.Index)*trialSeedStride
	o.EvalTrain = false
	hidden := spec.Hidden
	if spec.SearchHidden != nil {
		hidden = slices.Repeat([]int{t.Hidden}, len(spec.Hidden))
	}
	start := time.Now()
	gemm := NewGemmNamed(gemmWorkers, spec.Kernel)
	defer gemm.Close()
	inputs := sp.Train.Dim()
	if in != nil {
		inputs = in.Rows
	}
	net := NewMLP(netSizes(inputs, hidden), spec.He, newRNG(spec.Seed, uint64(streamTrialInit+t.Index)))
	net.In = in
	res, err := Train(ctx, net, gemm, sp.Train, sp.Val, o, nil)
	if err != nil && !diverged(err) {
		return Trial{}, fmt.Errorf("trial %d (λ=%.4g): %w", t.Index, t.Lambda, err)
	}
	if res.Interrupted {
		return Trial{}, errAbandoned
	}
	t.Seconds = time.Since(start).Seconds()
	for _, h := range res.History {
		if finite(h.Val.Accuracy) {
			t.BestValAcc = math.Max(t.BestValAcc, h.Val.Accuracy)
		}
	}
	if err != nil { // diverged: recorded as such, and the search goes on
		t.ValAcc, t.ValCost, t.TrainAcc = math.NaN(), math.NaN(), math.NaN()
		return t, nil
	}
	last := res.History[len(res.History)-1]
	t.ValAcc, t.ValCost, t.TrainAcc = last.Val.Accuracy, last.Val.Cost, last.Train.Accuracy
	return t, nil
}

// errAbandoned is runTrial's answer when the search is interrupted during a
// trial: the trial is not recorded and runs again on the next attempt.
var errAbandoned = errors.New("trial abandoned")

// search is one search in progress: what is recorded (by this process and,
// in a shared folder, by others) and where this process records.
type search struct {
	spec   *SearchSpec
	sp     *Splits
	in     *Matrix // the input transform (nil: none), fitted once
	log    *trialLog
	stdout io.Writer
	stderr io.Writer
	ctx    context.Context

	mu   sync.Mutex
	done map[int]Trial // every recorded trial, by index
}

// Search runs the search and returns its summary once both phases are
// complete (nil before, when other shards still have trials to run). load
// is called once the folder is known to hold this search, or nothing yet.
//
// Shards cooperate through the folder. A shard runs its own trials (index ≡
// shard mod shards) first; with spec.Wait > 0 it then helps with any other
// trial of the phase that is neither recorded nor being run (each running
// trial is claimed by a lock file in .claims/, see tryLock), and when every
// missing trial is being run elsewhere it waits, up to spec.Wait, for them:
// the fine phase needs every coarse result. So one submission of an array
// runs the whole search even when some tasks start late, are cancelled or
// never run, and the last shard to finish writes the tables, search.svg and
// summary.json. With spec.Wait = 0 a shard runs only its own trials and
// ends (shards in separate folders, merged later with MergeSearch).
func Search(ctx context.Context, spec SearchSpec, load func() (*Splits, error), stdout, stderr io.Writer) (*SearchSummary, error) {
	if err := checkSettings(spec.Out, spec.Settings, false); err != nil {
		return nil, err
	}
	release, err := lockFile(trialFile(spec.Out, spec.Shard, spec.Shards) + ".lock")
	if err != nil {
		return nil, err
	}
	defer release()
	done, err := readTrialDir(spec.Out, stderr)
	if err != nil {
		return nil, err
	}
	coarse := spec.drawPoints(streamCoarse, spec.coarseSpace())
	for i, p := range coarse {
		if t, ok := done[i]; ok && !sameTrial(t, p.trial(&spec, "coarse", i)) {
			return nil, &DifferentSearchError{Dir: spec.Out, Have: t, Want: p.trial(&spec, "coarse", i)}
		}
	}
	sp, err := load()
	if err != nil {
		return nil, err
	}
	if spec.Base.NS == 0 {
		spec.Base.NS = 2 * (sp.Train.Len() / spec.Base.Batch) // the assignment's rule
	}
	if err := checkSettings(spec.Out, spec.Settings, true); err != nil {
		return nil, err
	}
	log, err := openTrialLog(trialFile(spec.Out, spec.Shard, spec.Shards))
	if err != nil {
		return nil, err
	}
	defer log.f.Close()
	s := &search{spec: &spec, sp: sp, done: done, log: log, stdout: stdout, stderr: stderr, ctx: ctx}
	if s.in, err = spec.inputTransform(sp); err != nil {
		return nil, err
	}

	shard := ""
	if spec.Shards > 1 {
		shard = fmt.Sprintf(" (shard %d/%d)", spec.Shard, spec.Shards)
	}
	fmt.Fprintf(stderr, "coarse search: %d trials%s, n_s=%d, %s, %d training images; writing %s\n",
		spec.Trials, shard, spec.Base.NS, count(spec.Base.Cycles, "cycle"), sp.Train.Len(), spec.Out)
	if complete, err := s.runPhase("coarse", 0, coarse); err != nil || !complete {
		if err == nil {
			fmt.Fprintf(stdout, "coarse trials recorded: %d of %d in %s; the fine phase starts when all are in\n", len(phaseTrials(done, "coarse")), spec.Trials, spec.Out)
		}
		return nil, err
	}
	bestCoarse, ok := bestTrial(phaseTrials(done, "coarse"))
	if !ok {
		return nil, &DivergedSearchError{Dir: spec.Out, EtaMax: spec.Base.EtaMax}
	}
	fineSpace := spec.fineSpace(bestCoarse)
	fine := spec.drawPoints(streamFine, fineSpace)
	for k, p := range fine {
		if t, ok := done[spec.Trials+k]; ok && !sameTrial(t, p.trial(&spec, "fine", spec.Trials+k)) {
			return nil, &DifferentSearchError{Dir: spec.Out, Have: t, Want: p.trial(&spec, "fine", spec.Trials+k)}
		}
	}
	fmt.Fprintf(stderr, "fine search in %s: %d trials\n", spec.describe(fineSpace), spec.Trials)
	if complete, err := s.runPhase("fine", spec.Trials, fine); err != nil || !complete {
		if err == nil {
			fmt.Fprintf(stdout, "fine trials recorded: %d of %d in %s; the shard that records the last one writes the tables, search.svg and summary.json\n", len(phaseTrials(done, "fine")), spec.Trials, spec.Out)
		}
		return nil, err
	}
	sum := &SearchSummary{Trials: spec.Trials, TrialNS: spec.Base.NS, TrainImages: sp.Train.Len(), ValImages: sp.Val.Len()}
	sum, err = reportSearch(spec.Out, sum, done, &[2]float64{spec.LMin, spec.LMax}, &fineSpace[0], stdout)
	if de := (*DivergedSearchError)(nil); errors.As(err, &de) {
		de.EtaMax = spec.Base.EtaMax
	}
	return sum, err
}

// inputTransform is the whitening every trial shares, fitted once on the
// training images (nil: none).
func (spec *SearchSpec) inputTransform(sp *Splits) (*Matrix, error) {
	if spec.Whiten.Kind == "" {
		return nil, nil
	}
	g := NewGemmNamed(spec.Workers, spec.Kernel)
	defer g.Close()
	return FitWhitening(g, sp.Train, spec.Whiten)
}

// missing lists the trials of a phase (indices first, first+1, …) that are
// not recorded: this shard's, and the other shards'.
func (s *search) missing(phase string, first int, points []trialPoint) (own, others []Trial) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, p := range points {
		i := first + k
		if _, ok := s.done[i]; ok {
			continue
		}
		if t := p.trial(s.spec, phase, i); i%s.spec.Shards == s.spec.Shard {
			own = append(own, t)
		} else {
			others = append(others, t)
		}
	}
	return own, others
}

// recorded reports whether trial i is recorded.
func (s *search) recorded(i int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.done[i]
	return ok
}

// refresh adds the trials other processes have recorded in the folder.
func (s *search) refresh() error {
	d, err := readTrialDir(s.spec.Out, io.Discard)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, t := range d {
		if _, ok := s.done[i]; !ok {
			s.done[i] = t
		}
	}
	return nil
}

// searchPoll is how often a waiting shard reads the folder.
const searchPoll = 5 * time.Second

// runPhase runs the phase's missing trials — this shard's, then (with
// spec.Wait > 0) the others' that nobody runs — and waits for those that
// other processes are running. It reports whether every trial of the
// phase is recorded.
func (s *search) runPhase(phase string, first int, points []trialPoint) (complete bool, err error) {
	start := time.Now()
	deadline := start.Add(s.spec.Wait)
	poll := cmp.Or(s.spec.Poll, searchPoll)
	ran, said := 0, ""
	for {
		if err := s.refresh(); err != nil {
			return false, err
		}
		own, others := s.missing(phase, first, points)
		todo := own
		if s.spec.Wait > 0 {
			todo = append(todo, others...)
		}
		n, err := s.runTrials(todo)
		ran += n
		if err != nil {
			return false, err
		}
		if err := s.refresh(); err != nil {
			return false, err
		}
		own, others = s.missing(phase, first, points)
		if len(own)+len(others) == 0 {
			fmt.Fprintf(s.stderr, "%s phase complete: %d of its trials ran here, in %.1f s\n", phase, ran, time.Since(start).Seconds())
			return true, nil
		}
		if s.spec.Wait <= 0 && len(own) == 0 {
			return false, nil
		}
		if n > 0 {
			continue // something finished meanwhile: look again at once
		}
		// Every missing trial is being run by another process.
		var idx, shards []int
		for _, t := range append(own, others...) {
			idx = append(idx, t.Index)
			if sh := t.Index % s.spec.Shards; !slices.Contains(shards, sh) {
				shards = append(shards, sh)
			}
		}
		slices.Sort(shards)
		what := fmt.Sprintf("%s trials %s (shard %s of %d)", phase, joinIntsSep(idx, ", "), joinInts(shards), s.spec.Shards)
		if time.Now().After(deadline) {
			return false, fmt.Errorf("gave up after waiting %v for %s, claimed by other processes, in %s; once those end, rerun the same command (Slurm: resubmit the array, or sbatch --array=%s with the same script) and the search finishes where it stopped", s.spec.Wait, what, s.spec.Out, joinInts(shards))
		}
		if what != said {
			fmt.Fprintf(s.stderr, "waiting (up to %v) for %s, running elsewhere\n", time.Until(deadline).Round(time.Second), what)
			said = what
		}
		select {
		case <-s.ctx.Done():
			return false, fmt.Errorf("search interrupted while waiting for %s (%w); rerun the same command to continue", what, context.Cause(s.ctx))
		case <-time.After(poll):
		}
	}
}

// runTrials runs, on a pool of workers, those trials of todo that it can
// claim, recording each as it finishes, and returns how many it recorded.
// A worker claims its next trial only when it is free to run it, so no
// claim is held by a process that is not running the trial. When the
// context is cancelled no new trial starts and the running ones are
// abandoned (their training stops after its current step; their claims
// are released).
func (s *search) runTrials(todo []Trial) (ran int, err error) {
	spec := s.spec
	workers := spec.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = max(1, min(workers, len(todo)))
	gemmWorkers := max(1, runtime.GOMAXPROCS(0)/workers)
	var mu sync.Mutex // guards next, ran and firstErr
	next := 0
	var firstErr error
	// take claims the next trial of todo that nobody runs or has recorded.
	take := func() (t Trial, release func(), ok bool) {
		mu.Lock()
		defer mu.Unlock()
		for next < len(todo) && firstErr == nil && s.ctx.Err() == nil {
			t = todo[next]
			next++
			release, _, err := tryLock(filepath.Join(spec.Out, ".claims", fmt.Sprintf("trial-%d.lock", t.Index)))
			if err != nil {
				firstErr = err
				return t, nil, false
			}
			if release == nil {
				continue // another process runs it
			}
			if err := s.refresh(); err != nil || s.recorded(t.Index) {
				release() // finished elsewhere just before the claim
				if err != nil {
					firstErr = err
					return t, nil, false
				}
				continue
			}
			return t, release, true
		}
		return t, nil, false
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				job, release, ok := take()
				if !ok {
					return
				}
				t, err := runTrial(s.ctx, spec, s.sp, s.in, job, gemmWorkers)
				if err == nil {
					err = s.log.write(t.record())
				}
				release()
				if errors.Is(err, errAbandoned) {
					continue
				}
				mu.Lock()
				if err != nil {
					firstErr = cmp.Or(firstErr, err)
				} else {
					ran++
				}
				mu.Unlock()
				if err == nil {
					s.finished(t)
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return ran, firstErr
	}
	if s.ctx.Err() != nil {
		return ran, fmt.Errorf("search interrupted (%w); finished trials are recorded, rerun the same command to continue", context.Cause(s.ctx))
	}
	return ran, nil
}

// finished adds a recorded trial to done and prints it.
func (s *search) finished(t Trial) {
	result := fmt.Sprintf("val acc %.2f%% (best %.2f%%)", 100*t.ValAcc, 100*t.BestValAcc)
	if t.Diverged() {
		result = "diverged (recorded; the search goes on)"
	}
	s.mu.Lock() // also keeps the workers' lines whole on a shared stderr
	defer s.mu.Unlock()
	s.done[t.Index] = t
	fmt.Fprintf(s.stderr, "%s trial %d: log10 λ=%.3f λ=%.3e hidden %d dropout %.2f  %s  %.0fs\n", t.Phase, t.Index, t.LogLambda, t.Lambda, t.Hidden, t.Dropout, result, t.Seconds)
}

// SearchSummary is the search's summary.json.
type SearchSummary struct {
	Trials       int         `json:"trials_per_phase"`
	TrialNS      int         `json:"trial_ns,omitempty"`     // each trial's n_s (0: unknown, a merge)
	TrainImages  int         `json:"train_images,omitempty"` // each trial's training set (0: unknown)
	ValImages    int         `json:"val_images,omitempty"`
	CoarseRange  *[2]float64 `json:"coarse_log10_lambda_range,omitempty"` // where each phase drew log10 λ (nil: unknown)
	FineRange    *[2]float64 `json:"fine_log10_lambda_range,omitempty"`
	BestCoarse   Trial       `json:"best_coarse"`
	BestFine     *Trial      `json:"best_fine,omitempty"`
	Best         Trial       `json:"best"`
	TopCoarse    []Trial     `json:"top_coarse"`         // Table 1: the 3 best coarse trials, best first
	TopFine      []Trial     `json:"top_fine,omitempty"` // Table 2: the fine phase's
	FinalTestAcc optFloat    `json:"final_test_accuracy"`
	FinalOut     string      `json:"final_out,omitempty"`
}

// reportSearch prints the top-3 tables and writes into out what the search
// shows: search.svg (both phases), coarse.svg and fine.svg (one phase
// each, the seed's Figures 4 and 5) and summary.json (with the top-3
// tables). sum holds what the caller knows of the trials' setting (Trials,
// and TrialNS and the images when known); the rest is filled in here.
//
// coarseRange (nil: unknown) is the coarse phase's range of log10 λ, which
// the x axis covers; fineRange (nil: none) the fine phase's, shaded.
func reportSearch(out string, sum *SearchSummary, done map[int]Trial, coarseRange, fineRange *[2]float64, stdout io.Writer) (*SearchSummary, error) {
	ct, ft := phaseTrials(done, "coarse"), phaseTrials(done, "fine")
	if len(ct) == 0 {
		return nil, fmt.Errorf("no coarse trials recorded in %s", out)
	}
	bc, ok := bestTrial(ct)
	if !ok {
		return nil, &DivergedSearchError{Dir: out}
	}
	sum.BestCoarse, sum.Best, sum.FinalTestAcc = bc, bc, optFloat(math.NaN())
	sum.CoarseRange, sum.FineRange = coarseRange, fineRange
	sum.TopCoarse = top3(ct)
	printTop3(stdout, "Table 1: the 3 best λ of the coarse search", sum.TopCoarse)
	if bf, ok := bestTrial(ft); ok {
		sum.BestFine, sum.TopFine = &bf, top3(ft)
		if bf.ValAcc > sum.Best.ValAcc {
			sum.Best = bf
		}
	}
	if len(ft) > 0 {
		printTop3(stdout, "Table 2: the 3 best λ of the fine search", sum.TopFine)
	}
	var o outputs
	o.addBytes(filepath.Join(out, "search.svg"), searchPlot(ct, ft, sum.Best, coarseRange, fineRange).SVG())
	o.addBytes(filepath.Join(out, "coarse.svg"), phasePlot("coarse", ct).SVG())
	files := "search.svg,coarse.svg"
	if len(ft) > 0 {
		o.addBytes(filepath.Join(out, "fine.svg"), phasePlot("fine", ft).SVG())
		files += ",fine.svg"
	}
	o.addJSON(filepath.Join(out, "summary.json"), sum)
	if err := o.commit(); err != nil {
		return nil, err
	}
	fmt.Fprintf(stdout, "\nbest λ = %.4g (log10 %.3f), validation accuracy %.2f%%\nwrote %s/{%s,search.json,%s,summary.json}\n", sum.Best.Lambda, sum.Best.LogLambda, 100*sum.Best.ValAcc, out, trialFiles(out), files)
	return sum, nil
}

// DivergedSearchError is a search whose every coarse trial diverged: no λ
// to refine. The learning rate is too large for every λ tried.
type DivergedSearchError struct {
	Dir    string  // the search's folder
	EtaMax float64 // the trials' largest learning rate (0: unknown, a merge)
}

func (e *DivergedSearchError) Error() string {
	if e.EtaMax > 0 {
		return fmt.Sprintf("every coarse trial in %s diverged at η_max = %g", e.Dir, e.EtaMax)
	}
	return fmt.Sprintf("every coarse trial in %s diverged", e.Dir)
}

// trialSeries is the trials ts as points (log10 λ, validation accuracy in
// %), those that did not diverge or, with diverged, those that did (drawn
// at 0).
func trialSeries(name, color string, ts []Trial, diverged bool) Series {
	s := Series{Name: name, Scatter: true, Color: color}
	for _, t := range ts {
		if t.Diverged() != diverged {
			continue
		}
		y := 100 * t.ValAcc
		if diverged {
			y = 0
		}
		s.X, s.Y = append(s.X, t.LogLambda), append(s.Y, y)
	}
	return s
}

// searchPlot is search.svg: both phases' trials, the best, the ranges.
func searchPlot(ct, ft []Trial, best Trial, coarseRange, fineRange *[2]float64) *Plot {
	// The best trial's λ goes in the legend (its accuracy is on the y
	// axis), not beside its point, where other points lie under it.
	plot := &Plot{Title: "λ search: validation accuracy", XLabel: "log10 λ", YLabel: "validation accuracy (%)",
		Series: []Series{trialSeries("coarse", "", ct, false), trialSeries("fine", "", ft, false),
			trialSeries(fmt.Sprintf("best λ=%.3g", best.Lambda), "", []Trial{best}, false)}}
	if coarseRange != nil {
		plot.XSpan = *coarseRange // the range sampled, not only where the points fell
	}
	if fineRange != nil {
		plot.Bands = []Band{{Lo: fineRange[0], Hi: fineRange[1], Label: "fine range"}}
	}
	if all := append(slices.Clone(ct), ft...); slices.ContainsFunc(all, Trial.Diverged) {
		plot.Series = append(plot.Series, trialSeries("diverged (drawn at 0)", "#7f7f7f", all, true))
	}
	return plot
}

// phasePlot is coarse.svg or fine.svg: one phase's trials, its best one
// labelled.
func phasePlot(phase string, ts []Trial) *Plot {
	plot := &Plot{Title: phase + " search: validation accuracy", XLabel: "log10 λ", YLabel: "validation accuracy (%)",
		Series: []Series{trialSeries(phase+" trials", "", ts, false)}}
	if best, ok := bestTrial(ts); ok {
		s := trialSeries("best", "", []Trial{best}, false)
		s.Label = fmt.Sprintf("λ=%.3g, %.2f %%", best.Lambda, 100*best.ValAcc)
		plot.Series = append(plot.Series, s)
	}
	if slices.ContainsFunc(ts, Trial.Diverged) {
		plot.Series = append(plot.Series, trialSeries("diverged (drawn at 0)", "#7f7f7f", ts, true))
	}
	return plot
}

// top3 is the (at most) 3 best trials of ts that did not diverge, best
// first (ties: lower index first).
func top3(ts []Trial) []Trial {
	var ok []Trial
	for _, t := range ts {
		if !t.Diverged() {
			ok = append(ok, t)
		}
	}
	sort.SliceStable(ok, func(i, j int) bool {
		return ok[i].ValAcc > ok[j].ValAcc || (ok[i].ValAcc == ok[j].ValAcc && ok[i].Index < ok[j].Index)
	})
	return ok[:min(3, len(ok))]
}

// printTop3 prints a table like the seed's Tables 1 and 2.
func printTop3(w io.Writer, title string, top []Trial) {
	fmt.Fprintf(w, "\n%s\n%-10s %-11s %-7s %-8s %-13s %-13s\n", title, "log10 λ", "λ", "hidden", "dropout", "val acc (%)", "best acc (%)")
	for _, t := range top {
		fmt.Fprintf(w, "%-10.3f %-11.3e %-7d %-8.2f %-13.2f %-13.2f\n", t.LogLambda, t.Lambda, t.Hidden, t.Dropout, 100*t.ValAcc, 100*t.BestValAcc)
	}
}

// MergeSearch combines the trials*.csv files of the folders dirs into
// out/trials.csv and reports the search they make up. Folders that
// disagree about a trial hold different searches: an error.
func MergeSearch(dirs []string, out string, stdout, stderr io.Writer) (*SearchSummary, error) {
	all := map[int]Trial{}
	var settings map[string]string // the first folder's
	for _, dir := range dirs {
		if b, err := os.ReadFile(filepath.Join(dir, settingsFile)); err == nil {
			if settings == nil {
				if err := json.Unmarshal(b, &settings); err != nil {
					return nil, fmt.Errorf("read %s: %w", filepath.Join(dir, settingsFile), err)
				}
			} else if err := checkSettings(dir, settings, false); err != nil {
				return nil, fmt.Errorf("merge: %w (the settings of the first folder with a %s)", err, settingsFile)
			}
		}
		d, err := readTrialDir(dir, stderr)
		if err != nil {
			return nil, err
		}
		for i, t := range d {
			if old, ok := all[i]; ok && !sameTrial(old, t) {
				return nil, fmt.Errorf("merge: trial %d has λ=%g in %s but %g elsewhere; these are different searches", i, t.Lambda, dir, old.Lambda)
			}
			all[i] = t
		}
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("merge: no trials*.csv files in %v", dirs)
	}
	idx := make([]int, 0, len(all))
	for i := range all {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	rows := make([][]string, len(idx))
	for k, i := range idx {
		rows[k] = all[i].record()
	}
	if settings != nil {
		if err := checkSettings(out, settings, false); err != nil {
			return nil, err
		}
	}
	var o outputs
	o.addCSV(filepath.Join(out, "trials.csv"), trialHeader(), rows)
	if settings != nil {
		o.addJSON(filepath.Join(out, settingsFile), settings)
	}
	if err := o.commit(); err != nil {
		return nil, err
	}
	fmt.Fprintf(stdout, "merged %d trials into %s/trials.csv\n", len(all), out)
	// The coarse phase's size is the search's trials per phase.
	var fineRange *[2]float64 // the fine trials' span stands for the range
	for _, t := range phaseTrials(all, "fine") {
		if fineRange == nil {
			fineRange = &[2]float64{t.LogLambda, t.LogLambda}
		}
		fineRange[0], fineRange[1] = math.Min(fineRange[0], t.LogLambda), math.Max(fineRange[1], t.LogLambda)
	}
	return reportSearch(out, &SearchSummary{Trials: len(phaseTrials(all, "coarse"))}, all, nil, fineRange, stdout)
}

// A results file is guarded by a lock file beside it, so that two processes
// never run the same shard of a search in one folder. The lock is a file
// created exclusively (O_EXCL) that names its owner and whose modification
// time the owner refreshes every lockBeat; one whose owner process is gone
// (on this host), or that is not refreshed for lockStale, belongs to a
// process that was killed and is taken over (see lockAbandoned). Unlike flock this
// works on every system Go builds for and on the network file systems that
// cluster jobs share.
const (
	lockBeat  = 10 * time.Second
	lockStale = 60 * time.Second
)

// lockFile takes the lock at path, or says who holds it. release gives it
// back.
func lockFile(path string) (release func(), err error) {
	release, holder, err := tryLock(path)
	if err == nil && release == nil {
		err = &SearchBusyError{Holder: holder, Lock: path}
	}
	return release, err
}

// SearchBusyError is a search shard that another live process is running
// in the same folder.
type SearchBusyError struct {
	Holder string // who holds the lock (host and process)
	Lock   string // the lock file
}

func (e *SearchBusyError) Error() string {
	return fmt.Sprintf("another process (%s) is running this search in %s: %s", e.Holder, filepath.Dir(e.Lock), filepath.Base(e.Lock))
}

// tryLock takes the lock at path if it is free or stale and returns its
// release; if a live process holds it, release is nil and holder says who
// (and how fresh the lock is).
func tryLock(path string) (release func(), holder string, err error) {
	return tryLockStale(path, lockStale)
}

// tryLockStale is tryLock with the time after which an unrefreshed lock
// counts as abandoned (tests shorten it).
func tryLockStale(path string, stale time.Duration) (release func(), holder string, err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, "", fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	host, _ := os.Hostname()
	owner := fmt.Sprintf("host %s, pid %d", host, os.Getpid())
	for attempt := 0; attempt < 5; attempt++ {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err == nil {
			_, err = f.WriteString(owner + "\n")
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				os.Remove(path)
				return nil, "", fmt.Errorf("write lock %s: %w", path, err)
			}
			return heartbeat(path), "", nil
		}
		if !errors.Is(err, os.ErrExist) {
			return nil, "", fmt.Errorf("create lock %s: %w", path, err)
		}
		st, serr := os.Stat(path)
		if serr != nil {
			continue // released meanwhile: try again
		}
		who, _ := os.ReadFile(path)
		if lockAbandoned(path, st, string(who), stale) {
			// Move it aside (only one process wins the rename) and retry.
			aside := fmt.Sprintf("%s.stale-%d", path, os.Getpid())
			if os.Rename(path, aside) == nil {
				os.Remove(aside)
			}
			continue
		}
		return nil, fmt.Sprintf("%s; refreshed %s ago", strings.TrimSpace(string(who)), time.Since(st.ModTime()).Round(time.Second)), nil
	}
	return nil, "", fmt.Errorf("lock %s: taken and released by other processes again and again; try again", path)
}

// lockAbandoned reports whether the lock at path (as st and its content
// who were read) belongs to no live process:
//
//   - its owner is a process of this host that has exited (a task killed
//     with SIGKILL and resubmitted at once): taken at once;
//   - its time is older than stale on this machine's clock;
//   - its time lies in the future (another node's clock runs ahead of
//     ours, on a shared file system): its age says nothing, so it is
//     watched on this clock and counts as abandoned if its time does not
//     change for stale (a live owner refreshes it every lockBeat). This
//     waits up to stale, and only for such a lock.
func lockAbandoned(path string, st os.FileInfo, who string, stale time.Duration) bool {
	if ownerExited(who) {
		return true
	}
	age := time.Since(st.ModTime())
	if age > stale {
		return true
	}
	if age > -time.Second { // now or in the past (within a second of skew): fresh
		return false
	}
	watch := min(stale/10, time.Second)
	for deadline := time.Now().Add(stale); time.Now().Before(deadline); {
		time.Sleep(watch)
		now, err := os.Stat(path)
		if err != nil || !now.ModTime().Equal(st.ModTime()) {
			return false // released or refreshed: a live owner (the caller tries again)
		}
	}
	return true
}

// ownerExited reports whether a lock's content ("host H, pid P", as
// tryLock writes it) names a process of this host that no longer exists.
// Anything else (another host, an unreadable line, this very process, a
// process this user may not signal) is not known to have exited.
func ownerExited(who string) bool {
	hostPart, pidPart, ok := strings.Cut(strings.TrimSpace(who), ", pid ")
	host, okHost := strings.CutPrefix(hostPart, "host ")
	pid, err := strconv.Atoi(pidPart)
	me, _ := os.Hostname()
	if !ok || !okHost || err != nil || host != me {
		return false
	}
	return processGone(pid)
}

// heartbeat refreshes the lock's time until the returned release is
// called, which removes the lock.
func heartbeat(path string) (release func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(lockBeat)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case now := <-tick.C:
				os.Chtimes(path, now, now)
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
		os.Remove(path)
	}
}

// count is "1 cycle", "3 cycles": n and word, plural unless n is 1.
func count(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// joinInts is "50,50".
func joinInts(v []int) string { return joinIntsSep(v, ",") }

// joinFloats is "0,0.5" for [0 0.5] ("" for none), as the flags take it.
func joinFloats(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmtFloat(x)
	}
	return strings.Join(s, ",")
}

// joinIntsSep is v joined with sep.
func joinIntsSep(v []int, sep string) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = strconv.Itoa(x)
	}
	return strings.Join(parts, sep)
}

// trialFiles names the trials files in out, for the "wrote" line.
func trialFiles(out string) string {
	files, _ := filepath.Glob(filepath.Join(out, "trials*.csv"))
	for i, f := range files {
		files[i] = filepath.Base(f)
	}
	if len(files) == 0 {
		return "trials.csv"
	}
	return strings.Join(files, ",")
}
