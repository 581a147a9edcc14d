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
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
)

// Config is every setting of a run, parsed from the flags in main and passed
// down explicitly (there is no global mutable state).
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
	Seed           uint64
	Evals          int
	Out            string
	Model          string
	Workers        int
	CPUProfile     string
	Args           []string // positional arguments (images for -mode=predict)

	// gradcheck
	Dims int
	H    float64

	// search
	Trials     int
	LMin, LMax float64
	Final      bool
	Shard      string
	Shards     int
	Merge      bool
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

// flagGroups orders the flags in -h output by the modes that use them.
var flagGroups = []struct {
	title string
	names []string
}{
	{"General", []string{"mode", "out", "seed", "workers", "cpuprofile"}},
	{"Data (train, search, eval, gradcheck, overfit)", []string{"data", "download", "split", "val", "n"}},
	{"Network", []string{"hidden", "he"}},
	{"Training (train, overfit, search trials)", []string{"lambda", "eta-min", "eta-max", "eta", "ns", "cycles", "epochs", "batch", "evals"}},
	{"Evaluation and prediction (eval, predict)", []string{"model"}},
	{"Gradient check (gradcheck)", []string{"dims", "step"}},
	{"λ search (search)", []string{"trials", "lmin", "lmax", "final", "shard", "shards", "merge"}},
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
`

// newFlagSet declares every flag, writing into cfg.
func newFlagSet(cfg *Config, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("cifar-mlp", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&cfg.Mode, "mode", "train", "what to do: train, search, eval, predict, gradcheck, overfit")
	fs.StringVar(&cfg.Out, "out", "", "output folder (default runs/<mode>)")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "random seed for initialisation, shuffling and the search")
	fs.IntVar(&cfg.Workers, "workers", 0, "goroutines for the GEMM, or search trials run at once (0: GOMAXPROCS)")
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
	fs.IntVar(&cfg.Evals, "evals", 10, "evaluations of train and validation sets per cycle")

	fs.StringVar(&cfg.Model, "model", "runs/train/model.npz", "saved model for -mode=eval and -mode=predict")

	fs.IntVar(&cfg.Dims, "dims", 20, "gradcheck: input dimensions used in check (a)")
	fs.Float64Var(&cfg.H, "step", 1e-5, "gradcheck: finite-difference step h")

	fs.IntVar(&cfg.Trials, "trials", 8, "search: λ values tried in each phase (coarse, fine)")
	fs.Float64Var(&cfg.LMin, "lmin", -5, "search: coarse range lower end of log10 λ")
	fs.Float64Var(&cfg.LMax, "lmax", -1, "search: coarse range upper end of log10 λ")
	fs.BoolVar(&cfg.Final, "final", false, "search: afterwards train the best λ with the -mode=train schedule and report test accuracy")
	fs.StringVar(&cfg.Shard, "shard", "", "search: run only shard i of n (\"i/n\", trials with index ≡ i mod n); default from SLURM_ARRAY_TASK_ID/COUNT or JOB_COMPLETION_INDEX")
	fs.IntVar(&cfg.Shards, "shards", 0, "search: number of shards when the index comes from JOB_COMPLETION_INDEX (Kubernetes Indexed Jobs)")
	fs.BoolVar(&cfg.Merge, "merge", false, "search: merge the trials.csv files of the shard folders given as arguments")

	fs.Usage = func() {
		fmt.Fprint(out, usageHead)
		for _, g := range flagGroups {
			fmt.Fprintf(out, "\n%s:\n", g.title)
			for _, name := range g.names {
				f := fs.Lookup(name)
				line := fmt.Sprintf("  -%-10s %s", f.Name, f.Usage)
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
	case "train", "search", "eval", "predict", "gradcheck", "overfit":
	default:
		return usageErrorf("-mode %q: unknown mode; want train, search, eval, predict, gradcheck or overfit", c.Mode)
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
