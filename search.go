package main

// search.go: coarse-to-fine random search for λ (-mode=search).
//
//	coarse: l_i ~ U[lmin, lmax], λ_i = 10^l_i, i = 0 … trials−1
//	fine:   l_i ~ U[l* − w/8, l* + w/8] ∩ [lmin, lmax], w = lmax − lmin,
//	        l* = log10 λ of the best coarse trial (highest final validation
//	        accuracy), i = trials … 2·trials−1
//
// Each trial trains a fresh net for -cycles (default 2) cycles with
// n_s = 2·⌊n/batch⌋ and records its final and best validation accuracy.
// Trial i draws its initialisation and shuffling from (seed, i) alone, so
// its result does not depend on which worker, process or machine runs it.
//
// Trials are appended to a CSV file as they finish (and flushed), and a
// rerun skips those already recorded. A run with -shard i/n does only the
// trials with index ≡ i (mod n) and records them in its own file,
// trials.shard-i-of-n.csv; trials recorded by other shards in the same
// folder count as done. -merge DIR… combines the files of several folders.

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
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

var trialHeader = []string{"phase", "index", "log10_lambda", "lambda", "val_acc", "best_val_acc", "val_cost", "train_acc", "seconds", "hidden", "dropout"}

func (t Trial) record() []string {
	return []string{t.Phase, strconv.Itoa(t.Index), fmtFloat(t.LogLambda), fmtFloat(t.Lambda), fmtFloat(t.ValAcc),
		fmtFloat(t.BestValAcc), fmtFloat(t.ValCost), fmtFloat(t.TrainAcc), fmtFloat(t.Seconds), strconv.Itoa(t.Hidden), fmtFloat(t.Dropout)}
}

// trialPoint is where a trial samples the search space.
type trialPoint struct {
	LogLambda float64
	Hidden    int     // 0: the -hidden sizes
	Dropout   float64 // -dropout unless searched
}

// same reports whether a recorded trial was run at point p.
func (p trialPoint) same(t Trial) bool {
	return math.Abs(t.LogLambda-p.LogLambda) <= 1e-12 && (p.Hidden == 0 || t.Hidden == p.Hidden) && math.Abs(t.Dropout-p.Dropout) <= 1e-12
}

// readTrials reads a trials CSV; a file that is not one (wrong header, bad
// numbers) is an error naming the file and line, never silently replaced.
func readTrials(path string) ([]Trial, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w; move the file away or choose another -out", path, err)
	}
	if len(recs) == 0 || strings.Join(recs[0], ",") != strings.Join(trialHeader, ",") {
		return nil, fmt.Errorf("read %s: not a trials file of this program (want the header %s); move it away or choose another -out", path, strings.Join(trialHeader, ","))
	}
	var out []Trial
	for i, rec := range recs[1:] {
		if len(rec) != len(trialHeader) {
			return nil, fmt.Errorf("read %s: line %d has %d fields, want %d; the file is damaged (delete that line to rerun the trial)", path, i+2, len(rec), len(trialHeader))
		}
		var t Trial
		var nums [9]float64
		t.Phase = rec[0]
		idx, err := strconv.Atoi(rec[1])
		if err != nil || (t.Phase != "coarse" && t.Phase != "fine") {
			return nil, fmt.Errorf("read %s: line %d: bad phase or index %q, %q", path, i+2, rec[0], rec[1])
		}
		t.Index = idx
		for k := range nums {
			if nums[k], err = strconv.ParseFloat(rec[2+k], 64); err != nil {
				return nil, fmt.Errorf("read %s: line %d: field %s: %w", path, i+2, trialHeader[2+k], err)
			}
		}
		t.LogLambda, t.Lambda, t.ValAcc, t.BestValAcc, t.ValCost, t.TrainAcc, t.Seconds = nums[0], nums[1], nums[2], nums[3], nums[4], nums[5], nums[6]
		t.Hidden, t.Dropout = int(nums[7]), nums[8]
		out = append(out, t)
	}
	return out, nil
}

// readTrialDir reads every trials*.csv in dir (missing dir: none), keyed by
// index. Two files disagreeing about one index is an error.
func readTrialDir(dir string) (map[int]Trial, error) {
	files, _ := filepath.Glob(filepath.Join(dir, "trials*.csv"))
	sort.Strings(files)
	done := map[int]Trial{}
	for _, f := range files {
		ts, err := readTrials(f)
		if err != nil {
			return nil, err
		}
		for _, t := range ts {
			if old, ok := done[t.Index]; ok && (old.Lambda != t.Lambda || old.Phase != t.Phase) {
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
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	st, err := os.Stat(path)
	fresh := err != nil || st.Size() == 0
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	l := &trialLog{f: f, w: csv.NewWriter(f)}
	if fresh {
		if err := l.write(trialHeader); err != nil {
			f.Close()
			return nil, err
		}
	}
	return l, nil
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

// shardSpec resolves which shard this process runs: -shard i/n, else Slurm's
// SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT, else Kubernetes'
// JOB_COMPLETION_INDEX with -shards n; (0, 1) when none is set.
func shardSpec(cfg *Config, getenv func(string) string) (i, n int, err error) {
	parse := func(what, si, sn string) (int, int, error) {
		i, err1 := strconv.Atoi(strings.TrimSpace(si))
		n, err2 := strconv.Atoi(strings.TrimSpace(sn))
		if err1 != nil || err2 != nil || n <= 0 || i < 0 || i >= n {
			return 0, 0, usageErrorf("%s: want shard index i and count n with 0 ≤ i < n, got %q and %q", what, si, sn)
		}
		return i, n, nil
	}
	switch {
	case cfg.Shard != "":
		si, sn, ok := strings.Cut(cfg.Shard, "/")
		if !ok {
			return 0, 0, usageErrorf("-shard %q: want i/n, e.g. 0/4", cfg.Shard)
		}
		return parse("-shard", si, sn)
	case getenv("SLURM_ARRAY_TASK_ID") != "" && getenv("SLURM_ARRAY_TASK_COUNT") != "":
		// Slurm numbers array tasks from --array's first value; arrays for
		// this program are written 0-(n-1).
		return parse("SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT", getenv("SLURM_ARRAY_TASK_ID"), getenv("SLURM_ARRAY_TASK_COUNT"))
	case getenv("JOB_COMPLETION_INDEX") != "":
		if cfg.Shards <= 0 {
			return 0, 0, usageErrorf("JOB_COMPLETION_INDEX is set: give the job's completions as -shards n")
		}
		return parse("JOB_COMPLETION_INDEX/-shards", getenv("JOB_COMPLETION_INDEX"), strconv.Itoa(cfg.Shards))
	}
	return 0, 1, nil
}

// trialFile is this process's results file in cfg.Out.
func trialFile(out string, shard, shards int) string {
	if shards == 1 {
		return filepath.Join(out, "trials.csv")
	}
	return filepath.Join(out, fmt.Sprintf("trials.shard-%d-of-%d.csv", shard, shards))
}

// coarsePoints draws the coarse phase: log10 λ uniform in [lmin, lmax];
// with -search-hidden, log2 of the width uniform between the two sizes; with
// -search-dropout, p uniform in its range. Each dimension has its own random
// stream, so turning one on does not change the λ values drawn.
func coarsePoints(cfg *Config) []trialPoint {
	return drawPoints(cfg, 1000, [3][2]float64{{cfg.LMin, cfg.LMax}, logWidthRange(cfg), dropoutRange(cfg)})
}

// finePoints draws the fine phase: each searched dimension uniform in the
// best coarse trial's value ± an eighth of its coarse range, clipped to it.
func finePoints(cfg *Config, best Trial) (ranges [3][2]float64, ps []trialPoint) {
	coarse := [3][2]float64{{cfg.LMin, cfg.LMax}, logWidthRange(cfg), dropoutRange(cfg)}
	centre := [3]float64{best.LogLambda, math.Log2(float64(max(1, best.Hidden))), best.Dropout}
	for d, r := range coarse {
		half := (r[1] - r[0]) / 8
		ranges[d] = [2]float64{math.Max(r[0], centre[d]-half), math.Min(r[1], centre[d]+half)}
	}
	return ranges, drawPoints(cfg, 1001, ranges)
}

// drawPoints draws cfg.Trials points from the ranges of log10 λ, log2 width
// and dropout (a width range of {0, 0} means "not searched").
func drawPoints(cfg *Config, stream uint64, r [3][2]float64) []trialPoint {
	rl, rh, rd := newRNG(cfg.Seed, stream), newRNG(cfg.Seed, stream+1000), newRNG(cfg.Seed, stream+2000)
	ps := make([]trialPoint, cfg.Trials)
	for i := range ps {
		ps[i].LogLambda = r[0][0] + (r[0][1]-r[0][0])*rl.Float64()
		if cfg.SearchHidden != nil {
			ps[i].Hidden = int(math.Round(math.Exp2(r[1][0] + (r[1][1]-r[1][0])*rh.Float64())))
		}
		ps[i].Dropout = cfg.Dropout
		if cfg.SearchDropout != nil {
			ps[i].Dropout = r[2][0] + (r[2][1]-r[2][0])*rd.Float64()
		}
	}
	return ps
}

// logWidthRange is log2 of -search-hidden's sizes ({0, 0} when not searched).
func logWidthRange(cfg *Config) [2]float64 {
	if cfg.SearchHidden == nil {
		return [2]float64{}
	}
	return [2]float64{math.Log2(float64(cfg.SearchHidden[0])), math.Log2(float64(cfg.SearchHidden[1]))}
}

// dropoutRange is -search-dropout's range ({p, p} when not searched).
func dropoutRange(cfg *Config) [2]float64 {
	if cfg.SearchDropout == nil {
		return [2]float64{cfg.Dropout, cfg.Dropout}
	}
	return [2]float64{cfg.SearchDropout[0], cfg.SearchDropout[1]}
}

// bestTrial is the trial with the highest final validation accuracy (ties:
// lower index).
func bestTrial(ts []Trial) Trial {
	best := ts[0]
	for _, t := range ts[1:] {
		if t.ValAcc > best.ValAcc || (t.ValAcc == best.ValAcc && t.Index < best.Index) {
			best = t
		}
	}
	return best
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

// runTrial trains one point and returns its record.
func runTrial(cfg *Config, sp *Splits, phase string, index int, pt trialPoint, gemmWorkers int) (Trial, error) {
	c := *cfg
	c.Lambda = math.Pow(10, pt.LogLambda)
	c.Dropout = pt.Dropout
	if pt.Hidden > 0 {
		c.Hidden = slices.Repeat([]int{pt.Hidden}, len(cfg.Hidden))
	}
	start := time.Now()
	gemm := NewGemmNamed(gemmWorkers, cfg.Kernel)
	defer gemm.Close()
	net := NewMLP(netSizes(&c, sp.Train.Dim()), c.He, newRNG(c.Seed, uint64(10000+index)))
	res, err := Train(&c, net, gemm, sp.Train, sp.Val, c.Seed+uint64(index)*7919, nil, nil, false)
	if err != nil {
		return Trial{}, fmt.Errorf("trial %d (λ=%.4g): %w", index, c.Lambda, err)
	}
	t := Trial{Phase: phase, Index: index, LogLambda: pt.LogLambda, Lambda: c.Lambda, Seconds: time.Since(start).Seconds(),
		Hidden: c.Hidden[0], Dropout: c.Dropout}
	for _, h := range res.History {
		t.BestValAcc = math.Max(t.BestValAcc, h.Val.Accuracy)
	}
	last := res.History[len(res.History)-1]
	t.ValAcc, t.ValCost, t.TrainAcc = last.Val.Accuracy, last.Val.Cost, last.Train.Accuracy
	return t, nil
}

// runTrials runs the given trials (index → log10 λ) on a pool of workers,
// logging each as it finishes.
func runTrials(cfg *Config, sp *Splits, phase string, todo map[int]trialPoint, log *trialLog, done map[int]Trial, stderr io.Writer, stop <-chan os.Signal) error {
	idx := make([]int, 0, len(todo))
	for i := range todo {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	workers := cfg.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = max(1, min(workers, len(idx)))
	gemmWorkers := max(1, runtime.GOMAXPROCS(0)/workers)
	jobs := make(chan int)
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				t, err := runTrial(cfg, sp, phase, i, todo[i], gemmWorkers)
				if err == nil {
					err = log.write(t.record())
				}
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				if err == nil {
					done[i] = t
					fmt.Fprintf(stderr, "%s trial %d: log10 λ=%.3f λ=%.3e hidden %d dropout %.2f  val acc %.2f%% (best %.2f%%)  %.0fs\n", phase, i, t.LogLambda, t.Lambda, t.Hidden, t.Dropout, 100*t.ValAcc, 100*t.BestValAcc, t.Seconds)
				}
				mu.Unlock()
			}
		}()
	}
	interrupted := false
feed:
	for _, i := range idx {
		select {
		case jobs <- i:
		case <-stop:
			interrupted = true
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	if interrupted {
		return errors.New("search interrupted; finished trials are recorded, rerun the same command to continue")
	}
	return nil
}

// runSearch is -mode=search.
func runSearch(cfg *Config, stdout, stderr io.Writer, stop <-chan os.Signal) error {
	if cfg.Merge {
		return mergeSearch(cfg, stdout)
	}
	_, err := searchOn(cfg, nil, stdout, stderr, stop)
	return err
}

// searchOn runs the search on the given splits (nil: load them as cfg says)
// and returns its summary once both phases are complete (nil before).
func searchOn(cfg *Config, sp *Splits, stdout, stderr io.Writer, stop <-chan os.Signal) (*SearchSummary, error) {
	shard, shards, err := shardSpec(cfg, os.Getenv)
	if err != nil {
		return nil, err
	}
	done, err := readTrialDir(cfg.Out)
	if err != nil {
		return nil, err
	}
	coarse := coarsePoints(cfg)
	for i, p := range coarse {
		if t, ok := done[i]; ok && (t.Phase != "coarse" || !p.same(t)) {
			return nil, fmt.Errorf("%s holds a different search (trial %d has log10 λ=%g, hidden %d, dropout %g; this command draws %g, %d, %g): use another -out or the same -seed, -trials, -lmin, -lmax and search ranges", cfg.Out, i, t.LogLambda, t.Hidden, t.Dropout, p.LogLambda, p.Hidden, p.Dropout)
		}
	}
	if sp == nil {
		if sp, err = LoadSplits(cfg, stderr); err != nil {
			return nil, err
		}
	}
	if cfg.NS == 0 {
		cfg.NS = 2 * (sp.Train.Len() / cfg.Batch) // the assignment's rule
	}
	log, err := openTrialLog(trialFile(cfg.Out, shard, shards))
	if err != nil {
		return nil, err
	}
	defer log.f.Close()
	mine := func(i int) bool { return i%shards == shard }

	todo := map[int]trialPoint{}
	for i, p := range coarse {
		if _, ok := done[i]; !ok && mine(i) {
			todo[i] = p
		}
	}
	fmt.Fprintf(stderr, "coarse search: %d of %d trials to run here (shard %d/%d), n_s=%d, %d cycles, %d training images\n", len(todo), cfg.Trials, shard, shards, cfg.NS, cfg.Cycles, sp.Train.Len())
	phaseStart := time.Now()
	if err := runTrials(cfg, sp, "coarse", todo, log, done, stderr, stop); err != nil {
		return nil, err
	}
	fmt.Fprintf(stderr, "coarse phase: %d trials in %.1f s\n", len(todo), time.Since(phaseStart).Seconds())
	ct := phaseTrials(done, "coarse")
	if len(ct) < cfg.Trials {
		fmt.Fprintf(stdout, "coarse trials recorded: %d of %d; the fine phase starts when all are in %s (rerun once the other shards are done)\n", len(ct), cfg.Trials, cfg.Out)
		return nil, nil
	}
	ranges, fine := finePoints(cfg, bestTrial(ct))
	todo = map[int]trialPoint{}
	for k, p := range fine {
		i := cfg.Trials + k
		if t, ok := done[i]; ok && !p.same(t) {
			return nil, fmt.Errorf("%s holds a different fine search (trial %d)", cfg.Out, i)
		}
		if _, ok := done[i]; !ok && mine(i) {
			todo[i] = p
		}
	}
	what := fmt.Sprintf("log10 λ ∈ [%.3f, %.3f]", ranges[0][0], ranges[0][1])
	if cfg.SearchHidden != nil {
		what += fmt.Sprintf(", width ∈ [%.0f, %.0f]", math.Exp2(ranges[1][0]), math.Exp2(ranges[1][1]))
	}
	if cfg.SearchDropout != nil {
		what += fmt.Sprintf(", dropout ∈ [%.2f, %.2f]", ranges[2][0], ranges[2][1])
	}
	fmt.Fprintf(stderr, "fine search in %s: %d trials to run here\n", what, len(todo))
	phaseStart = time.Now()
	if err := runTrials(cfg, sp, "fine", todo, log, done, stderr, stop); err != nil {
		return nil, err
	}
	fmt.Fprintf(stderr, "fine phase: %d trials in %.1f s\n", len(todo), time.Since(phaseStart).Seconds())
	if len(phaseTrials(done, "fine")) < cfg.Trials {
		fmt.Fprintf(stdout, "fine trials recorded: %d of %d; rerun once the other shards are done, or merge with -merge\n", len(phaseTrials(done, "fine")), cfg.Trials)
		return nil, nil
	}
	sum, err := reportSearch(cfg, done, stdout)
	if err != nil || !cfg.Final {
		return sum, err
	}
	return sum, finalRun(cfg, sp, sum, stdout, stderr, stop)
}

// SearchSummary is the search's summary.json.
type SearchSummary struct {
	Trials       int      `json:"trials_per_phase"`
	BestCoarse   Trial    `json:"best_coarse"`
	BestFine     *Trial   `json:"best_fine,omitempty"`
	Best         Trial    `json:"best"`
	FinalTestAcc optFloat `json:"final_test_accuracy"`
	FinalOut     string   `json:"final_out,omitempty"`
}

// reportSearch prints the top-3 tables, writes search.svg and summary.json.
func reportSearch(cfg *Config, done map[int]Trial, stdout io.Writer) (*SearchSummary, error) {
	ct, ft := phaseTrials(done, "coarse"), phaseTrials(done, "fine")
	if len(ct) == 0 {
		return nil, fmt.Errorf("no coarse trials recorded in %s", cfg.Out)
	}
	sum := &SearchSummary{Trials: cfg.Trials, BestCoarse: bestTrial(ct), FinalTestAcc: optFloat(math.NaN())}
	sum.Best = sum.BestCoarse
	printTop3(stdout, "Table 1: the 3 best λ of the coarse search", ct)
	if len(ft) > 0 {
		bf := bestTrial(ft)
		sum.BestFine = &bf
		if bf.ValAcc > sum.Best.ValAcc {
			sum.Best = bf
		}
		printTop3(stdout, "Table 2: the 3 best λ of the fine search", ft)
	}
	series := func(name, color string, ts []Trial) Series {
		s := Series{Name: name, Scatter: true, Color: color}
		for _, t := range ts {
			s.X, s.Y = append(s.X, t.LogLambda), append(s.Y, 100*t.ValAcc)
		}
		return s
	}
	plot := &Plot{Title: "λ search: validation accuracy", XLabel: "log10 λ", YLabel: "validation accuracy (%)",
		Series: []Series{series("coarse", "#1f77b4", ct), series("fine", "#ff7f0e", ft), series(fmt.Sprintf("best λ=%.3g", sum.Best.Lambda), "#d62728", []Trial{sum.Best})}}
	if err := writeBytesAtomic(filepath.Join(cfg.Out, "search.svg"), plot.SVG()); err != nil {
		return nil, err
	}
	fmt.Fprintf(stdout, "\nbest λ = %.4g (log10 %.3f), validation accuracy %.2f%%\nwrote %s/{search.svg,summary.json}\n", sum.Best.Lambda, sum.Best.LogLambda, 100*sum.Best.ValAcc, cfg.Out)
	return sum, writeJSON(filepath.Join(cfg.Out, "summary.json"), sum)
}

// printTop3 prints a table like the seed's Tables 1 and 2.
func printTop3(w io.Writer, title string, ts []Trial) {
	sorted := append([]Trial(nil), ts...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].ValAcc > sorted[j].ValAcc })
	fmt.Fprintf(w, "\n%s\n%-10s %-11s %-7s %-8s %-13s %-13s\n", title, "log10 λ", "λ", "hidden", "dropout", "val acc (%)", "best acc (%)")
	for _, t := range sorted[:min(3, len(sorted))] {
		fmt.Fprintf(w, "%-10.3f %-11.3e %-7d %-8.2f %-13.2f %-13.2f\n", t.LogLambda, t.Lambda, t.Hidden, t.Dropout, 100*t.ValAcc, 100*t.BestValAcc)
	}
}

// mergeSearch is -mode=search -merge DIR…: combine shard folders into cfg.Out.
func mergeSearch(cfg *Config, stdout io.Writer) error {
	all := map[int]Trial{}
	for _, dir := range cfg.Args {
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			return usageErrorf("-merge: %s is not a folder", dir)
		}
		d, err := readTrialDir(dir)
		if err != nil {
			return err
		}
		for i, t := range d {
			if old, ok := all[i]; ok && old.Lambda != t.Lambda {
				return fmt.Errorf("merge: trial %d has λ=%g in %s but %g elsewhere; these are different searches", i, t.Lambda, dir, old.Lambda)
			}
			all[i] = t
		}
	}
	if len(all) == 0 {
		return usageErrorf("-merge: no trials*.csv files in %v", cfg.Args)
	}
	idx := make([]int, 0, len(all))
	for i := range all {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	if err := writeFileAtomic(filepath.Join(cfg.Out, "trials.csv"), func(w io.Writer) error {
		cw := csv.NewWriter(w)
		cw.Write(trialHeader)
		for _, i := range idx {
			cw.Write(all[i].record())
		}
		cw.Flush()
		return cw.Error()
	}); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "merged %d trials into %s/trials.csv\n", len(all), cfg.Out)
	_, err := reportSearch(cfg, all, stdout)
	return err
}

// finalRun trains the best λ with the -mode=train schedule (n_s=900, 3
// cycles unless -final's companions say otherwise) and reports test accuracy.
func finalRun(cfg *Config, sp *Splits, sum *SearchSummary, stdout, stderr io.Writer, stop <-chan os.Signal) error {
	c := *cfg
	c.Lambda, c.Dropout = sum.Best.Lambda, sum.Best.Dropout
	if cfg.SearchHidden != nil {
		c.Hidden = slices.Repeat([]int{sum.Best.Hidden}, len(cfg.Hidden))
	}
	c.NS, c.Cycles = 900, 3
	c.Out = filepath.Join(cfg.Out, "final")
	fmt.Fprintf(stderr, "final run: λ=%.4g, n_s=%d, %d cycles\n", c.Lambda, c.NS, c.Cycles)
	rs, err := trainAndSave(&c, sp, fmt.Sprintf("best λ=%.4g, n_s=%d, %d cycles", c.Lambda, c.NS, c.Cycles), stderr, stop)
	if rs != nil {
		printSummary(stdout, rs, c.Out)
		sum.FinalTestAcc, sum.FinalOut = rs.TestAccuracy, c.Out
		if werr := writeJSON(filepath.Join(cfg.Out, "summary.json"), sum); werr != nil && err == nil {
			err = werr
		}
	}
	return err
}
