package main

// svgplot.go: a minimal SVG plot writer — line and scatter series, axes with
// round-number ticks, optional log-scale x, axis titles, a legend and a
// title — plus a heat map for the confusion matrix, grids of pictures (PNG
// data URIs) and bars, and a writer of one self-contained HTML page
// (figures with captions, tables). No dependencies; the SVG is plain SVG
// 1.1 with a viewBox, so any browser renders it.

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"html"
	"image"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// Series is one curve or point cloud. Series i is drawn in palette colour
// i and, so that no two series differ by colour alone, with dash pattern i
// (lines) or marker shape i (points).
type Series struct {
	Name    string
	X, Y    []float64
	Scatter bool   // points instead of a polyline
	Color   string // "" picks from the palette
	Label   string // text written beside the first point (e.g. "best")
}

// Band is a shaded range of x, labelled at its top.
type Band struct {
	Lo, Hi float64
	Label  string
}

// Plot describes one chart.
type Plot struct {
	Title, XLabel, YLabel string
	LogX                  bool // x axis in log10 scale (x must be > 0)
	Series                []Series
	Bands                 []Band     // shaded x ranges, drawn under the series
	XSpan                 [2]float64 // if lo < hi, the x axis covers at least [lo, hi] (a range the data samples)
}

// Layout constants, in SVG user units (pixels at 100 %).
const (
	plotWidth   = 640
	plotHeight  = 400
	plotLeft    = 70  // room for y tick labels and the y title
	plotRight   = 150 // room for the legend, right of the plot area
	plotTop     = 40  // room for the title
	plotBottom  = 55  // room for x tick labels and the x title
	plotAreaW   = plotWidth - plotLeft - plotRight
	plotAreaH   = plotHeight - plotTop - plotBottom
	targetTicks = 6
)

// palette is Okabe and Ito's colour-blind-safe set (blue, vermillion,
// bluish green, orange, reddish purple, sky blue); dashes and markers pair
// with it by index.
var (
	palette = []string{"#0072B2", "#D55E00", "#009E73", "#E69F00", "#CC79A7", "#56B4E9"}
	dashes  = []string{"", "7 4", "2 3", "9 3 2 3", "4 4", "1 2"}
	markers = []string{"circle", "square", "triangle", "diamond", "cross", "circle"}
)

// niceStep returns a round tick spacing (1, 2 or 5 × 10^k) giving about
// targetTicks ticks over span.
func niceStep(span float64) float64 {
	if span <= 0 || math.IsInf(span, 0) || math.IsNaN(span) {
		return 1
	}
	raw := span / targetTicks
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if raw <= m*mag {
			return m * mag
		}
	}
	return 10 * mag
}

// axisRange widens [lo, hi] to whole tick steps and returns the ticks.
func axisRange(lo, hi float64) (min, max float64, ticks []float64) {
	if lo == hi { // a constant: centre it with a range of its own size
		d := math.Abs(lo) / 2
		if d == 0 {
			d = 1
		}
		lo, hi = lo-d, hi+d
	}
	step := niceStep(hi - lo)
	min = float64(math.Floor(lo/step+1e-9) * step)
	max = float64(math.Ceil(hi/step-1e-9) * step)
	for t := min; t <= max+float64(step*1e-9); t += step {
		ticks = append(ticks, math.Round(t/step)*step)
	}
	return min, max, ticks
}

// dataTicks returns round ticks (1, 2 or 5 × 10^k apart) inside [lo, hi]:
// an axis that ends where the data ends.
func dataTicks(lo, hi float64) []float64 {
	step := niceStep(hi - lo)
	var ticks []float64
	for t := math.Ceil(lo/step-1e-9) * step; t <= hi+float64(step*1e-9); t += step {
		ticks = append(ticks, math.Round(t/step)*step)
	}
	return ticks
}

// formatTick prints a tick value with as many decimals as the tick step
// needs (0.35, not 0.35000000000000003).
func formatTick(v, step float64) string {
	if v == 0 {
		return "0"
	}
	if a := math.Abs(v); a >= 1e5 || a < 1e-3 {
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
	decimals := max(0, int(math.Ceil(-float64(math.Log10(step))-1e-9)))
	return strconv.FormatFloat(v, 'f', decimals, 64)
}

// esc escapes text for XML.
func esc(s string) string {
	var b bytes.Buffer
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

// drawable reports whether (x, y) is a point on the plane (no NaN, no ±Inf).
func drawable(x, y float64) bool {
	return !math.IsNaN(x) && !math.IsInf(x, 0) && !math.IsNaN(y) && !math.IsInf(y, 0)
}

// SVG renders the plot: the frame (title, grid, ticks, axis titles), the
// series, then the legend.
func (p *Plot) SVG() []byte {
	ax := p.axes()
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", plotWidth, plotHeight, plotWidth, plotHeight)
	p.frame(&b, ax)
	p.bands(&b, ax)
	for i, s := range p.Series {
		s.draw(&b, ax, p.color(i), i)
	}
	p.legend(&b)
	b.WriteString("</svg>\n")
	return b.Bytes()
}

// axes maps data to the drawing: tx is the x transform (log10 with LogX),
// [xmin, xmax] × [ymin, ymax] the plotted range with its ticks.
type axes struct {
	logX                   bool
	xmin, xmax, ymin, ymax float64
	xticks, yticks         []float64
}

// tx is the x transform: log10 on a log axis.
func (a *axes) tx(x float64) float64 {
	if a.logX {
		return math.Log10(x)
	}
	return x
}

// px and py are the drawing coordinates of a data point's x and y; pxT of
// an already transformed x (a tick).
func (a *axes) px(x float64) float64 { return a.pxT(a.tx(x)) }
func (a *axes) pxT(t float64) float64 {
	return plotLeft + float64((t-a.xmin)/(a.xmax-a.xmin)*plotAreaW)
}
func (a *axes) py(y float64) float64 {
	return plotTop + plotAreaH - float64((y-a.ymin)/(a.ymax-a.ymin)*plotAreaH)
}

// axes finds the data's range over the drawable points and rounds it to
// ticks (whole decades on a log axis).
func (p *Plot) axes() *axes {
	a := &axes{logX: p.LogX}
	xlo, xhi, ylo, yhi := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, s := range p.Series {
		for i := range s.X {
			x, y := a.tx(s.X[i]), s.Y[i]
			if !drawable(x, y) {
				continue
			}
			xlo, xhi = math.Min(xlo, x), math.Max(xhi, x)
			ylo, yhi = math.Min(ylo, y), math.Max(yhi, y)
		}
	}
	if xlo > xhi { // no data
		xlo, xhi, ylo, yhi = 0, 1, 0, 1
	}
	for _, b := range p.Bands { // a band is shown whole
		xlo, xhi = math.Min(xlo, a.tx(b.Lo)), math.Max(xhi, a.tx(b.Hi))
	}
	if p.XSpan[0] < p.XSpan[1] {
		xlo, xhi = math.Min(xlo, a.tx(p.XSpan[0])), math.Max(xhi, a.tx(p.XSpan[1]))
	}
	if p.scatterOnly() && xlo < xhi && !p.LogX {
		// Markers are drawn whole: room for half a marker at either end.
		pad := float64((xhi - xlo) * 0.02)
		xlo, xhi = xlo-pad, xhi+pad
	}
	if p.LogX {
		a.xmin, a.xmax = math.Floor(xlo), math.Ceil(xhi)
		if a.xmin == a.xmax {
			a.xmax++
		}
		for t := a.xmin; t <= a.xmax; t++ {
			a.xticks = append(a.xticks, t)
		}
	} else if xlo < xhi {
		// The x axis ends where the data ends (steps 0 … 5400, not 6000).
		a.xmin, a.xmax, a.xticks = xlo, xhi, dataTicks(xlo, xhi)
	} else {
		a.xmin, a.xmax, a.xticks = axisRange(xlo, xhi)
	}
	if ylo == yhi { // a constant: centred, with round ticks around it
		a.ymin, a.ymax, a.yticks = axisRange(ylo, yhi)
		return a
	}
	// Headroom of 4 % above and below, so no curve touches the frame; the
	// ticks are the round values inside.
	pad := float64((yhi - ylo) * 0.04)
	a.ymin, a.ymax = ylo-pad, yhi+pad
	a.yticks = dataTicks(a.ymin, a.ymax)
	return a
}

// scatterOnly reports whether every series is drawn as markers.
func (p *Plot) scatterOnly() bool {
	for _, s := range p.Series {
		if !s.Scatter {
			return false
		}
	}
	return len(p.Series) > 0
}

// frame draws the background, title, grid, tick labels, box and axis titles.
func (p *Plot) frame(b *bytes.Buffer, a *axes) {
	fmt.Fprintf(b, `<rect x="0" y="0" width="%d" height="%d" fill="white"/>`+"\n", plotWidth, plotHeight)
	fmt.Fprintf(b, `<text x="%d" y="24" text-anchor="middle" font-size="15">%s</text>`+"\n", plotWidth/2, esc(p.Title))
	for _, t := range a.xticks {
		x := a.pxT(t)
		label := formatTick(t, a.xticks[min(1, len(a.xticks)-1)]-a.xticks[0])
		if p.LogX {
			label = "1e" + strconv.Itoa(int(t))
		}
		fmt.Fprintf(b, `<line x1="%.2f" y1="%d" x2="%.2f" y2="%d" stroke="#ddd"/>`+"\n", x, plotTop, x, plotTop+plotAreaH)
		fmt.Fprintf(b, `<text x="%.2f" y="%d" text-anchor="middle">%s</text>`+"\n", x, plotTop+plotAreaH+16, esc(label))
	}
	for _, t := range a.yticks {
		y := a.py(t)
		fmt.Fprintf(b, `<line x1="%d" y1="%.2f" x2="%d" y2="%.2f" stroke="#ddd"/>`+"\n", plotLeft, y, plotLeft+plotAreaW, y)
		fmt.Fprintf(b, `<text x="%d" y="%.2f" text-anchor="end" dominant-baseline="middle">%s</text>`+"\n", plotLeft-6, y, esc(formatTick(t, a.yticks[min(1, len(a.yticks)-1)]-a.yticks[0])))
	}
	fmt.Fprintf(b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="black"/>`+"\n", plotLeft, plotTop, plotAreaW, plotAreaH)
	fmt.Fprintf(b, `<text x="%d" y="%d" text-anchor="middle">%s</text>`+"\n", plotLeft+plotAreaW/2, plotHeight-12, esc(p.XLabel))
	fmt.Fprintf(b, `<text x="16" y="%d" text-anchor="middle" transform="rotate(-90 16 %d)">%s</text>`+"\n", plotTop+plotAreaH/2, plotTop+plotAreaH/2, esc(p.YLabel))
}

// color is series i's colour: its own, or the palette's.
func (p *Plot) color(i int) string {
	if c := p.Series[i].Color; c != "" {
		return c
	}
	return palette[i%len(palette)]
}

// marker draws marker shape i at (x, y).
func marker(b *bytes.Buffer, i int, x, y float64, color string) {
	const r = 4.0
	switch markers[i%len(markers)] {
	case "square":
		fmt.Fprintf(b, `<rect x="%.2f" y="%.2f" width="%.1f" height="%.1f" fill="%s"/>`+"\n", x-r, y-r, 2*r, 2*r, color)
	case "triangle":
		fmt.Fprintf(b, `<polygon points="%.2f,%.2f %.2f,%.2f %.2f,%.2f" fill="%s"/>`+"\n", x, y-r-1, x-r-1, y+r, x+r+1, y+r, color)
	case "diamond":
		fmt.Fprintf(b, `<polygon points="%.2f,%.2f %.2f,%.2f %.2f,%.2f %.2f,%.2f" fill="%s"/>`+"\n", x, y-r-1, x+r+1, y, x, y+r+1, x-r-1, y, color)
	case "cross":
		fmt.Fprintf(b, `<path d="M%.2f %.2fL%.2f %.2fM%.2f %.2fL%.2f %.2f" stroke="%s" stroke-width="2"/>`+"\n", x-r, y-r, x+r, y+r, x-r, y+r, x+r, y-r, color)
	default:
		fmt.Fprintf(b, `<circle cx="%.2f" cy="%.2f" r="%.1f" fill="%s"/>`+"\n", x, y, r, color)
	}
}

// dash is the stroke-dasharray attribute of line style i ("" for solid).
func dash(i int) string {
	if d := dashes[i%len(dashes)]; d != "" {
		return ` stroke-dasharray="` + d + `"`
	}
	return ""
}

// draw draws the series' drawable points: markers of shape i, or one
// polyline of dash pattern i; then its label, beside the first point.
func (s *Series) draw(b *bytes.Buffer, a *axes, color string, i int) {
	first := -1
	if s.Scatter {
		for j := range s.X {
			if drawable(a.tx(s.X[j]), s.Y[j]) {
				marker(b, i, a.px(s.X[j]), a.py(s.Y[j]), color)
				first = cmpOr(first, j)
			}
		}
	} else {
		var pts bytes.Buffer
		for j := range s.X {
			if drawable(a.tx(s.X[j]), s.Y[j]) {
				fmt.Fprintf(&pts, "%.2f,%.2f ", a.px(s.X[j]), a.py(s.Y[j]))
				first = cmpOr(first, j)
			}
		}
		fmt.Fprintf(b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="1.8"%s/>`+"\n", bytes.TrimSpace(pts.Bytes()), color, dash(i))
	}
	if s.Label != "" && first >= 0 {
		// Above the point, or below it near the top; towards the inside.
		x, y := a.px(s.X[first]), a.py(s.Y[first])
		anchor, dx, dy := "start", 7.0, -8.0
		if x > plotLeft+0.6*plotAreaW {
			anchor, dx = "end", -7
		}
		if y < plotTop+20 {
			dy = 18
		}
		fmt.Fprintf(b, `<text x="%.2f" y="%.2f" text-anchor="%s" fill="%s" font-weight="bold">%s</text>`+"\n", x+dx, y+dy, anchor, color, esc(s.Label))
	}
}

// cmpOr is first if it is set (≥ 0), else j.
func cmpOr(first, j int) int {
	if first >= 0 {
		return first
	}
	return j
}

// bands shades the x ranges of p.Bands and labels them at the bottom.
func (p *Plot) bands(b *bytes.Buffer, a *axes) {
	for _, band := range p.Bands {
		x0 := math.Max(plotLeft, a.px(band.Lo))
		x1 := math.Min(plotLeft+plotAreaW, a.px(band.Hi))
		if !(x1 > x0) {
			continue
		}
		fmt.Fprintf(b, `<rect x="%.2f" y="%d" width="%.2f" height="%d" fill="#999999" fill-opacity="0.18"/>`+"\n", x0, plotTop, x1-x0, plotAreaH)
		fmt.Fprintf(b, `<text x="%.2f" y="%d" text-anchor="middle" fill="#555555">%s</text>`+"\n", (x0+x1)/2, plotTop+plotAreaH-8, esc(band.Label))
	}
}

// legend draws one entry per series in the right margin, with its colour
// and its dash pattern or marker.
func (p *Plot) legend(b *bytes.Buffer) {
	lx := plotLeft + plotAreaW + 12
	for i, s := range p.Series {
		ly := plotTop + 16 + 18*i
		if s.Scatter {
			marker(b, i, float64(lx+10), float64(ly-4), p.color(i))
		} else {
			fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"%s/>`+"\n", lx, ly-4, lx+20, ly-4, p.color(i), dash(i))
		}
		fmt.Fprintf(b, `<text x="%d" y="%d">%s</text>`+"\n", lx+26, ly, esc(s.Name))
	}
}

// HeatmapSVG draws a labelled matrix of counts (the confusion matrix: rows
// are true classes, columns predicted ones), darker for larger values.
func HeatmapSVG(title string, labels []string, counts [][]int, rowTitle, colTitle string) []byte {
	n := len(labels)
	const cell, left, top = 44, 110, 120
	w, h := left+n*cell+20, top+n*cell+40
	mx := 1
	for _, row := range counts {
		for _, v := range row {
			mx = max(mx, v)
		}
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" font-family="sans-serif" font-size="11">`+"\n", w, h, w, h)
	fmt.Fprintf(&b, `<rect x="0" y="0" width="%d" height="%d" fill="white"/>`+"\n", w, h)
	fmt.Fprintf(&b, `<text x="%d" y="22" text-anchor="middle" font-size="15">%s</text>`+"\n", w/2, esc(title))
	fmt.Fprintf(&b, `<text x="%d" y="44" text-anchor="middle">%s</text>`+"\n", left+n*cell/2, esc(colTitle))
	fmt.Fprintf(&b, `<text x="14" y="%d" text-anchor="middle" transform="rotate(-90 14 %d)">%s</text>`+"\n", top+n*cell/2, top+n*cell/2, esc(rowTitle))
	for j, l := range labels {
		x := left + j*cell + cell/2
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="start" transform="rotate(-60 %d %d)">%s</text>`+"\n", x, top-6, x, top-6, esc(l))
	}
	for i, row := range counts {
		y := top + i*cell
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end" dominant-baseline="middle">%s</text>`+"\n", left-6, y+cell/2, esc(labels[i]))
		for j, v := range row {
			shade := 1 - float64(v)/float64(mx)
			g := int(255 * shade)
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="rgb(%d,%d,255)" stroke="#888"/>`+"\n", left+j*cell, y, cell, cell, g, g)
			txt := "black"
			if shade < 0.5 {
				txt = "white"
			}
			fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" dominant-baseline="middle" fill="%s">%d</text>`+"\n", left+j*cell+cell/2, y+cell/2, txt, v)
		}
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}

// ---------------------------------------------------------------------------
// A self-contained HTML page (-mode=report): headings, paragraphs,
// preformatted tables and inline SVG figures. The markup is well-formed XML
// (every element closed, all text escaped), so encoding/xml can check it.

// htmlDoc accumulates the body of a page.
type htmlDoc struct {
	b bytes.Buffer
}

func (d *htmlDoc) h2(title string) { fmt.Fprintf(&d.b, "<h2>%s</h2>\n", html.EscapeString(title)) }
func (d *htmlDoc) p(text string)   { fmt.Fprintf(&d.b, "<p>%s</p>\n", htmlText(text)) }
func (d *htmlDoc) pre(text string) { fmt.Fprintf(&d.b, "<pre>%s</pre>\n", html.EscapeString(text)) }

// banner writes a highlighted notice (the -quick warning).
func (d *htmlDoc) banner(text string) {
	fmt.Fprintf(&d.b, "<p class=\"banner\">%s</p>\n", html.EscapeString(text))
}

// figure writes a numbered figure: its panels (SVG documents) side by side
// and a caption below them.
func (d *htmlDoc) figure(caption string, panels ...[]byte) {
	d.b.WriteString("<figure>\n")
	for _, svg := range panels {
		d.b.WriteString(`<div class="panel">`)
		d.b.Write(bytes.TrimSpace(svg))
		d.b.WriteString("</div>\n")
	}
	fmt.Fprintf(&d.b, "<figcaption>%s</figcaption>\n</figure>\n", htmlText(caption))
}

// readPanels reads the named SVG files of dir.
func readPanels(dir string, names ...string) ([][]byte, error) {
	var panels [][]byte
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		panels = append(panels, b)
	}
	return panels, nil
}

// table writes an HTML table with a caption above it.
func (d *htmlDoc) table(caption string, header []string, rows [][]string) {
	fmt.Fprintf(&d.b, "<table>\n<caption>%s</caption>\n<tr>", html.EscapeString(caption))
	for _, h := range header {
		fmt.Fprintf(&d.b, "<th>%s</th>", html.EscapeString(h))
	}
	d.b.WriteString("</tr>\n")
	for _, r := range rows {
		d.b.WriteString("<tr>")
		for _, c := range r {
			fmt.Fprintf(&d.b, "<td>%s</td>", htmlText(c))
		}
		d.b.WriteString("</tr>\n")
	}
	d.b.WriteString("</table>\n")
}

// numberUnit is a number and the unit after it ("51.82 %", "0.8 s").
var numberUnit = regexp.MustCompile(`([0-9]) (%|s\b)`)

// htmlText is text escaped for HTML, set so that a narrow page does not
// break it where a reader would stumble: a number keeps its unit (" %",
// " s": a no-break space), and a command of this program ("go run .
// -mode=train -eta-max 0.1 …", up to the end of the text) breaks only
// between its arguments, never at the hyphens inside one. The characters are the
// text's own, so a command copied from the page still runs.
func htmlText(text string) string {
	cmd := ""
	if i := strings.Index(text, "go run ."); i >= 0 {
		text, cmd = text[:i], text[i:]
	}
	out := numberUnit.ReplaceAllString(html.EscapeString(text), "$1\u00a0$2")
	if cmd != "" {
		args := strings.Fields(cmd)
		for k, a := range args {
			args[k] = `<span class="arg">` + html.EscapeString(a) + "</span>"
		}
		out += strings.Join(args, " ")
	}
	return out
}

// page wraps a summary and a body into a complete document: one file, no
// scripts, styles for the screen and for print.
func (d *htmlDoc) page(title string, body *htmlDoc) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8"/>
<title>%s</title>
<style>
body { font-family: sans-serif; max-width: 1400px; margin: 2em auto; padding: 0 1em; line-height: 1.4; }
pre { background: #f6f6f6; padding: 0.5em; overflow-x: auto; }
table { border-collapse: collapse; margin: 0.8em 0; }
caption { caption-side: top; text-align: left; font-weight: bold; padding-bottom: 0.3em; }
td, th { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: left; vertical-align: top; }
figure { margin: 1em 0; }
.panel { display: inline-block; margin: 0.2em; }
figcaption { max-width: 1300px; font-size: 0.95em; }
.banner { background: #fff3cd; border: 2px solid #E69F00; padding: 0.6em; font-weight: bold; }
.arg { white-space: nowrap; font-family: monospace; }
@media print {
  body { max-width: none; margin: 0; font-size: 10pt; }
  figure, table, pre { break-inside: avoid; }
  .panel svg { width: 48%%; height: auto; }
  h2 { break-after: avoid; }
}
</style>
</head>
<body>
<h1>%s</h1>
`, html.EscapeString(title), html.EscapeString(title))
	b.Write(d.b.Bytes())
	b.Write(body.b.Bytes())
	b.WriteString("</body>\n</html>\n")
	return b.Bytes()
}

// ---------------------------------------------------------------------------
// Pictures: small RGB images (32×32, channel-major bytes as in CIFAR-10)
// drawn inside SVG as PNG data URIs, and horizontal bars.

// pngDataURI encodes a side×side image stored channel-major (all red, then
// green, then blue) as a PNG data URI.
func pngDataURI(pix []uint8, side int) string {
	img := image.NewRGBA(image.Rect(0, 0, side, side))
	plane := side * side
	for i := range plane {
		img.Pix[4*i], img.Pix[4*i+1], img.Pix[4*i+2], img.Pix[4*i+3] = pix[i], pix[plane+i], pix[2*plane+i], 255
	}
	var b bytes.Buffer
	png.Encode(&b, img)
	return "data:image/png;base64," + base64.StdEncoding.EncodeToString(b.Bytes())
}

// Picture is one image of a picture grid, with a caption under it.
type Picture struct {
	Pix     []uint8 // side×side×3, channel-major
	Caption string
}

// PictureGridSVG draws rows of pictures (side×side pixels, shown scale
// times larger, without smoothing), each row with a label on its left.
func PictureGridSVG(title string, side, scale int, rowLabels []string, rows [][]Picture) []byte {
	cell := side * scale
	const left, top, gap, captionH = 100, 40, 10, 28
	cols := 0
	for _, r := range rows {
		cols = max(cols, len(r))
	}
	w, h := max(640, left+cols*(cell+gap)+gap), top+len(rows)*(cell+captionH+gap)+gap
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" font-family="sans-serif" font-size="10">`+"\n", w, h, w, h)
	fmt.Fprintf(&b, `<rect x="0" y="0" width="%d" height="%d" fill="white"/>`+"\n", w, h)
	fmt.Fprintf(&b, `<text x="%d" y="22" text-anchor="middle" font-size="15">%s</text>`+"\n", w/2, esc(title))
	for i, r := range rows {
		y := top + i*(cell+captionH+gap)
		if i < len(rowLabels) {
			fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end" font-size="12" dominant-baseline="middle">%s</text>`+"\n", left-8, y+cell/2, esc(rowLabels[i]))
		}
		for j, p := range r {
			x := left + j*(cell+gap)
			fmt.Fprintf(&b, `<image x="%d" y="%d" width="%d" height="%d" style="image-rendering: pixelated" href="%s"/>`+"\n", x, y, cell, cell, pngDataURI(p.Pix, side))
			for k, line := range strings.SplitN(p.Caption, "\n", 2) {
				fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">%s</text>`+"\n", x+cell/2, y+cell+11+12*k, esc(line))
			}
		}
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}

// BarsSVG draws one horizontal bar per label, values in [0, 100] (%).
func BarsSVG(title string, labels []string, values []float64) []byte {
	const left, top, barH, gap, width = 110, 40, 18, 6, 360
	h := top + len(labels)*(barH+gap) + 30
	w := left + width + 80
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", w, h, w, h)
	fmt.Fprintf(&b, `<rect x="0" y="0" width="%d" height="%d" fill="white"/>`+"\n", w, h)
	fmt.Fprintf(&b, `<text x="%d" y="22" text-anchor="middle" font-size="15">%s</text>`+"\n", w/2, esc(title))
	for _, t := range []float64{0, 25, 50, 75, 100} {
		x := left + float64(t/100*width)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>`+"\n", x, top-4, x, h-26)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%g %%</text>`+"\n", x, h-12, t)
	}
	for i, l := range labels {
		y := top + i*(barH+gap)
		v := math.Max(0, math.Min(100, values[i]))
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end" dominant-baseline="middle">%s</text>`+"\n", left-8, y+barH/2, esc(l))
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", left, y, v/100*width, barH, palette[0])
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" dominant-baseline="middle">%.1f %%</text>`+"\n", left+float64(v/100*width)+5, y+barH/2, values[i])
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}
