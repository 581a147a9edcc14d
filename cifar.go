package main

// cifar.go: CIFAR-10 in its official binary layout — reading, checking,
// downloading, splitting and normalising.
//
// Each of data_batch_1.bin … data_batch_5.bin and test_batch.bin holds 10,000
// records of 3073 bytes: one label byte (0–9), then 3072 pixel bytes, the
// 1024 red values, then 1024 green, then 1024 blue, each a 32×32 plane in
// row-major order. batches.meta.txt names the classes, one per line.

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // ReadImage decodes JPEG
	_ "image/png"  // and PNG
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
)

const (
	imageSide   = 32
	inputDim    = 3 * imageSide * imageSide // D = 3072
	recordSize  = 1 + inputDim              // label byte + pixels
	numClasses  = 10                        // C
	batchImages = 10000

	// The official archive, as published on the data set's home page.
	cifarURL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
	cifarMD5 = "c32a1d4ab5d03f1284b67883e8d87530"
)

// defaultClassNames are CIFAR-10's classes in label order (used when
// batches.meta.txt is absent).
var defaultClassNames = [numClasses]string{"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"}

// batchFiles are the six files of the data set: five training batches, then
// the test batch.
var batchFiles = []string{"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin"}

// FormatError reports a malformed batch file: which file, which record (−1
// when the whole file is at fault) and what is wrong.
type FormatError struct {
	File   string
	Record int
	Msg    string
}

func (e *FormatError) Error() string {
	if e.Record < 0 {
		return fmt.Sprintf("cifar: %s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("cifar: %s: record %d: %s", e.File, e.Record, e.Msg)
}

// checkBatch validates the layout of a batch file's bytes and returns the
// number of records.
func checkBatch(name string, data []byte) (int, error) {
	if err := checkSize(name, int64(len(data))); err != nil {
		return 0, err
	}
	if err := checkLabels(name, data, 0); err != nil {
		return 0, err
	}
	return len(data) / recordSize, nil
}

// checkSize validates a batch file's size: whole records, at least one.
func checkSize(name string, size int64) error {
	if size == 0 {
		return &FormatError{name, -1, "file is empty"}
	}
	if size%recordSize != 0 {
		return &FormatError{name, -1, fmt.Sprintf("size %d bytes is not a whole number of %d-byte records (1 label + 3072 pixels); the file is truncated or not a CIFAR-10 binary batch", size, recordSize)}
	}
	return nil
}

// checkLabels validates the label byte of each whole record in data, the
// file's records from number first on.
func checkLabels(name string, data []byte, first int) error {
	for r := 0; r < len(data)/recordSize; r++ {
		if lbl := data[r*recordSize]; lbl >= numClasses {
			return &FormatError{name, first + r, fmt.Sprintf("label %d is not a class (want 0–9); this is not a CIFAR-10 batch (CIFAR-100 has 2 label bytes)", lbl)}
		}
	}
	return nil
}

// decodeRecords splits the records of a checked batch into pix (D bytes
// per image) and y.
func decodeRecords(data []byte, pix []uint8, y []int) {
	for r := range y {
		rec := data[r*recordSize : (r+1)*recordSize]
		y[r] = int(rec[0])
		copy(pix[r*inputDim:(r+1)*inputDim], rec[1:])
	}
}

// ParseBatch decodes one batch file's bytes (inputs p/255, not yet
// normalised). name is used in errors.
func ParseBatch(name string, data []byte) (*Dataset, error) {
	n, err := checkBatch(name, data)
	if err != nil {
		return nil, err
	}
	d := &Dataset{Pix: make([]uint8, n*inputDim), Y: make([]int, n)}
	decodeRecords(data, d.Pix, d.Y)
	return d, nil
}

// readBatches reads the named files from dir into one dataset, keeping at
// most limit images (limit ≤ 0: all, else the first limit in file order).
// The files' sizes are looked up first, so that every file's images have
// their place in the dataset before any is read; then the files are read
// at the same time, one per core (readRecords), each straight into its
// place. Reading is mostly the OS copying the file and giving the dataset's
// fresh memory its pages (in a virtual machine about 12 µs a 4 KiB page),
// work that shares out over the cores; the peak memory is the images'
// bytes plus a chunk per core. On 2 cores of an AMD EPYC (Zen 5), a
// two-step run of the seed's recipe, one file after the other in one 30 MB
// buffer → at the same time in chunks: 1.37 → 1.03 s, 268 → 218 MB.
func readBatches(ctx context.Context, dir string, names []string, limit int) (*Dataset, error) {
	paths, counts := make([]string, len(names)), make([]int, len(names))
	total := 0
	for i, name := range names {
		p := filepath.Join(dir, name)
		st, err := os.Stat(p)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, &DataError{Problem: DataFileMissing, Path: p, Err: err}
			}
			return nil, fmt.Errorf("read %s: %w", p, err)
		}
		if err := checkSize(p, st.Size()); err != nil {
			return nil, err
		}
		paths[i], counts[i] = p, int(st.Size()/recordSize)
		total += counts[i]
	}
	if limit > 0 {
		total = min(total, limit)
	}
	d := &Dataset{Pix: make([]uint8, total*inputDim), Y: make([]int, total)}
	errs := make([]error, len(names))
	slots := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for i, at := 0, 0; i < len(paths) && at < total; i++ {
		lo, hi := at, min(at+counts[i], total)
		at = hi
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			errs[i] = readRecords(ctx, paths[i], d.Pix[lo*inputDim:hi*inputDim], d.Y[lo:hi])
		})
	}
	wg.Wait()
	for _, err := range errs { // the first file's error, whatever finished first
		if err != nil {
			return nil, err
		}
	}
	return d, nil
}

// readChunk is how many records readRecords reads at once: 1.5 MB, which
// is still in the cache when decodeRecords copies it, where a whole file
// (30 MB) would be read back from memory.
const readChunk = 512

// readRecords reads the first len(y) records of the batch file at p, a
// chunk at a time, checking each chunk's labels before decoding it into pix
// (len(y)·D bytes) and y.
func readRecords(ctx context.Context, p string, pix []uint8, y []int) error {
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("read %s: %w", p, err)
	}
	defer f.Close()
	buf := make([]byte, min(readChunk, len(y))*recordSize)
	for r := 0; r < len(y); r += readChunk {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("read %s: %w", p, context.Cause(ctx))
		}
		n := min(readChunk, len(y)-r)
		b := buf[:n*recordSize]
		if _, err := io.ReadFull(f, b); err != nil {
			return fmt.Errorf("read %s: %w", p, err)
		}
		if err := checkLabels(p, b, r); err != nil {
			return err
		}
		decodeRecords(b, pix[r*inputDim:], y[r:r+n])
	}
	return nil
}

// readClassNames reads batches.meta.txt (one class per line), falling back
// to the standard names if the file is absent.
func readClassNames(dir string) ([]string, error) {
	p := filepath.Join(dir, "batches.meta.txt")
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return defaultClassNames[:], nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	var names []string
	for _, line := range strings.Split(string(b), "\n") {
		if s := strings.TrimSpace(line); s != "" {
			names = append(names, s)
		}
	}
	if len(names) != numClasses {
		return nil, fmt.Errorf("read %s: %d class names, want %d (one per line)", p, len(names), numClasses)
	}
	return names, nil
}

// Splits is what a run trains, validates and tests on, each read through
// the training split's per-dimension mean and standard deviation (Norm).
type Splits struct {
	Train, Val, Test *Dataset
	Norm             *Norm
	Classes          []string
}

// dataPresent reports whether dir holds all six batch files.
func dataPresent(dir string) bool {
	for _, f := range batchFiles {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || !st.Mode().IsRegular() {
			return false
		}
	}
	return true
}

// DataSource says where the data set lives and how to get it when it is
// missing.
type DataSource struct {
	Dir      string // the folder of the binary batches
	Download bool   // fetch URL into Dir when Dir does not exist
	URL, MD5 string // the archive and its checksum (cifarURL, cifarMD5)

	// Download limits; zero values mean the defaults (tests set small ones).
	Client      *http.Client  // nil: downloadClient
	IdleTimeout time.Duration // give up when no byte arrives for this long (downloadIdle)
	MaxBytes    int64         // refuse a larger body (maxArchiveBytes)
}

// DataError is data that is not where the data source points and cannot be
// fetched from here; main turns it into advice naming the flags.
type DataError struct {
	Problem DataProblem
	Path    string // the folder, the missing file or the URL
	Err     error  // the cause (nil: none)
}

// DataProblem is what a DataError found.
type DataProblem int

const (
	DataNotHere     DataProblem = iota // Path exists, but neither it nor Path/cifar-10-batches-bin holds the batch files
	DataNoDownload                     // nothing at Path, and downloads are off
	DataFileMissing                    // Path, one batch file of a folder that holds others, is missing
	DataUnreachable                    // the download from Path could not connect
)

func (e *DataError) Error() string {
	switch e.Problem {
	case DataNotHere:
		return fmt.Sprintf("%s: neither it nor %s holds %s", e.Path, filepath.Join(e.Path, archiveFolder), strings.Join(batchFiles, ", "))
	case DataNoDownload:
		return fmt.Sprintf("no CIFAR-10 data at %s, and downloads are off", e.Path)
	case DataFileMissing:
		return fmt.Sprintf("read %s: file missing", e.Path)
	}
	return fmt.Sprintf("download %s: %v", e.Path, e.Err)
}

func (e *DataError) Unwrap() error { return e.Err }

// Ensure finds the data set and returns the folder that holds the batch
// files. -data may name that folder, its parent (where the archive unpacks
// cifar-10-batches-bin), or a downloaded cifar-10-binary.tar.gz, which is
// MD5-checked and unpacked safely next to it. A folder that does not exist
// is downloaded into when downloads are allowed.
func (src DataSource) Ensure(ctx context.Context, progress io.Writer) (string, error) {
	if dataPresent(src.Dir) {
		return src.Dir, nil
	}
	child := filepath.Join(src.Dir, archiveFolder)
	if dataPresent(child) {
		return child, nil
	}
	st, err := os.Stat(src.Dir)
	switch {
	case err == nil && st.Mode().IsRegular() && (strings.HasSuffix(src.Dir, ".tar.gz") || strings.HasSuffix(src.Dir, ".tgz")):
		dir := filepath.Join(filepath.Dir(src.Dir), archiveFolder)
		if dataPresent(dir) {
			return dir, nil
		}
		fmt.Fprintf(progress, "unpacking %s into %s\n", src.Dir, dir)
		return dir, unpackLocal(ctx, src.Dir, src.MD5, dir)
	case err == nil:
		return "", &DataError{Problem: DataNotHere, Path: src.Dir}
	case !src.Download:
		return "", &DataError{Problem: DataNoDownload, Path: src.Dir}
	}
	fmt.Fprintf(progress, "CIFAR-10 not found in %s; downloading %s\n", src.Dir, src.URL)
	return src.Dir, downloadCIFAR(ctx, src, progress)
}

// Available reports whether Ensure finds the data without downloading: the
// folder, its cifar-10-batches-bin child, or a .tar.gz archive.
func (src DataSource) Available() bool {
	st, err := os.Stat(src.Dir)
	return dataPresent(src.Dir) || dataPresent(filepath.Join(src.Dir, archiveFolder)) ||
		(err == nil && st.Mode().IsRegular() && (strings.HasSuffix(src.Dir, ".tar.gz") || strings.HasSuffix(src.Dir, ".tgz")))
}

// archiveFolder is the folder the official archive unpacks.
const archiveFolder = "cifar-10-batches-bin"

// unpackLocal checks the MD5 of a local archive and unpacks it into dir
// (through a temporary folder beside it, renamed when complete).
func unpackLocal(ctx context.Context, archive, wantMD5, dir string) error {
	f, err := os.Open(archive)
	if err != nil {
		return fmt.Errorf("read %s: %w", archive, err)
	}
	defer f.Close()
	hash := md5.New()
	if _, err := io.Copy(hash, f); err != nil {
		return fmt.Errorf("read %s: %w", archive, err)
	}
	if got := hex.EncodeToString(hash.Sum(nil)); got != wantMD5 {
		return fmt.Errorf("%s: MD5 %s, want %s: not the official CIFAR-10 binary archive, or damaged; download it again", archive, got, wantMD5)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("read %s: %w", archive, err)
	}
	return installArchive(ctx, f, dir, archive)
}

// installArchive extracts the archive r into a temporary folder beside dir
// and renames it to dir once complete; on failure nothing is left.
func installArchive(ctx context.Context, r io.Reader, dir, name string) error {
	parent := filepath.Dir(dir)
	stage, err := os.MkdirTemp(parent, ".cifar-extract-*")
	if err != nil {
		return fmt.Errorf("create temporary folder in %s: %w", parent, err)
	}
	if err := extractCIFAR(ctx, r, stage); err != nil {
		os.RemoveAll(stage)
		return fmt.Errorf("extract %s: %w", name, err)
	}
	if err := os.Rename(stage, dir); err != nil {
		os.RemoveAll(stage)
		return fmt.Errorf("move %s into place as %s: %w", stage, dir, err)
	}
	return nil
}

// The ways LoadSplits can cut the training batches.
const (
	SplitAll    = "all"    // train on data_batch_1…5 minus the last val images, which validate
	SplitBatch1 = "batch1" // train on data_batch_1, validate on data_batch_2
)

// SplitError is a split that the data cannot give: val images out of the
// training batches' total, or an empty training set. The command line
// reports it naming its flags.
type SplitError struct {
	Val, Available int  // the validation images asked for, the images there are
	Empty          bool // nothing left to train on
}

func (e *SplitError) Error() string {
	if e.Empty {
		return "the training split is empty"
	}
	return fmt.Sprintf("the validation set must hold at least 0 and fewer than the %d training images, not %d", e.Available, e.Val)
}

// LoadSplits loads (downloading if needed) and splits the data:
//
//	SplitAll     train on data_batch_1…5 minus the last val images, which
//	             validate (45,000/5,000 for val = 5000: the seed's set-up)
//	SplitBatch1  train on data_batch_1, validate on the first val images of
//	             data_batch_2 (val = 0: all of it; the assignment's first
//	             exercises)
//
// maxTrain > 0 caps the training set. The test set is always test_batch.bin.
// Every split is normalised with the training split's mean and std.
func LoadSplits(ctx context.Context, src DataSource, split string, val, maxTrain int, progress io.Writer) (*Splits, error) {
	dir, err := src.Ensure(ctx, progress)
	if err != nil {
		return nil, err
	}
	classes, err := readClassNames(dir)
	if err != nil {
		return nil, err
	}
	sp := &Splits{Classes: classes}
	switch split {
	case SplitAll:
		all, err := readBatches(ctx, dir, batchFiles[:5], 0)
		if err != nil {
			return nil, err
		}
		if val < 0 || val >= all.Len() {
			return nil, &SplitError{Val: val, Available: all.Len()}
		}
		nTrain := all.Len() - val
		sp.Val = all.Subset(nTrain, all.Len())
		if maxTrain > 0 && maxTrain < nTrain {
			nTrain = maxTrain
		}
		sp.Train = all.Subset(0, nTrain)
	case SplitBatch1:
		if sp.Train, err = readBatches(ctx, dir, batchFiles[:1], maxTrain); err != nil {
			return nil, err
		}
		if sp.Val, err = readBatches(ctx, dir, batchFiles[1:2], val); err != nil {
			return nil, err
		}
	default:
		panic(fmt.Sprintf("mlp: LoadSplits: split %q, want %q or %q", split, SplitAll, SplitBatch1))
	}
	if sp.Test, err = readBatches(ctx, dir, batchFiles[5:], 0); err != nil {
		return nil, err
	}
	if sp.Train.Len() == 0 {
		return nil, &SplitError{Empty: true}
	}
	sp.Norm = NewNorm(pixelMeanStd(sp.Train.Pix))
	for _, d := range []*Dataset{sp.Train, sp.Val, sp.Test} {
		d.Norm = sp.Norm
	}
	return sp, nil
}

// LoadTest reads test_batch.bin (downloading the data set if needed) and
// the class names, to be normalised with a saved model's numbers.
func LoadTest(ctx context.Context, src DataSource, progress io.Writer) (*Dataset, []string, error) {
	dir, err := src.Ensure(ctx, progress)
	if err != nil {
		return nil, nil, err
	}
	classes, err := readClassNames(dir)
	if err != nil {
		return nil, nil, err
	}
	test, err := readBatches(ctx, dir, batchFiles[5:], 0)
	if err != nil {
		return nil, nil, err
	}
	return test, classes, nil
}

// maxImagePixels bounds the images ReadImage decodes (24 megapixels, a
// 6000×4000 photo): the size is read from the header first, so a tiny file
// that declares a huge image is refused before any pixel is decoded. The
// decoders need up to about 18 bytes a pixel at once (a 16-bit PNG's
// pixels and rows; a progressive JPEG's coefficients and planes): at 64
// megapixels a 0.5 MB PNG took 1.07 GB; at 24 a 16-bit RGBA PNG of
// 6000×4000 takes 0.33 GB and a baseline JPEG 0.12 GB (peak RSS of
// -mode=predict).
const maxImagePixels = 24 << 20

// maxImageFileBytes bounds the bytes ReadImage reads: an image is read
// whole, so that a pipe (/dev/stdin) serves as well as a file.
const maxImageFileBytes = 256 << 20

// ReadImage reads a PNG or JPEG into the CIFAR layout: the red plane, then
// green, then blue, one byte per pixel (D = 3072 bytes). An image that is
// not 32×32 is centre-cropped to a square and scaled to 32×32, each output
// pixel the mean of the source pixels it covers (resized reports it).
func ReadImage(path string) (pix []uint8, resized bool, err error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, false, fmt.Errorf("read %s: %w", path, err)
	}
	if st.Mode()&(os.ModeDevice|os.ModeSocket) != 0 || st.Mode()&os.ModeNamedPipe != 0 && !isStdin(path) {
		// Opening a named pipe waits for a writer, which may never come.
		return nil, false, fmt.Errorf("read %s: not a regular file (a %v); give an image file, or pipe one into /dev/stdin", path, st.Mode().Type())
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, false, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxImageFileBytes+1))
	if err != nil {
		return nil, false, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > maxImageFileBytes {
		return nil, false, fmt.Errorf("read %s: more than %d MiB; an image file is read whole, at most %d MiB", path, maxImageFileBytes>>20, maxImageFileBytes>>20)
	}
	conf, _, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, false, fmt.Errorf("read %s: %w (want a PNG or JPEG)", path, err)
	}
	if conf.Width <= 0 || conf.Height <= 0 || conf.Width > maxImagePixels/conf.Height {
		return nil, false, fmt.Errorf("read %s: the image declares %d×%d pixels; at most %d megapixels are read", path, conf.Width, conf.Height, maxImagePixels>>20)
	}
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, false, fmt.Errorf("read %s: %w (want a PNG or JPEG)", path, err)
	}
	b := img.Bounds()
	// The centred square, side s, cut into 32×32 boxes.
	s := min(b.Dx(), b.Dy())
	x0, y0 := b.Min.X+(b.Dx()-s)/2, b.Min.Y+(b.Dy()-s)/2
	const plane = imageSide * imageSide
	pix = make([]uint8, inputDim)
	for y := 0; y < imageSide; y++ {
		ya, yb := y*s/imageSide, max(y*s/imageSide+1, (y+1)*s/imageSide)
		for x := 0; x < imageSide; x++ {
			xa, xb := x*s/imageSide, max(x*s/imageSide+1, (x+1)*s/imageSide)
			var sum [3]uint64
			for sy := ya; sy < yb; sy++ {
				for sx := xa; sx < xb; sx++ {
					r, g, bl, _ := img.At(x0+sx, y0+sy).RGBA()
					sum[0], sum[1], sum[2] = sum[0]+uint64(r>>8), sum[1]+uint64(g>>8), sum[2]+uint64(bl>>8)
				}
			}
			n := uint64((yb - ya) * (xb - xa))
			i := y*imageSide + x
			pix[i], pix[plane+i], pix[2*plane+i] = uint8((sum[0]+n/2)/n), uint8((sum[1]+n/2)/n), uint8((sum[2]+n/2)/n)
		}
	}
	return pix, b.Dx() != imageSide || b.Dy() != imageSide, nil
}

// isStdin reports whether path names this process's standard input
// (/dev/stdin, /dev/fd/0, /proc/self/fd/0), which may be a pipe.
func isStdin(path string) bool {
	switch filepath.Clean(path) {
	case "/dev/stdin", "/dev/fd/0", "/proc/self/fd/0":
		return true
	}
	return false
}

// pixelMeanStd returns the per-input mean and (population) standard
// deviation of p/255 over images stored as bytes (N×D); a constant input
// gets std 1 so that normalising leaves it at 0. Each column is summed over
// n in increasing order; columns are independent, so they are cut over the
// cores (meanStdColumns), and the bits do not depend on how many.
func pixelMeanStd(pix []uint8) (mean, std []float64) {
	mean, std = make([]float64, inputDim), make([]float64, inputDim)
	parts := min(runtime.GOMAXPROCS(0), inputDim/64) // 64 columns or more a part
	var wg sync.WaitGroup
	for w := range parts {
		lo, hi := inputDim*w/parts, inputDim*(w+1)/parts
		wg.Go(func() { meanStdColumns(pix, lo, hi, mean[lo:hi], std[lo:hi]) })
	}
	wg.Wait()
	return mean, std
}

// meanStdColumns computes pixelMeanStd's columns lo … hi−1 into m and s.
// Four rows a pass, so that m[j] and s[j] are loaded and stored once for
// four additions, in the same order as one row a pass (about 2× faster).
func meanStdColumns(pix []uint8, lo, hi int, m, s []float64) {
	n := len(pix) / inputDim
	row := func(r int) []uint8 { return pix[r*inputDim+lo : r*inputDim+hi] }
	r := 0
	for ; r+4 <= n; r += 4 {
		p0, p1, p2, p3 := row(r), row(r+1), row(r+2), row(r+3)
		for j := range m {
			m[j] = m[j] + scale255[p0[j]] + scale255[p1[j]] + scale255[p2[j]] + scale255[p3[j]]
		}
	}
	for ; r < n; r++ {
		for j, p := range row(r) {
			m[j] += scale255[p]
		}
	}
	for j := range m {
		m[j] /= float64(n)
	}
	for r = 0; r+4 <= n; r += 4 {
		p0, p1, p2, p3 := row(r), row(r+1), row(r+2), row(r+3)
		for j, mj := range m {
			d0, d1, d2, d3 := scale255[p0[j]]-mj, scale255[p1[j]]-mj, scale255[p2[j]]-mj, scale255[p3[j]]-mj
			s[j] = s[j] + float64(d0*d0) + float64(d1*d1) + float64(d2*d2) + float64(d3*d3)
		}
	}
	for ; r < n; r++ {
		for j, p := range row(r) {
			d := scale255[p] - m[j]
			s[j] += float64(d * d)
		}
	}
	for j := range s {
		s[j] = math.Sqrt(s[j] / float64(n))
		if s[j] == 0 {
			s[j] = 1
		}
	}
}

// maxShift is the largest translation, in pixels, of -augment.
const maxShift = 3

// augmentRow writes to dst (D values) a randomly transformed copy of image
// i of d, a CIFAR-10 image (planes R, G, B, rows of 32): with probability ½
// flipped left–right, then translated by (dx, dy), each drawn uniformly from
// −3…3 pixels. The transform moves the raw pixels, as a camera would see
// them, and the result is normalised position by position:
//
//	out(c, y, x) = raw(c, reflect(y − dy), reflect(x' − dx)),  x' = 31 − x if flipped
//	dst = (out/255 − mean)·(1/std)
//
// Pixels shifted in from beyond the border mirror the image (reflect(−1) =
// 1, reflect(32) = 30), so no value outside the image is ever read and the
// pixel statistics barely move. Float images (d.X) are moved as they are.
func augmentRow(dst []float64, d *Dataset, i int, rng *rand.Rand) {
	transformRow(dst, d, i, drawShift(rng))
}

// imageShift is one draw of augmentRow's transform.
type imageShift struct {
	flip   bool
	dx, dy int
}

// drawShift draws a flip with probability ½, then dx and dy from −3…3.
func drawShift(rng *rand.Rand) imageShift {
	flip := rng.IntN(2) == 1
	dx := rng.IntN(2*maxShift+1) - maxShift
	dy := rng.IntN(2*maxShift+1) - maxShift
	return imageShift{flip, dx, dy}
}

// transformRow is augmentRow with the transform given.
func transformRow(dst []float64, d *Dataset, i int, sh imageShift) {
	flip, dx, dy := sh.flip, sh.dx, sh.dy
	const side = imageSide
	if len(dst) != inputDim || d.Dim() != inputDim {
		panic(fmt.Sprintf("mlp: transformRow: want %d values in dst and per image; got %d and %d", inputDim, len(dst), d.Dim()))
	}
	if !flip && dx == 0 && dy == 0 {
		d.Row(dst, i)
		return
	}
	var pix []uint8
	var x []float64
	if d.X != nil {
		x = d.X.Row(i)
	} else {
		pix = d.Pix[i*inputDim : (i+1)*inputDim]
	}
	for c := 0; c < 3; c++ {
		plane := c * side * side
		for y := 0; y < side; y++ {
			sy := reflect(y-dy, side)
			for xx := 0; xx < side; xx++ {
				sx := xx
				if flip {
					sx = side - 1 - xx
				}
				sx = reflect(sx-dx, side)
				from, to := plane+sy*side+sx, plane+y*side+xx
				if x != nil {
					dst[to] = x[from]
				} else {
					dst[to] = d.Norm.value(pix[from], to)
				}
			}
		}
	}
}

// ttaViews are the views of d's images that test-time augmentation
// averages over: the images as they are and mirrored left–right (the one
// transform of -augment that loses no pixels).
func ttaViews(d *Dataset) []*Dataset { return []*Dataset{d, mirrored(d)} }

// mirrored returns a copy of d (CIFAR-10 images: planes R, G, B of 32 rows)
// with every image flipped left–right, out(c, y, x) = in(c, y, 31 − x),
// stored the same way (bytes or floats).
func mirrored(d *Dataset) *Dataset {
	if d.Dim() != inputDim {
		panic(fmt.Sprintf("mlp: mirrored: want 32×32 colour images (%d values), got %d", inputDim, d.Dim()))
	}
	out := &Dataset{Y: d.Y, Norm: d.Norm}
	if d.X != nil {
		out.X = NewMatrix(d.X.Rows, d.X.Cols)
		mirrorRows(out.X.Data, d.X.Data)
	} else {
		out.Pix = make([]uint8, len(d.Pix))
		mirrorRows(out.Pix, d.Pix)
	}
	return out
}

// mirrorRows reverses every run of imageSide values of src into dst: the
// rows of every plane of every image.
func mirrorRows[T uint8 | float64](dst, src []T) {
	const side = imageSide
	for r := 0; r+side <= len(src); r += side {
		row, out := src[r:r+side], dst[r:r+side]
		for x := range side {
			out[x] = row[side-1-x]
		}
	}
}

// reflect maps a coordinate that fell off an image of the given side back
// inside by mirroring at the border pixel: −1 → 1, side → side−2.
func reflect(i, side int) int {
	if i < 0 {
		i = -i
	}
	if i >= side {
		i = 2*(side-1) - i
	}
	return i
}

// syntheticDataset returns n samples of a planted problem with d dimensions
// and c classes: each class has a random centre and samples are centre +
// unit noise. Used when no real data is needed (tests, gradcheck fallback).
func syntheticDataset(n, d, c int, rng *rand.Rand) *Dataset {
	centres := NewMatrix(c, d)
	for i := range centres.Data {
		centres.Data[i] = rng.NormFloat64()
	}
	ds := &Dataset{X: NewMatrix(n, d), Y: make([]int, n)}
	for i := 0; i < n; i++ {
		k := i % c
		ds.Y[i] = k
		row, ctr := ds.X.Row(i), centres.Row(k)
		for j := range row {
			row[j] = ctr[j] + rng.NormFloat64()
		}
	}
	return ds
}

// ---------------------------------------------------------------------------
// Download and safe extraction.

// Download limits. The archive is about 170 MB; a body larger than
// maxArchiveBytes is refused, and a server that sends nothing for
// downloadIdle (or does not answer within it) is given up on.
const (
	maxArchiveBytes = 200 << 20
	downloadIdle    = 60 * time.Second
	connectTimeout  = 30 * time.Second
)

// errStalled is the cause of a download cancelled for sending nothing.
var errStalled = errors.New("no data received")

// downloadClient is the HTTP client of downloads: timeouts on connecting
// and on the TLS handshake; the wait for the headers and the body's idle
// time are watched by downloadCIFAR itself.
func downloadClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: connectTimeout}).DialContext,
		TLSHandshakeTimeout: connectTimeout,
	}}
}

// downloadCIFAR fetches the archive src.URL into a temporary file beside
// src.Dir, checks its size and MD5, extracts the batch files into a
// temporary folder beside it and renames that folder to src.Dir. On any
// failure or cancellation (ctx) nothing is left behind: the folder does not
// exist unless it is complete.
func downloadCIFAR(ctx context.Context, src DataSource, progress io.Writer) error {
	url, dir := src.URL, src.Dir
	idle, limit := src.IdleTimeout, src.MaxBytes
	if idle <= 0 {
		idle = downloadIdle
	}
	if limit <= 0 {
		limit = maxArchiveBytes
	}
	client := src.Client
	if client == nil {
		client = downloadClient()
	}
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", parent, err)
	}
	tmp, err := os.CreateTemp(parent, ".cifar-download-*.tar.gz")
	if err != nil {
		return fmt.Errorf("create temporary file in %s: %w", parent, err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()

	// The request is cancelled by ctx (a signal) or by the idle watchdog,
	// which every byte received resets.
	reqCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	watchdog := time.AfterFunc(idle, func() { cancel(errStalled) })
	defer watchdog.Stop()
	fail := func(format string, args ...any) error {
		if cause := context.Cause(reqCtx); cause != nil {
			if errors.Is(cause, errStalled) {
				return fmt.Errorf("download %s: %w for %v; the server stalled, rerun to try again", url, errStalled, idle)
			}
			return fmt.Errorf("download %s: %w", url, cause)
		}
		return fmt.Errorf(format, args...)
	}
	req, err := http.NewRequestWithContext(reqCtx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("download %s: %w", url, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fail("%w", &DataError{Problem: DataUnreachable, Path: url, Err: err})
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("download %s: server answered %s", url, resp.Status)
	}
	if resp.ContentLength > limit {
		return fmt.Errorf("download %s: the server announces %d bytes, more than the %d the CIFAR-10 archive can be; refused", url, resp.ContentLength, limit)
	}
	hash := md5.New()
	pw := newDownloadProgress(progress, resp.ContentLength)
	body := &watchedReader{r: io.LimitReader(resp.Body, limit+1), watchdog: watchdog, idle: idle}
	n, err := io.Copy(io.MultiWriter(tmp, hash, pw), body)
	pw.finish()
	if err != nil {
		return fail("download %s: after %d bytes: %w", url, n, err)
	}
	if n > limit {
		return fmt.Errorf("download %s: more than %d bytes, more than the CIFAR-10 archive can be; refused", url, limit)
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return fmt.Errorf("download %s: got %d of %d bytes (connection cut short); rerun to try again", url, n, resp.ContentLength)
	}
	if got := hex.EncodeToString(hash.Sum(nil)); got != src.MD5 {
		return fmt.Errorf("download %s: MD5 %s, want %s: the file is corrupt or not the CIFAR-10 archive", url, got, src.MD5)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("rewind %s: %w", tmp.Name(), err)
	}
	return installArchive(ctx, tmp, dir, url)
}

// watchedReader resets the idle watchdog whenever bytes arrive.
type watchedReader struct {
	r        io.Reader
	watchdog *time.Timer
	idle     time.Duration
}

func (w *watchedReader) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	if n > 0 {
		w.watchdog.Reset(w.idle)
	}
	return n, err
}

// archiveFiles are the names extractCIFAR accepts inside the archive's
// top-level folder (anything else is refused).
var archiveFiles = map[string]bool{
	"data_batch_1.bin": true, "data_batch_2.bin": true, "data_batch_3.bin": true,
	"data_batch_4.bin": true, "data_batch_5.bin": true, "test_batch.bin": true,
	"batches.meta.txt": true, "readme.html": true,
}

// extractCIFAR unpacks a gzipped tar from r into dir, flattening the
// archive's cifar-10-batches-bin/ folder. It accepts only regular files with
// the expected names: an absolute path, a ".." element, a link or device,
// or an unknown file is an error. After extraction every batch file must be
// present with its exact size.
func extractCIFAR(ctx context.Context, r io.Reader, dir string) error {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("not a gzip file: %w", err)
	}
	tr := tar.NewReader(zr)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read tar: %w", err)
		}
		name := hdr.Name
		if strings.HasPrefix(name, "/") || filepath.IsAbs(name) {
			return fmt.Errorf("entry %q: absolute path refused", name)
		}
		for _, el := range strings.Split(name, "/") {
			if el == ".." {
				return fmt.Errorf("entry %q: path with '..' refused", name)
			}
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			continue
		case tar.TypeReg:
		default:
			return fmt.Errorf("entry %q: only regular files are accepted (type %q is a link, device or other special file)", name, hdr.Typeflag)
		}
		clean := path.Clean(name)
		base := path.Base(clean)
		if d := path.Dir(clean); (d != "cifar-10-batches-bin" && d != ".") || !archiveFiles[base] {
			return fmt.Errorf("entry %q: not a file of the CIFAR-10 binary archive", name)
		}
		if want := int64(batchImages * recordSize); strings.HasSuffix(base, ".bin") && hdr.Size != want {
			return fmt.Errorf("entry %q: %d bytes, want %d", name, hdr.Size, want)
		} else if hdr.Size > 1<<20 && !strings.HasSuffix(base, ".bin") {
			return fmt.Errorf("entry %q: %d bytes, more than a text file of the archive can be", name, hdr.Size)
		}
		if err := ctx.Err(); err != nil {
			return context.Cause(ctx)
		}
		if err := writeFileFrom(filepath.Join(dir, base), tr, hdr.Size); err != nil {
			return err
		}
	}
	for _, f := range batchFiles {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			return fmt.Errorf("archive lacks %s", f)
		}
		if st.Size() != batchImages*recordSize {
			return fmt.Errorf("%s in the archive has %d bytes, want %d", f, st.Size(), batchImages*recordSize)
		}
	}
	return nil
}

// writeFileFrom copies exactly size bytes from r into a new file p.
func writeFileFrom(p string, r io.Reader, size int64) error {
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("create %s: %w", p, err)
	}
	_, err = io.CopyN(f, r, size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	return nil
}

// downloadProgress reports a download on w: a single updating line on a terminal,
// a line every few seconds otherwise.
type downloadProgress struct {
	w         io.Writer
	total     int64
	done      int64
	start     time.Time
	last      time.Time
	tty       bool
	everyLine time.Duration
}

func newDownloadProgress(w io.Writer, total int64) *downloadProgress {
	p := &downloadProgress{w: w, total: total, start: time.Now(), everyLine: 10 * time.Second}
	if isTerminal(w) {
		p.tty, p.everyLine = true, 200*time.Millisecond
	}
	p.last = p.start
	return p
}

// isTerminal reports whether w is a terminal: downloadProgress then updates one
// line in place (\r); elsewhere (a log file, a pipe, a scheduler's output)
// it writes a plain line at most every 10 s.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// fmtDuration prints a duration to the second: 4m37s, 1h2m0s, 12s.
func fmtDuration(d time.Duration) string {
	if d < time.Second {
		return "0s"
	}
	return d.Round(time.Second).String()
}

func (p *downloadProgress) Write(b []byte) (int, error) {
	p.done += int64(len(b))
	if now := time.Now(); now.Sub(p.last) >= p.everyLine {
		p.last = now
		p.print()
	}
	return len(b), nil
}

func (p *downloadProgress) print() {
	secs := time.Since(p.start).Seconds()
	rate := float64(p.done) / math.Max(secs, 1e-9) / 1e6
	line := fmt.Sprintf("downloaded %.1f MB", float64(p.done)/1e6)
	if p.total > 0 {
		line += fmt.Sprintf(" of %.1f MB (%.0f%%)", float64(p.total)/1e6, 100*float64(p.done)/float64(p.total))
	}
	line += fmt.Sprintf(", %.1f MB/s", rate)
	if p.tty {
		fmt.Fprintf(p.w, "\r%s   ", line)
	} else {
		fmt.Fprintln(p.w, line)
	}
}

func (p *downloadProgress) finish() {
	p.print()
	if p.tty {
		fmt.Fprintln(p.w)
	}
}
