// Command cifar-mlp trains a multi-layer perceptron on CIFAR-10 from scratch,
// with nothing but Go's standard library: cache-blocked GEMM kernels, the
// network and its gradients, cyclical learning rates, a λ search and SVG
// plots. See README.md for the manual.
//
//	go run . -mode=train     # the seed report's best run
//	go run . -mode=search    # coarse-to-fine random search for λ
//	go run . -h              # every mode and flag
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"
)

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
	N        int

	// network
	Hidden []int
	He     bool

	// training
	Lambda         float64
	EtaMin, EtaMax float64
	Eta            float64 // > 0: constant η instead of the cyclical schedule
	NS             int
	Cycles         int
	Epochs         int // > 0: train this many epochs instead of 2·n_s·cycles steps
	Batch          int
	Opt            string  // sgd, momentum, nesterov, adam
	Momentum       float64 // μ for momentum and nesterov
	Dropout        float64 // inverted dropout on hidden units, 0 ≤ p < 1
	Augment        bool    // random flips and ±3 px translations per batch
	Ensemble       bool    // average the nets saved at the end of each cycle
	Seed           uint64
	Evals          int
	Out            string
	Preset         string
	Model          string
	Workers        int
	Kernel         string // GEMM micro-kernel: auto, go, avx2, avx512
	CPUProfile     string
	Args           []string // positional arguments (images for -mode=predict)

	// gradcheck
	Dims int
	H    float64

	// search
	Trials        int
	LMin, LMax    float64
	SearchHidden  []int     // nil, or the smallest and largest width tried
	SearchDropout []float64 // nil, or the dropout range tried

	// report
	Quick  bool
	Final  bool
	Shard  string
	Shards int
	Merge  bool
}

// usageError is a mistake in the command line: main prints it with a hint
// and exits with status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// newRNG returns a generator for the given seed and stream: every random
// choice in the program draws from one of these, passed explicitly.
func newRNG(seed, stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, stream))
}

// presets are named recipes: flag values applied unless the command line
// sets the flag itself.
//
// best: one hidden layer of 1000 ReLU units, trained on 49,000 images whose
// batches are augmented on the fly (random flips, ±3 px shifts), λ=5e-4,
// η ∈ [1e-5, 0.05] over five 20-epoch cycles, with the snapshot ensemble
// reported beside the final net. See the README for its accuracy and time.
var presets = map[string][][2]string{
	"best": {
		{"hidden", "1000"}, {"augment", "true"}, {"lambda", "5e-4"},
		{"eta-min", "1e-5"}, {"eta-max", "0.05"}, {"ns", "4900"}, {"cycles", "5"},
		{"evals", "1"}, {"val", "1000"}, {"ensemble", "true"},
	},
}

// flagGroups orders the flags in -h output by the modes that use them.
var flagGroups = []struct {
	title string
	names []string
}{
	{"General", []string{"mode", "preset", "out", "seed", "workers", "kernel", "cpuprofile"}},
	{"Data (train, search, eval, gradcheck, overfit, lrtest, report)", []string{"data", "download", "split", "val", "n"}},
	{"Network", []string{"hidden", "he"}},
	{"Training (train, overfit, lrtest, report, search trials)", []string{"lambda", "eta-min", "eta-max", "eta", "ns", "cycles", "epochs", "batch", "opt", "momentum", "dropout", "augment", "ensemble", "evals"}},
	{"Evaluation and prediction (eval, predict)", []string{"model"}},
	{"Gradient check (gradcheck)", []string{"dims", "step"}},
	{"λ search (search)", []string{"trials", "lmin", "lmax", "search-hidden", "search-dropout", "final", "shard", "shards", "merge"}},
	{"Report (report)", []string{"quick"}},
}

const usageHead = `cifar-mlp: a from-scratch MLP for CIFAR-10 in pure Go.

Usage:
  go run . -mode=train     [flags]           train (defaults: the seed's best run)
  go run . -mode=search    [flags]           coarse-to-fine random search for λ
  go run . -mode=search -merge DIR...        merge the results of sharded searches
  go run . -mode=eval      -model M.npz      test accuracy, per-class table, confusion matrix
  go run . -mode=predict   -model M.npz IMG...   top-3 classes of 32×32 PNG/JPEG images
  go run . -mode=gradcheck [flags]           analytic vs numerical gradients
  go run . -mode=overfit   [flags]           memorise 100 training images (sanity check)
  go run . -mode=lrtest    [flags]           learning-rate range test: ramp η over -ns steps
  go run . -mode=report    [-quick]          every experiment of the report, as one report.html
  go run . -preset best    [flags]           the ≥ 60 % recipe (1000 hidden units, augmentation)
`

// newFlagSet declares every flag, writing into cfg.
func newFlagSet(cfg *Config, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("cifar-mlp", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&cfg.Mode, "mode", "train", "what to do: train, search, eval, predict, gradcheck, overfit, lrtest, report")
	fs.StringVar(&cfg.Out, "out", "", "output folder (default runs/<mode>)")
	fs.StringVar(&cfg.Preset, "preset", "", "a named recipe of flag values (flags given explicitly win): best")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "random seed for initialisation, shuffling and the search")
	fs.IntVar(&cfg.Workers, "workers", 0, "goroutines for the GEMM, or search trials run at once (0: GOMAXPROCS)")
	fs.StringVar(&cfg.Kernel, "kernel", "auto", "GEMM micro-kernel: auto (the fastest per product among those this CPU runs), go, avx2 or avx512")
	fs.StringVar(&cfg.CPUProfile, "cpuprofile", "", "write a CPU profile of the run to this file (read it with go tool pprof)")

	fs.StringVar(&cfg.Data, "data", "cifar-10-batches-bin", "folder with the CIFAR-10 binary batches (downloaded if missing)")
	fs.BoolVar(&cfg.Download, "download", true, "download CIFAR-10 when -data does not exist (false: never touch the network)")
	fs.StringVar(&cfg.Split, "split", "all", "all: train on batches 1-5 minus the last -val images; batch1: train on batch 1, validate on batch 2")
	fs.IntVar(&cfg.Val, "val", 5000, "validation images held out from the end of the training batches (-split all), or taken from batch 2 (-split batch1; 0 = all)")
	fs.IntVar(&cfg.N, "n", 0, "use only the first N training images (0: all)")

	fs.Func("hidden", "hidden layer sizes, comma-separated (e.g. 50 or 50,50) (default 50)", func(s string) error {
		h, err := parseHidden(s)
		if err == nil {
			cfg.Hidden = h
		}
		return err
	})
	fs.BoolVar(&cfg.He, "he", false, "He initialisation σ=√(2/fan_in) instead of the assignment's 1/√fan_in")

	fs.Float64Var(&cfg.Lambda, "lambda", 1.526e-3, "L2 regularisation strength λ")
	fs.Float64Var(&cfg.EtaMin, "eta-min", 1e-5, "cyclical learning rate: minimum η")
	fs.Float64Var(&cfg.EtaMax, "eta-max", 1e-1, "cyclical learning rate: maximum η")
	fs.Float64Var(&cfg.Eta, "eta", 0, "constant learning rate instead of the cyclical schedule (0: cyclical)")
	fs.IntVar(&cfg.NS, "ns", 900, "steps per half cycle n_s (search: 0 means 2·⌊n/batch⌋)")
	fs.IntVar(&cfg.Cycles, "cycles", 3, "number of learning-rate cycles (search: default 2)")
	fs.IntVar(&cfg.Epochs, "epochs", 0, "train this many epochs instead of 2·n_s·cycles steps (0: use the cycles)")
	fs.IntVar(&cfg.Batch, "batch", 100, "mini-batch size")
	fs.StringVar(&cfg.Opt, "opt", "sgd", "optimiser: sgd, momentum, nesterov or adam (η still follows the schedule)")
	fs.Float64Var(&cfg.Momentum, "momentum", 0.9, "μ for -opt momentum and nesterov")
	fs.Float64Var(&cfg.Dropout, "dropout", 0, "inverted dropout: drop each hidden unit with probability p while training")
	fs.BoolVar(&cfg.Augment, "augment", false, "augment every batch: random left-right flips and translations of up to ±3 pixels")
	fs.BoolVar(&cfg.Ensemble, "ensemble", false, "snapshot ensemble: also report the accuracy of the nets saved at each cycle's end, softmax outputs averaged")
	fs.IntVar(&cfg.Evals, "evals", 10, "evaluations of train and validation sets per cycle")

	fs.StringVar(&cfg.Model, "model", "runs/train/model.npz", "saved model for -mode=eval and -mode=predict (eval: a comma-separated list evaluates their ensemble)")

	fs.IntVar(&cfg.Dims, "dims", 20, "gradcheck: input dimensions used in check (a)")
	fs.Float64Var(&cfg.H, "step", 1e-5, "gradcheck: finite-difference step h")

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
		if !ok || err1 != nil || err2 != nil || a < 0 || b >= 1 || a > b {
			return fmt.Errorf("want lo,hi with 0 ≤ lo ≤ hi < 1, e.g. 0,0.5; got %q", s)
		}
		cfg.SearchDropout = []float64{a, b}
		return nil
	})
	fs.BoolVar(&cfg.Final, "final", false, "search: afterwards train the best λ with the -mode=train schedule and report test accuracy")
	fs.StringVar(&cfg.Shard, "shard", "", "search: run only shard i of n (\"i/n\", trials with index ≡ i mod n); default from SLURM_ARRAY_TASK_ID/COUNT or JOB_COMPLETION_INDEX")
	fs.IntVar(&cfg.Shards, "shards", 0, "search: number of shards when the index comes from JOB_COMPLETION_INDEX (Kubernetes Indexed Jobs)")
	fs.BoolVar(&cfg.Merge, "merge", false, "search: merge the trials.csv files of the shard folders given as arguments")

	fs.BoolVar(&cfg.Quick, "quick", false, "report: a smoke version of every experiment (a few minutes)")

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
	cfg := &Config{Hidden: []int{50}, DataURL: cifarURL, DataMD5: cifarMD5}
	fs := newFlagSet(cfg, stderr)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	cfg.Args = fs.Args()
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if cfg.Preset != "" {
		values, ok := presets[cfg.Preset]
		if !ok {
			return nil, usageErrorf("-preset %q: unknown preset; want best", cfg.Preset)
		}
		for _, kv := range values {
			if !set[kv[0]] {
				if err := fs.Set(kv[0], kv[1]); err != nil {
					panic(fmt.Sprintf("mlp: preset %s: -%s %s: %v", cfg.Preset, kv[0], kv[1], err))
				}
			}
		}
		if cfg.Out == "" {
			cfg.Out = "runs/" + cfg.Preset // runs/best, or runs/best-search for other modes
			if cfg.Mode != "train" {
				cfg.Out += "-" + cfg.Mode
			}
		}
	}
	if cfg.Mode == "search" && !set["cycles"] {
		cfg.Cycles = 2
	}
	if cfg.Mode == "search" && !set["ns"] {
		cfg.NS = 0 // the assignment's rule, 2·⌊n/batch⌋, once n is known
	}
	if cfg.Out == "" {
		cfg.Out = "runs/" + cfg.Mode
	}
	if err := cfg.check(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// check validates the flags that do not depend on the data.
func (c *Config) check() error {
	switch c.Mode {
	case "train", "search", "eval", "predict", "gradcheck", "overfit", "lrtest", "report":
	default:
		return usageErrorf("-mode %q: unknown mode; want train, search, eval, predict, gradcheck, overfit, lrtest or report", c.Mode)
	}
	switch {
	case c.Lambda < 0:
		return usageErrorf("-lambda %g: λ must be ≥ 0", c.Lambda)
	case c.Batch <= 0:
		return usageErrorf("-batch %d: the batch size must be positive", c.Batch)
	case c.NS < 0 || (c.NS == 0 && c.Mode != "search"):
		return usageErrorf("-ns %d: n_s must be positive", c.NS)
	case c.Cycles <= 0:
		return usageErrorf("-cycles %d: must be positive", c.Cycles)
	case c.EtaMin <= 0 || c.EtaMax <= 0:
		return usageErrorf("-eta-min %g, -eta-max %g: learning rates must be positive", c.EtaMin, c.EtaMax)
	case c.EtaMin > c.EtaMax:
		return usageErrorf("-eta-min %g is larger than -eta-max %g", c.EtaMin, c.EtaMax)
	case c.Eta < 0:
		return usageErrorf("-eta %g: must be ≥ 0 (0 selects the cyclical schedule)", c.Eta)
	case !slices.Contains(Optimizers, c.Opt):
		return usageErrorf("-opt %q: unknown optimiser; want one of %s", c.Opt, strings.Join(Optimizers, ", "))
	case c.Momentum < 0 || c.Momentum >= 1:
		return usageErrorf("-momentum %g: μ must be in [0, 1)", c.Momentum)
	case c.Dropout < 0 || c.Dropout >= 1:
		return usageErrorf("-dropout %g: p must be in [0, 1)", c.Dropout)
	case c.Ensemble && (c.Eta > 0 || c.Epochs > 0):
		return usageErrorf("-ensemble takes a snapshot at the end of each learning-rate cycle; it needs the cyclical schedule (no -eta or -epochs)")
	case c.Evals <= 0:
		return usageErrorf("-evals %d: must be positive", c.Evals)
	case c.Epochs < 0:
		return usageErrorf("-epochs %d: must be ≥ 0", c.Epochs)
	case c.N < 0:
		return usageErrorf("-n %d: must be ≥ 0", c.N)
	case c.Val < 0:
		return usageErrorf("-val %d: must be ≥ 0", c.Val)
	case c.Dims <= 0:
		return usageErrorf("-dims %d: must be positive", c.Dims)
	case c.H <= 0:
		return usageErrorf("-step %g: the step must be positive", c.H)
	case c.Trials <= 0:
		return usageErrorf("-trials %d: must be positive", c.Trials)
	case c.LMin > c.LMax:
		return usageErrorf("-lmin %g is larger than -lmax %g", c.LMin, c.LMax)
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

// run is main without the process: it parses args, runs the mode and
// returns the exit status.
func run(args []string, stdout, stderr io.Writer, interrupt <-chan os.Signal) int {
	cfg, err := parseConfig(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		var ue *usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "cifar-mlp: %v\n", err)
			if strings.HasPrefix(ue.msg, "-mode") {
				newFlagSet(&Config{}, stderr).Usage()
			} else {
				fmt.Fprintln(stderr, "run 'go run . -h' for every mode and flag")
			}
		}
		return 2 // for a bad flag, the flag package has already printed its complaint and the usage
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
	switch cfg.Mode {
	case "train":
		err = runTrain(cfg, stdout, stderr, interrupt)
	case "overfit":
		err = runOverfit(cfg, stdout, stderr, interrupt)
	case "eval":
		err = runEval(cfg, stdout, stderr)
	case "predict":
		err = runPredict(cfg, stdout)
	case "gradcheck":
		err = runGradCheck(cfg, stdout, stderr)
	case "search":
		err = runSearch(cfg, stdout, stderr, interrupt)
	case "lrtest":
		err = runLRTest(cfg, stdout, stderr, interrupt)
	case "report":
		err = runReport(cfg, stdout, stderr, interrupt)
	}
	if err != nil {
		fmt.Fprintf(stderr, "cifar-mlp: %v\n", err)
		var ue *usageError
		if errors.As(err, &ue) {
			return 2
		}
		return 1
	}
	return 0
}

func main() {
	interrupt := make(chan os.Signal, 1)
	signal.Notify(interrupt, os.Interrupt)
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, interrupt))
}

// ---------------------------------------------------------------------------
// -mode=report: the seed report's experiments, one after another, gathered
// into one self-contained report.html.

// reportPlan is the size of each experiment; -quick shrinks them to a smoke
// run of a few minutes.
type reportPlan struct {
	n                  int // training images for the batch-1 and all-data runs (0: all)
	fig2NS, fig3NS     int
	overfitEpochs      int
	trials, trialCycle int
	finalNS            int
	finalCycles        int
}

var (
	fullReport  = reportPlan{n: 0, fig2NS: 500, fig3NS: 800, overfitEpochs: 200, trials: 8, trialCycle: 2, finalNS: 900, finalCycles: 3}
	quickReport = reportPlan{n: 2000, fig2NS: 60, fig3NS: 40, overfitEpochs: 100, trials: 3, trialCycle: 1, finalNS: 100, finalCycles: 2}
)

// reportRun is one training run of the report.
type reportRun struct {
	title, dir string
	cfg        Config
	sum        *RunSummary
}

// runReport is -mode=report.
func runReport(cfg *Config, stdout, stderr io.Writer, stop <-chan os.Signal) error {
	start := time.Now()
	plan := fullReport
	if cfg.Quick {
		plan = quickReport
	}
	out := cfg.Out
	doc := &htmlDoc{}
	synthetic := !dataPresent(cfg.Data) && !cfg.Download
	source := "CIFAR-10 in " + cfg.Data
	if synthetic {
		source = "a synthetic problem (no CIFAR-10 data in " + cfg.Data + " and -download=false)"
	}
	fmt.Fprintf(stderr, "report: %s, writing %s/report.html\n", source, out)

	// 1. Gradient check.
	var text bytes.Buffer
	gc := *cfg
	if cfg.Quick {
		gc.Hidden = []int{10} // check (b) nudges every weight: keep it small
	}
	if err := runGradCheck(&gc, &text, stderr); err != nil {
		return fmt.Errorf("report: gradient check: %w", err)
	}
	doc.h2("1. Gradient check")
	doc.p("Analytic gradients against forward and centred differences (ε = 1e-6 in the relative error), on a fresh net of the configured size. Command: " + "go run . -mode=gradcheck")
	doc.pre(text.String())

	// 2. Overfitting 100 images.
	text.Reset()
	of := *cfg
	of.Mode, of.Out, of.Epochs = "overfit", filepath.Join(out, "overfit"), plan.overfitEpochs
	if err := runOverfit(&of, &text, stderr, stop); err != nil {
		return fmt.Errorf("report: overfit: %w", err)
	}
	doc.h2("2. Sanity check: overfitting 100 images")
	doc.p(strings.TrimSpace(text.String()))
	doc.p(fmt.Sprintf("Command: go run . -mode=overfit -epochs %d", plan.overfitEpochs))
	if err := doc.figures(of.Out, "loss.svg", "accuracy.svg"); err != nil {
		return err
	}

	// The data for the training runs.
	loadSplits := func(split string, val int) (*Splits, error) {
		c := *cfg
		c.Split, c.Val, c.N = split, val, plan.n
		if synthetic {
			return syntheticSplits(600, cfg.Seed), nil
		}
		return LoadSplits(&c, stderr)
	}
	spB1, err := loadSplits("batch1", 0)
	if err != nil {
		return err
	}
	var runs []*reportRun
	train := func(title, dir string, sp *Splits, edit func(c *Config)) (*reportRun, error) {
		c := *cfg
		c.Mode, c.Out, c.N = "train", filepath.Join(out, dir), plan.n
		edit(&c)
		fmt.Fprintf(stderr, "report: %s\n", title)
		sum, err := trainAndSave(&c, sp, title, stderr, stop)
		if err != nil {
			return nil, fmt.Errorf("report: %s: %w", title, err)
		}
		if sum.Interrupted {
			return nil, fmt.Errorf("report interrupted during %q; its outputs so far are in %s, no report.html was written", title, c.Out)
		}
		r := &reportRun{title: title, dir: c.Out, cfg: c, sum: sum}
		runs = append(runs, r)
		return r, nil
	}

	// 3 and 4. The replications of the seed's Figures 2 and 3.
	for i, f := range []struct {
		title    string
		ns, cyc  int
		seedText string
	}{
		{"Figure 2: λ=0.01, one cycle, n_s=" + strconv.Itoa(plan.fig2NS), plan.fig2NS, 1, "the seed: 46.2 % test accuracy (n_s=500)"},
		{"Figure 3: λ=0.01, three cycles, n_s=" + strconv.Itoa(plan.fig3NS), plan.fig3NS, 3, "the seed: 46.9 % test accuracy (n_s=800)"},
	} {
		r, err := train(f.title, fmt.Sprintf("fig%d", i+2), spB1, func(c *Config) {
			c.Split, c.Val, c.Lambda, c.NS, c.Cycles = "batch1", 0, 0.01, f.ns, f.cyc
		})
		if err != nil {
			return err
		}
		doc.h2(fmt.Sprintf("%d. Replication of the seed's %s", 3+i, f.title))
		doc.p("Training on batch 1, validating on batch 2, " + f.seedText + ".")
		doc.runTable([]*reportRun{r})
		if err := doc.figures(r.dir, "cost.svg", "loss.svg", "accuracy.svg"); err != nil {
			return err
		}
	}

	// 5. The coarse-to-fine λ search, and 6. the final run with its best λ.
	spAll, err := loadSplits("all", cfg.Val)
	if err != nil {
		return err
	}
	sc := *cfg
	sc.Mode, sc.Out, sc.N = "search", filepath.Join(out, "search"), plan.n
	sc.Trials, sc.Cycles, sc.Final = plan.trials, plan.trialCycle, false
	sc.NS = 2 * (spAll.Train.Len() / sc.Batch)
	text.Reset()
	fmt.Fprintf(stderr, "report: λ search, %d + %d trials\n", sc.Trials, sc.Trials)
	ssum, err := searchOn(&sc, spAll, &text, stderr, stop)
	if err != nil {
		return fmt.Errorf("report: search: %w", err)
	}
	if ssum == nil {
		return fmt.Errorf("report: the search in %s is sharded and incomplete; finish it or use another -out", sc.Out)
	}
	doc.h2("5. Coarse-to-fine random search for λ")
	doc.p(fmt.Sprintf("%d trials with log10 λ uniform in [%g, %g], then %d around the best; each trial %d cycle(s) with n_s = 2·⌊n/batch⌋ = %d on %d training images. Command: go run . -mode=search -trials %d -cycles %d%s",
		sc.Trials, sc.LMin, sc.LMax, sc.Trials, sc.Cycles, sc.NS, spAll.Train.Len(), sc.Trials, sc.Cycles, nFlag(plan.n)))
	doc.pre(text.String())
	if err := doc.figures(sc.Out, "search.svg"); err != nil {
		return err
	}
	final, err := train(fmt.Sprintf("Final run: best λ=%.4g, n_s=%d, %d cycles", ssum.Best.Lambda, plan.finalNS, plan.finalCycles), "final", spAll, func(c *Config) {
		c.Lambda, c.NS, c.Cycles = ssum.Best.Lambda, plan.finalNS, plan.finalCycles
	})
	if err != nil {
		return err
	}
	doc.h2("6. " + final.title)
	doc.p("All training batches minus the validation images, the search's best λ; the seed reached 53.1 % test, 63.5 % train accuracy with λ=1.526e-3.")
	doc.runTable([]*reportRun{final})
	if err := doc.figures(final.dir, "cost.svg", "loss.svg", "accuracy.svg", "lr.svg"); err != nil {
		return err
	}
	if spAll.Test != nil && spAll.Test.Len() > 0 {
		m, err := LoadModel(filepath.Join(final.dir, "model.npz"))
		if err != nil {
			return err
		}
		gemm := NewGemmNamed(cfg.Workers, cfg.Kernel)
		pred := make([]int, spAll.Test.Len())
		met := m.Net.Evaluate(NewWorkspace(m.Net, gemm, evalChunk), spAll.Test, 0, pred)
		gemm.Close()
		classes := spAll.Classes
		if len(classes) != numClasses {
			classes = defaultClassNames[:]
		}
		doc.svg(HeatmapSVG(fmt.Sprintf("Final run: confusion matrix, test accuracy %.2f%%", 100*met.Accuracy), classes, confusion(spAll.Test.Y, pred), "true class", "predicted class"))
	}

	// Summary of every run, first in the page.
	page := &htmlDoc{}
	page.h2("Summary")
	page.p(fmt.Sprintf("Data: %s. GEMM kernel: %s, GOMAXPROCS %d. The whole report took %.0f s. Every run's folder (history.csv, summary.json, plots, model.npz) is under %s.",
		source, kernelName(cfg.Kernel), runtime.GOMAXPROCS(0), time.Since(start).Seconds(), out))
	page.runTable(runs)
	html := page.page("cifar-mlp report: a two-layer MLP on CIFAR-10", doc)
	path := filepath.Join(out, "report.html")
	if err := writeBytesAtomic(path, html); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (%d figures inlined) in %.0f s\n", path, bytes.Count(html, []byte("<svg ")), time.Since(start).Seconds())
	return nil
}

// cpuModel names the processor ("unknown" where the build cannot ask it).
func cpuModel() string {
	if cpu.Model == "" {
		return "unknown CPU"
	}
	return cpu.Model
}

// kernelName names the micro-kernels -kernel selects on this machine.
func kernelName(kernel string) string {
	g := NewGemmNamed(1, kernel)
	defer g.Close()
	return g.KernelName()
}

// nFlag is " -n N" when n > 0.
func nFlag(n int) string {
	if n > 0 {
		return fmt.Sprintf(" -n %d", n)
	}
	return ""
}

// commandLine is the -mode=train command that repeats a run of the report.
func commandLine(c *Config) string {
	s := fmt.Sprintf("go run . -mode=train -split %s -val %d%s -lambda %g -eta-min %g -eta-max %g -ns %d -cycles %d -batch %d -hidden %s -seed %d",
		c.Split, c.Val, nFlag(c.N), c.Lambda, c.EtaMin, c.EtaMax, c.NS, c.Cycles, c.Batch, joinInts(c.Hidden), c.Seed)
	if c.Opt != "" && c.Opt != "sgd" {
		s += " -opt " + c.Opt
	}
	if c.Dropout > 0 {
		s += fmt.Sprintf(" -dropout %g", c.Dropout)
	}
	if c.Augment {
		s += " -augment"
	}
	return s
}

func joinInts(v []int) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = strconv.Itoa(x)
	}
	return strings.Join(parts, ",")
}

// confusion counts (true class, predicted class) pairs.
func confusion(y, pred []int) [][]int {
	conf := make([][]int, numClasses)
	for i := range conf {
		conf[i] = make([]int, numClasses)
	}
	for i, p := range pred {
		conf[y[i]][p]++
	}
	return conf
}
