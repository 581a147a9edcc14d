// Command cifar-mlp trains a multi-layer perceptron on CIFAR-10 from scratch,
// with nothing but Go's standard library: cache-blocked GEMM kernels, the
// network and its gradients, cyclical learning rates, a λ search and SVG
// plots. See README.md for the manual.
//
//	go run . -mode=train     # the seed report's best run
//	go run . -mode=search    # coarse-to-fine random search for λ
//	go run . -h              # every mode and flag
//
// The files, in layers: each uses only the files above it (svgplot.go, a
// leaf that uses nothing else, is used by train.go, search.go and main.go).
//
//	matrix.go      the Matrix type, the GEMM engine, the Norm it applies to pixel bytes
//	               (matrix_amd64.go/.s: the CPU probe and the assembly micro-kernels)
//	network.go     RNG streams; Dataset; the MLP: forward/backward per layer, optimisers, evaluation
//	cifar.go       CIFAR-10: reading, download, splits, normalisation statistics, augmentation
//	train.go       the schedule, Train, checkpoints, the LR range test, the run folder, model.npz
//	gradcheck.go   analytic against numerical gradients
//	search.go      the coarse-to-fine λ search and its trials.csv
//	main.go        the flags, the modes and the report: the only file that knows
//	               the command line; the layers above take plain values
//	svgplot.go     SVG plots and an HTML page writer
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"
)

// ---------------------------------------------------------------------------
// The flag language: Config, the flags, presets and mode defaults, their checks.

// Config is every setting of a run, parsed from the flags in main and passed
// down explicitly (there is no global mutable state; the CPU probe in
// matrix_amd64.go is written once, before main runs).
type Config struct {
	Mode string

	// data
	Data     string
	Download bool
	DataURL  string // the archive to fetch (not a flag; tests point it at a local server)
	DataMD5  string
	Split    string
	Val      int
	MaxTrain int // -n: use only the first MaxTrain training images (0: all)

	// network
	Hidden     []int
	He         bool
	Whiten     string  // "none", "pca" or "zca"
	WhitenDims int     // pca: components kept (0: all)
	WhitenEps  float64 // ε added to each eigenvalue

	// training
	Lambda         float64
	EtaMin, EtaMax float64
	Eta            float64 // > 0: constant η instead of the cyclical schedule
	NS             int
	Cycles         int
	Epochs         int // > 0: train this many epochs instead of 2·n_s·cycles steps
	Batch          int
	Opt            string    // sgd, momentum, nesterov, adam
	Momentum       float64   // μ for momentum and nesterov
	Dropout        float64   // inverted dropout on hidden units, 0 ≤ p < 1
	Smooth         float64   // label smoothing ε
	Augment        bool      // random flips and ±3 px translations per batch
	Ensemble       bool      // average the nets saved at the end of each cycle
	TTA            bool      // test-time augmentation: also assess image and mirror, probabilities averaged
	TestCurve      bool      // evaluate the test set at every evaluation (time to accuracy)
	EMA            float64   // β of the weights' moving average (0: none)
	started        time.Time // when the process started: the time to accuracy counts from here
	Seed           uint64
	Evals          int
	Out            string
	Preset         string
	Model          string
	Workers        int
	Kernel         string // GEMM micro-kernel: auto, go, avx2, avx512
	CPUProfile     string
	Verbose        bool
	Args           []string          // positional arguments (images for -mode=predict)
	argv           []string          // the command line as given (the report reruns it with changes)
	flags          map[string]string // every flag's value after the mode's and preset's defaults (summary.json's "config")
	outGiven       bool              // -out was on the command line (else Out is the runs/<mode> parent)
	ownFolder      bool              // Out is a runs/<mode>/<time> folder of its own: runs/<mode>/latest points at it when it finishes
	Force          bool              // replace a finished run in an explicit -out
	ResumeDir      string            // -resume: the folder of an interrupted run
	resume         *Checkpoint
	shard, shards  int // -mode=search: this process's shard (from -shard or the environment)

	// gradcheck
	Dims int
	Step float64 // the finite-difference step h

	// search
	Trials        int
	LMin, LMax    float64
	SearchHidden  []int     // nil, or the smallest and largest width tried
	SearchDropout []float64 // nil, or the dropout range tried

	// report
	Quick  bool
	Beyond bool
	Final  bool
	Shard  string
	Shards int
	Wait   time.Duration
	Merge  bool
}

// usageError is a mistake in the command line: main prints it with a hint
// and exits with status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// flagError is a command line the flag package refused; it has already
// printed its one-line complaint.
type flagError struct{ err error }

func (e *flagError) Error() string { return e.err.Error() }
func (e *flagError) Unwrap() error { return e.err }

// presets are named recipes: flag values applied unless the command line
// sets the flag itself.
//
// best: one hidden layer of 2000 ReLU units on the first 400 principal
// components of the images, whitened (ε = 0.1), trained on 49,000 images
// whose batches are augmented on the fly (random flips, ±3 px shifts),
// λ = 5e-4, η ∈ [1e-5, 0.2] over five 20-epoch cycles, assessed with
// test-time augmentation too. See the README for its accuracy, time and
// the ablation that chose it.
//
// deep: best's recipe with two hidden layers of 1000 in place of one of
// 2000 (η_max = 0.2 was the best of 0.05, 0.1, 0.2 and 0.4 for them), on
// the first 200 principal components (the best of 200, 400 and 800 on
// validation for this net).
//
// fast: deep, trained for one 15-epoch cycle: past 60 % test accuracy in
// under two minutes.
var presets = map[string][][2]string{
	"best": bestRecipe,
	"deep": deepRecipe,
	"fast": changed(deepRecipe, [2]string{"ns", "3675"}, [2]string{"cycles", "1"}, [2]string{"evals", "1"}),
}

var (
	bestRecipe = [][2]string{
		{"hidden", "2000"}, {"augment", "true"}, {"whiten", "pca"}, {"whiten-dims", "400"}, {"whiten-eps", "0.1"},
		{"lambda", "5e-4"}, {"eta-min", "1e-5"}, {"eta-max", "0.2"}, {"ns", "4900"}, {"cycles", "5"},
		{"evals", "2"}, {"val", "1000"}, {"tta", "true"},
	}
	deepRecipe = changed(bestRecipe, [2]string{"hidden", "1000,1000"}, [2]string{"whiten-dims", "200"})
)

// changed is a copy of recipe with the values of some of its flags
// replaced (each flag must be one the recipe sets).
func changed(recipe [][2]string, changes ...[2]string) [][2]string {
	out := slices.Clone(recipe)
	for _, c := range changes {
		i := slices.IndexFunc(out, func(kv [2]string) bool { return kv[0] == c[0] })
		if i < 0 {
			panic("mlp: a preset changes -" + c[0] + ", which its base recipe does not set")
		}
		out[i] = c
	}
	return out
}

// presetNames lists the presets, in order ("best, deep or fast").
func presetNames() string {
	names := slices.Sorted(maps.Keys(presets))
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// The seed report's schedule: n_s = 900 steps per half cycle, 3 cycles.
// They are -ns and -cycles' defaults, and the schedule of the search's
// -final run and of the report's final run.
const (
	seedNS     = 900
	seedCycles = 3
)

// modeDefaults are the flag values a mode starts from where they differ
// from the flags' own defaults. They are applied like presets: a flag given
// on the command line always wins; they win over a preset's values (a
// preset is a training recipe: -preset best -mode=search still runs the
// search's short trials, with the preset's net).
//
// search:  each trial is 2 cycles with the assignment's n_s = 2·⌊n/batch⌋
//
//	(-ns 0 asks for that rule once n is known).
//
// overfit: the first 50 training images of batch 1, λ = 0, a constant
//
//	η = 0.001, batch 10, 200 epochs (the seed's Figure 1); validation
//	shows the same images.
var modeDefaults = map[string][][2]string{
	"search": {{"cycles", "2"}, {"ns", "0"}},
	"overfit": {{"n", "50"}, {"lambda", "0"}, {"eta", "0.001"}, {"epochs", "200"}, {"batch", "10"},
		{"split", "batch1"}, {"val", "0"}},
}

// flagGroups orders the flags in -h output by the modes that use them.
var flagGroups = []struct {
	title string
	names []string
}{
	{"General", []string{"mode", "preset", "out", "force", "resume", "seed", "workers", "kernel", "v", "cpuprofile"}},
	{"Data (train, search, eval, gradcheck, overfit, lrtest, report)", []string{"data", "download", "split", "val", "n"}},
	{"Network", []string{"hidden", "he", "whiten", "whiten-dims", "whiten-eps"}},
	{"Training (train, overfit, lrtest, report, search trials)", []string{"lambda", "eta-min", "eta-max", "eta", "ns", "cycles", "epochs", "batch", "opt", "momentum", "dropout", "smooth", "augment", "ensemble", "ema", "tta", "evals", "test-curve"}},
	{"Evaluation and prediction (eval, predict)", []string{"model"}},
	{"Gradient check (gradcheck)", []string{"dims", "step"}},
	{"λ search (search)", []string{"trials", "lmin", "lmax", "search-hidden", "search-dropout", "final", "shard", "shards", "wait", "merge"}},
	{"Report (report)", []string{"quick", "beyond"}},
}

const usageHead = `cifar-mlp: a from-scratch MLP for CIFAR-10 in pure Go.

Usage:
  go run . -mode=train     [flags]           train (defaults: the seed's best run)
  go run . -mode=search    [flags]           coarse-to-fine random search for λ
  go run . -mode=search -merge DIR...        merge the results of sharded searches
  go run . -mode=eval      -model M.npz      test accuracy, per-class table, confusion matrix
  go run . -mode=predict   -model M.npz IMG...   top-3 classes of PNG/JPEG images (scaled to 32×32)
  go run . -mode=gradcheck [flags]           analytic vs numerical gradients
  go run . -mode=overfit   [flags]           memorise 50 training images (sanity check)
  go run . -mode=lrtest    [flags]           learning-rate range test: ramp η over -ns steps
  go run . -mode=report    [-quick]          every experiment of the report, as one report.html
  go run . -preset best    [flags]           the 67 % recipe (one layer of 2000 units, whitening, augmentation)
  go run . -preset deep    [flags]           the same with two hidden layers of 1000 (on 200 components)
  go run . -preset fast    [flags]           60 % in under two minutes (deep, one 15-epoch cycle)
`

// usageHint follows every usage error.
const usageHint = "run 'go run . -h' for every mode and flag"

// newFlagSet declares every flag, writing into cfg.
func newFlagSet(cfg *Config, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("cifar-mlp", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&cfg.Mode, "mode", "train", "what to do: train, search, eval, predict, gradcheck, overfit, lrtest, report")
	fs.StringVar(&cfg.Out, "out", "", "output folder (default: a new runs/<mode>/<date>-<time> folder; search: runs/search)")
	fs.StringVar(&cfg.ResumeDir, "resume", "", "continue the interrupted training run in this folder from its checkpoint, with its own settings, to the end of its schedule")
	fs.BoolVar(&cfg.Force, "force", false, "replace the finished run an explicit -out holds (without it, that is refused)")
	fs.StringVar(&cfg.Preset, "preset", "", "a named recipe of flag values (flags given explicitly win): "+presetNames())
	fs.Uint64Var(&cfg.Seed, "seed", 1, "random seed for initialisation, shuffling and the search")
	fs.IntVar(&cfg.Workers, "workers", 0, "goroutines for the GEMM, or search trials run at once (0: GOMAXPROCS)")
	fs.StringVar(&cfg.Kernel, "kernel", "auto", "GEMM micro-kernel: auto (the fastest per product among those this CPU runs), go, avx2 or avx512")
	fs.BoolVar(&cfg.Verbose, "v", false, "verbose: also name the GEMM kernel and CPU (always in summary.json), and the shard")
	fs.StringVar(&cfg.CPUProfile, "cpuprofile", "", "write a CPU profile of the run to this file (read it with go tool pprof)")

	fs.StringVar(&cfg.Data, "data", "cifar-10-batches-bin", "folder with the CIFAR-10 binary batches (downloaded if missing)")
	fs.BoolVar(&cfg.Download, "download", true, "download CIFAR-10 when -data does not exist (false: never touch the network)")
	fs.StringVar(&cfg.Split, "split", "all", "all: train on batches 1-5 minus the last -val images; batch1: train on batch 1, validate on batch 2")
	fs.IntVar(&cfg.Val, "val", 5000, "validation images held out from the end of the training batches (-split all), or taken from batch 2 (-split batch1; 0 = all)")
	fs.IntVar(&cfg.MaxTrain, "n", 0, "use only the first N training images (0: all)")

	fs.Func("hidden", "hidden layer sizes, comma-separated (e.g. 50 or 50,50) (default 50)", func(s string) error {
		h, err := parseHidden(s)
		if err == nil {
			cfg.Hidden = h
		}
		return err
	})
	fs.BoolVar(&cfg.He, "he", false, "He initialisation σ=√(2/fan_in) instead of the assignment's 1/√fan_in")
	fs.StringVar(&cfg.Whiten, "whiten", "none", "input transform fitted on the training images, part of the model: none, pca (the first -whiten-dims principal components, each scaled to unit variance) or zca (all of them, turned back into pixel space)")
	fs.IntVar(&cfg.WhitenDims, "whiten-dims", 0, "-whiten pca: principal components kept, k (0: all 3072)")
	fs.Float64Var(&cfg.WhitenEps, "whiten-eps", 0.1, "-whiten: ε added to every eigenvalue before the scaling by (λ+ε)^(−½) (the inputs' mean eigenvalue is 1)")

	fs.Float64Var(&cfg.Lambda, "lambda", 1.526e-3, "L2 regularisation strength λ")
	fs.Float64Var(&cfg.EtaMin, "eta-min", 1e-5, "cyclical learning rate: minimum η")
	fs.Float64Var(&cfg.EtaMax, "eta-max", 1e-1, "cyclical learning rate: maximum η")
	fs.Float64Var(&cfg.Eta, "eta", 0, "constant learning rate instead of the cyclical schedule (0: cyclical)")
	fs.IntVar(&cfg.NS, "ns", seedNS, "steps per half cycle n_s (search: 0 means 2·⌊n/batch⌋)")
	fs.IntVar(&cfg.Cycles, "cycles", seedCycles, "number of learning-rate cycles (search: default 2)")
	fs.IntVar(&cfg.Epochs, "epochs", 0, "train this many epochs instead of 2·n_s·cycles steps (0: use the cycles)")
	fs.IntVar(&cfg.Batch, "batch", 100, "mini-batch size")
	fs.StringVar(&cfg.Opt, "opt", "sgd", "optimiser: sgd, momentum, nesterov or adam (η still follows the schedule)")
	fs.Float64Var(&cfg.Momentum, "momentum", 0.9, "μ for -opt momentum and nesterov")
	fs.Float64Var(&cfg.Dropout, "dropout", 0, "inverted dropout: drop each hidden unit with probability p while training")
	fs.Float64Var(&cfg.Smooth, "smooth", 0, "label smoothing: train against targets (1−ε)·one-hot + ε/10 (the reported loss and cost stay the plain cross-entropy's)")
	fs.BoolVar(&cfg.Augment, "augment", false, "augment every batch: random left-right flips and translations of up to ±3 pixels")
	fs.BoolVar(&cfg.Ensemble, "ensemble", false, "snapshot ensemble: also report the accuracy of the nets saved at each cycle's end, softmax outputs averaged")
	fs.Float64Var(&cfg.EMA, "ema", 0, "also keep an exponential moving average of the weights, θ̄ ← β·θ̄ + (1−β)·θ after every step, with this β (e.g. 0.999; 0: none), and report and save it (model-ema.npz)")
	fs.BoolVar(&cfg.TTA, "tta", false, "test-time augmentation: also report the accuracy of the mean softmax output over each image and its mirror (train: the final net; eval: instead of the plain accuracy)")
	fs.BoolVar(&cfg.TestCurve, "test-curve", false, "train: also evaluate the test set at every evaluation, for the time to accuracy (history.csv's test_acc and seconds columns, summary.json's seconds_to_test_accuracy); choose nothing by it")
	fs.IntVar(&cfg.Evals, "evals", 10, "evaluations of train and validation sets per cycle")

	fs.StringVar(&cfg.Model, "model", "runs/train/latest/model.npz", "saved model for -mode=eval and -mode=predict (eval: a comma-separated list evaluates their ensemble)")

	fs.IntVar(&cfg.Dims, "dims", 50, "gradcheck: input dimensions used in check (a)")
	fs.Float64Var(&cfg.Step, "step", 1e-5, "gradcheck: finite-difference step h")

	fs.IntVar(&cfg.Trials, "trials", 8, "search: λ values tried in each phase (coarse, fine)")
	fs.Float64Var(&cfg.LMin, "lmin", -5, "search: coarse range lower end of log10 λ")
	fs.Float64Var(&cfg.LMax, "lmax", -1, "search: coarse range upper end of log10 λ")
	fs.Func("search-hidden", "search: also draw the hidden width, log-uniform between two sizes (e.g. 50,1000)", func(s string) error {
		v, err := parseHidden(s)
		if err != nil || len(v) != 2 || v[0] > v[1] {
			return fmt.Errorf("want two sizes lo,hi with lo ≤ hi, e.g. 50,1000; got %q", s)
		}
		cfg.SearchHidden = v
		return nil
	})
	fs.Func("search-dropout", "search: also draw the dropout probability, uniform in lo,hi (e.g. 0,0.5)", func(s string) error {
		lo, hi, ok := strings.Cut(s, ",")
		a, err1 := strconv.ParseFloat(strings.TrimSpace(lo), 64)
		b, err2 := strconv.ParseFloat(strings.TrimSpace(hi), 64)
		if !ok || err1 != nil || err2 != nil || !(a >= 0 && b < 1 && a <= b) {
			return fmt.Errorf("want lo,hi with 0 ≤ lo ≤ hi < 1, e.g. 0,0.5; got %q", s)
		}
		cfg.SearchDropout = []float64{a, b}
		return nil
	})
	fs.BoolVar(&cfg.Final, "final", false, "search: afterwards train the best λ with the -mode=train schedule and report test accuracy")
	fs.StringVar(&cfg.Shard, "shard", "", "search: run only shard i of n (\"i/n\", trials with index ≡ i mod n)")
	fs.IntVar(&cfg.Shards, "shards", 0, "search: number of shards n when the index i comes from SLURM_ARRAY_TASK_ID (Slurm arrays) or JOB_COMPLETION_INDEX (Kubernetes Indexed Jobs)")
	fs.DurationVar(&cfg.Wait, "wait", 2*time.Hour, "search, sharded: how long a shard that has run its coarse trials waits for the other shards' before giving up (0: do not wait)")
	fs.BoolVar(&cfg.Merge, "merge", false, "search: merge the trials.csv files of the shard folders given as arguments")

	fs.BoolVar(&cfg.Quick, "quick", false, "report: a smoke version of every experiment (a few minutes)")
	fs.BoolVar(&cfg.Beyond, "beyond", false, "report: also the section \"Beyond the assignment\": one trick per row from the seed's net to -preset best, then -preset best and deep (about half an hour more)")

	fs.Usage = func() {
		fmt.Fprint(out, usageHead)
		for _, g := range flagGroups {
			fmt.Fprintf(out, "\n%s:\n", g.title)
			for _, name := range g.names {
				f := fs.Lookup(name)
				line := fmt.Sprintf("  -%-14s %s", f.Name, f.Usage)
				if f.DefValue != "" && f.DefValue != "[]" && !strings.Contains(f.Usage, "(default") {
					line += fmt.Sprintf(" (default %s)", f.DefValue)
				}
				fmt.Fprintln(out, line)
			}
		}
	}
	return fs
}

// parseHidden reads "50" or "50,50".
func parseHidden(s string) ([]int, error) {
	var h []int
	for _, part := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("want positive layer sizes like 50 or 50,50, got %q", s)
		}
		h = append(h, v)
	}
	return h, nil
}

// parseConfig parses the command line into a Config and checks it.
func parseConfig(args []string, stderr io.Writer) (*Config, error) {
	cfg, fs, given, err := parseFlags(args, stderr)
	if err != nil {
		return nil, err
	}
	if given["resume"] && strings.TrimSpace(cfg.ResumeDir) == "" {
		return nil, usageErrorf("-resume needs the folder of the run to continue, e.g. -resume runs/train/<time> (an interrupted run prints it); without -resume a new run starts")
	}
	if cfg.ResumeDir != "" {
		return resumeConfig(cfg, fs, given, stderr)
	}
	if cfg.Mode == "overfit" && given["val"] {
		return nil, usageErrorf("-val: overfit trains and validates on the same -n images; it has no validation set")
	}
	if cfg.Whiten != "none" && cfg.Mode != "train" && cfg.Mode != "search" {
		return nil, usageErrorf("-whiten %s: only -mode=train and -mode=search fit an input transform (a model trained with one applies it in eval and predict by itself)", cfg.Whiten)
	}
	if cfg.Mode == "search" && given["lambda"] {
		return nil, usageErrorf("-lambda: a search draws log10 λ from [-lmin, -lmax] (now [%g, %g]); set those, or use -mode=train for one λ", cfg.LMin, cfg.LMax)
	}
	cfg.outGiven = given["out"]
	cfg.ownFolder = !cfg.outGiven
	if !cfg.outGiven {
		// Every run gets a folder of its own, runs/<mode>/<time>[-<preset>]
		// (chosen in newRunFolder), except a search, whose folder is
		// resumable by design: runs/search[-<preset>].
		cfg.Out = filepath.Join("runs", cfg.Mode)
		if cfg.Mode == "search" && cfg.Preset != "" {
			cfg.Out += "-" + cfg.Preset
		}
	}
	if err := cfg.check(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// parseFlags parses args into a new Config, then gives the flags that args
// leaves out the mode's and the preset's defaults. given lists the flags
// args sets; fs holds every flag's value.
func parseFlags(args []string, stderr io.Writer) (cfg *Config, fs *flag.FlagSet, given map[string]bool, err error) {
	cfg = &Config{Hidden: []int{50}, DataURL: cifarURL, DataMD5: cifarMD5, argv: slices.Clone(args)}
	fs = newFlagSet(cfg, stderr)
	// A bad flag gets the flag package's one-line complaint and a pointer
	// to -h, not the whole usage (it would scroll the message away).
	usage := fs.Usage
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage()
			return nil, nil, nil, err
		}
		if name, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: -"); ok {
			if near := nearestFlag(fs, name); near != "" {
				fmt.Fprintf(stderr, "did you mean -%s?\n", near)
			}
		}
		fmt.Fprintln(stderr, usageHint)
		return nil, nil, nil, &flagError{err}
	}
	cfg.Args = fs.Args()
	given = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	set := maps.Clone(given)
	// applyDefaults sets the flags the command line did not give.
	applyDefaults := func(what string, values [][2]string) {
		for _, kv := range values {
			if !set[kv[0]] {
				if err := fs.Set(kv[0], kv[1]); err != nil {
					panic(fmt.Sprintf("mlp: %s: -%s %s: %v", what, kv[0], kv[1], err))
				}
				set[kv[0]] = true
			}
		}
	}
	applyDefaults("mode "+cfg.Mode, modeDefaults[cfg.Mode])
	if cfg.Preset != "" {
		values, ok := presets[cfg.Preset]
		if !ok {
			return nil, nil, nil, usageErrorf("-preset %q: unknown preset; want %s", cfg.Preset, presetNames())
		}
		applyDefaults("preset "+cfg.Preset, values)
	}
	cfg.flags = map[string]string{}
	fs.VisitAll(func(f *flag.Flag) { cfg.flags[f.Name] = f.Value.String() })
	// The lists (fs.Func flags keep no value of their own).
	cfg.flags["hidden"], cfg.flags["search-hidden"] = joinInts(cfg.Hidden), joinInts(cfg.SearchHidden)
	cfg.flags["search-dropout"] = joinFloats(cfg.SearchDropout)
	return cfg, fs, given, nil
}

// nearestFlag is the flag whose name is within two edits of name (the
// closest, the first in order on a tie), or "".
func nearestFlag(fs *flag.FlagSet, name string) string {
	best, bestD := "", 3
	fs.VisitAll(func(f *flag.Flag) {
		if d := editDistance(name, f.Name); d < bestD {
			best, bestD = f.Name, d
		}
	})
	return best
}

// editDistance is the Levenshtein distance between a and b (insertions,
// deletions and substitutions of one character each cost 1).
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur := make([]int, len(rb)+1)
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			sub := prev[j-1]
			if ra[i-1] != rb[j-1] {
				sub++
			}
			cur[j] = min(sub, prev[j]+1, cur[j-1]+1)
		}
		prev = cur
	}
	return prev[len(rb)]
}

// resumeFlags may accompany -resume with any value: they cannot change the
// run's bits. Any other flag may be given only with the run's own value
// (the command that started it, with -resume added, is accepted as it is).
var resumeFlags = map[string]bool{"resume": true, "data": true, "download": true, "workers": true, "kernel": true, "v": true, "cpuprofile": true}

// resumeConfig is the configuration of -resume DIR: the command line that
// started the run (kept in DIR/checkpoint.npz), with the flags of
// resumeFlags given now, writing into DIR again. fs and given are the
// current command line's flags.
func resumeConfig(cfg *Config, fs *flag.FlagSet, given map[string]bool, stderr io.Writer) (*Config, error) {
	dir := cfg.ResumeDir
	path := filepath.Join(dir, "checkpoint.npz")
	if _, err := os.Stat(path); err != nil {
		return nil, usageErrorf("-resume %s: no checkpoint.npz there (a training run writes it at every evaluation and when interrupted, and removes it when it finishes)", dir)
	}
	cp, err := ReadCheckpoint(path)
	if err != nil {
		return nil, fmt.Errorf("-resume %s: %w; the run cannot continue from it: start it again with its command and -out %s -force", dir, err, dir)
	}
	// The checkpoint's command line is checked like a user's, and loses
	// what only its own process was to do: a profile it was to write (a
	// file anywhere) and -resume.
	_, stored, storedGiven, err := parseFlags(cp.Args, io.Discard)
	if err != nil {
		return nil, fmt.Errorf("-resume %s: the command line kept in its checkpoint does not parse (%v); start the run again with -out %s -force", dir, err, dir)
	}
	cp.Args = dropFlags(cp.Args, stored, "cpuprofile", "resume")
	for _, name := range slices.Sorted(maps.Keys(given)) {
		if resumeFlags[name] {
			continue
		}
		if v, run := fs.Lookup(name).Value.String(), stored.Lookup(name).Value.String(); v != run {
			return nil, usageErrorf("-resume continues a run with its own settings; -%s cannot be changed (the run's is %s, not %s; with -resume any value is allowed only for -data, -download, -workers, -kernel, -v)", name, run, v)
		}
	}
	var others []string // every flag but the resumeFlags other than -resume
	fs.VisitAll(func(f *flag.Flag) {
		if !resumeFlags[f.Name] || f.Name == "resume" {
			others = append(others, f.Name)
		}
	})
	now := dropFlags(cfg.argv, fs, others...) // the resumeFlags given now, as given
	if !given["download"] {
		now = append(now, "-download=false") // a resumed run downloads only when told to now
	}
	args := append(append(slices.Clone(cp.Args), now...), "-out", dir, "-force")
	resumed, err := parseConfig(args, stderr)
	if err != nil {
		return nil, err
	}
	if resumed.Mode != "train" && resumed.Mode != "overfit" {
		return nil, usageErrorf("-resume %s: a checkpoint of -mode=%s cannot be resumed", dir, resumed.Mode)
	}
	resumed.argv, resumed.resume, resumed.ResumeDir = cp.Args, cp, dir
	// The run started without -out had a runs/<mode>/<time> folder of its
	// own: once finished, latest points at it as at any such run.
	resumed.ownFolder = !storedGiven["out"]
	return resumed, nil
}

// dropFlags returns args without the named flags and their values (fs
// knows which flags take a value).
func dropFlags(args []string, fs *flag.FlagSet, names ...string) []string {
	var kept []string
	for i := 0; i < len(args); i++ {
		start := i
		name, _, hasValue := strings.Cut(strings.TrimLeft(args[i], "-"), "=")
		if f := fs.Lookup(name); f != nil && !hasValue && !isBoolFlag(f) {
			i++
		}
		if !slices.Contains(names, name) {
			kept = append(kept, args[start:min(i+1, len(args))]...)
		}
	}
	return kept
}

// isBoolFlag reports whether f is a boolean flag (-v, not -v value).
func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// Bounds of the flags: beyond them a run overflows, exhausts the memory or
// cannot finish, so they are refused before any work.
const (
	maxSteps   = 1_000_000_000 // steps of a run (2·n_s·cycles, epochs·⌊n/batch⌋), evaluations
	maxBatch   = 1_000_000
	maxLambda  = 1e3
	maxEta     = 1e3
	maxLog10   = 30 // |log10 λ| of the search range
	maxTrials  = 100_000
	maxWorkers = 4096
	maxLayers  = 100
	maxParams  = 100_000_000 // weights of the net (800 MB per copy; training keeps 2–4 copies)
)

// checkNet checks the net's flags: its layers, its input transform, and
// the other tricks beyond the assignment.
func (c *Config) checkNet() error {
	if err := checkNetSize("-hidden", c.Hidden); err != nil {
		return err
	}
	if h := c.SearchHidden; h != nil {
		if err := checkNetSize("-search-hidden", []int{h[1]}); err != nil {
			return err
		}
	}
	switch {
	case !(c.EMA >= 0 && c.EMA < 1):
		return usageErrorf("-ema %g: β must be in [0, 1) (0: no average)", c.EMA)
	case !(c.Smooth >= 0 && c.Smooth < 1):
		return usageErrorf("-smooth %g: ε must be in [0, 1)", c.Smooth)
	case c.Whiten != "none" && c.Whiten != "pca" && c.Whiten != "zca":
		return usageErrorf("-whiten %q: want none, pca or zca", c.Whiten)
	case c.WhitenDims < 0 || c.WhitenDims > inputDim:
		return usageErrorf("-whiten-dims %d: must be in 0…%d (0: all)", c.WhitenDims, inputDim)
	case c.WhitenDims > 0 && c.Whiten != "pca":
		return usageErrorf("-whiten-dims %d needs -whiten pca (zca keeps every dimension)", c.WhitenDims)
	case !(c.WhitenEps >= 0 && c.WhitenEps <= 1e6) || (c.WhitenEps == 0 && c.Whiten != "none"):
		return usageErrorf("-whiten-eps %g: ε must be a number in (0, 1e6]", c.WhitenEps)
	}
	return nil
}

// checkNetSize checks hidden layer sizes: positive, at most maxLayers
// layers, and a net of at most maxParams weights on 3072 inputs.
func checkNetSize(flagName string, hidden []int) error {
	if len(hidden) > maxLayers {
		return usageErrorf("%s: %d hidden layers, at most %d", flagName, len(hidden), maxLayers)
	}
	params, in := 0, inputDim
	for _, h := range append(slices.Clone(hidden), numClasses) {
		if h <= 0 || h > maxParams/in || params > maxParams-h*in {
			return usageErrorf("%s %s: a net of more than %d weights does not fit in memory; choose smaller layers", flagName, joinInts(hidden), maxParams)
		}
		params += h * in
		in = h
	}
	return nil
}

// check validates the flags that do not depend on the data.
func (c *Config) check() error {
	switch c.Mode {
	case "train", "search", "eval", "predict", "gradcheck", "overfit", "lrtest", "report":
	default:
		return usageErrorf("-mode %q: unknown mode; want train, search, eval, predict, gradcheck, overfit, lrtest or report", c.Mode)
	}
	// Every float flag: finite and in its range (NaN fails every comparison,
	// so each range is written as "not inside").
	inside := func(v, lo, hi float64) bool { return v >= lo && v <= hi }
	switch {
	case !inside(c.Lambda, 0, maxLambda):
		return usageErrorf("-lambda %g: λ must be a number in [0, %g]", c.Lambda, float64(maxLambda))
	case c.Batch <= 0 || c.Batch > maxBatch:
		return usageErrorf("-batch %d: the batch size must be in 1…%d", c.Batch, maxBatch)
	case c.NS < 0 || (c.NS == 0 && c.Mode != "search") || c.NS > maxSteps:
		return usageErrorf("-ns %d: n_s must be in 1…%d", c.NS, maxSteps)
	case c.Cycles <= 0 || c.Cycles > maxSteps:
		return usageErrorf("-cycles %d: must be in 1…%d", c.Cycles, maxSteps)
	case c.Epochs == 0 && c.Eta == 0 && 2*c.NS > maxSteps/c.Cycles:
		return usageErrorf("-ns %d -cycles %d: 2·n_s·cycles is more than %d steps, more than a run can finish", c.NS, c.Cycles, maxSteps)
	case !(c.EtaMin > 0 && c.EtaMax > 0) || c.EtaMin > maxEta || c.EtaMax > maxEta:
		return usageErrorf("-eta-min %g, -eta-max %g: learning rates must be numbers in (0, %g]", c.EtaMin, c.EtaMax, float64(maxEta))
	case c.EtaMin > c.EtaMax:
		return usageErrorf("-eta-min %g is larger than -eta-max %g", c.EtaMin, c.EtaMax)
	case !inside(c.Eta, 0, maxEta):
		return usageErrorf("-eta %g: must be a number in [0, %g] (0 selects the cyclical schedule)", c.Eta, float64(maxEta))
	case !slices.Contains(Optimizers, c.Opt):
		return usageErrorf("-opt %q: unknown optimiser; want one of %s", c.Opt, strings.Join(Optimizers, ", "))
	case !(c.Momentum >= 0 && c.Momentum < 1):
		return usageErrorf("-momentum %g: μ must be in [0, 1)", c.Momentum)
	case !(c.Dropout >= 0 && c.Dropout < 1):
		return usageErrorf("-dropout %g: p must be in [0, 1)", c.Dropout)
	case c.Ensemble && (c.Eta > 0 || c.Epochs > 0):
		return usageErrorf("-ensemble takes a snapshot at the end of each learning-rate cycle; it needs the cyclical schedule (no -eta or -epochs)")
	case c.Evals <= 0 || c.Evals > maxSteps:
		return usageErrorf("-evals %d: must be in 1…%d", c.Evals, maxSteps)
	case c.Epochs < 0 || c.Epochs > maxSteps:
		return usageErrorf("-epochs %d: must be in 0…%d", c.Epochs, maxSteps)
	case c.MaxTrain < 0:
		return usageErrorf("-n %d: must be ≥ 0", c.MaxTrain)
	case c.Val < 0:
		return usageErrorf("-val %d: must be ≥ 0", c.Val)
	case c.Dims <= 0:
		return usageErrorf("-dims %d: must be positive", c.Dims)
	case !(c.Step > 0 && c.Step <= 1):
		return usageErrorf("-step %g: the step must be a number in (0, 1]", c.Step)
	case c.Split != SplitAll && c.Split != SplitBatch1:
		return usageErrorf("-split %q: want all or batch1", c.Split)
	case c.Trials <= 0 || c.Trials > maxTrials:
		return usageErrorf("-trials %d: must be in 1…%d", c.Trials, maxTrials)
	case !inside(c.LMin, -maxLog10, maxLog10) || !inside(c.LMax, -maxLog10, maxLog10):
		return usageErrorf("-lmin %g, -lmax %g: log10 λ must be numbers in [−%d, %d]", c.LMin, c.LMax, maxLog10, maxLog10)
	case c.LMin > c.LMax:
		return usageErrorf("-lmin %g is larger than -lmax %g", c.LMin, c.LMax)
	case c.Workers < 0 || c.Workers > maxWorkers:
		return usageErrorf("-workers %d: must be in 0…%d (0: GOMAXPROCS)", c.Workers, maxWorkers)
	case c.Wait < 0:
		return usageErrorf("-wait %v: must be ≥ 0", c.Wait)
	case c.Shards < 0 || c.Shards > maxTrials:
		return usageErrorf("-shards %d: must be in 0…%d", c.Shards, maxTrials)
	}
	if err := c.checkNet(); err != nil {
		return err
	}
	if _, err := kernelByName(c.Kernel); err != nil {
		return usageErrorf("-%v", err)
	}
	if c.Mode == "predict" && len(c.Args) == 0 {
		return usageErrorf("-mode=predict needs image files after the flags")
	}
	if len(c.Args) > 0 && c.Mode != "predict" && !(c.Mode == "search" && c.Merge) {
		return usageErrorf("unexpected arguments %q (only -mode=predict and -mode=search -merge take arguments)", c.Args)
	}
	return nil
}

// ---------------------------------------------------------------------------
// The process: signals, the run, its folder, exit codes and advice.

// Interrupted is the cause of the run's context once SIGINT (Ctrl-C) or
// SIGTERM (what schedulers such as Slurm's scancel and Kubernetes send)
// arrives: both mean "stop cleanly, keep what is finished".
type Interrupted struct{ Signal os.Signal }

func (e *Interrupted) Error() string { return "interrupted by " + signalName(e.Signal) }

// ExitCode is the shell's status for a process ended by the signal: 128 +
// its number (130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP, 141 for
// SIGPIPE).
func (e *Interrupted) ExitCode() int {
	if s, ok := e.Signal.(syscall.Signal); ok {
		return 128 + int(s)
	}
	return 128 + 2
}

// stopSignals all stop a run cleanly, as one: SIGINT (Ctrl-C), SIGTERM
// (scancel, Kubernetes), SIGHUP (the terminal or ssh session closed) and
// SIGPIPE (stdout or stderr piped into a reader that has quit, as in
// "… | head"; without it the first write there would kill the process).
var stopSignals = []os.Signal{os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE}

func signalName(s os.Signal) string {
	switch s {
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGHUP:
		return "SIGHUP"
	case syscall.SIGPIPE:
		return "SIGPIPE"
	}
	return "SIGINT"
}

// runLock is the lock file a run holds in its folder while it writes
// there (see runMode).
const runLock = ".run.lock"

// runMode runs cfg's mode. A mode that writes a run folder holds the
// folder's lock meanwhile (tryLock: refreshed every 10 s, taken over from a
// killed process), so that a second process, such as a -resume of a run
// that is still going, cannot write into the same folder.
func runMode(ctx context.Context, cfg *Config, stdout, stderr io.Writer) error {
	if cfg.Mode == "train" || cfg.Mode == "overfit" || cfg.Mode == "lrtest" || cfg.Mode == "report" {
		release, holder, err := tryLock(filepath.Join(cfg.Out, runLock))
		if err != nil {
			return err
		}
		if release == nil {
			return fmt.Errorf("another process (%s) is writing into %s; wait for it to finish, or stop it (Ctrl-C, kill) and then -resume %s", holder, cfg.Out, cfg.Out)
		}
		defer release()
	}
	var err error
	switch cfg.Mode {
	case "train":
		_, err = runTrain(ctx, cfg, stdout, stderr)
	case "overfit":
		_, err = runOverfit(ctx, cfg, stdout, stderr)
	case "eval":
		_, err = runEval(ctx, cfg, stdout, stderr)
	case "predict":
		err = runPredict(cfg, stdout)
	case "gradcheck":
		err = runGradCheck(ctx, cfg, stdout, stderr)
	case "search":
		_, err = runSearch(ctx, cfg, stdout, stderr)
	case "lrtest":
		err = runLRTest(ctx, cfg, stdout, stderr)
	case "report":
		err = runReport(ctx, cfg, stdout, stderr)
	}
	return err
}

// interruptedBy returns the signal that cancelled ctx, if one did.
func interruptedBy(ctx context.Context) *Interrupted {
	var in *Interrupted
	if errors.As(context.Cause(ctx), &in) {
		return in
	}
	return nil
}

// runCommand is main without the process: it parses args, runs the mode until
// it ends or ctx is cancelled, and returns the exit status: 0, 1 for a
// failure, 2 for a usage error, 130 or 143 when a signal interrupted it
// (after what was finished has been written).
func runCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	started := time.Now()
	cfg, err := parseConfig(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		var ue *usageError
		var fe *flagError
		switch {
		case errors.As(err, &ue):
			fmt.Fprintf(stderr, "cifar-mlp: %v\n%s\n", err, usageHint)
			return 2
		case errors.As(err, &fe):
			return 2 // the flag package has already printed its complaint
		default: // a file the command line names could not be used (-resume's checkpoint)
			fmt.Fprintf(stderr, "cifar-mlp: %v\n", err)
			return 1
		}
	}
	cfg.started = started
	if cfg.Mode == "search" && !cfg.Merge {
		if cfg.shard, cfg.shards, err = shardSpec(cfg, os.Getenv); err != nil {
			fmt.Fprintf(stderr, "cifar-mlp: %v\n", err)
			return 2
		}
	}
	if err := prepareOut(cfg); err != nil {
		fmt.Fprintf(stderr, "cifar-mlp: %v\n", err)
		return 2
	}
	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile)
		if err != nil {
			fmt.Fprintf(stderr, "cifar-mlp: -cpuprofile: %v\n", err)
			return 2
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "cifar-mlp: -cpuprofile: %v\n", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	return finish(ctx, cfg, runMode(ctx, cfg, stdout, stderr), stderr)
}

// ownRunFolder reports whether the mode wrote a runs/<mode>/<time> folder
// of its own (a search's folder is resumable, predict and gradcheck write
// nothing).
func (c *Config) ownRunFolder() bool {
	return c.ownFolder && c.Mode != "search" && c.Mode != "predict" && c.Mode != "gradcheck"
}

// finish reports how the mode ended and returns the exit status: it marks
// a finished run folder latest, removes one an early stop left empty, and
// turns an error into a message with advice (the flags to change).
func finish(ctx context.Context, cfg *Config, err error, stderr io.Writer) int {
	if err == nil && interruptedBy(ctx) == nil && cfg.ownRunFolder() {
		if lerr := markLatest(cfg.Out); lerr != nil {
			fmt.Fprintf(stderr, "cifar-mlp: warning: %v\n", lerr)
		}
	}
	// A new run folder that a failed or interrupted start left empty goes
	// (os.Remove removes no folder that holds anything).
	emptied := (err != nil || interruptedBy(ctx) != nil) && cfg.ownRunFolder() && cfg.ResumeDir == "" && os.Remove(cfg.Out) == nil
	if in := interruptedBy(ctx); in != nil {
		var again *Interrupted // the error that only repeats the signal
		if err != nil && !errors.Is(err, context.Canceled) && !errors.As(err, &again) {
			fmt.Fprintf(stderr, "cifar-mlp: %v\n", err)
		}
		if emptied {
			fmt.Fprintf(stderr, "cifar-mlp: %v before anything was written; nothing was touched\n", in)
			return in.ExitCode()
		}
		fmt.Fprintf(stderr, "cifar-mlp: %v; what was finished is written, nothing else was touched\n", in)
		if _, serr := os.Stat(filepath.Join(cfg.Out, "checkpoint.npz")); serr == nil && (cfg.Mode == "train" || cfg.Mode == "overfit") {
			fmt.Fprintf(stderr, "cifar-mlp: to continue where it stopped: go run . -resume %s\n", cfg.Out)
		}
		return in.ExitCode()
	}
	if err != nil {
		err = advise(cfg, err)
		fmt.Fprintf(stderr, "cifar-mlp: %v\n", err)
		var ue *usageError
		if errors.As(err, &ue) {
			return 2
		}
		return 1
	}
	return 0
}

// advise adds to the lower layers' typed errors what to do about them, in
// the flags' words (only main knows the flags).
func advise(cfg *Config, err error) error {
	var (
		de  *DivergedError
		dse *DivergedSearchError
		da  *DataError
		sm  *SettingsMismatchError
		sf  *SearchFileError
		ds  *DifferentSearchError
		sb  *SearchBusyError
	)
	switch {
	case errors.Is(err, errCheckpointMismatch):
		return fmt.Errorf("-resume %s: %w; start the run again with its command and -out %s -force", cfg.ResumeDir, err, cfg.ResumeDir)
	case errors.As(err, &de):
		return fmt.Errorf("%w; try a smaller -eta-max (now %g) or -eta", err, cfg.EtaMax)
	case errors.As(err, &dse):
		return fmt.Errorf("%w; try a smaller -eta-max or another λ range (-lmin, -lmax)", err)
	case errors.Is(err, errBadModel):
		return fmt.Errorf("%w (train one with -mode=train, or pass another -model)", err)
	case errors.As(err, &da):
		return dataAdvice(cfg, da, err)
	case errors.As(err, &sm):
		return fmt.Errorf("%s holds a search with other settings: %s; rerun with the folder's values or choose another -out", sm.Dir, sm.list(func(key, want string) string { return strings.TrimSpace("-" + key + " " + want) }))
	case errors.As(err, &sf):
		return fmt.Errorf("%w; move it away or choose another -out", err)
	case errors.As(err, &ds):
		return fmt.Errorf("%w: use another -out or the same -seed, -trials, -lmin, -lmax, -hidden and search ranges", err)
	case errors.As(err, &sb):
		return fmt.Errorf("%w; wait for it to finish or choose another -out (a lock left by a killed process is taken over at once on its own host, elsewhere %v after its last refresh)", err, lockStale)
	}
	return err
}

// dataAdvice is advise for a DataError.
func dataAdvice(cfg *Config, da *DataError, err error) error {
	src := cfg.dataSource()
	switch da.Problem {
	case DataNotHere:
		return fmt.Errorf("%w; point -data at the folder that holds them, at its parent, or at the downloaded cifar-10-binary.tar.gz", err)
	case DataNoDownload:
		return fmt.Errorf("%w (-download=false): download %s (MD5 %s) and run with -data path/to/cifar-10-binary.tar.gz (it is checked and unpacked next to it), or with -data path/to/%s after unpacking it yourself; or allow -download", err, src.URL, src.MD5, archiveFolder)
	case DataFileMissing:
		return fmt.Errorf("%w; delete the folder %s and rerun with -download=true (the default) to fetch CIFAR-10 again", err, filepath.Dir(da.Path))
	}
	return fmt.Errorf("%w (no internet? fetch the archive by hand, or point -data at a folder that holds data_batch_1.bin … test_batch.bin)", err)
}

// prepareOut picks the run's folder and checks it before any work: without
// -out, a new runs/<mode>/<date>-<time>[-<preset>] folder; an explicit -out
// that holds a finished run is refused unless -force; then probeOut.
func prepareOut(cfg *Config) error {
	if cfg.Mode == "predict" || cfg.Mode == "gradcheck" {
		return nil // they write nothing
	}
	if !cfg.outGiven && cfg.Mode != "search" {
		dir, err := newRunFolder(cfg.Out, cfg.Preset, time.Now())
		if err != nil {
			return err
		}
		cfg.Out = dir
	}
	if cfg.outGiven && !cfg.Force && (cfg.Mode == "train" || cfg.Mode == "overfit" || cfg.Mode == "lrtest" || cfg.Mode == "report") {
		if _, err := os.Stat(filepath.Join(cfg.Out, "checkpoint.npz")); err == nil {
			return usageErrorf("-out %s holds an interrupted run: continue it with -resume %s, or add -force to start again there", cfg.Out, cfg.Out)
		}
		for _, f := range []string{"summary.json", "lrtest.csv", "report.html"} {
			st, err := os.Stat(filepath.Join(cfg.Out, f))
			if err != nil {
				continue
			}
			return usageErrorf("-out %s already holds a finished run (%s of %s); give another folder, leave -out out for a new runs/%s/<date>-<time> folder, or add -force to replace it",
				cfg.Out, f, st.ModTime().Format("2006-01-02 15:04"), cfg.Mode)
		}
	}
	return probeOut(cfg)
}

// newRunFolder creates and returns a new folder under parent named by the
// time (20261127-104501), with "-<name>" when a preset is used, and "-2",
// "-3", … when runs start in the same second.
func newRunFolder(parent, name string, now time.Time) (string, error) {
	base := now.Format("20060102-150405")
	if name != "" {
		base += "-" + name
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", fmt.Errorf("-out: cannot create %s: %w", parent, err)
	}
	for i := 1; ; i++ {
		dir := filepath.Join(parent, base)
		if i > 1 {
			dir += "-" + strconv.Itoa(i)
		}
		err := os.Mkdir(dir, 0o755)
		if err == nil {
			return dir, nil
		}
		if !errors.Is(err, os.ErrExist) || i > 1000 {
			return "", fmt.Errorf("-out: cannot create %s: %w", dir, err)
		}
	}
}

// markLatest points parent/latest at the run folder dir once it is
// finished: a relative symbolic link, replaced atomically, or where links
// cannot be made a text file holding the folder's name (see resolveLatest).
func markLatest(dir string) error {
	parent, name := filepath.Split(filepath.Clean(dir))
	latest := filepath.Join(parent, "latest")
	tmp := filepath.Join(parent, fmt.Sprintf(".latest.tmp%d", os.Getpid()))
	os.Remove(tmp)
	if err := os.Symlink(name, tmp); err == nil {
		if err := os.Rename(tmp, latest); err == nil {
			return nil
		}
		os.Remove(tmp)
	}
	if st, err := os.Lstat(latest); err == nil && st.Mode()&os.ModeSymlink != 0 {
		os.Remove(latest)
	}
	return writeBytesAtomic(latest, []byte(name+"\n"))
}

// resolveLatest replaces a path element "latest" that is a text file (where
// markLatest could not make a link) by the folder it names.
func resolveLatest(path string) string {
	parts := strings.Split(filepath.ToSlash(path), "/")
	for i, p := range parts {
		if p != "latest" {
			continue
		}
		at := filepath.FromSlash(strings.Join(parts[:i+1], "/"))
		if st, err := os.Lstat(at); err == nil && st.Mode().IsRegular() {
			if b, err := os.ReadFile(at); err == nil {
				parts[i] = strings.TrimSpace(string(b))
			}
		}
	}
	return filepath.FromSlash(strings.Join(parts, "/"))
}

// probeOut checks, before any work, that the modes that write can create
// and write files in -out.
func probeOut(cfg *Config) error {
	if cfg.Mode == "predict" || cfg.Mode == "gradcheck" {
		return nil // they write nothing
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return fmt.Errorf("-out %s: cannot create the output folder: %w", cfg.Out, err)
	}
	f, err := os.CreateTemp(cfg.Out, ".probe-*")
	if err != nil {
		return fmt.Errorf("-out %s: cannot write there: %w", cfg.Out, err)
	}
	_, werr := f.Write([]byte("probe\n"))
	cerr := f.Close()
	os.Remove(f.Name())
	if werr != nil || cerr != nil {
		return fmt.Errorf("-out %s: cannot write there: %w", cfg.Out, errors.Join(werr, cerr))
	}
	return nil
}

// main runs the command line with SIGINT and SIGTERM turned into the
// cancellation of the run's context (cause *Interrupted): training stops
// after its current step and saves, a search after its running trials are
// abandoned, a download is cancelled and its temporary file removed. A
// second signal ends the process at once.
func main() {
	ctx, cancel := context.WithCancelCause(context.Background())
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, stopSignals...)
	go func() {
		in := &Interrupted{<-signals}
		fmt.Fprintf(os.Stderr, "\ncifar-mlp: %s: stopping cleanly (send it again to quit at once)\n", signalName(in.Signal))
		cancel(in)
		for s := range signals {
			if s == syscall.SIGPIPE {
				continue // every later write to the closed pipe raises another: not a second request
			}
			fmt.Fprintf(os.Stderr, "\ncifar-mlp: %s again: quitting now\n", signalName(s))
			os.Exit((&Interrupted{s}).ExitCode())
		}
	}()
	os.Exit(runCommand(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// ---------------------------------------------------------------------------
// From flags to the settings the lower layers take.

func (c *Config) dataSource() DataSource {
	return DataSource{Dir: c.Data, Download: c.Download, URL: c.DataURL, MD5: c.DataMD5}
}

func (c *Config) schedule() Schedule {
	return Schedule{EtaMin: c.EtaMin, EtaMax: c.EtaMax, Eta: c.Eta, NS: c.NS, Cycles: c.Cycles, Epochs: c.Epochs}
}

func (c *Config) trainOptions() TrainOptions {
	return TrainOptions{Schedule: c.schedule(), Batch: c.Batch, Lambda: c.Lambda, Opt: c.Opt, Momentum: c.Momentum,
		Dropout: c.Dropout, Smooth: c.Smooth, Augment: c.Augment, Ensemble: c.Ensemble, EMA: c.EMA, Evals: c.Evals, Seed: c.Seed, EvalTrain: true}
}

func (c *Config) runSpec(title string) RunSpec {
	return RunSpec{Out: c.Out, Title: title, Hidden: c.Hidden, He: c.He, Whiten: c.whitenSpec(), TTA: c.TTA, Seed: c.Seed, Workers: c.Workers, Kernel: c.Kernel,
		Options: c.trainOptions(), Settings: c.flags, Args: c.argv, Resume: c.resume}
}

func (c *Config) whitenSpec() WhitenSpec {
	if c.Whiten == "none" {
		return WhitenSpec{}
	}
	return WhitenSpec{Kind: c.Whiten, Dims: c.WhitenDims, Eps: c.WhitenEps}
}

func (c *Config) searchSpec(shard, shards int) SearchSpec {
	return SearchSpec{Out: c.Out, Trials: c.Trials, LMin: c.LMin, LMax: c.LMax, Hidden: c.Hidden,
		SearchHidden: c.SearchHidden, SearchDropout: c.SearchDropout, He: c.He, Whiten: c.whitenSpec(), Seed: c.Seed,
		Base: c.trainOptions(), Workers: c.Workers, Kernel: c.Kernel, Shard: shard, Shards: shards,
		Wait: c.Wait, Settings: c.searchSettings()}
}

// searchSettings are the flags that decide a search's results (besides
// each trial's drawn point), stored with its trials: a folder is resumed
// or merged only with the same values.
func (c *Config) searchSettings() map[string]string {
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	i := strconv.Itoa
	s := map[string]string{
		"split": c.Split, "val": i(c.Val), "n": i(c.MaxTrain), "hidden": joinInts(c.Hidden), "he": strconv.FormatBool(c.He),
		"batch": i(c.Batch), "ns": i(c.NS), "cycles": i(c.Cycles), "epochs": i(c.Epochs), "evals": i(c.Evals),
		"eta-min": f(c.EtaMin), "eta-max": f(c.EtaMax), "eta": f(c.Eta), "opt": c.Opt, "momentum": f(c.Momentum),
		"dropout": f(c.Dropout), "augment": strconv.FormatBool(c.Augment), "seed": strconv.FormatUint(c.Seed, 10),
		"trials": i(c.Trials), "lmin": f(c.LMin), "lmax": f(c.LMax), "search-hidden": joinInts(c.SearchHidden), "search-dropout": joinFloats(c.SearchDropout),
	}
	// Only when set: the folders of searches made before these flags stay valid.
	if c.Smooth != 0 {
		s["smooth"] = f(c.Smooth)
	}
	if c.EMA != 0 {
		s["ema"] = f(c.EMA)
	}
	if c.Whiten != "none" {
		s["whiten"], s["whiten-dims"], s["whiten-eps"] = c.Whiten, i(c.WhitenDims), f(c.WhitenEps)
	}
	return s
}

func (c *Config) gradCheckOptions() GradCheckOptions {
	return GradCheckOptions{Hidden: c.Hidden, He: c.He, Lambda: c.Lambda, Smooth: c.Smooth, Step: c.Step, Dims: c.Dims,
		Dropout: c.Dropout, Seed: c.Seed, Kernel: c.Kernel}
}

// loadSplits loads the splits the flags ask for, then checks the flags that
// depend on the data (usage errors, exit status 2).
func loadSplits(ctx context.Context, c *Config, stderr io.Writer) (*Splits, error) {
	sp, err := LoadSplits(ctx, c.dataSource(), c.Split, c.Val, c.MaxTrain, stderr)
	var se *SplitError
	switch {
	case errors.As(err, &se) && se.Empty:
		return nil, usageErrorf("the training split is empty; check -n and -val")
	case errors.As(err, &se):
		return nil, usageErrorf("-val %d: the validation set must hold at least 0 and fewer than the %d training images", se.Val, se.Available)
	case err != nil:
		return nil, err
	}
	return sp, checkFits(c, sp)
}

// checkFits checks the flags against the training data they will run on.
func checkFits(c *Config, sp *Splits) error {
	if n := sp.Train.Len(); c.Batch > n {
		return usageErrorf("-batch %d is larger than the training set (%d images)", c.Batch, n)
	}
	if c.Epochs > 0 && c.Epochs > maxSteps/max(1, sp.Train.Len()/c.Batch) {
		return usageErrorf("-epochs %d: %d epochs of %d steps is more than %d steps, more than a run can finish", c.Epochs, c.Epochs, sp.Train.Len()/c.Batch, maxSteps)
	}
	if c.Augment && sp.Train.Dim() != inputDim {
		return usageErrorf("-augment needs 32×32 colour images (%d values), the data has %d", inputDim, sp.Train.Dim())
	}
	if c.TTA && sp.Train.Dim() != inputDim {
		return usageErrorf("-tta needs 32×32 colour images (%d values), the data has %d", inputDim, sp.Train.Dim())
	}
	return nil
}

// kernelName names the micro-kernels -kernel selects on this machine.
func kernelName(kernel string) string {
	g := NewGemmNamed(1, kernel)
	defer g.Close()
	return g.KernelName()
}

// ---------------------------------------------------------------------------
// The modes.

// runTrain is -mode=train. It returns what it wrote to summary.json.
func runTrain(ctx context.Context, cfg *Config, stdout, stderr io.Writer) (*RunSummary, error) {
	sp, err := loadSplits(ctx, cfg, stderr)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(stderr, "training %v on %d images, validating on %d; λ=%g, η∈[%g, %g], n_s=%d, %s, batch %d; writing %s\n",
		trainedSizes(cfg), sp.Train.Len(), sp.Val.Len(), cfg.Lambda, cfg.EtaMin, cfg.EtaMax, cfg.NS, count(cfg.Cycles, "cycle"), cfg.Batch, cfg.Out)
	if cfg.resume != nil {
		fmt.Fprintf(stderr, "resuming %s at step %d\n", cfg.Out, cfg.resume.Step)
	}
	if cfg.Verbose {
		fmt.Fprintf(stderr, "GEMM %s on %s\n", kernelName(cfg.Kernel), cpuModel())
	}
	spec := cfg.runSpec(fmt.Sprintf("λ=%g, n_s=%d, %s", cfg.Lambda, cfg.NS, count(cfg.Cycles, "cycle")))
	spec.Options.Clock = cfg.started
	if cfg.TestCurve {
		spec.Options.Test = sp.Test
	}
	sum, err := TrainAndSave(ctx, spec, sp, stderr)
	if sum != nil {
		printSummary(stdout, sum, cfg.Out, cfg.Verbose)
	}
	return sum, err
}

// fmtSeconds prints seconds as 8.3s below a minute, else as 4m37s.
func fmtSeconds(s float64) string {
	if s < 60 {
		return fmt.Sprintf("%.1fs", s)
	}
	return fmtDuration(time.Duration(s * float64(time.Second)))
}

// trainedSizes are the layer sizes -mode=train builds: the input transform's
// output (if any), the hidden layers, the classes.
func trainedSizes(c *Config) []int {
	return netSizes(c.whitenSpec().Outputs(inputDim), c.Hidden)
}

// printSummary prints a training run's figures and files (with verbose,
// the GEMM kernel too; it is always in summary.json).
func printSummary(w io.Writer, sum *RunSummary, out string, verbose bool) {
	state := ""
	if sum.Interrupted {
		state = " (interrupted)"
	}
	kernel := ""
	if verbose {
		kernel = ", kernel " + sum.Kernel
	}
	fmt.Fprintf(w, "steps %d%s in %s (updates %s, waiting for evaluations %s)%s\ntrain accuracy %.2f%%  validation accuracy %.2f%%  test accuracy %.2f%%\n",
		sum.Steps, state, fmtSeconds(sum.TrainSeconds), fmtSeconds(sum.TrainSeconds-sum.EvalSeconds), fmtSeconds(sum.EvalSeconds), kernel, 100*sum.TrainAccuracy, 100*sum.ValAccuracy, 100*sum.TestAccuracy)
	files := "history.csv,summary.json,cost.svg,loss.svg,accuracy.svg,lr.svg,model.npz"
	if sum.TTATestAccuracy != 0 {
		fmt.Fprintf(w, "with test-time augmentation (image and mirror): validation accuracy %.2f%%  test accuracy %.2f%%\n", 100*sum.TTAValAccuracy, 100*sum.TTATestAccuracy)
	}
	if sum.EMATestAccuracy != 0 {
		fmt.Fprintf(w, "the weights' moving average: validation accuracy %.2f%%  test accuracy %.2f%%\n", 100*sum.EMAValAccuracy, 100*sum.EMATestAccuracy)
		files += ",model-ema.npz"
	}
	if sum.EMATTATestAccuracy != 0 {
		fmt.Fprintf(w, "the moving average with test-time augmentation: validation accuracy %.2f%%  test accuracy %.2f%%\n", 100*sum.EMATTAValAccuracy, 100*sum.EMATTATestAccuracy)
	}
	if k := sum.EnsembleSize; k > 0 {
		fmt.Fprintf(w, "snapshot ensemble of %d nets: validation accuracy %.2f%%  test accuracy %.2f%%\n", k, 100*sum.EnsembleValAccuracy, 100*sum.EnsembleTestAccuracy)
		files += fmt.Sprintf(",snapshot-{1..%d}.npz", k)
	}
	fmt.Fprintf(w, "wrote %s/{%s}\n", out, files)
}

// runOverfit is -mode=overfit (its defaults are in modeDefaults): the net
// should memorise the images. Without data it memorises random images with
// random labels. It returns what it wrote to summary.json.
func runOverfit(ctx context.Context, cfg *Config, stdout, stderr io.Writer) (*RunSummary, error) {
	var sp *Splits
	if cfg.dataSource().Available() || cfg.Download {
		var err error
		if sp, err = loadSplits(ctx, cfg, stderr); err != nil {
			return nil, err
		}
	} else {
		fmt.Fprintf(stderr, "no CIFAR-10 data in %s: overfitting random images with random labels instead\n", cfg.Data)
		d := syntheticDataset(cfg.MaxTrain, inputDim, numClasses, newRNG(cfg.Seed, streamSynthetic))
		rng := newRNG(cfg.Seed, streamLabels)
		for i := range d.Y { // nothing to learn but the samples themselves
			d.Y[i] = rng.IntN(numClasses)
		}
		sp = &Splits{Train: d, Norm: identityNorm(inputDim)}
		if err := checkFits(cfg, sp); err != nil {
			return nil, err
		}
	}
	sp.Val = sp.Train // the curves show the memorised set itself
	sum, err := TrainAndSave(ctx, cfg.runSpec(fmt.Sprintf("overfit %d images", sp.Train.Len())), sp, stderr)
	if sum != nil {
		fmt.Fprintf(stdout, "overfit %d images for %d epochs (η=%g, batch %d, λ=%g): train cost %.4f, train accuracy %.1f%%\nwrote %s/{history.csv,summary.json,cost.svg,loss.svg,accuracy.svg,lr.svg,model.npz}\n",
			sp.Train.Len(), cfg.Epochs, cfg.Eta, cfg.Batch, cfg.Lambda, sum.TrainCost, 100*sum.TrainAccuracy, cfg.Out)
	}
	return sum, err
}

// runEval is -mode=eval: test accuracy, per-class accuracy and the confusion
// matrix of a saved model, or of the ensemble of several, and its pictures.
// It returns the assessment it printed.
func runEval(ctx context.Context, cfg *Config, stdout, stderr io.Writer) (*Assessment, error) {
	paths := strings.Split(cfg.Model, ",")
	var nets []*MLP
	var first *Model
	for _, p := range paths {
		m, err := LoadModel(resolveLatest(p))
		if err != nil {
			return nil, err
		}
		if first == nil {
			first = m
		} else if !slices.Equal(m.Mean, first.Mean) || !slices.Equal(m.Std, first.Std) || m.Net.InputDim() != first.Net.InputDim() {
			return nil, fmt.Errorf("-model: %s normalises its inputs differently from %s; an ensemble needs models trained on the same data", p, paths[0])
		}
		nets = append(nets, m.Net)
	}
	test, classes, err := LoadTest(ctx, cfg.dataSource(), stderr)
	if err != nil {
		return nil, err
	}
	if test.Dim() != first.Net.InputDim() {
		return nil, fmt.Errorf("model %s takes %d inputs, the data has %d", cfg.Model, first.Net.InputDim(), test.Dim())
	}
	test.Norm = NewNorm(first.Mean, first.Std)
	gemm := NewGemmNamed(cfg.Workers, cfg.Kernel)
	defer gemm.Close()
	views, tta := []*Dataset{test}, ""
	if cfg.TTA {
		views, tta = ttaViews(test), " with test-time augmentation (image and mirror)"
	}
	a := AssessViews(nets, gemm, views)
	if len(nets) == 1 && !cfg.TTA {
		fmt.Fprintf(stdout, "model %s %v: test accuracy %.2f%% on %d images, loss %.4f\n\n", cfg.Model, first.Net.Sizes, 100*a.Accuracy, test.Len(), a.Loss)
	} else {
		fmt.Fprintf(stdout, "%s%s: test accuracy %.2f%% on %d images\n\n", modelsName(cfg.Model, nets), tta, 100*a.Accuracy, test.Len())
	}
	printAssessment(stdout, classes, a)
	probs := meanProbabilities(nets, gemm, views)
	templates, mistakes, bars := learned(nets[0], test, a, probs, classes)
	var o outputs
	o.addBytes(filepath.Join(cfg.Out, "confusion.svg"), HeatmapSVG(fmt.Sprintf("Confusion matrix, test accuracy %.2f%%", 100*a.Accuracy), classes, a.Confusion, "true class", "predicted class"))
	o.addBytes(filepath.Join(cfg.Out, "templates.svg"), templates)
	o.addBytes(filepath.Join(cfg.Out, "mistakes.svg"), mistakes)
	o.addBytes(filepath.Join(cfg.Out, "class-accuracy.svg"), bars)
	if err := o.commit(); err != nil {
		return nil, err
	}
	fmt.Fprintf(stdout, "\nwrote %s/{confusion.svg,templates.svg,mistakes.svg,class-accuracy.svg}\n", cfg.Out)
	return &a, nil
}

// modelsName names what -mode=eval assesses: one model, or an ensemble.
func modelsName(model string, nets []*MLP) string {
	if len(nets) == 1 {
		return fmt.Sprintf("model %s %v", model, nets[0].Sizes)
	}
	return fmt.Sprintf("ensemble of %d models (softmax outputs averaged)", len(nets))
}

// printAssessment prints the per-class accuracy and the confusion matrix.
func printAssessment(w io.Writer, classes []string, a Assessment) {
	fmt.Fprintf(w, "%-11s %8s\n", "class", "accuracy")
	for k, name := range classes {
		total := 0
		for _, v := range a.Confusion[k] {
			total += v
		}
		fmt.Fprintf(w, "%-11s %7.1f%%\n", name, 100*float64(a.Confusion[k][k])/math.Max(1, float64(total)))
	}
	fmt.Fprintf(w, "\nconfusion matrix (rows: true class, columns: predicted)\n%-11s", "")
	for _, name := range classes {
		fmt.Fprintf(w, " %5.5s", name)
	}
	fmt.Fprintln(w)
	for k, name := range classes {
		fmt.Fprintf(w, "%-11s", name)
		for _, v := range a.Confusion[k] {
			fmt.Fprintf(w, " %5d", v)
		}
		fmt.Fprintln(w)
	}
}

// runPredict is -mode=predict: the top-3 classes of each image, as a
// table. An argument that is a folder stands for its PNG and JPEG files.
func runPredict(cfg *Config, stdout io.Writer) error {
	m, err := LoadModel(resolveLatest(cfg.Model))
	if err != nil {
		return err
	}
	if m.Net.InputDim() != inputDim {
		return fmt.Errorf("model %s takes %d inputs, not 32×32×3 images", cfg.Model, m.Net.InputDim())
	}
	classes := defaultClassNames[:]
	if c, err := readClassNames(cfg.Data); err == nil {
		classes = c
	}
	paths, err := imagePaths(cfg.Args)
	if err != nil {
		return err
	}
	images := &Dataset{Y: make([]int, len(paths)), Norm: NewNorm(m.Mean, m.Std)}
	scaled := make([]bool, len(paths))
	for i, p := range paths {
		v, resized, err := ReadImage(p)
		if err != nil {
			return err
		}
		scaled[i] = resized
		images.Pix = append(images.Pix, v...)
	}
	gemm := NewGemmNamed(1, cfg.Kernel)
	defer gemm.Close()
	probs := m.Net.Probabilities(newForwardWorkspace(m.Net, gemm, min(max(1, images.Len()), evalChunk)), images)
	width := len("image")
	for _, p := range paths {
		width = max(width, utf8.RuneCountInString(p))
	}
	fmt.Fprintf(stdout, "%-*s  %-18s %-18s %-18s\n", width, "image", "1st", "2nd", "3rd")
	for i, p := range paths {
		row := probs.Row(i)
		idx := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
		sort.SliceStable(idx, func(a, b int) bool { return row[idx[a]] > row[idx[b]] })
		fmt.Fprintf(stdout, "%-*s ", width, p)
		for _, k := range idx[:3] {
			fmt.Fprintf(stdout, " %-18s", fmt.Sprintf("%s %.1f%%", classes[k], 100*row[k]))
		}
		if scaled[i] {
			fmt.Fprint(stdout, " (scaled to 32×32)")
		}
		fmt.Fprintln(stdout)
	}
	return nil
}

// imagePaths expands the arguments of -mode=predict: a folder stands for
// its .png, .jpg and .jpeg files, in name order.
func imagePaths(args []string) ([]string, error) {
	var paths []string
	for _, a := range args {
		st, err := os.Stat(a)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", a, err)
		}
		if !st.IsDir() {
			paths = append(paths, a)
			continue
		}
		entries, err := os.ReadDir(a)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", a, err)
		}
		n := len(paths)
		for _, e := range entries {
			switch strings.ToLower(filepath.Ext(e.Name())) {
			case ".png", ".jpg", ".jpeg":
				if e.Type().IsRegular() {
					paths = append(paths, filepath.Join(a, e.Name()))
				}
			}
		}
		if len(paths) == n {
			return nil, fmt.Errorf("%s holds no .png, .jpg or .jpeg file", a)
		}
	}
	return paths, nil
}

// runGradCheck is -mode=gradcheck, on the first training images of batch 1,
// or on a synthetic problem when there is no data.
func runGradCheck(ctx context.Context, cfg *Config, stdout, stderr io.Writer) error {
	var data *Dataset
	source := "CIFAR-10 (" + cfg.Data + ")"
	if cfg.dataSource().Available() {
		sp, err := LoadSplits(ctx, cfg.dataSource(), SplitBatch1, 0, 101, stderr)
		if err != nil {
			return err
		}
		data = sp.Train
	} else {
		data = syntheticDataset(101, inputDim, numClasses, newRNG(cfg.Seed, streamSynthetic))
		source = "a synthetic problem (no CIFAR-10 data in " + cfg.Data + ")"
	}
	fmt.Fprintf(stdout, "gradient check on %s, λ=%g, h=%g, hidden %v\n", source, cfg.Lambda, cfg.Step, cfg.Hidden)
	return RunGradChecks(ctx, stdout, stderr, data, cfg.gradCheckOptions())
}

// runLRTest is -mode=lrtest: ramp η from -eta-min to -eta-max over -ns
// steps, then write lrtest.csv and lrtest.svg and print the suggested range.
func runLRTest(ctx context.Context, cfg *Config, stdout, stderr io.Writer) error {
	sp, err := loadSplits(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	if sp.Val.Len() == 0 {
		return usageErrorf("-mode=lrtest plots validation accuracy: give -val > 0")
	}
	gemm := NewGemmNamed(cfg.Workers, cfg.Kernel)
	defer gemm.Close()
	net := NewMLP(netSizes(sp.Train.Dim(), cfg.Hidden), cfg.He, newRNG(cfg.Seed, streamInit))
	const points = 40
	fmt.Fprintf(stderr, "learning-rate range test: η from %g to %g over %d steps, %v, λ=%g\n", cfg.EtaMin, cfg.EtaMax, cfg.NS, net.Sizes, cfg.Lambda)
	pts, trainErr := LRTest(ctx, net, gemm, sp.Train, sp.Val, cfg.trainOptions(), cfg.NS, points, stderr)
	if diverged(trainErr) && len(pts) > 0 {
		// Expected near the top of a wide range: the ramp ends there.
		fmt.Fprintf(stdout, "the net diverged after η ≈ %.3g (%v); the plot ends there\n", pts[len(pts)-1].Eta, trainErr)
		trainErr = nil
	}
	if len(pts) == 0 {
		return trainErr
	}
	lo, hi, ok, err := writeLRTest(cfg.Out, pts, cfg.NS, cfg.Lambda)
	if err != nil {
		return err
	}
	if ok {
		if lo == pts[1].Eta {
			// The first trained point already gained a tenth of the rise
			// (the net learns in the test's first steps at any η_min): the
			// rise starts below it, which the test cannot show.
			fmt.Fprintf(stdout, "accuracy rises from the test's first evaluation on (η ≤ %.3g: where it starts is below the test's resolution) and peaks at η ≈ %.3g\n", lo, hi)
		} else {
			fmt.Fprintf(stdout, "accuracy starts rising at η ≈ %.3g and peaks at η ≈ %.3g\n", lo, hi)
		}
		fmt.Fprintf(stdout, "suggested: -eta-min %.2g -eta-max %.2g\n", lo, hi)
	} else {
		fmt.Fprintln(stdout, "the validation accuracy never rose above its start: try a wider range (-eta-min, -eta-max) or more steps (-ns)")
	}
	fmt.Fprintf(stdout, "wrote %s/{lrtest.csv,lrtest.svg}\n", cfg.Out)
	return trainErr
}

// runSearch is -mode=search: the search (this shard's share of it), then
// with -final a training run of the best λ; or -merge of shard folders.
// It returns the summary it wrote, nil while other shards' trials are
// missing.
func runSearch(ctx context.Context, cfg *Config, stdout, stderr io.Writer) (*SearchSummary, error) {
	if cfg.Merge {
		for _, dir := range cfg.Args {
			if st, err := os.Stat(dir); err != nil || !st.IsDir() {
				return nil, usageErrorf("-merge: %s is not a folder", dir)
			}
		}
		return MergeSearch(cfg.Args, cfg.Out, stdout, stderr)
	}
	var sp *Splits
	var err error
	load := func() (*Splits, error) {
		sp, err = loadSplits(ctx, cfg, stderr)
		return sp, err
	}
	sum, err := Search(ctx, cfg.searchSpec(cfg.shard, cfg.shards), load, stdout, stderr)
	if err == nil && sum == nil && ctx.Err() == nil {
		fmt.Fprintln(stdout, "the search goes on when the missing trials are in: rerun the other shards, or give -wait so that shards run each other's trials")
	}
	if err != nil || sum == nil || !cfg.Final {
		return sum, err
	}
	return sum, finalRun(ctx, cfg, sp, sum, stdout, stderr)
}

// finalRun trains the search's best point with the seed's schedule (n_s =
// 900, 3 cycles), reports its test accuracy and adds it to the summary.
func finalRun(ctx context.Context, cfg *Config, sp *Splits, sum *SearchSummary, stdout, stderr io.Writer) error {
	c := *cfg
	c.Lambda, c.Dropout = sum.Best.Lambda, sum.Best.Dropout
	if cfg.SearchHidden != nil {
		c.Hidden = slices.Repeat([]int{sum.Best.Hidden}, len(cfg.Hidden))
	}
	c.NS, c.Cycles = seedNS, seedCycles
	c.Out = filepath.Join(cfg.Out, "final")
	// Every shard of an array may get here: the first takes the final
	// folder's lock and trains; one that finds it taken leaves the final to
	// its holder; one that comes later, or a rerun, finds it finished.
	release, holder, err := tryLock(filepath.Join(c.Out, runLock))
	if err != nil {
		return err
	}
	if release == nil {
		fmt.Fprintf(stderr, "final run: another process (%s) is training it in %s\n", holder, c.Out)
		return nil
	}
	defer release()
	if done, ok := finishedRun(c.Out); ok {
		fmt.Fprintf(stderr, "final run: already done in %s (test accuracy %s)\n", c.Out, pct(done.TestAccuracy))
		sum.FinalTestAcc, sum.FinalOut = done.TestAccuracy, c.Out
		return writeJSON(filepath.Join(cfg.Out, "summary.json"), sum)
	}
	fmt.Fprintf(stderr, "final run: λ=%.4g, n_s=%d, %s\n", c.Lambda, c.NS, count(c.Cycles, "cycle"))
	rs, err := TrainAndSave(ctx, c.runSpec(fmt.Sprintf("best λ=%.4g, n_s=%d, %s", c.Lambda, c.NS, count(c.Cycles, "cycle"))), sp, stderr)
	if rs != nil {
		printSummary(stdout, rs, c.Out, cfg.Verbose)
		sum.FinalTestAcc, sum.FinalOut = rs.TestAccuracy, c.Out
		if werr := writeJSON(filepath.Join(cfg.Out, "summary.json"), sum); werr != nil && err == nil {
			err = werr
		}
	}
	return err
}

// finishedRun reads the summary.json of a run that finished in dir (not
// interrupted, no checkpoint left); ok is false for anything else.
func finishedRun(dir string) (sum RunSummary, ok bool) {
	b, err := os.ReadFile(filepath.Join(dir, "summary.json"))
	if err != nil || json.Unmarshal(b, &sum) != nil || sum.Interrupted {
		return sum, false
	}
	if _, err := os.Stat(filepath.Join(dir, "checkpoint.npz")); err == nil {
		return sum, false
	}
	return sum, true
}

// shardSpec resolves which shard this process runs: Slurm's
// SLURM_ARRAY_TASK_ID or Kubernetes' JOB_COMPLETION_INDEX with -shards n,
// else -shard i/n; (0, 1) when none is set.
func shardSpec(cfg *Config, getenv func(string) string) (i, n int, err error) {
	parse := func(what, si, sn string) (int, int, error) {
		i, err1 := strconv.Atoi(strings.TrimSpace(si))
		n, err2 := strconv.Atoi(strings.TrimSpace(sn))
		if err1 != nil || err2 != nil || n <= 0 || n > maxTrials || i < 0 || i >= n {
			return 0, 0, usageErrorf("%s: want shard index i and count n with 0 ≤ i < n, got %q and %q", what, si, sn)
		}
		return i, n, nil
	}
	// The count always comes from the command line (-shard i/n or -shards
	// n), never from the size of the current submission: resubmitting one
	// task of an array (sbatch --array=2) must still run shard 2 of n.
	for _, env := range []string{"SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"} {
		if cfg.Shard == "" && getenv(env) != "" {
			if cfg.Shards <= 0 {
				return 0, 0, usageErrorf("%s is set: give the number of shards (the array's full size) as -shards n, e.g. -shards 4 for --array=0-3", env)
			}
			i, n, err := parse(env+"/-shards", getenv(env), strconv.Itoa(cfg.Shards))
			if id, aerr := strconv.Atoi(strings.TrimSpace(getenv(env))); err != nil && aerr == nil && id >= cfg.Shards {
				// An array larger than -shards: say which -shards fits it.
				return 0, 0, usageErrorf("%s=%d, but -shards %d has shards 0…%d: give the array's full size, e.g. -shards %d for --array=0-%d", env, id, cfg.Shards, cfg.Shards-1, id+1, id)
			}
			return i, n, err
		}
	}
	if cfg.Shard != "" {
		si, sn, ok := strings.Cut(cfg.Shard, "/")
		if !ok {
			return 0, 0, usageErrorf("-shard %q: want i/n, e.g. 0/4", cfg.Shard)
		}
		return parse("-shard", si, sn)
	}
	if cfg.Shards > 0 {
		return 0, 0, usageErrorf("-shards %d without a shard index: run as a Slurm array task (SLURM_ARRAY_TASK_ID) or a Kubernetes Indexed Job (JOB_COMPLETION_INDEX), or give -shard i/n", cfg.Shards)
	}
	return 0, 1, nil
}

// ---------------------------------------------------------------------------
// -mode=report: the seed report's experiments as a table of commands.
//
// Each row of reportRows is one experiment: a command of this program — the
// report's own command line with its mode and -out changed, then the row's
// flags — run as if it had been typed, into a folder of its own under the
// report's -out. The page shows the figures that command wrote there, under
// captions filled in from the command's settings and the summary its mode
// returned; the report computes nothing itself. Every command is on the page
// and in commands.sh: running one by hand writes the same files.

// reportPlan is the size of the experiments; -quick shrinks them to a smoke
// run of a few minutes.
type reportPlan struct {
	n                  int // training images for the batch-1 and all-data runs (0: all)
	gradCheckHidden    int // the gradient check's hidden layer (0: the configured net)
	fig2NS, fig3NS     int
	overfitEpochs      int
	trials, trialCycle int
	finalNS            int
	finalCycles        int
	ablation           []string // the schedule of the "Beyond the assignment" rows
	preset             []string // -preset best's row: its flags besides the preset
}

var (
	fullReport = reportPlan{n: 0, fig2NS: 500, fig3NS: 800, overfitEpochs: 200, trials: 8, trialCycle: 2, finalNS: seedNS, finalCycles: seedCycles,
		ablation: []string{"-ns", "2250", "-cycles", "3", "-evals", "2", "-tta"}, preset: []string{"-test-curve"}}
	quickReport = reportPlan{n: 2000, gradCheckHidden: 10, fig2NS: 60, fig3NS: 40, overfitEpochs: 100, trials: 3, trialCycle: 1, finalNS: 100, finalCycles: 2,
		ablation: []string{"-n", "2000", "-ns", "40", "-cycles", "1", "-evals", "2", "-tta"}, preset: []string{"-test-curve", "-n", "2000", "-ns", "40", "-cycles", "1"}}
)

// reportRow is one experiment of the report.
type reportRow struct {
	name    string // its folder under the report's -out; later rows find its result by it
	title   string // its line in the table of runs
	section string // the heading it opens ("": none)
	mode    string
	flags   func(p reportPlan, done reportResults) []string // the row's flags (nil: none)
	skip    func(done reportResults) bool                   // nil: never skipped
	beyond  bool                                            // only with -beyond
	show    func(pg *reportPage, res *reportResult) error   // its figures and tables, and its line of the results table
}

// reportResult is a finished row: its settings, its command and what its
// mode returned.
type reportResult struct {
	row     reportRow
	cfg     *Config
	command string
	text    string         // what the mode printed (gradcheck)
	run     *RunSummary    // train, overfit
	search  *SearchSummary // search
	eval    *Assessment    // eval
}

// reportResults are the finished rows by name.
type reportResults map[string]*reportResult

// reportRows is the report, in the seed's order. Figure 2 and 3 differ in
// their schedule only.
var reportRows = []reportRow{
	{name: "gradcheck", section: "Gradient check", mode: "gradcheck", flags: gradCheckFlags, show: showGradCheck},
	{name: "overfit", title: "Figure 1: overfit", section: "Sanity check: overfitting a few images", mode: "overfit", flags: overfitFlags, show: showOverfit},
	{name: "fig2", title: "Figure 2: λ=0.01, 1 cycle", section: "Cyclical learning rates", mode: "train", flags: cyclicalFlags(2), show: showCyclical(2)},
	{name: "fig3", title: "Figure 3: λ=0.01, 3 cycles", mode: "train", flags: cyclicalFlags(3), show: showCyclical(3)},
	{name: "search", section: "Coarse-to-fine random search for λ", mode: "search", flags: searchFlags, show: showSearch},
	{name: "final", title: "Figure 6: the best λ", section: "The final run", mode: "train", flags: finalFlags, show: showFinal},
	{name: "learned", section: "What the net learned", mode: "eval", flags: learnedFlags, skip: noTestSet, show: showLearned},
	{name: "beyond-1", section: "Beyond the assignment", beyond: true, mode: "train", flags: ablationFlags(1), show: showAblation(1)},
	{name: "beyond-2", beyond: true, mode: "train", flags: ablationFlags(2), show: showAblation(2)},
	{name: "beyond-3", beyond: true, mode: "train", flags: ablationFlags(3), show: showAblation(3)},
	{name: "beyond-4", beyond: true, mode: "train", flags: ablationFlags(4), show: showAblation(4)},
	{name: "beyond-5", beyond: true, mode: "train", flags: ablationFlags(5), show: showAblation(5)},
	{name: "best", title: "-preset best", beyond: true, mode: "train", flags: presetFlags("best"), show: showPreset(11, "best", "one hidden layer")},
	{name: "deep", title: "-preset deep", beyond: true, mode: "train", flags: presetFlags("deep"), show: showPreset(12, "deep", "two hidden layers")},
}

// ablation is the section "Beyond the assignment": from the seed's net to
// -preset best's, one change per row, each row keeping the ones above it
// (a later value of a flag replaces an earlier one), all on the same
// schedule (reportPlan.ablation).
var ablation = []struct {
	change string
	flags  [][2]string // flag and value ("": a bool flag set)
}{
	{"the seed's net: 50 hidden units, λ = 1.526e-3, η ∈ [1e-5, 0.1]", nil},
	{"1000 hidden units, λ = 5e-4, η_max = 0.05", [][2]string{{"hidden", "1000"}, {"lambda", "5e-4"}, {"eta-max", "0.05"}}},
	{"+ augmentation (mirror, shifts of up to ±3 pixels)", [][2]string{{"augment", ""}}},
	{"+ PCA whitening to 400 dimensions, η_max = 0.2", [][2]string{{"whiten", "pca"}, {"whiten-dims", "400"}, {"eta-max", "0.2"}}},
	{"2000 hidden units", [][2]string{{"hidden", "2000"}}},
}

// seedCyclical are the seed's Figures 2 and 3: their n_s and cycles, and
// their results.
var seedCyclical = map[int]struct {
	ns, cycles  int
	test, train string
}{2: {500, 1, "46.17 %", "60.37 %"}, 3: {800, 3, "46.9 %", "71.67 %"}}

// seedTables are the seed's Tables 1 and 2, the three best λ of its coarse
// and fine search: log10 λ, λ, validation accuracy (%).
var seedTables = [2][][]string{
	{{"-4.610", "2.455e-05", "48.28"}, {"-4.695", "2.019e-05", "48.24"}, {"-2.797", "1.597e-03", "48.30"}},
	{{"-2.816", "1.526e-03", "48.36"}, {"-4.615", "2.429e-05", "48.30"}, {"-3.072", "8.478e-04", "48.14"}},
}

// reportPage is -mode=report in progress: the page so far.
type reportPage struct {
	cfg            *Config
	plan           reportPlan
	doc            *htmlDoc
	results        [][]string      // the first table: each seed result beside ours
	ablation       [][]string      // the ablation's table, row by row
	runs           []*reportResult // the table of runs
	commands       []string        // commands.sh
	stdout, stderr io.Writer
	ctx            context.Context
}

// runReport is -mode=report: every row of reportRows, then the page.
func runReport(ctx context.Context, cfg *Config, stdout, stderr io.Writer) error {
	start := time.Now()
	if !cfg.dataSource().Available() && !cfg.Download {
		return &DataError{Problem: DataNoDownload, Path: cfg.Data}
	}
	pg := &reportPage{cfg: cfg, plan: fullReport, doc: &htmlDoc{}, stdout: stdout, stderr: stderr, ctx: ctx}
	if cfg.Quick {
		pg.plan = quickReport
	}
	fmt.Fprintf(stderr, "report: CIFAR-10 in %s, writing %s/report.html\n", cfg.Data, cfg.Out)
	done := reportResults{}
	for _, row := range reportRows {
		if (row.beyond && !cfg.Beyond) || (row.skip != nil && row.skip(done)) {
			continue
		}
		res, err := pg.execute(row, done)
		if err != nil {
			return err
		}
		done[row.name] = res
		if row.section != "" {
			pg.doc.h2(row.section)
		}
		if err := row.show(pg, res); err != nil {
			return fmt.Errorf("report: %s: %w", row.name, err)
		}
	}
	return pg.write(start)
}

// execute runs one row's command, as the command line would.
func (pg *reportPage) execute(row reportRow, done reportResults) (*reportResult, error) {
	var flags []string
	if row.flags != nil {
		flags = row.flags(pg.plan, done)
	}
	cfg, command := pg.sub(row.mode, row.name, flags...)
	cfg.started, cfg.shard, cfg.shards = time.Now(), 0, 1 // as run would set them: one unsharded process
	fmt.Fprintf(pg.stderr, "report: %s\n", command)
	pg.commands = append(pg.commands, command)
	res := &reportResult{row: row, cfg: cfg, command: command}
	var text bytes.Buffer
	var err error
	switch row.mode {
	case "gradcheck":
		err = runGradCheck(pg.ctx, cfg, &text, pg.stderr)
	case "overfit":
		res.run, err = runOverfit(pg.ctx, cfg, io.Discard, pg.stderr)
	case "train":
		res.run, err = runTrain(pg.ctx, cfg, io.Discard, pg.stderr)
	case "search":
		res.search, err = runSearch(pg.ctx, cfg, io.Discard, pg.stderr)
	case "eval":
		res.eval, err = runEval(pg.ctx, cfg, &text, pg.stderr)
	default:
		panic("mlp: report: no mode " + row.mode)
	}
	res.text = text.String()
	switch {
	case err != nil:
		return nil, fmt.Errorf("report: %s: %w", row.name, err)
	case pg.ctx.Err() != nil || (res.run != nil && res.run.Interrupted):
		return nil, fmt.Errorf("report interrupted during %s; its outputs so far are in %s, no report.html was written", row.name, cfg.Out)
	case row.mode == "search" && res.search == nil:
		return nil, fmt.Errorf("report: the search in %s is incomplete; finish it or use another -out", cfg.Out)
	}
	if res.run != nil && row.title != "" {
		pg.runs = append(pg.runs, res)
	}
	return res, nil
}

// sub is the configuration of one experiment: the report's command line
// with -mode, -out (a folder of the report's) and the given flags changed.
// command is how a user repeats it.
func (pg *reportPage) sub(mode, dir string, flags ...string) (cfg *Config, command string) {
	base := slices.Clone(pg.cfg.argv)
	switch mode { // the report's flags that are for its other runs
	case "search": // draws λ itself
		base = dropFlags(base, newFlagSet(&Config{}, io.Discard), "lambda")
	case "overfit": // validates on its training images
		base = dropFlags(base, newFlagSet(&Config{}, io.Discard), "val")
	}
	args := append(slices.Clone(base), "-mode="+mode, "-out", filepath.Join(pg.cfg.Out, dir))
	cfg, err := parseConfig(append(args, flags...), io.Discard)
	if err != nil {
		panic(fmt.Sprintf("mlp: report: %s %v: %v", mode, flags, err))
	}
	shown := append([]string{"go", "run", ".", "-mode=" + mode}, userFlags(base)...)
	fs := newFlagSet(&Config{}, io.Discard)
	for i := 0; i < len(flags); i++ {
		f := fs.Lookup(strings.TrimLeft(flags[i], "-"))
		switch {
		case strings.Contains(flags[i], "=") || (f != nil && isBoolFlag(f)): // -final=false, -tta: one token
			shown = append(shown, flags[i])
		case flags[i] == "-n" && flags[i+1] == "0": // the default
			i++
		default:
			shown = append(shown, flags[i], flags[i+1])
			i++
		}
	}
	for i, a := range shown {
		shown[i] = shellQuote(a)
	}
	return cfg, strings.Join(shown, " ")
}

// shellQuote quotes a for a POSIX shell when it holds anything but
// letters, digits and -_./=,:+@%.
func shellQuote(a string) string {
	if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=,:+@%") == "" {
		return a
	}
	return "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
}

// userFlags is the report's command line without the flags the report
// sets itself (-mode, -out, -quick).
func userFlags(argv []string) []string {
	var out []string
	for i := 0; i < len(argv); i++ {
		name, _, hasValue := strings.Cut(strings.TrimLeft(argv[i], "-"), "=")
		switch name {
		case "mode", "out":
			if !hasValue {
				i++ // the value is the next argument
			}
		case "quick", "beyond":
		default:
			out = append(out, argv[i])
		}
	}
	return out
}

// figure adds a figure of the panels (SVG files) that res's command wrote.
func (pg *reportPage) figure(res *reportResult, caption string, files ...string) error {
	panels, err := readPanels(res.cfg.Out, files...)
	if err != nil {
		return err
	}
	pg.doc.figure(caption, panels...)
	return nil
}

// pct is a fraction as a percentage ("–" when not measured).
func pct(v optFloat) string {
	if !finite(float64(v)) {
		return "–"
	}
	return fmt.Sprintf("%.2f %%", 100*float64(v))
}

// The rows' flags.

// gradCheckFlags keep -quick's check small: check (b) nudges every weight.
func gradCheckFlags(p reportPlan, _ reportResults) []string {
	if p.gradCheckHidden > 0 {
		return []string{"-hidden", strconv.Itoa(p.gradCheckHidden)}
	}
	return nil
}

func overfitFlags(p reportPlan, _ reportResults) []string {
	return []string{"-epochs", strconv.Itoa(p.overfitEpochs)}
}

// cyclicalFlags are Figure num's (2 or 3): batch 1, λ = 0.01, the plan's
// n_s and the seed's cycles.
func cyclicalFlags(num int) func(reportPlan, reportResults) []string {
	return func(p reportPlan, _ reportResults) []string {
		ns := p.fig2NS
		if num == 3 {
			ns = p.fig3NS
		}
		return []string{"-split", SplitBatch1, "-val", "0", "-n", strconv.Itoa(p.n), "-lambda", "0.01", "-ns", strconv.Itoa(ns), "-cycles", strconv.Itoa(seedCyclical[num].cycles)}
	}
}

func searchFlags(p reportPlan, _ reportResults) []string {
	return []string{"-n", strconv.Itoa(p.n), "-trials", strconv.Itoa(p.trials), "-cycles", strconv.Itoa(p.trialCycle), "-final=false"}
}

// finalFlags train the search's best λ, to 4 significant digits: the
// page's command is short and still reproduces the run exactly (the
// search's 17-digit λ did too, unreadably); the difference is far inside
// the search's resolution.
func finalFlags(p reportPlan, done reportResults) []string {
	best := fmt.Sprintf("%.4g", done["search"].search.Best.Lambda)
	return []string{"-n", strconv.Itoa(p.n), "-lambda", best, "-ns", strconv.Itoa(p.finalNS), "-cycles", strconv.Itoa(p.finalCycles)}
}

func learnedFlags(_ reportPlan, done reportResults) []string {
	return []string{"-model", filepath.Join(done["final"].cfg.Out, "model.npz")}
}

func noTestSet(done reportResults) bool { return done["final"].run.TestImages == 0 }

// ablationFlags are row k (from 1) of the ablation: the changes of rows
// 1…k, on the plan's schedule.
func ablationFlags(k int) func(reportPlan, reportResults) []string {
	return func(p reportPlan, _ reportResults) []string {
		var names []string // in the order of their first change
		value := map[string]string{}
		for _, a := range ablation[:k] {
			for _, f := range a.flags {
				if _, ok := value[f[0]]; !ok {
					names = append(names, f[0])
				}
				value[f[0]] = f[1]
			}
		}
		var flags []string
		for _, name := range names {
			flags = append(flags, "-"+name)
			if value[name] != "" {
				flags = append(flags, value[name])
			}
		}
		return append(flags, p.ablation...)
	}
}

func presetFlags(name string) func(reportPlan, reportResults) []string {
	return func(p reportPlan, _ reportResults) []string {
		return append([]string{"-preset", name}, p.preset...)
	}
}

// The rows' figures, tables and captions.

func showGradCheck(pg *reportPage, res *reportResult) error {
	pg.doc.p(fmt.Sprintf("Analytic gradients against forward and centred differences (ε = %g in the relative error), on a fresh net of the configured size. Command: %s", gradCheckEps, res.command))
	pg.doc.pre(res.text)
	return nil
}

func showOverfit(pg *reportPage, res *reportResult) error {
	s, c := res.run, res.cfg
	ours := fmt.Sprintf("train cost %.4g, train accuracy %s", float64(s.TrainCost), pct(s.TrainAccuracy))
	pg.results = append(pg.results, []string{res.row.title, "train loss 0.136, accuracy 97.83 % (50 images)", ours, res.command})
	return pg.figure(res, fmt.Sprintf("Figure 1: loss and accuracy while training on the first %d training images only, for %d epochs (λ = %g, constant η = %g, batch %d). The net memorises them: %s. Training and validation are the same images, so one curve is drawn. Seed: 50 images, 200 epochs, train loss 0.136, accuracy 97.83 %%. Command: %s",
		s.TrainImages, c.Epochs, c.Lambda, c.Eta, c.Batch, ours, res.command), "loss.svg", "accuracy.svg")
}

// showCyclical is Figure num (2 or 3).
func showCyclical(num int) func(*reportPage, *reportResult) error {
	return func(pg *reportPage, res *reportResult) error {
		s, c, seed := res.run, res.cfg, seedCyclical[num]
		pg.results = append(pg.results, []string{res.row.title, fmt.Sprintf("test %s, train %s", seed.test, seed.train),
			fmt.Sprintf("test %s, train %s", pct(s.TestAccuracy), pct(s.TrainAccuracy)), res.command})
		return pg.figure(res, fmt.Sprintf("Figure %d: cost, loss and accuracy with cyclical learning rates; training on batch 1 (%d images), validating on batch 2. λ = %g, %s of 2·n_s = %d steps, batch %d, η ∈ [%g, %g]. Test accuracy %s, train accuracy %s. Seed (n_s = %d): test %s, train %s. Command: %s",
			num, s.TrainImages, c.Lambda, count(c.Cycles, "cycle"), 2*c.NS, c.Batch, c.EtaMin, c.EtaMax, pct(s.TestAccuracy), pct(s.TrainAccuracy), seed.ns, seed.test, seed.train, res.command),
			"cost.svg", "loss.svg", "accuracy.svg")
	}
}

// showSearch is the seed's Figures 4 and 5 and Tables 1 and 2.
func showSearch(pg *reportPage, res *reportResult) error {
	s, c := res.search, res.cfg
	setting := fmt.Sprintf("Each trial trains %s with n_s = 2·⌊n/batch⌋ = %d on %d training images, validating on %d.", count(c.Cycles, "cycle"), s.TrialNS, s.TrainImages, s.ValImages)
	for k, phase := range []struct {
		name string
		rng  *[2]float64
		top  []Trial
	}{{"coarse", s.CoarseRange, s.TopCoarse}, {"fine", s.FineRange, s.TopFine}} {
		err := pg.figure(res, fmt.Sprintf("Figure %d: validation accuracy against log10 λ in the %s search: %d trials with log10 λ uniform in [%.3f, %.3f]. %s Seed: Figure %d, the same search on 45,000/5,000 images. Command: %s",
			4+k, phase.name, s.Trials, phase.rng[0], phase.rng[1], setting, 4+k, res.command), phase.name+".svg")
		if err != nil {
			return err
		}
		var rows [][]string
		for i, t := range phase.top {
			rows = append(rows, append([]string{fmt.Sprintf("%.3f", t.LogLambda), fmt.Sprintf("%.3e", t.Lambda), fmt.Sprintf("%.2f", 100*t.ValAcc)}, seedTables[k][i]...))
		}
		pg.doc.table(fmt.Sprintf("Table %d: the 3 best λ of the %s search, beside the seed's Table %d", k+1, phase.name, k+1),
			[]string{"log10 λ", "λ", "val acc (%)", "seed: log10 λ", "seed: λ", "seed: acc (%)"}, rows)
	}
	pg.results = append(pg.results, []string{"Tables 1–2: best λ of the search", "λ = 1.526e-3 (48.36 % val)",
		fmt.Sprintf("λ = %.4g (%.2f %% val)", s.Best.Lambda, 100*s.Best.ValAcc), res.command})
	return nil
}

// showFinal is Figure 6, a run with the search's best λ.
func showFinal(pg *reportPage, res *reportResult) error {
	s, c := res.run, res.cfg
	pg.results = append(pg.results, []string{"Figure 6: the best λ, " + count(c.Cycles, "cycle"), "test 53.1 %, train 63.5 %",
		fmt.Sprintf("test %s, train %s", pct(s.TestAccuracy), pct(s.TrainAccuracy)), res.command})
	return pg.figure(res, fmt.Sprintf("Figure 6: cost, loss, accuracy and learning rate of a run with the search's best λ = %g on %d training images (validating on %d): %s of 2·n_s = %d steps, batch %d, η ∈ [%g, %g]. Test accuracy %s, train accuracy %s. Seed (λ = 1.526e-3, n_s = 900, 3 cycles): test 53.1 %%, train 63.5 %%. Command: %s",
		c.Lambda, s.TrainImages, s.ValImages, count(c.Cycles, "cycle"), 2*c.NS, c.Batch, c.EtaMin, c.EtaMax, pct(s.TestAccuracy), pct(s.TrainAccuracy), res.command),
		"cost.svg", "loss.svg", "accuracy.svg", "lr.svg")
}

// showLearned is Figures 7–10: -mode=eval's pictures of the final net.
func showLearned(pg *reportPage, res *reportResult) error {
	a := res.eval
	for _, f := range []struct{ file, caption string }{
		{"confusion.svg", fmt.Sprintf("Figure 7 (not in the seed): the confusion matrix of Figure 6's net on the %d test images (rows: true class, columns: predicted); test accuracy %.2f %%. Command: %s", len(a.Pred), 100*a.Accuracy, res.command)},
		{"templates.svg", "Figure 8 (not in the seed): what the hidden units look for. Each image is one row of W1 — a hidden unit's weights on the 32×32×3 input, divided by the inputs' standard deviation so that they weigh raw pixels — stretched to the full colour range; each row of the figure shows the 5 units that feed a class most strongly (largest W2 entry, printed under each). Blobs of colour and rough shapes (sky, grass, a centred object) are what a linear layer on raw pixels can learn."},
		{"mistakes.svg", "Figure 9 (not in the seed): the test images the net got wrong with the highest confidence, with their true class and the class the net gave (and its probability)."},
		{"class-accuracy.svg", "Figure 10 (not in the seed): the accuracy of every class on the test set (the diagonal of Figure 7 over its rows)."},
	} {
		if err := pg.figure(res, f.caption, f.file); err != nil {
			return err
		}
	}
	return nil
}

// showAblation is row k of the ablation; the last row writes the table.
func showAblation(k int) func(*reportPage, *reportResult) error {
	return func(pg *reportPage, res *reportResult) error {
		s := res.run
		pg.ablation = append(pg.ablation, []string{strconv.Itoa(k), ablation[k-1].change,
			pct(s.ValAccuracy) + " (" + pct(s.TTAValAccuracy) + ")", pct(s.TestAccuracy) + " (" + pct(s.TTATestAccuracy) + ")",
			pct(s.TrainAccuracy), fmtSeconds(s.WallSeconds), res.command})
		if k < len(ablation) {
			return nil
		}
		pg.doc.p(fmt.Sprintf("From the seed's net to -preset best's, one change per row, each keeping the ones above it, all trained for %s of 2·n_s = %d steps (batch %d) on %d images and validated on %d. In brackets: with test-time augmentation (the mean softmax of each image and its mirror). Choose on the validation column; the test column is read once per run.",
			count(res.cfg.Cycles, "cycle"), 2*res.cfg.NS, res.cfg.Batch, s.TrainImages, s.ValImages))
		pg.doc.table("Table 3 (not in the seed): what each trick buys", []string{"row", "change", "val acc (TTA)", "test acc (TTA)", "train acc", "time", "command"}, pg.ablation)
		return nil
	}
}

// showPreset is Figure fig, a preset's run: its curves, and how fast it
// got there.
func showPreset(fig int, name, layers string) func(*reportPage, *reportResult) error {
	return func(pg *reportPage, res *reportResult) error { return pg.preset(fig, name, layers, res) }
}

func (pg *reportPage) preset(fig int, name, layers string, res *reportResult) error {
	s, c := res.run, res.cfg
	levels := []string{}
	for _, l := range timeLevels {
		if sec, ok := s.TimeToTest[strconv.FormatFloat(l, 'f', 2, 64)]; ok {
			levels = append(levels, fmt.Sprintf("%.0f %% in %s", 100*l, fmtSeconds(sec)))
		}
	}
	reached := "none of the levels 50–70 %"
	if len(levels) > 0 {
		reached = strings.Join(levels, ", ")
	}
	pg.results = append(pg.results, []string{"beyond the seed: -preset " + name, "",
		fmt.Sprintf("test %s (%s with TTA), val %s", pct(s.TestAccuracy), pct(s.TTATestAccuracy), pct(s.ValAccuracy)), res.command})
	return pg.figure(res, fmt.Sprintf("Figure %d (not in the seed): -preset %s — %s of %s on PCA-whitened inputs (%s dimensions), augmentation, λ = %g, η ∈ [%g, %g], %s of 2·n_s = %d steps on %d images (validating on %d). Test accuracy %s, %s with test-time augmentation; validation %s; train %s; %s in all, %.3g floating-point operations of training. Test accuracy reached (wall time from the start, data loading and the whitening fit included): %s. Command: %s",
		fig, name, layers, joinInts(c.Hidden), c.flags["whiten-dims"], c.Lambda, c.EtaMin, c.EtaMax, count(c.Cycles, "cycle"), 2*c.NS, s.TrainImages, s.ValImages,
		pct(s.TestAccuracy), pct(s.TTATestAccuracy), pct(s.ValAccuracy), pct(s.TrainAccuracy), fmtSeconds(s.WallSeconds), s.TrainFLOPs, reached, res.command),
		"cost.svg", "accuracy.svg")
}

// write puts the results table and the list of runs first and writes
// report.html and commands.sh.
func (pg *reportPage) write(start time.Time) error {
	page := &htmlDoc{}
	if pg.cfg.Quick {
		page.banner(fmt.Sprintf("Smoke run (-quick) on %s — short schedules and few trials to check that everything works. These are not the results; run go run . -mode=report for them.", pg.sizeNote()))
	}
	page.p(fmt.Sprintf("A two-layer perceptron (3072 → 50 ReLU → 10 softmax) trained from scratch on CIFAR-10 in %s with cyclical learning rates, replicating the seed report (KTH DD2424 assignment 2) figure by figure. GEMM kernel: %s, GOMAXPROCS %d. The whole report took %s. Every run's folder (history.csv, summary.json, plots, model.npz) is under %s; commands.sh there lists every command.",
		pg.cfg.Data, kernelName(pg.cfg.Kernel), runtime.GOMAXPROCS(0), fmtDuration(time.Since(start)), pg.cfg.Out))
	page.table("The seed's results beside this report's, with the command that reproduces each", []string{"figure or table", "seed", "here", "command"}, pg.results)
	page.runTable(pg.runs)
	html := page.page("cifar-mlp report: a two-layer MLP on CIFAR-10", pg.doc)
	script := "#!/bin/sh\n# The experiments of this report, in order (run from the project's folder;\n# each writes into a new runs/<mode>/ folder, or give -out).\nset -e\n" + strings.Join(pg.commands, "\n") + "\n"
	var o outputs
	o.addBytes(filepath.Join(pg.cfg.Out, "report.html"), html)
	o.addBytes(filepath.Join(pg.cfg.Out, "commands.sh"), []byte(script))
	if err := o.commit(); err != nil {
		return err
	}
	fmt.Fprintf(pg.stdout, "wrote %s/{report.html,commands.sh} (%d figures inlined) in %s\n", pg.cfg.Out, bytes.Count(html, []byte("<svg ")), fmtDuration(time.Since(start)))
	return nil
}

// sizeNote says how much data the report used.
func (pg *reportPage) sizeNote() string {
	if pg.plan.n > 0 {
		return fmt.Sprintf("%d training images", pg.plan.n)
	}
	return "all the training images"
}

// runTable lists the training runs with their sizes, accuracies, time and
// the command that repeats them.
func (d *htmlDoc) runTable(runs []*reportResult) {
	d.b.WriteString("<table>\n<caption>Every training run of the report</caption>\n<tr><th>run</th><th>train / val / test images</th><th>train acc</th><th>val acc</th><th>test acc</th><th>time</th><th>command</th></tr>\n")
	for _, run := range runs {
		s := run.run
		fmt.Fprintf(&d.b, "<tr><td>%s</td><td>%d / %d / %d</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>\n",
			htmlText(run.row.title), s.TrainImages, s.ValImages, s.TestImages, htmlText(pct(s.TrainAccuracy)), htmlText(pct(s.ValAccuracy)), htmlText(pct(s.TestAccuracy)),
			htmlText(fmt.Sprintf("%.1f s", s.WallSeconds)), htmlText(run.command))
	}
	d.b.WriteString("</table>\n")
}

// ---------------------------------------------------------------------------
// What the net learned: pictures for -mode=eval and the report.

// learned draws what a net (or an ensemble; templates then from the first
// member) learned, from its assessment on test (probs: the softmax outputs):
// its hidden units' weight templates, the most confidently misclassified
// images, and the accuracy of every class.
func learned(net *MLP, test *Dataset, a Assessment, probs *Matrix, classes []string) (templates, mistakes, bars []byte) {
	return weightTemplates(net, test.Norm, classes), worstMistakes(test, a, probs, classes), classAccuracy(a, classes)
}

// templateOf draws row w of the first layer as an image: w weighs the
// normalised inputs (p/255 − mean)/std, so on the pixels themselves it
// weighs w/std; it is stretched to the full range of colours on its own
// (contrast-normalised).
func templateOf(w []float64, nm *Norm) []uint8 {
	v := make([]float64, len(w))
	lo, hi := math.Inf(1), math.Inf(-1)
	for i, x := range w {
		if nm != nil {
			x /= nm.Std[i]
		}
		v[i] = x
		lo, hi = math.Min(lo, x), math.Max(hi, x)
	}
	pix := make([]uint8, len(v))
	for i, x := range v {
		pix[i] = uint8(math.Round(255 * (x - lo) / math.Max(hi-lo, 1e-300)))
	}
	return pix
}

// weightTemplates draws the hidden units' templates: the rows of W1 (of
// W1·P, with an input transform), for a two-layer net grouped by the class
// each unit feeds most.
func weightTemplates(net *MLP, nm *Norm, classes []string) []byte {
	g := NewGemm(0)
	w1 := net.InputWeights(g)
	g.Close()
	var labels []string
	var rows [][]Picture
	const perRow = 5
	if net.Layers() == 2 {
		// For each class, the hidden units that feed it most strongly
		// (largest W2[c, j]).
		w2 := net.W[1]
		for c := range w2.Rows {
			units := make([]int, w2.Cols)
			for j := range units {
				units[j] = j
			}
			sort.SliceStable(units, func(x, y int) bool { return w2.At(c, units[x]) > w2.At(c, units[y]) })
			var row []Picture
			for _, j := range units[:min(perRow, len(units))] {
				row = append(row, Picture{Pix: templateOf(w1.Row(j), nm), Caption: fmt.Sprintf("unit %d\nw=%.2f", j, w2.At(c, j))})
			}
			labels, rows = append(labels, classes[c]), append(rows, row)
		}
	} else {
		for j := 0; j < min(net.Sizes[1], 50); j += 10 {
			var row []Picture
			for k := j; k < min(j+10, net.Sizes[1]); k++ {
				row = append(row, Picture{Pix: templateOf(w1.Row(k), nm), Caption: fmt.Sprintf("unit %d", k)})
			}
			labels, rows = append(labels, fmt.Sprintf("units %d–", j)), append(rows, row)
		}
	}
	title := "Hidden units' weight templates (W1 rows as images), in order"
	if net.Layers() == 2 {
		title = "Hidden units' weight templates (W1 rows as images): for each class, the units that feed it most (largest W2[c, j]); a unit may appear for several classes"
	}
	return PictureGridSVG(title, imageSide, 2, labels, rows)
}

// worstMistakes draws the 18 most confidently misclassified test images.
func worstMistakes(test *Dataset, a Assessment, probs *Matrix, classes []string) []byte {
	var wrong []int
	for n, p := range a.Pred {
		if p != test.Y[n] {
			wrong = append(wrong, n)
		}
	}
	sort.SliceStable(wrong, func(x, y int) bool {
		return probs.At(wrong[x], a.Pred[wrong[x]]) > probs.At(wrong[y], a.Pred[wrong[y]])
	})
	var mrows [][]Picture
	if test.Pix == nil {
		wrong = nil // float images (synthetic data) are not pictures
	}
	for i, n := range wrong[:min(18, len(wrong))] {
		if i%6 == 0 {
			mrows = append(mrows, nil)
		}
		pix := test.Pix[n*inputDim : (n+1)*inputDim]
		mrows[len(mrows)-1] = append(mrows[len(mrows)-1], Picture{Pix: pix,
			Caption: fmt.Sprintf("true %s\nsaid %s %.0f%%", classes[test.Y[n]], classes[a.Pred[n]], 100*probs.At(n, a.Pred[n]))})
	}
	return PictureGridSVG("The most confident mistakes on the test set", imageSide, 3, nil, mrows)
}

// classAccuracy draws the accuracy of every class, from the confusion matrix.
func classAccuracy(a Assessment, classes []string) []byte {
	acc := make([]float64, len(classes))
	for c := range classes {
		total := 0
		for _, v := range a.Confusion[c] {
			total += v
		}
		acc[c] = 100 * float64(a.Confusion[c][c]) / math.Max(1, float64(total))
	}
	return BarsSVG(fmt.Sprintf("Accuracy per class (test accuracy %.2f%%)", 100*a.Accuracy), classes, acc)
}
